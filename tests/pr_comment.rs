//! Pull-request plan comments against a real forge: Gitea v1.26 (built
//! from the Go module proxy, tests/support/gitea.rs) with its REST API,
//! Git over HTTP and webhooks, and the real testbed control plane for live
//! state. `kompoxops plan --pr gitea:owner/repo#N` as a CI job runs it,
//! and the reconciler does the same on Gitea's pull-request webhooks.

#[path = "support/testbed.rs"]
mod testbed;

#[path = "common/repo.rs"]
mod repo;

#[path = "support/gitea.rs"]
mod gitea;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::{Value, json};

use gitea::{Gitea, Workdir};
use repo::{Repo, WEB};
use testbed::{Testbed, testbed};

const WAIT: Duration = Duration::from_secs(120);
const MARKER: &str = "<!-- kompox-plan -->";

/// An App whose env file holds a secret value; `tag` is its image tag
/// (a change a plan shows in clear, unlike environment values, which are
/// Secret data).
fn web(secret: &str, tag: &str) -> (String, String) {
    (
        WEB.replace("nginx:1.27", &format!("nginx:{tag}")).replace(
            "    environment:",
            "    env_file: web.env\n    environment:",
        ),
        format!("API_TOKEN={secret}\n"),
    )
}

/// A repository on the forge with `apps` on `main`, and a work tree on
/// branch `feature` (from `main`).
struct Fixture {
    repo: Repo,
    full_name: String,
    work: Workdir,
    token_file: tempfile::NamedTempFile,
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl Fixture {
    fn new(tb: &Testbed, g: &Gitea, prefix: &str, apps: &[&str]) -> Fixture {
        let repo = Repo::new(tb, prefix);
        for app in apps {
            let (compose, env) = web(&format!("{app}-secret-value-0001"), "1.27");
            repo.app(app, "", &compose);
            repo::write(repo.dir.path(), &format!("apps/{app}/web.env"), &env);
        }
        let full_name = g.create_repo(&g.unique_name(prefix));
        let work = g.workdir(&full_name);
        copy_tree(repo.dir.path(), work.path());
        work.commit("main");
        work.push("main");
        work.switch("feature", "main");
        let token_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token_file.path(), g.token()).unwrap();
        Fixture {
            repo,
            full_name,
            work,
            token_file,
        }
    }

    /// Commits the work tree on `feature` and pushes it.
    fn push_feature(&self, message: &str) -> String {
        let c = self.work.commit(message);
        self.work.push("feature");
        c
    }

    fn pr_ref(&self, n: u64) -> String {
        format!("gitea:{}#{n}", self.full_name)
    }

    /// `kompoxops <args>` in the work tree (the CI job's checkout).
    fn kompoxops(&self, args: &[&str]) -> Output {
        Command::cargo_bin("kompoxops")
            .unwrap()
            .current_dir(self.work.path())
            .env_remove("KUBECONFIG")
            .env_remove("KOMPOX_FORGE_TOKEN")
            .env_remove("GITEA_TOKEN")
            .args(args)
            .timeout(Duration::from_secs(240))
            .output()
            .unwrap()
    }

    fn plan_pr(&self, g: &Gitea, n: u64, extra: &[&str]) -> Output {
        let pr = self.pr_ref(n);
        let mut args = vec![
            "plan",
            "--pr",
            &pr,
            "--forge-url",
            g.base_url(),
            "--forge-token-file",
            self.token_file.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.kompoxops(&args)
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The plan comments on a pull request (first line a Kompox marker).
fn plan_comments(g: &Gitea, repo: &str, n: u64) -> Vec<(i64, String)> {
    g.comments(repo, n)
        .into_iter()
        .filter(|(_, b)| b.starts_with("<!-- kompox-plan"))
        .collect()
}

/// Waits until Gitea's pull request shows `sha` as its head (it updates
/// asynchronously after a push).
fn wait_head(g: &Gitea, repo: &str, n: u64, sha: &str) {
    let start = Instant::now();
    while g.pull(repo, n)["head"]["sha"] != sha {
        assert!(
            start.elapsed() < WAIT,
            "pull request head never became {sha}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn short(sha: &str) -> &str {
    &sha[..7]
}

#[test]
fn the_cli_comments_once_and_updates_the_same_comment_on_the_next_push() {
    let (tb, g) = (testbed(), gitea::gitea());
    let f = Fixture::new(tb, g, "prcli", &["web", "db"]);
    // main is live in the cluster.
    let out = f.kompoxops(&["apply", "--auto-approve", "--timeout", "120"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let (compose, _) = web("web-secret-value-0001", "1.28-from-the-pr");
    f.work.write("apps/web/compose.yml", &compose);
    let head = f.push_feature("web: new greeting");
    let n = g.open_pull(&f.full_name, "feature", "main", "new greeting");

    let out = f.plan_pr(g, n, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let comments = plan_comments(g, &f.full_name, n);
    assert_eq!(comments.len(), 1, "{comments:?}");
    let (id, body) = &comments[0];
    assert!(body.starts_with(&format!("{MARKER}\n")), "{body}");
    assert!(
        body.contains(&format!(
            "Kompox plan for `{}`: 1 app changed",
            short(&head)
        )),
        "{body}"
    );
    assert!(body.contains("live: cluster tb"), "{body}");
    // Only the touched App is planned, against live state: an update.
    assert!(body.contains("<b>web</b>"), "{body}");
    assert!(
        !body.contains("<b>db</b>"),
        "an untouched app is not planned:\n{body}"
    );
    assert!(
        body.contains("Planned the 1 of 2 apps of cluster `tb` that this pull request touches: `web` (`apps/web/compose.yml` changed)"),
        "{body}"
    );
    assert!(body.contains("1.28-from-the-pr"), "{body}");
    let statuses = g.statuses(&f.full_name, &head);
    let st = statuses
        .iter()
        .find(|s| s["context"] == "kompox/plan")
        .unwrap_or_else(|| panic!("{statuses:?}"));
    assert_eq!(st["status"], "success");
    assert!(
        st["description"]
            .as_str()
            .unwrap()
            .starts_with("kompox plan: 1 app changed, "),
        "{st}"
    );

    // A second push: the same comment, now about the new head.
    let (compose, _) = web("web-secret-value-0001", "1.29-second-push");
    f.work.write("apps/web/compose.yml", &compose);
    let head2 = f.push_feature("web: another greeting");
    wait_head(g, &f.full_name, n, &head2);
    let out = f.plan_pr(g, n, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let comments = plan_comments(g, &f.full_name, n);
    assert_eq!(comments.len(), 1, "never a new comment per push");
    assert_eq!(&comments[0].0, id, "updated in place");
    assert!(comments[0].1.contains(short(&head2)));
    assert!(comments[0].1.contains("1.29-second-push"));
    assert!(!comments[0].1.contains("1.28-from-the-pr"));

    // Secret values never reach the forge, in comments or statuses.
    let everything = format!(
        "{:?}{:?}",
        g.comments(&f.full_name, n),
        g.statuses(&f.full_name, &head2)
    );
    assert!(!everything.contains("secret-value-0001"));
}

#[test]
fn a_shared_kom_change_plans_every_app_under_it_and_a_docs_change_none() {
    let (tb, g) = (testbed(), gitea::gitea());
    let f = Fixture::new(tb, g, "prkom", &["alpha", "beta"]);
    f.work.write("README.md", "# docs only\n");
    f.push_feature("docs");
    let n = g.open_pull(&f.full_name, "feature", "main", "docs");
    let out = f.plan_pr(g, n, &["--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let body = &plan_comments(g, &f.full_name, n)[0].1;
    assert!(
        body.contains("This pull request touches none of the 2 apps: nothing to plan."),
        "{body}"
    );
    assert!(body.contains("0 apps changed"), "{body}");

    // The Cluster lives in the shared KOM file: every App inherits it.
    let shared = std::fs::read_to_string(f.work.path().join(".kompox/kom/shared.yml")).unwrap();
    f.work.write(
        ".kompox/kom/shared.yml",
        &shared.replace(
            "metadata: {name: tb,",
            "metadata: {name: tb, labels: {team: ops},",
        ),
    );
    let head = f.push_feature("label the cluster");
    wait_head(g, &f.full_name, n, &head);
    let out = f.plan_pr(g, n, &["--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let comments = plan_comments(g, &f.full_name, n);
    assert_eq!(comments.len(), 1);
    let body = &comments[0].1;
    assert!(
        body.contains("<b>alpha</b>") && body.contains("<b>beta</b>"),
        "{body}"
    );
    assert!(
        body.contains("Planned the 2 of 2 apps")
            && body.contains("inherits Cluster `tb` from `.kompox/kom/shared.yml`, which changed"),
        "{body}"
    );
}

#[test]
fn a_huge_plan_is_split_under_the_limit_and_shrinks_back_in_place() {
    let (tb, g) = (testbed(), gitea::gitea());
    let names: Vec<String> = (0..160).map(|i| format!("app{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let f = Fixture::new(tb, g, "prbig", &refs);
    // Every App changes: 160 Apps planned as new (offline).
    for app in &names {
        let (compose, _) = web(&format!("{app}-secret-value-0001"), "1.30");
        f.work.write(&format!("apps/{app}/compose.yml"), &compose);
    }
    f.push_feature("touch everything");
    let n = g.open_pull(&f.full_name, "feature", "main", "big");
    let out = f.plan_pr(g, n, &["--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let comments = plan_comments(g, &f.full_name, n);
    assert!(comments.len() >= 2, "split into follow-up comments");
    assert!(comments.len() <= 4);
    for (i, (_, body)) in comments.iter().enumerate() {
        assert!(
            body.chars().count() <= 65_536,
            "part {i}: {} chars",
            body.chars().count()
        );
        assert_eq!(
            body.matches("<details").count(),
            body.matches("</details>").count()
        );
    }
    assert!(comments[0].1.starts_with(MARKER));
    assert!(comments[1].1.starts_with("<!-- kompox-plan part 2 -->"));
    assert!(comments[0].1.contains("160 apps changed"));
    let ids: Vec<i64> = comments.iter().map(|c| c.0).collect();

    // The pull request shrinks to one App: part 1 is edited, the other
    // parts say they are no longer needed; no comment is deleted or added.
    f.work.git(&["reset", "-q", "--hard", "main"]);
    let (compose, _) = web("app007-secret-value-0001", "1.31-only-one");
    f.work.write("apps/app007/compose.yml", &compose);
    let c = f.work.commit("only app007");
    f.work.force_push("feature");
    wait_head(g, &f.full_name, n, &c);
    let out = f.plan_pr(g, n, &["--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = plan_comments(g, &f.full_name, n);
    assert_eq!(after.iter().map(|c| c.0).collect::<Vec<_>>(), ids);
    assert!(after[0].1.contains("1 app changed"), "{}", after[0].1);
    for (_, body) in &after[1..] {
        assert!(body.contains("no longer needed"), "{body}");
    }
}

// ---- the reconciler's pull-request mode ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn control_namespace(tb: &Testbed, prefix: &str) -> String {
    let ns = tb.unique_name(prefix);
    tb.post_json(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .unwrap();
    ns
}

/// A Gitea `pull_request` delivery signed with `secret`.
fn signed_pull_request_hook(port: u16, secret: &[u8], body: &Value) -> u16 {
    use hmac::{Hmac, Mac};
    let body = body.to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body.as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhook"))
        .header("X-Gitea-Event", "pull_request")
        .header("X-Gitea-Delivery", "forged-1")
        .header("X-Gitea-Signature", sig)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn the_reconciler_comments_on_gitea_webhooks_and_ignores_bad_signatures() {
    let (tb, g) = (testbed(), gitea::gitea());
    let f = Fixture::new(tb, g, "prrec", &["web", "db"]);
    let ctl = control_namespace(tb, "prrec-ctl");
    let dir = tempfile::tempdir().unwrap();
    let secret = "pr-webhook-secret";
    let secret_file = dir.path().join("webhook");
    std::fs::write(&secret_file, secret).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let cache = dir.path().join("cache");
    let token = f.token_file.path().to_str().unwrap().to_string();
    let clone_url = g.clone_url(&f.full_name);
    let _controller = Killed(f.repo.spawn(
        &[
            "reconcile",
            "--repo",
            &clone_url,
            "--git-username",
            g.user(),
            "--git-token-file",
            &token,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--webhook-secret-file",
            secret_file.to_str().unwrap(),
            "--forge-token-file",
            &token,
            "--forge-url",
            g.base_url(),
            "--lease-namespace",
            &ctl,
            "--listen",
            &listen,
            "--interval",
            "1h",
            "--drift-interval",
            "1h",
        ],
        dir.path(),
    ));
    let stderr = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    tb.wait_for("the controller's first pass", WAIT, || {
        reqwest::blocking::get(format!("http://{listen}/readyz"))
            .ok()
            .filter(|r| r.status().as_u16() == 200)
    });
    g.add_webhook(
        &f.full_name,
        &format!("http://{listen}/webhook"),
        secret,
        &["pull_request_only", "pull_request_sync"],
    );

    // Opening the pull request: Gitea's webhook makes the comment.
    let (compose, _) = web("web-secret-value-0001", "1.32-via-webhook");
    f.work.write("apps/web/compose.yml", &compose);
    let head = f.push_feature("web: greeting via webhook");
    let n = g.open_pull(&f.full_name, "feature", "main", "webhook");
    let key_marker = "<!-- kompox-plan:tb -->";
    let first = tb.wait_for("the plan comment", WAIT, || {
        plan_comments(g, &f.full_name, n)
            .into_iter()
            .find(|(_, b)| b.starts_with(key_marker) && b.contains(short(&head)))
    });
    assert!(first.1.contains("<b>web</b>"), "{}", first.1);
    assert!(!first.1.contains("<b>db</b>"), "{}", first.1);
    assert!(first.1.contains("live: cluster tb"), "{}", first.1);
    assert!(first.1.contains("of cluster `tb`"), "{}", first.1);
    tb.wait_for("the commit status", WAIT, || {
        g.statuses(&f.full_name, &head)
            .into_iter()
            .find(|s| s["context"] == "kompox/plan (tb)")
    });

    // A forged delivery (bad signature) for a new head: 401, nothing posted.
    let (compose, _) = web("web-secret-value-0001", "1.33-forged");
    f.work.write("apps/web/compose.yml", &compose);
    let forged_head = f.work.commit("not pushed through the hook");
    let forged = json!({
        "action": "synchronized",
        "number": n,
        "pull_request": {
            "number": n,
            "head": {"sha": forged_head, "ref": "feature"},
            "base": {"sha": "0000000000000000000000000000000000000000", "ref": "main"},
        },
        "repository": {"full_name": f.full_name},
    });
    assert_eq!(
        signed_pull_request_hook(port, b"wrong secret", &forged),
        401
    );
    std::thread::sleep(Duration::from_secs(3));
    let now = plan_comments(g, &f.full_name, n);
    assert_eq!(now.len(), 1);
    assert_eq!(now[0], first, "a bad signature changes nothing");

    // A real push: Gitea's `synchronized` delivery updates the same comment.
    f.work.git(&["reset", "-q", "--hard", "HEAD~1"]);
    let (compose, _) = web("web-secret-value-0001", "1.34-second-webhook");
    f.work.write("apps/web/compose.yml", &compose);
    let head2 = f.push_feature("web: second greeting");
    let second = tb.wait_for("the updated comment", WAIT, || {
        plan_comments(g, &f.full_name, n)
            .into_iter()
            .find(|(_, b)| b.contains(short(&head2)))
    });
    assert_eq!(second.0, first.0, "updated in place:\n{}", stderr());
    assert!(second.1.contains("1.34-second-webhook"));
    assert_eq!(plan_comments(g, &f.full_name, n).len(), 1);
    assert!(!format!("{:?}", g.comments(&f.full_name, n)).contains("secret-value-0001"));
}

// ---- read-only credentials ----

/// A user that may only read (`get`, `list`, `watch` on every resource of
/// every API group), and a kubeconfig in `dir` that impersonates it.
/// Returns once RBAC grants the reads (bindings take effect
/// asynchronously) and is checked to refuse a patch.
fn read_only_identity(tb: &Testbed, dir: &Path, prefix: &str) -> (String, std::path::PathBuf) {
    let who = tb.unique_name(prefix);
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    tb.post_json(
        &format!("{rbac}/clusterroles"),
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": who},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
        }),
    )
    .unwrap();
    tb.post_json(
        &format!("{rbac}/clusterrolebindings"),
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": who},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": who},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": who}],
        }),
    )
    .unwrap();
    let allowed = |verb: &str| -> bool {
        let review = tb
            .post_json(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                &json!({
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SubjectAccessReview",
                    "spec": {
                        "user": who,
                        "groups": ["system:authenticated"],
                        "resourceAttributes": {"group": "apps", "resource": "deployments", "verb": verb},
                    },
                }),
            )
            .unwrap();
        review["status"]["allowed"] == true
    };
    tb.wait_for("the read-only binding", WAIT, || {
        allowed("list").then_some(())
    });
    assert!(!allowed("patch"), "the testbed enforces RBAC");
    let kubeconfig = tb.impersonating_kubeconfig(dir, &who, &[]);
    (who, kubeconfig)
}

#[test]
fn planning_a_pull_request_needs_read_access_only() {
    let (tb, g) = (testbed(), gitea::gitea());
    let f = Fixture::new(tb, g, "prro", &["web", "db"]);
    // main is live in the cluster (applied with the admin credentials).
    let out = f.kompoxops(&["apply", "--auto-approve", "--timeout", "120"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let (compose, _) = web("web-secret-value-0001", "1.28-read-only");
    f.work.write("apps/web/compose.yml", &compose);
    let head = f.push_feature("web: new image");
    let n = g.open_pull(&f.full_name, "feature", "main", "read-only plan");

    // The CI job's checkout points the Cluster at read-only credentials
    // (uncommitted: the pull request still touches only `web`).
    let dir = tempfile::tempdir().unwrap();
    let (reader, kubeconfig) = read_only_identity(tb, dir.path(), "kompox-pr-reader");
    let shared = std::fs::read_to_string(f.work.path().join(".kompox/kom/shared.yml")).unwrap();
    let admin = format!("kubeconfig: {{path: {}}}", tb.kubeconfig_path.display());
    assert!(shared.contains(&admin), "{shared}");
    f.work.write(
        ".kompox/kom/shared.yml",
        &shared.replace(
            &admin,
            &format!("kubeconfig: {{path: {}}}", kubeconfig.display()),
        ),
    );

    let mark = tb.audit_mark();
    let start = Instant::now();
    let out = f.plan_pr(g, n, &[]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    eprintln!("plan --pr with read-only credentials took {took:?}");

    let comments = plan_comments(g, &f.full_name, n);
    assert_eq!(comments.len(), 1, "{comments:?}");
    let body = &comments[0].1;
    assert!(
        body.contains(&format!(
            "Kompox plan for `{}`: 1 app changed",
            short(&head)
        )),
        "{body}"
    );
    assert!(body.contains("live: cluster tb"), "{body}");
    assert!(body.contains("<b>web</b>"), "{body}");
    assert!(!body.contains("<b>db</b>"), "{body}");
    // An update of the live Deployment (not a create: the live state was
    // read), the image line diffed against the live one.
    assert!(
        body.lines()
            .any(|l| l.starts_with("~ Deployment ") && l.contains("  update  ")),
        "{body}"
    );
    let diff_line = |sign: &str, image: &str| {
        body.lines()
            .any(|l| l.starts_with(sign) && l.trim_start_matches(sign).trim() == image)
    };
    assert!(diff_line("-", "image: nginx:1.27"), "{body}");
    assert!(diff_line("+", "image: nginx:1.28-read-only"), "{body}");
    assert!(body.contains("field-level preview not possible"), "{body}");
    let statuses = g.statuses(&f.full_name, &head);
    let st = statuses
        .iter()
        .find(|s| s["context"] == "kompox/plan")
        .unwrap_or_else(|| panic!("{statuses:?}"));
    assert_eq!(st["status"], "success", "{st}");

    // The audit log: the reader read the live state, and its only
    // write-verb requests were dry-runs the API server refused.
    let by_reader: Vec<Value> = tb
        .audit_events_since(mark)
        .into_iter()
        .filter(|e| e["impersonatedUser"]["username"] == reader.as_str())
        .collect();
    let code = |e: &Value| e["responseStatus"]["code"].as_u64();
    let uri = |e: &Value| e["requestURI"].as_str().unwrap_or_default().to_string();
    assert!(
        by_reader
            .iter()
            .any(|e| e["verb"] == "list" && code(e) == Some(200)),
        "the live state was read as {reader}"
    );
    let writes: Vec<(String, String, Option<u64>)> = by_reader
        .iter()
        .filter(|e| {
            matches!(
                e["verb"].as_str(),
                Some("create" | "update" | "patch" | "delete" | "deletecollection")
            )
        })
        .map(|e| {
            (
                e["verb"].as_str().unwrap_or_default().to_string(),
                uri(e),
                code(e),
            )
        })
        .collect();
    let bad: Vec<_> = writes
        .iter()
        .filter(|(_, uri, code)| !(uri.contains("dryRun=All") && *code == Some(403)))
        .collect();
    assert!(bad.is_empty(), "only refused dry-runs may be sent: {bad:?}");
    assert_eq!(
        writes.len(),
        1,
        "the first refused dry-run stops the refinement: {writes:?}"
    );
    assert!(
        !format!("{:?}", g.comments(&f.full_name, n)).contains("secret-value-0001"),
        "no secret reaches the forge"
    );
}

#[test]
fn a_pull_request_that_removes_an_app_shows_that_app_removed() {
    let (tb, g) = (testbed(), gitea::gitea());
    let f = Fixture::new(tb, g, "prrm", &["web", "db"]);
    let out = f.kompoxops(&["apply", "--auto-approve", "--timeout", "120"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    f.work.git(&["rm", "-q", "-r", "apps/db"]);
    f.push_feature("retire db");
    let n = g.open_pull(&f.full_name, "feature", "main", "retire db");
    let out = f.plan_pr(g, n, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let body = &plan_comments(g, &f.full_name, n)[0].1;
    // Named from the base revision: the removed App, not the untouched one.
    assert!(body.contains("| db | tb |"), "{body}");
    assert!(body.contains("(removed from Git)"), "{body}");
    assert!(!body.contains("<b>web</b>"), "{body}");
}

#[test]
fn a_closed_pull_request_gets_no_plan() {
    let (tb, g) = (testbed(), gitea::gitea());
    let f = Fixture::new(tb, g, "prclosed", &["web"]);
    let (compose, _) = web("web-secret-value-0001", "1.35-closed");
    f.work.write("apps/web/compose.yml", &compose);
    f.push_feature("web: closed before planning");
    let n = g.open_pull(&f.full_name, "feature", "main", "closed");
    g.patch_json(
        &format!("/repos/{}/pulls/{n}", f.full_name),
        &json!({"state": "closed"}),
    )
    .unwrap();
    let out = f.plan_pr(g, n, &["--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("is closed: no plan posted"),
        "{}",
        text(&out)
    );
    assert!(plan_comments(g, &f.full_name, n).is_empty());
}
