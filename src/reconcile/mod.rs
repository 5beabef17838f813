//! The GitOps reconciler (I/O at the edges, decisions pure): fetch a
//! revision → load → convert → observe → plan → apply, App by App, for
//! the one cluster this controller runs for.
//!
//! [`Controller::iterate`] is one iteration; it returns what to do next
//! as a value ([`Iteration::next`]), so the caller owns the timers and the
//! triggers (poll interval, webhooks, `--once`) and tests need neither.
//! The rules (which Apps are due, backoff, drift checks) live in [`step`].

pub mod pass;
pub mod pull;
pub mod status;
pub mod step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::apply::{ApplyOptions, Event};
use crate::cluster::{self, Connection};
use crate::kom::{self, Project, ProjectEnv};
use crate::lease::WriteGuard;
use crate::model::ResourceId;
use crate::source::{FileTree, TreeLimits};
use pass::{PassInput, PassReport};
use step::{AppState, Policy};

/// Where revisions come from. Blocking: the controller calls it on a
/// blocking thread.
pub trait RevisionSource: Send {
    /// Brings the source up to date; returns the revision id and the
    /// directory holding that revision's files.
    fn fetch(&mut self) -> Result<(String, PathBuf), String>;
    /// Says where revisions come from, for logs (never with credentials).
    fn describe(&self) -> String;
    /// Fetches a pull request's head beside the followed branch: its
    /// revision, its directory, and the paths it changes since its merge
    /// base with the followed branch. Sources without pull requests (a
    /// local directory) say so.
    fn fetch_pull_request(
        &mut self,
        forge: crate::webhook::Forge,
        number: u64,
    ) -> Result<pull::PullCheckout, String> {
        let _ = (forge, number);
        Err(format!("{} has no pull requests", self.describe()))
    }
}

/// A local directory (development). Its revision is a digest of its
/// files, so an unchanged directory is not a new revision.
pub struct DirSource {
    pub dir: PathBuf,
}

impl RevisionSource for DirSource {
    fn fetch(&mut self) -> Result<(String, PathBuf), String> {
        let tree = FileTree::read_dir(&self.dir, &TreeLimits::default())
            .map_err(|e| format!("cannot read `{}`: {e}", self.dir.display()))?;
        Ok((format!("dir:{}", tree_digest(&tree)), self.dir.clone()))
    }

    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }
}

impl RevisionSource for crate::source::git::GitSource {
    fn fetch(&mut self) -> Result<(String, PathBuf), String> {
        let rev = self.sync().map_err(|e| e.to_string())?;
        Ok((rev.commit, rev.dir))
    }

    fn fetch_pull_request(
        &mut self,
        forge: crate::webhook::Forge,
        number: u64,
    ) -> Result<pull::PullCheckout, String> {
        use crate::webhook::Forge;
        let base = self.sync().map_err(|e| e.to_string())?;
        let refspec = match forge {
            Forge::GitHub | Forge::Gitea => format!("refs/pull/{number}/head"),
            Forge::GitLab => format!("refs/merge-requests/{number}/head"),
        };
        let head = self
            .checkout_ref(&refspec, &format!("pr-{number}"))
            .map_err(|e| e.to_string())?;
        let changed = self
            .changed_paths(&base.commit, &head.commit)
            .map_err(|e| e.to_string())?;
        Ok(pull::PullCheckout {
            revision: head.commit,
            dir: head.dir,
            base_dir: Some(base.dir),
            changed: changed
                .iter()
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .collect(),
        })
    }

    fn describe(&self) -> String {
        let s = self.spec();
        format!(
            "{} (branch {})",
            crate::source::git::redact_url(&s.url),
            s.branch
        )
    }
}

/// A digest of every file's path and bytes (12 hex digits).
pub fn tree_digest(tree: &FileTree) -> String {
    let mut h = Sha256::new();
    let mut paths: Vec<&str> = tree.list_under("").collect();
    paths.sort_unstable();
    for p in paths {
        if let Ok(bytes) = tree.read(p) {
            h.update(p.as_bytes());
            h.update([0]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
    }
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The controller's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Cluster this controller reconciles; `None`: the project's only
    /// Cluster.
    pub cluster_id: Option<ResourceId>,
    /// The project directory inside the source (`--path`).
    pub path: Option<String>,
    pub policy: Policy,
    pub apply: ApplyOptions,
    /// Namespace of the status ConfigMap and Events; `None`: no status.
    pub status_namespace: Option<String>,
    /// This process's identity in Events.
    pub identity: String,
    /// Apps applied at the same time.
    pub concurrency: usize,
    /// Write requests per second toward the API server (0: unbounded).
    pub write_rate: f64,
    /// A kubeconfig that replaces the Cluster's own access settings
    /// (`--kubeconfig`; in a pod the ServiceAccount is used instead).
    pub kubeconfig: Option<PathBuf>,
}

/// Why an iteration failed as a whole (one App failing is not this).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("fetching {source_desc}: {message}")]
    Fetch {
        source_desc: String,
        message: String,
    },
    #[error("the shared KOM files have errors; nothing was applied: {0}")]
    Load(String),
    #[error("{0}")]
    Cluster(String),
    #[error(transparent)]
    Connect(#[from] cluster::ConnectError),
    #[error(transparent)]
    Pass(#[from] pass::PassError),
}

/// What an iteration did and when to run the next one.
#[derive(Debug, Clone)]
pub struct Iteration {
    pub revision: String,
    pub report: PassReport,
    /// Delay until the next iteration (poll, retry or drift check).
    pub next: Duration,
}

/// The reconciler for one cluster.
pub struct Controller {
    source: Box<dyn RevisionSource>,
    settings: Settings,
    states: BTreeMap<ResourceId, AppState>,
    conn: Option<Connection>,
    writer: WriteGuard,
    revision: Option<String>,
    last_poll: Duration,
    /// Consecutive failed iterations, for the backoff of the whole loop.
    failures: u32,
}

impl Controller {
    pub fn new(source: Box<dyn RevisionSource>, settings: Settings) -> Controller {
        Controller {
            source,
            settings,
            states: BTreeMap::new(),
            conn: None,
            writer: WriteGuard::always(),
            revision: None,
            last_poll: Duration::ZERO,
            failures: 0,
        }
    }

    /// Only the holder of this guard's Lease writes (DECISIONS 16).
    pub fn set_writer(&mut self, writer: WriteGuard) {
        if let Some(c) = &mut self.conn {
            c.writer = writer.clone();
        }
        self.writer = writer;
    }

    /// The connection, once the first iteration made it.
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }

    pub fn states(&self) -> &BTreeMap<ResourceId, AppState> {
        &self.states
    }

    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }

    /// Fetches and loads the current revision (blocking I/O on a blocking
    /// thread) and connects to the cluster on first use.
    pub async fn prepare(
        &mut self,
    ) -> Result<(String, FileTree, Project, PathBuf), ReconcileError> {
        let ((revision, _), tree, root) = self.fetch_with(|s| s.fetch()).await?;
        let project = kom::load_project(&tree, &ProjectEnv::default())
            .map_err(|diags| ReconcileError::Load(pass::first_error(&diags)))?;
        self.ensure_connected(&project, &root).await?;
        Ok((revision, tree, project, root))
    }

    /// Runs `fetch` on the source on a blocking thread (the source moves
    /// there and back) and reads the project's files from the directory it
    /// returns (`--path` applied).
    async fn fetch_with<T: HasDir + Send + 'static>(
        &mut self,
        fetch: impl FnOnce(&mut dyn RevisionSource) -> Result<T, String> + Send + 'static,
    ) -> Result<(T, FileTree, PathBuf), ReconcileError> {
        let desc = self.source.describe();
        let mut source = std::mem::replace(&mut self.source, Box::new(NoSource));
        let sub = self.settings.path.clone();
        let (source, fetched) = tokio::task::spawn_blocking(move || {
            let r = fetch(source.as_mut()).and_then(|t| {
                let root = match &sub {
                    Some(p) => t.dir().join(p),
                    None => t.dir().to_path_buf(),
                };
                let tree = FileTree::read_dir(&root, &TreeLimits::default())
                    .map_err(|e| format!("cannot read `{}`: {e}", root.display()))?;
                Ok((t, tree, root))
            });
            (source, r)
        })
        .await
        .map_err(|e| ReconcileError::Fetch {
            source_desc: desc.clone(),
            message: e.to_string(),
        })?;
        self.source = source;
        fetched.map_err(|message| ReconcileError::Fetch {
            source_desc: desc,
            message,
        })
    }

    /// Connects to the cluster on first use.
    async fn ensure_connected(
        &mut self,
        project: &Project,
        root: &Path,
    ) -> Result<Connection, ReconcileError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let cluster_id = self.cluster_id(project)?;
        let mut conn = match &self.settings.kubeconfig {
            Some(k) => cluster::connect(cluster_id.name(), &k.to_string_lossy(), None).await?,
            None => connect_cluster(project, root, &cluster_id).await?,
        };
        conn.writer = self.writer.clone();
        conn.rate = cluster::WriteRate::new(
            self.settings.write_rate,
            (self.settings.write_rate / 2.0).ceil() as u32,
        );
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    fn cluster_id(&self, project: &Project) -> Result<ResourceId, ReconcileError> {
        let clusters: Vec<ResourceId> = project
            .kom
            .clusters
            .iter()
            .map(|c| c.meta.id.clone())
            .collect();
        match &self.settings.cluster_id {
            Some(id) if clusters.contains(id) => Ok(id.clone()),
            Some(id) => Err(ReconcileError::Cluster(format!(
                "--cluster-id {id} is not a Cluster of the project (it has: {})",
                join(&clusters)
            ))),
            None if clusters.len() == 1 => Ok(clusters[0].clone()),
            None => Err(ReconcileError::Cluster(format!(
                "the project has {} Clusters ({}); pass --cluster-id",
                clusters.len(),
                join(&clusters)
            ))),
        }
    }

    /// One iteration at loop time `now`. `force` works on every App
    /// (webhook, `--once`); otherwise only the Apps that are due.
    pub async fn iterate(
        &mut self,
        now: Duration,
        force: bool,
        random: f64,
        on_event: &(dyn Fn(Event) + Sync),
    ) -> Result<Iteration, ReconcileError> {
        self.last_poll = now;
        let prepared = self.prepare().await;
        let (revision, tree, project, _root) = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.failures += 1;
                return Err(e);
            }
        };
        let conn = self.conn.clone().expect("prepare connects");
        let cluster_id = self.cluster_id(&project)?;
        let input = PassInput {
            project: &project,
            tree: &tree,
            cluster_id: &cluster_id,
            revision: &revision,
            states: &self.states,
            now,
            policy: &self.settings.policy,
            force,
            apply: self.settings.apply.clone(),
            concurrency: self.settings.concurrency,
        };
        let report = match pass::run(&conn, &input, on_event).await {
            Ok(r) => r,
            Err(e) => {
                self.failures += 1;
                return Err(e.into());
            }
        };
        self.failures = 0;
        for r in &report.apps {
            let old = self.states.get(&r.app_id).cloned().unwrap_or_default();
            let new = step::record(
                &old,
                &revision,
                r.outcome.clone(),
                now,
                &self.settings.policy,
            );
            self.states.insert(r.app_id.clone(), new);
        }
        // Apps gone from the project are forgotten.
        self.states
            .retain(|id, _| project.kom.apps.iter().any(|a| &a.meta.id == id));
        if let Some(ns) = &self.settings.status_namespace {
            self.write_status(&conn, ns, &report, &revision).await;
        }
        self.revision = Some(revision.clone());
        let next = step::next_wake(
            &self.states,
            Some(&revision),
            now,
            now,
            &self.settings.policy,
            random,
        );
        Ok(Iteration {
            revision,
            report,
            next,
        })
    }

    /// Delay before retrying after a failed iteration: exponential, capped
    /// at the poll interval.
    pub fn retry_after_failure(&self) -> Duration {
        step::backoff(self.failures.max(1), &self.settings.policy)
            .min(self.settings.policy.interval)
    }

    async fn write_status(&self, conn: &Connection, ns: &str, report: &PassReport, revision: &str) {
        let mut records = Vec::new();
        for r in &report.apps {
            if r.outcome == step::Outcome::NotLeader {
                continue;
            }
            let state = self.states.get(&r.app_id);
            let rec = status::record_of(
                r,
                revision,
                state.and_then(|s| s.applied_revision.as_deref()),
            );
            // An Event when something happened or went wrong; a drift
            // check that found nothing stays quiet.
            if !matches!(
                r.outcome,
                step::Outcome::UpToDate | step::Outcome::Suspended
            ) && let Err(e) = status::event(conn, ns, &rec, &self.settings.identity).await
            {
                tracing::warn!(error = %e, "cannot record an event");
            }
            records.push(rec);
        }
        if let Err(e) = status::write(conn, ns, &records).await {
            tracing::warn!(error = %e, "cannot write the status");
        }
    }
}

fn join(ids: &[ResourceId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a fetch returns: somewhere holding a revision's files.
trait HasDir {
    fn dir(&self) -> &Path;
}

impl HasDir for (String, PathBuf) {
    fn dir(&self) -> &Path {
        &self.1
    }
}

impl HasDir for pull::PullCheckout {
    fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Placeholder while the real source is on a blocking thread.
struct NoSource;

impl RevisionSource for NoSource {
    fn fetch(&mut self) -> Result<(String, PathBuf), String> {
        Err("source in use".into())
    }
    fn describe(&self) -> String {
        "no source".into()
    }
}

/// Connects to a Cluster (DECISIONS 15): its `spec.kubeconfig` when set
/// (relative to the project root), else the environment: the in-cluster
/// ServiceAccount, or `KUBECONFIG` / `~/.kube/config`.
pub async fn connect_cluster(
    project: &Project,
    root: &Path,
    cluster_id: &ResourceId,
) -> Result<Connection, ReconcileError> {
    let name = cluster_id.name().to_string();
    let spec = project
        .kom
        .cluster(cluster_id)
        .and_then(|c| c.kubeconfig.clone());
    match spec.as_ref().and_then(|k| k.path.clone()) {
        Some(p) => {
            let path = root.join(p).to_string_lossy().into_owned();
            let context = spec.and_then(|k| k.context);
            Ok(cluster::connect(&name, &path, context.as_deref()).await?)
        }
        None => Ok(cluster::connect_inferred(&name).await?),
    }
}
