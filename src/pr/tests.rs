//! Touched Apps on a real loaded repository, comment fitting and
//! redaction.

use super::*;
use crate::kom::{Project, ProjectEnv, load_project};
use crate::report::{Details, MarkdownParts};
use crate::source::FileTree;

fn doc(kind: &str, id: &str, spec: &str) -> String {
    let name = id.rsplit('/').next().unwrap_or_default();
    let spec = if spec.is_empty() {
        String::new()
    } else {
        format!("spec:\n  {spec}\n")
    };
    format!(
        "apiVersion: ops.kompox.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  annotations:\n    ops.kompox.dev/id: {id}\n{spec}"
    )
}

const AKS: &str = "/ws/acme/prv/aks1";
const K3S: &str = "/ws/acme/prv/home";

fn app(cluster: &str, name: &str) -> String {
    doc(
        "App",
        &format!("{cluster}/app/{name}"),
        &format!("compose: |\n    services:\n      {name}: {{image: {name}}}"),
    )
}

/// Two providers in one file, one cluster file each, three Apps and an
/// app file that does not load.
fn project() -> Project {
    let prod = format!("{AKS}/cls/prod");
    let home = format!("{K3S}/cls/home");
    let files: Vec<(&str, String)> = vec![
        (
            ".kompox/config.yml",
            "version: 1\napps:\n  - apps/*/kompoxapp.yml\n".into(),
        ),
        (
            ".kompox/kom/workspace.yml",
            doc("Workspace", "/ws/acme", ""),
        ),
        (
            ".kompox/kom/providers.yml",
            [
                doc("Provider", AKS, "driver: aks"),
                doc("Provider", K3S, "driver: k3s"),
            ]
            .join("---\n"),
        ),
        (
            ".kompox/kom/cluster-prod.yml",
            doc("Cluster", &prod, "existing: true"),
        ),
        (
            ".kompox/kom/cluster-home.yml",
            doc("Cluster", &home, "existing: true"),
        ),
        ("apps/gitea/kompoxapp.yml", app(&prod, "gitea")),
        ("apps/gitea/gitea.env", "A=1\n".into()),
        ("apps/wiki/kompoxapp.yml", app(&prod, "wiki")),
        ("apps/uptime/kompoxapp.yml", app(&home, "uptime")),
        ("apps/broken/kompoxapp.yml", "kind: [\n".into()),
        ("README.md", "# repo\n".into()),
    ];
    let tree = FileTree::from_files(files.into_iter().map(|(p, t)| (p, t.into_bytes())));
    match load_project(&tree, &ProjectEnv::default()) {
        Ok(p) => p,
        Err(d) => panic!("{d:?}"),
    }
}

fn touched(changed: &[&str]) -> Touched {
    let changed: Vec<String> = changed.iter().map(|s| s.to_string()).collect();
    touched_apps(&project(), &changed, |p| !p.contains("deleted"), None)
}

fn names(t: &Touched) -> Vec<&str> {
    t.apps.keys().map(|id| id.name()).collect()
}

#[test]
fn a_change_in_an_app_directory_touches_only_that_app() {
    let t = touched(&["apps/gitea/gitea.env"]);
    assert_eq!(names(&t), ["gitea"]);
    assert_eq!(
        t.apps.values().next().unwrap(),
        "`apps/gitea/gitea.env` changed"
    );
    assert!(t.failed_files.is_empty());
    assert!(!t.removed_unknown && t.removed.is_empty());
}

#[test]
fn a_sibling_directory_with_the_same_prefix_is_not_the_app() {
    assert!(touched(&["apps/gitea2/compose.yml", "README.md"]).is_empty());
}

#[test]
fn a_cluster_file_touches_the_apps_of_that_cluster() {
    let t = touched(&[".kompox/kom/cluster-home.yml"]);
    assert_eq!(names(&t), ["uptime"]);
    assert!(t.apps.values().next().unwrap().contains("Cluster `home`"));
}

#[test]
fn a_provider_file_touches_every_app_under_its_providers() {
    let t = touched(&[".kompox/kom/providers.yml"]);
    assert_eq!(names(&t), ["gitea", "wiki", "uptime"]);
}

#[test]
fn the_workspace_and_the_config_touch_everything() {
    assert_eq!(touched(&[".kompox/kom/workspace.yml"]).apps.len(), 3);
    let t = touched(&[".kompox/config.yml"]);
    assert_eq!(t.apps.len(), 3);
    assert_eq!(
        t.failed_files.iter().collect::<Vec<_>>(),
        ["apps/broken/kompoxapp.yml"]
    );
}

#[test]
fn a_broken_app_file_that_changed_is_reported() {
    let t = touched(&["apps/broken/kompoxapp.yml"]);
    assert!(t.apps.is_empty());
    assert_eq!(t.failed_files.len(), 1);
}

#[test]
fn without_a_base_a_deleted_app_file_asks_for_removed_apps() {
    let t = touched(&["apps/deleted/kompoxapp.yml"]);
    assert!(t.removed_unknown);
    assert!(!touched(&["apps/deleted/notes.txt"]).removed_unknown);
}

#[test]
fn with_a_base_the_removed_apps_are_named() {
    // The base had `wiki` and `uptime`; the head drops `wiki`'s files.
    let base = project();
    let mut head = project();
    let wiki = head
        .kom
        .apps
        .iter()
        .position(|a| a.meta.name == "wiki")
        .unwrap();
    let wiki = head.kom.apps.remove(wiki).meta.id;
    let changed = vec!["apps/wiki/kompoxapp.yml".to_string()];
    let t = touched_apps(&head, &changed, |_| false, Some(&base));
    assert_eq!(t.removed.keys().collect::<Vec<_>>(), [&wiki]);
    assert!(!t.removed_unknown, "the base says exactly which");
    assert!(t.shows_removed(&wiki));
    let uptime = base
        .kom
        .apps
        .iter()
        .find(|a| a.meta.name == "uptime")
        .unwrap();
    assert!(!t.shows_removed(&uptime.meta.id));
    assert!(t.apps.is_empty());
}

// ---- fitting ----

fn details(name: &str, lines: usize, width: usize) -> Details {
    Details {
        name: name.into(),
        summary: format!("<details><summary><b>{name}</b></summary>"),
        lang: "diff",
        lines: (0..lines)
            .map(|i| format!("+ {name} line {i} {}", "x".repeat(width)))
            .collect(),
    }
}

fn parts_of(details: Vec<Details>) -> MarkdownParts {
    MarkdownParts {
        head: "### Kompox plan for `abc1234`: 3 apps changed\n\n| app |\n| --- |\n".into(),
        details,
        footer: "Plan: 3 to create.\n".into(),
    }
}

fn fit(parts: &MarkdownParts, secrets: &[&str], max_parts: usize) -> Vec<String> {
    let redactor = Redactor::new(secrets.iter().map(|s| s.to_string()));
    comment_parts(
        &CommentInput {
            parts,
            notes: &["Planned: the apps this pull request touches.".into()],
            redactor: &redactor,
        },
        COMMENT_LIMIT,
        max_parts,
    )
}

/// Every fence opened in a body is closed in the same body.
fn fences_balanced(body: &str) -> bool {
    body.lines().filter(|l| l.starts_with("```")).count() % 2 == 0
        && body.matches("<details").count() == body.matches("</details>").count()
}

#[test]
fn a_small_plan_is_one_comment_with_everything() {
    let p = parts_of(vec![details("gitea", 10, 10), details("wiki", 10, 10)]);
    let out = fit(&p, &[], MAX_PARTS);
    assert_eq!(out.len(), 1);
    assert!(out[0].starts_with("### Kompox plan"));
    assert!(out[0].contains("Planned: the apps"));
    assert!(out[0].contains("+ wiki line 9"));
    assert!(!out[0].contains("not shown"));
    assert!(fences_balanced(&out[0]));
}

#[test]
fn a_large_plan_moves_whole_blocks_to_follow_up_comments() {
    // 6 apps of ~30,000 characters: two per comment.
    let p = parts_of(
        (0..6)
            .map(|i| details(&format!("app{i}"), 300, 90))
            .collect(),
    );
    let out = fit(&p, &[], MAX_PARTS);
    assert_eq!(
        out.len(),
        3,
        "{:?}",
        out.iter().map(|s| s.len()).collect::<Vec<_>>()
    );
    for (i, body) in out.iter().enumerate() {
        assert!(body.chars().count() <= COMMENT_LIMIT - 100);
        assert!(fences_balanced(body), "part {i}");
        assert!(!body.contains("more line"), "nothing is cut: {i}");
    }
    assert!(out[1].starts_with("#### Kompox plan, continued (2)"));
    assert!(out[0].ends_with("_Continued in the next comment._\n"));
    assert!(!out[2].contains("Continued in the next"));
    for i in 0..6 {
        assert_eq!(
            out.iter()
                .filter(|b| b.contains(&format!("+ app{i} line 299 ")))
                .count(),
            1
        );
    }
}

#[test]
fn blocks_beyond_the_last_comment_are_named_not_shown() {
    let p = parts_of(
        (0..12)
            .map(|i| details(&format!("app{i}"), 300, 90))
            .collect(),
    );
    let out = fit(&p, &[], 2);
    assert_eq!(out.len(), 2);
    let last = &out[1];
    assert!(
        last.contains("**Details of"),
        "{}",
        &last[last.len() - 800..]
    );
    assert!(last.contains("`app11`"));
    for body in &out {
        assert!(body.chars().count() <= COMMENT_LIMIT - 100);
        assert!(fences_balanced(body));
    }
}

#[test]
fn one_huge_app_is_cut_at_a_line_with_a_note() {
    // ~1 MB of diff for one App; multi-byte characters count as one.
    let mut d = details("huge", 10_000, 90);
    d.lines[0].push_str("ü✓");
    let p = parts_of(vec![d]);
    let out = fit(&p, &[], 1);
    assert_eq!(out.len(), 1);
    let body = &out[0];
    assert!(body.chars().count() <= COMMENT_LIMIT - 100);
    assert!(fences_balanced(body));
    assert!(body.contains("more lines not shown (comment size limit)"));
    assert!(body.contains("+ huge line 0 "));
    assert!(body.contains("Plan: 3 to create."), "the totals are kept");
}

#[test]
fn secret_values_never_reach_a_comment() {
    let mut d = details("gitea", 3, 1);
    d.lines
        .push("error: gitea.env:3: bad line `TOKEN=s3cr3t-Value`".into());
    let mut p = parts_of(vec![d]);
    p.head.push_str("note mentions s3cr3t-Value too\n");
    let out = fit(&p, &["s3cr3t-Value", "ab"], MAX_PARTS);
    let all = out.concat();
    assert!(!all.contains("s3cr3t-Value"));
    assert!(all.contains("TOKEN=(redacted)"));
    assert!(all.contains("note mentions (redacted) too"));
    // Values too short to search for do not garble the text.
    assert!(all.contains("<b>gitea</b>"));
}

#[test]
fn everyday_environment_values_do_not_garble_the_comment() {
    // `environment:` values are Secret data too: POSTGRES_DB=gitea,
    // MODE=prod, PORT=5432, DEBUG=true must not hide the app's name.
    let p = parts_of(vec![details("gitea", 3, 1)]);
    let out = fit(
        &p,
        &["gitea", "prod", "5432", "true", "hunter2-password"],
        MAX_PARTS,
    );
    assert!(out[0].contains("<b>gitea</b>"), "{}", out[0]);
    assert!(!out[0].contains("(redacted)"));
}

#[test]
fn secret_values_come_from_secret_data_and_string_data() {
    let bodies = [
        serde_json::json!({"kind": "Secret", "data": {"a": "aHVudGVyMi1sb25n"}, "stringData": {"b": "plain-secret"}}),
        serde_json::json!({"kind": "ConfigMap", "data": {"c": "not-secret"}}),
    ];
    let mut v = secret_values(&bodies);
    v.sort();
    assert_eq!(v, ["hunter2-long", "plain-secret"]);
    let r = Redactor::new(["line-one-secret\nline-two-secret\nshort\n".to_string()]);
    assert_eq!(r.redact("x line-two-secret y"), "x (redacted) y");
    assert_eq!(
        r.redact("short"),
        "short",
        "lines under 8 characters are kept"
    );
    assert_eq!(format!("{r:?}"), "Redactor(3 values)");
}

#[test]
fn repository_paths_are_made_relative_to_the_project() {
    let paths = vec!["deploy/apps/a/compose.yml".to_string(), "README.md".into()];
    assert_eq!(
        relative_to_project(&paths, Some("deploy/")),
        ["apps/a/compose.yml"]
    );
    assert_eq!(relative_to_project(&paths, Some("")), paths);
    assert_eq!(relative_to_project(&paths, None), paths);
}
