//! Bad input: every class gets a clear error naming the file and line,
//! exit code 1, and nothing written (the `--out-manifest` file must not
//! appear). These run the real `kompoxops` binary.

mod common;

use common::{COMPOSE_SPEC, WEB, app_project, kom, kompoxops, project};
use std::path::Path;

/// Runs `app validate --out-manifest out.yaml` and checks the failure.
fn assert_rejected(dir: &Path, expect: &[&str]) -> String {
    let out = kompoxops(dir)
        .args(["app", "validate", "--out-manifest", "out.yaml"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "exit code; stderr:\n{stderr}");
    for e in expect {
        assert!(stderr.contains(e), "stderr lacks {e:?}:\n{stderr}");
    }
    assert!(
        !dir.join("out.yaml").exists(),
        "a manifest was written despite the error"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn malformed_kom_yaml() {
    let mut text = kom("aks", COMPOSE_SPEC);
    text.push_str("  volumes: [unclosed\n");
    let dir = project(&[
        ("kompoxapp.yml", text.as_bytes()),
        ("compose.yml", WEB.as_bytes()),
    ]);
    assert_rejected(dir.path(), &["kompoxapp.yml:2", "yaml-syntax"]);
}

#[test]
fn malformed_compose_yaml() {
    let dir = app_project(
        "aks",
        COMPOSE_SPEC,
        "services:\n  web:\n    image: [nginx\n",
    );
    assert_rejected(dir.path(), &["compose.yml:", "yaml-syntax"]);
}

#[test]
fn anchor_bomb_is_rejected_by_the_node_budget() {
    let mut bomb = String::from("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let items = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("x-a{i}: &a{i} [{items}]\n"));
    }
    bomb.push_str(WEB);
    let dir = app_project("aks", COMPOSE_SPEC, &bomb);
    assert_rejected(dir.path(), &["compose.yml:", "anchor bomb"]);
}

#[test]
fn deep_nesting_is_rejected() {
    let deep = format!("x-deep: {}{}\n{WEB}", "[".repeat(5000), "]".repeat(5000));
    let dir = app_project("aks", COMPOSE_SPEC, &deep);
    assert_rejected(dir.path(), &["compose.yml:", "yaml-limit"]);
}

#[test]
fn kom_file_over_the_size_limit() {
    let mut text = kom("aks", COMPOSE_SPEC);
    text.push_str(&format!("# {}\n", "x".repeat(3 * 1024 * 1024)));
    let dir = project(&[
        ("kompoxapp.yml", text.as_bytes()),
        ("compose.yml", WEB.as_bytes()),
    ]);
    assert_rejected(dir.path(), &["kompoxapp.yml", "limit"]);
}

#[test]
fn non_utf8_compose_file() {
    let mut bytes = b"services:\n  web:\n    image: nginx\n    # caf".to_vec();
    bytes.extend_from_slice(&[0xe9, b'\n']);
    let dir = project(&[
        ("kompoxapp.yml", kom("aks", COMPOSE_SPEC).as_bytes()),
        ("compose.yml", &bytes),
    ]);
    assert_rejected(dir.path(), &["compose.yml", "UTF-8", "line 4"]);
}

#[test]
fn duplicate_resource_ids() {
    let mut text = kom("aks", COMPOSE_SPEC);
    text.push_str(
        "---\napiVersion: ops.kompox.dev/v1alpha1\nkind: Cluster\nmetadata: {name: cls1, annotations: {ops.kompox.dev/id: /ws/ws1/prv/prv1/cls/cls1}}\nspec: {}\n",
    );
    let dir = project(&[
        ("kompoxapp.yml", text.as_bytes()),
        ("compose.yml", WEB.as_bytes()),
    ]);
    assert_rejected(
        dir.path(),
        &["kompoxapp.yml:", "duplicate", "/ws/ws1/prv/prv1/cls/cls1"],
    );
}

#[test]
fn missing_parent() {
    let text = kom("aks", COMPOSE_SPEC).replace(
        "/ws/ws1/prv/prv1/cls/cls1/app/app1",
        "/ws/ws1/prv/prv1/cls/other/app/app1",
    );
    let dir = project(&[
        ("kompoxapp.yml", text.as_bytes()),
        ("compose.yml", WEB.as_bytes()),
    ]);
    assert_rejected(
        dir.path(),
        &[
            "kompoxapp.yml:",
            "/ws/ws1/prv/prv1/cls/other",
            "does not exist",
        ],
    );
}

#[test]
fn invalid_dns_name() {
    let text = kom("aks", COMPOSE_SPEC)
        .replace("name: app1", "name: App_1")
        .replace("/app/app1", "/app/App_1");
    let dir = project(&[
        ("kompoxapp.yml", text.as_bytes()),
        ("compose.yml", WEB.as_bytes()),
    ]);
    assert_rejected(dir.path(), &["kompoxapp.yml:", "App_1", "DNS-1123"]);
}

#[test]
fn compose_file_outside_the_app_directory() {
    let dir = project(&[
        (
            "apps/a/kompoxapp.yml",
            kom("aks", "  compose: file:../x/compose.yml\n").as_bytes(),
        ),
        ("apps/x/compose.yml", WEB.as_bytes()),
    ]);
    assert_rejected(&dir.path().join("apps/a"), &["apps/a/kompoxapp.yml:", ".."]);
}

#[test]
fn compose_file_with_an_absolute_path() {
    let dir = app_project("aks", "  compose: file:/etc/compose.yml\n", WEB);
    assert_rejected(dir.path(), &["kompoxapp.yml:", "absolute"]);
}

#[test]
fn symlink_leaving_the_app_directory() {
    let dir = project(&[
        ("apps/a/kompoxapp.yml", kom("aks", COMPOSE_SPEC).as_bytes()),
        (
            "apps/a/compose.yml",
            b"services:\n  web:\n    image: nginx\n    env_file: app.env\n",
        ),
        ("apps/secret.env", b"TOKEN=s3cr3t-VALUE\n"),
    ]);
    std::os::unix::fs::symlink("../secret.env", dir.path().join("apps/a/app.env")).unwrap();
    let stderr = assert_rejected(
        &dir.path().join("apps/a"),
        &["symlink leaves the app directory", "apps/a/compose.yml:4"],
    );
    assert!(
        !stderr.contains("s3cr3t-VALUE"),
        "the value of the file must not be shown: {stderr}"
    );
}

#[test]
fn env_file_syntax_error_names_the_line() {
    let dir = project(&[
        ("kompoxapp.yml", kom("aks", COMPOSE_SPEC).as_bytes()),
        (
            "compose.yml",
            b"services:\n  web:\n    image: nginx\n    env_file: app.env\n",
        ),
        (
            "app.env",
            b"GOOD=1\n# comment\nthis line has no equals sign\n",
        ),
    ]);
    assert_rejected(dir.path(), &["app.env:3", "envfile"]);
}

#[test]
fn ports_that_are_not_host_container() {
    let dir = app_project(
        "aks",
        COMPOSE_SPEC,
        "services:\n  web:\n    image: nginx\n    ports: [\"80\"]\n",
    );
    assert_rejected(dir.path(), &["compose.yml:4", "host:container"]);
}

#[test]
fn unknown_volume_name() {
    let dir = app_project(
        "aks",
        "  compose: file:compose.yml\n  volumes: [{name: data, size: 1Gi}]\n",
        "services:\n  web:\n    image: nginx\n    volumes: [\"cache:/cache\"]\n",
    );
    assert_rejected(
        dir.path(),
        &[
            "compose.yml:4",
            "named volume 'cache'",
            "not defined in app volumes",
        ],
    );
}

#[test]
fn config_target_conflict() {
    let dir = app_project(
        "aks",
        COMPOSE_SPEC,
        "services:\n  web:\n    image: nginx\n    configs:\n      - {source: a, target: /etc/x}\n      - {source: b, target: /etc/x}\nconfigs:\n  a: {content: one}\n  b: {content: two}\n",
    );
    assert_rejected(dir.path(), &["compose.yml:6", "target conflicts"]);
}

#[test]
fn unknown_compose_key_is_named() {
    let dir = app_project(
        "aks",
        COMPOSE_SPEC,
        "services:\n  web:\n    image: nginx\n    portz: [\"80:80\"]\n",
    );
    assert_rejected(dir.path(), &["compose.yml:4", "services.web.portz"]);
}

#[test]
fn kom_type_error_points_at_the_value() {
    let text = kom("aks", COMPOSE_SPEC).replace(
        "spec: {}\n---\napiVersion: ops.kompox.dev/v1alpha1\nkind: App",
        "spec: {existing: maybe}\n---\napiVersion: ops.kompox.dev/v1alpha1\nkind: App",
    );
    let dir = project(&[
        ("kompoxapp.yml", text.as_bytes()),
        ("compose.yml", WEB.as_bytes()),
    ]);
    let stderr = assert_rejected(dir.path(), &["kompoxapp.yml:", "expected a boolean"]);
    assert!(
        stderr.contains("maybe"),
        "the snippet shows the bad value: {stderr}"
    );
}
