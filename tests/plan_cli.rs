//! `kompoxops plan` end to end with the real binary: the example
//! repository offline (golden), exit codes, the live file round trip, and
//! secrets that must never appear.

mod common;

use std::path::{Path, PathBuf};

use common::kompoxops;
use kompox::kom::{ProjectEnv, load_project};
use kompox::live::inventory_object;
use kompox::source::{FileTree, TreeLimits};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo-layout")
}

fn plan(args: &[&str]) -> (i32, String, String) {
    let out = kompoxops(&repo()).arg("plan").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The README's main command. The revision in the header depends on the
/// checkout, so it is masked.
#[test]
fn offline_plan_of_the_example_repository() {
    let (code, stdout, stderr) = plan(&["--offline"]);
    assert_eq!(code, 0, "{stderr}");
    let masked = mask_revision(&stdout);
    insta::assert_snapshot!("offline_text", masked);
    for app in ["app gitea", "app wordpress", "app wiki", "app vaultwarden"] {
        assert!(stdout.contains(app), "{app} missing");
    }
}

#[test]
fn offline_plan_in_markdown_and_json() {
    let (code, md, _) = plan(&["--offline", "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(md.starts_with("<!-- kompox-plan -->"), "{md}");
    insta::assert_snapshot!("offline_markdown", mask_revision(&md));
    let (code, json, _) = plan(&["--offline", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["header"]["live"]["source"], "offline");
    assert_eq!(v["has_changes"], true);
    // gitea, wordpress (AKS), uptime, wiki (K3s), vaultwarden (EKS).
    assert_eq!(v["apps"].as_array().unwrap().len(), 5);
}

#[test]
fn detailed_exitcode_is_2_with_changes_and_0_without() {
    let (code, _, _) = plan(&["--offline", "--detailed-exitcode"]);
    assert_eq!(code, 2);
    let (code, _, _) = plan(&["--offline"]);
    assert_eq!(code, 0);
}

#[test]
fn without_offline_or_live_plan_fails_clearly() {
    let (code, stdout, stderr) = plan(&[]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "no plan is printed: {stdout}");
    assert!(
        stderr.contains("--offline") && stderr.contains("--live"),
        "{stderr}"
    );
}

#[test]
fn offline_and_live_conflict_is_a_usage_error() {
    let (code, _, stderr) = plan(&["--offline", "--live", "x.json"]);
    assert_eq!(code, 1, "{stderr}");
}

#[test]
fn a_bad_live_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("live.json");
    std::fs::write(&f, "[1, 2]").unwrap();
    let (code, _, stderr) = plan(&["--live", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("invalid live file"), "{stderr}");
}

/// A live file that holds exactly what the repository wants (objects,
/// inventories, assigned disks) plans no changes: exit 0 with
/// `--detailed-exitcode`, "no changes" for every app.
#[test]
fn live_state_equal_to_the_desired_state_plans_no_changes() {
    let dir = tempfile::tempdir().unwrap();
    let live_path = dir.path().join("live.json");
    std::fs::write(&live_path, matching_live_file()).unwrap();
    let (code, stdout, stderr) =
        plan(&["--live", live_path.to_str().unwrap(), "--detailed-exitcode"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("No changes."), "{stdout}");
    // The live file carries Secret data; the plan must not.
    assert!(!stdout.contains("example-only"), "{stdout}");
}

/// Then change one image in the live state: one Disruptive update.
#[test]
fn an_image_drift_in_live_is_one_disruptive_update() {
    let live = matching_live_file().replace(
        "image\":\"redimp/otterwiki:2.4\"",
        "image\":\"redimp/otterwiki:2.3\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let live_path = dir.path().join("live.json");
    std::fs::write(&live_path, live).unwrap();
    let (code, stdout, _) = plan(&["--live", live_path.to_str().unwrap(), "--detailed-exitcode"]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("DISRUPTIVE"), "{stdout}");
    assert!(
        stdout.contains("-        image: redimp/otterwiki:2.3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+        image: redimp/otterwiki:2.4"),
        "{stdout}"
    );
}

#[test]
fn secret_values_never_appear_in_any_format() {
    for format in ["text", "markdown", "json"] {
        let (_, stdout, stderr) = plan(&["--offline", "--format", format]);
        for secret in [
            "example-only-change-me",
            "example-only-wordpress",
            "change-me-in-a-real-deployment",
        ] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{format} leaks {secret}"
            );
        }
    }
}

#[test]
fn out_writes_the_plan_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let (code, stdout, _) = plan(&[
        "--offline",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(stdout.is_empty());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(v["format_version"], 1);
}

#[test]
fn plan_output_is_byte_identical_across_runs() {
    let a = plan(&["--offline", "--format", "json"]).1;
    let b = plan(&["--offline", "--format", "json"]).1;
    assert_eq!(a, b);
}

fn mask_revision(s: &str) -> String {
    s.lines()
        .map(|l| match l.find(" @ ") {
            Some(i) if l.starts_with("Kompox plan") => {
                let rest = &l[i + 3..];
                let end = rest.find(' ').unwrap_or(rest.len());
                format!("{} @ <rev>{}", &l[..i], &rest[end..])
            }
            _ => l.to_string(),
        })
        .map(|l| {
            // Markdown title: "Kompox plan for `abc1234`: ..."
            match (l.find("plan for `"), l.starts_with("### Kompox plan")) {
                (Some(i), true) => {
                    let rest = &l[i + 10..];
                    let end = rest.find('`').unwrap_or(0);
                    format!("{}plan for `<rev>{}", &l[..i], &rest[end..])
                }
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The example repository's desired state as a live file: every object, an
/// inventory per app and an assigned disk per volume.
fn matching_live_file() -> String {
    let tree = FileTree::read_dir(&repo(), &TreeLimits::default()).unwrap();
    let project = load_project(&tree, &ProjectEnv::default()).unwrap();
    let mut disks = Vec::new();
    let mut bound = kompox::desired::AssignedDisks::new();
    for app in &project.kom.apps {
        let ctx = kompox::desired::context(&project.kom, app).unwrap();
        let h = kompox::hash::AppHashes::new(
            &ctx.workspace.meta.name,
            &ctx.provider.meta.name,
            &ctx.cluster.meta.name,
            &app.meta.name,
        );
        for v in &app.volumes {
            let handle = format!(
                "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Compute/disks/{}-{}",
                app.meta.name, v.name
            );
            disks.push(serde_json::json!({
                "name": format!("{}-1", v.name), "volume": v.name, "app_id_hash": h.app_id,
                "assigned": true, "size": v.size_bytes, "handle": handle,
            }));
            bound.entry(app.meta.id.clone()).or_default().insert(
                v.name.clone(),
                kompox::convert::BoundDisk {
                    name: format!("{}-1", v.name),
                    handle,
                    size_bytes: v.size_bytes,
                    zone: None,
                },
            );
        }
    }
    let desired = kompox::desired::build(&project, &tree, &[], &bound);
    let mut items = Vec::new();
    for a in &desired.apps {
        let d = a.result.as_ref().unwrap();
        items.extend(d.objects.iter().map(|o| o.body.clone()));
        items.push(inventory_object(d).body);
    }
    serde_json::json!({"objects": {"apiVersion": "v1", "kind": "List", "items": items}, "disks": disks}).to_string()
}
