//! The K3s driver on a local node root (a temporary directory):
//!
//! (a) `list_disks` over 1,000 disks of one volume (issue target ≤ 200 ms);
//! (b) snapshot and restore of a 1 GiB disk (256 files of 4 MiB of
//!     pseudo-random bytes) through the driver, against `tar | zstd` (when
//!     the `zstd` binary exists) and `cp -a` of the same directory (issue
//!     target: the driver at ≥ 0.8× the speed of the better baseline).
//! (c) the same driver with host access over SSH (`SshHost`, a real sshd
//!     on 127.0.0.1 from tests/support/sshd.rs; two nodes = two
//!     directories behind it): the cost of one multiplexed call, snapshot
//!     and restore of a small tree (100 files of 16 KiB) against the local
//!     driver and against `tar` piped through two `ssh` commands, a 64 MiB
//!     file, and `list_disks` over 100 disks.
//!
//! `cargo bench --bench k3s_driver` runs all; `-- local` or `-- ssh` one
//! part (figures in docs/performance.md).

#[path = "../tests/support/sshd.rs"]
mod sshd;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kompox::provider::driver::{CreateDisk, Disk, DiskScope, Driver, Placement, Source};
use kompox::provider::host_ssh::{SshHost, SshNode, SshOptions, SshTarget};
use kompox::provider::k3s::{HostAccess, K3sDriver, LocalHost};

const NODE: &str = "n1";
const LIST_DISKS: usize = 1_000;
const LIST_CALLS: usize = 20;
const FILES: usize = 256;
const FILE_BYTES: usize = 4 << 20;

fn driver_on(root: &Path) -> K3sDriver {
    K3sDriver::new(LocalHost::new(BTreeMap::from([(
        NODE.to_string(),
        root.to_path_buf(),
    )])))
}

fn create(name: &str, source: Option<Source>) -> CreateDisk {
    CreateDisk {
        name: name.to_string(),
        size_bytes: 1 << 30,
        placement: Placement::Node(NODE.to_string()),
        source,
        options: BTreeMap::new(),
    }
}

/// The data directory of a disk, from its handle `k3s:<node>:<path>`.
fn disk_dir(disk: &Disk) -> PathBuf {
    let rest = disk.handle.strip_prefix("k3s:").expect("k3s handle");
    let (_, path) = rest.split_once(':').expect("k3s:<node>:<path>");
    PathBuf::from(path)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// Runs `sh -c script`, panicking on failure.
fn sh(script: &str) {
    let st = Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("run sh");
    assert!(st.success(), "`{script}` failed: {st}");
}

fn has_binary(name: &str) -> bool {
    Command::new("which")
        .arg(name)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fills `dir` with `FILES` files of `FILE_BYTES` xorshift64 bytes.
fn fill(dir: &Path) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; FILE_BYTES];
    for i in 0..FILES {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let sub = dir.join(format!("d{:02}", i % 16));
        std::fs::create_dir_all(&sub).expect("mkdir");
        let mut f = std::fs::File::create(sub.join(format!("f{i:03}.bin"))).expect("create");
        f.write_all(&buf).expect("write");
    }
}

fn list_bench(rt: &tokio::runtime::Runtime) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let driver = driver_on(tmp.path());
    let scope = DiskScope::new("abc123", "bench");
    let (_, setup) = timed(|| {
        rt.block_on(async {
            for i in 0..LIST_DISKS {
                driver
                    .create_disk(&scope, "data", create(&format!("d{i:04}"), None))
                    .await
                    .expect("create disk");
            }
            driver
                .assign_disk(&scope, "data", "d0000")
                .await
                .expect("assign");
        })
    });
    let mut times = Vec::with_capacity(LIST_CALLS);
    for _ in 0..LIST_CALLS {
        let (disks, t) = timed(|| rt.block_on(driver.list_disks(&scope)).expect("list"));
        assert_eq!(disks.len(), LIST_DISKS);
        times.push(t);
    }
    let (min, max) = (
        *times.iter().min().expect("times"),
        *times.iter().max().expect("times"),
    );
    println!(
        "(a) list_disks, {LIST_DISKS} disks of one volume: median {:.1} ms (min {:.1}, max {:.1}) over {LIST_CALLS} calls [target <= 200 ms: {}]",
        ms(median(times.clone())),
        ms(min),
        ms(max),
        if median(times) <= Duration::from_millis(200) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "    (setup: {LIST_DISKS} create_disk calls took {:.2} s)",
        setup.as_secs_f64()
    );
}

fn snapshot_bench(rt: &tokio::runtime::Runtime) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("node");
    let base = tmp.path().join("baseline");
    std::fs::create_dir_all(&base).expect("mkdir");
    let driver = driver_on(&root);
    let scope = DiskScope::new("abc123", "bench");
    let gib = (FILES * FILE_BYTES) as f64 / (1u64 << 30) as f64;

    let disk = rt
        .block_on(driver.create_disk(&scope, "data", create("d0", None)))
        .expect("create disk");
    rt.block_on(driver.assign_disk(&scope, "data", "d0"))
        .expect("assign");
    let src = disk_dir(&disk);
    let (_, t_fill) = timed(|| fill(&src));
    sh("sync");
    println!(
        "(b) disk: {FILES} files x {} MiB = {gib:.2} GiB pseudo-random (written in {:.2} s)",
        FILE_BYTES >> 20,
        t_fill.as_secs_f64()
    );

    // The driver: snapshot of the assigned disk, then restore into a new disk.
    let (snap, t_snap) = timed(|| {
        rt.block_on(driver.create_snapshot(&scope, "data", "s1", None))
            .expect("snapshot")
    });
    assert_eq!(snap.size_bytes as usize, FILES * FILE_BYTES);
    let (snaps, t_list_snap) = timed(|| rt.block_on(driver.list_snapshots(&scope)).expect("list"));
    assert_eq!(snaps.len(), 1);
    let (restored, t_restore) = timed(|| {
        rt.block_on(driver.create_disk(
            &scope,
            "data",
            create("d1", Some(Source::Snapshot("s1".into()))),
        ))
        .expect("restore")
    });
    let _ = restored;
    println!(
        "    driver create_snapshot: {:.2} s ({:.0} MiB/s)",
        t_snap.as_secs_f64(),
        1024.0 * gib / t_snap.as_secs_f64()
    );
    println!(
        "    driver create_disk from the snapshot (restore): {:.2} s ({:.0} MiB/s)",
        t_restore.as_secs_f64(),
        1024.0 * gib / t_restore.as_secs_f64()
    );
    println!(
        "    driver list_snapshots (verifies the 1 GiB snapshot's checksum): {:.2} s",
        t_list_snap.as_secs_f64()
    );
    // Free the space of the driver's copies before the baselines.
    rt.block_on(driver.delete_disk(&scope, "data", "d1"))
        .expect("delete disk");
    rt.block_on(driver.delete_snapshot(&scope, "data", "s1"))
        .expect("delete snapshot");
    sh("sync");

    let s = src.display();
    let b = base.display();
    let mut baselines: Vec<(&str, Duration, Duration)> = Vec::new();

    // cp -a: the same operation for snapshot and restore.
    let (_, cp_snap) = timed(|| sh(&format!("cp -a {s} {b}/cp-snap")));
    let (_, cp_restore) = timed(|| sh(&format!("cp -a {b}/cp-snap {b}/cp-restore")));
    baselines.push(("cp -a", cp_snap, cp_restore));
    let (_, cp_sync) = timed(|| sh(&format!("cp -a {b}/cp-snap {b}/cp-sync && sync")));
    sh(&format!(
        "rm -rf {b}/cp-snap {b}/cp-restore {b}/cp-sync && sync"
    ));

    if has_binary("zstd") {
        let (_, z_snap) = timed(|| sh(&format!("tar -C {s} -cf - . | zstd -q -T0 -o {b}/s.tzst")));
        let (_, z_restore) = timed(|| {
            sh(&format!(
                "mkdir {b}/z-restore && zstd -q -dc {b}/s.tzst | tar -C {b}/z-restore -xf -"
            ))
        });
        baselines.push(("tar | zstd -T0", z_snap, z_restore));
        sh(&format!("rm -rf {b}/s.tzst {b}/z-restore && sync"));
    } else {
        println!("    (no `zstd` binary: the tar | zstd baseline is skipped)");
    }

    for (name, sn, re) in &baselines {
        println!(
            "    baseline {name}: snapshot {:.2} s, restore {:.2} s",
            sn.as_secs_f64(),
            re.as_secs_f64()
        );
    }
    println!(
        "    baseline cp -a followed by `sync` (durable, like the driver's per-file fsync): {:.2} s",
        cp_sync.as_secs_f64()
    );
    let best_snap = baselines.iter().map(|b| b.1).min().expect("baseline");
    let best_restore = baselines.iter().map(|b| b.2).min().expect("baseline");
    let ratio_snap = best_snap.as_secs_f64() / t_snap.as_secs_f64();
    let ratio_restore = best_restore.as_secs_f64() / t_restore.as_secs_f64();
    let verdict = |r: f64| if r >= 0.8 { "met" } else { "MISSED" };
    println!(
        "    driver speed / best baseline: snapshot {ratio_snap:.2}x [{}], restore {ratio_restore:.2}x [{}] (target >= 0.8x)",
        verdict(ratio_snap),
        verdict(ratio_restore)
    );
    println!(
        "    driver speed / durable cp -a + sync: snapshot {:.2}x, restore {:.2}x",
        cp_sync.as_secs_f64() / t_snap.as_secs_f64(),
        cp_sync.as_secs_f64() / t_restore.as_secs_f64()
    );
}

/// (c): the SSH host access against the local one, on the same node
/// directories.
fn ssh_bench(rt: &tokio::runtime::Runtime) {
    const TREE_DIRS: usize = 10;
    const TREE_FILES: usize = 100;
    const TREE_FILE_BYTES: usize = 16 << 10;
    const BIG: usize = 64 << 20;
    const SSH_LIST_DISKS: usize = 100;
    const CALLS: usize = 200;

    let server = sshd::Sshd::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let roots = BTreeMap::from([
        ("node-a".to_string(), tmp.path().join("a")),
        ("node-b".to_string(), tmp.path().join("b")),
    ]);
    let target = SshTarget::parse(&server.address()).expect("address");
    let ssh_host = || {
        SshHost::new(
            roots
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
            SshOptions::new(&server.client_key, &server.known_hosts),
        )
        .expect("ssh host")
    };
    let local = K3sDriver::new(LocalHost::new(roots.clone()));
    let ssh = K3sDriver::new(ssh_host());
    let scope = DiskScope::new("abc123", "bench");
    let on = |node: &str, name: &str, source: Option<Source>| CreateDisk {
        name: name.to_string(),
        size_bytes: 1 << 30,
        placement: Placement::Node(node.to_string()),
        source,
        options: BTreeMap::new(),
    };
    println!(
        "(c) K3s over SSH (sshd on 127.0.0.1:{}), same node directories as the local driver",
        server.port
    );

    // One call on a warm connection.
    let probe = ssh_host();
    let (_, first) = timed(|| probe.exists("node-a", &roots["node-a"]).expect("exists"));
    let (_, t_calls) = timed(|| {
        for _ in 0..CALLS {
            probe.exists("node-a", &roots["node-a"]).expect("exists");
        }
    });
    drop(probe);
    println!(
        "    one call (`exists`): first (connects) {:.0} ms, then {:.1} ms each (mean of {CALLS})",
        ms(first),
        ms(t_calls) / CALLS as f64
    );

    // A small tree.
    let d0 = rt
        .block_on(local.create_disk(&scope, "data", on("node-a", "d0", None)))
        .expect("create");
    rt.block_on(local.assign_disk(&scope, "data", "d0"))
        .expect("assign");
    let src = disk_dir(&d0);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..TREE_FILES {
        let sub = src.join(format!("dir{}", i % TREE_DIRS));
        std::fs::create_dir_all(&sub).expect("mkdir");
        let data: Vec<u8> = (0..TREE_FILE_BYTES)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(sub.join(format!("f{i:03}")), data).expect("write");
    }
    let kib = (TREE_FILES * TREE_FILE_BYTES) >> 10;
    let (_, ssh_snap) = timed(|| {
        rt.block_on(ssh.create_snapshot(&scope, "data", "s-ssh", None))
            .expect("ssh snapshot")
    });
    let (_, ssh_restore) = timed(|| {
        rt.block_on(ssh.create_disk(
            &scope,
            "data",
            on("node-b", "r-ssh", Some(Source::Snapshot("s-ssh".into()))),
        ))
        .expect("ssh restore")
    });
    let (_, local_snap) = timed(|| {
        rt.block_on(local.create_snapshot(&scope, "data", "s-local", None))
            .expect("local snapshot")
    });
    let (_, local_restore) = timed(|| {
        rt.block_on(local.create_disk(
            &scope,
            "data",
            on(
                "node-b",
                "r-local",
                Some(Source::Snapshot("s-local".into())),
            ),
        ))
        .expect("local restore")
    });
    let ssh_cmd = server.ssh_command_env();
    let tar_dst = roots["node-b"].join("tar-copy");
    let (_, tar) = timed(|| {
        sh(&format!(
            "{ssh_cmd} {user}@127.0.0.1 'tar -C {src} -cf - .' | {ssh_cmd} {user}@127.0.0.1 'mkdir -p {dst} && tar -C {dst} -xf - && sync'",
            user = server.user,
            src = src.display(),
            dst = tar_dst.display()
        ))
    });
    println!(
        "    small tree ({TREE_FILES} files x {} KiB in {TREE_DIRS} dirs = {kib} KiB):",
        TREE_FILE_BYTES >> 10
    );
    println!(
        "      over SSH: snapshot {:.2} s, restore onto the other node {:.2} s",
        ssh_snap.as_secs_f64(),
        ssh_restore.as_secs_f64()
    );
    println!(
        "      local driver: snapshot {:.3} s, restore {:.3} s",
        local_snap.as_secs_f64(),
        local_restore.as_secs_f64()
    );
    println!(
        "      baseline `ssh tar -c | ssh tar -x && sync` (two fresh connections): {:.2} s",
        tar.as_secs_f64()
    );

    // One large file.
    let d1 = rt
        .block_on(local.create_disk(&scope, "big", on("node-a", "d1", None)))
        .expect("create");
    rt.block_on(local.assign_disk(&scope, "big", "d1"))
        .expect("assign");
    let mut buf = vec![0u8; BIG];
    for chunk in buf.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    std::fs::write(disk_dir(&d1).join("big.bin"), &buf).expect("write");
    drop(buf);
    let (_, big_snap) = timed(|| {
        rt.block_on(ssh.create_snapshot(&scope, "big", "s-big", None))
            .expect("snapshot")
    });
    let (_, big_restore) = timed(|| {
        rt.block_on(ssh.create_disk(
            &scope,
            "big",
            on("node-b", "r-big", Some(Source::Snapshot("s-big".into()))),
        ))
        .expect("restore")
    });
    let mib = (BIG >> 20) as f64;
    println!(
        "    {} MiB file over SSH: snapshot {:.2} s ({:.0} MiB/s), restore {:.2} s ({:.0} MiB/s; verifies the snapshot first)",
        BIG >> 20,
        big_snap.as_secs_f64(),
        mib / big_snap.as_secs_f64(),
        big_restore.as_secs_f64(),
        mib / big_restore.as_secs_f64()
    );

    // Listing many disks.
    rt.block_on(async {
        for i in 0..SSH_LIST_DISKS {
            local
                .create_disk(&scope, "many", on("node-a", &format!("m{i:03}"), None))
                .await
                .expect("create");
        }
    });
    let mut times = Vec::new();
    for _ in 0..5 {
        let (disks, t) = timed(|| rt.block_on(ssh.list_disks(&scope)).expect("list"));
        assert!(disks.len() >= SSH_LIST_DISKS);
        times.push(t);
    }
    println!(
        "    list_disks over SSH, {} disks: median {:.0} ms of 5 (local driver, same disks: {:.1} ms)",
        SSH_LIST_DISKS + 6,
        ms(median(times)),
        ms(timed(|| rt.block_on(local.list_disks(&scope)).expect("list")).1)
    );
    println!(
        "    SSH connections accepted by sshd during (c): {}",
        server.accepted_connections()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `local` or `ssh` selects one part.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let want = |part: &str| args.is_empty() || args.iter().any(|a| a == part);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let (_, total) = timed(|| {
        if want("local") {
            list_bench(&rt);
            snapshot_bench(&rt);
        }
        if want("ssh") {
            ssh_bench(&rt);
        }
    });
    println!("total {:.1} s", total.as_secs_f64());
}
