//! Load + convert of 1, 100 and 1,000 generated apps (issue target:
//! 1,000 apps in ≤ 0.5 s on one core). Figures go to docs/performance.md.

use std::collections::BTreeMap;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kompox::kom::{ProjectEnv, load_project};

#[path = "support/fixture.rs"]
mod fixture;

fn load_convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_convert");
    group.sample_size(10);
    for n in [1usize, 100, 1000] {
        let tree = fixture::repository(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &tree, |b, tree| {
            b.iter(|| {
                let project = load_project(tree, &ProjectEnv::default()).expect("load");
                let desired = kompox::desired::build(&project, tree, &[], &BTreeMap::new());
                assert_eq!(desired.apps.len(), n);
                assert!(desired.apps.iter().all(|a| a.result.is_ok()));
                desired
            })
        });
    }
    group.finish();
}

criterion_group!(benches, load_convert);
criterion_main!(benches);
