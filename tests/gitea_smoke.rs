//! The Gitea harness (tests/support/gitea.rs) end to end against a real
//! Gitea: a repository, commits pushed over HTTP with the system `git`, a
//! pull request, a comment created and edited, commit statuses, and
//! `pull_request` webhooks delivered to a listener on 127.0.0.1.

#[path = "support/gitea.rs"]
mod gitea;

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(60);

fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn pr_hook(sink: &gitea::HookSink, action: &str) -> gitea::Delivery {
    sink.wait_for(WAIT, |d| {
        d.header("X-Gitea-Event") == Some("pull_request") && d.json()["action"] == action
    })
    .unwrap_or_else(|| {
        let seen: Vec<_> = sink
            .deliveries()
            .iter()
            .map(|d| {
                format!(
                    "{:?} {}",
                    d.header("X-Gitea-Event-Type"),
                    d.json()["action"]
                )
            })
            .collect();
        panic!(
            "no pull_request webhook with action {action:?} within {WAIT:?}; got {seen:?}; \
             Gitea log:\n{}",
            gitea::gitea().log()
        )
    })
}

#[test]
fn gitea_pull_request_round_trip() {
    let g = gitea::gitea();
    eprintln!(
        "Gitea {} at {} (started in {:.1}s)",
        g.version,
        g.base_url(),
        g.start_duration.as_secs_f64()
    );
    assert!(g.version.starts_with("1."), "version {:?}", g.version);
    let me = g.get_json("/user").unwrap();
    assert_eq!(me["login"], g.user());
    assert_eq!(me["is_admin"], true);
    // Basic auth with the password works for the API too.
    let basic = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/user", g.base_url()))
        .basic_auth(g.user(), Some(g.password()))
        .send()
        .unwrap();
    assert!(basic.status().is_success(), "{basic:?}");

    let repo = g.create_repo(&g.unique_name("smoke"));
    assert_eq!(
        repo,
        format!("{}/{}", g.user(), repo.split('/').nth(1).unwrap())
    );

    let sink = gitea::HookSink::start();
    let secret = "kompox-hook-secret";
    let hook_id = g.add_webhook(&repo, &sink.url("/hook"), secret, &["pull_request", "push"]);
    assert!(hook_id > 0);

    // main, then a branch `feature` one commit ahead, over HTTP.
    let wd = g.workdir(&repo);
    wd.write("README.md", "hello\n");
    let base_sha = wd.commit("initial");
    wd.push("main");
    wd.switch("feature", "main");
    wd.write("feature.txt", "one\n");
    let head1 = wd.commit("feature: one");
    wd.push("feature");
    let r = g.get_json(&format!("/repos/{repo}")).unwrap();
    assert_eq!(r["default_branch"], "main");
    assert_eq!(r["empty"], false);

    // Pull request.
    let number = g.open_pull(&repo, "feature", "main", "Smoke PR");
    let pr = g.pull(&repo, number);
    eprintln!(
        "pull: number={} state={} head.ref={} head.sha={} base.ref={} base.sha={} merge_base={} mergeable={}",
        pr["number"],
        pr["state"],
        pr["head"]["ref"],
        pr["head"]["sha"],
        pr["base"]["ref"],
        pr["base"]["sha"],
        pr["merge_base"],
        pr["mergeable"]
    );
    assert_eq!(pr["number"], number);
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["head"]["ref"], "feature");
    assert_eq!(pr["head"]["sha"], head1.as_str());
    assert_eq!(pr["base"]["ref"], "main");
    assert_eq!(pr["base"]["sha"], base_sha.as_str());
    assert_eq!(pr["merge_base"], base_sha.as_str());
    assert_eq!(pr["base"]["repo"]["full_name"], repo.as_str());

    // The `opened` webhook: headers, signature, payload.
    let opened = pr_hook(&sink, "opened");
    eprintln!("opened delivery: {} {}", opened.method, opened.path);
    for (k, v) in &opened.headers {
        eprintln!("  {k}: {v}");
    }
    assert_eq!(opened.method, "POST");
    assert_eq!(opened.path, "/hook");
    assert_eq!(opened.header("X-Gitea-Event-Type"), Some("pull_request"));
    assert_eq!(opened.header("Content-Type"), Some("application/json"));
    assert!(
        opened
            .header("X-Gitea-Delivery")
            .is_some_and(|v| !v.is_empty())
    );
    let sig = hmac_sha256_hex(secret, &opened.body);
    assert_eq!(opened.header("X-Gitea-Signature"), Some(sig.as_str()));
    assert_eq!(
        opened.header("X-Hub-Signature-256"),
        Some(format!("sha256={sig}").as_str())
    );
    let body = opened.json();
    assert_eq!(body["number"], number);
    assert_eq!(body["pull_request"]["head"]["sha"], head1.as_str());
    assert_eq!(body["pull_request"]["base"]["ref"], "main");
    assert_eq!(body["repository"]["full_name"], repo.as_str());

    // A comment, created, edited and read back.
    let id = g.post_comment(&repo, number, "kompox plan: pending");
    let edited = g.edit_comment(&repo, id, "kompox plan: 2 changes");
    assert_eq!(edited["id"], id);
    assert_eq!(edited["body"], "kompox plan: 2 changes");
    assert_eq!(
        g.comments(&repo, number),
        vec![(id, "kompox plan: 2 changes".to_string())]
    );

    // Commit statuses on the head commit.
    let created = g.create_status(
        &repo,
        &head1,
        "pending",
        "kompox/plan",
        "planning",
        "http://127.0.0.1:1/plan",
    );
    assert_eq!(created["status"], "pending");
    g.create_status(
        &repo,
        &head1,
        "success",
        "kompox/plan",
        "2 changes",
        "http://127.0.0.1:1/plan",
    );
    let statuses = g.statuses(&repo, &head1);
    eprintln!(
        "statuses: {:?}",
        statuses
            .iter()
            .map(|s| (s["id"].clone(), s["status"].clone(), s["context"].clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0]["status"], "success");
    assert_eq!(statuses[0]["context"], "kompox/plan");
    assert_eq!(statuses[0]["description"], "2 changes");
    assert_eq!(statuses[0]["target_url"], "http://127.0.0.1:1/plan");
    // The other path for the same list, and its default order (same-second
    // statuses oldest first: see Gitea::statuses).
    let by_sha = g
        .get_json(&format!("/repos/{repo}/statuses/{head1}"))
        .unwrap();
    assert_eq!(by_sha.as_array().map(Vec::len), Some(2));
    eprintln!(
        "statuses, default order: {:?}",
        by_sha
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].clone(), s["status"].clone()))
            .collect::<Vec<_>>()
    );
    let combined = g
        .get_json(&format!("/repos/{repo}/commits/{head1}/status"))
        .unwrap();
    assert_eq!(combined["state"], "success");
    assert_eq!(combined["sha"], head1.as_str());

    // A new commit on the head branch: `synchronized`, and a new head.sha.
    wd.write("feature.txt", "two\n");
    let head2 = wd.commit("feature: two");
    wd.push("feature");
    let sync = pr_hook(&sink, "synchronized");
    assert_eq!(sync.header("X-Gitea-Event-Type"), Some("pull_request_sync"));
    assert_eq!(sync.json()["pull_request"]["head"]["sha"], head2.as_str());
    let deadline = std::time::Instant::now() + WAIT;
    while g.pull(&repo, number)["head"]["sha"] != head2.as_str() {
        assert!(
            std::time::Instant::now() < deadline,
            "head.sha did not move to {head2}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Closed and reopened.
    g.patch_json(
        &format!("/repos/{repo}/pulls/{number}"),
        &serde_json::json!({"state": "closed"}),
    )
    .unwrap();
    pr_hook(&sink, "closed");
    g.patch_json(
        &format!("/repos/{repo}/pulls/{number}"),
        &serde_json::json!({"state": "open"}),
    )
    .unwrap();
    let reopened = pr_hook(&sink, "reopened");
    assert_eq!(reopened.json()["pull_request"]["state"], "open");

    // Push events were delivered too.
    let push = sink
        .wait_for(WAIT, |d| d.header("X-Gitea-Event") == Some("push"))
        .expect("a push webhook");
    assert!(
        push.json()["ref"]
            .as_str()
            .is_some_and(|r| r.starts_with("refs/heads/"))
    );

    let mut keys: Vec<_> = sync.json().as_object().unwrap().keys().cloned().collect();
    keys.sort();
    eprintln!("pull_request payload keys: {keys:?}");
    let actions: Vec<_> = sink
        .deliveries()
        .iter()
        .map(|d| {
            format!(
                "{}/{}/{}",
                d.header("X-Gitea-Event").unwrap_or("-"),
                d.header("X-Gitea-Event-Type").unwrap_or("-"),
                d.json()["action"].as_str().unwrap_or("-")
            )
        })
        .collect();
    eprintln!("deliveries (event/event type/action): {actions:?}");
}
