//! Fitting a plan into pull-request comments.
//!
//! GitHub refuses a comment over 65,536 characters, and a plan of many
//! Apps (or one App with a large diff) can exceed that. The summary always
//! comes first and whole; the per-App blocks follow in plan order, moving
//! to numbered follow-up comments when one is full, and a block that fits
//! nowhere is cut at a line with a note. Nothing is cut inside a table row
//! or leaves a code fence open.

use crate::report::{Details, MarkdownParts};

use super::Redactor;

/// GitHub's limit on a comment body, in characters.
pub const COMMENT_LIMIT: usize = 65_536;

/// At most this many comments per pull request: beyond that, a reviewer
/// reads the plan locally, not in the conversation.
pub const MAX_PARTS: usize = 4;

/// Room kept in every part for the marker line the forge client adds.
const MARKER_RESERVE: usize = 100;

/// Room kept at the end of a part for "continued" and "not shown" notes.
const TAIL_RESERVE: usize = 600;

/// What goes into the comment.
pub struct CommentInput<'a> {
    pub parts: &'a MarkdownParts,
    /// Paragraphs shown after the summary (which Apps were planned and
    /// why, a preview that was not possible).
    pub notes: &'a [String],
    pub redactor: &'a Redactor,
}

fn clen(s: &str) -> usize {
    s.chars().count()
}

/// Splits the comment into bodies of at most `limit` characters each
/// (marker included), at most `max_parts` of them. Every body is redacted.
pub fn comment_parts(input: &CommentInput<'_>, limit: usize, max_parts: usize) -> Vec<String> {
    let budget = limit.saturating_sub(MARKER_RESERVE);
    let max_parts = max_parts.max(1);
    let r = |s: &str| input.redactor.redact(s).into_owned();

    let mut head = r(&input.parts.head);
    for n in input.notes {
        head.push_str(&r(n));
        head.push_str("\n\n");
    }
    head.push_str(&r(&input.parts.footer));
    head.push('\n');
    let room = budget.saturating_sub(TAIL_RESERVE);
    if clen(&head) > room {
        head = cut_lines(&head, room.saturating_sub(120));
        head.push_str("\n… the summary is cut here (comment size limit); run `kompoxops plan` for all of it.\n\n");
    }

    let mut out: Vec<String> = vec![head];
    // The last part holds only its heading: a block that does not fit
    // there will not fit in another one either.
    let mut fresh = false;
    let mut omitted: Vec<String> = Vec::new();
    for d in &input.parts.details {
        let d = Details {
            name: d.name.clone(),
            summary: r(&d.summary),
            lang: d.lang,
            lines: d.lines.iter().map(|l| r(l)).collect(),
        };
        let full = d.render(d.lines.len());
        loop {
            let cur = out.last().map_or(0, |s| clen(s));
            let rem = budget.saturating_sub(TAIL_RESERVE + cur);
            if clen(&full) <= rem {
                out.last_mut().expect("one part").push_str(&full);
                fresh = false;
                break;
            }
            if out.len() < max_parts && !fresh {
                out.push(format!(
                    "#### Kompox plan, continued ({})\n\n",
                    out.len() + 1
                ));
                fresh = true;
                continue;
            }
            match largest_fit(&d, rem) {
                Some(block) => {
                    out.last_mut().expect("one part").push_str(&block);
                    fresh = false;
                }
                None => omitted.push(d.name.clone()),
            }
            break;
        }
    }
    if !omitted.is_empty() {
        let mut names = omitted
            .iter()
            .take(20)
            .map(|n| format!("`{}`", r(n)))
            .collect::<Vec<_>>()
            .join(", ");
        if omitted.len() > 20 {
            names.push_str(&format!(" and {} more", omitted.len() - 20));
        }
        let note = cut_chars(
            &format!(
                "**Details of {} not shown** (comment size limit): {names}. Run `kompoxops plan` for them.\n",
                if omitted.len() == 1 {
                    "1 app".to_string()
                } else {
                    format!("{} apps", omitted.len())
                }
            ),
            TAIL_RESERVE - 100,
        );
        out.last_mut().expect("one part").push_str(&note);
    }
    let n = out.len();
    for (i, part) in out.iter_mut().enumerate() {
        if i + 1 < n {
            part.push_str("\n_Continued in the next comment._\n");
        }
    }
    out
}

/// The block with as many lines as fit in `room` characters, or None
/// when not even its heading does.
fn largest_fit(d: &Details, room: usize) -> Option<String> {
    let fits = |k: usize| clen(&d.render(k)) <= room;
    if !fits(0) {
        return None;
    }
    let (mut lo, mut hi) = (0, d.lines.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(d.render(lo))
}

/// The longest prefix of whole lines within `max` characters.
fn cut_lines(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    for line in s.split_inclusive('\n') {
        let l = clen(line);
        if len + l > max {
            break;
        }
        out.push_str(line);
        len += l;
    }
    out
}

fn cut_chars(s: &str, max: usize) -> String {
    if clen(s) <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(2)).collect();
    out.push_str("…\n");
    out
}
