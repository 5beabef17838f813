//! Peak memory of the real `kompoxops plan` for 1,000 apps (issue target:
//! ≤ 200 MiB against a live state of the same size). The repository and
//! the live file are written to a temp dir (the live file streamed app by
//! app, so this process stays small), the release binary runs as a child,
//! and its peak RSS is read with `getrusage(RUSAGE_CHILDREN)`: first
//! `plan --offline`, then `plan --live` (the counter keeps the maximum over
//! all children). A forked child counts the parent's resident pages until
//! it execs, so the figure is an upper bound; this process's own RSS at the
//! time is printed beside it.

#[path = "support/fixture.rs"]
mod fixture;

fn children_max_rss_mib() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    usage.ru_maxrss as f64 / 1024.0
}

fn own_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn run(dir: &std::path::Path, args: &[&str]) -> (f64, i32) {
    let start = std::time::Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kompoxops"))
        .args(args)
        .current_dir(dir)
        .status()
        .expect("run kompoxops");
    (start.elapsed().as_secs_f64(), status.code().unwrap_or(-1))
}

fn main() {
    let n = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let live_bytes = {
        let tree = fixture::repository(n);
        for path in tree.list_under("") {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, tree.read(path).unwrap()).unwrap();
        }
        let file = std::fs::File::create(dir.path().join("live.json")).unwrap();
        fixture::write_live_json(&tree, std::io::BufWriter::new(file))
    };
    let own_rss = own_rss_mib();

    let (t, code) = run(
        dir.path(),
        &[
            "plan",
            "--offline",
            "--format",
            "json",
            "--out",
            "plan.json",
        ],
    );
    assert_eq!(code, 0);
    println!(
        "plan_memory: plan --offline, {n} apps: {t:.3} s wall, peak RSS {:.1} MiB (this process: {own_rss:.1} MiB)",
        children_max_rss_mib()
    );

    let (t, code) = run(
        dir.path(),
        &[
            "plan",
            "--live",
            "live.json",
            "--format",
            "json",
            "--out",
            "plan.json",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(code, 0, "the live state matches the repository: no changes");
    println!(
        "plan_memory: plan --live ({:.1} MiB live file), {n} apps: {t:.3} s wall, peak RSS {:.1} MiB",
        live_bytes as f64 / 1048576.0,
        children_max_rss_mib()
    );
}
