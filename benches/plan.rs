//! Load + convert + plan of 1,000 generated apps against a live state of
//! the same size (issue target: ≤ 1 s and ≤ 200 MiB peak on one core).
//! Peak memory is measured by the `plan_memory` bench (a plain binary).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

#[path = "support/fixture.rs"]
mod fixture;

fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_convert_plan");
    group.sample_size(10);
    for n in [100usize, 1000] {
        let tree = fixture::repository(n);
        let live = fixture::live_for(&tree);
        group.bench_with_input(
            BenchmarkId::from_parameter(n),
            &(tree, live),
            |b, (tree, live)| {
                b.iter(|| {
                    let plan = fixture::load_convert_plan(tree, live);
                    assert_eq!(plan.apps.len(), n);
                    assert!(!plan.has_changes(), "the live state matches: no changes");
                    plan
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, plan);
criterion_main!(benches);
