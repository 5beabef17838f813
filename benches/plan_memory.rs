//! Peak memory of load + convert + plan for 1,000 apps against a live
//! state of the same size. Prints the process's peak RSS (VmHWM) before and
//! after, so the figure for the pipeline is the difference.

#[path = "fixture.rs"]
mod fixture;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let n = 1000;
    let tree = fixture::repository(n);
    let live = fixture::live_for(&tree);
    let before = vm_hwm_kib();
    let start = std::time::Instant::now();
    let plan = fixture::load_convert_plan(&tree, &live);
    let elapsed = start.elapsed();
    let after = vm_hwm_kib();
    assert_eq!(plan.apps.len(), n);
    println!(
        "plan_memory: {n} apps, one run {:.3} s; peak RSS {:.1} MiB (inputs built: {:.1} MiB)",
        elapsed.as_secs_f64(),
        after as f64 / 1024.0,
        before as f64 / 1024.0
    );
}
