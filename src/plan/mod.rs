//! Plan stage (pure): desired state × live state → an ordered list of
//! changes, each with exactly one action and a risk class (DECISIONS 10).
//!
//! What it guarantees:
//! - **Deterministic**: the same inputs give the same plan, byte for byte
//!   once rendered (apps sorted by id, changes in a fixed kind order, maps
//!   sorted, diffs computed without deadlines).
//! - **Quiet**: live objects are projected onto the fields we declare (and
//!   the fields `kompoxops` owns), so server defaults and bookkeeping never
//!   show as drift; planning the desired state against itself is empty.
//! - **Conservative pruning** (DECISIONS 8): only objects listed in an
//!   app's inventory, present in live and absent from the desired state are
//!   pruned; never PersistentVolumes, claims, disks, snapshots or a
//!   Namespace holding a claim; nothing at all when an input failed to load
//!   or when too large a share of the apps would be removed.
//! - **Nothing holding data is removed**: this version never plans
//!   `destroy`. Disks of a removed volume or app are kept; planning their
//!   destruction when the App's `policy.allowDestroy` allows it needs the
//!   policy in the desired state (TODO: a later issue).
//! - **Secrets never leak**: Secret values are replaced by a hash before
//!   they are compared or shown.
//!
//! No I/O: the caller passes the desired state, the live state and options.

mod diff;
mod disks;
pub mod normalize;
mod prune;
pub mod scheduling;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde_json::Value as Json;

use crate::convert::{AppDesired, KNOWN_AFTER_APPLY, Object};
use crate::desired::{AppOutcome, Desired};
use crate::diag::Diagnostic;
use crate::live::{Live, LiveIndex, LiveObject, ObjectKey, api_group};
use crate::model::{Kind, ResourceId};
use normalize::Ownership;

/// Options of one planning run.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Names of the loaded workspaces. An inventory whose app is not in
    /// the desired state is planned as a removed app only when its
    /// workspace is listed here; an inventory of another workspace is
    /// never touched. Pass an empty list when planning a subset of the
    /// apps (single-app mode, `--app`): removals cannot be told apart from
    /// apps that were simply not selected.
    pub workspaces: Vec<String>,
    /// When more than this share of the apps would be removed, nothing is
    /// pruned (Workspace `spec.policy.maxPruneShare`, default 0.5).
    pub max_prune_share: f64,
    /// Workspace `spec.policy.allowAppRemoval`. The plan lists a removed
    /// app's prunes either way; this only adds a warning that the
    /// reconciler will not apply them.
    pub allow_app_removal: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            workspaces: Vec::new(),
            max_prune_share: 0.5,
            allow_app_removal: false,
        }
    }
}

/// What a change does (DECISIONS 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Create,
    Update,
    /// Delete and create a stateless object (an immutable field changed).
    Replace,
    /// Remove a stateless object that left the desired state.
    Prune,
    /// Remove something that holds data (never planned in this version).
    Destroy,
    NoOp,
}

impl Action {
    /// The stable name used in JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Prune => "prune",
            Action::Destroy => "destroy",
            Action::NoOp => "no-op",
        }
    }
}

/// How bad a change can be for a running app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Risk {
    Safe,
    /// Restarts or stops the app's single pod.
    Disruptive,
    /// Could lose data; refused without `--allow-destroy`.
    Destructive,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Safe => "safe",
            Risk::Disruptive => "disruptive",
            Risk::Destructive => "destructive",
        }
    }
}

/// What a change acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Object {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    Disk {
        volume: String,
        name: String,
    },
    Snapshot {
        volume: String,
        name: String,
    },
}

impl Target {
    fn of_object(o: &Object) -> Target {
        Target::Object {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
        }
    }

    fn of_live(o: &LiveObject) -> Target {
        Target::Object {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
        }
    }

    /// `Deployment`, `disk`, `snapshot`.
    pub fn kind_label(&self) -> &str {
        match self {
            Target::Object { kind, .. } => kind,
            Target::Disk { .. } => "disk",
            Target::Snapshot { .. } => "snapshot",
        }
    }

    /// `namespace/name`, `name` (cluster-scoped) or `volume/name`.
    pub fn name_label(&self) -> String {
        match self {
            Target::Object {
                namespace: Some(ns),
                name,
                ..
            } => format!("{ns}/{name}"),
            Target::Object { name, .. } => name.clone(),
            Target::Disk { volume, name } | Target::Snapshot { volume, name } => {
                format!("{volume}/{name}")
            }
        }
    }

    fn is_kind(&self, group: &str, kind: &str) -> bool {
        matches!(self, Target::Object { api_version, kind: k, .. } if k == kind && api_group(api_version) == group)
    }

    /// Position in the apply order: disks before the objects that use
    /// them, cluster-wide and configuration objects before workloads,
    /// workloads before what routes traffic to them.
    fn rank(&self) -> u8 {
        match self {
            Target::Disk { .. } | Target::Snapshot { .. } => 0,
            Target::Object { kind, .. } => match kind.as_str() {
                "Namespace" => 1,
                "ServiceAccount" | "Role" | "RoleBinding" | "NetworkPolicy" | "ConfigMap"
                | "Secret" => 2,
                "PersistentVolume" | "PersistentVolumeClaim" => 3,
                "Deployment" | "StatefulSet" | "DaemonSet" => 4,
                "Service" | "Ingress" => 5,
                _ => 6,
            },
        }
    }
}

/// One item of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub target: Target,
    pub action: Action,
    pub risk: Risk,
    /// Why the change is disruptive, replaced or kept (e.g. `pod restarts:
    /// image changed`, `kept: holds a PersistentVolumeClaim`).
    pub reasons: Vec<String>,
    /// Paths of the fields that differ (updates and replaces).
    pub fields: Vec<String>,
    /// Unified diff `live` → `desired` of the normalised YAML (updates and
    /// replaces).
    pub diff: Option<String>,
    /// Facts about the change (e.g. `32 GiB disk, sku: Premium_ZRS`,
    /// `restore from snapshot:x`, `assign`).
    pub details: Vec<String>,
    /// Holds values only known after apply (a new disk's id, the PV/PVC
    /// names derived from it).
    pub known_after_apply: bool,
    /// SHA-256 (first 16 hex digits) of the desired object: a saved plan
    /// is stale when the object to apply changed, even where the action
    /// (e.g. create) did not.
    pub desired_hash: Option<String>,
}

impl Change {
    fn new(target: Target, action: Action, risk: Risk) -> Change {
        Change {
            target,
            action,
            risk,
            reasons: Vec::new(),
            fields: Vec::new(),
            diff: None,
            details: Vec::new(),
            known_after_apply: false,
            desired_hash: None,
        }
    }

    /// A change that does something (not a no-op).
    pub fn is_change(&self) -> bool {
        self.action != Action::NoOp
    }

    /// An update or replace of a workload that restarts its pod.
    pub fn restarts_pod(&self) -> bool {
        matches!(self.action, Action::Update | Action::Replace)
            && self.risk == Risk::Disruptive
            && self.target.is_kind("apps", "Deployment")
    }
}

/// Where an app stands in this plan.
#[derive(Debug, Clone, PartialEq)]
pub enum AppStatus {
    Planned,
    /// The app failed to load, convert or plan; it has no changes.
    Failed(Vec<Diagnostic>),
    /// The app has an inventory in live but is no longer in Git.
    Removed,
}

/// The plan of one app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppPlan {
    pub app_id: ResourceId,
    pub app_name: String,
    pub cluster_id: ResourceId,
    /// Unknown for apps that failed before conversion.
    pub namespace: Option<String>,
    /// Unknown for failed apps and removed apps whose Namespace is gone.
    pub driver: Option<String>,
    pub status: AppStatus,
    /// Every desired object and disk (no-ops included), then prunes.
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
}

impl AppPlan {
    fn new(app_id: &ResourceId, status: AppStatus) -> AppPlan {
        AppPlan {
            app_name: app_id.name().to_string(),
            cluster_id: app_id.parent().unwrap_or_default(),
            app_id: app_id.clone(),
            namespace: None,
            driver: None,
            status,
            changes: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for ch in &self.changes {
            c.add(ch);
        }
        c
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(Change::is_change)
    }

    /// The highest risk of the app's changes (no-ops excluded).
    pub fn max_risk(&self) -> Option<Risk> {
        self.changes
            .iter()
            .filter(|c| c.is_change())
            .map(|c| c.risk)
            .max()
    }

    pub fn cluster_name(&self) -> &str {
        self.cluster_id.name_of(Kind::Cluster).unwrap_or("")
    }
}

/// Counts of changes by action and by risk (risks of no-ops not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub prune: usize,
    pub destroy: usize,
    pub no_op: usize,
    pub safe: usize,
    pub disruptive: usize,
    pub destructive: usize,
    /// Updates/replaces that restart a pod.
    pub pod_restarts: usize,
}

impl Counts {
    fn add(&mut self, ch: &Change) {
        match ch.action {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::Replace => self.replace += 1,
            Action::Prune => self.prune += 1,
            Action::Destroy => self.destroy += 1,
            Action::NoOp => {
                self.no_op += 1;
                return;
            }
        }
        match ch.risk {
            Risk::Safe => self.safe += 1,
            Risk::Disruptive => self.disruptive += 1,
            Risk::Destructive => self.destructive += 1,
        }
        if ch.restarts_pod() {
            self.pod_restarts += 1;
        }
    }

    fn merge(&mut self, o: &Counts) {
        self.create += o.create;
        self.update += o.update;
        self.replace += o.replace;
        self.prune += o.prune;
        self.destroy += o.destroy;
        self.no_op += o.no_op;
        self.safe += o.safe;
        self.disruptive += o.disruptive;
        self.destructive += o.destructive;
        self.pod_restarts += o.pod_restarts;
    }

    /// Changes other than no-ops.
    pub fn changes(&self) -> usize {
        self.create + self.update + self.replace + self.prune + self.destroy
    }
}

/// Totals over the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub counts: Counts,
    pub apps: usize,
    pub apps_changed: usize,
    pub apps_failed: usize,
    pub apps_removed: usize,
}

impl Summary {
    /// Totals over the apps of a plan.
    pub fn of(apps: &[AppPlan]) -> Summary {
        let mut summary = Summary {
            apps: apps.len(),
            ..Summary::default()
        };
        for a in apps {
            summary.counts.merge(&a.counts());
            summary.apps_changed += usize::from(a.has_changes());
            summary.apps_failed += usize::from(matches!(a.status, AppStatus::Failed(_)));
            summary.apps_removed += usize::from(a.status == AppStatus::Removed);
        }
        summary
    }
}

/// An app file that failed to load (repository mode).
#[derive(Debug, Clone, PartialEq)]
pub struct FailedFile {
    pub path: String,
    pub errors: Vec<Diagnostic>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Sorted by app id.
    pub apps: Vec<AppPlan>,
    pub failed_files: Vec<FailedFile>,
    /// Plan-wide notes (e.g. why nothing is pruned).
    pub notes: Vec<String>,
    pub summary: Summary,
}

impl Plan {
    /// Any action other than no-op.
    pub fn has_changes(&self) -> bool {
        self.apps.iter().any(AppPlan::has_changes)
    }

    /// Joins the plans of several clusters (each planned against its own
    /// live state) into one, apps sorted by id, totals recomputed.
    pub fn merge(plans: Vec<Plan>) -> Plan {
        let mut apps = Vec::new();
        let mut failed_files = Vec::new();
        let mut notes = Vec::new();
        for p in plans {
            apps.extend(p.apps);
            for f in p.failed_files {
                if !failed_files.iter().any(|g: &FailedFile| g.path == f.path) {
                    failed_files.push(f);
                }
            }
            for n in p.notes {
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
        }
        apps.sort_by_key(|a| a.app_id.to_string());
        let summary = Summary::of(&apps);
        Plan {
            apps,
            failed_files,
            notes,
            summary,
        }
    }
}

/// Plans the desired state against the live state.
pub fn plan(desired: &Desired, live: &Live, opts: &PlanOptions) -> Plan {
    let mut planner = Planner::new(live, opts.clone());
    for (path, errors) in &desired.failed_files {
        planner.add_failed_file(path, errors);
    }
    for outcome in &desired.apps {
        planner.add(outcome);
    }
    planner.finish()
}

/// What the prune pass needs to know about the desired state: small enough
/// to keep while each App's objects are dropped right after planning it.
#[derive(Debug, Clone, Default)]
pub struct DesiredIndex {
    pub app_ids: BTreeSet<String>,
    pub keys: BTreeSet<ObjectKey>,
    pub failed_files: Vec<(String, Vec<Diagnostic>)>,
    pub failed_apps: Vec<ResourceId>,
}

impl DesiredIndex {
    pub fn any_failed(&self) -> bool {
        !self.failed_files.is_empty() || !self.failed_apps.is_empty()
    }
}

/// Plans App by App, so a caller can convert one App, plan it and drop its
/// objects before the next: peak memory is the live state plus one App,
/// not the live state plus every App's objects.
pub struct Planner<'l> {
    live: &'l Live,
    index: LiveIndex<'l>,
    opts: PlanOptions,
    apps: Vec<AppPlan>,
    seen: DesiredIndex,
}

impl<'l> Planner<'l> {
    pub fn new(live: &'l Live, opts: PlanOptions) -> Planner<'l> {
        Planner {
            live,
            index: LiveIndex::new(live),
            opts,
            apps: Vec::new(),
            seen: DesiredIndex::default(),
        }
    }

    /// An app file that failed to load (repository mode).
    pub fn add_failed_file(&mut self, path: &str, errors: &[Diagnostic]) {
        self.seen
            .failed_files
            .push((path.to_string(), errors.to_vec()));
    }

    /// Plans one App's outcome and returns its plan, so a caller with a
    /// cluster can refine it (server-side dry-run) while it still holds
    /// the App's objects.
    pub fn add(&mut self, outcome: &AppOutcome) -> &mut AppPlan {
        self.seen.app_ids.insert(outcome.app_id.to_string());
        let app = match &outcome.result {
            Ok(app) => {
                self.seen.keys.extend(app.objects.iter().map(ObjectKey::of));
                plan_app(app, self.live, &self.index)
            }
            Err(errors) => {
                self.seen.failed_apps.push(outcome.app_id.clone());
                AppPlan::new(&outcome.app_id, AppStatus::Failed(errors.clone()))
            }
        };
        self.apps.push(app);
        self.apps.last_mut().expect("just pushed")
    }

    /// Plans the prunes (which need every App seen) and totals the plan.
    pub fn finish(self) -> Plan {
        let Planner {
            live,
            index,
            opts,
            mut apps,
            seen,
        } = self;
        let mut notes = Vec::new();
        prune::plan_prunes(&seen, live, &index, &opts, &mut apps, &mut notes);
        for app in &mut apps {
            order(&mut app.changes);
        }
        apps.sort_by_key(|a| a.app_id.to_string());
        let summary = Summary::of(&apps);
        Plan {
            apps,
            failed_files: seen
                .failed_files
                .into_iter()
                .map(|(path, errors)| FailedFile { path, errors })
                .collect(),
            notes,
            summary,
        }
    }
}

/// Apply order within an app; prunes (and the objects kept instead of
/// pruned) last, in reverse order.
fn order(changes: &mut [Change]) {
    let is_removal =
        |c: &Change| c.action == Action::Prune || c.reasons.iter().any(|r| r.starts_with("kept:"));
    changes.sort_by(|a, b| {
        let (ra, rb) = (is_removal(a), is_removal(b));
        ra.cmp(&rb).then_with(|| {
            if ra {
                b.target
                    .rank()
                    .cmp(&a.target.rank())
                    .then_with(|| a.target.kind_label().cmp(b.target.kind_label()))
                    .then_with(|| a.target.name_label().cmp(&b.target.name_label()))
            } else {
                a.target.rank().cmp(&b.target.rank())
            }
        })
    });
}

fn plan_app(app: &AppDesired, live: &Live, index: &LiveIndex) -> AppPlan {
    let mut out = AppPlan::new(&app.app_id, AppStatus::Planned);
    out.cluster_id = app.cluster_id.clone();
    out.namespace = Some(app.namespace.clone());
    out.driver = Some(app.driver.clone());
    match disks::plan_disks(app, live) {
        Ok((changes, warnings)) => {
            out.changes.extend(changes);
            out.warnings.extend(warnings);
        }
        Err(errors) => {
            out.status = AppStatus::Failed(errors);
            out.warnings.clear();
            return out;
        }
    }
    for o in &app.objects {
        out.changes
            .push(plan_object(o, index.get(&ObjectKey::of(o))));
    }
    out
}

/// Create, update, replace or no-op for one desired object.
fn plan_object(o: &Object, live: Option<&LiveObject>) -> Change {
    let mut c = plan_object_change(o, live);
    c.desired_hash = Some(desired_hash(&o.body));
    c
}

fn desired_hash(body: &Json) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(body.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn plan_object_change(o: &Object, live: Option<&LiveObject>) -> Change {
    let target = Target::of_object(o);
    let known_after_apply = o.pending || mentions_known_after_apply(&o.body);
    let Some(l) = live else {
        let mut c = Change::new(target, Action::Create, Risk::Safe);
        c.known_after_apply = known_after_apply;
        return c;
    };
    let n = normalize::pair(o, l);
    if n.desired == n.live {
        // Same content, but made by another field manager (the original
        // Kompox, kubectl): applying takes ownership of our fields without
        // changing or recreating the object (DECISIONS 2).
        if n.ownership == normalize::Ownership::Adoption {
            let mut c = Change::new(target, Action::Update, Risk::Safe);
            c.reasons = vec![
                "adoption: take ownership of the declared fields; the object does not change"
                    .into(),
            ];
            return c;
        }
        return Change::new(target, Action::NoOp, Risk::Safe);
    }
    let fields = diff::changed_paths(&n.live, &n.desired);
    let (action, risk, reasons) = classify(&target, &n, &fields);
    let mut c = Change::new(target, action, risk);
    c.reasons = reasons;
    c.diff = Some(diff::unified(&n.live, &n.desired));
    c.fields = fields;
    c.known_after_apply = known_after_apply;
    c
}

fn mentions_known_after_apply(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains(KNOWN_AFTER_APPLY),
        Json::Array(a) => a.iter().any(mentions_known_after_apply),
        Json::Object(m) => m.values().any(mentions_known_after_apply),
        _ => false,
    }
}

/// Decides the action and risk of a changed object from the changed paths.
fn classify(
    target: &Target,
    n: &normalize::Normalised,
    fields: &[String],
) -> (Action, Risk, Vec<String>) {
    let under = |prefix: &str| -> Option<&String> {
        fields.iter().find(|f| {
            f.as_str() == prefix
                || f.starts_with(&format!("{prefix}."))
                || f.starts_with(&format!("{prefix}["))
        })
    };
    if target.is_kind("apps", "Deployment") {
        if let Some(f) = under("spec.selector") {
            return (
                Action::Replace,
                Risk::Disruptive,
                vec![
                    format!("immutable: {f} changed, the Deployment is deleted and created"),
                    "pod restarts".into(),
                ],
            );
        }
        if let Some(f) = under("spec.template") {
            let mut reasons = Vec::new();
            if n.ownership == Ownership::Adoption {
                reasons.push("adoption".to_string());
            }
            reasons.push(format!("pod restarts: {f}"));
            return (Action::Update, Risk::Disruptive, reasons);
        }
    }
    if target.is_kind("", "PersistentVolume") || target.is_kind("", "PersistentVolumeClaim") {
        let spec: Vec<&String> = fields
            .iter()
            .filter(|f| f.starts_with("spec.") || f.as_str() == "spec")
            .collect();
        if !spec.is_empty() {
            if let Some(reason) = pvc_expansion(target, n, &spec) {
                return (Action::Update, Risk::Safe, vec![reason]);
            }
            return (
                Action::Update,
                Risk::Disruptive,
                vec!["immutable: needs a person".to_string()],
            );
        }
    }
    if target.is_kind("", "Service")
        && let Some(f) = under("spec.clusterIP")
    {
        return (Action::Replace, Risk::Safe, vec![format!("immutable: {f}")]);
    }
    if target.is_kind("rbac.authorization.k8s.io", "RoleBinding")
        && let Some(f) = under("roleRef")
    {
        return (Action::Replace, Risk::Safe, vec![format!("immutable: {f}")]);
    }
    let mut reasons = Vec::new();
    if n.ownership == Ownership::Adoption {
        reasons.push("adoption".to_string());
    }
    (Action::Update, Risk::Safe, reasons)
}

/// A claim whose only spec change is a larger storage request can be
/// expanded in place.
fn pvc_expansion(target: &Target, n: &normalize::Normalised, spec: &[&String]) -> Option<String> {
    const PATH: &str = "spec.resources.requests.storage";
    if !target.is_kind("", "PersistentVolumeClaim") || spec.iter().any(|f| f.as_str() != PATH) {
        return None;
    }
    let get = |v: &Json| {
        v.pointer("/spec/resources/requests/storage")
            .and_then(Json::as_str)
            .map(str::to_string)
    };
    let (from, to) = (get(&n.live)?, get(&n.desired)?);
    let (a, b) = (
        normalize::parse_quantity(&from)?,
        normalize::parse_quantity(&to)?,
    );
    // a.0/a.1 < b.0/b.1, denominators positive.
    (a.0.checked_mul(b.1)? < b.0.checked_mul(a.1)?)
        .then(|| format!("volume expansion: {from} → {to}"))
}
