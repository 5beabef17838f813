//! The Kubernetes edge (I/O): connecting to a Cluster, observing what
//! Kompox owns, and server-side apply / delete.
//!
//! Observation lists each kind once with the `managed-by=kompox` label
//! selector (never one GET per object), so a no-op plan costs a fixed number
//! of read requests and no writes. Writes use server-side apply with the
//! field manager `kompoxops` (the original's, so its apps can be adopted),
//! forcing ownership of the fields we declare.

mod kinds;
mod observe;
mod rate;
mod scale;
mod write;

pub use kinds::{KINDS, KindInfo, kind_info};
pub use observe::{Observed, observe};
pub use rate::WriteRate;
pub use scale::{connect_yaml, deployment_pods, deployment_replicas, scale_deployment};
pub use write::{
    ApplyOutcome, WriteError, apply_object, delete_object, deployment_status, dry_run_apply,
};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Why a cluster cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "no kubeconfig for cluster `{cluster}`: set spec.kubeconfig.path in the Cluster or KUBECONFIG, or plan with --offline or --live FILE"
    )]
    NoKubeconfig { cluster: String },
    #[error("cannot read kubeconfig `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig `{path}` for cluster `{cluster}`: {source}")]
    Config {
        path: String,
        cluster: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no credentials for cluster `{cluster}`: not in a pod and no kubeconfig ({message}); set spec.kubeconfig.path in the Cluster or KUBECONFIG"
    )]
    Infer { cluster: String, message: String },
    #[error("cannot create a client for cluster `{cluster}`: {source}")]
    Client {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("cluster `{cluster}` at {url} is not reachable: {source}")]
    Unreachable {
        cluster: String,
        url: String,
        #[source]
        source: kube::Error,
    },
}

/// A connected cluster.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    pub cluster: String,
    pub url: String,
    /// Checked before every write: only the Lease holder writes.
    pub writer: crate::lease::WriteGuard,
    /// Bounds the write requests per second (DECISIONS 19).
    pub rate: WriteRate,
}

impl Connection {
    /// Refuses a write when this process is not certainly the one writer.
    pub fn check_writer(&self, what: &str) -> Result<(), WriteError> {
        if self.writer.may_write() {
            Ok(())
        } else {
            Err(WriteError::NotLeader(what.to_string()))
        }
    }
}

/// Connects with what the environment provides: the in-cluster
/// ServiceAccount when running in a pod, else `KUBECONFIG` or
/// `~/.kube/config` (DECISIONS 15: the controller uses its
/// ServiceAccount in the cluster it runs in).
pub async fn connect_inferred(cluster: &str) -> Result<Connection, ConnectError> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| ConnectError::Infer {
            cluster: cluster.to_string(),
            message: e.to_string(),
        })?;
    finish_connect(cluster, config).await
}

/// Connects with a kubeconfig file (and optional context) and checks that
/// the API server answers, so "unreachable" is reported before any plan.
pub async fn connect(
    cluster: &str,
    path: &str,
    context: Option<&str>,
) -> Result<Connection, ConnectError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| ConnectError::Read {
        path: path.to_string(),
        source,
    })?;
    connect_with(cluster, path, kubeconfig, context).await
}

/// Connects with a parsed kubeconfig; `what` names where it came from.
async fn connect_with(
    cluster: &str,
    what: &str,
    kubeconfig: Kubeconfig,
    context: Option<&str>,
) -> Result<Connection, ConnectError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| ConnectError::Config {
            path: what.to_string(),
            cluster: cluster.to_string(),
            source,
        })?;
    finish_connect(cluster, config).await
}

async fn finish_connect(cluster: &str, config: kube::Config) -> Result<Connection, ConnectError> {
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|source| ConnectError::Client {
        cluster: cluster.to_string(),
        source,
    })?;
    client
        .apiserver_version()
        .await
        .map_err(|source| ConnectError::Unreachable {
            cluster: cluster.to_string(),
            url: url.clone(),
            source,
        })?;
    Ok(Connection {
        client,
        cluster: cluster.to_string(),
        url,
        writer: crate::lease::WriteGuard::always(),
        rate: WriteRate::unlimited(),
    })
}
