//! Apply stage (I/O): carries out one App's part of a plan against its
//! cluster.
//!
//! Order: the Namespace, then the inventory widened to the union of what
//! was applied before and what is applied now (so an object created by a
//! run that crashes halfway is still tracked and can be pruned later), then
//! every create/update/replace in plan order, then prunes, then the
//! inventory narrowed to what is desired. No-op changes make no request, so
//! applying an unchanged plan writes nothing. Re-running after a crash
//! converges: server-side apply is idempotent and deletes of missing
//! objects succeed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::cluster::{self, Connection, WriteError};
use crate::convert::{AppDesired, Object};
use crate::live::{INVENTORY_DATA_KEY, INVENTORY_NAME, Live, ObjectKey, inventory_object};
use crate::plan::{Action, AppPlan, AppStatus, Target};

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Wait for the Deployment to be Available after changing it.
    pub wait: bool,
    pub timeout: Duration,
    /// Attempts for a write that fails with a transient error.
    pub attempts: u32,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            wait: true,
            timeout: Duration::from_secs(300),
            attempts: 4,
        }
    }
}

/// Progress of an apply, for the CLI's display.
#[derive(Debug, Clone)]
pub enum Event {
    Applied {
        what: String,
        action: Action,
    },
    Pruned {
        what: String,
    },
    Waiting {
        what: String,
        elapsed: Duration,
        message: String,
    },
    Ready {
        what: String,
        elapsed: Duration,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "volume `{volume}` has no disk yet: disk creation arrives with the provider driver; create and assign one with `kompoxops disk create --bootstrap`"
    )]
    PendingDisk { volume: String },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{what} is not available after {secs} s: {message}")]
    Timeout {
        what: String,
        secs: u64,
        message: String,
    },
    #[error("{0} is in the plan but not in the desired state; plan again")]
    Missing(String),
    #[error("disk for volume `{volume}`: {source}")]
    Driver {
        volume: String,
        #[source]
        source: crate::provider::driver::DriverError,
    },
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: usize,
    pub pruned: usize,
    /// Every write request made (inventory updates included).
    pub writes: usize,
}

impl ApplyReport {
    /// Adds another apply's figures (Apps applied concurrently).
    pub fn merge(&mut self, other: &ApplyReport) {
        self.applied += other.applied;
        self.pruned += other.pruned;
        self.writes += other.writes;
    }
}

fn key_of_target(t: &Target) -> Option<ObjectKey> {
    match t {
        Target::Object {
            api_version,
            kind,
            namespace,
            name,
        } => Some(ObjectKey::new(
            api_version,
            kind,
            namespace.as_deref(),
            name,
        )),
        _ => None,
    }
}

fn describe(t: &Target) -> String {
    format!("{} {}", t.kind_label(), t.name_label())
}

/// Applies one planned App. `live` is what the plan was computed from (for
/// the current inventory).
pub async fn apply_app(
    conn: &Connection,
    app: &AppDesired,
    plan: &AppPlan,
    live: &Live,
    opts: &ApplyOptions,
    report: &mut ApplyReport,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<(), ApplyError> {
    if !matches!(plan.status, AppStatus::Planned) {
        return Ok(());
    }
    let writes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Create | Action::Update | Action::Replace))
        .filter(|c| key_of_target(&c.target).is_some())
        .collect();
    let prunes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Prune)
        .collect();
    if let Some(p) = app.objects.iter().find(|o| o.pending) {
        let volume = app
            .disks
            .iter()
            .find(|d| d.assigned.is_none() && p.name.contains(&format!("-{}-", d.volume)))
            .map(|d| d.volume.clone())
            .unwrap_or_else(|| p.name.clone());
        return Err(ApplyError::PendingDisk { volume });
    }
    let desired: BTreeMap<ObjectKey, &Object> =
        app.objects.iter().map(|o| (ObjectKey::of(o), o)).collect();
    let old_lines = live_inventory_lines(live, &app.namespace);
    let new_inv = inventory_object(app);
    let new_lines = inventory_lines(&new_inv.body);
    if writes.is_empty() && prunes.is_empty() && old_lines.as_ref() == Some(&new_lines) {
        return Ok(());
    }

    // The Namespace first: the inventory lives in it.
    let ns_key = ObjectKey::new("v1", "Namespace", None, &app.namespace);
    let mut done: BTreeSet<ObjectKey> = BTreeSet::new();
    if let Some(c) = writes
        .iter()
        .find(|c| key_of_target(&c.target).as_ref() == Some(&ns_key))
    {
        let o = desired
            .get(&ns_key)
            .ok_or_else(|| ApplyError::Missing(describe(&c.target)))?;
        retry(opts, || cluster::apply_object(conn, &o.body)).await?;
        report.applied += 1;
        report.writes += 1;
        on_event(Event::Applied {
            what: describe(&c.target),
            action: c.action,
        });
        done.insert(ns_key.clone());
    }
    let union: BTreeSet<String> = old_lines
        .clone()
        .unwrap_or_default()
        .union(&new_lines)
        .cloned()
        .collect();
    if old_lines.as_ref() != Some(&union) {
        let body = with_lines(&new_inv.body, &union);
        retry(opts, || cluster::apply_object(conn, &body)).await?;
        report.writes += 1;
    }

    let mut deployment_changed: Option<(String, String)> = None;
    for c in &writes {
        let key = key_of_target(&c.target).expect("filtered");
        if done.contains(&key) {
            continue;
        }
        let o = desired
            .get(&key)
            .ok_or_else(|| ApplyError::Missing(describe(&c.target)))?;
        if c.action == Action::Replace {
            retry(opts, || {
                cluster::delete_object(
                    conn,
                    &o.api_version,
                    &o.kind,
                    o.namespace.as_deref(),
                    &o.name,
                )
            })
            .await?;
            report.writes += 1;
            // Wait until the old object is gone before creating it again.
            let start = Instant::now();
            loop {
                match cluster::apply_object(conn, &o.body).await {
                    Ok(_) => break,
                    Err(e)
                        if start.elapsed() < opts.timeout
                            && (e.is_transient()
                                || matches!(&e, WriteError::Api { code: 409, .. })
                                || e.is_immutable()) =>
                    {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        } else {
            retry(opts, || cluster::apply_object(conn, &o.body)).await?;
        }
        report.applied += 1;
        report.writes += 1;
        on_event(Event::Applied {
            what: describe(&c.target),
            action: c.action,
        });
        if o.kind == "Deployment" {
            deployment_changed = Some((o.namespace.clone().unwrap_or_default(), o.name.clone()));
        }
    }

    prune(conn, &prunes, opts, report, on_event).await?;
    if union != new_lines {
        retry(opts, || cluster::apply_object(conn, &new_inv.body)).await?;
        report.writes += 1;
    }

    if opts.wait
        && let Some((ns, name)) = deployment_changed
    {
        wait_available(conn, &ns, &name, opts, on_event).await?;
    }
    Ok(())
}

/// Prunes the stateless objects of an App removed from Git, then its
/// inventory; PVs, PVCs and a Namespace holding a PVC are never in the
/// plan's prunes.
pub async fn apply_removed(
    conn: &Connection,
    plan: &AppPlan,
    opts: &ApplyOptions,
    report: &mut ApplyReport,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<(), ApplyError> {
    if plan.status != AppStatus::Removed {
        return Ok(());
    }
    let prunes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Prune)
        .collect();
    if prunes.is_empty() {
        return Ok(());
    }
    prune(conn, &prunes, opts, report, on_event).await?;
    if let Some(ns) = &plan.namespace {
        retry(opts, || {
            cluster::delete_object(conn, "v1", "ConfigMap", Some(ns), INVENTORY_NAME)
        })
        .await?;
        report.writes += 1;
    }
    Ok(())
}

/// Deletes the objects of prune changes, in the given (plan) order.
async fn prune(
    conn: &Connection,
    prunes: &[&crate::plan::Change],
    opts: &ApplyOptions,
    report: &mut ApplyReport,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<(), ApplyError> {
    for c in prunes {
        if let Target::Object {
            api_version,
            kind,
            namespace,
            name,
        } = &c.target
        {
            retry(opts, || {
                cluster::delete_object(conn, api_version, kind, namespace.as_deref(), name)
            })
            .await?;
            report.pruned += 1;
            report.writes += 1;
            on_event(Event::Pruned {
                what: describe(&c.target),
            });
        }
    }
    Ok(())
}

async fn wait_available(
    conn: &Connection,
    ns: &str,
    name: &str,
    opts: &ApplyOptions,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<(), ApplyError> {
    let what = format!("Deployment {ns}/{name}");
    let start = Instant::now();
    loop {
        let (ok, message) = match cluster::deployment_status(conn, ns, name).await {
            Ok(s) => s,
            Err(e) if e.is_transient() => (false, e.to_string()),
            Err(e) => return Err(e.into()),
        };
        if ok {
            on_event(Event::Ready {
                what,
                elapsed: start.elapsed(),
            });
            return Ok(());
        }
        if start.elapsed() >= opts.timeout {
            return Err(ApplyError::Timeout {
                what,
                secs: opts.timeout.as_secs(),
                message,
            });
        }
        on_event(Event::Waiting {
            what: what.clone(),
            elapsed: start.elapsed(),
            message,
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Retries a write on transient errors with exponential backoff.
async fn retry<T, F, Fut>(opts: &ApplyOptions, mut f: F) -> Result<T, WriteError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, WriteError>>,
{
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < opts.attempts => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn inventory_lines(body: &Json) -> BTreeSet<String> {
    body.pointer(&format!("/data/{INVENTORY_DATA_KEY}"))
        .and_then(Json::as_str)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn with_lines(body: &Json, lines: &BTreeSet<String>) -> Json {
    let mut b = body.clone();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    b["data"][INVENTORY_DATA_KEY] = Json::String(text);
    b
}

fn live_inventory_lines(live: &Live, namespace: &str) -> Option<BTreeSet<String>> {
    live.objects
        .iter()
        .find(|o| {
            o.kind == "ConfigMap"
                && o.name == INVENTORY_NAME
                && o.namespace.as_deref() == Some(namespace)
        })
        .map(|o| inventory_lines(&o.body()))
}

/// Asks the API server (server-side dry-run) about every object the plan
/// would update: a rejected immutable field turns the update into a
/// replace (Disruptive) — except for PVs and PVCs, which need a person.
/// Objects planned as no-op or create are not sent, so a no-op plan makes
/// no write-path request.
///
/// Read-only credentials (a pull-request planner) may not patch, so a
/// dry-run answered 403 stops the refinement: the plan stays as computed
/// locally and the outcome says the preview was not possible.
pub async fn refine_with_dry_run(
    conn: &Connection,
    app: &AppDesired,
    plan: &mut AppPlan,
) -> DryRunOutcome {
    use crate::plan::Risk;
    let desired: BTreeMap<ObjectKey, &Object> =
        app.objects.iter().map(|o| (ObjectKey::of(o), o)).collect();
    let mut out = DryRunOutcome::default();
    for c in plan
        .changes
        .iter_mut()
        .filter(|c| c.action == Action::Update)
    {
        let Some(o) = key_of_target(&c.target).and_then(|k| desired.get(&k).copied()) else {
            continue;
        };
        out.requests += 1;
        match cluster::dry_run_apply(conn, &o.body).await {
            Ok(_) => {}
            Err(cluster::WriteError::Api { code: 403, .. }) => {
                out.forbidden = true;
                break;
            }
            Err(e) if e.is_immutable() => {
                if matches!(
                    o.kind.as_str(),
                    "PersistentVolume" | "PersistentVolumeClaim"
                ) {
                    c.risk = Risk::Disruptive;
                    if !c.reasons.iter().any(|r| r.starts_with("immutable")) {
                        c.reasons.push("immutable: needs a person".into());
                    }
                } else {
                    c.action = Action::Replace;
                    c.risk = Risk::Disruptive;
                    c.reasons.push(format!("immutable field rejected by the API server, so the object is deleted and created: {e}"));
                }
            }
            Err(e) => plan.warnings.push(format!(
                "server-side dry-run of {} failed: {e}",
                describe(&c.target)
            )),
        }
    }
    out
}

/// What [`refine_with_dry_run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DryRunOutcome {
    /// Dry-run requests sent.
    pub requests: usize,
    /// The API server refused a dry-run (403): the credentials may not
    /// patch, so field-level checks were skipped.
    pub forbidden: bool,
}

/// The disk phase of an apply (DECISIONS 11): for every volume without an
/// assigned disk, create the disk under its deterministic name (or find the
/// one a crashed run created) and assign it. Returns the bound disks of
/// every volume, for converting the App again with real PV/PVC names.
///
/// `nodes` are the nodes the App may run on, in order: a driver that
/// places disks on nodes (K3s) gets the first one it knows; a zonal
/// driver gets the App's zone.
pub async fn ensure_disks(
    driver: &dyn crate::provider::driver::Driver,
    scope: &crate::provider::driver::DiskScope,
    app: &AppDesired,
    nodes: &[String],
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<BTreeMap<String, crate::convert::BoundDisk>, ApplyError> {
    use crate::convert::BoundDisk;
    use crate::provider::driver::{CreateDisk, DriverError, Placement, Source, SourceKind};
    let mut bound = BTreeMap::new();
    for intent in &app.disks {
        let volume = intent.volume.clone();
        let err = |source: DriverError| ApplyError::Driver {
            volume: volume.clone(),
            source,
        };
        if let Some(d) = &intent.assigned {
            bound.insert(volume.clone(), d.clone());
            continue;
        }
        let existing = driver.list_disks(scope).await.map_err(err)?;
        let disk = match existing
            .iter()
            .find(|d| d.volume == volume && d.name == intent.planned_name)
        {
            Some(d) => d.clone(),
            None => {
                let source = intent
                    .source
                    .as_deref()
                    .map(|s| Source::parse(s, SourceKind::Snapshot))
                    .transpose()
                    .map_err(err)?;
                let mut placements: Vec<Placement> = if driver.places_on_nodes() {
                    nodes.iter().cloned().map(Placement::Node).collect()
                } else {
                    Vec::new()
                };
                if placements.is_empty() {
                    placements.push(match intent.zones.as_slice() {
                        [z] => Placement::Zonal(z.clone()),
                        [] => Placement::Any,
                        zs => Placement::Regional(zs.to_vec()),
                    });
                }
                let mut created = None;
                let mut last = None;
                for placement in placements {
                    let req = CreateDisk {
                        name: intent.planned_name.clone(),
                        size_bytes: intent.size_bytes,
                        placement,
                        source: source.clone(),
                        options: intent.options.clone(),
                    };
                    match driver.create_disk(scope, &volume, req).await {
                        Ok(d) => {
                            created = Some(d);
                            break;
                        }
                        // A node this driver does not serve: try the next.
                        Err(e @ DriverError::InvalidInput(_)) if !nodes.is_empty() => {
                            last = Some(e)
                        }
                        Err(e) => return Err(err(e)),
                    }
                }
                let d = match created {
                    Some(d) => d,
                    None => {
                        return Err(err(last.unwrap_or_else(|| {
                            DriverError::NotSupported("no placement".into())
                        })));
                    }
                };
                on_event(Event::Applied {
                    what: format!("disk {volume}/{}", d.name),
                    action: Action::Create,
                });
                d
            }
        };
        driver
            .assign_disk(scope, &volume, &disk.name)
            .await
            .map_err(err)?;
        bound.insert(
            volume.clone(),
            BoundDisk {
                name: disk.name.clone(),
                handle: disk.handle.clone(),
                size_bytes: disk.size_bytes,
                zone: disk.zone.clone(),
            },
        );
    }
    Ok(bound)
}

/// What [`with_deployment_stopped`] reports while it works.
#[derive(Debug, Clone)]
pub enum StopEvent {
    /// The Deployment was scaled from `from` to `to` replicas.
    Scaled { what: String, from: i32, to: i32 },
    /// Pods of the Deployment still exist.
    Waiting {
        what: String,
        elapsed: Duration,
        pods: usize,
    },
    /// No pod of the Deployment is left: nothing writes to its disks.
    Stopped { what: String, elapsed: Duration },
    /// There is no such Deployment (the app is not deployed): nothing runs.
    Absent { what: String },
}

/// The outcome of work done while an app was stopped.
#[derive(Debug)]
pub struct StoppedRun<T, E> {
    /// The work's own result.
    pub result: Result<T, E>,
    /// Whether the replica count was put back. When this fails the app
    /// stays stopped; `kompoxops apply` restores it from Git.
    pub restored: Result<(), ApplyError>,
    /// The replica count before stopping (`None`: no Deployment).
    pub replicas: Option<i32>,
}

/// Runs `work` while the Deployment `namespace/name` is scaled to zero and
/// its pods are gone, then puts the replica count back, also when `work`
/// fails (the reason a consistent snapshot stops the app is the app, so
/// it must come back whatever happened to the snapshot).
///
/// `Err` means the app could not be stopped within `timeout`; the replica
/// count has then been put back (best effort) and `work` did not run.
/// A crash between scaling down and back leaves the Deployment at zero
/// replicas: the next `kompoxops apply` sees the drift and restores the
/// count from Git.
pub async fn with_deployment_stopped<T, E, F, Fut>(
    conn: &Connection,
    namespace: &str,
    name: &str,
    timeout: Duration,
    on_event: &mut (dyn FnMut(StopEvent) + Send),
    work: F,
) -> Result<StoppedRun<T, E>, ApplyError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let what = format!("Deployment {namespace}/{name}");
    let opts = ApplyOptions::default();
    let Some(replicas) = retry(&opts, || {
        cluster::deployment_replicas(conn, namespace, name)
    })
    .await?
    else {
        on_event(StopEvent::Absent { what });
        return Ok(StoppedRun {
            result: work().await,
            restored: Ok(()),
            replicas: None,
        });
    };
    let restore = || async {
        if replicas == 0 {
            return Ok(());
        }
        retry(&opts, || {
            cluster::scale_deployment(conn, namespace, name, replicas)
        })
        .await
        .map_err(ApplyError::from)
    };
    if replicas != 0 {
        retry(&opts, || {
            cluster::scale_deployment(conn, namespace, name, 0)
        })
        .await?;
        on_event(StopEvent::Scaled {
            what: what.clone(),
            from: replicas,
            to: 0,
        });
    }
    let start = Instant::now();
    loop {
        let pods = match cluster::deployment_pods(conn, namespace, name).await {
            Ok(p) => p,
            Err(e) if e.is_transient() => vec![format!("(unknown: {e})")],
            Err(e) => {
                let _ = restore().await;
                return Err(e.into());
            }
        };
        if pods.is_empty() {
            on_event(StopEvent::Stopped {
                what: what.clone(),
                elapsed: start.elapsed(),
            });
            break;
        }
        if start.elapsed() >= timeout {
            let restored = restore().await;
            return Err(ApplyError::Timeout {
                what: format!("{what} stopping"),
                secs: timeout.as_secs(),
                message: format!(
                    "pods still running: {}{}",
                    pods.join(", "),
                    if restored.is_ok() {
                        "; the replica count was put back"
                    } else {
                        "; putting the replica count back failed too: run `kompoxops apply`"
                    }
                ),
            });
        }
        on_event(StopEvent::Waiting {
            what: what.clone(),
            elapsed: start.elapsed(),
            pods: pods.len(),
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = work().await;
    let restored = restore().await;
    if restored.is_ok() && replicas != 0 {
        on_event(StopEvent::Scaled {
            what,
            from: 0,
            to: replicas,
        });
    }
    Ok(StoppedRun {
        result,
        restored,
        replicas: Some(replicas),
    })
}
