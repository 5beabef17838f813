//! One writer (DECISIONS 16) with two real controller processes on the
//! testbed. Each process talks to the API server as its own user
//! (kubeconfig impersonation), so the audit log says exactly who wrote.
//! The leader is frozen with SIGSTOP: the other takes over within the
//! lease time, and the frozen one, resumed, writes nothing.

#[path = "support/testbed.rs"]
mod testbed;

#[path = "common/repo.rs"]
mod repo;

use std::process::Child;
use std::time::{Duration, Instant};

use repo::{Repo, WEB};
use serde_json::json;
use testbed::{Testbed, testbed};

const WAIT: Duration = Duration::from_secs(120);
const LEASE_SECS: u64 = 4;

/// Kills the controllers when the test ends, however it ends.
struct Controllers(Vec<Child>);

impl Drop for Controllers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = nix_signal(c.id(), libc::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn nix_signal(pid: u32, sig: i32) -> i32 {
    // SAFETY: kill(2) with a pid we spawned.
    unsafe { libc::kill(pid as i32, sig) }
}

/// Users that wrote (create/update/patch/delete) since `mark`, with what.
fn writers_since(tb: &Testbed, mark: u64) -> Vec<(String, String)> {
    tb.audit_events_since(mark)
        .into_iter()
        .filter(|e| {
            matches!(
                e["verb"].as_str(),
                Some("create" | "update" | "patch" | "delete")
            )
        })
        .filter_map(|e| {
            let who = e["impersonatedUser"]["username"].as_str()?.to_string();
            Some((who, format!("{} {}", e["verb"], e["requestURI"])))
        })
        .collect()
}

fn holder(tb: &Testbed, ns: &str) -> Option<String> {
    tb.get_opt(&format!(
        "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/kompox"
    ))
    .unwrap()
    .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

fn greeting_live(tb: &Testbed, ns: &str, value: &str) -> Option<()> {
    let d = tb
        .get_opt(&format!("/apis/apps/v1/namespaces/{ns}/deployments"))
        .unwrap()?;
    d.to_string().contains(value).then_some(())
}

#[test]
fn exactly_one_controller_writes_and_a_frozen_leader_is_replaced_and_stays_silent() {
    let tb = testbed();
    let repo = Repo::new(tb, "leader");
    let ctl = tb.unique_name("leader-ctl");
    tb.post_json(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ctl}}),
    )
    .unwrap();
    repo.app("web", "", WEB);
    let ns = repo.namespace("web");
    let work = tempfile::tempdir().unwrap();
    let mut procs = Controllers(Vec::new());
    let mut users = Vec::new();
    for who in ["controller-a", "controller-b"] {
        let kubeconfig = tb.impersonating_kubeconfig(work.path(), who, &["system:masters"]);
        let logs = work.path().join(who);
        std::fs::create_dir_all(&logs).unwrap();
        let lease = format!("{LEASE_SECS}s");
        let child = repo.spawn(
            &[
                "reconcile",
                "--leader-elect",
                "--lease-namespace",
                &ctl,
                "--lease-duration",
                &lease,
                "--interval",
                "1s",
                "--listen",
                "127.0.0.1:0",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--timeout",
                "60",
            ],
            &logs,
        );
        users.push((who.to_string(), child.id()));
        procs.0.push(child);
    }
    let user_of = |identity: &str| -> (String, u32) {
        users
            .iter()
            .find(|(_, pid)| identity.ends_with(&format!(":{pid}")))
            .cloned()
            .unwrap_or_else(|| panic!("unknown holder {identity}"))
    };

    let first = tb.wait_for("a leader", WAIT, || holder(tb, &ctl));
    let (leader, leader_pid) = user_of(&first);
    tb.wait_for("the first apply", WAIT, || greeting_live(tb, &ns, "hello"));

    // A change: applied by the leader alone.
    let mark = tb.audit_mark();
    repo.app(
        "web",
        "",
        &WEB.replace("GREETING: hello", "GREETING: greet-two"),
    );
    tb.wait_for("change two applied", WAIT, || {
        greeting_live(tb, &ns, "greet-two")
    });
    std::thread::sleep(Duration::from_secs(2));
    let writes = writers_since(tb, mark);
    assert!(!writes.is_empty());
    let others: Vec<_> = writes.iter().filter(|(w, _)| w != &leader).collect();
    assert!(others.is_empty(), "only {leader} may write: {others:?}");

    // Freeze the leader: the other takes over within the lease time.
    assert_eq!(nix_signal(leader_pid, libc::SIGSTOP), 0);
    let frozen_at = Instant::now();
    let mark = tb.audit_mark();
    let next = tb.wait_for("a new leader", WAIT, || {
        holder(tb, &ctl).filter(|h| *h != first)
    });
    let takeover = frozen_at.elapsed();
    let (successor, _) = user_of(&next);
    assert_ne!(successor, leader);
    // Lease time plus two retry rounds of the follower, plus slack for a
    // loaded machine.
    assert!(
        takeover < Duration::from_secs(LEASE_SECS * 2 + 4),
        "takeover took {takeover:?}"
    );
    repo.app(
        "web",
        "",
        &WEB.replace("GREETING: hello", "GREETING: greet-three"),
    );
    tb.wait_for("change three applied by the successor", WAIT, || {
        greeting_live(tb, &ns, "greet-three")
    });

    // Resume the old leader: it must notice it lost the Lease before any
    // write, then stay a follower.
    assert_eq!(nix_signal(leader_pid, libc::SIGCONT), 0);
    std::thread::sleep(Duration::from_secs(3));
    repo.app(
        "web",
        "",
        &WEB.replace("GREETING: hello", "GREETING: greet-four"),
    );
    tb.wait_for("change four applied", WAIT, || {
        greeting_live(tb, &ns, "greet-four")
    });
    std::thread::sleep(Duration::from_secs(2));
    let writes = writers_since(tb, mark);
    let by_old: Vec<_> = writes.iter().filter(|(w, _)| w == &leader).collect();
    assert!(
        by_old.is_empty(),
        "the resumed leader wrote after losing the Lease: {by_old:?}"
    );
    assert!(
        writes.iter().any(|(w, _)| w == &successor),
        "the successor applied the changes"
    );
    assert_eq!(holder(tb, &ctl).as_deref(), Some(next.as_str()));
}
