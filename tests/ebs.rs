//! The `eks` driver's disks and snapshots (EBS) against a real moto
//! server on 127.0.0.1 (`tests/support/moto.rs`), with a fault-injecting
//! proxy in front of it for lost, throttled, slow and hung answers.
//!
//! Tests share one moto per test binary and isolate themselves by app id
//! hash. The driver gets moto's endpoint and static credentials through
//! its configuration, never through the process environment; only the
//! `kompoxops` child processes get theirs through their environment.

#![cfg(feature = "aws")]

#[path = "support/contract.rs"]
mod contract;
#[path = "support/moto.rs"]
mod moto;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contract::{Files, Fixture, contract_suite, create};
use kompox::provider::driver::{
    CreateDisk, Disk, DiskScope, Driver, DriverError, OperationState, Placement, Progress,
    SnapshotConsistency, Source, wait_operation,
};
use kompox::provider::eks::{EksConfig, EksDriver, Timing, tags};
use moto::{Fault, FaultProxy, moto};

const REGION: &str = "us-east-1";
const OTHER_REGION: &str = "us-west-2";

fn config(endpoint: &str, region: &str) -> EksConfig {
    EksConfig::new(region)
        .with_endpoint(endpoint)
        .with_static_credentials("testing", "testing")
        .with_timing(Timing::fast())
}

/// The driver for `region`, talking to moto directly.
fn driver(region: &str) -> EksDriver {
    EksDriver::with_config(config(&moto().endpoint, region))
}

/// A fresh proxy in front of moto and a driver talking through it.
fn proxied(timing: Timing) -> (FaultProxy, EksDriver) {
    let proxy = FaultProxy::start(&moto().endpoint);
    let d = EksDriver::with_config(config(&proxy.endpoint, REGION).with_timing(timing));
    (proxy, d)
}

/// An EC2 client of our own, to look at what the driver made.
fn ec2(region: &str) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(region.to_string()))
        .endpoint_url(&moto().endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

fn tag_filter(key: &str, value: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

/// Every EBS volume of an app, whatever the driver lists.
async fn raw_volumes(region: &str, app_id_hash: &str) -> Vec<aws_sdk_ec2::types::Volume> {
    ec2(region)
        .describe_volumes()
        .filters(tag_filter(tags::APP_ID_HASH, app_id_hash))
        .send()
        .await
        .unwrap()
        .volumes()
        .to_vec()
}

async fn raw_snapshots(region: &str, app_id_hash: &str) -> Vec<aws_sdk_ec2::types::Snapshot> {
    ec2(region)
        .describe_snapshots()
        .filters(tag_filter(tags::APP_ID_HASH, app_id_hash))
        .send()
        .await
        .unwrap()
        .snapshots()
        .to_vec()
}

fn tags_of(t: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    t.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn zonal(zone: &str) -> Placement {
    Placement::Zonal(zone.to_string())
}

fn disk(name: &str, zone: &str) -> CreateDisk {
    create(name, zonal(zone), None)
}

/// Client tokens of the CreateVolume requests the proxy saw.
fn tokens(proxy: &FaultProxy) -> Vec<String> {
    proxy
        .seen_action("CreateVolume")
        .iter()
        .map(|s| s.params.get("ClientToken").cloned().unwrap_or_default())
        .collect()
}

/// Two zones of us-east-1; EBS data is not visible from here.
struct EbsFixture;

impl Fixture for EbsFixture {
    fn placement_a(&self) -> Placement {
        zonal("us-east-1-1")
    }
    fn placement_b(&self) -> Placement {
        zonal("us-east-1-2")
    }
    fn write_files(&self, _: &Disk, _: &Files) {
        unreachable!("EBS data is only visible on a node the volume is attached to")
    }
    fn read_files(&self, _: &Disk) -> Files {
        unreachable!("EBS data is only visible on a node the volume is attached to")
    }
    fn sees_data(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn eks_driver_keeps_the_disk_contract_on_moto() {
    let d = driver(REGION);
    let scope = DiskScope::new("contract1", "gitea");
    contract_suite(&d, &scope, &EbsFixture).await;
    assert_eq!(d.id(), "eks");
    assert_eq!(
        d.snapshot_consistency(),
        SnapshotConsistency::CrashConsistent
    );
    // Restores and clones are volumes of their own, from snapshots: the
    // clone's temporary snapshot is gone, the listed ones remain.
    let disks = d.list_disks(&scope).await.unwrap();
    let raw = raw_volumes(REGION, "contract1").await;
    let d3 = disks.iter().find(|x| x.name == "d3").unwrap();
    let s1 = d
        .list_snapshots(&scope)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "s1")
        .unwrap();
    let d3_raw = raw
        .iter()
        .find(|v| v.volume_id() == Some(d3.handle.as_str()))
        .unwrap();
    assert_eq!(d3_raw.snapshot_id(), Some(s1.handle.as_str()));
    assert_eq!(d3.zone.as_deref(), Some("us-east-1b"));
    let snaps = raw_snapshots(REGION, "contract1").await;
    assert!(
        snaps
            .iter()
            .all(|s| !tags_of(s.tags()).contains_key(tags::CLONE_FOR)),
        "no temporary clone snapshot is left"
    );
    assert!(
        raw.iter()
            .map(|v| tags_of(v.tags()))
            .chain(snaps.iter().map(|s| tags_of(s.tags())))
            .all(|t| !t.contains_key(tags::CREATE_TOKEN)),
        "every create finished"
    );
}

#[tokio::test]
async fn eks_driver_comes_from_the_registry_with_its_settings() {
    let settings = BTreeMap::from([
        ("AWS_REGION".to_string(), REGION.to_string()),
        ("AWS_ENDPOINT_URL".to_string(), moto().endpoint.clone()),
    ]);
    let d = kompox::provider::driver::driver_for("eks", &settings).unwrap();
    assert_eq!(d.id(), "eks");
    let vc = d
        .volume_class(&kompox::model::AppVolume {
            name: "data".into(),
            size_bytes: 1 << 30,
            kind: kompox::model::VolumeType::Disk,
            options: BTreeMap::new(),
            source: None,
            span: Default::default(),
        })
        .unwrap();
    assert_eq!(vc.storage_class_name, "kompox-ebs");
    assert_eq!(
        vc.zone_topology_key.as_deref(),
        Some("topology.kubernetes.io/zone")
    );
    match vc.source {
        kompox::provider::VolumeSource::Csi { driver, .. } => assert_eq!(driver, "ebs.csi.aws.com"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn disks_land_in_the_aws_zone_of_their_kompox_zone_with_kompox_tags() {
    let d = driver(REGION);
    let scope = DiskScope::new("zones1", "shop");
    let a = d
        .create_disk(&scope, "db", disk("a", "us-east-1-2"))
        .await
        .unwrap();
    assert_eq!(a.zone.as_deref(), Some("us-east-1b"));
    assert!(a.handle.starts_with("vol-"), "{}", a.handle);
    // AWS names are accepted as given; disks report the AWS zone (what
    // the nodes' topology.kubernetes.io/zone label carries).
    let b = d
        .create_disk(&scope, "db", disk("b", "us-east-1c"))
        .await
        .unwrap();
    assert_eq!(b.zone.as_deref(), Some("us-east-1c"));
    d.assign_disk(&scope, "db", "a").await.unwrap();

    let raw = raw_volumes(REGION, "zones1").await;
    assert_eq!(raw.len(), 2);
    let va = raw
        .iter()
        .find(|v| v.volume_id() == Some(a.handle.as_str()))
        .unwrap();
    assert_eq!(va.availability_zone(), Some("us-east-1b"));
    let t = tags_of(va.tags());
    for (k, v) in [
        (tags::APP_ID_HASH, "zones1"),
        (tags::APP_NAME, "shop"),
        (tags::VOLUME, "db"),
        (tags::DISK_NAME, "a"),
        (tags::DISK_ASSIGNED, "true"),
        (tags::MANAGED_BY, "kompox"),
        (tags::NAME, "kompox-shop-db-a"),
    ] {
        assert_eq!(t.get(k).map(String::as_str), Some(v), "tag {k}: {t:?}");
    }
    assert!(!t.contains_key(tags::CREATE_TOKEN), "finished create");
    let vb = raw
        .iter()
        .find(|v| v.volume_id() == Some(b.handle.as_str()))
        .unwrap();
    assert_eq!(vb.availability_zone(), Some("us-east-1c"));
    assert_eq!(
        tags_of(vb.tags())
            .get(tags::DISK_ASSIGNED)
            .map(String::as_str),
        Some("false")
    );
    // Defaults: gp3, encrypted, 1 GiB (the contract's size).
    assert_eq!(va.volume_type().map(|t| t.as_str()), Some("gp3"));
    assert_eq!(va.encrypted(), Some(true));
    assert_eq!(va.size(), Some(1));

    let listed = d.list_disks(&scope).await.unwrap();
    let zones: BTreeMap<String, Option<String>> = listed
        .iter()
        .map(|x| (x.name.clone(), x.zone.clone()))
        .collect();
    assert_eq!(
        zones,
        BTreeMap::from([
            ("a".to_string(), Some("us-east-1b".to_string())),
            ("b".to_string(), Some("us-east-1c".to_string())),
        ])
    );
    // A volume someone else made in the same account is not a disk.
    ec2(REGION)
        .create_volume()
        .availability_zone("us-east-1a")
        .size(1)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key(tags::APP_ID_HASH)
                        .value("zones1")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(d.list_disks(&scope).await.unwrap().len(), 2);
}

#[tokio::test]
async fn disk_options_reach_ebs() {
    let d = driver(REGION);
    let scope = DiskScope::new("options1", "db");
    let mut req = disk("io", "us-east-1-1");
    req.size_bytes = (3 << 30) / 2; // 1.5 GiB → 2 GiB
    req.options = serde_json::from_value(serde_json::json!({"type": "io2", "iops": 1000})).unwrap();
    let io = d.create_disk(&scope, "data", req).await.unwrap();
    assert_eq!(io.size_bytes, 2 << 30);
    let mut req = disk("tp", "us-east-1-1");
    req.options = serde_json::from_value(
        serde_json::json!({"type": "gp3", "throughput": 250, "iops": 4000, "encrypted": false}),
    )
    .unwrap();
    let tp = d.create_disk(&scope, "data", req).await.unwrap();
    let raw = raw_volumes(REGION, "options1").await;
    let get = |id: &str| {
        raw.iter()
            .find(|v| v.volume_id() == Some(id))
            .unwrap()
            .clone()
    };
    let v = get(&io.handle);
    assert_eq!(v.volume_type().map(|t| t.as_str()), Some("io2"));
    assert_eq!((v.iops(), v.size()), (Some(1000), Some(2)));
    let v = get(&tp.handle);
    assert_eq!((v.throughput(), v.iops()), (Some(250), Some(4000)));
    assert_eq!(v.encrypted(), Some(false));
}

#[tokio::test]
async fn placements_and_options_ebs_cannot_honour_are_refused_before_anything_is_made() {
    let d = driver(REGION);
    let scope = DiskScope::new("refused1", "app");
    let err = |r: Result<Disk, DriverError>| r.unwrap_err();
    match err(d
        .create_disk(&scope, "data", create("x", Placement::Any, None))
        .await)
    {
        DriverError::InvalidInput(m) => {
            assert!(m.contains("-Z") && m.contains("deployment.zone"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    for p in [
        Placement::Regional(vec!["us-east-1-1".into(), "us-east-1-2".into()]),
        Placement::ZoneRedundant,
        Placement::Node("ip-10-0-0-1".into()),
    ] {
        assert!(
            matches!(
                d.create_disk(&scope, "data", create("x", p.clone(), None))
                    .await,
                Err(DriverError::NotSupported(_))
            ),
            "{p:?}"
        );
    }
    // moto accepts any zone name; the driver checks it against the
    // region's zones first.
    for z in ["us-east-1-9", "us-east-1z", "us-west-2-1", "use1-az1"] {
        match err(d.create_disk(&scope, "data", disk("x", z)).await) {
            DriverError::InvalidInput(m) => assert!(m.contains("us-east-1-1"), "{z}: {m}"),
            other => panic!("{z}: {other:?}"),
        }
    }
    let mut bad = disk("x", "us-east-1-1");
    bad.options = serde_json::from_value(serde_json::json!({"type": "io1"})).unwrap();
    assert!(matches!(
        d.create_disk(&scope, "data", bad).await,
        Err(DriverError::InvalidInput(m)) if m.contains("iops")
    ));
    assert!(raw_volumes(REGION, "refused1").await.is_empty());
}

#[tokio::test]
async fn snapshot_copied_to_another_region_restores_there_with_its_tags() {
    let east = driver(REGION);
    let west = driver(OTHER_REGION);
    let scope = DiskScope::new("dr1", "wiki");
    east.create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    east.assign_disk(&scope, "data", "d1").await.unwrap();
    let s1 = east
        .create_snapshot(&scope, "data", "s1", None)
        .await
        .unwrap();

    let op = east
        .copy_snapshot(&scope, "data", "s1", OTHER_REGION)
        .await
        .unwrap();
    assert!(op.id.starts_with("ebs-copy:us-west-2:snap-"), "{}", op.id);
    assert_eq!(op.target, "data/s1");
    let done = wait_operation(
        &east,
        op.clone(),
        Duration::from_millis(20),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(done.state, OperationState::Succeeded);
    // A new process resumes by id; copying again is the same operation.
    assert_eq!(
        driver(REGION).poll_operation(&op.id).await.unwrap().state,
        OperationState::Succeeded
    );
    let again = east
        .copy_snapshot(&scope, "data", "s1", OTHER_REGION)
        .await
        .unwrap();
    assert_eq!(again.id, op.id);

    // The copy is a snapshot of the app in the other region, tags kept.
    let listed = west.list_snapshots(&scope).await.unwrap();
    assert_eq!(listed.len(), 1);
    let copy = &listed[0];
    assert_eq!((copy.name.as_str(), copy.volume.as_str()), ("s1", "data"));
    assert_eq!(copy.source_disk.as_deref(), Some("d1"));
    assert_ne!(copy.handle, s1.handle);
    let raw = raw_snapshots(OTHER_REGION, "dr1").await;
    let t = tags_of(raw[0].tags());
    assert_eq!(t.get(tags::APP_NAME).map(String::as_str), Some("wiki"));
    assert_eq!(t.get(tags::MANAGED_BY).map(String::as_str), Some("kompox"));
    assert_eq!(
        t.get(tags::COPIED_FROM),
        Some(&format!("{REGION}/{}", s1.handle))
    );
    assert!(!t.contains_key(tags::CREATE_TOKEN));

    // Restore in the other region from the copy.
    let r = west
        .create_disk(
            &scope,
            "data",
            create(
                "r1",
                zonal("us-west-2-2"),
                Some(Source::Snapshot("s1".into())),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.zone.as_deref(), Some("us-west-2b"));
    let raw = raw_volumes(OTHER_REGION, "dr1").await;
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].availability_zone(), Some("us-west-2b"));
    assert_eq!(raw[0].snapshot_id(), Some(copy.handle.as_str()));
    // The source region still has exactly its own.
    assert_eq!(east.list_disks(&scope).await.unwrap().len(), 1);
    assert!(matches!(
        east.copy_snapshot(&scope, "data", "s1", REGION).await,
        Err(DriverError::InvalidInput(_))
    ));
    assert!(matches!(
        east.copy_snapshot(&scope, "data", "nope", OTHER_REGION)
            .await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn pending_snapshots_are_waited_for_and_not_listed() {
    let (proxy, mut d) = proxied(Timing::fast());
    let reports: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let r = reports.clone();
    d.set_progress(Some(Arc::new(move |p: &Progress| {
        r.lock().unwrap().push(p.clone())
    })));
    let scope = DiskScope::new("pending1", "app");
    d.create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    d.assign_disk(&scope, "data", "d1").await.unwrap();
    // moto completes snapshots at once; the proxy shows them pending.
    let pending = |n| {
        proxy.fail(
            Some("DescribeSnapshots"),
            n,
            Fault::rewrite(&[
                ("<status>completed</status>", "<status>pending</status>"),
                ("<progress>100%</progress>", "<progress>40%</progress>"),
            ]),
        )
    };
    let before = proxy.seen_action("DescribeSnapshots").len();
    pending(3);
    let s = d.create_snapshot(&scope, "data", "s1", None).await.unwrap();
    assert_eq!(s.name, "s1");
    assert!(
        proxy.seen_action("DescribeSnapshots").len() - before >= 4,
        "polled until completed"
    );
    let seen = reports.lock().unwrap().clone();
    assert!(!seen.is_empty(), "progress reported while pending");
    assert!(seen.iter().all(|p| p.what.contains("data/s1")));
    assert!(
        seen.iter()
            .any(|p| p.total_bytes == Some(1 << 30) && p.done_bytes == (1 << 30) / 100 * 40),
        "{seen:?}"
    );

    // Listed only once completed.
    proxy.clear();
    pending(1);
    assert!(d.list_snapshots(&scope).await.unwrap().is_empty());
    assert_eq!(d.list_snapshots(&scope).await.unwrap().len(), 1);

    // A pending copy polls as running, then succeeded.
    let op = d
        .copy_snapshot(&scope, "data", "s1", OTHER_REGION)
        .await
        .unwrap();
    pending(1);
    assert_eq!(
        d.poll_operation(&op.id).await.unwrap().state,
        OperationState::Running
    );
    proxy.clear();
    assert_eq!(
        d.poll_operation(&op.id).await.unwrap().state,
        OperationState::Succeeded
    );
    // Waiting has a bound: past it the create is a retryable failure that
    // names how to resume, and running it again finishes it.
    let short = Timing {
        snapshot_wait: Duration::from_millis(50),
        ..Timing::fast()
    };
    let impatient = EksDriver::with_config(config(&proxy.endpoint, REGION).with_timing(short));
    pending(1000);
    let e = impatient
        .create_snapshot(&scope, "data", "s2", None)
        .await
        .unwrap_err();
    assert!(e.retryable() && e.to_string().contains("again"), "{e}");
    proxy.clear();
    let s2 = impatient
        .create_snapshot(&scope, "data", "s2", None)
        .await
        .unwrap();
    assert_eq!(s2.name, "s2");
    assert_eq!(raw_snapshots(REGION, "pending1").await.len(), 2);
}

#[tokio::test]
async fn a_snapshot_of_a_snapshot_is_a_copy_within_the_region() {
    let d = driver(REGION);
    let scope = DiskScope::new("snapcopy1", "app");
    d.create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    d.assign_disk(&scope, "data", "d1").await.unwrap();
    let s1 = d.create_snapshot(&scope, "data", "s1", None).await.unwrap();
    let s2 = d
        .create_snapshot(&scope, "data", "s2", Some(Source::Snapshot("s1".into())))
        .await
        .unwrap();
    assert_ne!(s2.handle, s1.handle);
    assert_eq!(s2.source_disk.as_deref(), Some("d1"), "kept from s1");
    let raw = raw_snapshots(REGION, "snapcopy1").await;
    assert_eq!(raw.len(), 2);
    let r2 = raw
        .iter()
        .find(|s| s.snapshot_id() == Some(s2.handle.as_str()))
        .unwrap();
    assert_eq!(
        tags_of(r2.tags())
            .get(tags::SNAPSHOT_NAME)
            .map(String::as_str),
        Some("s2")
    );
    assert!(matches!(
        d.create_snapshot(&scope, "data", "s3", Some(Source::Snapshot("nope".into())))
            .await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn volumes_still_creating_are_waited_for_and_failed_ones_reported() {
    let (proxy, d) = proxied(Timing::fast());
    let scope = DiskScope::new("creating1", "app");
    let show = |state: &str, n| {
        proxy.fail(
            Some("DescribeVolumes"),
            n,
            Fault::rewrite(&[(
                "<status>available</status>",
                &format!("<status>{state}</status>"),
            )]),
        )
    };
    // moto makes volumes `available` at once; the proxy shows `creating`.
    show("creating", 4);
    let d1 = d
        .create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    assert!(d1.handle.starts_with("vol-"));
    assert!(proxy.seen_action("DescribeVolumes").len() >= 4);

    // Past the wait bound: a retryable failure that says how to resume;
    // the same create then finishes the same volume.
    let short = Timing {
        volume_wait: Duration::from_millis(50),
        ..Timing::fast()
    };
    let impatient = EksDriver::with_config(config(&proxy.endpoint, REGION).with_timing(short));
    show("creating", 1000);
    let e = impatient
        .create_disk(&scope, "data", disk("d2", "us-east-1-1"))
        .await
        .unwrap_err();
    assert!(e.retryable() && e.to_string().contains("again"), "{e}");
    proxy.clear();
    let d2 = impatient
        .create_disk(&scope, "data", disk("d2", "us-east-1-1"))
        .await
        .unwrap();

    // A volume AWS fails is reported, not waited for.
    show("error", 1000);
    let e = d
        .create_disk(&scope, "data", disk("d3", "us-east-1-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DriverError::Io(m) if m.contains("failed")),
        "{e}"
    );
    proxy.clear();
    let handles: Vec<String> = raw_volumes(REGION, "creating1")
        .await
        .iter()
        .filter_map(|v| v.volume_id().map(str::to_string))
        .collect();
    assert_eq!(handles.len(), 3, "one volume per name: {handles:?}");
    assert!(handles.contains(&d2.handle));
}

#[tokio::test]
async fn a_create_whose_response_is_lost_makes_one_volume() {
    let (proxy, d) = proxied(Timing::fast());
    let scope = DiskScope::new("lost1", "app");
    proxy.fail(Some("CreateVolume"), 1, Fault::DropResponse);
    let d1 = d
        .create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    let raw = raw_volumes(REGION, "lost1").await;
    assert_eq!(raw.len(), 1, "one volume");
    assert_eq!(raw[0].volume_id(), Some(d1.handle.as_str()));
    // moto ignores ClientToken: the lookup by tags found the volume, so the
    // create was not sent again.
    assert_eq!(proxy.seen_action("CreateVolume").len(), 1);

    d.assign_disk(&scope, "data", "d1").await.unwrap();
    proxy.fail(Some("CreateSnapshot"), 1, Fault::DropResponse);
    d.create_snapshot(&scope, "data", "s1", None).await.unwrap();
    assert_eq!(
        raw_snapshots(REGION, "lost1").await.len(),
        1,
        "one snapshot"
    );
    assert_eq!(proxy.seen_action("CreateSnapshot").len(), 1);

    proxy.fail(Some("CopySnapshot"), 1, Fault::DropResponse);
    d.copy_snapshot(&scope, "data", "s1", OTHER_REGION)
        .await
        .unwrap();
    assert_eq!(
        raw_snapshots(OTHER_REGION, "lost1").await.len(),
        1,
        "one copy"
    );
}

#[tokio::test]
async fn throttled_and_unavailable_answers_are_retried_without_duplicates() {
    let (proxy, d) = proxied(Timing::fast());
    let scope = DiskScope::new("throttle1", "app");
    // EC2's throttling (503 RequestLimitExceeded), a generic 429, a bare
    // 503 from a load balancer, on reads and on the create itself.
    proxy.fail(Some("DescribeAvailabilityZones"), 2, Fault::error(503, ""));
    proxy.fail(Some("DescribeVolumes"), 2, Fault::error(429, "Throttling"));
    proxy.fail(
        Some("CreateVolume"),
        4,
        Fault::error(503, "RequestLimitExceeded"),
    );
    let started = Instant::now();
    let d1 = d
        .create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    let raw = raw_volumes(REGION, "throttle1").await;
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].volume_id(), Some(d1.handle.as_str()));
    let t = tokens(&proxy);
    assert_eq!(t.len(), 5, "four throttled attempts, then one sent");
    assert!(t.iter().all(|x| x == &t[0]), "one client token: {t:?}");
    assert!(t[0].starts_with("k4x-") && t[0].ends_with("-g0"), "{t:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(20 + 40 + 80 + 160),
        "backed off"
    );

    // More than the driver's attempts: a retryable failure, nothing made.
    proxy.fail(
        Some("CreateVolume"),
        100,
        Fault::error(503, "RequestLimitExceeded"),
    );
    let e = d
        .create_disk(&scope, "data", disk("d2", "us-east-1-1"))
        .await
        .unwrap_err();
    assert!(e.retryable(), "{e}");
    assert!(e.to_string().contains("disk data/d2"), "{e}");
    assert_eq!(raw_volumes(REGION, "throttle1").await.len(), 1);
}

#[tokio::test]
async fn answers_slower_than_the_timeout_are_retried_without_duplicates() {
    let timing = Timing {
        attempt_timeout: Duration::from_millis(700),
        ..Timing::fast()
    };
    let (proxy, d) = proxied(timing);
    let scope = DiskScope::new("slow1", "app");
    proxy.fail(
        Some("CreateVolume"),
        1,
        Fault::Delay(Duration::from_millis(1500)),
    );
    proxy.fail(
        Some("DescribeVolumes"),
        1,
        Fault::Delay(Duration::from_millis(1500)),
    );
    let d1 = d
        .create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    let raw = raw_volumes(REGION, "slow1").await;
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].volume_id(), Some(d1.handle.as_str()));
    assert_eq!(proxy.seen_action("CreateVolume").len(), 1);
}

#[tokio::test]
async fn a_deleted_disks_name_is_created_again_with_the_next_client_token() {
    let (proxy, d) = proxied(Timing::fast());
    let scope = DiskScope::new("regen1", "app");
    let first = d
        .create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    d.delete_disk(&scope, "data", "d1").await.unwrap();
    // AWS remembers the token of the deleted volume and refuses its reuse
    // (moto forgets it; the proxy answers as AWS does).
    proxy.fail(
        Some("CreateVolume"),
        1,
        Fault::error(400, "IdempotentParameterMismatch"),
    );
    let second = d
        .create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    assert_ne!(second.handle, first.handle);
    let t = tokens(&proxy);
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(t[0], t[1], "same request, same token");
    assert_eq!(t[2], t[1].replace("-g0", "-g1"), "then the next generation");
    assert_eq!(raw_volumes(REGION, "regen1").await.len(), 1);
}

#[tokio::test]
async fn an_unfinished_create_is_finished_by_the_same_create_and_blocks_others() {
    // One attempt only, and its answer lost: the create gives up and
    // leaves a volume marked unfinished, as a process killed after sending.
    let once = Timing {
        create_attempts: 1,
        ..Timing::fast()
    };
    let (proxy, d) = proxied(once);
    let scope = DiskScope::new("resume1", "app");
    proxy.fail(Some("CreateVolume"), 1, Fault::DropResponse);
    let e = d
        .create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap_err();
    assert!(e.retryable(), "{e}");
    let raw = raw_volumes(REGION, "resume1").await;
    assert_eq!(raw.len(), 1);
    assert!(tags_of(raw[0].tags()).contains_key(tags::CREATE_TOKEN));

    // Another request for the name (other size) is a clash.
    let mut other = disk("d1", "us-east-1-1");
    other.size_bytes = 5 << 30;
    match d.create_disk(&scope, "data", other).await {
        Err(DriverError::Conflict(m)) => assert!(m.contains("unfinished"), "{m}"),
        r => panic!("{r:?}"),
    }
    // The same request finishes it: same volume, marked finished.
    let d1 = d
        .create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    assert_eq!(Some(d1.handle.as_str()), raw[0].volume_id());
    let raw = raw_volumes(REGION, "resume1").await;
    assert_eq!(raw.len(), 1);
    assert!(!tags_of(raw[0].tags()).contains_key(tags::CREATE_TOKEN));
    // Now the name is simply taken.
    assert!(matches!(
        d.create_disk(&scope, "data", disk("d1", "us-east-1-1"))
            .await,
        Err(DriverError::Conflict(_))
    ));
}

#[tokio::test]
async fn aws_errors_map_to_what_a_retry_can_fix() {
    let (proxy, _) = proxied(Timing::fast());
    let secret = "wJalrXUtnFEMI-do-not-leak";
    let d = EksDriver::with_config(
        config(&proxy.endpoint, REGION).with_static_credentials("AKIDTESTING", secret),
    );
    let scope = DiskScope::new("errors1", "app");
    let cases = [
        (Fault::error(403, "UnauthorizedOperation"), "Permission"),
        (Fault::error(401, "AuthFailure"), "Permission"),
        (Fault::error(400, "InvalidParameterValue"), "InvalidInput"),
        (Fault::error(500, "InternalError"), "Transient"),
        (Fault::error(503, "RequestLimitExceeded"), "Transient"),
    ];
    for (fault, want) in cases {
        proxy.clear();
        proxy.fail(Some("DescribeVolumes"), 100, fault.clone());
        let e = d.list_disks(&scope).await.unwrap_err();
        let got = match &e {
            DriverError::Permission(_) => "Permission",
            DriverError::InvalidInput(_) => "InvalidInput",
            DriverError::Transient(_) => "Transient",
            _ => "other",
        };
        assert_eq!(got, want, "{fault:?}: {e}");
        let m = e.to_string();
        assert!(
            m.contains("EBS volumes of app `app`"),
            "names the call: {m}"
        );
        assert!(!m.contains(secret), "no credentials in messages: {m}");
    }
    proxy.clear();
    d.create_disk(&scope, "data", disk("d1", "us-east-1-1"))
        .await
        .unwrap();
    proxy.fail(Some("DeleteVolume"), 1, Fault::error(400, "VolumeInUse"));
    match d.delete_disk(&scope, "data", "d1").await {
        Err(DriverError::Conflict(m)) => assert!(m.contains("attached"), "{m}"),
        r => panic!("{r:?}"),
    }
    proxy.fail(
        Some("DeleteVolume"),
        1,
        Fault::error(400, "InvalidVolume.NotFound"),
    );
    d.delete_disk(&scope, "data", "d1").await.unwrap();
    // Nothing listening: a connection failure is worth retrying.
    let gone = EksDriver::with_config(config("http://127.0.0.1:9", REGION));
    assert!(gone.list_disks(&scope).await.unwrap_err().retryable());
}

// ------------------------------------------------- the CLI, killed mid-create

fn kom(endpoint: &str) -> String {
    format!(
        "apiVersion: ops.kompox.dev/v1alpha1
kind: Workspace
metadata: {{name: ws1, annotations: {{ops.kompox.dev/id: /ws/ws1}}}}
spec: {{}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Provider
metadata: {{name: aws1, annotations: {{ops.kompox.dev/id: /ws/ws1/prv/aws1}}}}
spec:
  driver: eks
  settings:
    AWS_REGION: {REGION}
    AWS_ENDPOINT_URL: \"{endpoint}\"
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Cluster
metadata: {{name: cls1, annotations: {{ops.kompox.dev/id: /ws/ws1/prv/aws1/cls/cls1}}}}
spec: {{}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: App
metadata: {{name: killed, annotations: {{ops.kompox.dev/id: /ws/ws1/prv/aws1/cls/cls1/app/killed}}}}
spec:
  compose: file:compose.yml
  volumes: [{{name: data, size: 1Gi}}]
"
    )
}

/// `kompoxops` in `dir`, with moto's static credentials in its
/// environment and nothing of the developer's AWS setup.
fn kompoxops(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kompoxops"));
    cmd.current_dir(dir)
        .env_remove("KOMPOX_ROOT")
        .env_remove("KOMPOX_DIR")
        .env_remove("KOMPOX_KOM_PATH")
        .env_remove("KOMPOX_KOM_APP")
        .env_remove("KUBECONFIG")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_EC2")
        .env_remove("AWS_SESSION_TOKEN")
        .env("HOME", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials");
    for (k, v) in moto::aws_env(&moto().endpoint) {
        if k != "AWS_ENDPOINT_URL" {
            cmd.env(k, v);
        }
    }
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn a_disk_create_killed_after_sending_is_finished_by_the_next_run() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".kompox")).unwrap();
    std::fs::write(dir.path().join("kompoxapp.yml"), kom(&proxy.endpoint)).unwrap();
    std::fs::write(
        dir.path().join("compose.yml"),
        "services:\n  web:\n    image: nginx:1.27\n    volumes: [\"data:/data\"]\n",
    )
    .unwrap();
    let args = [
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "d1",
        "-Z",
        "us-east-1-1",
    ];

    // moto makes the volume, the answer never comes; kill -9.
    proxy.fail(Some("CreateVolume"), 1, Fault::Stall);
    let mut child = kompoxops(dir.path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = proxy.wait_forwarded("CreateVolume", 1, Duration::from_secs(60));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        reached,
        "CreateVolume never reached moto: {}",
        text(&out.stderr)
    );
    let hash = |v: &aws_sdk_ec2::types::Volume| {
        tags_of(v.tags())
            .get(tags::APP_ID_HASH)
            .cloned()
            .unwrap_or_default()
    };
    let all = ec2(REGION)
        .describe_volumes()
        .filters(tag_filter(tags::APP_NAME, "killed"))
        .send()
        .await
        .unwrap()
        .volumes()
        .to_vec();
    assert_eq!(all.len(), 1, "the killed run made its volume");
    let app_id_hash = hash(&all[0]);
    let vol_id = all[0].volume_id().unwrap().to_string();
    assert!(tags_of(all[0].tags()).contains_key(tags::CREATE_TOKEN));

    // The same command again: finishes that volume, makes none.
    let run = |a: &[&str]| -> Output { kompoxops(dir.path()).args(a).output().unwrap() };
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["handle"], vol_id.as_str());
    assert_eq!(created["zone"], "us-east-1a");
    let raw = raw_volumes(REGION, &app_id_hash).await;
    assert_eq!(raw.len(), 1);
    assert!(!tags_of(raw[0].tags()).contains_key(tags::CREATE_TOKEN));
    // A third run: the name is taken.
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["disk", "list", "-V", "data"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(raw_volumes(REGION, &app_id_hash).await.len(), 1);
}

/// A region move with the CLI: snapshot in us-east-1, `snapshot copy
/// --to-region us-west-2`, point the Provider at us-west-2 (same names,
/// so the same app identity), and restore the copy there.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_moves_a_volume_to_another_region_through_a_snapshot_copy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".kompox")).unwrap();
    let app_file = dir.path().join("kompoxapp.yml");
    std::fs::write(&app_file, kom(&moto().endpoint).replace("killed", "mover")).unwrap();
    std::fs::write(
        dir.path().join("compose.yml"),
        "services:\n  web:\n    image: nginx:1.27\n    volumes: [\"data:/data\"]\n",
    )
    .unwrap();
    let run = |a: &[&str]| -> serde_json::Value {
        let out = kompoxops(dir.path()).args(a).output().unwrap();
        assert!(out.status.success(), "{a:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    run(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "d1",
        "-Z",
        "us-east-1-1",
    ]);
    run(&[
        "snapshot", "create", "-V", "data", "-N", "s1", "-S", "disk:d1",
    ]);
    let op = run(&[
        "snapshot",
        "copy",
        "-V",
        "data",
        "-N",
        "s1",
        "--to-region",
        OTHER_REGION,
    ]);
    assert_eq!(op["kind"], "copy_snapshot", "{op}");
    assert_eq!(op["state"], "succeeded", "{op}");
    assert!(
        op["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("ebs-copy:{OTHER_REGION}:snap-")),
        "{op}"
    );

    // The Provider now points at the other region.
    let text_kom = std::fs::read_to_string(&app_file).unwrap();
    std::fs::write(
        &app_file,
        text_kom.replace(
            &format!("AWS_REGION: {REGION}"),
            &format!("AWS_REGION: {OTHER_REGION}"),
        ),
    )
    .unwrap();
    let snaps = run(&["snapshot", "list", "-V", "data"]);
    assert_eq!(snaps[0]["name"], "s1", "{snaps}");
    let disk = run(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "d1",
        "-S",
        "snapshot:s1",
        "-Z",
        &format!("{OTHER_REGION}-1"),
    ]);
    assert_eq!(disk["zone"], format!("{OTHER_REGION}a"), "{disk}");
    let raw = ec2(OTHER_REGION)
        .describe_volumes()
        .volume_ids(disk["handle"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let copied = snaps[0]["handle"].as_str().unwrap();
    assert_eq!(raw.volumes()[0].snapshot_id(), Some(copied));
}
