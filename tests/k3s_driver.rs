//! The driver contract suite (`tests/support/contract.rs`), run against
//! the K3s driver on real files (two nodes = two temporary directories),
//! and the K3s specifics: layout, metadata, partial and corrupt snapshots.

#[path = "support/contract.rs"]
mod contract;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use contract::{DirFixture, Fixture, contract_suite, create, k3s_handle, names};
use kompox::model::{AppVolume, VolumeType};
use kompox::provider::driver::{DiskScope, Driver, DriverError, Placement, Source, driver_for};
use kompox::provider::k3s::{K3sDriver, LocalHost};

/// Two K3s nodes, each a temporary directory.
struct K3sFixture {
    _dirs: Vec<tempfile::TempDir>,
    roots: BTreeMap<String, PathBuf>,
    disks: DirFixture,
}

impl K3sFixture {
    fn new() -> Self {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let roots = BTreeMap::from([
            ("node-a".to_string(), a.path().join("kompox")),
            ("node-b".to_string(), b.path().join("kompox")),
        ]);
        K3sFixture {
            _dirs: vec![a, b],
            roots,
            disks: DirFixture::k3s("node-a", "node-b"),
        }
    }

    fn driver(&self) -> K3sDriver {
        K3sDriver::new(LocalHost::new(self.roots.clone()))
    }
}

fn scope() -> DiskScope {
    DiskScope::new("abc123", "gitea")
}

#[tokio::test]
async fn k3s_contract_two_nodes() {
    let fx = K3sFixture::new();
    let driver = fx.driver();
    contract_suite(&driver, &scope(), &fx.disks).await;
}

#[tokio::test]
async fn k3s_contract_through_registry() {
    let fx = K3sFixture::new();
    let roots: Vec<String> = fx
        .roots
        .iter()
        .map(|(n, p)| format!("{n}={}", p.display()))
        .collect();
    let settings = BTreeMap::from([("K3S_NODE_ROOTS".to_string(), roots.join(","))]);
    let driver: Box<dyn Driver> = driver_for("k3s", &settings).unwrap();
    assert_eq!(driver.id(), "k3s");
    contract_suite(driver.as_ref(), &scope(), &fx.disks).await;
}

#[tokio::test]
async fn k3s_layout_handle_and_metadata() {
    let fx = K3sFixture::new();
    let driver = fx.driver();
    let sc = scope();
    let d = driver
        .create_disk(&sc, "data", create("d1", Placement::Any, None))
        .await
        .unwrap();
    // Placement::Any = the first node by name.
    assert_eq!(d.node.as_deref(), Some("node-a"));
    let dir = fx.roots["node-a"].join("disks/abc123/data/d1");
    assert_eq!(d.handle, format!("k3s:node-a:{}", dir.display()));
    assert!(dir.is_dir());
    let meta_path = fx.roots["node-a"].join("disks/abc123/data/d1.json");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["assigned"], false);
    assert_eq!(meta["app_id_hash"], "abc123");
    driver.assign_disk(&sc, "data", "d1").await.unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["assigned"], true, "assigned lives in the metadata");
    // No temporary files left behind.
    let left: Vec<String> = std::fs::read_dir(fx.roots["node-a"].join("disks/abc123/data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Zonal placement is not a K3s notion.
    assert!(matches!(
        driver
            .create_disk(
                &sc,
                "data",
                create("d2", Placement::Zonal("z1".into()), None)
            )
            .await,
        Err(DriverError::NotSupported(_))
    ));
    assert!(matches!(
        driver
            .create_disk(
                &sc,
                "data",
                create("d2", Placement::Node("nope".into()), None)
            )
            .await,
        Err(DriverError::InvalidInput(_))
    ));
    // A fresh driver (no state) sees the same disk: identity is in metadata.
    let again = fx.driver().list_disks(&sc).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].assigned);
}

#[tokio::test]
async fn half_written_snapshots_are_not_listed() {
    let fx = K3sFixture::new();
    let driver = fx.driver();
    let sc = scope();
    driver
        .create_disk(&sc, "data", create("d1", Placement::Any, None))
        .await
        .unwrap();
    driver.assign_disk(&sc, "data", "d1").await.unwrap();
    let snaps = fx.roots["node-a"].join("snapshots/abc123/data");
    std::fs::create_dir_all(&snaps).unwrap();
    // Interrupted copy: temporary directory only.
    std::fs::create_dir_all(snaps.join(".s1.partial/sub")).unwrap();
    std::fs::write(snaps.join(".s1.partial/sub/f"), b"partial").unwrap();
    // Renamed data but no metadata yet.
    std::fs::create_dir_all(snaps.join("s2.d")).unwrap();
    // Metadata not saying complete.
    std::fs::create_dir_all(snaps.join("s3.d")).unwrap();
    std::fs::write(
        snaps.join("s3.json"),
        serde_json::json!({
            "kind": "kompox-k3s-snapshot", "name": "s3", "volume": "data",
            "app_id_hash": "abc123", "app_name": "gitea", "complete": false,
            "checksum": "", "size_bytes": 0, "entries": 0, "node": "node-a",
            "created_at": "2026-01-01T00:00:00Z"
        })
        .to_string(),
    )
    .unwrap();
    // Temporary metadata.
    std::fs::write(snaps.join(".s4.json.tmp"), b"{").unwrap();
    assert!(driver.list_snapshots(&sc).await.unwrap().is_empty());
    // Restoring from any of them is NotFound.
    for s in ["s1", "s2", "s3"] {
        assert!(matches!(
            driver
                .create_disk(
                    &sc,
                    "data",
                    create("r", Placement::Any, Some(Source::Snapshot(s.into())))
                )
                .await,
            Err(DriverError::NotFound(_))
        ));
    }
    // Leftovers do not block a new snapshot of the same name.
    driver
        .create_snapshot(&sc, "data", "s1", None)
        .await
        .unwrap();
    driver
        .create_snapshot(&sc, "data", "s2", None)
        .await
        .unwrap();
    let listed = driver.list_snapshots(&sc).await.unwrap();
    assert_eq!(names(&listed, |s| &s.name), vec!["s1", "s2"]);
    assert!(!snaps.join(".s1.partial").exists());
}

#[tokio::test]
async fn checksum_mismatch_is_not_listed_and_is_reported() {
    let fx = K3sFixture::new();
    let driver = fx.driver();
    let sc = scope();
    let d = driver
        .create_disk(&sc, "data", create("d1", Placement::Any, None))
        .await
        .unwrap();
    driver.assign_disk(&sc, "data", "d1").await.unwrap();
    fx.disks
        .write_files(&d, &BTreeMap::from([("f".to_string(), b"abc".to_vec())]));
    let s = driver
        .create_snapshot(&sc, "data", "s1", None)
        .await
        .unwrap();
    assert_eq!(s.size_bytes, 3);
    assert!(s.checksum.is_some());
    driver.verify_snapshot(&sc, "data", "s1").unwrap();
    // Same size, different content.
    let data = fx.roots["node-a"].join("snapshots/abc123/data/s1.d/f");
    std::fs::write(&data, b"abd").unwrap();
    assert!(driver.list_snapshots(&sc).await.unwrap().is_empty());
    assert!(matches!(
        driver.verify_snapshot(&sc, "data", "s1"),
        Err(DriverError::Corrupt(_))
    ));
    assert!(matches!(
        driver
            .create_disk(
                &sc,
                "data",
                create("r", Placement::Any, Some(Source::Snapshot("s1".into())))
            )
            .await,
        Err(DriverError::NotFound(_))
    ));
    // The name stays taken until the bad snapshot is deleted.
    assert!(matches!(
        driver.create_snapshot(&sc, "data", "s1", None).await,
        Err(DriverError::Conflict(_))
    ));
    driver.delete_snapshot(&sc, "data", "s1").await.unwrap();
    driver
        .create_snapshot(&sc, "data", "s1", None)
        .await
        .unwrap();
    assert_eq!(driver.list_snapshots(&sc).await.unwrap().len(), 1);
}

#[test]
fn k3s_volume_class_is_the_static_one() {
    let fx = K3sFixture::new();
    let driver = fx.driver();
    let mut v = AppVolume {
        name: "data".into(),
        size_bytes: 1 << 30,
        kind: VolumeType::Disk,
        options: BTreeMap::new(),
        source: None,
        span: Default::default(),
    };
    let class = driver.volume_class(&v).unwrap();
    assert_eq!(
        Some(class.clone()),
        kompox::provider::volume_class("k3s", &v)
    );
    assert_eq!(class.storage_class_name, "kompox-local");
    assert_eq!(class.source, kompox::provider::VolumeSource::Local);
    v.kind = VolumeType::Files;
    assert!(matches!(
        driver.volume_class(&v),
        Err(DriverError::NotSupported(_))
    ));
}

#[cfg(unix)]
#[tokio::test]
async fn restore_keeps_modes_and_symlinks() {
    use std::os::unix::fs::PermissionsExt;
    let fx = K3sFixture::new();
    let driver = fx.driver();
    let sc = scope();
    let d = driver
        .create_disk(&sc, "data", create("d1", Placement::Any, None))
        .await
        .unwrap();
    driver.assign_disk(&sc, "data", "d1").await.unwrap();
    let (_, dir) = k3s_handle(&d.handle);
    std::fs::create_dir(dir.join("pgdata")).unwrap();
    std::fs::write(dir.join("pgdata/secret"), b"s").unwrap();
    std::fs::set_permissions(
        dir.join("pgdata/secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("pgdata"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("pgdata/secret", dir.join("link")).unwrap();
    driver
        .create_snapshot(&sc, "data", "s1", None)
        .await
        .unwrap();
    let r = driver
        .create_disk(
            &sc,
            "data",
            create(
                "r1",
                Placement::Node("node-b".into()),
                Some(Source::Snapshot("s1".into())),
            ),
        )
        .await
        .unwrap();
    let (_, rdir) = k3s_handle(&r.handle);
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&rdir.join("pgdata")), 0o700);
    assert_eq!(mode(&rdir.join("pgdata/secret")), 0o600);
    assert_eq!(mode(&rdir), mode(&dir));
    assert_eq!(
        std::fs::read_link(rdir.join("link")).unwrap(),
        PathBuf::from("pgdata/secret")
    );
    // A mode change alone makes the snapshot fail verification.
    let snap = fx.roots["node-a"].join("snapshots/abc123/data/s1.d/pgdata/secret");
    std::fs::set_permissions(&snap, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        driver.verify_snapshot(&sc, "data", "s1"),
        Err(DriverError::Corrupt(_))
    ));
}

#[tokio::test]
async fn unreadable_metadata_keeps_the_name_taken() {
    let fx = K3sFixture::new();
    let driver = fx.driver();
    let sc = scope();
    let vol = fx.roots["node-b"].join("disks/abc123/data");
    std::fs::create_dir_all(vol.join("d1")).unwrap();
    std::fs::write(vol.join("d1/precious"), b"data").unwrap();
    std::fs::write(vol.join("d1.json"), b"not json").unwrap();
    assert!(driver.list_disks(&sc).await.unwrap().is_empty());
    assert!(matches!(
        driver
            .create_disk(&sc, "data", create("d1", Placement::Any, None))
            .await,
        Err(DriverError::Conflict(_))
    ));
    assert_eq!(std::fs::read(vol.join("d1/precious")).unwrap(), b"data");
}
