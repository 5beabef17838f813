//! The pure parts of a pull-request plan on 1,000 generated Apps: which
//! Apps a change touches, and turning a plan in which every App changes
//! into redacted comments under GitHub's size limit.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kompox::pr::{CommentInput, Redactor, comment_parts, touched_apps};
use kompox::report::{Header, LiveDescription, markdown_parts};

#[path = "support/fixture.rs"]
mod fixture;

fn touched(c: &mut Criterion) {
    let tree = fixture::repository(1000);
    let project =
        kompox::kom::load_project(&tree, &kompox::kom::ProjectEnv::default()).expect("load");
    let mut group = c.benchmark_group("touched_apps_1000");
    for (name, paths) in [
        ("one_app_file", vec!["apps/app0500/compose.yml".to_string()]),
        ("shared_kom", vec![".kompox/kom/shared.yml".to_string()]),
    ] {
        group.bench_with_input(BenchmarkId::from_parameter(name), &paths, |b, paths| {
            b.iter(|| touched_apps(&project, paths, |_| true, None))
        });
    }
    group.finish();
}

fn comment(c: &mut Criterion) {
    let tree = fixture::repository(1000);
    let plan = fixture::load_convert_plan(&tree, &kompox::live::Live::empty());
    assert_eq!(plan.summary.apps_changed, 1000);
    let header = Header {
        revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
        workspace: "bench".into(),
        live: LiveDescription::Offline,
    };
    let redactor = Redactor::new((0..1000).map(|i| format!("secret-value-{i:05}")));
    let notes = vec!["Planned the 1000 of 1000 apps that this pull request touches.".to_string()];
    let mut group = c.benchmark_group("comment_1000_changed_apps");
    group.sample_size(10);
    group.bench_function("markdown_split_redact", |b| {
        b.iter(|| {
            let parts = markdown_parts(&plan, &header);
            let out = comment_parts(
                &CommentInput {
                    parts: &parts,
                    notes: &notes,
                    redactor: &redactor,
                },
                kompox::pr::COMMENT_LIMIT,
                kompox::pr::MAX_PARTS,
            );
            assert!(
                out.iter()
                    .all(|p| p.chars().count() <= kompox::pr::COMMENT_LIMIT)
            );
            out
        })
    });
    group.finish();
}

criterion_group!(benches, touched, comment);
criterion_main!(benches);
