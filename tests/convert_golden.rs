//! Golden tests of the converter: one directory per case under
//! `tests/cases/`, each a small project (KOM + compose + files). The
//! manifest (and the warnings) of every App is snapshotted with insta, and
//! every object must survive a round trip through the typed Kubernetes API
//! structs — a misspelt field would be dropped and fail the test.

use std::path::Path;

use kompox::convert::Object;

#[path = "common/golden.rs"]
mod golden;
use golden::convert_dir;

/// Deserialises into the k8s-openapi type and back; any field the type does
/// not know is lost, so the two JSON values differ.
fn assert_round_trips(o: &Object) {
    use k8s_openapi::api::{
        apps::v1 as apps, core::v1 as core, networking::v1 as net, rbac::v1 as rbac,
    };
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(
        v: &serde_json::Value,
    ) -> serde_json::Value {
        let typed: T = serde_json::from_value(v.clone()).expect("deserialise");
        serde_json::to_value(typed).expect("serialise")
    }
    let back = match o.kind.as_str() {
        "Namespace" => rt::<core::Namespace>(&o.body),
        "ServiceAccount" => rt::<core::ServiceAccount>(&o.body),
        "ConfigMap" => rt::<core::ConfigMap>(&o.body),
        "Secret" => rt::<core::Secret>(&o.body),
        "Service" => rt::<core::Service>(&o.body),
        "PersistentVolume" => rt::<core::PersistentVolume>(&o.body),
        "PersistentVolumeClaim" => rt::<core::PersistentVolumeClaim>(&o.body),
        "Deployment" => rt::<apps::Deployment>(&o.body),
        "Role" => rt::<rbac::Role>(&o.body),
        "RoleBinding" => rt::<rbac::RoleBinding>(&o.body),
        "NetworkPolicy" => rt::<net::NetworkPolicy>(&o.body),
        "Ingress" => rt::<net::Ingress>(&o.body),
        other => panic!("unexpected kind {other}"),
    };
    assert_eq!(
        back,
        o.body,
        "{} does not round-trip through k8s-openapi",
        o.display_name()
    );
}

fn run_case(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(name);
    let (out, objects) = convert_dir(&dir);
    for o in &objects {
        if !o.pending {
            assert_round_trips(o);
        }
    }
    // Determinism: a second conversion gives the same bytes.
    assert_eq!(convert_dir(&dir).0, out, "conversion is not deterministic");
    insta::assert_snapshot!(name, out);
}

#[test]
fn example_repository() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo-layout");
    let (out, objects) = convert_dir(&dir);
    for o in objects.iter().filter(|o| !o.pending) {
        assert_round_trips(o);
    }
    insta::assert_snapshot!("example_repository", out);
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { run_case(stringify!($name)); })*
    };
}

cases!(
    bound_disk_aks,
    k3s_local_volume,
    ports_and_ingress,
    configs_and_secrets,
    env_files,
    placement,
    security_and_runtime,
    depends_on_ordering,
    network_policy_rules,
    reference_hash_vector,
);
