//! A small Kompox repository in a temp dir whose Cluster points at the
//! testbed, shared by the testbed tests. Include it after the testbed:
//!
//! ```ignore
//! #[path = "support/testbed.rs"]
//! mod testbed;
//! #[path = "common/repo.rs"]
//! mod repo;
//! ```

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use kompox::hash::AppHashes;

use crate::testbed::Testbed;

/// A repository: shared KOM (workspace `ws`, provider k3s, cluster `tb`
/// pointing at the testbed) and one directory per app.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub ws: String,
    /// The K3s nodes' directories ([`Repo::with_node_dirs`]): outside the
    /// repository, so the project loader never reads disk data.
    nodes: tempfile::TempDir,
}

impl Repo {
    pub fn new(tb: &Testbed, prefix: &str) -> Repo {
        let ws = tb.unique_name(prefix);
        let dir = tempfile::tempdir().unwrap();
        let shared = format!(
            "apiVersion: ops.kompox.dev/v1alpha1
kind: Workspace
metadata: {{name: {ws}, annotations: {{ops.kompox.dev/id: /ws/{ws}}}}}
spec: {{}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Provider
metadata: {{name: k3s, annotations: {{ops.kompox.dev/id: /ws/{ws}/prv/k3s}}}}
spec: {{driver: k3s}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Cluster
metadata: {{name: tb, annotations: {{ops.kompox.dev/id: /ws/{ws}/prv/k3s/cls/tb}}}}
spec:
  existing: true
  kubeconfig: {{path: {}}}
",
            tb.kubeconfig_path.display()
        );
        write(
            dir.path(),
            ".kompox/config.yml",
            "version: 1\napps:\n  - apps/*/kompoxapp.yml\n",
        );
        write(dir.path(), ".kompox/kom/shared.yml", &shared);
        Repo {
            dir,
            ws,
            nodes: tempfile::tempdir().unwrap(),
        }
    }

    /// Gives the K3s provider a directory per testbed node (the local
    /// host-access layer: each fake node maps to its own directory).
    pub fn with_node_dirs(&self, nodes: &[&str]) -> std::path::PathBuf {
        let root = self.nodes.path().to_path_buf();
        let roots: Vec<String> = nodes
            .iter()
            .map(|n| {
                let d = root.join(n);
                std::fs::create_dir_all(&d).unwrap();
                format!("{n}={}", d.display())
            })
            .collect();
        let path = self.dir.path().join(".kompox/kom/shared.yml");
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "spec: {driver: k3s}",
            &format!(
                "spec: {{driver: k3s, settings: {{K3S_NODE_ROOTS: \"{}\"}}}}",
                roots.join(",")
            ),
        );
        std::fs::write(path, text).unwrap();
        root
    }

    pub fn app(&self, name: &str, spec_extra: &str, compose: &str) {
        let kom = format!(
            "apiVersion: ops.kompox.dev/v1alpha1
kind: App
metadata: {{name: {name}, annotations: {{ops.kompox.dev/id: /ws/{}/prv/k3s/cls/tb/app/{name}}}}}
spec:
  compose: file:compose.yml
  deployment: {{zone: zone-b}}
{spec_extra}",
            self.ws
        );
        write(self.dir.path(), &format!("apps/{name}/kompoxapp.yml"), &kom);
        write(
            self.dir.path(),
            &format!("apps/{name}/compose.yml"),
            compose,
        );
    }

    pub fn remove_app(&self, name: &str) {
        std::fs::remove_dir_all(self.dir.path().join("apps").join(name)).unwrap();
    }

    pub fn namespace(&self, app: &str) -> String {
        let h = AppHashes::new(&self.ws, "k3s", "tb", app);
        format!("k4x-{}-{app}-{}", h.provider, h.app_id)
    }

    /// Runs `kompoxops args` in the repository (killed after 240 s).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("kompoxops")
            .unwrap()
            .current_dir(self.dir.path())
            .env_remove("KUBECONFIG")
            .args(args)
            .timeout(Duration::from_secs(240))
            .output()
            .unwrap()
    }

    /// Starts `kompoxops args` in the repository without waiting, stdout
    /// and stderr to `out_dir/stdout` and `out_dir/stderr`.
    pub fn spawn(&self, args: &[&str], out_dir: &Path) -> Child {
        let stdout = std::fs::File::create(out_dir.join("stdout")).unwrap();
        let stderr = std::fs::File::create(out_dir.join("stderr")).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_kompoxops"))
            .current_dir(self.dir.path())
            .env_remove("KUBECONFIG")
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    pub fn apply(&self) -> String {
        let out = self.run(&["apply", "--auto-approve", "--timeout", "120"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "apply failed:\n{text}");
        text
    }

    pub fn plan(&self) -> (i32, String) {
        let out = self.run(&["plan", "--detailed-exitcode"]);
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

pub fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Two services, no volumes.
pub const WEB: &str = "services:
  web:
    image: nginx:1.27
    ports: [\"8080:80\"]
    environment: {GREETING: hello}
  cache:
    image: redis:7
";
