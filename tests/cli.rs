//! The real `kompoxops` binary: commands, output streams and exit codes.

mod common;

use common::{COMPOSE_SPEC, WEB, app_project, kompoxops};
use std::path::Path;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo-layout")
}

#[test]
fn version_prints_the_crate_version() {
    let out = kompoxops(&repo()).arg("version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("kompoxops {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_1() {
    let out = kompoxops(&repo())
        .args(["app", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = kompoxops(&repo())
        .args(["--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn help_exits_0() {
    let out = kompoxops(&repo()).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("validate")
            || String::from_utf8_lossy(&out.stdout).contains("app")
    );
}

/// The README's main command: the wiki's manifest on stdout, the report on stderr.
#[test]
fn validate_wiki_prints_its_manifest() {
    let out = kompoxops(&repo())
        .args(["-C", "apps/wiki", "app", "validate", "--out-manifest", "-"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("---\napiVersion: v1\nkind: Namespace\n"),
        "{stdout}"
    );
    for kind in [
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "Ingress",
    ] {
        assert!(
            stdout.contains(&format!("\nkind: {kind}\n")),
            "missing {kind}"
        );
    }
    assert!(
        stderr.contains("conversion report for /ws/acme/prv/k3s-home/cls/home/app/wiki"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ignored  services.wiki.restart"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("conversion report"),
        "report must not mix into the manifest"
    );
}

#[test]
fn validate_is_deterministic() {
    let run = || {
        kompoxops(&repo())
            .args(["-C", "apps/wiki", "app", "validate", "--out-manifest", "-"])
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(run(), run());
}

#[test]
fn validate_writes_compose_and_manifest_files() {
    let dir = app_project("aks", COMPOSE_SPEC, WEB);
    let out = kompoxops(dir.path())
        .args([
            "app",
            "validate",
            "--out-compose",
            "c.yaml",
            "--out-manifest",
            "m.yaml",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let compose = std::fs::read_to_string(dir.path().join("c.yaml")).unwrap();
    assert!(compose.contains("image: nginx:1.27"), "{compose}");
    let manifest = std::fs::read_to_string(dir.path().join("m.yaml")).unwrap();
    assert!(
        manifest.contains("name: k4x-32kff1-app1-k9x84f"),
        "reference namespace name: {manifest}"
    );
    // With stdout free, the report goes to stdout.
    assert!(String::from_utf8_lossy(&out.stdout).contains("mapped   services.web.image"));
}

#[test]
fn validate_with_an_unassigned_volume_warns_and_writes_no_manifest() {
    let dir = app_project(
        "aks",
        "  compose: file:compose.yml\n  volumes: [{name: data, size: 1Gi}]\n",
        "services:\n  web:\n    image: nginx\n    volumes: [\"data:/data\"]\n",
    );
    let out = kompoxops(dir.path())
        .args(["app", "validate", "--out-manifest", "m.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a missing disk is a warning: {stderr}"
    );
    assert!(stderr.contains("volume-assignment-missing"), "{stderr}");
    assert!(!dir.path().join("m.yaml").exists());
}

#[test]
fn repository_mode_validates_every_app() {
    let out = kompoxops(&repo())
        .args(["app", "validate"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("conversion report for /ws/acme/prv/aks-prod/cls/prod/app/gitea"));
    assert!(stdout.contains("conversion report for /ws/acme/prv/k3s-home/cls/home/app/wiki"));
}

#[test]
fn app_name_selects_one_app_in_repository_mode() {
    let out = kompoxops(&repo())
        .args(["--app-name", "wiki", "app", "validate"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("app/wiki") && !stdout.contains("app/gitea"),
        "{stdout}"
    );
    let out = kompoxops(&repo())
        .args(["--app-name", "nope", "app", "validate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn no_kompox_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = kompoxops(dir.path())
        .args(["app", "validate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kompoxops init"));
}

#[test]
fn init_scaffolds_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = kompoxops(dir.path())
        .args(["-C", "proj", "init"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = dir.path().join("proj/.kompox");
    assert_eq!(
        std::fs::read_to_string(base.join("config.yml")).unwrap(),
        "version: 1\nstore:\n  type: local\n"
    );
    assert!(base.join("kom").is_dir() && base.join("logs").is_dir());
    assert_eq!(
        std::fs::read_to_string(base.join(".gitignore")).unwrap(),
        "logs/\n"
    );
    let again = kompoxops(dir.path())
        .args(["-C", "proj", "init"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let forced = kompoxops(dir.path())
        .args(["-C", "proj", "init", "--force"])
        .output()
        .unwrap();
    assert_eq!(forced.status.code(), Some(0));
}

#[test]
fn secrets_in_env_files_never_reach_the_report() {
    let out = kompoxops(&repo())
        .args(["-C", "apps/gitea", "app", "validate"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("example-only-change-me"), "{all}");
}
