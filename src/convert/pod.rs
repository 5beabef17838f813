//! The Deployment: one pod, one container per compose service
//! (reference §4.3, DECISIONS 6).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use super::files::FileObjects;
use super::volumes::{Mount, VolumePlan, resolve_mounts};
use super::{Cx, Object};
use crate::hash::{HASH_LEN, short_hash};
use crate::model::compose::{DependsCondition, HealthTest, Healthcheck, Resources, Service};

/// Fixed directory where the init container mounts volumes to create sub-paths.
const INIT_DIR: &str = "/kompox-init";
const INIT_IMAGE: &str = "busybox:1.36";

/// How a compose service runs in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Main,
    /// Native sidecar (init container with `restartPolicy: Always`): started
    /// first and waited for through its startup probe — `service_healthy`.
    Sidecar,
    /// Plain init container run to completion — `service_completed_successfully`.
    Init,
}

pub fn build(cx: &mut Cx<'_, '_>, volumes: &VolumePlan, files: &FileObjects) -> Object {
    let n = cx.names;
    let app = cx.input.ctx.app;
    let services = &cx.input.compose.services;
    let roles = roles(cx);
    let order = start_order(cx, &roles);

    let mut subpaths: BTreeSet<(String, String)> = BTreeSet::new();
    let mut used_cfg: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    let mut used_sec: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    let mut tmpfs_volumes: Vec<Json> = Vec::new();
    let mut containers: BTreeMap<String, Json> = BTreeMap::new();
    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    let mut host_aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut grace: Option<i64> = None;

    for svc in services {
        let mounts = resolve_mounts(cx, svc, &mut subpaths);
        let mut volume_mounts = file_mounts(cx, svc, files, &mut used_cfg, &mut used_sec);
        let file_targets: BTreeSet<String> = volume_mounts
            .iter()
            .filter_map(|m| m["mountPath"].as_str().map(str::to_string))
            .collect();
        for m in mounts {
            if file_targets.contains(&m.mount_path) {
                cx.warn(
                    "mount-target-conflict",
                    m.span,
                    format!(
                        "volume mount on `{}` in service `{}` is dropped: a config or secret uses the same target",
                        m.mount_path, svc.name
                    ),
                );
                continue;
            }
            volume_mounts.push(pvc_mount(&m));
        }
        for (i, t) in svc.tmpfs.iter().enumerate() {
            let mut name = format!("tmpfs-{}-{i}", svc.name);
            if name.len() > 63 {
                name = format!(
                    "tmpfs-{}",
                    short_hash(&format!("{}:{}", svc.name, t.target), HASH_LEN)
                );
            }
            let mut empty_dir = json!({"medium": "Memory"});
            if let Some(size) = t.size_bytes {
                empty_dir["sizeLimit"] = json!(crate::compose::memory_quantity(size));
            }
            tmpfs_volumes.push(json!({"name": name, "emptyDir": empty_dir}));
            volume_mounts.push(json!({"name": name, "mountPath": t.target}));
        }
        volume_mounts.sort_by(|a, b| a["mountPath"].as_str().cmp(&b["mountPath"].as_str()));
        let mut c = container(cx, svc, files, volume_mounts, roles[&svc.name]);
        if roles[&svc.name] == Role::Sidecar {
            c["restartPolicy"] = json!("Always");
        }
        containers.insert(svc.name.clone(), c);
        for (k, v) in &svc.annotations {
            if let Some(prev) = annotations.get(k)
                && prev != v
            {
                cx.warn(
                    "annotation-conflict",
                    svc.span,
                    format!("annotation `{k}` of service `{}` differs from another service's; the first (by name) wins", svc.name),
                );
                continue;
            }
            annotations.insert(k.clone(), v.clone());
        }
        for (host, ip) in &svc.extra_hosts {
            let hosts = host_aliases.entry(ip.clone()).or_default();
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
        if let Some(g) = svc.stop_grace_period_secs {
            grace = Some(grace.map_or(g, |cur: i64| cur.max(g)));
        }
    }

    // Pod volumes: every app volume's claim, then configs, then secrets,
    // then memory emptyDirs — each group sorted.
    let mut pod_volumes: Vec<Json> = app
        .volumes
        .iter()
        .filter_map(|v| {
            let claim = volumes.claims.get(&v.name)?;
            Some(json!({"name": v.name, "persistentVolumeClaim": {"claimName": claim}}))
        })
        .collect();
    for (name, items) in &used_cfg {
        let fo = &files.configs[name];
        pod_volumes.push(json!({"name": format!("cfg-{name}"), "configMap": {"name": fo.object_name, "items": items}}));
    }
    for (name, items) in &used_sec {
        let fo = &files.secrets[name];
        pod_volumes.push(json!({"name": format!("sec-{name}"), "secret": {"secretName": fo.object_name, "items": items}}));
    }
    pod_volumes.extend(tmpfs_volumes);

    let mut init_containers = Vec::new();
    if !subpaths.is_empty() {
        init_containers.push(subpath_init(&subpaths));
    }
    for name in &order {
        if let Some(c) = containers.remove(name) {
            init_containers.push(c);
        }
    }
    let main_containers: Vec<Json> = containers.into_values().collect();

    let hash = pod_content_hash(&init_containers, &main_containers, &pod_volumes, files);
    annotations.insert("kompox.dev/compose-content-hash".into(), hash);

    let mut pod_spec = Map::new();
    if let Some(aff) = scheduling(cx, &mut pod_spec) {
        pod_spec.insert("affinity".into(), aff);
    }
    pod_spec.insert("containers".into(), Json::Array(main_containers));
    if !host_aliases.is_empty() {
        pod_spec.insert(
            "hostAliases".into(),
            Json::Array(
                host_aliases
                    .into_iter()
                    .map(|(ip, hosts)| json!({"ip": ip, "hostnames": hosts}))
                    .collect(),
            ),
        );
    }
    if !init_containers.is_empty() {
        pod_spec.insert("initContainers".into(), Json::Array(init_containers));
    }
    if let Some(g) = grace {
        pod_spec.insert("terminationGracePeriodSeconds".into(), json!(g));
    }
    if !pod_volumes.is_empty() {
        pod_spec.insert("volumes".into(), Json::Array(pod_volumes));
    }

    Object::new(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": n.meta(&n.workload, n.component_labels()),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": n.selector()},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": n.component_labels(), "annotations": annotations},
                "spec": Json::Object(pod_spec),
            },
        },
    }))
}

/// Decides which services become init containers or native sidecars from
/// `depends_on` conditions.
fn roles(cx: &mut Cx<'_, '_>) -> BTreeMap<String, Role> {
    let services = &cx.input.compose.services;
    let mut roles: BTreeMap<String, Role> = services
        .iter()
        .map(|s| (s.name.clone(), Role::Main))
        .collect();
    for svc in services {
        for dep in &svc.depends_on {
            let Some(target) = services.iter().find(|s| s.name == dep.service) else {
                cx.error(
                    "compose-depends-on",
                    dep.span,
                    format!("service `{}` depends on `{}`, which is not a deployed service", svc.name, dep.service),
                    "fix the name, or remove the dependency (services with profiles are not deployed)",
                );
                continue;
            };
            match dep.condition {
                DependsCondition::Started => {}
                DependsCondition::CompletedSuccessfully => {
                    roles.insert(target.name.clone(), Role::Init);
                }
                DependsCondition::Healthy => {
                    let has_check = target
                        .healthcheck
                        .as_ref()
                        .is_some_and(|h| h.test.is_some());
                    if !has_check {
                        cx.warn(
                            "depends-on-unordered",
                            dep.span,
                            format!(
                                "`{}` waits for `{}` to be healthy, but `{}` has no healthcheck; both start together",
                                svc.name, dep.service, dep.service
                            ),
                        );
                    } else if roles[&target.name] != Role::Init {
                        roles.insert(target.name.clone(), Role::Sidecar);
                    }
                }
            }
        }
    }
    roles
}

/// Topological order of the init/sidecar services (ties by name).
fn start_order(cx: &mut Cx<'_, '_>, roles: &BTreeMap<String, Role>) -> Vec<String> {
    let services = &cx.input.compose.services;
    let early: Vec<&Service> = services
        .iter()
        .filter(|s| roles[&s.name] != Role::Main)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut remaining: Vec<&Service> = early.clone();
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|s| {
            s.depends_on
                .iter()
                .filter(|d| roles.get(&d.service).is_some_and(|r| *r != Role::Main))
                .all(|d| done.contains(&d.service))
        });
        match ready {
            Some(i) => done.push(remaining.remove(i).name.clone()),
            None => {
                let names: Vec<&str> = remaining.iter().map(|s| s.name.as_str()).collect();
                let span = remaining[0].span;
                cx.error(
                    "compose-depends-on",
                    span,
                    format!("depends_on has a cycle among {}", names.join(", ")),
                    "remove one of the dependencies",
                );
                break;
            }
        }
    }
    done
}

fn container(
    cx: &mut Cx<'_, '_>,
    svc: &Service,
    files: &FileObjects,
    mounts: Vec<Json>,
    role: Role,
) -> Json {
    let mut c = Map::new();
    c.insert("name".into(), json!(svc.name));
    c.insert("image".into(), json!(svc.image.clone().unwrap_or_default()));
    if let Some(ep) = &svc.entrypoint {
        c.insert("command".into(), json!(ep));
    }
    if let Some(cmd) = &svc.command {
        c.insert("args".into(), json!(cmd));
    }
    for (k, _) in svc.environment.iter().filter(|(_, v)| v.is_none()) {
        cx.warn(
            "environment-unset",
            svc.span,
            format!(
                "`{k}` in service `{}` has no value and is dropped: Kompox never reads the host environment (set it in .env or spec.settings and write `{k}: ${{{k}}}`)",
                svc.name
            ),
        );
    }
    let env: Vec<Json> = svc
        .environment
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| json!({"name": k, "value": v})))
        .collect();
    if !env.is_empty() {
        c.insert("env".into(), Json::Array(env));
    }
    let base = files
        .env_secrets
        .get(&svc.name)
        .cloned()
        .unwrap_or_else(|| format!("{}-{}-base", cx.names.workload, svc.name));
    c.insert(
        "envFrom".into(),
        json!([
            {"secretRef": {"name": base, "optional": true}},
            {"secretRef": {"name": format!("{}-{}-override", cx.names.workload, svc.name), "optional": true}},
        ]),
    );
    if let Some(p) = &svc.pull_policy {
        c.insert("imagePullPolicy".into(), json!(p));
    }
    let mut ports: Vec<(u16, String)> = svc
        .ports
        .iter()
        .map(|p| (p.target, p.protocol.to_ascii_uppercase()))
        .collect();
    ports.sort();
    ports.dedup();
    if !ports.is_empty() {
        c.insert(
            "ports".into(),
            Json::Array(
                ports
                    .into_iter()
                    .map(|(p, proto)| json!({"containerPort": p, "protocol": proto}))
                    .collect(),
            ),
        );
    }
    if role != Role::Init
        && let Some(hc) = &svc.healthcheck
        && let Some(test) = &hc.test
    {
        let probe = probe(test, hc);
        c.insert("readinessProbe".into(), probe.clone());
        let period = hc.interval_secs.unwrap_or(30).max(1);
        let start_period = hc.start_period_secs.unwrap_or(0).max(0);
        let start_failures = hc.retries.unwrap_or(3).max(1) + (start_period + period - 1) / period;
        let mut startup = probe.clone();
        startup["failureThreshold"] = json!(start_failures);
        c.insert("startupProbe".into(), startup);
        if svc.x_kompox.liveness {
            c.insert("livenessProbe".into(), probe);
        }
    }
    if let Some(r) = resources(&svc.resources, &svc.x_kompox.resources) {
        c.insert("resources".into(), r);
    }
    if let Some(sc) = security_context(cx, svc) {
        c.insert("securityContext".into(), sc);
    }
    if svc.stdin_open {
        c.insert("stdin".into(), json!(true));
    }
    if svc.tty {
        c.insert("tty".into(), json!(true));
    }
    if !mounts.is_empty() {
        c.insert("volumeMounts".into(), Json::Array(mounts));
    }
    if let Some(wd) = &svc.working_dir {
        c.insert("workingDir".into(), json!(wd));
    }
    Json::Object(c)
}

/// Compose healthcheck → a probe; compose's defaults are 30s/30s/3.
fn probe(test: &HealthTest, hc: &Healthcheck) -> Json {
    let command = match test {
        HealthTest::Exec(args) => json!(args),
        HealthTest::Shell(cmd) => json!(["/bin/sh", "-c", cmd]),
    };
    json!({
        "exec": {"command": command},
        "periodSeconds": hc.interval_secs.unwrap_or(30).max(1),
        "timeoutSeconds": hc.timeout_secs.unwrap_or(30).max(1),
        "failureThreshold": hc.retries.unwrap_or(3).max(1),
    })
}

fn resources(compose: &Resources, x: &Resources) -> Option<Json> {
    let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
    let mut requests = Map::new();
    let mut limits = Map::new();
    if let Some(v) = pick(&compose.requests_cpu, &x.requests_cpu) {
        requests.insert("cpu".into(), json!(v));
    }
    if let Some(v) = pick(&compose.requests_memory, &x.requests_memory) {
        requests.insert("memory".into(), json!(v));
    }
    if let Some(v) = pick(&compose.limits_cpu, &x.limits_cpu) {
        limits.insert("cpu".into(), json!(v));
    }
    if let Some(v) = pick(&compose.limits_memory, &x.limits_memory) {
        limits.insert("memory".into(), json!(v));
    }
    if requests.is_empty() && limits.is_empty() {
        return None;
    }
    let mut r = Map::new();
    if !limits.is_empty() {
        r.insert("limits".into(), Json::Object(limits));
    }
    if !requests.is_empty() {
        r.insert("requests".into(), Json::Object(requests));
    }
    Some(Json::Object(r))
}

fn security_context(cx: &mut Cx<'_, '_>, svc: &Service) -> Option<Json> {
    let mut sc = Map::new();
    if let Some(user) = &svc.user {
        let (u, g) = user
            .split_once(':')
            .map_or((user.as_str(), None), |(u, g)| (u, Some(g)));
        match u.parse::<i64>() {
            Ok(uid) => {
                sc.insert("runAsUser".into(), json!(uid));
                match g.map(str::parse::<i64>) {
                    Some(Ok(gid)) => {
                        sc.insert("runAsGroup".into(), json!(gid));
                    }
                    Some(Err(_)) => cx.warn(
                        "user-not-numeric",
                        svc.span,
                        format!("group `{}` of service `{}` is not numeric and is ignored", g.unwrap_or(""), svc.name),
                    ),
                    None => {}
                }
            }
            Err(_) => cx.warn(
                "user-not-numeric",
                svc.span,
                format!(
                    "user `{user}` of service `{}` is not a numeric uid; Kubernetes needs numbers, so the image's default user runs",
                    svc.name
                ),
            ),
        }
    }
    let caps = |list: &[String]| -> Vec<String> {
        let mut v: Vec<String> = list
            .iter()
            .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    if !svc.cap_add.is_empty() || !svc.cap_drop.is_empty() {
        let mut c = Map::new();
        if !svc.cap_add.is_empty() {
            c.insert("add".into(), json!(caps(&svc.cap_add)));
        }
        if !svc.cap_drop.is_empty() {
            c.insert("drop".into(), json!(caps(&svc.cap_drop)));
        }
        sc.insert("capabilities".into(), Json::Object(c));
    }
    if svc.privileged {
        sc.insert("privileged".into(), json!(true));
    }
    if svc.read_only {
        sc.insert("readOnlyRootFilesystem".into(), json!(true));
    }
    (!sc.is_empty()).then_some(Json::Object(sc))
}

fn pvc_mount(m: &Mount) -> Json {
    let mut j = json!({"name": m.volume, "mountPath": m.mount_path});
    if let Some(s) = &m.sub_path {
        j["subPath"] = json!(s);
    }
    if m.read_only {
        j["readOnly"] = json!(true);
    }
    j
}

/// Config and secret mounts of a service; records which pod volumes (and
/// items) are needed.
fn file_mounts(
    cx: &mut Cx<'_, '_>,
    svc: &Service,
    files: &FileObjects,
    used_cfg: &mut BTreeMap<String, Vec<Json>>,
    used_sec: &mut BTreeMap<String, Vec<Json>>,
) -> Vec<Json> {
    let mut out: Vec<Json> = Vec::new();
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    let compose = cx.input.compose;
    for (is_secret, refs) in [(false, &svc.configs), (true, &svc.secrets)] {
        for r in refs {
            let defs = if is_secret {
                &compose.secrets
            } else {
                &compose.configs
            };
            let what = if is_secret { "secret" } else { "config" };
            if !defs.contains_key(&r.source) {
                cx.error(
                    "compose-file-ref",
                    r.span,
                    format!(
                        "service `{}` uses {what} `{}`, which is not defined at the top level",
                        svc.name, r.source
                    ),
                    "add it under the top-level `configs:`/`secrets:`",
                );
                continue;
            }
            let objects = if is_secret {
                &files.secrets
            } else {
                &files.configs
            };
            // External (passthrough) definitions have no object and no mount.
            let Some(fo) = objects.get(&r.source) else {
                continue;
            };
            let target = r.target.clone().unwrap_or_else(|| {
                if is_secret {
                    format!("/run/secrets/{}", r.source)
                } else {
                    format!("/{}", r.source)
                }
            });
            let target = if target.starts_with('/') {
                target
            } else if is_secret {
                format!("/run/secrets/{target}")
            } else {
                format!("/{target}")
            };
            if let Some(prev) = targets.insert(target.clone(), r.source.clone()) {
                cx.error(
                    "mount-target-conflict",
                    r.span,
                    format!("target conflicts in service `{}`: `{prev}` and `{}` both mount on `{target}`", svc.name, r.source),
                    "give each config/secret its own target",
                );
                continue;
            }
            let prefix = if is_secret { "sec" } else { "cfg" };
            out.push(json!({
                "name": format!("{prefix}-{}", r.source),
                "mountPath": target,
                "subPath": fo.key,
                "readOnly": true,
            }));
            let used = if is_secret {
                &mut *used_sec
            } else {
                &mut *used_cfg
            };
            let items = used.entry(r.source.clone()).or_default();
            let mut item = json!({"key": fo.key, "path": fo.key});
            if let Some(mode) = r.mode {
                item["mode"] = json!(mode);
            }
            if items.is_empty() {
                items.push(item);
            } else if items[0] != item {
                cx.warn(
                    "file-mode-conflict",
                    r.span,
                    format!("{what} `{}` is mounted with different modes; the first service's mode is used", r.source),
                );
            }
        }
    }
    out
}

fn subpath_init(subpaths: &BTreeSet<(String, String)>) -> Json {
    let lines: Vec<String> = subpaths
        .iter()
        .map(|(v, s)| format!("mkdir -m 1777 -p {INIT_DIR}/{v}/{s}"))
        .collect();
    let vols: BTreeSet<&String> = subpaths.iter().map(|(v, _)| v).collect();
    let mounts: Vec<Json> = vols
        .into_iter()
        .map(|v| json!({"name": v, "mountPath": format!("{INIT_DIR}/{v}")}))
        .collect();
    json!({
        "name": "init-volume-subpaths",
        "image": INIT_IMAGE,
        "command": ["sh", "-c", lines.join("\n")],
        "volumeMounts": mounts,
    })
}

/// Node selectors/affinity from the App's placement (reference §4.3).
fn scheduling(cx: &mut Cx<'_, '_>, pod_spec: &mut Map<String, Json>) -> Option<Json> {
    let d = &cx.input.ctx.app.deployment;
    let mut selector = BTreeMap::new();
    if d.pools.is_empty() {
        selector.insert(
            "kompox.dev/node-pool",
            d.pool.clone().unwrap_or_else(|| "user".into()),
        );
    }
    if let (Some(z), true) = (&d.zone, d.zones.is_empty()) {
        selector.insert("kompox.dev/node-zone", z.clone());
    }
    pod_spec.insert("nodeSelector".into(), json!(selector));
    let mut exprs = Vec::new();
    if !d.pools.is_empty() {
        exprs.push(json!({"key": "kompox.dev/node-pool", "operator": "In", "values": d.pools}));
    }
    if !d.zones.is_empty() {
        exprs.push(json!({"key": "kompox.dev/node-zone", "operator": "In", "values": d.zones}));
    }
    (!exprs.is_empty()).then(|| {
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": exprs}],
        }}})
    })
}

/// The pod template's rollout hash (reference §4.10), from the desired
/// Secrets/ConfigMaps: env Secrets of the containers (sorted by name), then
/// the pod's secret/configMap volumes. Objects Kompox does not generate
/// (the CLI's `-override` Secrets) count as empty.
fn pod_content_hash(init: &[Json], main: &[Json], volumes: &[Json], files: &FileObjects) -> String {
    let mut containers: Vec<&Json> = init.iter().chain(main.iter()).collect();
    containers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let lookup = |name: Option<&str>| {
        name.and_then(|n| files.hashes.get(n))
            .cloned()
            .unwrap_or_default()
    };
    let mut concat = String::new();
    for c in containers {
        for ef in c["envFrom"].as_array().into_iter().flatten() {
            concat.push_str(&lookup(
                ef.pointer("/secretRef/name").and_then(Json::as_str),
            ));
        }
    }
    for v in volumes {
        if let Some(s) = v.pointer("/secret/secretName").and_then(Json::as_str) {
            concat.push_str(&lookup(Some(s)));
        } else if let Some(c) = v.pointer("/configMap/name").and_then(Json::as_str) {
            concat.push_str(&lookup(Some(c)));
        }
    }
    short_hash(&concat, HASH_LEN)
}
