//! `plan` / `apply` / `app deploy` / `app destroy` against the real
//! testbed control plane (tests/support/testbed.rs): server-side apply,
//! zero-write re-apply (audit log), inventory prune, drift, other managers'
//! fields, immutable changes, foreign inventories, adoption, and every
//! golden manifest accepted by the API server. Each test uses its own
//! workspace, so its namespaces are its own.

#[path = "support/testbed.rs"]
mod testbed;

#[path = "common/golden.rs"]
mod golden;

#[path = "common/repo.rs"]
mod repo;

use std::path::Path;
use std::time::Duration;

use repo::{Repo, WEB, write};
use serde_json::{Value, json};
use testbed::{Testbed, testbed};

const WAIT: Duration = Duration::from_secs(120);

/// A claim named `data` made by someone else (not Kompox) in `ns`.
fn someones_claim(tb: &Testbed, ns: &str) {
    tb.post_json(
        &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
        &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                         "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .unwrap();
}

fn get(tb: &Testbed, path: &str) -> Option<Value> {
    tb.get_opt(path).unwrap()
}

#[test]
fn first_apply_runs_the_pod_in_the_zone_and_a_second_apply_writes_nothing() {
    let tb = testbed();
    let repo = Repo::new(tb, "first");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    let out = repo.apply();
    assert!(out.contains("is available"), "{out}");
    let pod = tb.wait_for("a Running pod", WAIT, || {
        let pods = get(tb, &format!("/api/v1/namespaces/{ns}/pods"))?;
        pods["items"]
            .as_array()?
            .iter()
            .find(|p| p["status"]["phase"] == "Running")
            .cloned()
    });
    let node = pod["spec"]["nodeName"].as_str().unwrap();
    assert!(
        node.starts_with("node-b"),
        "scheduled on {node}, not in zone-b"
    );

    let (code, text) = repo.plan();
    assert_eq!(code, 0, "second plan must be empty:\n{text}");
    assert!(text.contains("No changes."), "{text}");

    let mark = tb.audit_mark();
    let out = repo.apply();
    assert!(!out.contains("Apply complete"), "nothing to apply: {out}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        tb.test_user_writes_in(mark, &ns),
        Vec::<String>::new(),
        "a no-op apply wrote"
    );
}

/// The observation reads lists page by page (500 objects a page). Here the
/// App's NetworkPolicy comes after 520 other Kompox-labelled ones in the
/// API server's order (their namespace sorts first), so it is on the
/// second page: an observation that stopped after one page would not see
/// it and would plan to create it again.
#[test]
fn objects_beyond_the_first_page_of_a_list_are_observed() {
    let tb = testbed();
    let filler = format!("a-{}", tb.unique_name("page"));
    tb.post_json(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": filler}}),
    )
    .unwrap();
    for i in 0..520 {
        tb.post_json(
            &format!("/apis/networking.k8s.io/v1/namespaces/{filler}/networkpolicies"),
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": format!("np-{i:04}"),
                                 "labels": {"app.kubernetes.io/managed-by": "kompox"}},
                    "spec": {"podSelector": {}}}),
        )
        .unwrap();
    }
    let repo = Repo::new(tb, "page");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    assert!(filler < ns, "{filler} sorts before {ns}");
    let out = repo.apply();
    assert!(out.contains("Apply complete"), "{out}");
    let (code, text) = repo.plan();
    assert_eq!(
        code, 0,
        "the App's NetworkPolicy on page 2 was observed:\n{text}"
    );
    assert!(text.contains("No changes."), "{text}");

    // A change is an update of what was seen on page 2, nothing created.
    repo.app(
        "web",
        "",
        &WEB.replace("GREETING: hello", "GREETING: paged"),
    );
    let (code, text) = repo.plan();
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("0 to create"), "nothing recreated: {text}");
}

#[test]
fn removing_a_service_prunes_it() {
    let tb = testbed();
    let repo = Repo::new(tb, "prunesvc");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    repo.apply();
    assert!(get(tb, &format!("/api/v1/namespaces/{ns}/services/cache")).is_some());
    repo.app("web", "", "services:\n  web:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n    environment: {GREETING: hello}\n");
    let (code, text) = repo.plan();
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("- Service") && text.contains("/cache"),
        "{text}"
    );
    repo.apply();
    assert!(
        get(tb, &format!("/api/v1/namespaces/{ns}/services/cache")).is_none(),
        "headless Service pruned"
    );
    let dep = get(
        tb,
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/web-app"),
    )
    .unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let inv = get(
        tb,
        &format!("/api/v1/namespaces/{ns}/configmaps/kompox-inventory"),
    )
    .unwrap();
    assert!(
        !inv["data"]["objects"]
            .as_str()
            .unwrap()
            .contains("/cache\n"),
        "inventory narrowed"
    );
}

#[test]
fn removing_an_app_prunes_its_stateless_objects_and_keeps_a_namespace_with_a_claim() {
    let tb = testbed();
    let repo = Repo::new(tb, "rmapp");
    repo.app("keep", "", WEB);
    repo.app("gone", "", WEB);
    let gone_ns = repo.namespace("gone");
    repo.apply();
    // Someone's claim in the app's namespace: the namespace must survive.
    someones_claim(tb, &gone_ns);
    repo.remove_app("gone");
    let (code, text) = repo.plan();
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("removed from Git"), "{text}");
    assert!(
        text.contains("kept: holds a PersistentVolumeClaim"),
        "{text}"
    );
    repo.apply();
    assert!(
        get(
            tb,
            &format!("/apis/apps/v1/namespaces/{gone_ns}/deployments/gone-app")
        )
        .is_none()
    );
    assert!(get(tb, &format!("/api/v1/namespaces/{gone_ns}/services/web")).is_none());
    let ns = get(tb, &format!("/api/v1/namespaces/{gone_ns}")).expect("namespace kept");
    assert!(
        ns["metadata"]["deletionTimestamp"].is_null(),
        "namespace is not being deleted"
    );
    assert!(
        get(
            tb,
            &format!("/api/v1/namespaces/{gone_ns}/persistentvolumeclaims/data")
        )
        .is_some()
    );
    // The other app is untouched.
    assert!(
        get(
            tb,
            &format!(
                "/apis/apps/v1/namespaces/{}/deployments/keep-app",
                repo.namespace("keep")
            )
        )
        .is_some()
    );
}

#[test]
fn a_live_edit_is_drift_and_is_restored_while_another_managers_field_survives() {
    let tb = testbed();
    let repo = Repo::new(tb, "drift");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    repo.apply();
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/web-app");
    // A person edits the image (like `kubectl edit`) and adds an annotation.
    tb.apply(
        &path,
        "kubectl-edit",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web-app", "namespace": ns, "annotations": {"team.example.com/owner": "ops"}},
                "spec": {"selector": {"matchLabels": {"app": "web-app"}},
                         "template": {"metadata": {"labels": {"app": "web-app"}},
                                      "spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}}),
    )
    .unwrap();
    let (code, text) = repo.plan();
    assert_eq!(code, 2, "drift must show:\n{text}");
    assert!(
        text.contains("-        image: nginx:1.26") && text.contains("+        image: nginx:1.27"),
        "{text}"
    );
    repo.apply();
    let dep = get(tb, &path).unwrap();
    let web = dep["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web")
        .unwrap()
        .clone();
    assert_eq!(web["image"], "nginx:1.27", "drift restored");
    assert_eq!(
        dep["metadata"]["annotations"]["team.example.com/owner"], "ops",
        "another manager's field survives"
    );
    let (code, text) = repo.plan();
    assert_eq!(code, 0, "converged:\n{text}");
}

#[test]
fn an_immutable_selector_change_is_planned_as_replace() {
    let tb = testbed();
    let repo = Repo::new(tb, "immut");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    // A Deployment with our name but another selector, made by someone else.
    tb.apply(
        &format!("/api/v1/namespaces/{ns}"),
        "other",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .unwrap();
    tb.apply(
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/web-app"),
        "other",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web-app", "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "kompox"}},
                "spec": {"selector": {"matchLabels": {"app": "web-app", "tier": "old"}},
                         "template": {"metadata": {"labels": {"app": "web-app", "tier": "old"}},
                                      "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}}),
    )
    .unwrap();
    let (code, text) = repo.plan();
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("Deployment") && text.contains("replace"),
        "{text}"
    );
    assert!(text.contains("DISRUPTIVE"), "{text}");
    repo.apply();
    let dep = get(
        tb,
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/web-app"),
    )
    .unwrap();
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"],
        json!({"app": "web-app"})
    );
}

#[test]
fn an_inventory_of_another_workspace_is_never_pruned() {
    let tb = testbed();
    let repo = Repo::new(tb, "foreign");
    repo.app("web", "", WEB);
    repo.apply();
    // Another workspace's app, with an inventory naming a Service.
    let other_ns = tb.unique_name("other");
    tb.apply(
        &format!("/api/v1/namespaces/{other_ns}"),
        "other",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other_ns}}),
    )
    .unwrap();
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": other_ns, "labels": {"app.kubernetes.io/managed-by": "kompox"}},
        "spec": {"clusterIP": "None", "selector": {"app": "x"}}});
    tb.apply(
        &format!("/api/v1/namespaces/{other_ns}/services/db"),
        "other",
        &svc,
    )
    .unwrap();
    tb.apply(
        &format!("/api/v1/namespaces/{other_ns}/configmaps/kompox-inventory"),
        "other",
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kompox-inventory", "namespace": other_ns,
                             "labels": {"app.kubernetes.io/managed-by": "kompox", "kompox.dev/inventory": "true"},
                             "annotations": {"kompox.dev/app-id": "/ws/elsewhere/prv/p/cls/c/app/db"}},
                "data": {"objects": format!("v1/Service/{other_ns}/db\n")}}),
    )
    .unwrap();
    let (code, text) = repo.plan();
    assert_eq!(code, 0, "{text}");
    repo.apply();
    assert!(get(tb, &format!("/api/v1/namespaces/{other_ns}/services/db")).is_some());
}

#[test]
fn objects_made_by_the_original_are_adopted_without_recreation() {
    let tb = testbed();
    let repo = Repo::new(tb, "adopt");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    // The original Kompox's objects: same names and labels, another manager.
    let out = repo.run(&[
        "--app-name",
        "web",
        "app",
        "validate",
        "--out-manifest",
        "-",
    ]);
    let manifest = String::from_utf8_lossy(&out.stdout).to_string();
    let docs: Vec<Value> = manifest
        .split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| !d.trim().is_empty())
        .map(yaml_to_json)
        .collect();
    let ns_obj = docs.iter().find(|d| d["kind"] == "Namespace").unwrap();
    tb.apply(&format!("/api/v1/namespaces/{ns}"), "original", ns_obj)
        .unwrap();
    let svc = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "web-app")
        .unwrap();
    let created = tb
        .apply(
            &format!("/api/v1/namespaces/{ns}/services/web-app"),
            "original",
            svc,
        )
        .unwrap();
    let uid = created["metadata"]["uid"].clone();
    repo.apply();
    let svc = get(tb, &format!("/api/v1/namespaces/{ns}/services/web-app")).unwrap();
    assert_eq!(svc["metadata"]["uid"], uid, "adopted, not recreated");
    let managers: Vec<&str> = svc["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kompoxops"), "{managers:?}");
}

#[test]
fn app_deploy_and_app_destroy() {
    let tb = testbed();
    let repo = Repo::new(tb, "deploy");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    let out = repo.run(&["--app-name", "web", "app", "deploy", "--timeout", "120"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        get(
            tb,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments/web-app")
        )
        .is_some()
    );
    // A claim in the namespace: --delete-namespace is refused without --allow-destroy.
    someones_claim(tb, &ns);
    let out = repo.run(&["--app-name", "web", "app", "destroy", "--delete-namespace"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("holds a PersistentVolumeClaim"), "{err}");
    assert!(
        get(
            tb,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments/web-app")
        )
        .is_none(),
        "stateless objects deleted"
    );
    assert!(
        get(
            tb,
            &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
        )
        .is_some(),
        "claim kept"
    );
    let nsobj = get(tb, &format!("/api/v1/namespaces/{ns}")).unwrap();
    assert!(nsobj["metadata"]["deletionTimestamp"].is_null());
}

/// Our output is valid Kubernetes: every object of every golden case is
/// accepted by the API server (namespaces created, the rest dry-run).
#[test]
fn every_golden_manifest_is_accepted_by_the_api_server() {
    let tb = testbed();
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut checked = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo-layout"));
    for dir in dirs {
        let (_, objects) = golden::convert_dir(&dir);
        // Namespaces for real (namespaced dry-runs need them), the rest dry-run.
        let (namespaces, rest): (Vec<_>, Vec<_>) = objects
            .into_iter()
            .filter(|o| !o.pending)
            .partition(|o| o.kind == "Namespace");
        for o in namespaces.iter().chain(rest.iter()) {
            let path = object_path(&o.body);
            let result = if o.kind == "Namespace" {
                tb.apply(&path, "golden-check", &o.body)
            } else {
                dry_run(tb, &path, &o.body)
            };
            result.unwrap_or_else(|e| panic!("{}: {} rejected: {e}", dir.display(), path));
            checked += 1;
        }
    }
    assert!(checked > 50, "checked {checked} objects");
}

fn dry_run(tb: &Testbed, path: &str, obj: &Value) -> Result<Value, String> {
    let r = tb
        .client()
        .patch(tb.url(path))
        .query(&[
            ("fieldManager", "golden-check"),
            ("force", "true"),
            ("dryRun", "All"),
        ])
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/apply-patch+yaml",
        )
        .body(obj.to_string())
        .send()
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let text = r.text().unwrap_or_default();
    if status.is_success() {
        Ok(Value::Null)
    } else {
        Err(format!("HTTP {status}: {text}"))
    }
}

fn object_path(o: &Value) -> String {
    let av = o["apiVersion"].as_str().unwrap();
    let kind = o["kind"].as_str().unwrap();
    let info =
        kompox::cluster::kind_info(av, kind).unwrap_or_else(|| panic!("unknown kind {av} {kind}"));
    let base = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let name = o["metadata"]["name"].as_str().unwrap();
    match o["metadata"]["namespace"].as_str() {
        Some(ns) if info.namespaced => format!("{base}/namespaces/{ns}/{}/{name}", info.plural),
        _ => format!("{base}/{}/{name}", info.plural),
    }
}

fn yaml_to_json(doc: &str) -> Value {
    let nodes = kompox::yaml::parse_documents(doc, &kompox::yaml::Limits::default()).unwrap();
    nodes[0].to_json()
}

#[test]
fn a_placement_no_node_matches_is_warned_about() {
    let tb = testbed();
    let repo = Repo::new(tb, "nonode");
    repo.app("web", "", WEB);
    // Placement on a pool no testbed node has.
    let kom = format!(
        "apiVersion: ops.kompox.dev/v1alpha1
kind: App
metadata: {{name: web, annotations: {{ops.kompox.dev/id: /ws/{}/prv/k3s/cls/tb/app/web}}}}
spec:
  compose: file:compose.yml
  deployment: {{pool: gpu}}
",
        repo.ws
    );
    write(repo.dir.path(), "apps/web/kompoxapp.yml", &kom);
    let (code, text) = repo.plan();
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("no node of the cluster matches")
            && text.contains("kompox.dev/node-pool=gpu"),
        "{text}"
    );
}

#[test]
fn a_saved_plan_is_applied_only_while_it_is_current() {
    let tb = testbed();
    let repo = Repo::new(tb, "saved");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    let out = repo.run(&["plan", "--format", "json", "--out", "plan.json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The repository changes after the plan was saved: refused.
    repo.app("web", "", &WEB.replace("nginx:1.27", "nginx:1.28"));
    let out = repo.run(&["apply", "plan.json", "--auto-approve", "--no-wait"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("stale"), "{err}");
    assert!(
        get(tb, &format!("/api/v1/namespaces/{ns}")).is_none(),
        "nothing was applied"
    );
    // Planned again, the saved plan applies.
    let out = repo.run(&["plan", "--format", "json", "--out", "plan.json"]);
    assert_eq!(out.status.code(), Some(0));
    let out = repo.run(&["apply", "plan.json", "--auto-approve", "--no-wait"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        get(
            tb,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments/web-app")
        )
        .is_some()
    );
}

#[test]
fn apply_without_a_terminal_refuses_without_auto_approve() {
    let tb = testbed();
    let repo = Repo::new(tb, "confirm");
    repo.app("web", "", WEB);
    let out = repo.run(&["apply"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--auto-approve"), "{err}");
    assert!(get(tb, &format!("/api/v1/namespaces/{}", repo.namespace("web"))).is_none());
}

/// An app with a volume on K3s: apply creates the disk (a directory on a
/// node of the requested zone), assigns it, binds a local PV pinned to that
/// node, and the pod runs there; a second plan is empty.
#[test]
fn an_app_with_a_volume_gets_a_disk_on_a_node_of_its_zone_and_runs() {
    let tb = testbed();
    let repo = Repo::new(tb, "disk");
    let nodes_root = repo.with_node_dirs(&[
        "node-a1", "node-a2", "node-b1", "node-b2", "node-c1", "node-c2",
    ]);
    repo.app(
        "db",
        "  volumes: [{name: data, size: 1Gi}]\n",
        "services:\n  db:\n    image: postgres:16\n    volumes: [\"data/pg:/var/lib/postgresql/data\"]\n",
    );
    let ns = repo.namespace("db");
    let (code, text) = repo.plan();
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("+ disk data/") && text.contains("(known after apply)"),
        "{text}"
    );
    let out = repo.apply();
    assert!(out.contains("create disk data/"), "{out}");
    // The disk is a directory on the first zone-b node.
    let disks: Vec<_> = std::fs::read_dir(nodes_root.join("node-b1/disks"))
        .unwrap()
        .collect();
    assert_eq!(disks.len(), 1, "one app's disks on node-b1");
    let pvcs = get(
        tb,
        &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
    )
    .unwrap();
    let pvc = &pvcs["items"][0];
    assert_eq!(pvc["spec"]["storageClassName"], "kompox-local");
    let pv_name = pvc["spec"]["volumeName"].as_str().unwrap().to_string();
    let pv = get(tb, &format!("/api/v1/persistentvolumes/{pv_name}")).unwrap();
    assert_eq!(
        pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
            [0],
        "node-b1"
    );
    assert!(
        pv["spec"]["local"]["path"]
            .as_str()
            .unwrap()
            .starts_with(nodes_root.join("node-b1").to_str().unwrap())
    );
    let pod = tb.wait_for("the pod Running", WAIT, || {
        let pods = get(tb, &format!("/api/v1/namespaces/{ns}/pods"))?;
        pods["items"]
            .as_array()?
            .iter()
            .find(|p| p["status"]["phase"] == "Running")
            .cloned()
    });
    assert_eq!(pod["spec"]["nodeName"], "node-b1");
    let (code, text) = repo.plan();
    assert_eq!(code, 0, "converged:\n{text}");
}

/// DECISIONS 15: without `spec.kubeconfig`, the Cluster is reached with the
/// credentials its driver hands out (here K3s's `K3S_KUBECONFIG` setting),
/// before `KUBECONFIG` or `~/.kube/config`, which this run does not have.
#[test]
fn plan_and_apply_reach_the_cluster_with_the_drivers_credentials() {
    let tb = testbed();
    let repo = Repo::new(tb, "drvcred");
    repo.with_node_dirs(&["node-b1"]);
    repo.app("web", "", WEB);
    let shared = repo.dir.path().join(".kompox/kom/shared.yml");
    let text = std::fs::read_to_string(&shared).unwrap();
    let path_line = format!("  kubeconfig: {{path: {}}}\n", tb.kubeconfig_path.display());
    assert!(text.contains(&path_line), "{text}");
    std::fs::write(
        &shared,
        text.replace(
            &path_line,
            &format!(
                "  settings: {{K3S_KUBECONFIG: {}}}\n",
                tb.kubeconfig_path.display()
            ),
        ),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("kompoxops")
            .unwrap()
            .current_dir(repo.dir.path())
            .env_remove("KUBECONFIG")
            .env("HOME", home.path())
            .args(args)
            .timeout(Duration::from_secs(240))
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, out) = run(&["apply", "--auto-approve", "--timeout", "120"]);
    assert_eq!(code, Some(0), "{out}");
    let ns = repo.namespace("web");
    assert!(
        get(
            tb,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments/web-app")
        )
        .is_some()
    );
    let (code, out) = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("live: cluster tb"), "{out}");

    // Without the setting there is no way in: a clear error naming the fix.
    std::fs::write(&shared, text.replace(&path_line, "")).unwrap();
    let (code, out) = run(&["plan"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no kubeconfig for cluster `tb`"), "{out}");
}
