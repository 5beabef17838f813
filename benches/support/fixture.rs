//! Generated repositories for the benchmarks: N apps, each with three
//! services and one volume (the shape), in repository mode.

use kompox::source::FileTree;

#[allow(dead_code)]
pub fn repository(apps: usize) -> FileTree {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            ".kompox/config.yml".into(),
            b"version: 1\napps:\n  - apps/*/kompoxapp.yml\n".to_vec(),
        ),
        (
            ".kompox/kom/shared.yml".into(),
            b"apiVersion: ops.kompox.dev/v1alpha1
kind: Workspace
metadata: {name: bench, annotations: {ops.kompox.dev/id: /ws/bench}}
spec: {}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Provider
metadata: {name: aks1, annotations: {ops.kompox.dev/id: /ws/bench/prv/aks1}}
spec: {driver: aks}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Cluster
metadata: {name: prod, annotations: {ops.kompox.dev/id: /ws/bench/prv/aks1/cls/prod}}
spec: {ingress: {domain: apps.example.com}}
"
            .to_vec(),
        ),
    ];
    for i in 0..apps {
        let name = format!("app{i:04}");
        files.push((
            format!("apps/{name}/kompoxapp.yml"),
            format!(
                "apiVersion: ops.kompox.dev/v1alpha1
kind: App
metadata: {{name: {name}, annotations: {{ops.kompox.dev/id: /ws/bench/prv/aks1/cls/prod/app/{name}}}}}
spec:
  compose: file:compose.yml
  volumes: [{{name: data, size: 10Gi}}]
  ingress:
    rules: [{{name: web, port: 8080, hosts: [{name}.example.com]}}]
"
            )
            .into_bytes(),
        ));
        files.push((
            format!("apps/{name}/compose.yml"),
            format!(
                "services:
  web:
    image: ghcr.io/example/web:{i}
    ports: [\"8080:80\"]
    env_file: web.env
    environment:
      DB_HOST: db
      CACHE_HOST: cache
    volumes: [\"./data/web:/srv/data\"]
    depends_on:
      db: {{condition: service_healthy}}
  db:
    image: postgres:16
    environment: {{POSTGRES_DB: app}}
    volumes: [\"data/db:/var/lib/postgresql/data\"]
    healthcheck:
      test: [\"CMD-SHELL\", \"pg_isready\"]
      interval: 10s
  cache:
    image: redis:7
    command: redis-server --save ''
"
            )
            .into_bytes(),
        ));
        files.push((
            format!("apps/{name}/web.env"),
            format!("SECRET_KEY=k{i}\nMODE=prod\n").into_bytes(),
        ));
    }
    FileTree::from_files(files.iter().map(|(p, b)| (p.as_str(), b.clone())))
}

/// Load + convert + plan, the whole pure pipeline.
#[allow(dead_code)]
pub fn load_convert_plan(tree: &FileTree, live: &kompox::live::Live) -> kompox::plan::Plan {
    let project =
        kompox::kom::load_project(tree, &kompox::kom::ProjectEnv::default()).expect("load");
    let disks = assigned_disks(live);
    let opts = kompox::plan::PlanOptions {
        workspaces: vec!["bench".into()],
        ..Default::default()
    };
    let mut planner = kompox::plan::Planner::new(live, opts);
    kompox::desired::for_each_app(&project, tree, &[], &disks, |outcome| {
        planner.add(&outcome);
    });
    planner.finish()
}

/// A live state that matches the generated repository: every object, the
/// inventories and one assigned disk per app.
#[allow(dead_code)]
pub fn live_for(tree: &FileTree) -> kompox::live::Live {
    use kompox::live::{Live, LiveObject, inventory_object};
    let project =
        kompox::kom::load_project(tree, &kompox::kom::ProjectEnv::default()).expect("load");
    let mut live = Live::empty();
    live.disks = assigned_live_disks(&project);
    let desired = kompox::desired::build(&project, tree, &[], &assigned_disks(&live));
    for outcome in &desired.apps {
        let d = outcome.result.as_ref().expect("convert");
        live.objects
            .extend(d.objects.iter().map(LiveObject::from_object));
        live.objects
            .push(LiveObject::from_object(&inventory_object(d)));
    }
    live
}

#[allow(dead_code)]
fn assigned_disks(live: &kompox::live::Live) -> kompox::desired::AssignedDisks {
    // The benchmark repository's apps are all under /ws/bench/prv/aks1/cls/prod.
    let mut out = kompox::desired::AssignedDisks::new();
    for i in 0.. {
        let name = format!("app{i:04}");
        let h = kompox::hash::AppHashes::new("bench", "aks1", "prod", &name);
        let Some(d) = live.disks.iter().find(|d| d.app_id_hash == h.app_id) else {
            break;
        };
        let id: kompox::model::ResourceId = format!("/ws/bench/prv/aks1/cls/prod/app/{name}")
            .parse()
            .expect("id");
        out.insert(
            id,
            std::collections::BTreeMap::from([(
                d.volume.clone(),
                kompox::convert::BoundDisk {
                    name: d.name.clone(),
                    handle: d.handle.clone(),
                    size_bytes: d.size,
                    zone: d.zone.clone(),
                },
            )]),
        );
    }
    out
}

/// The live state as the `--live` file would hold it.
#[allow(dead_code)]
pub fn live_json(live: &kompox::live::Live) -> String {
    let objects: Vec<serde_json::Value> = live.objects.iter().map(|o| o.body()).collect();
    serde_json::json!({
        "objects": {"apiVersion": "v1", "kind": "List", "items": objects},
        "disks": live.disks,
        "snapshots": live.snapshots,
    })
    .to_string()
}

/// Streams the live file of `live_for` app by app, so the writer never
/// holds more than one app's objects; returns the bytes written.
#[allow(dead_code)]
pub fn write_live_json(tree: &FileTree, mut w: impl std::io::Write) -> usize {
    use kompox::live::{Live, inventory_object};
    let project =
        kompox::kom::load_project(tree, &kompox::kom::ProjectEnv::default()).expect("load");
    let mut disks_live = Live::empty();
    disks_live.disks = assigned_live_disks(&project);
    let mut out = String::from("{\"objects\":{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[");
    let mut first = true;
    let mut written = 0;
    kompox::desired::for_each_app(
        &project,
        tree,
        &[],
        &assigned_disks(&disks_live),
        |outcome| {
            let d = outcome.result.as_ref().expect("convert");
            for body in d
                .objects
                .iter()
                .map(|o| &o.body)
                .chain(std::iter::once(&inventory_object(d).body))
            {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&body.to_string());
            }
            w.write_all(out.as_bytes()).unwrap();
            written += out.len();
            out.clear();
        },
    );
    out.push_str("]},\"disks\":");
    out.push_str(&serde_json::to_string(&disks_live.disks).unwrap());
    out.push_str(",\"snapshots\":[]}");
    w.write_all(out.as_bytes()).unwrap();
    w.flush().unwrap();
    written + out.len()
}

/// One assigned 10 GiB disk for the volume `data` of every App.
#[allow(dead_code)]
fn assigned_live_disks(project: &kompox::kom::Project) -> Vec<kompox::live::LiveDisk> {
    project
        .kom
        .apps
        .iter()
        .map(|app| kompox::live::LiveDisk {
            name: "data-1".into(),
            volume: "data".into(),
            app_id_hash: kompox::hash::AppHashes::new("bench", "aks1", "prod", &app.meta.name)
                .app_id,
            assigned: true,
            size: 10 << 30,
            zone: None,
            options: Default::default(),
            handle: format!(
                "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Compute/disks/{}-data-1",
                app.meta.name
            ),
            created_at: None,
            updated_at: None,
        })
        .collect()
}
