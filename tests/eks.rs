//! The EKS driver's node pools, cluster status and kubeconfig against a
//! real moto server on 127.0.0.1 (`tests/support/moto.rs`), through the
//! `Driver` trait.
//!
//! Each test makes its own EKS cluster in moto (unique name) and never
//! resets the server. moto gives every cluster a fake
//! `https://….eks.amazonaws.com/` endpoint: it is only compared, never
//! dialled. moto has no `DescribeUpdate` (its `UpdateNodegroupConfig`
//! answers `Successful` at once), so polling an update id is tested against
//! a one-route HTTP stub on 127.0.0.1 serving EKS's documented answer.

#![cfg(feature = "aws")]

#[path = "support/moto.rs"]
mod moto;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine as _;
use kompox::model::Cluster;
use kompox::provider::driver::{
    Driver, DriverError, NodePool, NodePoolUpdate, OperationKind, OperationState, wait_operation,
};
use kompox::provider::eks::{EksConfig, EksDriver, Timing};

const REGION: &str = "us-east-1";
const NODE_ROLE: &str = "arn:aws:iam::123456789012:role/kompox-nodes";

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn settings() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "AWS_EKS_SUBNETS".to_string(),
            "us-east-1-1=subnet-0aaa,us-east-1-2=subnet-0bbb,us-east-1c=subnet-0ccc".to_string(),
        ),
        ("AWS_EKS_NODE_ROLE_ARN".to_string(), NODE_ROLE.to_string()),
        ("AWS_EKS_NODE_DISK_SIZE_GB".to_string(), "40".to_string()),
        ("AWS_EKS_NODE_CAPACITY_TYPE".to_string(), "SPOT".to_string()),
    ])
}

fn config(endpoint: &str) -> EksConfig {
    let mut cfg = EksConfig::new(REGION)
        .with_endpoint(endpoint)
        .with_static_credentials("testing", "testing")
        .with_timing(Timing::fast());
    cfg.settings = settings();
    cfg
}

fn driver() -> EksDriver {
    EksDriver::with_config(config(&moto::moto().endpoint))
}

/// An SDK client of our own, to set up moto and to look behind the driver.
fn eks_client(endpoint: &str) -> aws_sdk_eks::Client {
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
        .region(aws_sdk_eks::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_eks::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
        .build();
    aws_sdk_eks::Client::from_conf(conf)
}

/// A new EKS cluster in moto (ACTIVE at once) and its Kompox Cluster; the
/// Kompox name differs, so the driver must use `AWS_EKS_CLUSTER_NAME`.
async fn eks_cluster() -> (Cluster, String) {
    let name = unique("kx");
    eks_client(&moto::moto().endpoint)
        .create_cluster()
        .name(&name)
        .role_arn("arn:aws:iam::123456789012:role/kompox-cluster")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-0aaa")
                .subnet_ids("subnet-0bbb")
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto CreateCluster: {e:?}\n{}", moto::moto().log_tail()));
    let mut cluster = Cluster {
        existing: true,
        ..Default::default()
    };
    cluster.meta.name = "prod".into();
    cluster
        .settings
        .insert("AWS_EKS_CLUSTER_NAME".into(), name.clone());
    (cluster, name)
}

fn pool(name: &str) -> NodePool {
    NodePool {
        name: name.into(),
        zones: vec!["us-east-1-1".into(), "us-east-1b".into()],
        instance_type: Some("m6i.large".into()),
        min_count: Some(1),
        max_count: Some(3),
        count: None,
        labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
        taints: vec![],
    }
}

async fn done(d: &EksDriver, op: kompox::provider::driver::Operation) -> OperationState {
    wait_operation(d, op, Duration::from_millis(20), Duration::from_secs(10))
        .await
        .unwrap()
        .state
}

#[tokio::test]
async fn node_group_create_list_update_delete() {
    let d = driver();
    let (cluster, eks_name) = eks_cluster().await;

    let op = d.create_node_pool(&cluster, pool("user")).await.unwrap();
    assert_eq!(op.kind, OperationKind::CreateNodePool);
    assert_eq!(op.id, format!("eks-nodegroup:{eks_name}:user:create"));
    assert_eq!(done(&d, op).await, OperationState::Succeeded);

    // Listed back in Kompox terms, with the labels Kompox adds.
    let pools = d.list_node_pools(&cluster, None).await.unwrap();
    assert_eq!(pools.len(), 1, "{pools:?}");
    let listed = &pools[0];
    assert_eq!(listed.name, "user");
    assert_eq!(listed.zones, ["us-east-1-1", "us-east-1-2"]);
    assert_eq!(listed.instance_type.as_deref(), Some("m6i.large"));
    assert_eq!(
        (listed.min_count, listed.max_count, listed.count),
        (Some(1), Some(3), Some(1))
    );
    assert_eq!(listed.labels["kompox.dev/node-pool"], "user");
    assert_eq!(listed.labels["kompox.dev/node-zone"], "us-east-1-1");
    assert_eq!(listed.labels["team"], "a");

    // What EKS was asked for: subnets of the zones, settings, tags.
    let ng = eks_client(&moto::moto().endpoint)
        .describe_nodegroup()
        .cluster_name(&eks_name)
        .nodegroup_name("user")
        .send()
        .await
        .unwrap();
    let ng = ng.nodegroup().unwrap();
    assert_eq!(ng.subnets(), ["subnet-0aaa", "subnet-0bbb"]);
    assert_eq!(ng.node_role(), Some(NODE_ROLE));
    assert_eq!(ng.disk_size(), Some(40));
    assert_eq!(ng.capacity_type().map(|c| c.as_str()), Some("SPOT"));
    let tags = ng.tags().unwrap();
    assert_eq!(tags["managed-by"], "kompox");
    assert_eq!(tags["kompox-node-zones"], "us-east-1-1,us-east-1-2");

    // Labels and scaling change; the kompox.dev labels stay.
    let mut desired = listed.clone();
    desired.labels = BTreeMap::from([("tier".to_string(), "web".to_string())]);
    desired.max_count = Some(5);
    desired.count = Some(2);
    let update = NodePoolUpdate::between(listed, &desired).unwrap();
    let op = d.update_node_pool(&cluster, update).await.unwrap();
    assert_eq!(op.kind, OperationKind::UpdateNodePool);
    assert!(
        op.id
            .starts_with(&format!("eks-nodegroup:{eks_name}:user:update:")),
        "{}",
        op.id
    );
    // moto finishes updates at once (real EKS answers InProgress; its
    // DescribeUpdate is covered by `update_poll_reads_describe_update`).
    assert_eq!(op.state, OperationState::Succeeded);
    let after = &d.list_node_pools(&cluster, None).await.unwrap()[0];
    assert_eq!(
        after.labels,
        BTreeMap::from([
            ("kompox.dev/node-pool".to_string(), "user".to_string()),
            (
                "kompox.dev/node-zone".to_string(),
                "us-east-1-1".to_string()
            ),
            ("tier".to_string(), "web".to_string()),
        ])
    );
    assert_eq!(
        (after.min_count, after.max_count, after.count),
        (Some(1), Some(5), Some(2))
    );
    // Asking again for the same state sends nothing.
    let again = NodePoolUpdate {
        name: "user".into(),
        max_count: Some(5),
        ..Default::default()
    };
    let op = d.update_node_pool(&cluster, again).await.unwrap();
    assert!(op.id.starts_with("sync:"), "{}", op.id);

    let op = d.delete_node_pool(&cluster, "user").await.unwrap();
    assert_eq!(op.id, format!("eks-nodegroup:{eks_name}:user:delete"));
    assert_eq!(done(&d, op).await, OperationState::Succeeded);
    assert!(d.list_node_pools(&cluster, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn immutable_changes_and_bad_zones_are_refused_before_any_request() {
    let d = driver();
    let (cluster, _) = eks_cluster().await;
    let op = d.create_node_pool(&cluster, pool("fixed")).await.unwrap();
    assert_eq!(done(&d, op).await, OperationState::Succeeded);
    let listed = d.list_node_pools(&cluster, None).await.unwrap().remove(0);
    for (field, change) in [
        ("instance_type", {
            let mut p = listed.clone();
            p.instance_type = Some("m6i.xlarge".into());
            p
        }),
        ("zones", {
            let mut p = listed.clone();
            p.zones.push("us-east-1-3".into());
            p
        }),
    ] {
        match NodePoolUpdate::between(&listed, &change) {
            Err(DriverError::InvalidInput(m)) => assert!(m.contains(field), "{m}"),
            other => panic!("{field}: {other:?}"),
        }
    }
    // A zone without a subnet, and a missing node role: refused before
    // CreateNodegroup is sent (nothing appears in the cluster).
    let mut p = pool("nosubnet");
    p.zones = vec!["us-east-1-4".into()];
    match d.create_node_pool(&cluster, p).await {
        Err(DriverError::InvalidInput(m)) => {
            assert!(
                m.contains("AWS_EKS_SUBNETS") && m.contains("us-east-1-4"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    let mut cfg = config(&moto::moto().endpoint);
    cfg.settings.remove("AWS_EKS_NODE_ROLE_ARN");
    match EksDriver::with_config(cfg)
        .create_node_pool(&cluster, pool("norole"))
        .await
    {
        Err(DriverError::InvalidInput(m)) => assert!(m.contains("AWS_EKS_NODE_ROLE_ARN"), "{m}"),
        other => panic!("{other:?}"),
    }
    let names: Vec<String> = d
        .list_node_pools(&cluster, None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["fixed"]);
    // Counts outside the bounds are refused too.
    let bad = NodePoolUpdate {
        name: "fixed".into(),
        count: Some(7),
        ..Default::default()
    };
    assert!(matches!(
        d.update_node_pool(&cluster, bad).await,
        Err(DriverError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn taken_names_missing_pools_and_polls_by_id() {
    let d = driver();
    let (cluster, eks_name) = eks_cluster().await;
    let op = d.create_node_pool(&cluster, pool("gpu")).await.unwrap();
    let id = op.id.clone();
    match d.create_node_pool(&cluster, pool("gpu")).await {
        Err(DriverError::Conflict(m)) => assert!(m.contains("gpu"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A new driver instance (a restarted process) resumes by the id.
    let fresh = driver();
    let polled = fresh.poll_operation(&id).await.unwrap();
    assert_eq!(polled.state, OperationState::Succeeded);
    assert_eq!(polled.target, "gpu");

    // Deleting a missing pool succeeds at once, and polls as done.
    let op = d.delete_node_pool(&cluster, "nope").await.unwrap();
    assert_eq!(op.state, OperationState::Succeeded);
    assert_eq!(
        fresh.poll_operation(&op.id).await.unwrap().state,
        OperationState::Succeeded
    );
    // Updating one is NotFound.
    let u = NodePoolUpdate {
        name: "nope".into(),
        max_count: Some(2),
        ..Default::default()
    };
    assert!(matches!(
        d.update_node_pool(&cluster, u).await,
        Err(DriverError::NotFound(_))
    ));
    // A create polled after the group was deleted has failed.
    let op = d.delete_node_pool(&cluster, "gpu").await.unwrap();
    assert_eq!(done(&d, op).await, OperationState::Succeeded);
    match fresh.poll_operation(&id).await.unwrap().state {
        OperationState::Failed(m) => assert!(m.contains("deleted"), "{m}"),
        s => panic!("{s:?}"),
    }
    // Ids of other clusters' groups are answered by what EKS says.
    let other = format!("eks-nodegroup:{eks_name}-gone:x:delete");
    assert_eq!(
        fresh.poll_operation(&other).await.unwrap().state,
        OperationState::Succeeded
    );
}

#[tokio::test]
async fn cluster_status_of_existing_and_missing_clusters() {
    let d = driver();
    let (cluster, _) = eks_cluster().await;
    let s = d.cluster_status(&cluster).await.unwrap();
    assert!(s.existing);
    assert_eq!(s.provisioned, Some(true));
    assert_eq!(s.installed, None);
    let mut missing = cluster.clone();
    missing
        .settings
        .insert("AWS_EKS_CLUSTER_NAME".into(), unique("absent"));
    let s = d.cluster_status(&missing).await.unwrap();
    assert!(!s.existing);
    assert_eq!(s.provisioned, Some(false));
    assert!(matches!(
        d.cluster_kubeconfig(&missing).await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn kubeconfig_has_the_cluster_endpoint_ca_and_an_sts_token() {
    let d = driver();
    let (cluster, eks_name) = eks_cluster().await;
    let described = eks_client(&moto::moto().endpoint)
        .describe_cluster()
        .name(&eks_name)
        .send()
        .await
        .unwrap();
    let c = described.cluster().unwrap();
    let bytes = d.cluster_kubeconfig(&cluster).await.unwrap();
    let yaml = String::from_utf8(bytes).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let arn = c.arn().unwrap();
    assert_eq!(kc.current_context.as_deref(), Some(arn));
    let server = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(server.server.as_deref(), c.endpoint());
    assert_eq!(
        server.certificate_authority_data.as_deref(),
        c.certificate_authority().and_then(|ca| ca.data())
    );
    // The token: k8s-aws-v1. + base64url(presigned GetCallerIdentity URL).
    // (The emitter writes long strings as one-line folded scalars, `>-`.)
    let lines: Vec<&str> = yaml.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("token:"))
        .expect("a token line");
    let token = match lines[at].strip_prefix("token:").unwrap().trim() {
        ">-" | ">" | "|" | "|-" => lines[at + 1],
        t => t.trim_matches(|c| c == '"' || c == '\''),
    };
    let b64 = token
        .strip_prefix("k8s-aws-v1.")
        .unwrap_or_else(|| panic!("token prefix: {token}\n{yaml}"));
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert!(
        url.starts_with("https://sts.us-east-1.amazonaws.com/?"),
        "{url}"
    );
    let query: BTreeMap<&str, &str> = url
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    assert_eq!(query["Action"], "GetCallerIdentity");
    assert_eq!(query["Version"], "2011-06-15");
    assert_eq!(query["X-Amz-Expires"], "60");
    assert_eq!(query["X-Amz-SignedHeaders"], "host%3Bx-k8s-aws-id");
    assert!(
        query["X-Amz-Credential"].starts_with("testing%2F"),
        "{}",
        query["X-Amz-Credential"]
    );
    assert_eq!(query["X-Amz-Signature"].len(), 64);
}

/// A one-route EKS stub on 127.0.0.1: answers every request with `body`
/// and records the request line.
async fn stub(body: &'static str) -> (String, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(resp.as_bytes()).await.unwrap();
        sock.shutdown().await.ok();
        head.lines().next().unwrap_or_default().to_string()
    });
    (format!("http://{addr}"), task)
}

/// moto has no DescribeUpdate: the answers of the EKS API reference
/// (`{"update": {...}}`), served from 127.0.0.1.
#[tokio::test]
async fn update_poll_reads_describe_update() {
    for (body, want) in [
        (
            r#"{"update":{"id":"u-1","status":"InProgress","type":"ConfigUpdate","errors":[]}}"#,
            OperationState::Running,
        ),
        (
            r#"{"update":{"id":"u-1","status":"Failed","type":"ConfigUpdate","errors":[{"errorCode":"NodeCreationFailure","errorMessage":"instances failed to join","resourceIds":["i-0abc"]}]}}"#,
            OperationState::Failed(
                "update failed: NodeCreationFailure: instances failed to join [i-0abc]".into(),
            ),
        ),
        (
            r#"{"update":{"id":"u-1","status":"Successful","type":"ConfigUpdate","errors":[]}}"#,
            OperationState::Succeeded,
        ),
    ] {
        let (endpoint, request) = stub(body).await;
        let d = EksDriver::with_config(config(&endpoint));
        let op = d
            .poll_operation("eks-nodegroup:prod:user:update:u-1")
            .await
            .unwrap();
        assert_eq!(op.state, want);
        assert_eq!(op.kind, OperationKind::UpdateNodePool);
        let line = request.await.unwrap();
        assert!(
            line.starts_with("GET /clusters/prod/updates/u-1?nodegroupName=user "),
            "{line}"
        );
    }
}
