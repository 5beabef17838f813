//! The compose loader and the converter on an arbitrary compose file.
#![no_main]

use std::collections::BTreeMap;

use kompox::kom::{ProjectEnv, load_project};
use kompox::source::FileTree;
use libfuzzer_sys::fuzz_target;

const KOM: &[u8] = b"apiVersion: ops.kompox.dev/v1alpha1
kind: Workspace
metadata: {name: ws, annotations: {ops.kompox.dev/id: /ws/ws}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Provider
metadata: {name: p, annotations: {ops.kompox.dev/id: /ws/ws/prv/p}}
spec: {driver: k3s}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Cluster
metadata: {name: c, annotations: {ops.kompox.dev/id: /ws/ws/prv/p/cls/c}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: App
metadata: {name: a, annotations: {ops.kompox.dev/id: /ws/ws/prv/p/cls/c/app/a}}
spec:
  compose: file:compose.yml
  volumes: [{name: data, size: 1Gi}]
";

fuzz_target!(|data: &[u8]| {
    let tree = FileTree::from_files([
        (".kompox/config.yml", b"version: 1\n".to_vec()),
        ("kompoxapp.yml", KOM.to_vec()),
        ("compose.yml", data.to_vec()),
        ("app.env", b"A=1\n".to_vec()),
    ]);
    if let Ok(project) = load_project(&tree, &ProjectEnv::default()) {
        let _ = kompox::desired::build(&project, &tree, &[], &BTreeMap::new());
    }
});
