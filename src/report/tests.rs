//! Renderer details; whole plans are snapshotted in `plan::tests`.

use super::*;
use crate::plan::Counts;

#[test]
fn revisions_are_shortened_like_git() {
    assert_eq!(short_rev("3f9c2e1a7d5b"), "3f9c2e1");
    assert_eq!(short_rev("abc"), "abc");
}

#[test]
fn totals_use_singular_for_one_restart() {
    let mut c = Counts {
        pod_restarts: 1,
        ..Counts::default()
    };
    assert!(totals_line(&c).ends_with("1 change restarts a pod."));
    c.pod_restarts = 2;
    assert!(totals_line(&c).ends_with("2 changes restart a pod."));
    assert_eq!(counts_phrase(&Counts::default()), "no changes");
}

#[test]
fn destructive_line_names_the_flag() {
    let c = Counts {
        destructive: 2,
        ..Counts::default()
    };
    assert_eq!(
        destructive_line(&c),
        "Destructive changes: 2 (refused without --allow-destroy). (Disks, PVs and PVCs are never pruned.)"
    );
}

#[test]
fn code_fences_outgrow_backticks_inside() {
    let lines = vec![vec![(text::Style::Plain, "a ```` b".to_string())]];
    let f = markdown_fence_for_test(&lines);
    assert!(f.starts_with("`````diff\n"), "{f}");
}

fn markdown_fence_for_test(lines: &[text::Line]) -> String {
    markdown::fenced_for_test("diff", lines)
}
