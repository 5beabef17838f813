//! Connecting to the clusters of the selected Apps and observing them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use kompox::cluster::{self, Connection, Observed};
use kompox::kom::Project;
use kompox::model::ResourceId;

/// One cluster's connection, what it holds, and the Apps planned on it.
pub struct ClusterRun {
    pub cluster_id: ResourceId,
    pub conn: Connection,
    pub observed: Observed,
    pub apps: Vec<ResourceId>,
}

/// The selected Apps grouped by their Cluster.
pub fn apps_by_cluster(
    project: &Project,
    ids: &[ResourceId],
) -> BTreeMap<ResourceId, Vec<ResourceId>> {
    let mut out: BTreeMap<ResourceId, Vec<ResourceId>> = BTreeMap::new();
    for app in &project.kom.apps {
        if !ids.is_empty() && !ids.contains(&app.meta.id) {
            continue;
        }
        if let Some(c) = app.meta.id.parent() {
            out.entry(c).or_default().push(app.meta.id.clone());
        }
    }
    out
}

/// Connects to and observes every cluster of the selected Apps.
pub fn observe(
    rt: &tokio::runtime::Runtime,
    project: &Project,
    root: &Path,
    ids: &[ResourceId],
) -> anyhow::Result<Vec<ClusterRun>> {
    let mut runs = Vec::new();
    for (cluster_id, apps) in apps_by_cluster(project, ids) {
        let name = cluster_id.name().to_string();
        let spec = project
            .kom
            .cluster(&cluster_id)
            .ok_or(cluster::ConnectError::NoKubeconfig {
                cluster: name.clone(),
            })?;
        let driver = kompox::pipeline::driver_of_cluster(project, &cluster_id);
        let conn = rt
            .block_on(kompox::pipeline::connect_cluster(
                spec,
                root,
                driver.as_deref(),
            ))
            .with_context(|| "use --offline to plan without live state, or --live FILE")?;
        let mut observed = rt
            .block_on(cluster::observe(&conn))
            .with_context(|| format!("cannot observe cluster `{name}`"))?;
        rt.block_on(kompox::pipeline::observe_disks(
            project,
            &apps,
            &mut observed.live,
        ))?;
        runs.push(ClusterRun {
            cluster_id,
            conn,
            observed,
            apps,
        });
    }
    Ok(runs)
}
