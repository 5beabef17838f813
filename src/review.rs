//! Planning a pull request against live clusters (DECISIONS 20), shared by
//! `kompoxops plan --pr` and the reconciler's pull-request mode.
//!
//! Read-only by construction: it lists (through [`cluster::observe`],
//! done by the caller) and sends at most server-side dry-runs, which stop
//! at the first 403 so a planner whose credentials may only read still
//! produces a plan, and the comment says what it could not check.
//!
//! Every App of a touched cluster is converted and planned, because
//! prunes and removed Apps are only exact when the planner sees the whole
//! desired state of the cluster; only the touched ones are kept for the
//! comment and refined with a dry-run.

use std::collections::BTreeSet;

use crate::cluster::{Connection, Observed};
use crate::convert::AppDesired;
use crate::desired;
use crate::kom::Project;
use crate::model::ResourceId;
use crate::pipeline::{assigned_disks, plan_options};
use crate::plan::{AppStatus, Plan, Planner, Summary, scheduling};
use crate::pr::{self, CommentInput, Redactor, Touched};
use crate::report::{self, Header, LiveDescription};
use crate::source::FileTree;

/// The note shown when the API server refused a server-side dry-run.
pub const PREVIEW_FORBIDDEN: &str = "field-level preview not possible: the API server refused a server-side dry-run (403), so immutable-field replacements were not checked; grant `patch` to see them";

/// One cluster's live state and, when a dry-run may be tried, its
/// connection.
pub struct ClusterView<'a> {
    pub cluster_id: ResourceId,
    pub conn: Option<&'a Connection>,
    pub observed: &'a Observed,
}

/// The plan of the touched Apps, with what the comment needs besides it.
#[derive(Debug)]
pub struct Review {
    pub plan: Plan,
    /// Paragraphs for the comment (what was planned and why, a preview
    /// that was not possible).
    pub notes: Vec<String>,
    /// Every Secret value seen (desired and live), for redaction.
    pub secrets: Vec<String>,
}

/// Plans the touched Apps of `clusters` against their live state.
pub async fn plan_touched(
    project: &Project,
    tree: &FileTree,
    clusters: &[ClusterView<'_>],
    touched: &Touched,
) -> Review {
    let mut plans = Vec::new();
    let mut secrets = Vec::new();
    let mut forbidden = false;
    for view in clusters {
        let live = &view.observed.live;
        let secret_bodies: Vec<serde_json::Value> = live
            .objects
            .iter()
            .filter(|o| o.kind == "Secret")
            .map(|o| o.body())
            .collect();
        secrets.extend(pr::secret_values(&secret_bodies));
        let ids: Vec<ResourceId> = project
            .kom
            .apps
            .iter()
            .filter(|a| a.meta.id.parent().as_ref() == Some(&view.cluster_id))
            .map(|a| a.meta.id.clone())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let disks = assigned_disks(project, live);
        let mut planner = Planner::new(live, plan_options(project, true));
        for (path, errs) in desired::failed_files(project) {
            planner.add_failed_file(&path, &errs);
        }
        let mut kept: Vec<AppDesired> = Vec::new();
        desired::for_each_app(project, tree, &ids, &disks, |outcome| {
            let is_touched = touched.apps.contains_key(&outcome.app_id);
            let plan = planner.add(&outcome);
            if let (true, Ok(d)) = (is_touched, &outcome.result) {
                secrets.extend(pr::secret_values(d.objects.iter().map(|o| &o.body)));
                if let Some(w) = scheduling::unschedulable_warning(d, &view.observed.nodes) {
                    plan.warnings.push(w);
                }
                kept.push(d.clone());
            }
        });
        let mut plan = planner.finish();
        if let Some(conn) = view.conn {
            for d in &kept {
                if forbidden {
                    break;
                }
                if let Some(ap) = plan.apps.iter_mut().find(|a| a.app_id == d.app_id) {
                    forbidden |= crate::apply::refine_with_dry_run(conn, d, ap)
                        .await
                        .forbidden;
                }
            }
        }
        plan.apps.retain(|a| {
            touched.apps.contains_key(&a.app_id)
                || (a.status == AppStatus::Removed && touched.shows_removed(&a.app_id))
        });
        plan.failed_files
            .retain(|f| touched.failed_files.contains(&f.path));
        plan.summary = Summary::of(&plan.apps);
        plans.push(plan);
    }
    let mut plan = Plan::merge(plans);
    // Failed files not under any cluster still belong in the comment.
    let mut shown: BTreeSet<String> = plan.failed_files.iter().map(|f| f.path.clone()).collect();
    for (path, errors) in desired::failed_files(project) {
        if touched.failed_files.contains(&path) && shown.insert(path.clone()) {
            plan.failed_files
                .push(crate::plan::FailedFile { path, errors });
        }
    }
    let mut notes = vec![planned_note(project, touched, clusters)];
    if forbidden {
        notes.push(format!("> **Note:** {PREVIEW_FORBIDDEN}."));
    }
    Review {
        plan,
        notes,
        secrets,
    }
}

/// "Planned 2 of 5 apps …": which Apps this comment covers and why.
fn planned_note(project: &Project, touched: &Touched, clusters: &[ClusterView<'_>]) -> String {
    let in_scope: Vec<&ResourceId> = touched
        .apps
        .keys()
        .filter(|id| {
            clusters
                .iter()
                .any(|c| id.parent().as_ref() == Some(&c.cluster_id))
        })
        .collect();
    // Without a cluster in scope (nothing touched), the whole project.
    let total = project
        .kom
        .apps
        .iter()
        .filter(|a| {
            clusters.is_empty()
                || clusters
                    .iter()
                    .any(|c| a.meta.id.parent().as_ref() == Some(&c.cluster_id))
        })
        .count();
    if in_scope.is_empty() && touched.failed_files.is_empty() {
        return format!(
            "This pull request touches none of the {total} apps{}: nothing to plan.",
            cluster_phrase(clusters)
        );
    }
    let mut why: Vec<String> = in_scope
        .iter()
        .take(30)
        .map(|id| format!("`{}` ({})", id.name(), touched.apps[*id]))
        .collect();
    if in_scope.len() > 30 {
        why.push(format!("and {} more", in_scope.len() - 30));
    }
    format!(
        "Planned the {} of {total} apps{} that this pull request touches: {}.",
        in_scope.len(),
        cluster_phrase(clusters),
        why.join(", ")
    )
}

fn cluster_phrase(clusters: &[ClusterView<'_>]) -> String {
    match clusters {
        [one] => format!(" of cluster `{}`", one.cluster_id.name()),
        _ => String::new(),
    }
}

/// The plan header: the revision planned, the workspaces, the live state.
pub fn header(project: &Project, revision: Option<String>, live: LiveDescription) -> Header {
    Header {
        revision,
        workspace: project
            .kom
            .workspaces
            .iter()
            .map(|w| w.meta.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        live,
    }
}

/// The comment bodies (without markers) for a review.
pub fn comment(review: &Review, header: &Header) -> Vec<String> {
    let parts = report::markdown_parts(&review.plan, header);
    let redactor = Redactor::new(review.secrets.iter().cloned());
    pr::comment_parts(
        &CommentInput {
            parts: &parts,
            notes: &review.notes,
            redactor: &redactor,
        },
        pr::COMMENT_LIMIT,
        pr::MAX_PARTS,
    )
}

/// The comment for a head revision whose KOM files do not load: the
/// errors, so the author sees them where they review.
pub fn load_error_comment(revision: &str, errors: &[String]) -> Vec<String> {
    let short: String = revision.chars().take(7).collect();
    let mut body = format!(
        "### Kompox plan for `{short}`: the KOM files have errors, nothing was planned\n\n```text\n"
    );
    for e in errors.iter().take(50) {
        body.push_str(&e.replace("```", "'''"));
        body.push('\n');
    }
    body.push_str("```\n");
    let mut s: String = body.chars().take(pr::COMMENT_LIMIT - 200).collect();
    if s.len() < body.len() {
        s.push_str("\n```\n… cut at the comment size limit\n");
    }
    vec![s]
}

/// The commit status line: `kompox plan: 2 apps changed, 1 disruptive`.
pub fn status_line(plan: &Plan) -> (bool, String) {
    let s = &plan.summary;
    let failed = s.apps_failed + plan.failed_files.len();
    let mut line = format!(
        "kompox plan: {} app{} changed, {} disruptive, {} destructive",
        s.apps_changed,
        if s.apps_changed == 1 { "" } else { "s" },
        s.counts.disruptive,
        s.counts.destructive
    );
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    (failed == 0, line)
}
