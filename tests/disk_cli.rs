//! `kompoxops disk …` / `kompoxops snapshot …` on the real binary, with a
//! K3s Provider whose nodes are temp directories.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{WEB, kompoxops, project};
use serde_json::Value;

/// KOM for one App with a K3s Provider whose nodes `node-a`/`node-b` live
/// under `nodes`, and one App volume `data`.
fn kom_k3s(nodes: &Path) -> String {
    let a = nodes.join("a");
    let b = nodes.join("b");
    format!(
        "apiVersion: ops.kompox.dev/v1alpha1
kind: Workspace
metadata: {{name: ws1, annotations: {{ops.kompox.dev/id: /ws/ws1}}}}
spec: {{}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Provider
metadata: {{name: prv1, annotations: {{ops.kompox.dev/id: /ws/ws1/prv/prv1}}}}
spec:
  driver: k3s
  settings:
    K3S_NODE_ROOTS: \"node-a={},node-b={}\"
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Cluster
metadata: {{name: cls1, annotations: {{ops.kompox.dev/id: /ws/ws1/prv/prv1/cls/cls1}}}}
spec: {{}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: App
metadata: {{name: app1, annotations: {{ops.kompox.dev/id: /ws/ws1/prv/prv1/cls/cls1/app/app1}}}}
spec:
  compose: file:compose.yml
  volumes: [{{name: data, size: 1Gi}}]
",
        a.display(),
        b.display()
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    _nodes: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let nodes = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(nodes.path().join("a")).unwrap();
    std::fs::create_dir_all(nodes.path().join("b")).unwrap();
    let compose = format!("{WEB}    volumes: [\"data:/data\"]\n");
    let dir = project(&[
        ("kompoxapp.yml", kom_k3s(nodes.path()).as_bytes()),
        ("compose.yml", compose.as_bytes()),
    ]);
    Fixture { dir, _nodes: nodes }
}

impl Fixture {
    fn run(&self, args: &[&str]) -> Output {
        kompoxops(self.dir.path()).args(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
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

    /// Runs a command that must fail with exit 1; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn disks(&self) -> Vec<Value> {
        self.json(&["disk", "list", "-V", "data"])
            .as_array()
            .unwrap()
            .clone()
    }
}

fn names(items: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The data directory of a disk from its handle `k3s:<node>:<path>`.
fn disk_path(disk: &Value) -> (String, PathBuf) {
    let handle = disk["handle"].as_str().unwrap();
    let rest = handle.strip_prefix("k3s:").unwrap();
    let (node, path) = rest.split_once(':').unwrap();
    (node.to_string(), PathBuf::from(path))
}

#[test]
fn disk_and_snapshot_lifecycle() {
    let f = fixture();

    // Bootstrap: one assigned disk.
    let created = f.json(&["disk", "create", "--bootstrap"]);
    assert_eq!(created.as_array().unwrap().len(), 1, "{created}");
    let disks = f.disks();
    assert_eq!(disks.len(), 1);
    assert_eq!(disks[0]["assigned"], Value::Bool(true));
    assert_eq!(disks[0]["size"], Value::from(1u64 << 30));
    let first = disks[0]["name"].as_str().unwrap().to_string();
    assert!(first.starts_with("data-"), "{first}");

    // A second bootstrap changes nothing.
    let out = f.run(&["disk", "create", "--bootstrap"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already initialized"));
    assert_eq!(f.disks().len(), 1);

    // --bootstrap with -V is refused.
    f.fails(&["disk", "create", "--bootstrap", "-V", "data"]);

    // Write a file into the first disk, then snapshot it (default source).
    let (node, path) = disk_path(&disks[0]);
    assert_eq!(node, "node-a");
    std::fs::write(path.join("hello.txt"), b"hello from node-a\n").unwrap();
    let snap = f.json(&["snapshot", "create", "-V", "data", "-N", "snap1"]);
    assert_eq!(snap["name"], "snap1");
    let snaps = f.json(&["snapshot", "list", "-V", "data"]);
    assert_eq!(names(snaps.as_array().unwrap()), vec!["snap1".to_string()]);

    // A second disk, assigned instead of the first.
    let second = f.json(&["disk", "create", "-V", "data", "-N", "second"]);
    assert_eq!(second["name"], "second");
    assert_eq!(second["assigned"], Value::Bool(false));
    f.ok(&["disk", "assign", "-V", "data", "-N", "second"]);
    let disks = f.disks();
    assert_eq!(names(&disks), vec![first.clone(), "second".to_string()]);
    for d in &disks {
        assert_eq!(d["assigned"], Value::Bool(d["name"] == "second"), "{d}");
    }
    // Newest first, ties by name.
    let key = |d: &Value| {
        (
            std::cmp::Reverse(d["created_at"].as_str().unwrap().to_string()),
            d["name"].as_str().unwrap().to_string(),
        )
    };
    assert!(key(&disks[0]) <= key(&disks[1]), "{disks:?}");

    // The now unassigned first disk can go; the assigned one cannot.
    f.ok(&["disk", "delete", "-V", "data", "-N", &first]);
    assert_eq!(names(&f.disks()), vec!["second".to_string()]);
    let err = f.fails(&["disk", "delete", "-V", "data", "-N", "second"]);
    assert!(err.contains("assigned"), "{err}");
    assert_eq!(names(&f.disks()), vec!["second".to_string()]);

    // Restore the snapshot on node-b: same files.
    let restored = f.json(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "restored",
        "-S",
        "snapshot:snap1",
        "-Z",
        "node-b",
    ]);
    let (node, path) = disk_path(&restored);
    assert_eq!(node, "node-b");
    assert_eq!(
        std::fs::read(path.join("hello.txt")).unwrap(),
        b"hello from node-a\n"
    );

    // A snapshot of the default (assigned) disk without -N gets a name.
    let auto = f.json(&["snapshot", "create", "-V", "data"]);
    let auto_name = auto["name"].as_str().unwrap().to_string();
    assert!(auto_name.starts_with("data-"), "{auto_name}");
    assert_eq!(auto["source_disk"], "second");
    f.ok(&["snapshot", "delete", "-V", "data", "-N", &auto_name]);
    let snaps = f.json(&["snapshot", "list", "-V", "data"]);
    assert_eq!(names(snaps.as_array().unwrap()), vec!["snap1".to_string()]);

    // A missing source.
    let err = f.fails(&[
        "disk",
        "create",
        "-V",
        "data",
        "-N",
        "x",
        "-S",
        "snapshot:nope",
    ]);
    assert!(err.contains("NotFound"), "{err}");
    let err = f.fails(&["snapshot", "create", "-V", "data", "-S", "disk:nope"]);
    assert!(err.contains("NotFound"), "{err}");

    // An unknown App volume names the known ones.
    let err = f.fails(&["disk", "list", "-V", "nope"]);
    assert!(err.contains("nope") && err.contains("data"), "{err}");
    let err = f.fails(&["snapshot", "list", "-V", "nope"]);
    assert!(err.contains("data"), "{err}");
}

#[test]
fn default_disk_name_is_deterministic() {
    let f = fixture();
    let a = f.json(&["disk", "create", "-V", "data"]);
    let name = a["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("data-"), "{name}");
    // The same default name again is a conflict.
    let err = f.fails(&["disk", "create", "-V", "data"]);
    assert!(err.contains("Conflict"), "{err}");
    // No volume has an assigned disk, so bootstrap runs; it assigns the
    // existing default-named disk instead of creating another.
    let created = f.json(&["disk", "create", "--bootstrap"]);
    assert_eq!(created[0]["name"], Value::from(name.clone()));
    assert_eq!(created[0]["assigned"], Value::Bool(true));
    assert_eq!(f.disks().len(), 1);
}

#[test]
fn bootstrap_after_manual_assign_and_argument_errors() {
    let f = fixture();
    f.ok(&["disk", "create", "-V", "data", "-N", "d1"]);
    f.ok(&["disk", "create", "-V", "data", "-N", "d2"]);
    f.ok(&["disk", "assign", "-V", "data", "-N", "d1"]);
    // One assigned of two: initialized (all volumes have exactly one).
    let out = f.run(&["disk", "create", "--bootstrap"]);
    assert!(out.status.success());
    // Missing -V / -N.
    let err = f.fails(&["disk", "list"]);
    assert!(err.contains("-V"), "{err}");
    let err = f.fails(&["disk", "assign", "-V", "data"]);
    assert!(err.contains("-N"), "{err}");
    // Assigning a missing disk.
    f.fails(&["disk", "assign", "-V", "data", "-N", "nope"]);
    // Deleting a missing disk is not an error.
    f.ok(&["disk", "delete", "-V", "data", "-N", "nope"]);
}

#[test]
fn repository_mode_needs_an_app_selection() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo-layout");
    let out = kompoxops(&repo)
        .args(["disk", "list", "-V", "data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pass --app-id or --app-name"), "{err}");
    let out = kompoxops(&repo)
        .args(["snapshot", "list", "-V", "data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
