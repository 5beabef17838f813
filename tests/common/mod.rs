//! Fixtures shared by the CLI tests: small projects written to temp dirs.

#![allow(dead_code)]

use std::path::Path;

use assert_cmd::Command;

/// KOM for one App `/ws/ws1/prv/prv1/cls/cls1/app/app1` (driver `driver`),
/// with `app_spec` appended under the App's `spec:`.
pub fn kom(driver: &str, app_spec: &str) -> String {
    format!(
        "apiVersion: ops.kompox.dev/v1alpha1
kind: Workspace
metadata: {{name: ws1, annotations: {{ops.kompox.dev/id: /ws/ws1}}}}
spec: {{}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Provider
metadata: {{name: prv1, annotations: {{ops.kompox.dev/id: /ws/ws1/prv/prv1}}}}
spec: {{driver: {driver}}}
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
{app_spec}"
    )
}

/// A project: `.kompox/` at the root and the given files (paths relative
/// to the root).
pub fn project(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".kompox")).unwrap();
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

/// A single-app project: `kompoxapp.yml` + `compose.yml` at the root.
pub fn app_project(driver: &str, app_spec: &str, compose: &str) -> tempfile::TempDir {
    project(&[
        ("kompoxapp.yml", kom(driver, app_spec).as_bytes()),
        ("compose.yml", compose.as_bytes()),
    ])
}

pub fn kompoxops(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kompoxops").expect("binary");
    cmd.current_dir(dir)
        .env_remove("KOMPOX_ROOT")
        .env_remove("KOMPOX_DIR")
        .env_remove("KOMPOX_KOM_PATH")
        .env_remove("KOMPOX_KOM_APP")
        // Never reach for a real cluster from a developer's kubeconfig.
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent");
    cmd
}

pub const WEB: &str = "services:\n  web:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n";
pub const COMPOSE_SPEC: &str = "  compose: file:compose.yml\n";
