//! One reconcile pass over the Apps of one cluster (I/O): observe the
//! cluster and the Apps' disks once, then plan and apply App by App.
//!
//! Apps are independent (DECISIONS 14): one App failing to load, plan or
//! apply is recorded for that App and the pass goes on. Pruning follows
//! the planner (DECISIONS 8): nothing is pruned in a pass where anything
//! failed to load. Only one App's desired objects are held at a time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::step::{self, AppState, Due, Outcome, Policy, Reason};
use crate::apply::{self, ApplyOptions, ApplyReport, Event};
use crate::cluster::{self, Connection};
use crate::desired;
use crate::kom::Project;
use crate::model::ResourceId;
use crate::pipeline;
use crate::plan::{AppPlan, AppStatus, Planner};
use crate::source::FileTree;

/// What a pass needs besides the cluster connection.
pub struct PassInput<'a> {
    pub project: &'a Project,
    pub tree: &'a FileTree,
    pub cluster_id: &'a ResourceId,
    pub revision: &'a str,
    /// The loop's state of each App, to pick the Apps that are due.
    pub states: &'a BTreeMap<ResourceId, AppState>,
    /// The loop clock at the start of the pass.
    pub now: Duration,
    pub policy: &'a Policy,
    /// Work on every App regardless of its state (`--once`, a webhook).
    pub force: bool,
    pub apply: ApplyOptions,
    /// Apps applied at the same time (DECISIONS 19: bounded work toward
    /// the API server; each App's own writes stay in order).
    pub concurrency: usize,
}

/// One App's result in a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct AppResult {
    pub app_id: ResourceId,
    pub reason: Reason,
    pub outcome: Outcome,
    /// `create/update/replace/prune` counts of the plan, for the status.
    pub summary: String,
    pub duration: Duration,
}

/// The result of a pass.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub apps: Vec<AppResult>,
    /// App files that failed to load, with their first error.
    pub failed_files: Vec<(String, String)>,
    /// Apps removed from Git whose objects were pruned (or kept, see
    /// `removed_skipped`).
    pub removed: Vec<ResourceId>,
    /// Apps removed from Git that were not pruned because something failed
    /// to load or the workspace policy forbids it.
    pub removed_skipped: Vec<ResourceId>,
    pub writes: usize,
    /// Objects applied and pruned (for the API request metrics).
    pub applied: usize,
    pub pruned: usize,
    /// List requests of the observation.
    pub reads: usize,
    /// Set when the pass could not start (cluster unreachable, …).
    pub error: Option<String>,
}

/// Why a pass could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("cannot observe cluster `{cluster}`: {source}")]
    Observe {
        cluster: String,
        #[source]
        source: cluster::WriteError,
    },
    #[error(transparent)]
    Disks(#[from] pipeline::DiskObserveError),
}

pub(crate) fn first_error(diags: &[crate::diag::Diagnostic]) -> String {
    diags
        .iter()
        .find(|d| d.severity == crate::diag::Severity::Error)
        .or(diags.first())
        .map(|d| match &d.file {
            Some(f) => match d.span {
                Some(s) => format!("{f}:{}: {} [{}]", s.line, d.message, d.rule),
                None => format!("{f}: {} [{}]", d.message, d.rule),
            },
            None => format!("{} [{}]", d.message, d.rule),
        })
        .unwrap_or_else(|| "failed".into())
}

fn summary_of(plan: &AppPlan) -> String {
    let c = plan.counts();
    format!(
        "{} to create, {} to update, {} to replace, {} to prune{}",
        c.create,
        c.update,
        c.replace,
        c.prune,
        if c.destructive > 0 {
            format!(", {} destructive", c.destructive)
        } else {
            String::new()
        }
    )
}

/// Runs one pass. `on_event` hears every write (for logs).
pub async fn run(
    conn: &Connection,
    input: &PassInput<'_>,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<PassReport, PassError> {
    let project = input.project;
    let apps: Vec<ResourceId> = project
        .kom
        .apps
        .iter()
        .filter(|a| a.meta.id.parent().as_ref() == Some(input.cluster_id))
        .map(|a| a.meta.id.clone())
        .collect();
    let mut observed = cluster::observe(conn)
        .await
        .map_err(|source| PassError::Observe {
            cluster: conn.cluster.clone(),
            source,
        })?;
    pipeline::observe_disks(project, &apps, &mut observed.live).await?;
    let disks = pipeline::assigned_disks(project, &observed.live);
    let mut planner = Planner::new(&observed.live, pipeline::plan_options(project, true));
    let mut report = PassReport::default();
    for (path, errs) in desired::failed_files(project) {
        report.failed_files.push((path.clone(), first_error(&errs)));
        planner.add_failed_file(&path, &errs);
    }
    let empty = BTreeMap::new();
    // Phase 1: plan every App of the cluster (prunes and removed Apps need
    // them all), keeping only the plans: each App's objects are dropped
    // as soon as it is planned, and so are the rendered diffs nobody reads
    // here. Converting again in phase 2 costs well under a millisecond
    // per App; holding every App's objects would cost far more memory.
    let mut due: BTreeMap<ResourceId, Reason> = BTreeMap::new();
    for id in &apps {
        let Some(app) = project.kom.app(id) else {
            continue;
        };
        let outcome = desired::build_app(
            &project.kom,
            input.tree,
            app,
            disks.get(id).unwrap_or(&empty),
        );
        for c in &mut planner.add(&outcome).changes {
            c.diff = None;
        }
        let reason = if input.force {
            Reason::Forced
        } else {
            let state = input.states.get(id).cloned().unwrap_or_default();
            match step::due(&state, input.revision, input.now, input.policy) {
                Due::Now(r) => r,
                Due::Later(_) => continue,
            }
        };
        due.insert(id.clone(), reason);
    }
    let plan = planner.finish();

    // Phase 2: gate and apply the Apps that are due.
    let mut total = ApplyReport::default();
    let mut inflight = FuturesUnordered::new();
    for app_plan in plan.apps.iter().filter(|p| due.contains_key(&p.app_id)) {
        let id = &app_plan.app_id;
        let Some(app) = project.kom.app(id) else {
            continue;
        };
        let reason = due[id];
        let started = Instant::now();
        let suspended = app.policy.suspend
            || desired::context(&project.kom, app).is_some_and(|c| c.workspace.policy.suspend);
        let gated = match &app_plan.status {
            AppStatus::Failed(errs) => Some(Outcome::LoadFailed {
                error: first_error(errs),
            }),
            _ if suspended => Some(Outcome::Suspended),
            _ if !app_plan.has_changes() => Some(Outcome::UpToDate),
            _ if app_plan.counts().destructive > 0 && !app.policy.allow_destroy => {
                Some(Outcome::Blocked {
                    reason: format!(
                        "the plan has {} destructive change(s); set spec.policy.allowDestroy in the App's KOM to let the controller apply them, or apply by hand",
                        app_plan.counts().destructive
                    ),
                })
            }
            _ if !conn.writer.may_write() => Some(Outcome::NotLeader),
            _ => None,
        };
        let summary = summary_of(app_plan);
        let done = |outcome: Outcome| AppResult {
            app_id: id.clone(),
            reason,
            summary: summary.clone(),
            outcome,
            duration: started.elapsed(),
        };
        if let Some(o) = gated {
            report.apps.push(done(o));
            continue;
        }
        let outcome = desired::build_app(
            &project.kom,
            input.tree,
            app,
            disks.get(id).unwrap_or(&empty),
        );
        let d = match outcome.result {
            Ok(d) => d,
            Err(errs) => {
                report.apps.push(done(Outcome::LoadFailed {
                    error: first_error(&errs),
                }));
                continue;
            }
        };
        let (conn, observed) = (conn, &observed);
        let id = id.clone();
        inflight.push(async move {
            let mut own = ApplyReport::default();
            let mut events = |e: Event| on_event(e);
            let outcome =
                apply_one(conn, input, observed, &d, app_plan, &mut own, &mut events).await;
            (
                AppResult {
                    app_id: id,
                    reason,
                    summary,
                    outcome,
                    duration: started.elapsed(),
                },
                own,
            )
        });
        if inflight.len() >= input.concurrency.max(1)
            && let Some((r, own)) = inflight.next().await
        {
            total.merge(&own);
            report.apps.push(r);
        }
    }
    while let Some((r, own)) = inflight.next().await {
        total.merge(&own);
        report.apps.push(r);
    }
    drop(inflight);
    report.apps.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    for p in plan
        .apps
        .iter()
        .filter(|p| p.status == AppStatus::Removed && &p.cluster_id == input.cluster_id)
    {
        if !p.has_changes() {
            report.removed_skipped.push(p.app_id.clone());
            continue;
        }
        if !conn.writer.may_write() {
            continue;
        }
        let mut events = |e: Event| on_event(e);
        match apply::apply_removed(conn, p, &input.apply, &mut total, &mut events).await {
            Ok(()) => report.removed.push(p.app_id.clone()),
            Err(e) => report.apps.push(AppResult {
                app_id: p.app_id.clone(),
                reason: Reason::NewRevision,
                outcome: Outcome::Failed {
                    error: e.to_string(),
                },
                summary: summary_of(p),
                duration: Duration::ZERO,
            }),
        }
    }
    report.writes = total.writes;
    report.applied = total.applied;
    report.pruned = total.pruned;
    report.reads = observed.requests;
    Ok(report)
}

/// Disks first, then the objects (DECISIONS 11).
async fn apply_one(
    conn: &Connection,
    input: &PassInput<'_>,
    observed: &cluster::Observed,
    d: &crate::convert::AppDesired,
    plan: &AppPlan,
    total: &mut ApplyReport,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Outcome {
    let replanned;
    let (d, plan) = if d.objects.iter().any(|o| o.pending) {
        match pipeline::disk_phase(input.project, input.tree, observed, d, on_event).await {
            Ok(Some((again, ap))) => {
                replanned = (again, pipeline::with_prunes(&ap, plan));
                (&replanned.0, &replanned.1)
            }
            Ok(None) => (d, plan),
            Err(e) => {
                return Outcome::Failed {
                    error: e.to_string(),
                };
            }
        }
    } else {
        (d, plan)
    };
    match apply::apply_app(conn, d, plan, &observed.live, &input.apply, total, on_event).await {
        Ok(()) => Outcome::Applied {
            changes: plan.counts().changes(),
        },
        Err(apply::ApplyError::Write(cluster::WriteError::NotLeader(_))) => Outcome::NotLeader,
        Err(e) => Outcome::Failed {
            error: e.to_string(),
        },
    }
}
