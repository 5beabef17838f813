//! The K3s driver with host access over SSH (`K3S_HOST_ACCESS=ssh`),
//! against real OpenSSH servers on 127.0.0.1 (`tests/support/sshd.rs`):
//! the driver contract suite over two servers, the host-access layer
//! itself, and what a user meets when things go wrong (a node down, a
//! wrong host key, a key not accepted, a full disk, hostile file names,
//! a large disk). A "node" is a directory on this machine reached through
//! sshd, so the tests check what the driver wrote with plain `std::fs`.

#[path = "support/contract.rs"]
mod contract;
#[path = "support/sshd.rs"]
mod sshd;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use contract::{DirFixture, contract_suite, create, k3s_handle, names, read_tree, write_tree};
use kompox::provider::driver::{DiskScope, Driver, DriverError, Placement, Source, driver_for};
use kompox::provider::host_ssh::{SshHost, SshNode, SshOptions, SshTarget};
use kompox::provider::k3s::{Attrs, EntryKind, HostAccess, K3sDriver};
use sha2::{Digest, Sha256};
use sshd::Sshd;

fn scope() -> DiskScope {
    DiskScope::new("abc123", "gitea")
}

/// Provider settings for nodes `(name, sshd port, root)`, all reached
/// with `key` and `known_hosts`.
fn settings(
    nodes: &[(&str, u16, &Path)],
    user: &str,
    key: &Path,
    known_hosts: &Path,
) -> BTreeMap<String, String> {
    let hosts: Vec<String> = nodes
        .iter()
        .map(|(n, port, _)| format!("{n}={user}@127.0.0.1:{port}"))
        .collect();
    let roots: Vec<String> = nodes
        .iter()
        .map(|(n, _, root)| format!("{n}={}", root.display()))
        .collect();
    BTreeMap::from([
        ("K3S_HOST_ACCESS".to_string(), "ssh".to_string()),
        ("K3S_SSH_HOSTS".to_string(), hosts.join(",")),
        ("K3S_NODE_ROOTS".to_string(), roots.join(",")),
        ("K3S_SSH_KEY".to_string(), key.display().to_string()),
        (
            "K3S_SSH_KNOWN_HOSTS".to_string(),
            known_hosts.display().to_string(),
        ),
        ("K3S_SSH_CONNECT_TIMEOUT".to_string(), "5".to_string()),
    ])
}

/// Two nodes (`node-a`, `node-b`) as two directories behind one sshd.
struct OneServer {
    sshd: Sshd,
    _tmp: tempfile::TempDir,
    roots: BTreeMap<String, PathBuf>,
}

impl OneServer {
    fn start() -> Self {
        let sshd = Sshd::start();
        let tmp = tempfile::tempdir().unwrap();
        let roots = BTreeMap::from([
            ("node-a".to_string(), tmp.path().join("a/kompox")),
            ("node-b".to_string(), tmp.path().join("b/kompox")),
        ]);
        OneServer {
            sshd,
            _tmp: tmp,
            roots,
        }
    }

    /// Settings with node-b on `port_b` and `known_hosts` (defaults: the
    /// server's own).
    fn settings_with(
        &self,
        port_b: Option<u16>,
        known_hosts: Option<&Path>,
    ) -> BTreeMap<String, String> {
        settings(
            &[
                ("node-a", self.sshd.port, &self.roots["node-a"]),
                (
                    "node-b",
                    port_b.unwrap_or(self.sshd.port),
                    &self.roots["node-b"],
                ),
            ],
            &self.sshd.user,
            &self.sshd.client_key,
            known_hosts.unwrap_or(&self.sshd.known_hosts),
        )
    }

    fn driver(&self) -> Box<dyn Driver> {
        driver_for("k3s", &self.settings_with(None, None)).unwrap()
    }

    fn host(&self) -> SshHost {
        let target = SshTarget::parse(&self.sshd.address()).unwrap();
        SshHost::new(
            self.roots
                .iter()
                .map(|(n, r)| {
                    (
                        n.clone(),
                        SshNode {
                            target: target.clone(),
                            root: r.clone(),
                        },
                    )
                })
                .collect(),
            SshOptions::new(&self.sshd.client_key, &self.sshd.known_hosts),
        )
        .unwrap()
    }
}

/// Everything under the node roots: path, kind, mode, size, mtime and
/// content hash. Equal before and after = nothing changed on any node.
fn fingerprint(roots: &BTreeMap<String, PathBuf>) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    fn walk(p: &Path, out: &mut Vec<String>) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let sum = if m.is_file() {
            format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()))
        } else {
            String::new()
        };
        out.push(format!(
            "{} {:o} {} {}.{} {sum}",
            p.display(),
            m.mode(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ));
        if m.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for n in names {
                walk(&n, out);
            }
        }
    }
    let mut out = Vec::new();
    for root in roots.values() {
        if root.exists() {
            walk(root, &mut out);
        }
    }
    out
}

/// A disk `d1` (assigned, with files) and a snapshot `s1` of it on node-a.
async fn populate(driver: &dyn Driver) {
    let sc = scope();
    let d = driver
        .create_disk(
            &sc,
            "data",
            create("d1", Placement::Node("node-a".into()), None),
        )
        .await
        .unwrap();
    driver.assign_disk(&sc, "data", "d1").await.unwrap();
    write_tree(
        &k3s_handle(&d.handle).1,
        &BTreeMap::from([
            ("a.txt".to_string(), b"hello\n".to_vec()),
            ("sub/b.bin".to_string(), vec![7u8; 5000]),
        ]),
    );
    driver
        .create_snapshot(&sc, "data", "s1", None)
        .await
        .unwrap();
}

/// Every kind of driver call against a broken configuration: each must
/// fail with `check` true of its error.
async fn every_call_fails(driver: &dyn Driver, check: impl Fn(&DriverError) -> bool) {
    let sc = scope();
    let results: Vec<(&str, Result<(), DriverError>)> = vec![
        ("list_disks", driver.list_disks(&sc).await.map(drop)),
        ("list_snapshots", driver.list_snapshots(&sc).await.map(drop)),
        ("observe", driver.observe(&sc).await.map(drop)),
        (
            "create_disk on the reachable node",
            driver
                .create_disk(
                    &sc,
                    "data",
                    create("d2", Placement::Node("node-a".into()), None),
                )
                .await
                .map(drop),
        ),
        (
            "restore onto node-b",
            driver
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
                .map(drop),
        ),
        (
            "create_snapshot",
            driver
                .create_snapshot(&sc, "data", "s2", None)
                .await
                .map(drop),
        ),
        ("assign_disk", driver.assign_disk(&sc, "data", "d1").await),
        ("delete_disk", driver.delete_disk(&sc, "data", "d1").await),
        (
            "delete_snapshot",
            driver.delete_snapshot(&sc, "data", "s1").await,
        ),
    ];
    for (call, r) in results {
        match r {
            Err(e) => assert!(check(&e), "{call}: unexpected error {e:?}"),
            Ok(()) => panic!("{call} succeeded against a broken node"),
        }
    }
}

#[tokio::test]
async fn contract_suite_over_two_sshd_servers() {
    let a = Sshd::start();
    let b = Sshd::start();
    // One key and one known_hosts file for the cluster, as in production.
    b.authorize_key(&a.client_key);
    let tmp = tempfile::tempdir().unwrap();
    let known = tmp.path().join("known_hosts");
    std::fs::write(
        &known,
        format!("{}\n{}\n", a.known_hosts_line(), b.known_hosts_line()),
    )
    .unwrap();
    let (ra, rb) = (tmp.path().join("a"), tmp.path().join("b"));
    let s = settings(
        &[("node-a", a.port, &ra), ("node-b", b.port, &rb)],
        &a.user,
        &a.client_key,
        &known,
    );
    let driver = driver_for("k3s", &s).unwrap();
    assert_eq!(driver.id(), "k3s");
    contract_suite(
        driver.as_ref(),
        &scope(),
        &DirFixture::k3s("node-a", "node-b"),
    )
    .await;
    // The data really went through each server to its own node.
    let (disks, snaps) = driver.observe(&scope()).await.unwrap();
    let on = |n: &str| {
        disks
            .iter()
            .filter(|d| d.node.as_deref() == Some(n))
            .map(|d| d.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(on("node-b"), ["d3"]);
    assert!(
        k3s_handle(&disks.iter().find(|d| d.name == "d3").unwrap().handle)
            .1
            .starts_with(&rb)
    );
    assert_eq!(names(&snaps, |s| &s.name), ["s1"]);
    // Multiplexing: a whole suite of calls used very few connections.
    assert!(
        a.accepted_connections() <= 3,
        "node-a's server accepted {} connections:\n{}",
        a.accepted_connections(),
        a.log()
    );
    assert!(b.accepted_connections() <= 3, "{}", b.log());
}

#[tokio::test]
async fn contract_suite_over_one_server_with_two_roots() {
    let one = OneServer::start();
    contract_suite(
        one.driver().as_ref(),
        &scope(),
        &DirFixture::k3s("node-a", "node-b"),
    )
    .await;
}

#[tokio::test]
async fn unreachable_node_is_a_clear_transient_error_and_nothing_changes() {
    let one = OneServer::start();
    populate(one.driver().as_ref()).await;
    let before = fingerprint(&one.roots);
    let closed = sshd::closed_port();
    let broken = driver_for("k3s", &one.settings_with(Some(closed), None)).unwrap();
    let addr = format!("{}@127.0.0.1:{closed}", one.sshd.user);
    every_call_fails(broken.as_ref(), |e| match e {
        DriverError::Transient(m) => {
            m.contains("node `node-b`")
                && m.contains(&addr)
                && m.contains("Connection refused")
                && m.contains("sshd listens")
        }
        _ => false,
    })
    .await;
    let e = broken.list_disks(&scope()).await.unwrap_err();
    assert!(e.retryable(), "{e}");
    println!("what the user sees: {e}");
    assert_eq!(
        fingerprint(&one.roots),
        before,
        "nothing changed on any node"
    );
    // The reachable configuration still sees the same state.
    let disks = one.driver().list_disks(&scope()).await.unwrap();
    assert_eq!(names(&disks, |d| &d.name), ["d1"]);
    assert!(disks[0].assigned);
}

#[tokio::test]
async fn wrong_host_key_is_refused_and_nothing_changes() {
    let one = OneServer::start();
    populate(one.driver().as_ref()).await;
    let before = fingerprint(&one.roots);
    let wrong = one.sshd.wrong_known_hosts();
    let wrong_before = std::fs::read(&wrong).unwrap();
    let connections = one.sshd.accepted_connections();
    let broken = driver_for("k3s", &one.settings_with(None, Some(&wrong))).unwrap();
    let addr = one.sshd.address();
    let kh = wrong.display().to_string();
    every_call_fails(broken.as_ref(), |e| match e {
        DriverError::Permission(m) => {
            m.contains("node `node-a`")
                && m.contains(&addr)
                && m.contains("host key")
                && m.contains(&kh)
                && m.contains("K3S_SSH_KNOWN_HOSTS")
        }
        _ => false,
    })
    .await;
    let e = broken.list_disks(&scope()).await.unwrap_err();
    assert!(!e.retryable());
    println!("what the user sees: {e}");
    assert_eq!(
        fingerprint(&one.roots),
        before,
        "nothing changed on any node"
    );
    assert_eq!(
        std::fs::read(&wrong).unwrap(),
        wrong_before,
        "the known_hosts file is never rewritten"
    );
    assert_eq!(
        one.sshd.accepted_connections(),
        connections,
        "no session was ever authenticated"
    );
}

#[tokio::test]
async fn key_not_accepted_is_a_permission_error_naming_the_key() {
    let one = OneServer::start();
    let other = one.sshd.dir.join("not_authorized");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let mut s = one.settings_with(None, None);
    s.insert("K3S_SSH_KEY".into(), other.display().to_string());
    let driver = driver_for("k3s", &s).unwrap();
    let e = driver.list_disks(&scope()).await.unwrap_err();
    let DriverError::Permission(m) = &e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("node `node-a`") && m.contains(&one.sshd.address()),
        "{m}"
    );
    assert!(
        m.contains("K3S_SSH_KEY") && m.contains(&other.display().to_string()),
        "{m}"
    );
    assert!(m.contains("authorized_keys"), "{m}");
    // The private key's contents never appear in a message.
    let secret = std::fs::read_to_string(&other).unwrap();
    let body: String = secret.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!m.contains(&body[..20]), "{m}");
    // A key file that does not exist is named before ssh even runs.
    s.insert("K3S_SSH_KEY".into(), "/nonexistent/kompox_key".into());
    let e = driver_for("k3s", &s)
        .unwrap()
        .list_disks(&scope())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DriverError::InvalidInput(m) if m.contains("K3S_SSH_KEY") && m.contains("/nonexistent/kompox_key")),
        "{e:?}"
    );
}

#[tokio::test]
async fn hostile_file_names_round_trip_through_snapshot_and_restore() {
    let one = OneServer::start();
    let driver = one.driver();
    let sc = scope();
    let d = driver
        .create_disk(
            &sc,
            "data",
            create("d1", Placement::Node("node-a".into()), None),
        )
        .await
        .unwrap();
    driver.assign_disk(&sc, "data", "d1").await.unwrap();
    let dir = k3s_handle(&d.handle).1;
    let marker = one.sshd.dir.join("injected");
    let names = [
        "with space.txt".to_string(),
        "it's.txt".to_string(),
        "\"double\" quotes".to_string(),
        "$HOME and ${PATH}".to_string(),
        format!("$(touch {})", marker.display()),
        format!("`touch {}`", marker.display()).replace('/', "_"),
        "back\\slash".to_string(),
        "new\nline".to_string(),
        "tab\there".to_string(),
        "-rf".to_string(),
        "*?[glob]".to_string(),
        "semi;colon|pipe&amp".to_string(),
        "ünïcødé ☃".to_string(),
        " leading and trailing ".to_string(),
    ];
    let mut files = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        // `$(touch /x)` has slashes: it becomes a directory path, which is
        // as hostile.
        files.insert(n.clone(), format!("content {i}\n").into_bytes());
        files.insert(
            format!("dir $x 'q'/{}", n.replace('/', "_")),
            vec![i as u8; 100 + i],
        );
    }
    write_tree(&dir, &files);
    std::os::unix::fs::symlink("it's.txt", dir.join("link to 'it's' $x")).unwrap();
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
    let rdir = k3s_handle(&r.handle).1;
    assert!(rdir.starts_with(&one.roots["node-b"]));
    let mut restored = read_tree(&rdir);
    assert_eq!(
        std::fs::read_link(rdir.join("link to 'it's' $x")).unwrap(),
        PathBuf::from("it's.txt")
    );
    restored.remove("link to 'it's' $x");
    assert_eq!(restored, files, "names and bytes identical");
    assert!(!marker.exists(), "a file name was executed by a shell");
    assert_eq!(driver.list_snapshots(&sc).await.unwrap().len(), 1);
}

/// xorshift64 bytes: incompressible and reproducible.
fn pseudo_random(len: usize, mut x: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn file_sha(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("{:x}", h.finalize())
}

#[tokio::test]
async fn disk_of_64_mib_round_trips_byte_identical() {
    let one = OneServer::start();
    let driver = one.driver();
    let sc = scope();
    let d = driver
        .create_disk(
            &sc,
            "data",
            create("d1", Placement::Node("node-a".into()), None),
        )
        .await
        .unwrap();
    driver.assign_disk(&sc, "data", "d1").await.unwrap();
    let dir = k3s_handle(&d.handle).1;
    std::fs::create_dir_all(dir.join("pg")).unwrap();
    std::fs::write(
        dir.join("pg/base.dat"),
        pseudo_random(64 << 20, 0x9e37_79b9_7f4a_7c15),
    )
    .unwrap();
    std::fs::write(dir.join("pg/small"), b"x").unwrap();
    let t = std::time::Instant::now();
    let s = driver
        .create_snapshot(&sc, "data", "s1", None)
        .await
        .unwrap();
    let t_snap = t.elapsed();
    assert_eq!(s.size_bytes, (64 << 20) + 1);
    let t = std::time::Instant::now();
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
    let t_restore = t.elapsed();
    println!("64 MiB over SSH: snapshot {t_snap:?}, restore {t_restore:?}");
    let rdir = k3s_handle(&r.handle).1;
    assert_eq!(
        file_sha(&rdir.join("pg/base.dat")),
        file_sha(&dir.join("pg/base.dat"))
    );
    assert_eq!(std::fs::read(rdir.join("pg/small")).unwrap(), b"x");
    assert_eq!(
        std::fs::metadata(rdir.join("pg/base.dat")).unwrap().len(),
        64 << 20
    );
}

/// A tmpfs of `size`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "kompox-test"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn full_node_filesystem_is_a_clear_error_and_leaves_no_half_disk() {
    let one = OneServer::start();
    let _fs = Tmpfs::mount(&one.roots["node-b"], "2m");
    let driver = one.driver();
    let sc = scope();
    let d = driver
        .create_disk(
            &sc,
            "data",
            create("d1", Placement::Node("node-a".into()), None),
        )
        .await
        .unwrap();
    driver.assign_disk(&sc, "data", "d1").await.unwrap();
    let dir = k3s_handle(&d.handle).1;
    std::fs::write(dir.join("big"), pseudo_random(4 << 20, 42)).unwrap();
    let e = driver
        .create_disk(
            &sc,
            "data",
            create(
                "r1",
                Placement::Node("node-b".into()),
                Some(Source::Disk("d1".into())),
            ),
        )
        .await
        .unwrap_err();
    let DriverError::Io(m) = &e else {
        panic!("{e:?}")
    };
    println!("what the user sees: {e}");
    assert!(
        m.contains("node `node-b`") && m.contains(&one.sshd.address()),
        "{m}"
    );
    assert!(
        m.contains("No space left on device") && m.contains("retrying will not help"),
        "{m}"
    );
    assert!(!e.retryable());
    // No half disk: not listed, no partial directory left behind.
    let disks = driver.list_disks(&sc).await.unwrap();
    assert_eq!(names(&disks, |d| &d.name), ["d1"]);
    let vol = one.roots["node-b"].join("disks/abc123/data");
    let left: Vec<_> = std::fs::read_dir(&vol)
        .map(|r| r.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left on the full node: {left:?}");
}

#[test]
fn host_access_over_ssh_behaves_like_the_local_one() {
    let one = OneServer::start();
    let h = one.host();
    let root = one.roots["node-a"].clone();
    assert_eq!(h.nodes(), ["node-a", "node-b"]);
    assert_eq!(h.root("node-a").unwrap(), root);

    // Missing things: NotFound when opened, not at the first read.
    assert!(matches!(
        h.list("node-a", &root),
        Err(DriverError::NotFound(_))
    ));
    assert!(matches!(
        h.open_read("node-a", &root.join("nope")),
        Err(DriverError::NotFound(_))
    ));
    assert!(matches!(
        h.create_write("node-a", &root.join("no/dir/f")),
        Err(DriverError::NotFound(_))
    ));
    assert!(!h.exists("node-a", &root).unwrap());
    h.remove("node-a", &root.join("nope")).unwrap();

    // Files stream both ways; write is durable and replaces.
    h.mkdir("node-a", &root.join("d/e")).unwrap();
    assert!(h.exists("node-a", &root.join("d/e")).unwrap());
    let f = root.join("d/it's a $file");
    let data = pseudo_random(3 << 20, 7);
    let mut w = h.create_write("node-a", &f).unwrap();
    for chunk in data.chunks(100_000) {
        w.write_all(chunk).unwrap();
    }
    w.finish().unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), data);
    let mut back = Vec::new();
    h.open_read("node-a", &f)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
    h.write("node-a", &f, b"short").unwrap();
    assert_eq!(h.read("node-a", &f).unwrap(), b"short");
    // A reader dropped half-way stops cleanly.
    let mut r = h.open_read("node-a", &f).unwrap();
    let mut two = [0u8; 2];
    r.read_exact(&mut two).unwrap();
    drop(r);

    // Listing: kinds, modes, owners, sorted.
    std::os::unix::fs::symlink("it's a $file", root.join("d/ln")).unwrap();
    let l = h.list("node-a", &root.join("d")).unwrap();
    let got: Vec<(&str, EntryKind)> = l.iter().map(|e| (e.name.as_str(), e.kind)).collect();
    assert_eq!(
        got,
        [
            ("e", EntryKind::Dir),
            ("it's a $file", EntryKind::File),
            ("ln", EntryKind::Symlink)
        ]
    );
    assert!(matches!(
        h.list("node-a", &f),
        Err(DriverError::InvalidInput(_))
    ));
    assert_eq!(
        h.read_link("node-a", &root.join("d/ln")).unwrap(),
        PathBuf::from("it's a $file")
    );
    assert!(matches!(
        h.symlink("node-a", Path::new("x"), &root.join("d/ln")),
        Err(DriverError::Conflict(_))
    ));

    // Owner and mode, as root on the node.
    let want = Attrs {
        mode: 0o2750,
        uid: 1234,
        gid: 4321,
    };
    h.set_attrs("node-a", &root.join("d/e"), want).unwrap();
    assert_eq!(h.attrs("node-a", &root.join("d/e")).unwrap(), want);
    let plain = Attrs {
        mode: 0o755,
        uid: 0,
        gid: 0,
    };
    h.set_attrs("node-a", &root.join("d/e"), plain).unwrap();
    assert_eq!(
        h.attrs("node-a", &root.join("d/e")).unwrap(),
        plain,
        "a set-gid bit is cleared when the mode has none"
    );

    // Rename replaces, usage counts regular files only.
    h.write("node-a", &root.join("d/t.tmp"), b"12345").unwrap();
    h.rename(
        "node-a",
        &root.join("d/t.tmp"),
        &root.join("d/it's a $file"),
    )
    .unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"12345");
    assert!(matches!(
        h.rename("node-a", &root.join("d/gone"), &root.join("d/x")),
        Err(DriverError::NotFound(_))
    ));
    assert_eq!(h.disk_usage("node-a", &root.join("d")).unwrap(), 5);
    h.remove("node-a", &root.join("d")).unwrap();
    assert!(!root.join("d").exists());

    // Paths outside a node's root never reach the node.
    assert!(matches!(
        h.read("node-a", Path::new("/etc/passwd")),
        Err(DriverError::InvalidInput(_))
    ));
    assert!(matches!(
        h.remove("node-a", &root.join("../../x")),
        Err(DriverError::InvalidInput(_))
    ));
    assert!(matches!(
        h.list("node-c", &root),
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn calls_share_one_connection_that_closes_with_the_driver() {
    let one = OneServer::start();
    let host = one.host();
    let root = one.roots["node-a"].clone();
    for i in 0..30 {
        let d = one.roots["node-b"].join(format!("d{i}"));
        host.mkdir("node-b", &d).unwrap();
        assert!(host.exists("node-b", &d).unwrap());
        assert!(!host.exists("node-a", &root.join(format!("d{i}"))).unwrap());
    }
    assert_eq!(
        one.sshd.accepted_connections(),
        1,
        "90 calls over one connection:\n{}",
        one.sshd.log()
    );
    let driver = K3sDriver::new(host);
    driver.list_disks(&scope()).await.unwrap();
    drop(driver);
    // Dropping the host closes its master connection at once (not after
    // ControlPersist).
    let t = std::time::Instant::now();
    while !one.sshd.log().contains("Disconnected from user") {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "the connection stayed open:\n{}",
            one.sshd.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_connection_lost_mid_read_is_an_error_never_a_short_file() {
    let one = OneServer::start();
    let h = one.host();
    let root = one.roots["node-a"].clone();
    std::fs::create_dir_all(&root).unwrap();
    let f = root.join("big");
    std::fs::write(&f, pseudo_random(48 << 20, 3)).unwrap();
    let mut r = h.open_read("node-a", &f).unwrap();
    let mut head = vec![0u8; 1 << 20];
    r.read_exact(&mut head).unwrap();
    one.sshd.drop_connections();
    let mut rest = Vec::new();
    let e = r.read_to_end(&mut rest).unwrap_err();
    assert!(
        (head.len() + rest.len()) < 48 << 20,
        "the whole file arrived before the cut"
    );
    let d = DriverError::from_io(&e, "read");
    assert!(
        matches!(&d, DriverError::Transient(m) if m.contains("node `node-a`") && m.contains(&one.sshd.address())),
        "{d:?}"
    );
    // The next call connects again by itself.
    assert!(h.exists("node-a", &f).unwrap());
    assert_eq!(h.read("node-a", &root.join("big")).unwrap().len(), 48 << 20);
}

#[test]
fn a_login_shell_that_prints_is_a_clear_error() {
    let one = OneServer::start();
    let shell = std::process::Command::new("getent")
        .args(["passwd", &one.sshd.user])
        .output()
        .unwrap();
    let shell = String::from_utf8_lossy(&shell.stdout);
    if !shell.trim_end().ends_with("/bash") {
        // Only bash reads a start-up file for commands run by sshd.
        println!("login shell is not bash ({shell}): nothing to provoke");
        return;
    }
    let root = one.roots["node-a"].clone();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f"), b"data").unwrap();
    // sshd's HOME for the session is the harness's home directory.
    std::fs::write(
        one.sshd.dir.join("home/.bashrc"),
        "echo welcome to node-a\n",
    )
    .unwrap();
    let h = one.host();
    let e = match h.open_read("node-a", &root.join("f")) {
        Ok(_) => panic!("a polluted stream was accepted"),
        Err(e) => e,
    };
    assert!(
        matches!(&e, DriverError::Io(m) if m.contains("must print nothing") && m.contains("node `node-a`")),
        "{e:?}"
    );
    assert!(
        h.list("node-a", &root).is_err(),
        "polluted listing accepted"
    );
}
