//! What must never go wrong with K3s disks and snapshots, through the real
//! `kompoxops` binary on real files (each node is its own directory): a
//! full node filesystem, a snapshot killed half-way, deleting the assigned
//! disk, name collisions, sources that do not exist. Also the progress
//! display of long copies: a bar on a terminal, nothing extra elsewhere.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::project;
use kompox::provider::driver::{DiskScope, Driver, DriverError, driver_for};
use serde_json::Value;

/// A single-app project whose K3s nodes `node-a` and `node-b` are the
/// directories `a` and `b`.
struct Fixture {
    dir: tempfile::TempDir,
    settings: BTreeMap<String, String>,
}

fn fixture_on(a: &Path, b: &Path) -> Fixture {
    let roots = format!("node-a={},node-b={}", a.display(), b.display());
    let kom = common::kom(
        "k3s",
        "  compose: file:compose.yml\n  volumes: [{name: data, size: 1Gi}]\n",
    )
    .replace(
        "spec: {driver: k3s}",
        &format!("spec: {{driver: k3s, settings: {{K3S_NODE_ROOTS: \"{roots}\"}}}}"),
    );
    let compose = format!("{}    volumes: [\"data:/data\"]\n", common::WEB);
    let dir = project(&[
        ("kompoxapp.yml", kom.as_bytes()),
        ("compose.yml", compose.as_bytes()),
    ]);
    Fixture {
        dir,
        settings: BTreeMap::from([("K3S_NODE_ROOTS".to_string(), roots)]),
    }
}

/// Node directories in a temp dir, kept alive by the returned guard.
fn nodes() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    (t, a, b)
}

impl Fixture {
    /// The binary with the environment of the CLI tests (no kubeconfig, no
    /// KOMPOX_* variables).
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kompoxops"));
        c.current_dir(self.dir.path())
            .env_remove("KOMPOX_ROOT")
            .env_remove("KOMPOX_DIR")
            .env_remove("KOMPOX_KOM_PATH")
            .env_remove("KOMPOX_KOM_APP")
            .env_remove("KUBECONFIG")
            .env("HOME", "/nonexistent")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let s = self.ok(args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: {e}: {s}"))
    }

    /// Checks exit 1 and returns stderr.
    fn failed(out: Output, args: &[&str]) -> String {
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} should fail: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        Self::failed(self.run(args), args)
    }

    fn names(&self, noun: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .json(&[noun, "list", "-V", "data"])
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    fn disk(&self, name: &str) -> Value {
        self.json(&["disk", "list", "-V", "data"])
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no disk {name}"))
    }

    /// Bootstraps the one assigned disk on node-a; returns its directory.
    fn bootstrap(&self) -> (String, PathBuf) {
        let created = self.json(&["disk", "create", "--bootstrap", "-Z", "node-a"]);
        let d = &created[0];
        (d["name"].as_str().unwrap().to_string(), disk_dir(d))
    }

    fn driver(&self) -> Box<dyn Driver> {
        driver_for("k3s", &self.settings).unwrap()
    }
}

/// The data directory of a disk from its handle `k3s:<node>:<path>`.
fn disk_dir(disk: &Value) -> PathBuf {
    let h = disk["handle"].as_str().unwrap();
    PathBuf::from(h.splitn(3, ':').nth(2).unwrap())
}

/// Every path under `root`, relative, sorted.
fn walk(root: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.symlink_metadata().unwrap().is_dir() {
                go(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

/// A tree as (relative path → kind, mode, content or link target).
fn tree(root: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    walk(root)
        .into_iter()
        .map(|rel| {
            let p = root.join(&rel);
            let m = p.symlink_metadata().unwrap();
            let v = if m.file_type().is_symlink() {
                (
                    'l',
                    0,
                    std::fs::read_link(&p).unwrap().into_os_string().into_vec(),
                )
            } else if m.is_dir() {
                ('d', m.mode() & 0o7777, Vec::new())
            } else {
                ('f', m.mode() & 0o7777, std::fs::read(&p).unwrap())
            };
            (rel, v)
        })
        .collect()
}

/// Deterministic bytes that do not compress to nothing.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_sample(dir: &Path) {
    std::fs::create_dir_all(dir.join("db/wal")).unwrap();
    std::fs::write(dir.join("db/main.db"), noise(300_000, 1)).unwrap();
    std::fs::write(dir.join("db/wal/000001.log"), noise(70_000, 2)).unwrap();
    std::fs::write(dir.join("config.ini"), b"[main]\nname = test\n").unwrap();
    std::fs::set_permissions(
        dir.join("config.ini"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("db/main.db", dir.join("current")).unwrap();
}

// ---------------------------------------------------------------------------
// The node's filesystem is full.

/// How the test makes node-b's filesystem small.
///
/// A 2 MiB tmpfs mounted on node-b's directory is the real thing: the
/// kernel answers ENOSPC ("No space left on device") exactly as a full
/// disk on a K3s node would. Tests run as root in CI, where mounting is
/// permitted. Where it is not (an unprivileged container), the fallback
/// runs the real binary with `RLIMIT_FSIZE` = 2 MiB and SIGXFSZ ignored: a
/// write past the limit then fails with EFBIG ("File too large") — not the
/// same errno, but the same code path (a write failing half-way through a
/// copy), needing no loop device and no privilege. The test accepts the
/// message of the mechanism in use.
enum SmallFs {
    Tmpfs(PathBuf),
    FileSizeLimit,
}

const SMALL: u64 = 2 << 20;

impl SmallFs {
    fn on(dir: &Path) -> SmallFs {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "kompox-test-full"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            SmallFs::Tmpfs(dir.to_path_buf())
        } else {
            eprintln!("mounting a tmpfs is not permitted here: limiting the file size instead");
            SmallFs::FileSizeLimit
        }
    }

    fn expected_message(&self) -> &'static str {
        match self {
            SmallFs::Tmpfs(_) => "no space left",
            SmallFs::FileSizeLimit => "file too large",
        }
    }

    fn limit(&self, cmd: &mut Command) {
        if let SmallFs::FileSizeLimit = self {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let lim = libc::rlimit {
                        rlim_cur: SMALL as libc::rlim_t,
                        rlim_max: SMALL as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }

    /// Free bytes on node-b's filesystem (tmpfs only).
    fn free(&self) -> Option<u64> {
        let SmallFs::Tmpfs(dir) = self else {
            return None;
        };
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid C string and a zeroed out-struct.
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        if let SmallFs::Tmpfs(dir) = self {
            let ok = Command::new("umount").arg(&*dir).status();
            if !ok.is_ok_and(|s| s.success()) {
                let _ = Command::new("umount").arg("-l").arg(&*dir).status();
            }
        }
    }
}

/// A restore bigger than the node's free space: a clear error naming the
/// node and the cause, no disk listed, no `.partial` left, the space given
/// back (a small disk still fits afterwards).
#[test]
fn restoring_onto_a_full_node_fails_cleanly_and_leaves_no_half_disk() {
    let (_t, a, b) = nodes();
    let small = SmallFs::on(&b);
    let f = fixture_on(&a, &b);
    let (_, dir) = f.bootstrap();
    write_sample(&dir);
    std::fs::write(dir.join("db/big.bin"), noise(3 * SMALL as usize, 3)).unwrap();
    f.ok(&["snapshot", "create", "-V", "data", "-N", "snap1"]);
    let before = small.free();

    let args = [
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "big",
        "-S",
        "snapshot:snap1",
        "-Z",
        "node-b",
    ];
    let mut cmd = f.command(&args);
    small.limit(&mut cmd);
    let err = Fixture::failed(cmd.output().unwrap(), &args);
    assert!(err.contains("node `node-b`"), "names the node: {err}");
    assert!(
        err.to_lowercase().contains(small.expected_message()),
        "says why ({}): {err}",
        small.expected_message()
    );
    assert!(err.contains("disk create `big`"), "{err}");

    assert!(
        !f.names("disk").contains(&"big".to_string()),
        "no half disk listed"
    );
    let left: Vec<String> = walk(&b)
        .into_iter()
        .filter(|p| p.contains("big") || p.ends_with(".partial"))
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "nothing of the failed disk on node-b"
    );
    if let (Some(before), Some(after)) = (before, small.free()) {
        // Only the (empty) volume directories remain.
        assert!(
            after + 64 * 1024 >= before,
            "space given back: {before} free before, {after} after"
        );
    }
    // The node is usable: an empty disk and a small restore fit.
    f.ok(&[
        "disk", "create", "-V", "data", "-N", "small", "-Z", "node-b",
    ]);
    std::fs::remove_file(dir.join("db/big.bin")).unwrap();
    f.ok(&["snapshot", "create", "-V", "data", "-N", "snap2"]);
    let mut cmd = f.command(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "fits",
        "-S",
        "snapshot:snap2",
        "-Z",
        "node-b",
    ]);
    small.limit(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fits: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree(&disk_dir(&fits)), tree(&dir));
}

// ---------------------------------------------------------------------------
// A snapshot killed half-way.

/// SIGKILL in the middle of the copy: the half snapshot is never listed,
/// cannot be restored, and the same name works afterwards. A snapshot
/// whose data is damaged later is not listed either.
#[test]
fn a_snapshot_killed_half_way_is_never_listed_and_its_name_can_be_used_again() {
    let (_t, a, b) = nodes();
    let f = fixture_on(&a, &b);
    let (_, dir) = f.bootstrap();
    write_sample(&dir);
    // Many files, each fsynced by the copy: long enough to be interrupted.
    std::fs::create_dir_all(dir.join("blobs")).unwrap();
    for i in 0..120 {
        std::fs::write(dir.join(format!("blobs/{i:03}")), noise(1 << 20, i)).unwrap();
    }
    assert!(!a.join("snapshots").exists(), "no snapshot yet");

    let mut child = f
        .command(&["snapshot", "create", "-V", "data", "-N", "snap1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let partial = loop {
        let found = std::fs::read_dir(a.join("snapshots"))
            .ok()
            .and_then(|mut r| r.next())
            .map(|e| e.unwrap().path().join("data/.snap1.partial"))
            .filter(|p| std::fs::read_dir(p.join("blobs")).is_ok_and(|r| r.count() >= 5));
        if let Some(p) = found {
            break p;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the snapshot finished before it could be killed"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "no copy started");
        std::thread::sleep(Duration::from_millis(1));
    };
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "killed, not finished");
    let snap_dir = partial.parent().unwrap().to_path_buf();
    assert!(partial.exists(), "the half copy is still there");
    assert!(!snap_dir.join("snap1.json").exists(), "no metadata");

    assert_eq!(f.names("snapshot"), Vec::<String>::new(), "nothing listed");
    let err = f.fails(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "r0",
        "-S",
        "snapshot:snap1",
    ]);
    assert!(err.contains("NotFound") && err.contains("snap1"), "{err}");
    assert!(!f.names("disk").contains(&"r0".to_string()));

    // The same name again: it works, and the half copy is gone.
    let snap = f.json(&["snapshot", "create", "-V", "data", "-N", "snap1"]);
    assert_eq!(snap["name"], "snap1");
    assert_eq!(f.names("snapshot"), ["snap1"]);
    assert!(!partial.exists(), "the half copy was cleared");
    let restored = f.json(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "r1",
        "-S",
        "snapshot:snap1",
        "-Z",
        "node-b",
    ]);
    assert_eq!(tree(&disk_dir(&restored)), tree(&dir), "byte-identical");

    // Damage one byte of the snapshot: not listed, not restorable.
    let victim = snap_dir.join("snap1.d/blobs/007");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[12345] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    assert_eq!(f.names("snapshot"), Vec::<String>::new());
    let err = f.fails(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "r2",
        "-S",
        "snapshot:snap1",
    ]);
    assert!(err.contains("corrupt"), "{err}");
    // Its name stays taken (the metadata exists), so nothing overwrites it
    // silently; deleting it by name frees the name.
    let err = f.fails(&["snapshot", "create", "-V", "data", "-N", "snap1"]);
    assert!(err.contains("Conflict"), "{err}");
    let out = f.run(&["snapshot", "delete", "-V", "data", "-N", "snap1"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("incomplete or corrupt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!snap_dir.join("snap1.json").exists() && !snap_dir.join("snap1.d").exists());
    f.ok(&["snapshot", "create", "-V", "data", "-N", "snap1"]);
    assert_eq!(f.names("snapshot"), ["snap1"]);
}

// ---------------------------------------------------------------------------
// The assigned disk, name collisions, missing sources.

/// The assigned disk is refused by the CLI and by the driver itself (the
/// CLI checks first; the driver must hold even when a caller does not).
#[test]
fn deleting_the_assigned_disk_is_refused_and_its_data_stays() {
    let (_t, a, b) = nodes();
    let f = fixture_on(&a, &b);
    let (name, dir) = f.bootstrap();
    write_sample(&dir);
    let before = tree(&dir);
    let err = f.fails(&["disk", "delete", "-V", "data", "-N", &name]);
    assert!(err.contains("assigned"), "{err}");
    let scope = DiskScope::new(f.disk(&name)["app_id_hash"].as_str().unwrap(), "app1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    match rt.block_on(f.driver().delete_disk(&scope, "data", &name)) {
        Err(DriverError::Conflict(m)) => assert!(m.contains("assigned"), "{m}"),
        other => panic!("the driver must refuse: {other:?}"),
    }
    assert_eq!(f.names("disk"), std::slice::from_ref(&name));
    assert_eq!(tree(&dir), before, "data untouched");
    // Once another disk is assigned, the old one can go.
    f.ok(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "other",
        "-S",
        &format!("disk:{name}"),
    ]);
    f.ok(&["disk", "assign", "-V", "data", "-N", "other"]);
    f.ok(&["disk", "delete", "-V", "data", "-N", &name]);
    assert_eq!(f.names("disk"), ["other"]);
    assert!(!dir.exists());
}

/// A taken name is a Conflict naming where it lives, and nothing of the
/// existing disk or snapshot changes — also across nodes.
#[test]
fn name_collisions_are_refused_and_change_nothing() {
    let (_t, a, b) = nodes();
    let f = fixture_on(&a, &b);
    let d1 = f.json(&["disk", "create", "-V", "data", "-N", "d1", "-Z", "node-a"]);
    let d1_dir = disk_dir(&d1);
    write_sample(&d1_dir);
    let d1_tree = tree(&d1_dir);
    let b_before = walk(&b);

    // The same disk name on the other node.
    let err = f.fails(&["disk", "create", "-V", "data", "-N", "d1", "-Z", "node-b"]);
    assert!(
        err.contains("Conflict") && err.contains("node `node-a`"),
        "{err}"
    );
    assert_eq!(walk(&b), b_before, "nothing created on node-b");
    // From a source, onto the same node.
    f.ok(&[
        "snapshot", "create", "-V", "data", "-N", "s1", "-S", "disk:d1",
    ]);
    let err = f.fails(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "d1",
        "-S",
        "snapshot:s1",
    ]);
    assert!(err.contains("Conflict"), "{err}");
    assert_eq!(tree(&d1_dir), d1_tree, "the existing disk is untouched");
    assert_eq!(f.disk("d1")["created_at"], d1["created_at"]);

    // A snapshot name taken: the first snapshot keeps its content.
    let s1 = f.json(&["snapshot", "list", "-V", "data"])[0].clone();
    std::fs::write(d1_dir.join("config.ini"), b"changed\n").unwrap();
    let err = f.fails(&[
        "snapshot", "create", "-V", "data", "-N", "s1", "-S", "disk:d1",
    ]);
    assert!(err.contains("Conflict") && err.contains("s1"), "{err}");
    let again = f.json(&["snapshot", "list", "-V", "data"])[0].clone();
    assert_eq!(again["checksum"], s1["checksum"], "snapshot unchanged");
    let r = f.json(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "r1",
        "-S",
        "snapshot:s1",
    ]);
    assert_eq!(
        tree(&disk_dir(&r)),
        d1_tree,
        "it restores the first content"
    );
}

/// A source that does not exist: NotFound naming it, and not a directory
/// created on any node.
#[test]
fn a_source_that_does_not_exist_is_refused_and_nothing_is_created() {
    let (_t, a, b) = nodes();
    let f = fixture_on(&a, &b);
    let cases: [&[&str]; 5] = [
        &[
            "disk",
            "create",
            "-V",
            "data",
            "-N",
            "x1",
            "-S",
            "snapshot:nope",
        ],
        &["disk", "create", "-V", "data", "-N", "x2", "-S", "nope"],
        &[
            "disk",
            "create",
            "-V",
            "data",
            "-N",
            "x3",
            "-S",
            "disk:nope",
            "-Z",
            "node-b",
        ],
        &[
            "snapshot",
            "create",
            "-V",
            "data",
            "-N",
            "x4",
            "-S",
            "disk:nope",
        ],
        // No source given, and no assigned disk to default to.
        &["snapshot", "create", "-V", "data", "-N", "x5"],
    ];
    for args in cases {
        let err = f.fails(args);
        assert!(err.contains("NotFound"), "{args:?}: {err}");
        assert!(
            err.contains("`nope`") || err.contains("no assigned disk"),
            "{args:?} names what is missing: {err}"
        );
    }
    assert_eq!(walk(&a), Vec::<String>::new(), "nothing on node-a");
    assert_eq!(walk(&b), Vec::<String>::new(), "nothing on node-b");
    assert_eq!(f.names("disk"), Vec::<String>::new());
    assert_eq!(f.names("snapshot"), Vec::<String>::new());
    // An unknown node is refused the same way.
    let err = f.fails(&["disk", "create", "-V", "data", "-N", "x6", "-Z", "node-z"]);
    assert!(
        err.contains("node-z") && err.contains("InvalidInput"),
        "{err}"
    );
    assert_eq!(walk(&a), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// Progress display.

/// Runs `args` with stderr on a pseudo-terminal; returns (stdout, what the
/// terminal showed).
fn on_a_terminal(f: &Fixture, args: &[&str]) -> (Vec<u8>, String) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: out-pointers to two ints; no name, default termios.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: fresh descriptors from openpty, each owned once.
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let mut cmd = f.command(args);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    drop(cmd); // closes our copy of the terminal's slave side
    let reader = std::thread::spawn(move || {
        let mut master = master;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the child (the last holder of the slave side) is gone.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{args:?} failed");
    let seen = reader.join().unwrap();
    (out.stdout, String::from_utf8_lossy(&seen).into_owned())
}

/// On a terminal a snapshot and a restore draw a bar and end with one
/// summary line; elsewhere stderr carries exactly the lines it always did.
#[test]
fn long_copies_show_a_bar_on_a_terminal_and_nothing_extra_elsewhere() {
    let (_t, a, b) = nodes();
    let f = fixture_on(&a, &b);
    let (_, dir) = f.bootstrap();
    std::fs::write(dir.join("big"), noise(24 << 20, 9)).unwrap();

    let (stdout, tty) = on_a_terminal(&f, &["snapshot", "create", "-V", "data", "-N", "s1"]);
    let snap: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(snap["name"], "s1", "stdout is still the JSON");
    assert!(tty.contains("snapshot data/s1 ["), "a bar: {tty:?}");
    assert!(tty.contains("24.00 MiB"), "bytes: {tty:?}");
    assert!(
        tty.contains("snapshot data/s1: 24.00 MiB copied in"),
        "{tty:?}"
    );
    let (_, tty) = on_a_terminal(
        &f,
        &[
            "disk",
            "create",
            "-V",
            "data",
            "-N",
            "r1",
            "-S",
            "snapshot:s1",
            "-Z",
            "node-b",
        ],
    );
    assert!(tty.contains("disk data/r1: 24.00 MiB copied in"), "{tty:?}");

    // Not a terminal: the warning and the result line, nothing else.
    let out = f.run(&["snapshot", "create", "-V", "data", "-N", "s2"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("warning: the `k3s` driver copies files one by one"));
    assert_eq!(lines[1], "created snapshot `s2` of volume `data`");
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
}
