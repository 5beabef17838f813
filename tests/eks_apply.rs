//! The EKS app of the example repository (`apps/vaultwarden`), planned and
//! applied end to end: its EBS disk against a real moto server, its
//! Kubernetes objects on the real testbed control plane (standing in for
//! the EKS cluster, whose fake endpoint from moto is never dialled).

#[path = "support/testbed.rs"]
mod testbed;

#[path = "support/moto.rs"]
mod moto;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

const REGION: &str = "us-east-1";

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// `kompoxops` in the repository with static test credentials: nothing
/// may reach a real AWS endpoint or the instance metadata service.
fn kompoxops(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kompoxops"))
        .current_dir(dir)
        .env_remove("KUBECONFIG")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_EC2")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ec2() -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(REGION))
        .endpoint_url(&moto::moto().endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// A kwok node in AWS zone us-east-1a of node pool `user`, labelled as an
/// EKS managed node group Kompox created would be.
fn eks_node(tb: &testbed::Testbed) -> String {
    let name = tb.unique_name("eks-node");
    let resources = json!({"cpu": "8", "memory": "32Gi", "pods": "110"});
    tb.post_json(
        "/api/v1/nodes",
        &json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "type": "kwok",
                    "topology.kubernetes.io/zone": "us-east-1a",
                    "topology.kubernetes.io/region": REGION,
                    "kompox.dev/node-pool": "user",
                    "kompox.dev/node-zone": "us-east-1-1",
                },
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {},
            "status": {"capacity": resources, "allocatable": resources},
        }),
    )
    .unwrap();
    name
}

#[test]
fn the_example_eks_app_plans_and_applies_its_ebs_disk_and_objects() {
    let tb = testbed::testbed();
    let m = moto::moto();
    let repo = tempfile::tempdir().unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo-layout"),
        repo.path(),
    );
    let kom = repo.path().join(".kompox/kom");
    edit(
        &kom.join("providers.yml"),
        "    AWS_REGION: us-east-1\n",
        &format!(
            "    AWS_REGION: us-east-1\n    AWS_ENDPOINT_URL: {}\n",
            m.endpoint
        ),
    );
    edit(
        &kom.join("clusters.yml"),
        "    AWS_EKS_CLUSTER_NAME: acme-prod-use1\n",
        &format!(
            "    AWS_EKS_CLUSTER_NAME: acme-prod-use1\n  kubeconfig:\n    path: {}\n",
            tb.kubeconfig_path.display()
        ),
    );
    let node = eks_node(tb);
    let app = ["--app-name", "vaultwarden"];

    // The plan: a disk to create in the app's zone, then the objects.
    let out = kompoxops(
        repo.path(),
        &[&app[..], &["plan", "--detailed-exitcode"]].concat(),
    );
    let plan = text(&out);
    assert_eq!(out.status.code(), Some(2), "{plan}");
    assert!(plan.contains("live: cluster aws"), "{plan}");
    assert!(plan.contains("+ disk"), "{plan}");
    assert!(plan.contains("data/"), "{plan}");

    let out = kompoxops(
        repo.path(),
        &[&app[..], &["apply", "--auto-approve", "--timeout", "120"]].concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // One EBS volume in us-east-1a, as the KOM asks, assigned.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let vols = rt.block_on(async {
        ec2()
            .describe_volumes()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:kompox-app-name")
                    .values("vaultwarden")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .volumes()
            .to_vec()
    });
    assert_eq!(vols.len(), 1, "{vols:?}");
    let v = &vols[0];
    assert_eq!(v.availability_zone(), Some("us-east-1a"));
    assert_eq!(v.size(), Some(10));
    assert_eq!(v.volume_type().map(|t| t.as_str()), Some("gp3"));
    assert_eq!(v.iops(), Some(3000));
    let tag = |k: &str| {
        v.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(tag("kompox-disk-assigned").as_deref(), Some("true"));
    assert_eq!(tag("kompox-volume").as_deref(), Some("data"));
    let vol_id = v.volume_id().unwrap().to_string();

    // Its PersistentVolume on the cluster: the EBS CSI driver, the volume
    // id as handle, pinned to the disk's AWS zone.
    let pvs = tb.get_json("/api/v1/persistentvolumes").unwrap();
    let pv = pvs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["spec"]["csi"]["volumeHandle"] == vol_id.as_str())
        .unwrap_or_else(|| panic!("no PV for {vol_id}"));
    assert_eq!(pv["spec"]["csi"]["driver"], "ebs.csi.aws.com");
    let term =
        &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(term["key"], "topology.kubernetes.io/zone");
    assert_eq!(term["values"], json!(["us-east-1a"]));

    // The pod runs on the node of that zone and pool.
    let ns = pv["spec"]["claimRef"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    tb.wait_for(
        "the vaultwarden pod on the EKS node",
        std::time::Duration::from_secs(120),
        || {
            let pods = tb.get_json(&format!("/api/v1/namespaces/{ns}/pods")).ok()?;
            pods["items"]
                .as_array()?
                .iter()
                .find(|p| {
                    p["spec"]["nodeName"] == node.as_str() && p["status"]["phase"] == "Running"
                })
                .cloned()
        },
    );

    // Converged: a second plan has nothing to do, and no second volume.
    let out = kompoxops(
        repo.path(),
        &[&app[..], &["plan", "--detailed-exitcode"]].concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again = rt.block_on(async {
        ec2()
            .describe_volumes()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:kompox-app-name")
                    .values("vaultwarden")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .volumes()
            .len()
    });
    assert_eq!(again, 1);
}
