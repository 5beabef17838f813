//! The K3s driver against the real testbed control plane: each fake kwok
//! node (`node-a1` … `node-c2`, zones `zone-a/b/c`) is its own directory
//! (the local host-access layer), the pods are scheduled by the real
//! scheduler onto the nodes the local PersistentVolumes pin.
//!
//! - the data round trip: bootstrap → write data → snapshot → restore onto
//!   a node in another zone → assign → apply: the PV pins the new node, the
//!   pod is recreated there, the data is byte-identical;
//! - `snapshot create --consistent`: the Deployment is at 0 replicas and
//!   no pod exists while the copy runs, and it is back at 1 afterwards, also
//!   when the snapshot fails;
//! - every `disk` / `snapshot` command against a deployed App;
//! - the example repository's K3s apps with volumes plan, apply and reach
//!   Running on kwok nodes.

#[path = "support/testbed.rs"]
mod testbed;

#[path = "common/repo.rs"]
mod repo;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use repo::{Repo, write};
use serde_json::Value;
use testbed::{Testbed, testbed};

const WAIT: Duration = Duration::from_secs(120);
const NODES: [&str; 6] = [
    "node-a1", "node-a2", "node-b1", "node-b2", "node-c1", "node-c2",
];

/// An App `name` with one volume `data`, placed in `zone`.
fn app_in_zone(repo: &Repo, name: &str, zone: &str) {
    let kom = format!(
        "apiVersion: ops.kompox.dev/v1alpha1
kind: App
metadata: {{name: {name}, annotations: {{ops.kompox.dev/id: /ws/{}/prv/k3s/cls/tb/app/{name}}}}}
spec:
  compose: file:compose.yml
  volumes: [{{name: data, size: 1Gi}}]
  deployment: {{zone: {zone}}}
",
        repo.ws
    );
    write(repo.dir.path(), &format!("apps/{name}/kompoxapp.yml"), &kom);
    write(
        repo.dir.path(),
        &format!("apps/{name}/compose.yml"),
        "services:\n  db:\n    image: postgres:16\n    volumes: [\"data/pg:/var/lib/postgresql/data\"]\n",
    );
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command that must succeed; returns (stdout, stderr).
fn ok(repo: &Repo, args: &[&str]) -> (String, String) {
    let out = repo.run(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}:\n{}", text(&out));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(repo: &Repo, args: &[&str]) -> Value {
    let (s, _) = ok(repo, args);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: {e}: {s}"))
}

fn get(tb: &Testbed, path: &str) -> Option<Value> {
    tb.get_opt(path).unwrap()
}

/// The data directory and node of a disk from its handle.
fn disk_place(disk: &Value) -> (String, PathBuf) {
    let h = disk["handle"].as_str().unwrap();
    let mut parts = h.splitn(3, ':');
    assert_eq!(parts.next(), Some("k3s"), "{h}");
    let node = parts.next().unwrap().to_string();
    (node, PathBuf::from(parts.next().unwrap()))
}

/// The Running pods of a namespace.
fn running_pods(tb: &Testbed, ns: &str) -> Vec<Value> {
    get(tb, &format!("/api/v1/namespaces/{ns}/pods"))
        .and_then(|p| p["items"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

/// Waits until exactly one pod is Running and, if `not_uid` is given, it is
/// another pod than that one.
fn the_running_pod(tb: &Testbed, ns: &str, not_uid: Option<&Value>) -> Value {
    tb.wait_for("one Running pod", WAIT, || {
        let pods = running_pods(tb, ns);
        match pods.as_slice() {
            [p] if not_uid != Some(&p["metadata"]["uid"]) => Some(p.clone()),
            _ => None,
        }
    })
}

/// The PersistentVolume behind the pod's claim of volume `data`.
fn pv_of_pod(tb: &Testbed, ns: &str, pod: &Value) -> Value {
    let claim = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .expect("the pod mounts a claim")
        .to_string();
    let pvc = get(
        tb,
        &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}"),
    )
    .unwrap();
    let pv = pvc["spec"]["volumeName"].as_str().unwrap();
    get(tb, &format!("/api/v1/persistentvolumes/{pv}")).unwrap()
}

fn pinned_node(pv: &Value) -> String {
    let terms =
        &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(terms["key"], "kubernetes.io/hostname", "{pv}");
    terms["values"][0].as_str().unwrap().to_string()
}

fn zone_of(tb: &Testbed, node: &str) -> String {
    get(tb, &format!("/api/v1/nodes/{node}")).unwrap()["metadata"]["labels"]
        ["topology.kubernetes.io/zone"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Deterministic bytes that do not compress to nothing.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// What an app keeps on its disk: nested directories, a file larger than
/// the copy's 1 MiB chunk, an empty file and directory, modes, owners and
/// a symlink.
fn write_app_data(dir: &Path) {
    std::fs::create_dir_all(dir.join("pg/base/16384")).unwrap();
    std::fs::create_dir_all(dir.join("pg/empty")).unwrap();
    std::fs::write(dir.join("pg/base/16384/1259"), noise(3 * (1 << 20) + 17, 1)).unwrap();
    std::fs::write(dir.join("pg/base/16384/2608"), noise(8192, 2)).unwrap();
    std::fs::write(dir.join("pg/PG_VERSION"), b"16\n").unwrap();
    std::fs::write(dir.join("pg/postmaster.opts"), b"").unwrap();
    std::fs::set_permissions(dir.join("pg/base"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(
        dir.join("pg/PG_VERSION"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("base/16384/1259", dir.join("pg/latest")).unwrap();
    // Owned by the postgres user of the image (uid 999), as a real pod would
    // leave it: the copy must keep owners.
    std::os::unix::fs::lchown(dir.join("pg"), Some(999), Some(999)).unwrap();
    std::os::unix::fs::lchown(dir.join("pg/PG_VERSION"), Some(999), Some(999)).unwrap();
}

/// A tree as relative path → (kind, mode, uid, gid, content or target).
fn tree(root: &Path) -> BTreeMap<String, (char, u32, u32, u32, Vec<u8>)> {
    fn go(base: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, u32, u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = p.symlink_metadata().unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let (kind, content) = if m.file_type().is_symlink() {
                (
                    'l',
                    std::fs::read_link(&p).unwrap().into_os_string().into_vec(),
                )
            } else if m.is_dir() {
                go(base, &p, out);
                ('d', Vec::new())
            } else {
                ('f', std::fs::read(&p).unwrap())
            };
            out.insert(rel, (kind, m.mode() & 0o7777, m.uid(), m.gid(), content));
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

/// bootstrap → write data → snapshot → restore onto a node in another zone
/// → assign → move the App there → apply: the PV pins the new node, the
/// pod is recreated and runs there, and the data is byte-identical.
#[test]
fn a_snapshot_restored_in_another_zone_moves_the_app_with_its_data() {
    let tb = testbed();
    let repo = Repo::new(tb, "roundtrip");
    let nodes_root = repo.with_node_dirs(&NODES);
    app_in_zone(&repo, "db", "zone-b");
    let ns = repo.namespace("db");

    let created = json(
        &repo,
        &[
            "--app-name",
            "db",
            "disk",
            "create",
            "--bootstrap",
            "-Z",
            "node-b1",
        ],
    );
    let (node, original) = disk_place(&created[0]);
    assert_eq!(node, "node-b1");
    assert!(original.starts_with(nodes_root.join("node-b1")));
    repo.apply();
    let first = the_running_pod(tb, &ns, None);
    assert_eq!(first["spec"]["nodeName"], "node-b1");

    write_app_data(&original);
    let (out, err) = ok(
        &repo,
        &[
            "--app-name",
            "db",
            "snapshot",
            "create",
            "-V",
            "data",
            "-N",
            "snap1",
        ],
    );
    assert!(err.contains("consistent per file only"), "warns: {err}");
    let snap: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(snap["name"], "snap1");
    assert!(snap["handle"].as_str().unwrap().starts_with("k3s:node-b1:"));

    // Restore onto a node of zone-c and make it the assigned disk.
    let moved = json(
        &repo,
        &[
            "--app-name",
            "db",
            "disk",
            "create",
            "-V",
            "data",
            "-N",
            "moved",
            "-S",
            "snapshot:snap1",
            "-Z",
            "node-c1",
        ],
    );
    let (node, moved_dir) = disk_place(&moved);
    assert_eq!(node, "node-c1");
    assert_eq!(zone_of(tb, &node), "zone-c");
    assert!(moved_dir.starts_with(nodes_root.join("node-c1")));
    assert_eq!(moved["assigned"], false);
    ok(
        &repo,
        &[
            "--app-name",
            "db",
            "disk",
            "assign",
            "-V",
            "data",
            "-N",
            "moved",
        ],
    );

    // The App follows in Git (DECISIONS 11: a zone move recreates the pod).
    app_in_zone(&repo, "db", "zone-c");
    let (code, plan) = repo.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("DISRUPTIVE"), "the pod is recreated: {plan}");
    assert!(
        plan.contains("+ PersistentVolume"),
        "a PV for the new disk: {plan}"
    );
    assert!(plan.contains("+ PersistentVolumeClaim"), "{plan}");
    assert!(plan.contains("~ Deployment"), "{plan}");
    assert!(!plan.contains("disk data/"), "no disk to create: {plan}");

    let out = repo.apply();
    assert!(out.contains("is available"), "{out}");
    let second = the_running_pod(tb, &ns, Some(&first["metadata"]["uid"]));
    assert_eq!(
        second["spec"]["nodeName"], "node-c1",
        "the pod follows its disk"
    );
    let pv = pv_of_pod(tb, &ns, &second);
    assert_eq!(pinned_node(&pv), "node-c1", "the PV pins the new node");
    assert_eq!(
        pv["spec"]["local"]["path"].as_str().unwrap(),
        moved_dir.to_str().unwrap()
    );
    assert_eq!(pv["status"]["phase"], "Bound");
    assert!(
        running_pods(tb, &ns)
            .iter()
            .all(|p| p["metadata"]["uid"] != first["metadata"]["uid"]),
        "the first pod is gone"
    );

    let before = tree(&original);
    assert!(before.len() >= 9, "{:?}", before.keys());
    assert_eq!(
        tree(&moved_dir),
        before,
        "byte-identical, with modes, owners, links"
    );

    let (code, plan) = repo.plan();
    assert_eq!(code, 0, "converged:\n{plan}");
}

/// Patches of the Deployment's `scale` subresource by the test user.
fn scale_patches(tb: &Testbed, mark: u64, ns: &str) -> usize {
    tb.audit_events_since(mark)
        .iter()
        .filter(|e| e["verb"] == "patch")
        .filter(|e| e["user"]["username"] == testbed::TEST_USER)
        .filter(|e| e["objectRef"]["namespace"] == ns && e["objectRef"]["subresource"] == "scale")
        .count()
}

/// `snapshot create --consistent`: while the copy runs the Deployment has
/// 0 replicas and no pod exists; afterwards it is back at 1 replica and
/// the pod runs again. When the snapshot fails, the App is started again
/// all the same.
#[test]
fn a_consistent_snapshot_stops_the_app_during_the_copy_and_starts_it_again() {
    let tb = testbed();
    let repo = Repo::new(tb, "consistent");
    let nodes_root = repo.with_node_dirs(&NODES);
    app_in_zone(&repo, "db", "zone-a");
    let ns = repo.namespace("db");
    repo.apply();
    let first = the_running_pod(tb, &ns, None);
    let disks = json(&repo, &["--app-name", "db", "disk", "list", "-V", "data"]);
    let (node, dir) = disk_place(&disks[0]);
    assert_eq!(node, first["spec"]["nodeName"].as_str().unwrap());
    // Enough data that the copy takes a while (every file is fsynced).
    write_app_data(&dir);
    for i in 0..96 {
        std::fs::write(
            dir.join(format!("pg/base/16384/seg{i:03}")),
            noise(1 << 20, i),
        )
        .unwrap();
    }
    let deployment = format!("/apis/apps/v1/namespaces/{ns}/deployments/db-app");
    let snapshots = nodes_root.join(&node).join("snapshots");

    let mark = tb.audit_mark();
    let out_dir = tempfile::tempdir().unwrap();
    let mut child = repo.spawn(
        &[
            "--app-name",
            "db",
            "snapshot",
            "create",
            "-V",
            "data",
            "-N",
            "calm",
            "--consistent",
        ],
        out_dir.path(),
    );
    // Watch the cluster and the node's directory while the command runs.
    let (mut saw_zero, mut copies_seen, mut pods_during_copy) = (false, 0, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < WAIT, "the consistent snapshot hangs");
        let copying = || {
            std::fs::read_dir(&snapshots)
                .ok()
                .and_then(|mut r| r.next())
                .is_some_and(|e| e.unwrap().path().join("data/.calm.partial").exists())
        };
        // A reading counts only when the copy was in progress both before
        // and after it: then the reading happened during the copy (the
        // app is scaled up again right after the copy ends).
        if copying() {
            let replicas = get(tb, &deployment).unwrap()["spec"]["replicas"].as_i64();
            let pods = get(tb, &format!("/api/v1/namespaces/{ns}/pods")).unwrap();
            if copying() {
                copies_seen += 1;
                pods_during_copy += pods["items"].as_array().unwrap().len();
                assert_eq!(replicas, Some(0), "copying while the app is scaled up");
            }
        }
        let replicas = get(tb, &deployment).unwrap()["spec"]["replicas"].as_i64();
        saw_zero |= replicas == Some(0);
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read_to_string(out_dir.path().join("stderr")).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(saw_zero, "the Deployment went to 0 replicas: {stderr}");
    assert!(copies_seen > 0, "the copy was observed: {stderr}");
    assert_eq!(pods_during_copy, 0, "no pod existed while copying");
    assert!(
        stderr.contains("replicas 1 -> 0") && stderr.contains("replicas 0 -> 1"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("consistent per file only"),
        "no warning: {stderr}"
    );
    let snap: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.path().join("stdout")).unwrap())
            .unwrap();
    assert_eq!(snap["name"], "calm");
    assert_eq!(get(tb, &deployment).unwrap()["spec"]["replicas"], 1);
    the_running_pod(tb, &ns, Some(&first["metadata"]["uid"]));
    assert_eq!(scale_patches(tb, mark, &ns), 2, "down, then up");
    // The snapshot restores to the data.
    let r = json(
        &repo,
        &[
            "--app-name",
            "db",
            "disk",
            "create",
            "-V",
            "data",
            "-N",
            "check",
            "-S",
            "snapshot:calm",
            "-Z",
            "node-c2",
        ],
    );
    assert_eq!(tree(&disk_place(&r).1), tree(&dir));
    // The replica count in Git and in the cluster agree again.
    let (code, plan) = repo.plan();
    assert_eq!(code, 0, "{plan}");

    // A snapshot that fails after the App was stopped (the name is taken):
    // the App is started again, and the error says so.
    let mark = tb.audit_mark();
    let running = the_running_pod(tb, &ns, None);
    let out = repo.run(&[
        "--app-name",
        "db",
        "snapshot",
        "create",
        "-V",
        "data",
        "-N",
        "calm",
        "--consistent",
    ]);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Conflict") && err.contains("started again"),
        "{err}"
    );
    assert_eq!(get(tb, &deployment).unwrap()["spec"]["replicas"], 1);
    assert_eq!(scale_patches(tb, mark, &ns), 2, "stopped and started again");
    the_running_pod(tb, &ns, Some(&running["metadata"]["uid"]));
}

/// Every disk and snapshot command once against an App deployed on the
/// testbed, and the cluster following an assignment within the zone.
#[test]
fn every_disk_and_snapshot_command_against_a_deployed_app() {
    let tb = testbed();
    let repo = Repo::new(tb, "commands");
    repo.with_node_dirs(&NODES);
    app_in_zone(&repo, "db", "zone-b");
    let ns = repo.namespace("db");
    let a = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["--app-name".to_string(), "db".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: &[&str]| {
        let v = a(args);
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        repo.run(&v)
    };
    let js = |args: &[&str]| -> Value {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let names = |noun: &str| -> Vec<String> {
        let mut v: Vec<String> = js(&[noun, "list", "-V", "data"])
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };

    // disk create --bootstrap, then apply.
    let boot = js(&["disk", "create", "--bootstrap", "-Z", "node-b1"]);
    let first = boot[0]["name"].as_str().unwrap().to_string();
    let (_, first_dir) = disk_place(&boot[0]);
    std::fs::write(first_dir.join("hello.txt"), b"hello\n").unwrap();
    repo.apply();
    let pod = the_running_pod(tb, &ns, None);

    // disk list
    let list = js(&["disk", "list", "-V", "data"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["assigned"], true);
    // disk create -S disk: (a clone onto the zone's other node)
    let clone = js(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "clone",
        "-S",
        &format!("disk:{first}"),
        "-Z",
        "node-b2",
    ]);
    let (clone_node, clone_dir) = disk_place(&clone);
    assert_eq!(clone_node, "node-b2");
    assert_eq!(
        std::fs::read(clone_dir.join("hello.txt")).unwrap(),
        b"hello\n"
    );
    // disk create (empty)
    let spare = js(&["disk", "create", "-V", "data", "-N", "spare"]);
    assert_eq!(spare["assigned"], false);
    // snapshot create -S disk:, snapshot list
    js(&[
        "snapshot",
        "create",
        "-V",
        "data",
        "-N",
        "of-clone",
        "-S",
        "disk:clone",
    ]);
    js(&["snapshot", "create", "-V", "data", "-N", "of-first"]);
    assert_eq!(names("snapshot"), ["of-clone", "of-first"]);
    // disk assign, apply: the pod moves to the clone's node.
    assert_eq!(
        run(&["disk", "assign", "-V", "data", "-N", "clone"])
            .status
            .code(),
        Some(0)
    );
    let (code, plan) = repo.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("DISRUPTIVE"), "{plan}");
    repo.apply();
    let moved = the_running_pod(tb, &ns, Some(&pod["metadata"]["uid"]));
    assert_eq!(moved["spec"]["nodeName"], "node-b2");
    assert_eq!(pinned_node(&pv_of_pod(tb, &ns, &moved)), "node-b2");
    // disk delete: the assigned one is refused, the unassigned ones go.
    let out = run(&["disk", "delete", "-V", "data", "-N", "clone"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("assigned"), "{}", text(&out));
    for d in [first.as_str(), "spare"] {
        assert_eq!(
            run(&["disk", "delete", "-V", "data", "-N", d])
                .status
                .code(),
            Some(0)
        );
    }
    assert_eq!(names("disk"), ["clone"]);
    assert!(!first_dir.exists(), "the deleted disk's data is gone");
    // snapshot delete
    assert_eq!(
        run(&["snapshot", "delete", "-V", "data", "-N", "of-first"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(names("snapshot"), ["of-clone"]);
    // Disks and snapshots that are not assigned are not part of the
    // cluster: the plan stays empty, the pod keeps running.
    let (code, plan) = repo.plan();
    assert_eq!(code, 0, "{plan}");
    assert_eq!(
        the_running_pod(tb, &ns, None)["metadata"]["uid"],
        moved["metadata"]["uid"]
    );
}

/// Copies a directory tree (files and directories only).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// The example repository's K3s apps with volumes plan, apply and reach
/// Running on kwok nodes: a copy of `examples/repo-layout` whose Cluster
/// `home` points at the testbed and whose K3s nodes are temp directories.
#[test]
fn the_example_repositorys_k3s_apps_with_volumes_apply_and_run() {
    let tb = testbed();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo-layout"),
        &root,
    );
    let providers = root.join(".kompox/kom/providers.yml");
    let roots: Vec<String> = NODES
        .iter()
        .map(|n| {
            let d = tmp.path().join("nodes").join(n);
            std::fs::create_dir_all(&d).unwrap();
            format!("{n}={}", d.display())
        })
        .collect();
    let text_of = |p: &Path| std::fs::read_to_string(p).unwrap();
    let original = text_of(&providers);
    let k3s_settings = "    K3S_NODE: home-box\n    K3S_ROOT: /var/lib/kompox\n";
    assert!(original.contains(k3s_settings), "{original}");
    std::fs::write(
        &providers,
        original.replace(
            k3s_settings,
            &format!("    K3S_NODE_ROOTS: \"{}\"\n", roots.join(",")),
        ),
    )
    .unwrap();
    let clusters = root.join(".kompox/kom/clusters.yml");
    let original = text_of(&clusters);
    let home = "    ops.kompox.dev/id: /ws/acme/prv/k3s-home/cls/home\nspec:\n";
    assert!(original.contains(home), "{original}");
    std::fs::write(
        &clusters,
        original.replace(
            home,
            &format!(
                "{home}  kubeconfig: {{path: {}}}\n",
                tb.kubeconfig_path.display()
            ),
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("kompoxops")
            .unwrap()
            .current_dir(&root)
            .env_remove("KUBECONFIG")
            .args(args)
            .timeout(Duration::from_secs(240))
            .output()
            .unwrap()
    };

    // Which apps: from the offline plan (K3s driver, a disk to create).
    let out = run(&["plan", "--offline", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let apps: Vec<(String, String, String)> = plan["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["driver"] == "k3s")
        .filter(|a| {
            a["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["target"]["type"] == "disk")
        })
        .map(|a| {
            (
                a["app_id"].as_str().unwrap().to_string(),
                a["app_name"].as_str().unwrap().to_string(),
                a["namespace"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        !apps.is_empty(),
        "the example has a K3s app with a volume: {plan}"
    );

    for (id, name, ns) in &apps {
        let out = run(&["-A", id, "plan", "--detailed-exitcode"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("+ disk "), "{}", text(&out));
        let out = run(&["-A", id, "apply", "--auto-approve", "--timeout", "120"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        let pod = the_running_pod(tb, ns, None);
        let node = pod["spec"]["nodeName"].as_str().unwrap().to_string();
        let n = get(tb, &format!("/api/v1/nodes/{node}")).unwrap();
        assert_eq!(
            n["metadata"]["annotations"]["kwok.x-k8s.io/node"], "fake",
            "{name} on {node}"
        );
        let pv = pv_of_pod(tb, ns, &pod);
        assert_eq!(pinned_node(&pv), node, "{name}: the PV pins the pod's node");
        let path = PathBuf::from(pv["spec"]["local"]["path"].as_str().unwrap());
        assert!(
            path.starts_with(tmp.path().join("nodes").join(&node)),
            "{name}: the disk is a directory of that node: {}",
            path.display()
        );
        let out = run(&["-A", id, "plan", "--detailed-exitcode"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name} converged: {}",
            text(&out)
        );
    }
}
