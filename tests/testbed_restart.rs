//! The API server restarted in the middle of `kompoxops apply`: the
//! interrupted run may fail or succeed, but re-running `apply` converges and
//! `plan` is empty afterwards.
//!
//! Its own test binary: restarting kube-apiserver must not disturb the
//! testbed of other tests (each test binary has its own).

#[path = "support/testbed.rs"]
mod testbed;

#[path = "common/repo.rs"]
mod repo;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use repo::{Repo, WEB};
use testbed::{Testbed, testbed};

/// Apps in the repository: enough writes (ten per app: Namespace,
/// inventory, eight objects) that the restart lands in the middle of the
/// first apply (300 writes, about 1.5 s).
const APPS: usize = 30;
/// Writes by the first apply to see before the kill: in the middle of the
/// third app, so that it is usually left half-applied.
const WRITES_BEFORE_RESTART: usize = 25;
/// Bound for each wait on a `kompoxops` process or the audit log.
const TIMEOUT: Duration = Duration::from_secs(240);

/// Progress straight to stderr, past libtest's output capture.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "[restart] {msg}");
}

/// Kills the child if the test ends (e.g. panics) while it still runs.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Write requests (create/update/patch/delete, dry-runs excluded) by the
/// test user since `mark`.
fn writes_since(tb: &Testbed, mark: u64) -> usize {
    tb.audit_events_since(mark)
        .iter()
        .filter(|e| e["user"]["username"] == testbed::TEST_USER)
        .filter(|e| {
            matches!(
                e["verb"].as_str(),
                Some("create" | "update" | "patch" | "delete")
            )
        })
        .filter(|e| !e["requestURI"].as_str().unwrap_or("").contains("dryRun"))
        .count()
}

fn output_of(dir: &Path) -> String {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    format!("{}{}", read("stdout"), read("stderr"))
}

/// Waits for the child at most `timeout`; kills it and panics after that.
fn wait_bounded(child: &mut KillOnDrop, timeout: Duration, out_dir: &Path) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            panic!(
                "kompoxops did not finish within {timeout:?}:\n{}",
                output_of(out_dir)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What happened to one interrupted apply.
struct Outcome {
    /// Exit code of the interrupted apply (0 or 1).
    code: i32,
    /// `error: app ...` lines of the interrupted apply.
    errors: Vec<String>,
}

/// A repository of [`APPS`] apps; `kompoxops apply` in the background;
/// the apiserver killed after [`WRITES_BEFORE_RESTART`] writes and started
/// again `down` later; then a re-run of `apply` must succeed and `plan`
/// must be empty.
fn interrupted_apply_then_rerun(tb: &Testbed, prefix: &str, down: Duration) -> Outcome {
    let repo = Repo::new(tb, prefix);
    let apps: Vec<String> = (0..APPS).map(|i| format!("web{i:02}")).collect();
    for app in &apps {
        repo.app(app, "", WEB);
    }
    let tag = format!("{prefix} (down {:.0}s)", down.as_secs_f64());

    // The first apply, in the background.
    let out_dir = tempfile::tempdir().unwrap();
    let mark = tb.audit_mark();
    let t0 = Instant::now();
    let mut first =
        KillOnDrop(repo.spawn(&["apply", "--auto-approve", "--no-wait"], out_dir.path()));

    // Kill the apiserver once the apply has written some objects.
    let deadline = Instant::now() + TIMEOUT;
    let writes_before = loop {
        let n = writes_since(tb, mark);
        if n >= WRITES_BEFORE_RESTART {
            break n;
        }
        if let Some(status) = first.0.try_wait().unwrap() {
            panic!(
                "{tag}: the first apply ended ({status}) after {n} writes, before the restart:\n{}",
                output_of(out_dir.path())
            );
        }
        assert!(
            Instant::now() < deadline,
            "{tag}: the first apply made only {n} writes in {TIMEOUT:?}:\n{}",
            output_of(out_dir.path())
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let running_at_kill = first.0.try_wait().unwrap().is_none();
    note(&format!(
        "{tag}: {writes_before} writes after {:.2}s, first apply still running: {running_at_kill}; restarting kube-apiserver",
        t0.elapsed().as_secs_f64()
    ));
    let restart = tb.restart_apiserver_down_for(down).unwrap();
    assert!(
        running_at_kill,
        "{tag}: the first apply had already finished when the apiserver was killed:\n{}",
        output_of(out_dir.path())
    );

    // The interrupted apply: failing or succeeding are both fine.
    let status = wait_bounded(&mut first, TIMEOUT, out_dir.path());
    let first_out = output_of(out_dir.path());
    let errors: Vec<String> = first_out
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect();
    note(&format!(
        "{tag}: kube-apiserver ready {:.2}s after the kill; first apply exited with {} after {:.2}s, {} writes in all; {}: {errors:#?}",
        restart.as_secs_f64(),
        status,
        t0.elapsed().as_secs_f64(),
        writes_since(tb, mark),
        first_out
            .lines()
            .find(|l| l.starts_with("Apply complete"))
            .unwrap_or("(no summary)"),
    ));
    let code = status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "{tag}: the interrupted apply must end with 0 or 1, not {status}:\n{first_out}"
    );

    // Re-running converges.
    let t = Instant::now();
    let out = repo.run(&["apply", "--auto-approve", "--no-wait"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{tag}: the re-run after the restart failed:\n{text}\n--- the interrupted apply:\n{first_out}"
    );
    let summary = text
        .lines()
        .find(|l| l.starts_with("Apply complete") || l.starts_with("No changes"))
        .unwrap_or("(no summary)");
    note(&format!(
        "{tag}: re-run exit 0 in {:.2}s: {summary}",
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    let (plan_code, text) = repo.plan();
    assert_eq!(
        plan_code, 0,
        "{tag}: plan after the re-run must be empty:\n{text}\n--- the interrupted apply:\n{first_out}"
    );
    assert!(text.contains("No changes."), "{tag}: {text}");
    note(&format!(
        "{tag}: plan: No changes. ({:.2}s)",
        t.elapsed().as_secs_f64()
    ));

    for app in &apps {
        let ns = repo.namespace(app);
        for path in [
            format!("/apis/apps/v1/namespaces/{ns}/deployments/{app}-app"),
            format!("/api/v1/namespaces/{ns}/configmaps/kompox-inventory"),
        ] {
            assert!(
                tb.get_opt(&path).unwrap().is_some(),
                "{tag}: {path} is missing"
            );
        }
    }
    Outcome { code, errors }
}

/// One test, so the two restarts never overlap (tests in a binary run in
/// parallel and share the testbed).
#[test]
fn the_api_server_restarted_mid_apply_then_a_rerun_converges() {
    let tb = testbed();
    // Restarted at once: back within the apply's retries, usually.
    let at_once = interrupted_apply_then_rerun(tb, "restart", Duration::ZERO);
    // Down for longer than the apply's retries (4 attempts, 1.75 s of
    // backoff): the app being written when the apiserver went away fails,
    // usually half-applied, and so does the next; the re-run must finish
    // them.
    let held = interrupted_apply_then_rerun(tb, "restartdown", Duration::from_secs(4));
    note(&format!(
        "interrupted applies: restarted at once -> exit {} ({} app errors); down 4 s -> exit {} ({} app errors)",
        at_once.code,
        at_once.errors.len(),
        held.code,
        held.errors.len()
    ));
}
