//! Test fixtures for the plan and report tests: small apps loaded through
//! the real loader and converter, and live objects as the API server
//! returns them.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::convert::{AppDesired, BoundDisk, Object};
use crate::desired::{AppOutcome, Desired, build_app};
use crate::diag::Diagnostic;
use crate::live::{Live, LiveDisk, LiveObject, inventory_object};
use crate::model::{
    App, AppVolume, ComposeRef, Kind, KomSet, Meta, Provider, RefBase, ResourceId, VolumeType,
    Workspace,
};
use crate::source::FileTree;

pub const WS: &str = "acme";
pub const PRV: &str = "aks-prod";
pub const CLS: &str = "prod";

pub const GITEA_COMPOSE: &str = "\
services:
  gitea:
    image: gitea/gitea:1.22
    environment:
      GITEA__database__DB_TYPE: postgres
      GITEA__database__HOST: localhost:5432
    env_file: gitea.env
    ports:
      - \"3000:3000\"
    volumes:
      - data/gitea:/data
  postgres:
    image: postgres:16
    environment:
      POSTGRES_DB: gitea
    volumes:
      - data/pg:/var/lib/postgresql/data
";

pub const GITEA_ENV: &str = "GITEA__security__SECRET_KEY=hunter2-very-secret\n";

/// An app to load: its compose file, extra files and volumes.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub name: String,
    pub compose: String,
    pub files: Vec<(String, String)>,
    pub volumes: Vec<AppVolume>,
    pub disks: BTreeMap<String, BoundDisk>,
}

impl TestApp {
    pub fn new(name: &str, compose: &str) -> TestApp {
        TestApp {
            name: name.to_string(),
            compose: compose.to_string(),
            files: Vec::new(),
            volumes: Vec::new(),
            disks: BTreeMap::new(),
        }
    }

    /// The gitea app of UX.md with its `data` volume bound to `data-1`.
    pub fn gitea() -> TestApp {
        TestApp::new("gitea", GITEA_COMPOSE)
            .file("gitea.env", GITEA_ENV)
            .volume("data", 32 << 30, &[("sku", "Premium_ZRS")])
            .bound("data", "data-1", Some("1"))
    }

    pub fn file(mut self, path: &str, text: &str) -> TestApp {
        self.files.push((path.to_string(), text.to_string()));
        self
    }

    pub fn volume(mut self, name: &str, size: u64, options: &[(&str, &str)]) -> TestApp {
        self.volumes.push(AppVolume {
            name: name.to_string(),
            size_bytes: size,
            kind: VolumeType::Disk,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
            source: None,
            span: Default::default(),
        });
        self
    }

    pub fn bound(mut self, volume: &str, disk: &str, zone: Option<&str>) -> TestApp {
        self.disks.insert(
            volume.to_string(),
            bound_disk(&self.name, volume, disk, zone),
        );
        self
    }

    pub fn unbound(mut self) -> TestApp {
        self.disks.clear();
        self
    }

    pub fn id(&self) -> ResourceId {
        app_id(&self.name)
    }

    /// Loads and converts the app.
    pub fn load(&self) -> AppOutcome {
        let dir = format!("apps/{}", self.name);
        let mut files = vec![(
            format!("{dir}/compose.yml"),
            self.compose.clone().into_bytes(),
        )];
        for (p, t) in &self.files {
            files.push((format!("{dir}/{p}"), t.clone().into_bytes()));
        }
        let tree = FileTree::from_files(files);
        let app = App {
            meta: meta(self.id()),
            compose: ComposeRef::File("compose.yml".into()),
            compose_span: Default::default(),
            ingress: Default::default(),
            volumes: self.volumes.clone(),
            deployment: Default::default(),
            network_policy: Default::default(),
            resources: BTreeMap::new(),
            settings: BTreeMap::new(),
            snapshots: None,
            policy: Default::default(),
            ref_base: RefBase::Dir(dir),
        };
        let kom = kom_with(app.clone());
        build_app(&kom, &tree, &app, &self.disks)
    }

    /// Loads the app and unwraps the conversion (fixtures must convert).
    pub fn desired(&self) -> AppDesired {
        match self.load().result {
            Ok(d) => d,
            Err(errors) => panic!("fixture {} failed to convert: {errors:#?}", self.name),
        }
    }
}

pub fn app_id(name: &str) -> ResourceId {
    ResourceId::new(vec![
        (Kind::Workspace, WS.into()),
        (Kind::Provider, PRV.into()),
        (Kind::Cluster, CLS.into()),
        (Kind::App, name.into()),
    ])
}

fn meta(id: ResourceId) -> Meta {
    Meta {
        name: id.name().to_string(),
        id,
        ..Meta::default()
    }
}

fn kom_with(app: App) -> KomSet {
    let ws = ResourceId::new(vec![(Kind::Workspace, WS.into())]);
    let prv = ws.child(Kind::Provider, PRV);
    let cls = prv.child(Kind::Cluster, CLS);
    KomSet {
        workspaces: vec![Workspace {
            meta: meta(ws),
            ..Workspace::default()
        }],
        providers: vec![Provider {
            meta: meta(prv),
            driver: "aks".into(),
            settings: BTreeMap::new(),
        }],
        clusters: vec![crate::model::Cluster {
            meta: meta(cls),
            ..Default::default()
        }],
        apps: vec![app],
        boxes: Vec::new(),
    }
}

fn handle(app: &str, disk: &str) -> String {
    format!(
        "/subscriptions/0000/resourceGroups/k4x_app_{app}/providers/Microsoft.Compute/disks/{disk}"
    )
}

pub fn bound_disk(app: &str, _volume: &str, disk: &str, zone: Option<&str>) -> BoundDisk {
    BoundDisk {
        name: disk.to_string(),
        handle: handle(app, disk),
        size_bytes: 32 << 30,
        zone: zone.map(str::to_string),
    }
}

/// The live disk of a bound disk.
pub fn live_disk(app: &AppDesired, volume: &str, disk: &BoundDisk, assigned: bool) -> LiveDisk {
    LiveDisk {
        name: disk.name.clone(),
        volume: volume.to_string(),
        app_id_hash: app.hashes.app_id.clone(),
        assigned,
        size: disk.size_bytes,
        zone: disk.zone.clone(),
        options: BTreeMap::from([("sku".to_string(), json!("Premium_ZRS"))]),
        handle: disk.handle.clone(),
        created_at: Some("2025-01-01T00:00:00Z".into()),
        updated_at: None,
    }
}

pub fn desired_of(apps: Vec<AppOutcome>) -> Desired {
    Desired {
        apps,
        failed_files: Vec::new(),
    }
}

pub fn failed_file(path: &str) -> (String, Vec<Diagnostic>) {
    (
        path.to_string(),
        vec![
            Diagnostic::error("kom-invalid", "expected a boolean (true or false)")
                .at(
                    path,
                    crate::yaml::Span {
                        line: 14,
                        col: 5,
                        start: 0,
                        end: 0,
                    },
                )
                .resource("/ws/acme/prv/aks-prod/cls/prod/app/broken"),
        ],
    )
}

/// The live state of an applied app: every object as the API server
/// returns it, its inventory, and its assigned disks.
pub fn live_of(apps: &[&AppDesired]) -> Live {
    let mut live = Live::empty();
    for app in apps {
        live.objects.extend(server_objects(app));
        for d in &app.disks {
            if let Some(b) = &d.assigned {
                live.disks.push(live_disk(app, &d.volume, b, true));
            }
        }
    }
    live
}

/// The objects of an app, as returned by the server after `kompoxops`
/// applied them, plus the inventory ConfigMap.
pub fn server_objects(app: &AppDesired) -> Vec<LiveObject> {
    app.objects
        .iter()
        .filter(|o| !o.pending)
        .chain(std::iter::once(&inventory_object(app)))
        .map(|o| LiveObject::from_body(as_server_returns(o)).expect("identity"))
        .collect()
}

/// What `kubectl get -o json` shows for an object `kompoxops` applied:
/// managedFields, bookkeeping, defaults, canonical quantities and status.
pub fn as_server_returns(o: &Object) -> Json {
    let mut b = o.body.clone();
    let fields = fields_v1(&strip_identity(&o.body));
    let meta = b["metadata"].as_object_mut().expect("metadata");
    meta.insert("uid".into(), json!("6b1c2a4e-0000-4000-8000-000000000000"));
    meta.insert("resourceVersion".into(), json!("123456"));
    meta.insert("creationTimestamp".into(), json!("2025-01-01T00:00:00Z"));
    meta.insert(
        "managedFields".into(),
        json!([
            {"apiVersion": o.api_version, "fieldsType": "FieldsV1", "fieldsV1": fields,
             "manager": "kompoxops", "operation": "Apply", "time": "2025-01-01T00:00:00Z"},
            {"apiVersion": o.api_version, "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {"f:phase": {}}},
             "manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
             "time": "2025-01-01T00:00:00Z"},
        ]),
    );
    match o.kind.as_str() {
        "Namespace" => {
            b["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(o.name);
            b["spec"] = json!({"finalizers": ["kubernetes"]});
            b["status"] = json!({"phase": "Active"});
        }
        "Deployment" => {
            b["metadata"]["generation"] = json!(1);
            b["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
            let spec = &mut b["spec"];
            spec["progressDeadlineSeconds"] = json!(600);
            spec["revisionHistoryLimit"] = json!(10);
            spec["template"]["metadata"]["creationTimestamp"] = Json::Null;
            let pod = &mut spec["template"]["spec"];
            pod["dnsPolicy"] = json!("ClusterFirst");
            pod["restartPolicy"] = json!("Always");
            pod["schedulerName"] = json!("default-scheduler");
            pod["securityContext"] = json!({});
            if pod.get("terminationGracePeriodSeconds").is_none() {
                pod["terminationGracePeriodSeconds"] = json!(30);
            }
            for list in ["containers", "initContainers"] {
                for c in items(pod, list) {
                    // `value` is omitempty: an empty value is not returned.
                    for e in items(c, "env") {
                        if e["value"] == json!("") {
                            e.as_object_mut().expect("env").remove("value");
                        }
                    }
                    c["terminationMessagePath"] = json!("/dev/termination-log");
                    c["terminationMessagePolicy"] = json!("File");
                    if c.get("imagePullPolicy").is_none() {
                        c["imagePullPolicy"] = json!("IfNotPresent");
                    }
                    if c.get("resources").is_none() {
                        c["resources"] = json!({});
                    }
                    for probe in ["readinessProbe", "startupProbe", "livenessProbe"] {
                        if let Some(p) = c.get_mut(probe) {
                            p["successThreshold"] = json!(1);
                        }
                    }
                }
            }
            for v in items(pod, "volumes") {
                for src in ["configMap", "secret"] {
                    if let Some(s) = v.get_mut(src) {
                        s["defaultMode"] = json!(420);
                    }
                }
            }
            b["status"] = json!({"availableReplicas": 1, "observedGeneration": 1, "readyReplicas": 1,
                                 "replicas": 1, "updatedReplicas": 1,
                                 "conditions": [{"type": "Available", "status": "True"}]});
        }
        "Service" => {
            let spec = &mut b["spec"];
            if spec.get("clusterIP").is_none() {
                spec["clusterIP"] = json!("10.0.12.34");
                spec["clusterIPs"] = json!(["10.0.12.34"]);
            } else {
                spec["clusterIPs"] = json!(["None"]);
            }
            spec["internalTrafficPolicy"] = json!("Cluster");
            spec["ipFamilies"] = json!(["IPv4"]);
            spec["ipFamilyPolicy"] = json!("SingleStack");
            spec["sessionAffinity"] = json!("None");
            if spec.get("type").is_none() {
                spec["type"] = json!("ClusterIP");
            }
            b["status"] = json!({"loadBalancer": {}});
        }
        "PersistentVolume" => {
            let spec = &mut b["spec"];
            if let Some(s) = spec.pointer_mut("/capacity/storage") {
                *s = json!("32Gi");
            }
            spec["claimRef"]["uid"] = json!("9a8b7c6d-0000-4000-8000-000000000000");
            spec["claimRef"]["resourceVersion"] = json!("1000");
            b["metadata"]["finalizers"] = json!(["kubernetes.io/pv-protection"]);
            b["status"] = json!({"phase": "Bound"});
        }
        "PersistentVolumeClaim" => {
            if let Some(s) = b.pointer_mut("/spec/resources/requests/storage") {
                *s = json!("32Gi");
            }
            b["metadata"]["annotations"] = json!({"pv.kubernetes.io/bind-completed": "yes"});
            b["metadata"]["finalizers"] = json!(["kubernetes.io/pvc-protection"]);
            b["status"] = json!({"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "32Gi"}});
        }
        "NetworkPolicy" => {
            for rule in items(&mut b["spec"], "ingress") {
                for p in items(rule, "ports") {
                    if p.get("protocol").is_none() {
                        p["protocol"] = json!("TCP");
                    }
                }
            }
        }
        _ => {}
    }
    b
}

/// The items of a list field, when present (indexing would insert null).
fn items<'a>(v: &'a mut Json, key: &str) -> impl Iterator<Item = &'a mut Json> {
    v.get_mut(key)
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
}

fn strip_identity(body: &Json) -> Json {
    let mut b = body.clone();
    if let Some(m) = b.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    b
}

/// The `fieldsV1` tree a server-side apply of `v` records.
pub fn fields_v1(v: &Json) -> Json {
    let Json::Object(m) = v else {
        return json!({});
    };
    let mut out = Map::new();
    for (k, val) in m {
        out.insert(format!("f:{k}"), field_node(val));
    }
    Json::Object(out)
}

fn field_node(v: &Json) -> Json {
    match v {
        Json::Object(m) if !m.is_empty() => {
            let mut node = fields_v1(v);
            node.as_object_mut()
                .expect("object")
                .insert(".".into(), json!({}));
            node
        }
        Json::Array(items) if items.iter().all(|i| item_key(i).is_some()) && !items.is_empty() => {
            let mut out = Map::new();
            for i in items {
                let mut node = fields_v1(i);
                node.as_object_mut()
                    .expect("object")
                    .insert(".".into(), json!({}));
                out.insert(format!("k:{}", item_key(i).expect("key")), node);
            }
            Json::Object(out)
        }
        _ => json!({}),
    }
}

fn item_key(i: &Json) -> Option<String> {
    let o = i.as_object()?;
    for k in ["mountPath", "name", "containerPort", "ip"] {
        if let Some(v) = o.get(k) {
            let mut key = Map::new();
            key.insert(k.to_string(), v.clone());
            if k == "containerPort"
                && let Some(p) = o.get("protocol")
            {
                key.insert("protocol".into(), p.clone());
            }
            return Some(Json::Object(key).to_string());
        }
    }
    None
}

/// Finds an object of a live state by kind and name.
pub fn find_mut<'a>(live: &'a mut Live, kind: &str, name: &str) -> &'a mut LiveObject {
    live.objects
        .iter_mut()
        .find(|o| o.kind == kind && o.name == name)
        .unwrap_or_else(|| panic!("no live {kind} {name}"))
}
