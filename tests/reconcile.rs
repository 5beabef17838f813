//! `kompoxops reconcile` against the real testbed control plane: one pass
//! over every App (`--once`), apps independent of each other, no pruning
//! in a pass where anything failed to load, per-app and workspace
//! `suspend`, the status ConfigMap, the writer Lease shared with the CLI's
//! `apply`, and the continuous controller reacting to a webhook.

#[path = "support/testbed.rs"]
mod testbed;

#[path = "common/repo.rs"]
mod repo;

#[path = "support/git_server.rs"]
mod git_server;

use std::process::Output;
use std::time::{Duration, Instant};

use repo::{Repo, WEB, write};
use serde_json::{Value, json};
use testbed::{Testbed, testbed};

const WAIT: Duration = Duration::from_secs(120);

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A namespace for the controller's Lease, status and Events.
fn control_namespace(tb: &Testbed, prefix: &str) -> String {
    let ns = tb.unique_name(prefix);
    tb.post_json(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .unwrap();
    ns
}

fn once(repo: &Repo, ns: &str) -> Output {
    repo.run(&[
        "reconcile",
        "--once",
        "--lease-namespace",
        ns,
        "--timeout",
        "120",
    ])
}

fn status(tb: &Testbed, ns: &str) -> Value {
    let cm = tb
        .get_json(&format!("/api/v1/namespaces/{ns}/configmaps/kompox-status"))
        .unwrap();
    let mut out = serde_json::Map::new();
    for (_, v) in cm["data"].as_object().unwrap() {
        let rec: Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
        let app = rec["app"].as_str().unwrap().rsplit('/').next().unwrap();
        out.insert(app.to_string(), rec);
    }
    Value::Object(out)
}

fn exists(tb: &Testbed, path: &str) -> bool {
    tb.get_opt(path).unwrap().is_some()
}

#[test]
fn once_applies_every_app_records_status_and_a_second_pass_writes_nothing() {
    let tb = testbed();
    let repo = Repo::new(tb, "rcone");
    let ctl = control_namespace(tb, "rcone-ctl");
    repo.app("web", "", WEB);
    repo.app(
        "api",
        "",
        "services:\n  api:\n    image: nginx:1.27\n    ports: [\"8081:80\"]\n",
    );
    let out = once(&repo, &ctl);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("/app/web: applied"), "{t}");
    assert!(t.contains("/app/api: applied"), "{t}");
    for app in ["web", "api"] {
        let ns = repo.namespace(app);
        tb.wait_for("the Deployment", WAIT, || {
            tb.get_opt(&format!("/apis/apps/v1/namespaces/{ns}/deployments"))
                .unwrap()
                .filter(|d| !d["items"].as_array().unwrap().is_empty())
        });
    }
    let st = status(tb, &ctl);
    assert_eq!(st["web"]["result"], "applied", "{st}");
    assert_eq!(st["api"]["result"], "applied", "{st}");
    let rev = st["web"]["revision"].as_str().unwrap().to_string();
    assert!(rev.starts_with("dir:"), "{rev}");
    assert_eq!(st["web"]["applied_revision"], rev.as_str());

    // The Lease was taken for the pass and released after it.
    let lease = tb
        .get_json(&format!(
            "/apis/coordination.k8s.io/v1/namespaces/{ctl}/leases/kompox"
        ))
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "released: {lease}"
    );

    let mark = tb.audit_mark();
    let out = once(&repo, &ctl);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("/app/web: up-to-date"), "{t}");
    std::thread::sleep(Duration::from_millis(300));
    for app in ["web", "api"] {
        assert_eq!(
            tb.test_user_writes_in(mark, &repo.namespace(app)),
            Vec::<String>::new(),
            "a pass with nothing to do wrote to {app}"
        );
    }

    // `reconcile status` shows what the controller recorded.
    let out = repo.run(&["reconcile", "status", "--lease-namespace", &ctl]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("result: up-to-date"), "{t}");
}

#[test]
fn a_broken_app_fails_alone_nothing_is_pruned_and_a_revert_converges() {
    let tb = testbed();
    let repo = Repo::new(tb, "rcbroken");
    let ctl = control_namespace(tb, "rcbroken-ctl");
    // Let removed apps be pruned, so that "nothing is pruned" is the
    // load failure's doing and not the policy's.
    let shared = repo.dir.path().join(".kompox/kom/shared.yml");
    let kom = std::fs::read_to_string(&shared).unwrap().replacen(
        "spec: {}",
        "spec: {policy: {allowAppRemoval: true, maxPruneShare: 1}}",
        1,
    );
    std::fs::write(&shared, kom).unwrap();
    for app in ["a", "b", "c"] {
        repo.app(app, "", WEB);
    }
    let out = once(&repo, &ctl);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (ns_a, ns_b, ns_c) = (
        repo.namespace("a"),
        repo.namespace("b"),
        repo.namespace("c"),
    );

    // One push: a's compose breaks, b changes, c is removed.
    let good_a = std::fs::read_to_string(repo.dir.path().join("apps/a/compose.yml")).unwrap();
    write(
        repo.dir.path(),
        "apps/a/compose.yml",
        "services:\n  web:\n    image: [not, a, string]\n",
    );
    repo.app(
        "b",
        "",
        &WEB.replace("GREETING: hello", "GREETING: bonjour"),
    );
    repo.remove_app("c");
    let out = once(&repo, &ctl);
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed app fails the pass:\n{t}"
    );
    assert!(t.contains("/app/a: load-failed"), "{t}");
    assert!(
        t.contains("apps/a/compose.yml"),
        "the error names the file:\n{t}"
    );
    assert!(t.contains("/app/b: applied"), "b still reconciles:\n{t}");
    let env = tb
        .get_json(&format!("/apis/apps/v1/namespaces/{ns_b}/deployments"))
        .unwrap()
        .to_string();
    assert!(env.contains("bonjour"), "b's change is live");
    assert!(
        exists(tb, &format!("/api/v1/namespaces/{ns_c}/services"))
            && !tb
                .get_json(&format!("/api/v1/namespaces/{ns_c}/services"))
                .unwrap()["items"]
                .as_array()
                .unwrap()
                .is_empty(),
        "nothing is pruned while an app fails to load"
    );
    assert!(
        !tb.get_json(&format!("/apis/apps/v1/namespaces/{ns_a}/deployments"))
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the broken app's objects stay as they were"
    );
    let st = status(tb, &ctl);
    assert_eq!(st["a"]["result"], "load-failed", "{st}");
    assert!(
        st["a"]["error"].as_str().unwrap().contains("compose.yml"),
        "{st}"
    );

    // Revert a: everything converges, and c is pruned now.
    write(repo.dir.path(), "apps/a/compose.yml", &good_a);
    let out = once(&repo, &ctl);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("/app/a: up-to-date"), "{t}");
    assert!(t.contains("/app/c") && t.contains("pruned"), "{t}");
    tb.wait_for("c's Deployment pruned", WAIT, || {
        tb.get_json(&format!("/apis/apps/v1/namespaces/{ns_c}/deployments"))
            .ok()
            .filter(|d| d["items"].as_array().unwrap().is_empty())
    });
}

#[test]
fn suspended_apps_and_workspaces_are_not_applied() {
    let tb = testbed();
    let repo = Repo::new(tb, "rcsusp");
    let ctl = control_namespace(tb, "rcsusp-ctl");
    repo.app("on", "", WEB);
    repo.app("off", "  policy: {suspend: true}\n", WEB);
    let out = once(&repo, &ctl);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("/app/on: applied"), "{t}");
    assert!(t.contains("/app/off: suspended"), "{t}");
    assert!(
        !exists(tb, &format!("/api/v1/namespaces/{}", repo.namespace("off"))),
        "a suspended app gets nothing"
    );

    // Suspending the workspace stops every app, even with changes.
    let shared = repo.dir.path().join(".kompox/kom/shared.yml");
    let kom = std::fs::read_to_string(&shared).unwrap().replacen(
        "spec: {}",
        "spec: {policy: {suspend: true}}",
        1,
    );
    std::fs::write(&shared, kom).unwrap();
    repo.app(
        "on",
        "",
        &WEB.replace("GREETING: hello", "GREETING: changed"),
    );
    let mark = tb.audit_mark();
    let out = once(&repo, &ctl);
    let t = text(&out);
    assert!(t.contains("/app/on: suspended"), "{t}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        tb.test_user_writes_in(mark, &repo.namespace("on")),
        Vec::<String>::new()
    );
}

#[test]
fn the_cli_apply_refuses_while_the_controller_holds_the_lease() {
    let tb = testbed();
    let repo = Repo::new(tb, "rclease");
    let ctl = control_namespace(tb, "rclease-ctl");
    repo.app("web", "", WEB);
    let logs = tempfile::tempdir().unwrap();
    let mut controller = repo.spawn(
        &[
            "reconcile",
            "--lease-namespace",
            &ctl,
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "2s",
            "--leader-elect",
        ],
        logs.path(),
    );
    let lease_path = format!("/apis/coordination.k8s.io/v1/namespaces/{ctl}/leases/kompox");
    let holder = tb.wait_for("the controller to hold the Lease", WAIT, || {
        tb.get_opt(&lease_path)
            .unwrap()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    });
    // The controller applies the app by itself.
    let ns = repo.namespace("web");
    tb.wait_for("the controller's first apply", WAIT, || {
        tb.get_opt(&format!("/apis/apps/v1/namespaces/{ns}/deployments"))
            .unwrap()
            .filter(|d| !d["items"].as_array().unwrap().is_empty())
    });

    repo.app(
        "web",
        "",
        &WEB.replace("GREETING: hello", "GREETING: manual"),
    );
    let out = repo.run(&[
        "apply",
        "--auto-approve",
        "--lease-namespace",
        &ctl,
        "--no-wait",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("another writer holds the Lease"), "{t}");
    assert!(t.contains(&holder), "names the holder: {t}");

    let _ = controller.kill();
    let _ = controller.wait();
    let stderr = std::fs::read_to_string(logs.path().join("stderr")).unwrap();
    assert!(stderr.contains("leadership changed"), "{stderr}");

    // Forced, the CLI applies anyway (the controller is gone, but its
    // Lease has not expired yet).
    let started = Instant::now();
    let out = repo.run(&[
        "apply",
        "--auto-approve",
        "--lease-namespace",
        &ctl,
        "--no-wait",
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Copies a repository's files (not `.git`) into a Git work directory.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".git" || name == "nodes" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Killed {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GitHub push delivery, signed with `secret`.
fn push_hook(port: u16, secret: &[u8], branch: &str, commit: &str, delivery: &str) -> u16 {
    use hmac::{Hmac, Mac};
    let body = json!({
        "ref": format!("refs/heads/{branch}"),
        "after": commit,
        "repository": {"full_name": "acme/ops", "clone_url": "http://127.0.0.1/ops.git"},
    })
    .to_string();
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
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", format!("sha256={sig}"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn deployment_has(tb: &Testbed, ns: &str, value: &str) -> bool {
    tb.get_opt(&format!("/apis/apps/v1/namespaces/{ns}/deployments"))
        .unwrap()
        .is_some_and(|d| d.to_string().contains(value))
}

#[test]
fn a_push_to_the_git_repository_is_applied_on_a_signed_webhook_only() {
    let tb = testbed();
    let repo = Repo::new(tb, "rcgit");
    let ctl = control_namespace(tb, "rcgit-ctl");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");

    let server = git_server::GitServer::start();
    let bare = server.create_repo("ops");
    let work = git_server::Workdir::new(&bare);
    copy_tree(repo.dir.path(), work.path());
    work.commit("first");
    work.push("main");

    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, &server.token).unwrap();
    let secret = b"webhook-secret-for-tests";
    let secret_file = secrets.path().join("webhook");
    std::fs::write(&secret_file, secret).unwrap();
    let cache = secrets.path().join("cache");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = server.url("ops");
    let logs = tempfile::tempdir().unwrap();
    let mut controller = Killed(repo.spawn(
        &[
            "reconcile",
            "--repo",
            &url,
            "--git-username",
            &server.username,
            "--git-token-file",
            token_file.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--webhook-secret-file",
            secret_file.to_str().unwrap(),
            "--lease-namespace",
            &ctl,
            "--listen",
            &listen,
            // No polling during the test: only webhooks trigger.
            "--interval",
            "1h",
            "--drift-interval",
            "1h",
        ],
        logs.path(),
    ));
    let stderr = || std::fs::read_to_string(logs.path().join("stderr")).unwrap_or_default();
    tb.wait_for("the first revision applied", WAIT, || {
        deployment_has(tb, &ns, "hello").then_some(())
    });
    // Ready once the first pass is done (its apply waits for the rollout).
    tb.wait_for("/readyz", WAIT, || {
        reqwest::blocking::get(format!("http://{listen}/readyz"))
            .ok()
            .filter(|r| r.status().as_u16() == 200)
    });

    // A push with a bad signature: refused, nothing happens.
    std::fs::write(
        work.path().join("apps/web/compose.yml"),
        WEB.replace("GREETING: hello", "GREETING: pushed-by-git"),
    )
    .unwrap();
    let commit = work.commit("change the greeting");
    work.push("main");
    assert_eq!(
        push_hook(port, b"wrong secret", "main", &commit, "d-1"),
        401
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !deployment_has(tb, &ns, "pushed-by-git"),
        "a bad signature must not trigger a reconcile"
    );

    // A push to another branch: accepted but ignored.
    assert_eq!(push_hook(port, secret, "feature", &commit, "d-2"), 202);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!deployment_has(tb, &ns, "pushed-by-git"));

    // The signed push for main: applied at once.
    let sent = Instant::now();
    assert_eq!(push_hook(port, secret, "main", &commit, "d-3"), 202);
    tb.wait_for("the pushed change applied", WAIT, || {
        deployment_has(tb, &ns, "pushed-by-git").then_some(())
    });
    let took = sent.elapsed();
    // Replaying the same delivery is refused.
    assert_eq!(push_hook(port, secret, "main", &commit, "d-3"), 409);

    // The status follows once the pass (which waits for the rollout) ends.
    let st = tb.wait_for("the status of the pushed revision", WAIT, || {
        let st = status(tb, &ctl);
        (st["web"]["revision"] == commit.as_str()).then_some(st)
    });
    assert_eq!(st["web"]["result"], "applied", "{st}");
    let metrics = reqwest::blocking::get(format!("http://{listen}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(&format!("revision=\"{commit}\"")),
        "{metrics}"
    );
    // A broken app file pushed: its error is reported; reverted: converges.
    let good = std::fs::read_to_string(work.path().join("apps/web/compose.yml")).unwrap();
    std::fs::write(
        work.path().join("apps/web/compose.yml"),
        "services:\n  web: {image: [broken]}\n",
    )
    .unwrap();
    let broken = work.commit("break web");
    work.push("main");
    assert_eq!(push_hook(port, secret, "main", &broken, "d-4"), 202);
    let st = tb.wait_for("the broken revision reported", WAIT, || {
        let st = status(tb, &ctl);
        (st["web"]["revision"] == broken.as_str()).then_some(st)
    });
    assert_eq!(st["web"]["result"], "load-failed", "{st}");
    assert_eq!(st["web"]["applied_revision"], commit.as_str(), "{st}");
    assert!(deployment_has(tb, &ns, "pushed-by-git"), "left as it was");
    std::fs::write(work.path().join("apps/web/compose.yml"), &good).unwrap();
    let fixed = work.commit("revert");
    work.push("main");
    assert_eq!(push_hook(port, secret, "main", &fixed, "d-5"), 202);
    let st = tb.wait_for("the revert converged", WAIT, || {
        let st = status(tb, &ctl);
        (st["web"]["revision"] == fixed.as_str()).then_some(st)
    });
    assert_eq!(st["web"]["result"], "up-to-date", "{st}");
    assert_eq!(st["web"]["applied_revision"], fixed.as_str(), "{st}");

    controller.stop();
    let log = stderr();
    assert!(
        !log.contains(&server.token),
        "the Git token leaked into the log"
    );
    eprintln!("push → applied: {took:?}");
}

#[test]
fn an_object_an_app_no_longer_declares_is_pruned_by_the_controller() {
    let tb = testbed();
    let repo = Repo::new(tb, "rcprune");
    let ctl = control_namespace(tb, "rcprune-ctl");
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    let out = once(&repo, &ctl);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cache = format!("/api/v1/namespaces/{ns}/services/cache");
    assert!(exists(tb, &cache), "each service has its Service");
    // The `cache` service is gone from compose: its Service goes too.
    repo.app(
        "web",
        "",
        "services:\n  web:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n    environment: {GREETING: hello}\n",
    );
    let out = once(&repo, &ctl);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("/app/web: applied"), "{t}");
    assert!(t.contains("1 to prune"), "{t}");
    assert!(
        !exists(tb, &cache),
        "the Service of the removed service is pruned"
    );
    assert!(deployment_has(tb, &ns, "hello"), "the Deployment stays");
}
