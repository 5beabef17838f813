//! Plan renderers (pure): text for a terminal, markdown for a pull-request
//! comment, JSON for machines (schema in `docs/plan-json.md`).
//!
//! Guarantees: the same plan and header give the same bytes; colour (ANSI)
//! appears only when the caller asks for it (it knows whether stdout is a
//! TTY); Secret values never appear — the plan only carries their hashes,
//! and no renderer prints an object body.

mod json;
mod markdown;
mod text;

#[cfg(test)]
mod tests;

pub use json::{FORMAT_VERSION, json};
pub use markdown::{Details, MARKER, MarkdownParts, markdown, markdown_parts};
pub use text::text;

use crate::plan::{AppPlan, Counts};

/// What the plan was computed from, for the header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Commit id of the desired state, when it came from Git.
    pub revision: Option<String>,
    /// The workspace (repository) name.
    pub workspace: String,
    pub live: LiveDescription,
}

/// Where the live state came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveDescription {
    /// `--offline`: nothing is live, everything is planned as new.
    Offline,
    /// A live file (`--live F`).
    File(String),
    /// A cluster, by name.
    Cluster(String),
}

impl LiveDescription {
    fn describe(&self) -> String {
        match self {
            LiveDescription::Offline => "none (offline) — everything is planned as new".into(),
            LiveDescription::File(p) => format!("file {p}"),
            LiveDescription::Cluster(c) => format!("cluster {c}"),
        }
    }
}

/// A commit id shortened for people (7 characters, as git does).
fn short_rev(rev: &str) -> &str {
    if rev.len() > 7 && rev.is_char_boundary(7) {
        &rev[..7]
    } else {
        rev
    }
}

/// `3 to create, 1 to update, 1 disruptive` (non-zero parts only).
fn counts_phrase(c: &Counts) -> String {
    let mut parts: Vec<String> = [
        (c.create, "to create"),
        (c.update, "to update"),
        (c.replace, "to replace"),
        (c.prune, "to prune"),
        (c.destroy, "to destroy"),
        (c.disruptive, "disruptive"),
        (c.destructive, "destructive"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        parts.push("no changes".into());
    }
    parts.join(", ")
}

/// The closing `Plan: …` line.
fn totals_line(c: &Counts) -> String {
    let restarts = match c.pod_restarts {
        1 => "1 change restarts a pod.".to_string(),
        n => format!("{n} changes restart a pod."),
    };
    format!(
        "Plan: {} to create, {} to update, {} to replace, {} to prune, {} to destroy. {restarts}",
        c.create, c.update, c.replace, c.prune, c.destroy
    )
}

/// The closing `Destructive changes: …` line with the pruning reminder.
fn destructive_line(c: &Counts) -> String {
    let what = match c.destructive {
        0 => "none.".to_string(),
        n => format!("{n} (refused without --allow-destroy)."),
    };
    format!("Destructive changes: {what} (Disks, PVs and PVCs are never pruned.)")
}

/// The app's heading phrase after its name.
fn app_phrase(app: &AppPlan) -> String {
    use crate::plan::AppStatus;
    match &app.status {
        AppStatus::Planned => counts_phrase(&app.counts()),
        AppStatus::Failed(errors) => match errors.len() {
            1 => "failed: 1 error".into(),
            n => format!("failed: {n} errors"),
        },
        AppStatus::Removed => {
            let c = app.counts();
            if c.changes() == 0 {
                "removed from Git: nothing to prune".into()
            } else {
                format!("removed from Git: {}", counts_phrase(&c))
            }
        }
    }
}
