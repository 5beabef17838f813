//! The text plan (UX.md): a header line, one section per app with its
//! changes and diffs, and the totals. Colour only when asked for.

use super::{Header, app_phrase, destructive_line, short_rev, totals_line};
use crate::plan::{Action, AppPlan, AppStatus, Change, Plan, Risk};

/// How a piece of text is shown on a colour terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    Plain,
    Bold,
    Dim,
    Add,
    Remove,
    Change,
    Replace,
    Hunk,
    Warn,
    Error,
    Disruptive,
    Destructive,
}

impl Style {
    fn ansi(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Bold => "\x1b[1m",
            Style::Dim => "\x1b[2m",
            Style::Add => "\x1b[32m",
            Style::Remove => "\x1b[31m",
            Style::Change => "\x1b[33m",
            Style::Replace => "\x1b[35m",
            Style::Hunk => "\x1b[36m",
            Style::Warn => "\x1b[33m",
            Style::Error => "\x1b[31m",
            Style::Disruptive => "\x1b[1;33m",
            Style::Destructive => "\x1b[1;31m",
        }
    }
}

/// A rendered line: styled pieces.
pub(super) type Line = Vec<(Style, String)>;

pub(super) fn render(line: &Line, color: bool) -> String {
    let mut out = String::new();
    for (style, text) in line {
        if color && *style != Style::Plain && !text.is_empty() {
            out.push_str(style.ansi());
            out.push_str(text);
            out.push_str("\x1b[0m");
        } else {
            out.push_str(text);
        }
    }
    out
}

fn plain(s: impl Into<String>) -> (Style, String) {
    (Style::Plain, s.into())
}

/// Renders the plan as text.
pub fn text(plan: &Plan, header: &Header, color: bool) -> String {
    let mut lines: Vec<Line> = Vec::new();
    let mut head = format!("Kompox plan · repo {}", header.workspace);
    if let Some(rev) = &header.revision {
        head.push_str(&format!(" @ {}", short_rev(rev)));
    }
    head.push_str(&format!(" · live: {}", header.live.describe()));
    lines.push(vec![(Style::Bold, head)]);
    for app in &plan.apps {
        lines.push(Vec::new());
        lines.push(app_heading(app));
        lines.extend(app_lines(app, false));
    }
    for f in &plan.failed_files {
        lines.push(Vec::new());
        lines.push(vec![
            (Style::Bold, format!("app file {}", f.path)),
            (Style::Error, "  failed to load".into()),
        ]);
        for e in &f.errors {
            lines.push(vec![(Style::Error, format!("  {e}"))]);
        }
    }
    lines.push(Vec::new());
    if !plan.has_changes() && plan.summary.apps_failed == 0 && plan.failed_files.is_empty() {
        lines.push(vec![plain("No changes.")]);
    }
    let c = &plan.summary.counts;
    lines.push(vec![plain(totals_line(c))]);
    let style = if c.destructive > 0 {
        Style::Destructive
    } else {
        Style::Plain
    };
    lines.push(vec![(style, destructive_line(c))]);
    for n in &plan.notes {
        lines.push(vec![(Style::Warn, format!("Note: {n}"))]);
    }
    let mut out = String::new();
    for l in &lines {
        out.push_str(&render(l, color));
        out.push('\n');
    }
    out
}

fn app_heading(app: &AppPlan) -> Line {
    let phrase = app_phrase(app);
    let style = match &app.status {
        AppStatus::Failed(_) => Style::Error,
        _ if app.max_risk() == Some(Risk::Destructive) => Style::Destructive,
        _ if app.max_risk() == Some(Risk::Disruptive) => Style::Disruptive,
        _ => Style::Plain,
    };
    if app.status == AppStatus::Planned && !app.has_changes() {
        return vec![
            (Style::Bold, format!("app {}", app.app_name)),
            plain(format!("  {phrase}")),
        ];
    }
    vec![
        (
            Style::Bold,
            format!("app {} ({})", app.app_name, app.app_id),
        ),
        (style, format!("  {phrase}")),
    ]
}

/// The body of an app: errors, warnings, changes and their diffs. In
/// markdown mode (`md`) the marker of every line is moved to the first
/// column, so a ```diff block colours it.
pub(super) fn app_lines(app: &AppPlan, md: bool) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    let indent = if md { "" } else { "  " };
    if let AppStatus::Failed(errors) = &app.status {
        for e in errors {
            out.push(vec![(Style::Error, format!("{indent}{e}"))]);
        }
    }
    for w in &app.warnings {
        out.push(vec![(Style::Warn, format!("{indent}warning: {w}"))]);
    }
    for c in app.changes.iter().filter(|c| shown(c)) {
        out.push(change_line(c, indent));
        if let Some(diff) = &c.diff {
            for l in diff.lines() {
                out.push(diff_line(l, md));
            }
        }
    }
    out
}

/// No-ops are shown only when they say something (e.g. kept instead of
/// pruned).
pub(super) fn shown(c: &Change) -> bool {
    c.is_change() || !c.reasons.is_empty() || !c.details.is_empty()
}

pub(super) fn marker(c: &Change) -> (&'static str, Style) {
    match c.action {
        Action::Create => ("+", Style::Add),
        Action::Update => ("~", Style::Change),
        Action::Replace => ("-/+", Style::Replace),
        Action::Prune | Action::Destroy => ("-", Style::Remove),
        Action::NoOp => ("=", Style::Dim),
    }
}

fn change_line(c: &Change, indent: &str) -> Line {
    let (m, style) = marker(c);
    let mut line = vec![
        plain(indent),
        (style, m.to_string()),
        plain(format!(
            " {} {}",
            c.target.kind_label(),
            c.target.name_label()
        )),
    ];
    if c.action == Action::NoOp {
        let mut what = c.reasons.join("; ");
        if what.is_empty() {
            what = c.details.join("; ");
        }
        line.push((Style::Dim, format!("  {what}")));
        return line;
    }
    line.push(plain(format!("  {}", c.action.as_str())));
    if !c.details.is_empty() {
        line.push(plain(format!("  {}", c.details.join("; "))));
    }
    if c.known_after_apply {
        line.push((Style::Dim, "  (known after apply)".into()));
    }
    let reasons = c.reasons.join("; ");
    match c.risk {
        Risk::Disruptive => line.push((Style::Disruptive, format!("  DISRUPTIVE ({reasons})"))),
        Risk::Destructive => line.push((Style::Destructive, format!("  DESTRUCTIVE ({reasons})"))),
        Risk::Safe if !reasons.is_empty() => line.push((Style::Dim, format!("  ({reasons})"))),
        Risk::Safe => {}
    }
    line
}

/// One line of a unified diff, indented under its change.
fn diff_line(l: &str, md: bool) -> Line {
    const PAD: &str = "      ";
    let (style, sign, rest) = if l.starts_with("---") || l.starts_with("+++") {
        (Style::Bold, " ", l)
    } else if l.starts_with("@@") {
        (Style::Hunk, " ", l)
    } else {
        match l.chars().next() {
            Some('-') => (Style::Remove, "-", &l[1..]),
            Some('+') => (Style::Add, "+", &l[1..]),
            Some(' ') => (Style::Plain, " ", &l[1..]),
            _ => (Style::Plain, " ", l),
        }
    };
    let is_body = !(l.starts_with("---") || l.starts_with("+++") || l.starts_with("@@"));
    let text = match (md, is_body) {
        // The sign in the first column (a ```diff block colours it), the
        // text aligned as in the terminal.
        (true, _) => format!("{sign}{PAD}{rest}"),
        (false, true) => format!("{PAD}{sign}{rest}"),
        (false, false) => format!("{PAD}{rest}"),
    };
    vec![(style, text)]
}
