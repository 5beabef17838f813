//! The reconciler's pull-request mode (DECISIONS 20): a pull-request
//! webhook (opened, synchronize, reopened) makes the controller fetch the
//! pull request's head, plan the Apps of its cluster that the pull
//! request touches against live state, and keep one comment (keyed by the
//! cluster) and a commit status up to date on the forge.
//!
//! Nothing here writes to the cluster: it lists, and sends server-side
//! dry-runs only when the API server allows them.

use std::path::PathBuf;

use crate::cluster;
use crate::forge::{ForgeClient, PrRef, StatusState, SyncReport};
use crate::kom::{self, ProjectEnv};
use crate::pipeline;
use crate::pr::touched_apps;
use crate::report::LiveDescription;
use crate::review::{self, ClusterView};
use crate::source::FileTree;
use crate::webhook::PullRequestEvent;

use super::{Controller, ReconcileError};

/// A pull request's head, checked out beside the followed branch.
#[derive(Debug, Clone)]
pub struct PullCheckout {
    /// The head commit.
    pub revision: String,
    pub dir: PathBuf,
    /// Paths the pull request changes, relative to the repository root.
    pub changed: Vec<String>,
    /// The followed branch's files, to tell which Apps the pull request
    /// removes.
    pub base_dir: Option<PathBuf>,
}

/// What a pull-request review did, for logs and tests.
#[derive(Debug, Clone)]
pub struct PullReport {
    pub pr: PrRef,
    pub revision: String,
    /// Touched Apps of this cluster that were planned.
    pub planned: usize,
    pub status: String,
    pub comments: SyncReport,
}

impl Controller {
    /// Plans a pull request and posts the plan on it. Read-only towards the
    /// cluster; the forge client posts the comment and the status.
    pub async fn review_pull_request(
        &mut self,
        ev: &PullRequestEvent,
        forge: &ForgeClient,
    ) -> Result<PullReport, ReconcileError> {
        let (owner, repo) = ev.repo_full_name.rsplit_once('/').ok_or_else(|| {
            ReconcileError::Cluster(format!(
                "pull request of `{}`: not an owner/name repository",
                ev.repo_full_name
            ))
        })?;
        let pr = PrRef {
            forge: ev.forge,
            owner: owner.to_string(),
            repo: repo.to_string(),
            number: ev.number,
        };
        let (checkout, tree, root) = self.fetch_pull(ev).await?;
        let forge_err = |e: crate::forge::ForgeError| ReconcileError::Cluster(e.to_string());

        let project = match kom::load_project(&tree, &ProjectEnv::default()) {
            Ok(p) => p,
            Err(diags) => {
                let errors: Vec<String> = diags.iter().map(ToString::to_string).collect();
                let parts = review::load_error_comment(&checkout.revision, &errors);
                let status = "kompox plan: the KOM files have errors".to_string();
                let comments = forge
                    .sync_comments(&pr, &self.comment_key(None), &parts)
                    .await
                    .map_err(forge_err)?;
                forge
                    .set_status(
                        &pr,
                        &checkout.revision,
                        StatusState::Failure,
                        &status,
                        &status_context(&self.comment_key(None)),
                    )
                    .await
                    .map_err(forge_err)?;
                return Ok(PullReport {
                    pr,
                    revision: checkout.revision,
                    planned: 0,
                    status,
                    comments,
                });
            }
        };
        let cluster_id = self.cluster_id(&project)?;
        let key = self.comment_key(Some(cluster_id.name()));
        let changed =
            crate::pr::relative_to_project(&checkout.changed, self.settings.path.as_deref());
        let base = checkout.base_dir.as_ref().and_then(|d| {
            let dir = match &self.settings.path {
                Some(p) => d.join(p),
                None => d.clone(),
            };
            let tree = FileTree::read_dir(&dir, &crate::source::TreeLimits::default()).ok()?;
            kom::load_project(&tree, &ProjectEnv::default()).ok()
        });
        let touched = touched_apps(&project, &changed, |p| root.join(p).exists(), base.as_ref());
        let of_cluster = |id: &crate::model::ResourceId| id.parent().as_ref() == Some(&cluster_id);
        let planned = touched.apps.keys().filter(|id| of_cluster(id)).count();
        let removes = touched.removed_unknown || touched.removed.keys().any(&of_cluster);

        let conn = self.ensure_connected(&project, &root).await?;
        let observed = if planned > 0 || removes {
            let mut observed = cluster::observe(&conn)
                .await
                .map_err(|e| ReconcileError::Cluster(e.to_string()))?;
            let apps: Vec<_> = project
                .kom
                .apps
                .iter()
                .map(|a| a.meta.id.clone())
                .filter(of_cluster)
                .collect();
            pipeline::observe_disks(&project, &apps, &mut observed.live)
                .await
                .map_err(|e| ReconcileError::Cluster(e.to_string()))?;
            observed
        } else {
            cluster::Observed::default()
        };
        let views = [ClusterView {
            cluster_id: cluster_id.clone(),
            conn: Some(&conn),
            observed: &observed,
        }];
        let rev = review::plan_touched(&project, &tree, &views, &touched).await;
        let header = review::header(
            &project,
            Some(checkout.revision.clone()),
            LiveDescription::Cluster(conn.cluster.clone()),
        );
        let parts = review::comment(&rev, &header);
        let (ok, status) = review::status_line(&rev.plan);
        let comments = forge
            .sync_comments(&pr, &key, &parts)
            .await
            .map_err(forge_err)?;
        let state = if ok {
            StatusState::Success
        } else {
            StatusState::Failure
        };
        forge
            .set_status(
                &pr,
                &checkout.revision,
                state,
                &status,
                &status_context(&key),
            )
            .await
            .map_err(forge_err)?;
        Ok(PullReport {
            pr,
            revision: checkout.revision,
            planned,
            status,
            comments,
        })
    }

    /// The comment family of this controller: its cluster's name, so that
    /// controllers of different clusters keep separate comments.
    fn comment_key(&self, cluster: Option<&str>) -> String {
        cluster
            .map(str::to_string)
            .or_else(|| {
                self.settings
                    .cluster_id
                    .as_ref()
                    .map(|c| c.name().to_string())
            })
            .unwrap_or_default()
    }

    /// Fetches the pull request on a blocking thread and reads its files.
    async fn fetch_pull(
        &mut self,
        ev: &PullRequestEvent,
    ) -> Result<(PullCheckout, FileTree, PathBuf), ReconcileError> {
        let (forge, number) = (ev.forge, ev.number);
        self.fetch_with(move |s| s.fetch_pull_request(forge, number))
            .await
    }
}

/// The commit status context of a comment family.
pub fn status_context(key: &str) -> String {
    if key.is_empty() {
        "kompox/plan".into()
    } else {
        format!("kompox/plan ({key})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_contexts_name_their_comment_family() {
        assert_eq!(status_context(""), "kompox/plan");
        assert_eq!(status_context("prod"), "kompox/plan (prod)");
    }
}
