//! The JSON plan: a stable, documented schema (`docs/plan-json.md`).
//!
//! The schema is a set of view structs, separate from the plan types, so
//! the plan can evolve without changing what scripts read. Keys appear in
//! the order of the struct fields; every documented key is always present
//! (`null` or `[]` when empty), and new keys are only ever added.

use serde::Serialize;

use super::Header;
use super::LiveDescription;
use crate::diag::Diagnostic;
use crate::plan::{AppPlan, AppStatus, Change, Counts, Plan, Target};

/// Version of the JSON schema; bumped only on an incompatible change.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Doc<'a> {
    format_version: u32,
    header: HeaderView<'a>,
    has_changes: bool,
    summary: SummaryView,
    notes: &'a [String],
    failed_files: Vec<FailedFileView<'a>>,
    apps: Vec<AppView<'a>>,
}

#[derive(Serialize)]
struct HeaderView<'a> {
    revision: Option<&'a str>,
    workspace: &'a str,
    live: LiveView<'a>,
}

#[derive(Serialize)]
#[serde(tag = "source", rename_all = "lowercase")]
enum LiveView<'a> {
    Offline,
    File { path: &'a str },
    Cluster { name: &'a str },
}

#[derive(Serialize)]
struct SummaryView {
    apps: usize,
    apps_changed: usize,
    apps_failed: usize,
    apps_removed: usize,
    #[serde(flatten)]
    counts: CountsView,
}

#[derive(Serialize)]
struct CountsView {
    create: usize,
    update: usize,
    replace: usize,
    prune: usize,
    destroy: usize,
    no_op: usize,
    safe: usize,
    disruptive: usize,
    destructive: usize,
    pod_restarts: usize,
}

impl From<&Counts> for CountsView {
    fn from(c: &Counts) -> Self {
        CountsView {
            create: c.create,
            update: c.update,
            replace: c.replace,
            prune: c.prune,
            destroy: c.destroy,
            no_op: c.no_op,
            safe: c.safe,
            disruptive: c.disruptive,
            destructive: c.destructive,
            pod_restarts: c.pod_restarts,
        }
    }
}

#[derive(Serialize)]
struct FailedFileView<'a> {
    path: &'a str,
    errors: &'a [Diagnostic],
}

#[derive(Serialize)]
struct AppView<'a> {
    app_id: String,
    app_name: &'a str,
    cluster_id: String,
    namespace: Option<&'a str>,
    driver: Option<&'a str>,
    status: &'static str,
    errors: &'a [Diagnostic],
    warnings: &'a [String],
    summary: CountsView,
    changes: Vec<ChangeView<'a>>,
}

#[derive(Serialize)]
struct ChangeView<'a> {
    target: TargetView<'a>,
    action: &'static str,
    risk: &'static str,
    reasons: &'a [String],
    fields: &'a [String],
    details: &'a [String],
    diff: Option<&'a str>,
    known_after_apply: bool,
    desired_hash: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TargetView<'a> {
    Object {
        api_version: &'a str,
        kind: &'a str,
        namespace: Option<&'a str>,
        name: &'a str,
    },
    Disk {
        volume: &'a str,
        name: &'a str,
    },
    Snapshot {
        volume: &'a str,
        name: &'a str,
    },
}

/// Renders the plan as pretty JSON (with a trailing newline).
pub fn json(plan: &Plan, header: &Header) -> String {
    let doc = Doc {
        format_version: FORMAT_VERSION,
        header: HeaderView {
            revision: header.revision.as_deref(),
            workspace: &header.workspace,
            live: match &header.live {
                LiveDescription::Offline => LiveView::Offline,
                LiveDescription::File(path) => LiveView::File { path },
                LiveDescription::Cluster(name) => LiveView::Cluster { name },
            },
        },
        has_changes: plan.has_changes(),
        summary: SummaryView {
            apps: plan.summary.apps,
            apps_changed: plan.summary.apps_changed,
            apps_failed: plan.summary.apps_failed,
            apps_removed: plan.summary.apps_removed,
            counts: (&plan.summary.counts).into(),
        },
        notes: &plan.notes,
        failed_files: plan
            .failed_files
            .iter()
            .map(|f| FailedFileView {
                path: &f.path,
                errors: &f.errors,
            })
            .collect(),
        apps: plan.apps.iter().map(app_view).collect(),
    };
    match serde_json::to_string_pretty(&doc) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        // Serialising plain data cannot fail; never panic on it anyway.
        Err(e) => format!(
            "{{\"format_version\": {FORMAT_VERSION}, \"error\": {:?}}}\n",
            e.to_string()
        ),
    }
}

fn app_view(a: &AppPlan) -> AppView<'_> {
    let (status, errors): (&'static str, &[Diagnostic]) = match &a.status {
        AppStatus::Planned => ("planned", &[]),
        AppStatus::Failed(e) => ("failed", e),
        AppStatus::Removed => ("removed", &[]),
    };
    AppView {
        app_id: a.app_id.to_string(),
        app_name: &a.app_name,
        cluster_id: a.cluster_id.to_string(),
        namespace: a.namespace.as_deref(),
        driver: a.driver.as_deref(),
        status,
        errors,
        warnings: &a.warnings,
        summary: (&a.counts()).into(),
        changes: a.changes.iter().map(change_view).collect(),
    }
}

fn change_view(c: &Change) -> ChangeView<'_> {
    ChangeView {
        target: match &c.target {
            Target::Object {
                api_version,
                kind,
                namespace,
                name,
            } => TargetView::Object {
                api_version,
                kind,
                namespace: namespace.as_deref(),
                name,
            },
            Target::Disk { volume, name } => TargetView::Disk { volume, name },
            Target::Snapshot { volume, name } => TargetView::Snapshot { volume, name },
        },
        action: c.action.as_str(),
        risk: c.risk.as_str(),
        reasons: &c.reasons,
        fields: &c.fields,
        details: &c.details,
        diff: c.diff.as_deref(),
        known_after_apply: c.known_after_apply,
        desired_hash: c.desired_hash.as_deref(),
    }
}
