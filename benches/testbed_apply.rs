//! On the testbed (a real control plane, tests/support/testbed.rs): the
//! first full apply of 100 and 1,000 example-shaped apps, then a no-op
//! plan — its time, its request count and its writes from the API
//! server's audit log — and the peak RSS of `kompoxops`.
//!
//! `cargo bench --bench testbed_apply` (figures in docs/performance.md).

#[path = "../tests/support/testbed.rs"]
mod testbed;

#[path = "support/testbed_repo.rs"]
mod testbed_repo;

use testbed_repo::repository;

use std::path::Path;
use std::time::Instant;

fn children_max_rss_mib() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    u.ru_maxrss as f64 / 1024.0
}

fn kompoxops(dir: &Path, args: &[&str]) -> (f64, i32) {
    let start = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kompoxops"))
        .args(args)
        .current_dir(dir)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kompoxops");
    if !out.status.success() && out.status.code() != Some(2) {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (
        start.elapsed().as_secs_f64(),
        out.status.code().unwrap_or(-1),
    )
}

fn main() {
    let tb = testbed::testbed();
    for n in [100usize, 1000] {
        let ws = tb.unique_name(&format!("bench{n}"));
        let dir = tempfile::tempdir().unwrap();
        repository(dir.path(), &ws, &tb.kubeconfig_path, n);

        let (t_apply, code) = kompoxops(dir.path(), &["apply", "--auto-approve", "--no-wait"]);
        assert_eq!(code, 0, "first apply failed");
        let rss_apply = children_max_rss_mib();

        let mark = tb.audit_mark();
        let (t_plan, code) = kompoxops(dir.path(), &["plan", "--detailed-exitcode"]);
        assert_eq!(code, 0, "the plan after apply must be empty");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let events: Vec<_> = tb
            .audit_events_since(mark)
            .into_iter()
            .filter(|e| {
                e["user"]["username"] == testbed::TEST_USER && e["stage"] == "ResponseComplete"
            })
            .collect();
        let writes = events
            .iter()
            .filter(|e| {
                matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete")
                )
            })
            .count();
        let lists = events.iter().filter(|e| e["verb"] == "list").count();
        println!(
            "testbed_apply: {n} apps: first apply {t_apply:.1} s; no-op plan {t_plan:.2} s, {} requests ({lists} lists, {writes} writes); peak RSS of kompoxops {rss_apply:.1} MiB",
            events.len()
        );
    }
}
