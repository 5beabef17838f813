//! The EKS driver (issue 6): disks are EBS volumes, snapshots are EBS
//! snapshots ([`ebs`]), node pools are EKS managed node groups
//! ([`nodegroups`]), cluster status and credentials come from the EKS API
//! ([`cluster`]). Provider I/O through the official AWS SDK for Rust.
//!
//! Like every driver it keeps no state of its own: the identity of a disk
//! or snapshot lives in its AWS tags (`kompox-…`, see [`ebs`]), so a new
//! process, or another cluster of the same provider, sees the same disks.
//!
//! Settings (Provider `spec.settings`; the Cluster's settings override
//! them where a key makes sense per cluster):
//!
//! | key | meaning |
//! |---|---|
//! | `AWS_REGION` | region of the disks and the cluster (required) |
//! | `AWS_PROFILE` | profile of the shared AWS config files (optional) |
//! | `AWS_ENDPOINT_URL` | endpoint of every AWS service (tests, EC2-compatible clouds) |
//! | `AWS_ENDPOINT_URL_EC2` / `_EKS` / `_STS` | endpoint of one service |
//! | `AWS_EBS_KMS_KEY_ID` | default KMS key of new volumes (else the account's EBS default) |
//! | `AWS_EKS_CLUSTER_NAME` | Cluster setting: the EKS cluster's name (default: the Kompox Cluster's name) |
//!
//! Credentials come from the standard AWS chain (environment, shared
//! files and `AWS_PROFILE`, SSO, web identity, ECS/EC2 roles), never from
//! settings. The environment's `AWS_ENDPOINT_URL*` variables work too.
//! Clients are built on first use, so constructing the driver does no
//! I/O and needs no runtime.

mod aws_error;
mod cluster;
mod ebs;
pub mod iam;
mod nodegroups;
pub mod zones;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use tokio::sync::OnceCell;

pub use ebs::tags;

use super::VolumeClass;
use super::driver::{
    BoxFuture, ClusterStatus, CreateDisk, Disk, DiskScope, Driver, DriverError, NodeInfo, NodePool,
    NodePoolUpdate, Observed, Operation, ProgressFn, Snapshot, SnapshotConsistency, Source,
};
use crate::model::{AppVolume, Cluster};

pub const SETTING_REGION: &str = "AWS_REGION";
pub const SETTING_PROFILE: &str = "AWS_PROFILE";
pub const SETTING_ENDPOINT: &str = "AWS_ENDPOINT_URL";
pub const SETTING_ENDPOINT_EC2: &str = "AWS_ENDPOINT_URL_EC2";
pub const SETTING_ENDPOINT_EKS: &str = "AWS_ENDPOINT_URL_EKS";
pub const SETTING_ENDPOINT_STS: &str = "AWS_ENDPOINT_URL_STS";
pub const SETTING_KMS_KEY: &str = "AWS_EBS_KMS_KEY_ID";
pub const SETTING_CLUSTER_NAME: &str = "AWS_EKS_CLUSTER_NAME";

/// Prefix of the operation ids of snapshot copies (`ebs-copy:<region>:<snapshot id>`).
pub const COPY_OP_PREFIX: &str = "ebs-copy:";
/// Prefix of the operation ids of node-group changes (see `nodegroups`).
pub const NODEGROUP_OP_PREFIX: &str = "eks-nodegroup:";

/// Static credentials for tests and emulators; production uses the AWS
/// chain. `Debug` never shows the secret.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Retries, timeouts and waits. The defaults suit AWS; tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Attempts per SDK call (standard retry mode) for reads and the
    /// calls that are idempotent by nature (tags, deletes). Creates are
    /// sent once per driver attempt, see [`Timing::create_attempts`].
    pub sdk_max_attempts: u32,
    /// First backoff of the SDK's and the driver's retries; doubled per
    /// attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Driver-level attempts of a create (volume, snapshot, copy): before
    /// each resend the driver looks the resource up by its tags, so a
    /// create whose response was lost is found instead of repeated.
    pub create_attempts: u32,
    pub connect_timeout: Duration,
    /// Time for one HTTP attempt; a slower answer counts as a timeout and
    /// is retried.
    pub attempt_timeout: Duration,
    /// How long a create waits for its volume to become `available`.
    pub volume_wait: Duration,
    /// How long a snapshot create waits for `completed` (large first
    /// snapshots can take longer: the create then reports a temporary
    /// failure, and running it again resumes the wait).
    pub snapshot_wait: Duration,
    /// First and largest interval between state polls.
    pub poll_initial: Duration,
    pub poll_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            sdk_max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            create_attempts: 6,
            connect_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(60),
            volume_wait: Duration::from_secs(5 * 60),
            snapshot_wait: Duration::from_secs(30 * 60),
            poll_initial: Duration::from_secs(1),
            poll_max: Duration::from_secs(15),
        }
    }
}

impl Timing {
    /// Short backoffs and waits for tests against a local emulator.
    pub fn fast() -> Timing {
        Timing {
            sdk_max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            create_attempts: 6,
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(2),
            volume_wait: Duration::from_secs(20),
            snapshot_wait: Duration::from_secs(20),
            poll_initial: Duration::from_millis(20),
            poll_max: Duration::from_millis(200),
        }
    }

    /// The `n`-th backoff (0-based): `initial · 2ⁿ`, at most `max_backoff`.
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(1u32 << n.min(16))
            .min(self.max_backoff)
    }
}

/// Everything the driver is configured with: the settings, resolved, plus
/// what only tests choose (static credentials, timing).
#[derive(Debug, Clone)]
pub struct EksConfig {
    pub region: String,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    pub endpoint_url_ec2: Option<String>,
    pub endpoint_url_eks: Option<String>,
    pub endpoint_url_sts: Option<String>,
    pub kms_key_id: Option<String>,
    /// `None` = the standard AWS credential chain.
    pub credentials: Option<StaticCredentials>,
    pub timing: Timing,
    /// The Provider settings as given (node groups read theirs here).
    pub settings: BTreeMap<String, String>,
}

impl EksConfig {
    /// A configuration for `region` with the defaults.
    pub fn new(region: impl Into<String>) -> EksConfig {
        EksConfig {
            region: region.into(),
            profile: None,
            endpoint_url: None,
            endpoint_url_ec2: None,
            endpoint_url_eks: None,
            endpoint_url_sts: None,
            kms_key_id: None,
            credentials: None,
            timing: Timing::default(),
            settings: BTreeMap::new(),
        }
    }

    /// The configuration the Provider settings describe.
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<EksConfig, DriverError> {
        let get = |k: &str| {
            settings
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let region = get(SETTING_REGION).ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "the eks driver needs the provider setting {SETTING_REGION} (e.g. `us-east-1`)"
            ))
        })?;
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(DriverError::InvalidInput(format!(
                "provider setting {SETTING_REGION}: `{region}` is not an AWS region name"
            )));
        }
        for key in [
            SETTING_ENDPOINT,
            SETTING_ENDPOINT_EC2,
            SETTING_ENDPOINT_EKS,
            SETTING_ENDPOINT_STS,
        ] {
            if let Some(url) = get(key)
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err(DriverError::InvalidInput(format!(
                    "provider setting {key}: `{url}` is not an http(s) URL"
                )));
            }
        }
        Ok(EksConfig {
            region,
            profile: get(SETTING_PROFILE),
            endpoint_url: get(SETTING_ENDPOINT),
            endpoint_url_ec2: get(SETTING_ENDPOINT_EC2),
            endpoint_url_eks: get(SETTING_ENDPOINT_EKS),
            endpoint_url_sts: get(SETTING_ENDPOINT_STS),
            kms_key_id: get(SETTING_KMS_KEY),
            credentials: None,
            timing: Timing::default(),
            settings: settings.clone(),
        })
    }

    /// Every service at `url` (an emulator such as moto).
    pub fn with_endpoint(mut self, url: impl Into<String>) -> EksConfig {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Fixed credentials instead of the AWS chain.
    pub fn with_static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> EksConfig {
        self.credentials = Some(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        });
        self
    }

    pub fn with_timing(mut self, timing: Timing) -> EksConfig {
        self.timing = timing;
        self
    }
}

/// The EC2 clients of one region.
#[derive(Clone)]
struct Ec2 {
    region: String,
    /// SDK retries on (standard mode): reads, tags, deletes.
    client: aws_sdk_ec2::Client,
    /// SDK retries off: creates, which the driver retries itself after
    /// looking for what an earlier attempt may have made.
    once: aws_sdk_ec2::Client,
}

/// The `eks` driver.
pub struct EksDriver {
    cfg: EksConfig,
    sdk: OnceCell<SdkConfig>,
    ec2: Mutex<BTreeMap<String, Ec2>>,
    eks: OnceCell<aws_sdk_eks::Client>,
    /// Availability zones per region (they do not change while we run).
    zones: Mutex<BTreeMap<String, Vec<String>>>,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for EksDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EksDriver")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl EksDriver {
    /// The driver of a Provider with these settings (see the module doc).
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<EksDriver, DriverError> {
        Ok(EksDriver::with_config(EksConfig::from_settings(settings)?))
    }

    /// The driver with an explicit configuration (tests: endpoint, static
    /// credentials and short timing, without touching the environment).
    pub fn with_config(cfg: EksConfig) -> EksDriver {
        EksDriver {
            cfg,
            sdk: OnceCell::new(),
            ec2: Mutex::new(BTreeMap::new()),
            eks: OnceCell::new(),
            zones: Mutex::new(BTreeMap::new()),
            progress: None,
        }
    }

    pub fn config(&self) -> &EksConfig {
        &self.cfg
    }

    pub fn region(&self) -> &str {
        &self.cfg.region
    }

    async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let t = &self.cfg.timing;
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(self.cfg.region.clone()))
                    .retry_config(
                        RetryConfig::standard()
                            .with_max_attempts(t.sdk_max_attempts.max(1))
                            .with_initial_backoff(t.initial_backoff)
                            .with_max_backoff(t.max_backoff),
                    )
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(t.connect_timeout)
                            .operation_attempt_timeout(t.attempt_timeout)
                            .build(),
                    );
                if let Ok(name) = AppName::new("kompoxops") {
                    loader = loader.app_name(name);
                }
                if let Some(p) = &self.cfg.profile {
                    loader = loader.profile_name(p);
                }
                if let Some(url) = &self.cfg.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                if let Some(c) = &self.cfg.credentials {
                    loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                        c.access_key_id.clone(),
                        c.secret_access_key.clone(),
                        None,
                        None,
                        "kompox-static",
                    ));
                }
                loader.load().await
            })
            .await
    }

    /// The EC2 clients of `region` (the driver's own, or a copy target).
    async fn ec2(&self, region: &str) -> Ec2 {
        let sdk = self.sdk().await;
        let mut map = self.ec2.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(region.to_string())
            .or_insert_with(|| {
                let mut b =
                    aws_sdk_ec2::config::Builder::from(sdk).region(Region::new(region.to_string()));
                if let Some(url) = &self.cfg.endpoint_url_ec2 {
                    b = b.endpoint_url(url);
                }
                let client = aws_sdk_ec2::Client::from_conf(b.clone().build());
                let once =
                    aws_sdk_ec2::Client::from_conf(b.retry_config(RetryConfig::disabled()).build());
                Ec2 {
                    region: region.to_string(),
                    client,
                    once,
                }
            })
            .clone()
    }

    async fn eks(&self) -> &aws_sdk_eks::Client {
        self.eks
            .get_or_init(|| async {
                let mut b = aws_sdk_eks::config::Builder::from(self.sdk().await);
                if let Some(url) = &self.cfg.endpoint_url_eks {
                    b = b.endpoint_url(url);
                }
                aws_sdk_eks::Client::from_conf(b.build())
            })
            .await
    }

    /// The EKS cluster of a Kompox Cluster: its setting
    /// `AWS_EKS_CLUSTER_NAME`, else its name.
    pub fn eks_cluster_name(cluster: &Cluster) -> String {
        cluster
            .settings
            .get(SETTING_CLUSTER_NAME)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(&cluster.meta.name)
            .to_string()
    }

    /// Provider settings overlaid with the Cluster's (node-group settings
    /// such as subnets may differ per cluster).
    fn pool_settings(&self, cluster: &Cluster) -> BTreeMap<String, String> {
        let mut s = self.cfg.settings.clone();
        s.extend(cluster.settings.clone());
        s
    }
}

impl Driver for EksDriver {
    fn id(&self) -> &str {
        "eks"
    }

    fn list_disks<'a>(
        &'a self,
        scope: &'a DiskScope,
    ) -> BoxFuture<'a, Result<Vec<Disk>, DriverError>> {
        Box::pin(self.ebs_list_disks(scope))
    }

    fn create_disk<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        req: CreateDisk,
    ) -> BoxFuture<'a, Result<Disk, DriverError>> {
        Box::pin(self.ebs_create_disk(scope, volume, req))
    }

    fn assign_disk<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.ebs_assign_disk(scope, volume, name))
    }

    fn delete_disk<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.ebs_delete_disk(scope, volume, name))
    }

    fn list_snapshots<'a>(
        &'a self,
        scope: &'a DiskScope,
    ) -> BoxFuture<'a, Result<Vec<Snapshot>, DriverError>> {
        Box::pin(self.ebs_list_snapshots(scope))
    }

    fn create_snapshot<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
        source: Option<Source>,
    ) -> BoxFuture<'a, Result<Snapshot, DriverError>> {
        Box::pin(self.ebs_create_snapshot(scope, volume, name, source))
    }

    fn delete_snapshot<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.ebs_delete_snapshot(scope, volume, name))
    }

    fn observe<'a>(&'a self, scope: &'a DiskScope) -> BoxFuture<'a, Result<Observed, DriverError>> {
        Box::pin(async move {
            let (disks, snapshots) =
                tokio::join!(self.ebs_list_disks(scope), self.ebs_list_snapshots(scope));
            Ok((disks?, snapshots?))
        })
    }

    /// `kompox-ebs`: CSI `ebs.csi.aws.com`, the volume id as handle, node
    /// affinity on `topology.kubernetes.io/zone`.
    fn volume_class(&self, volume: &AppVolume) -> Result<VolumeClass, DriverError> {
        super::volume_class("eks", volume).ok_or_else(|| {
            DriverError::NotSupported(format!(
                "volume `{}`: the eks driver offers `type: disk` volumes (EBS) only; EFS is not implemented",
                volume.name
            ))
        })
    }

    /// An EBS snapshot is one point in time of the whole volume.
    fn snapshot_consistency(&self) -> SnapshotConsistency {
        SnapshotConsistency::CrashConsistent
    }

    /// Reports the progress AWS gives for pending snapshots.
    fn set_progress(&mut self, progress: Option<ProgressFn>) {
        self.progress = progress;
    }

    fn copy_snapshot<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
        target_region: &'a str,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(self.ebs_copy_snapshot(scope, volume, name, target_region))
    }

    fn cluster_status<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, Result<ClusterStatus, DriverError>> {
        Box::pin(async move {
            let name = EksDriver::eks_cluster_name(cluster);
            cluster::status(self.eks().await, &name).await
        })
    }

    fn cluster_kubeconfig<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, Result<Vec<u8>, DriverError>> {
        Box::pin(async move {
            let name = EksDriver::eks_cluster_name(cluster);
            // The token is signed with the driver's credential chain; the
            // SDK's STS client cannot presign nor hand out credentials
            // (see `cluster::kubeconfig`).
            let credentials = self.sdk().await.credentials_provider();
            cluster::kubeconfig(self.eks().await, credentials, &name, self.region()).await
        })
    }

    /// Node groups are API objects: the observed nodes are not needed.
    fn list_node_pools<'a>(
        &'a self,
        cluster: &'a Cluster,
        _nodes: Option<&'a [NodeInfo]>,
    ) -> BoxFuture<'a, Result<Vec<NodePool>, DriverError>> {
        Box::pin(async move {
            let name = EksDriver::eks_cluster_name(cluster);
            nodegroups::list(self.eks().await, &name, self.region()).await
        })
    }

    fn create_node_pool<'a>(
        &'a self,
        cluster: &'a Cluster,
        pool: NodePool,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(async move {
            let name = EksDriver::eks_cluster_name(cluster);
            let settings = self.pool_settings(cluster);
            nodegroups::create(self.eks().await, &name, self.region(), &settings, pool).await
        })
    }

    fn update_node_pool<'a>(
        &'a self,
        cluster: &'a Cluster,
        update: NodePoolUpdate,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(async move {
            let name = EksDriver::eks_cluster_name(cluster);
            nodegroups::update(self.eks().await, &name, self.region(), update).await
        })
    }

    fn delete_node_pool<'a>(
        &'a self,
        cluster: &'a Cluster,
        pool: &'a str,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(async move {
            let name = EksDriver::eks_cluster_name(cluster);
            nodegroups::delete(self.eks().await, &name, pool).await
        })
    }

    /// Routes by id prefix: `ebs-copy:` (snapshot copies), `eks-nodegroup:`
    /// (node groups), `sync:` (done at once).
    fn poll_operation<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(async move {
            if let Some(done) = Operation::parse_completed(id) {
                Ok(done)
            } else if id.starts_with(COPY_OP_PREFIX) {
                self.ebs_poll_copy(id).await
            } else if id.starts_with(NODEGROUP_OP_PREFIX) {
                nodegroups::poll(self.eks().await, id).await
            } else {
                Err(DriverError::NotFound(format!(
                    "operation `{id}` is not an eks driver operation (`{COPY_OP_PREFIX}…`, `{NODEGROUP_OP_PREFIX}…`)"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_need_a_region_and_http_endpoints() {
        match EksConfig::from_settings(&BTreeMap::new()) {
            Err(DriverError::InvalidInput(m)) => assert!(m.contains("AWS_REGION"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            EksConfig::from_settings(&settings(&[("AWS_REGION", "US East")])),
            Err(DriverError::InvalidInput(_))
        ));
        assert!(matches!(
            EksConfig::from_settings(&settings(&[
                ("AWS_REGION", "us-east-1"),
                ("AWS_ENDPOINT_URL_EC2", "127.0.0.1:5000")
            ])),
            Err(DriverError::InvalidInput(m)) if m.contains("AWS_ENDPOINT_URL_EC2")
        ));
        let c = EksConfig::from_settings(&settings(&[
            ("AWS_REGION", " us-east-1 "),
            ("AWS_PROFILE", "ops"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_EBS_KMS_KEY_ID", "alias/kompox"),
            ("AWS_ENDPOINT_URL_STS", ""),
        ]))
        .unwrap();
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.profile.as_deref(), Some("ops"));
        assert_eq!(c.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.kms_key_id.as_deref(), Some("alias/kompox"));
        assert_eq!(c.endpoint_url_sts, None, "empty = unset");
        assert!(c.credentials.is_none(), "the AWS chain by default");
    }

    #[test]
    fn static_credentials_never_print_the_secret() {
        let c = EksConfig::new("us-east-1").with_static_credentials("AKIDEXAMPLE", "s3cr3t");
        let text = format!("{:?}", EksDriver::with_config(c));
        assert!(
            text.contains("AKIDEXAMPLE") && !text.contains("s3cr3t"),
            "{text}"
        );
    }

    #[test]
    fn cluster_name_from_setting_or_cluster() {
        let mut c = Cluster::default();
        c.meta.name = "cls1".into();
        assert_eq!(EksDriver::eks_cluster_name(&c), "cls1");
        c.settings
            .insert(SETTING_CLUSTER_NAME.into(), "prod-eks".into());
        assert_eq!(EksDriver::eks_cluster_name(&c), "prod-eks");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let t = Timing {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..Timing::default()
        };
        assert_eq!(t.backoff(0), Duration::from_millis(100));
        assert_eq!(t.backoff(1), Duration::from_millis(200));
        assert_eq!(t.backoff(2), Duration::from_millis(350));
        assert_eq!(t.backoff(40), Duration::from_millis(350));
    }

    #[test]
    fn operations_of_other_drivers_are_unknown() {
        let d = EksDriver::with_config(EksConfig::new("us-east-1"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let done = rt
            .block_on(d.poll_operation("sync:copy_snapshot:data/s1"))
            .unwrap();
        assert!(done.is_done());
        assert!(matches!(
            rt.block_on(d.poll_operation("/subscriptions/x")),
            Err(DriverError::NotFound(_))
        ));
    }
}
