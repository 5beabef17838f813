//! The steps shared by `kompoxops plan/apply` and the reconciler for one
//! cluster: reading the Apps' disks through their drivers, choosing the
//! plan options from the workspace policy, and the disk phase of an apply.
//!
//! Driver calls are I/O; `assigned_disks` and `plan_options` are pure.
//! Keeping these here (not in the CLI) means the controller and the CLI
//! plan and apply exactly the same way.

use std::collections::BTreeMap;

use crate::apply::{self, ApplyError, Event};
use crate::cluster::Observed;
use crate::convert::{AppDesired, BoundDisk};
use crate::desired::{self, AssignedDisks};
use crate::hash::AppHashes;
use crate::kom::Project;
use crate::live::Live;
use crate::model::ResourceId;
use crate::plan::{AppPlan, PlanOptions, Planner};
use crate::provider::driver::{DiskScope, DriverError, driver_for};
use crate::source::FileTree;

/// Why the disks of an App could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum DiskObserveError {
    #[error("provider `{provider}`: {source}")]
    Driver {
        provider: String,
        #[source]
        source: DriverError,
    },
    #[error("disks of {app}: {source}")]
    Observe {
        app: ResourceId,
        #[source]
        source: DriverError,
    },
}

/// Why a cluster could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClusterAccessError {
    #[error(transparent)]
    Connect(#[from] crate::cluster::ConnectError),
    #[error("cluster `{cluster}`: credentials from the `{driver}` driver: {source}")]
    Driver {
        cluster: String,
        driver: String,
        #[source]
        source: DriverError,
    },
}

/// Connects to a Cluster from outside it (DECISIONS 15): its
/// `spec.kubeconfig` path (relative to the project root) when set, else
/// the credentials its driver hands out (EKS: a signed token; K3s: the
/// `K3S_KUBECONFIG` file), else `KUBECONFIG`, else `~/.kube/config`.
/// A driver that has no way to obtain credentials (`NotSupported`) falls
/// through to the environment.
pub async fn connect_cluster(
    spec: &crate::model::Cluster,
    root: &std::path::Path,
    driver: Option<&dyn crate::provider::driver::Driver>,
) -> Result<crate::cluster::Connection, ClusterAccessError> {
    use crate::cluster::{self, ConnectError};
    let name = spec.meta.name.clone();
    let kubeconfig = spec.kubeconfig.clone();
    let context = kubeconfig.as_ref().and_then(|k| k.context.clone());
    if let Some(p) = kubeconfig.as_ref().and_then(|k| k.path.clone()) {
        let path = root.join(p).to_string_lossy().into_owned();
        return Ok(cluster::connect(&name, &path, context.as_deref()).await?);
    }
    if let Some(driver) = driver {
        match driver.cluster_kubeconfig(spec).await {
            Ok(yaml) => {
                let what = format!("kubeconfig from the `{}` driver", driver.id());
                return Ok(cluster::connect_yaml(&name, &what, &yaml, context.as_deref()).await?);
            }
            Err(DriverError::NotSupported(_)) => {}
            Err(source) => {
                return Err(ClusterAccessError::Driver {
                    cluster: name,
                    driver: driver.id().to_string(),
                    source,
                });
            }
        }
    }
    let env = std::env::var("KUBECONFIG").ok();
    let path = match env
        .as_deref()
        .and_then(|v| v.split(':').find(|s| !s.is_empty()))
    {
        Some(first) => first.to_string(),
        None => {
            let home = std::env::var("HOME").map(std::path::PathBuf::from);
            match home.map(|h| h.join(".kube/config")) {
                Ok(p) if p.exists() => p.to_string_lossy().into_owned(),
                _ => return Err(ConnectError::NoKubeconfig { cluster: name }.into()),
            }
        }
    };
    Ok(cluster::connect(&name, &path, context.as_deref()).await?)
}

/// The driver of a Cluster's Provider, when one can be built; when it
/// cannot (a driver not built yet, incomplete settings), cluster access
/// goes on without the driver's credentials (logged at debug level).
pub fn driver_of_cluster(
    project: &Project,
    cluster_id: &ResourceId,
) -> Option<Box<dyn crate::provider::driver::Driver>> {
    let provider = project.kom.provider(&cluster_id.parent()?)?;
    match driver_for(&provider.driver, &provider.settings) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::debug!(
                cluster = %cluster_id,
                error = %e,
                "no driver credentials for the cluster: the driver cannot be built"
            );
            None
        }
    }
}

/// Plan options from the workspace policy. Removed Apps are only detected
/// when every App of the project is planned.
pub fn plan_options(project: &Project, all_apps: bool) -> PlanOptions {
    let ws = &project.kom.workspaces;
    PlanOptions {
        workspaces: if all_apps {
            ws.iter().map(|w| w.meta.name.clone()).collect()
        } else {
            Vec::new()
        },
        max_prune_share: ws
            .iter()
            .map(|w| w.policy.max_prune_share)
            .fold(PlanOptions::default().max_prune_share, f64::min),
        allow_app_removal: !ws.is_empty() && ws.iter().all(|w| w.policy.allow_app_removal),
    }
}

/// The assigned disk of each App volume, from the live disks (keyed by the
/// cluster-independent app id hash).
pub fn assigned_disks(project: &Project, live: &Live) -> AssignedDisks {
    let mut out = AssignedDisks::new();
    for app in &project.kom.apps {
        let Some(ctx) = desired::context(&project.kom, app) else {
            continue;
        };
        let h = AppHashes::new(
            &ctx.workspace.meta.name,
            &ctx.provider.meta.name,
            &ctx.cluster.meta.name,
            &app.meta.name,
        );
        let vols: BTreeMap<String, BoundDisk> = live
            .disks
            .iter()
            .filter(|d| d.assigned && d.app_id_hash == h.app_id)
            .map(|d| {
                (
                    d.volume.clone(),
                    BoundDisk {
                        name: d.name.clone(),
                        handle: d.handle.clone(),
                        size_bytes: d.size,
                        zone: d.zone.clone(),
                    },
                )
            })
            .collect();
        if !vols.is_empty() {
            out.insert(app.meta.id.clone(), vols);
        }
    }
    out
}

/// Adds the disks and snapshots of the Apps (from their Provider's driver)
/// to the live state. A driver that is not available yet leaves the disks
/// unknown: the plan then shows them to create, and apply says why it
/// cannot.
pub async fn observe_disks(
    project: &Project,
    apps: &[ResourceId],
    live: &mut Live,
) -> Result<(), DiskObserveError> {
    for id in apps {
        let Some(app) = project.kom.app(id) else {
            continue;
        };
        if app.volumes.is_empty() {
            continue;
        }
        let Some(ctx) = desired::context(&project.kom, app) else {
            continue;
        };
        let driver = match driver_for(&ctx.provider.driver, &ctx.provider.settings) {
            Ok(d) => d,
            Err(DriverError::NotSupported(_)) => continue,
            Err(source) => {
                return Err(DiskObserveError::Driver {
                    provider: ctx.provider.meta.name.clone(),
                    source,
                });
            }
        };
        let names = crate::convert::Names::new(&ctx);
        let scope = DiskScope::from_hashes(&names.hashes, &app.meta.name);
        let (disks, snapshots) =
            driver
                .observe(&scope)
                .await
                .map_err(|source| DiskObserveError::Observe {
                    app: id.clone(),
                    source,
                })?;
        live.disks.extend(disks.iter().map(|d| d.to_live()));
        live.snapshots.extend(snapshots.iter().map(|s| s.to_live()));
    }
    Ok(())
}

/// The disk phase of an apply (DECISIONS 11): creates and assigns the
/// missing disks of an App through its Provider's driver, then converts
/// and plans the App again with them bound, so its PV/PVC names are real.
/// `None` when the App has nothing to bind or no longer converts.
pub async fn disk_phase(
    project: &Project,
    tree: &FileTree,
    observed: &Observed,
    d: &AppDesired,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<Option<(AppDesired, AppPlan)>, ApplyError> {
    let Some(app) = project.kom.app(&d.app_id) else {
        return Ok(None);
    };
    let Some(ctx) = desired::context(&project.kom, app) else {
        return Ok(None);
    };
    let volume = d
        .disks
        .first()
        .map(|i| i.volume.clone())
        .unwrap_or_default();
    let driver = driver_for(&ctx.provider.driver, &ctx.provider.settings)
        .map_err(|source| ApplyError::Driver { volume, source })?;
    let scope = DiskScope::from_hashes(&d.hashes, &app.meta.name);
    let nodes = crate::plan::scheduling::fitting_nodes(d, &observed.nodes);
    let bound = apply::ensure_disks(driver.as_ref(), &scope, d, &nodes, on_event).await?;
    let outcome = desired::build_app(&project.kom, tree, app, &bound);
    let Ok(again) = outcome.result.clone() else {
        return Ok(None);
    };
    let mut planner = Planner::new(&observed.live, PlanOptions::default());
    let plan = planner.add(&outcome).clone();
    Ok(Some((again, plan)))
}

/// The App plan to apply after a disk phase: the replanned objects plus
/// the prunes of the original plan (a replan of one App knows no prunes).
pub fn with_prunes(replanned: &AppPlan, original: &AppPlan) -> AppPlan {
    let mut out = replanned.clone();
    out.changes.extend(
        original
            .changes
            .iter()
            .filter(|c| c.action == crate::plan::Action::Prune)
            .cloned(),
    );
    out
}
