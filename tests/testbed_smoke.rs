//! Smoke test of the testbed (tests/support/testbed.rs): a real control
//! plane from the Go module proxy, fake zonal nodes from kwok, the audit log
//! as oracle. The tests in this file share one testbed.

#[path = "support/testbed.rs"]
mod testbed;

use std::time::Duration;

use serde_json::{Value, json};
use testbed::{STORAGE_CLASS, ZONES, node_ready, testbed};

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn control_plane_version_matches_the_pinned_minor() {
    let tb = testbed();
    assert!(
        tb.k8s_version.starts_with("v1.36."),
        "apiserver reports {}",
        tb.k8s_version
    );
    // The kubeconfig names the loopback server and the test user's token.
    let kc = std::fs::read_to_string(&tb.kubeconfig_path).unwrap();
    assert!(kc.contains(&format!("server: {}", tb.server_url)), "{kc}");
    assert!(tb.server_url.starts_with("https://127.0.0.1:"));
    assert!(kc.contains(&tb.token));
}

#[test]
fn six_fake_nodes_in_three_zones_become_ready() {
    let tb = testbed();
    let nodes = tb.wait_for("6 Ready nodes", WAIT, || {
        let list = tb.get_json("/api/v1/nodes").ok()?;
        let items = list["items"].as_array()?.clone();
        (items.len() == 6 && items.iter().all(node_ready)).then_some(items)
    });
    for zone in ZONES {
        let in_zone: Vec<&Value> = nodes
            .iter()
            .filter(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone)
            .collect();
        assert_eq!(in_zone.len(), 2, "nodes in {zone}");
        for n in in_zone {
            let name = n["metadata"]["name"].as_str().unwrap();
            let labels = &n["metadata"]["labels"];
            assert_eq!(labels["kubernetes.io/hostname"], name);
            assert_eq!(labels["kompox.dev/node-zone"], zone);
            assert_eq!(labels["kompox.dev/node-pool"], "user");
            assert_eq!(labels["topology.kubernetes.io/region"], "region-1");
            assert_eq!(n["status"]["allocatable"]["cpu"], "64");
            assert_eq!(n["status"]["allocatable"]["pods"], "250");
            // No taints: workloads schedule without tolerations.
            assert!(
                n["spec"]["taints"].as_array().is_none_or(|t| t.is_empty()),
                "{name} is tainted: {}",
                n["spec"]["taints"]
            );
            // Loopback only: the only node address is 127.0.0.1.
            for a in n["status"]["addresses"].as_array().into_iter().flatten() {
                if a["type"] == "InternalIP" {
                    assert_eq!(a["address"], "127.0.0.1", "{name}");
                }
            }
        }
    }
}

#[test]
fn default_storage_class_exists() {
    let tb = testbed();
    let sc = tb
        .get_json(&format!(
            "/apis/storage.k8s.io/v1/storageclasses/{STORAGE_CLASS}"
        ))
        .unwrap();
    assert_eq!(
        sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(sc["volumeBindingMode"], "WaitForFirstConsumer");
}

#[test]
fn server_side_applied_deployment_runs_in_zone_b_and_is_audited() {
    let tb = testbed();
    let ns = tb.unique_name("smoke");
    let mark = tb.audit_mark();

    tb.apply(
        &format!("/api/v1/namespaces/{ns}"),
        "testbed",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .unwrap();
    let deploy_path = format!("/apis/apps/v1/namespaces/{ns}/deployments/web");
    tb.apply(
        &deploy_path,
        "testbed",
        &json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "nodeSelector": {"kompox.dev/node-zone": "zone-b"},
                        "containers": [{
                            "name": "web",
                            "image": "busybox",
                            "command": ["sleep", "infinity"]
                        }]
                    }
                }
            }
        }),
    )
    .unwrap();

    // Deployment -> ReplicaSet -> Pod (controller-manager), bound to a
    // zone-b node (scheduler), Running (kwok).
    let pods_path = format!("/api/v1/namespaces/{ns}/pods?labelSelector=app%3Dweb");
    let pod = tb.wait_for("the web pod Running", WAIT, || {
        let list = tb.get_json(&pods_path).ok()?;
        list["items"]
            .as_array()?
            .iter()
            .find(|p| p["status"]["phase"] == "Running")
            .cloned()
    });
    let node_name = pod["spec"]["nodeName"].as_str().unwrap().to_string();
    let node = tb.get_json(&format!("/api/v1/nodes/{node_name}")).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["topology.kubernetes.io/zone"], "zone-b",
        "pod runs on {node_name}"
    );

    // The audit log names the writers: our PATCH as the token user, the pod
    // created by the replicaset controller, bound by the scheduler.
    let events = tb.wait_for("audit events of the apply and binding", WAIT, || {
        let events = tb.audit_events_since(mark);
        let bound = events.iter().any(|e| {
            e["verb"] == "create"
                && e["objectRef"]["namespace"] == ns.as_str()
                && e["objectRef"]["subresource"] == "binding"
        });
        bound.then_some(events)
    });
    let in_ns = |e: &&Value| e["objectRef"]["namespace"] == ns.as_str();
    let apply = events
        .iter()
        .filter(in_ns)
        .find(|e| {
            e["verb"] == "patch"
                && e["objectRef"]["resource"] == "deployments"
                && e["objectRef"]["name"] == "web"
        })
        .expect("audit event of the Deployment apply");
    assert_eq!(apply["user"]["username"], tb.user.as_str());
    assert_eq!(apply["stage"], "ResponseComplete");
    assert!(
        apply["responseStatus"]["code"] == 201 || apply["responseStatus"]["code"] == 200,
        "{apply}"
    );
    assert!(
        apply["requestURI"]
            .as_str()
            .unwrap()
            .contains("fieldManager=testbed")
    );
    let writers = |verb: &str, resource: &str, sub: Option<&str>| -> Vec<String> {
        events
            .iter()
            .filter(in_ns)
            .filter(|e| {
                e["verb"] == verb
                    && e["objectRef"]["resource"] == resource
                    && e["objectRef"]["subresource"].as_str() == sub
            })
            .map(|e| e["user"]["username"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        writers("create", "pods", None),
        ["system:serviceaccount:kube-system:replicaset-controller"]
    );
    assert_eq!(
        writers("create", "pods", Some("binding")),
        ["system:kube-scheduler"]
    );

    tb.delete(&format!("/api/v1/namespaces/{ns}")).unwrap();
}
