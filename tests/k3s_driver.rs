//! The driver contract suite, run against the K3s driver on real files
//! (two nodes = two temporary directories).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kompox::live::{LiveDisk, LiveSnapshot};
use kompox::model::{AppVolume, VolumeType};
use kompox::provider::driver::{
    CreateDisk, Disk, DiskScope, Driver, DriverError, Placement, Snapshot, Source, driver_for,
};
use kompox::provider::k3s::{K3sDriver, LocalHost};

type Files = BTreeMap<String, Vec<u8>>;

/// What the suite needs beyond the driver: where disks go and how to put
/// data on a disk and read it back.
trait Fixture {
    fn placement_a(&self) -> Placement;
    fn placement_b(&self) -> Placement;
    fn write_files(&self, disk: &Disk, files: &Files);
    fn read_files(&self, disk: &Disk) -> Files;
}

fn create(name: &str, placement: Placement, source: Option<Source>) -> CreateDisk {
    CreateDisk {
        name: name.to_string(),
        size_bytes: 1 << 30,
        placement,
        source,
        options: BTreeMap::new(),
    }
}

fn assigned(disks: &[Disk], volume: &str) -> Vec<String> {
    disks
        .iter()
        .filter(|d| d.volume == volume && d.assigned)
        .map(|d| d.name.clone())
        .collect()
}

fn names<T>(v: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
    let mut n: Vec<String> = v.iter().map(|x| f(x).to_string()).collect();
    n.sort();
    n
}

/// The contract every driver keeps (reference §6.1–§6.3, DECISIONS 3/11).
async fn contract_suite(driver: &dyn Driver, scope: &DiskScope, fx: &dyn Fixture) {
    let vol = "data";

    // Empty.
    assert!(driver.list_disks(scope).await.unwrap().is_empty());
    assert!(driver.list_snapshots(scope).await.unwrap().is_empty());
    let (d, s) = driver.observe(scope).await.unwrap();
    assert!(d.is_empty() && s.is_empty());

    // Create; name collision; bad name.
    let d1 = driver
        .create_disk(scope, vol, create("d1", fx.placement_a(), None))
        .await
        .unwrap();
    assert_eq!(d1.name, "d1");
    assert_eq!(d1.volume, vol);
    assert_eq!(d1.app_id_hash, scope.app_id_hash);
    assert!(!d1.assigned, "a created disk starts unassigned");
    assert!(!d1.handle.is_empty());
    assert!(matches!(
        driver
            .create_disk(scope, vol, create("d1", fx.placement_a(), None))
            .await,
        Err(DriverError::Conflict(_))
    ));
    assert!(matches!(
        driver
            .create_disk(scope, vol, create("Bad_Name", fx.placement_a(), None))
            .await,
        Err(DriverError::InvalidInput(_))
    ));
    assert!(matches!(
        driver
            .create_disk(scope, vol, create(&"x".repeat(25), fx.placement_a(), None))
            .await,
        Err(DriverError::InvalidInput(_))
    ));

    // Assign: exactly one per volume.
    driver.assign_disk(scope, vol, "d1").await.unwrap();
    let d2 = driver
        .create_disk(scope, vol, create("d2", fx.placement_a(), None))
        .await
        .unwrap();
    assert!(!d2.assigned);
    let disks = driver.list_disks(scope).await.unwrap();
    assert_eq!(assigned(&disks, vol), vec!["d1"]);
    driver.assign_disk(scope, vol, "d2").await.unwrap();
    assert_eq!(
        assigned(&driver.list_disks(scope).await.unwrap(), vol),
        vec!["d2"]
    );
    driver.assign_disk(scope, vol, "d1").await.unwrap();
    driver.assign_disk(scope, vol, "d1").await.unwrap(); // idempotent
    assert_eq!(
        assigned(&driver.list_disks(scope).await.unwrap(), vol),
        vec!["d1"]
    );
    assert!(matches!(
        driver.assign_disk(scope, vol, "nope").await,
        Err(DriverError::NotFound(_))
    ));
    assert_eq!(
        assigned(&driver.list_disks(scope).await.unwrap(), vol),
        vec!["d1"],
        "a failed assign changes nothing"
    );

    // Delete: assigned refused, unassigned ok, missing ok.
    assert!(matches!(
        driver.delete_disk(scope, vol, "d1").await,
        Err(DriverError::Conflict(_))
    ));
    driver.delete_disk(scope, vol, "d2").await.unwrap();
    driver.delete_disk(scope, vol, "d2").await.unwrap();
    let disks = driver.list_disks(scope).await.unwrap();
    assert_eq!(names(&disks, |d| &d.name), vec!["d1"]);

    // Snapshot of the assigned disk (default source).
    let files: Files = BTreeMap::from([
        ("a.txt".to_string(), b"hello\n".to_vec()),
        ("empty".to_string(), Vec::new()),
        (
            "sub/dir/bin".to_string(),
            (0u8..=255).cycle().take(70_000).collect(),
        ),
    ]);
    fx.write_files(&d1, &files);
    let s1 = driver
        .create_snapshot(scope, vol, "s1", None)
        .await
        .unwrap();
    assert_eq!(s1.name, "s1");
    assert_eq!(s1.volume, vol);
    assert_eq!(s1.source_disk.as_deref(), Some("d1"));
    assert!(matches!(
        driver.create_snapshot(scope, vol, "s1", None).await,
        Err(DriverError::Conflict(_))
    ));
    let snaps = driver.list_snapshots(scope).await.unwrap();
    assert_eq!(names(&snaps, |s| &s.name), vec!["s1"]);

    // The snapshot does not follow later writes to the disk.
    let mut changed = files.clone();
    changed.insert("a.txt".to_string(), b"changed\n".to_vec());
    fx.write_files(&d1, &changed);

    // Restore into a new disk on another node: byte-identical files.
    let d3 = driver
        .create_disk(
            scope,
            vol,
            create("d3", fx.placement_b(), Some(Source::Snapshot("s1".into()))),
        )
        .await
        .unwrap();
    assert!(!d3.assigned);
    assert_ne!(d3.handle, d1.handle);
    assert_eq!(fx.read_files(&d3), files);

    // Clone a disk.
    let d4 = driver
        .create_disk(
            scope,
            vol,
            create("d4", fx.placement_a(), Some(Source::Disk("d1".into()))),
        )
        .await
        .unwrap();
    assert_eq!(fx.read_files(&d4), changed);

    // Sources that do not exist.
    assert!(matches!(
        driver
            .create_disk(
                scope,
                vol,
                create(
                    "d5",
                    fx.placement_a(),
                    Some(Source::Snapshot("nope".into()))
                )
            )
            .await,
        Err(DriverError::NotFound(_))
    ));
    assert!(matches!(
        driver
            .create_disk(
                scope,
                vol,
                create("d5", fx.placement_a(), Some(Source::Disk("nope".into())))
            )
            .await,
        Err(DriverError::NotFound(_))
    ));
    assert!(matches!(
        driver
            .create_snapshot(scope, vol, "s2", Some(Source::Disk("nope".into())))
            .await,
        Err(DriverError::NotFound(_))
    ));
    assert!(matches!(
        driver.create_snapshot(scope, "other", "s2", None).await,
        Err(DriverError::NotFound(_))
    ));

    // Snapshot of a named disk.
    let s2 = driver
        .create_snapshot(scope, vol, "s2", Some(Source::Disk("d3".into())))
        .await
        .unwrap();
    assert_eq!(s2.source_disk.as_deref(), Some("d3"));

    // Observe returns everything, sorted; JSON feeds back as live.
    let (disks, snaps) = driver.observe(scope).await.unwrap();
    assert_eq!(names(&disks, |d| &d.name), vec!["d1", "d3", "d4"]);
    assert_eq!(names(&snaps, |s| &s.name), vec!["s1", "s2"]);
    assert_eq!(assigned(&disks, vol), vec!["d1"]);
    for w in disks.windows(2) {
        assert!(
            (&w[0].volume, &w[1].created_at, &w[0].name)
                <= (&w[1].volume, &w[0].created_at, &w[1].name),
            "disks sorted by volume, created_at desc, name"
        );
    }
    for d in &disks {
        let live: LiveDisk = serde_json::from_value(serde_json::to_value(d).unwrap()).unwrap();
        assert_eq!(live, d.to_live());
    }
    for s in &snaps {
        let live: LiveSnapshot = serde_json::from_value(serde_json::to_value(s).unwrap()).unwrap();
        assert_eq!(live, s.to_live());
    }
    let d1_now = disks.iter().find(|d| d.name == "d1").unwrap();
    assert_eq!(d1_now.handle, d1.handle, "the handle is stable");

    // Delete snapshots; missing is success.
    driver.delete_snapshot(scope, vol, "s2").await.unwrap();
    driver.delete_snapshot(scope, vol, "s2").await.unwrap();
    let snaps: Vec<Snapshot> = driver.list_snapshots(scope).await.unwrap();
    assert_eq!(names(&snaps, |s| &s.name), vec!["s1"]);

    // Another app sees nothing of this one.
    let other = DiskScope::new("zzzzzz", "other");
    assert!(driver.list_disks(&other).await.unwrap().is_empty());
    assert!(driver.list_snapshots(&other).await.unwrap().is_empty());
}

/// Two K3s nodes, each a temporary directory.
struct K3sFixture {
    _dirs: Vec<tempfile::TempDir>,
    roots: BTreeMap<String, PathBuf>,
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
        }
    }

    fn driver(&self) -> K3sDriver {
        K3sDriver::new(LocalHost::new(self.roots.clone()))
    }

    /// `k3s:<node>:<path>` → (node, path).
    fn parse_handle(handle: &str) -> (String, PathBuf) {
        let rest = handle.strip_prefix("k3s:").expect("k3s handle");
        let (node, path) = rest.split_once(':').expect("node:path");
        (node.to_string(), PathBuf::from(path))
    }
}

fn read_tree(dir: &Path, rel: &str, out: &mut Files) {
    for e in std::fs::read_dir(dir.join(rel)).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().unwrap().is_dir() {
            read_tree(dir, &r, out);
        } else {
            out.insert(r, std::fs::read(e.path()).unwrap());
        }
    }
}

impl Fixture for K3sFixture {
    fn placement_a(&self) -> Placement {
        Placement::Node("node-a".into())
    }
    fn placement_b(&self) -> Placement {
        Placement::Node("node-b".into())
    }
    fn write_files(&self, disk: &Disk, files: &Files) {
        let (node, path) = Self::parse_handle(&disk.handle);
        assert_eq!(Some(node.as_str()), disk.node.as_deref());
        for (rel, data) in files {
            let p = path.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
    }
    fn read_files(&self, disk: &Disk) -> Files {
        let (_, path) = Self::parse_handle(&disk.handle);
        let mut out = BTreeMap::new();
        read_tree(&path, "", &mut out);
        out
    }
}

fn scope() -> DiskScope {
    DiskScope::new("abc123", "gitea")
}

#[tokio::test]
async fn k3s_contract_two_nodes() {
    let fx = K3sFixture::new();
    let driver = fx.driver();
    contract_suite(&driver, &scope(), &fx).await;
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
    contract_suite(driver.as_ref(), &scope(), &fx).await;
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
    fx.write_files(&d, &BTreeMap::from([("f".to_string(), b"abc".to_vec())]));
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
    let (_, dir) = K3sFixture::parse_handle(&d.handle);
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
    let (_, rdir) = K3sFixture::parse_handle(&r.handle);
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
