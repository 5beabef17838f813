//! The driver contract suite: what every provider driver keeps
//! (reference §6.1–§6.3, DECISIONS 3/11), written once and run by each
//! driver's test file. Include it with
//!
//! ```ignore
//! #[path = "support/contract.rs"]
//! mod contract;
//! ```
//!
//! then implement [`Fixture`] (two placements, and how to put files on a
//! disk and read them back, or that it cannot) and call [`contract_suite`]. [`DirFixture`]
//! is that fixture for drivers whose disks are directories visible on
//! this machine (K3s through `LocalHost`, or over SSH to 127.0.0.1).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kompox::live::{LiveDisk, LiveSnapshot};
use kompox::provider::driver::{
    CreateDisk, Disk, DiskScope, Driver, DriverError, Placement, Snapshot, Source,
};

pub type Files = BTreeMap<String, Vec<u8>>;

/// What the suite needs beyond the driver: where disks go and how to put
/// data on a disk and read it back.
pub trait Fixture {
    fn placement_a(&self) -> Placement;
    fn placement_b(&self) -> Placement;
    fn write_files(&self, disk: &Disk, files: &Files);
    fn read_files(&self, disk: &Disk) -> Files;
    /// Whether this machine can see the data on a disk. Cloud block
    /// volumes (EBS) are only readable from a node they are attached to:
    /// their fixtures answer `false` and the suite skips the file checks
    /// (writes and reads are then not called), keeping everything else.
    fn sees_data(&self) -> bool {
        true
    }
}

pub fn create(name: &str, placement: Placement, source: Option<Source>) -> CreateDisk {
    CreateDisk {
        name: name.to_string(),
        size_bytes: 1 << 30,
        placement,
        source,
        options: BTreeMap::new(),
    }
}

pub fn assigned(disks: &[Disk], volume: &str) -> Vec<String> {
    disks
        .iter()
        .filter(|d| d.volume == volume && d.assigned)
        .map(|d| d.name.clone())
        .collect()
}

pub fn names<T>(v: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
    let mut n: Vec<String> = v.iter().map(|x| f(x).to_string()).collect();
    n.sort();
    n
}

/// The contract every driver keeps (reference §6.1–§6.3, DECISIONS 3/11).
pub async fn contract_suite(driver: &dyn Driver, scope: &DiskScope, fx: &dyn Fixture) {
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
    if fx.sees_data() {
        fx.write_files(&d1, &files);
    }
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
    if fx.sees_data() {
        fx.write_files(&d1, &changed);
    }

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
    if fx.sees_data() {
        assert_eq!(fx.read_files(&d3), files);
    }

    // Clone a disk.
    let d4 = driver
        .create_disk(
            scope,
            vol,
            create("d4", fx.placement_a(), Some(Source::Disk("d1".into()))),
        )
        .await
        .unwrap();
    assert!(!d4.assigned);
    assert_ne!(d4.handle, d1.handle);
    if fx.sees_data() {
        assert_eq!(fx.read_files(&d4), changed);
    }

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

/// Writes `files` (relative paths, parents created) under `dir`.
pub fn write_tree(dir: &Path, files: &Files) {
    for (rel, data) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, data).expect("write");
    }
}

/// Every regular file under `dir`, by relative path.
pub fn read_tree(dir: &Path) -> Files {
    fn walk(dir: &Path, rel: &str, out: &mut Files) {
        for e in std::fs::read_dir(dir.join(rel)).expect("read_dir") {
            let e = e.expect("entry");
            let name = e.file_name().into_string().expect("utf-8 name");
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type().expect("file type").is_dir() {
                walk(dir, &r, out);
            } else {
                out.insert(r, std::fs::read(e.path()).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

/// The node and data directory of a K3s disk, from its handle
/// `k3s:<node>:<path>`.
pub fn k3s_handle(handle: &str) -> (String, PathBuf) {
    let rest = handle.strip_prefix("k3s:").expect("k3s handle");
    let (node, path) = rest.split_once(':').expect("k3s:<node>:<path>");
    (node.to_string(), PathBuf::from(path))
}

/// A [`Fixture`] for drivers whose disks are directories on this machine:
/// two placements and the function from a disk to its directory.
pub struct DirFixture {
    pub a: Placement,
    pub b: Placement,
    pub dir_of: fn(&Disk) -> PathBuf,
}

impl DirFixture {
    /// Two K3s nodes; a disk's directory is the path in its handle, which
    /// must name the disk's node.
    pub fn k3s(node_a: &str, node_b: &str) -> DirFixture {
        DirFixture {
            a: Placement::Node(node_a.to_string()),
            b: Placement::Node(node_b.to_string()),
            dir_of: |d| {
                let (node, path) = k3s_handle(&d.handle);
                assert_eq!(
                    Some(node.as_str()),
                    d.node.as_deref(),
                    "handle names the node"
                );
                path
            },
        }
    }
}

impl Fixture for DirFixture {
    fn placement_a(&self) -> Placement {
        self.a.clone()
    }
    fn placement_b(&self) -> Placement {
        self.b.clone()
    }
    fn write_files(&self, disk: &Disk, files: &Files) {
        write_tree(&(self.dir_of)(disk), files);
    }
    fn read_files(&self, disk: &Disk) -> Files {
        read_tree(&(self.dir_of)(disk))
    }
}
