//! The driver contract for disks and snapshots (reference §6.1–§6.3,
//! DECISIONS 3, 11, 21).
//!
//! A driver owns the disks and snapshots of app volumes. Per logical volume
//! there are any number of disks and exactly one *assigned* disk (the one
//! rendered into the PV/PVC). Disks and snapshots are keyed by the
//! cluster-independent app id hash, so another cluster of the same
//! workspace/provider sees the same disks. Drivers keep no local state: the
//! identity of a disk lives with the disk (cloud tags, K3s metadata files).
//!
//! The trait is object safe (`Box<dyn Driver>`): every operation returns a
//! boxed, `Send` future.
//!
//! Beyond disks and snapshots the contract covers what every cloud has and
//! K3s mostly has not (DECISIONS 15, 21): cluster status and credentials,
//! node pools, DNS records, copying a snapshot to another region, and
//! long-running operations as explicit values ([`Operation`]: start →
//! poll → done, resumable by id after a crash). These methods have default
//! implementations answering `NotSupported`, so a driver states what it
//! offers by overriding, and a caller can always ask.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::VolumeClass;
use crate::hash::AppHashes;
use crate::live::{LiveDisk, LiveSnapshot};
use crate::model::{AppVolume, Cluster};

/// A boxed, `Send` future (object-safe async).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What [`Driver::observe`] returns: all disks and good snapshots.
pub type Observed = (Vec<Disk>, Vec<Snapshot>);

/// Maximum length of a disk or snapshot name (reference §2.4).
pub const MAX_DISK_NAME: usize = 24;
/// Maximum length of a snapshot name (reference §2.4).
pub const MAX_SNAPSHOT_NAME: usize = 24;
/// Maximum length of a volume name (reference §2.4).
pub const MAX_VOLUME_NAME: usize = 16;

/// Errors of a driver. Every variant carries a message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The disk, snapshot, source or node does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The driver does not offer this operation or option.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The request conflicts with the current state (name taken, assigned
    /// disk, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A temporary failure; retrying the same call may succeed.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The credentials do not allow the operation.
    #[error("permission denied: {0}")]
    Permission(String),
    /// The request itself is invalid (bad name, bad setting).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Stored data failed its integrity check (e.g. a snapshot checksum).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Any other I/O failure.
    #[error("I/O error: {0}")]
    Io(String),
}

impl DriverError {
    /// Whether retrying the same call may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, DriverError::Transient(_))
    }

    /// The same error with `prefix` in front of its message (e.g. which
    /// node a copy failed on), keeping the variant and so its retryability.
    pub fn context(self, prefix: &str) -> DriverError {
        use DriverError as E;
        let p = |m: String| format!("{prefix}: {m}");
        match self {
            E::NotFound(m) => E::NotFound(p(m)),
            E::NotSupported(m) => E::NotSupported(p(m)),
            E::Conflict(m) => E::Conflict(p(m)),
            E::Transient(m) => E::Transient(p(m)),
            E::Permission(m) => E::Permission(p(m)),
            E::InvalidInput(m) => E::InvalidInput(p(m)),
            E::Corrupt(m) => E::Corrupt(p(m)),
            E::Io(m) => E::Io(p(m)),
        }
    }

    /// Maps an I/O error, with `what` (e.g. the path) for context.
    pub fn from_io(err: &std::io::Error, what: &str) -> DriverError {
        use std::io::ErrorKind as K;
        let msg = format!("{what}: {err}");
        match err.kind() {
            K::NotFound => DriverError::NotFound(msg),
            K::PermissionDenied => DriverError::Permission(msg),
            K::AlreadyExists => DriverError::Conflict(msg),
            K::Interrupted | K::TimedOut | K::WouldBlock => DriverError::Transient(msg),
            K::InvalidInput => DriverError::InvalidInput(msg),
            _ => DriverError::Io(msg),
        }
    }
}

/// Which app the disks belong to. Disks are keyed by `app_id_hash`
/// (`ws:prv:app`, cluster independent); `app_name` is informational.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskScope {
    pub app_id_hash: String,
    pub app_name: String,
}

impl DiskScope {
    pub fn new(app_id_hash: impl Into<String>, app_name: impl Into<String>) -> Self {
        DiskScope {
            app_id_hash: app_id_hash.into(),
            app_name: app_name.into(),
        }
    }

    /// The scope of an app from its identity hashes.
    pub fn from_hashes(hashes: &AppHashes, app_name: &str) -> Self {
        DiskScope::new(hashes.app_id.clone(), app_name)
    }

    /// The app id hash is used in paths and tags: lowercase alphanumerics.
    pub fn validate(&self) -> Result<(), DriverError> {
        let h = &self.app_id_hash;
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(DriverError::InvalidInput(format!(
                "app id hash `{h}` must be non-empty lowercase alphanumerics"
            )));
        }
        Ok(())
    }
}

/// Where a new disk lives (DECISIONS 21).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// One zone.
    Zonal(String),
    /// Replicated over a set of zones (regional PD).
    Regional(Vec<String>),
    /// Zone-redundant storage (Azure ZRS).
    ZoneRedundant,
    /// Pinned to one node (K3s local volumes).
    Node(String),
    /// The driver's default.
    Any,
}

/// A disk or snapshot to copy from (reference §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Disk(String),
    Snapshot(String),
}

/// What a bare source name (no `disk:`/`snapshot:` prefix) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Disk,
    Snapshot,
}

impl Source {
    /// Parses `disk:<name>`, `snapshot:<name>` or a bare `<name>`, which is
    /// of kind `bare` (reference §6.2: disk create reads a bare name as a
    /// snapshot, snapshot create as a disk). Provider-native ids (AKS
    /// `/subscriptions/…`) are not handled here.
    pub fn parse(s: &str, bare: SourceKind) -> Result<Source, DriverError> {
        let s = s.trim();
        let (kind, name) = if let Some(n) = s.strip_prefix("disk:") {
            (SourceKind::Disk, n)
        } else if let Some(n) = s.strip_prefix("snapshot:") {
            (SourceKind::Snapshot, n)
        } else if s.contains(':') {
            return Err(DriverError::InvalidInput(format!(
                "source `{s}`: expected `disk:<name>`, `snapshot:<name>` or `<name>`"
            )));
        } else {
            (bare, s)
        };
        if name.is_empty() {
            return Err(DriverError::InvalidInput(format!(
                "source `{s}` has an empty name"
            )));
        }
        Ok(match kind {
            SourceKind::Disk => Source::Disk(name.to_string()),
            SourceKind::Snapshot => Source::Snapshot(name.to_string()),
        })
    }

    /// The source name, without its kind.
    pub fn name(&self) -> &str {
        match self {
            Source::Disk(n) | Source::Snapshot(n) => n,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Disk(n) => write!(f, "disk:{n}"),
            Source::Snapshot(n) => write!(f, "snapshot:{n}"),
        }
    }
}

/// Arguments of [`Driver::create_disk`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreateDisk {
    pub name: String,
    pub size_bytes: u64,
    pub placement: Placement,
    /// `None` = an empty disk.
    pub source: Option<Source>,
    /// Driver-interpreted options (SKU, IOPS…).
    pub options: BTreeMap<String, serde_json::Value>,
}

/// A disk, in the JSON shape of `disk list -o json` (field names as
/// [`LiveDisk`], so the output can be fed back as a live file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    pub name: String,
    pub volume: String,
    pub app_id_hash: String,
    pub assigned: bool,
    #[serde(rename = "size")]
    pub size_bytes: u64,
    pub zone: Option<String>,
    /// The node a node-local disk lives on (K3s); `None` for cloud disks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The driver's volume handle (hashed into PV/PVC names).
    pub handle: String,
    pub created_at: Option<String>,
}

impl Disk {
    pub fn to_live(&self) -> LiveDisk {
        LiveDisk {
            name: self.name.clone(),
            volume: self.volume.clone(),
            app_id_hash: self.app_id_hash.clone(),
            assigned: self.assigned,
            size: self.size_bytes,
            zone: self.zone.clone(),
            options: BTreeMap::new(),
            handle: self.handle.clone(),
            created_at: self.created_at.clone(),
            updated_at: None,
        }
    }
}

/// A snapshot, in the JSON shape of `snapshot list -o json` (field names
/// as [`LiveSnapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub name: String,
    pub volume: String,
    pub app_id_hash: String,
    #[serde(rename = "size")]
    pub size_bytes: u64,
    pub handle: String,
    /// Name of the disk the snapshot was taken from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_disk: Option<String>,
    /// Driver integrity checksum (K3s: SHA-256 of the files), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    pub created_at: Option<String>,
}

impl Snapshot {
    pub fn to_live(&self) -> LiveSnapshot {
        LiveSnapshot {
            name: self.name.clone(),
            volume: self.volume.clone(),
            app_id_hash: self.app_id_hash.clone(),
            size: self.size_bytes,
            handle: self.handle.clone(),
            created_at: self.created_at.clone(),
        }
    }
}

/// A disk or snapshot in a listing: what the listing order looks at.
pub trait Listed {
    /// (volume, created_at, name).
    fn order_key(&self) -> (&str, Option<&str>, &str);
}

impl Listed for Disk {
    fn order_key(&self) -> (&str, Option<&str>, &str) {
        (&self.volume, self.created_at.as_deref(), &self.name)
    }
}

impl Listed for Snapshot {
    fn order_key(&self) -> (&str, Option<&str>, &str) {
        (&self.volume, self.created_at.as_deref(), &self.name)
    }
}

/// Sorts a listing in the order every driver answers in (see [`Driver`]):
/// by volume, newest first, then by name.
pub fn sort_listing<T: Listed>(items: &mut [T]) {
    items.sort_by(|a, b| {
        let (va, ca, na) = a.order_key();
        let (vb, cb, nb) = b.order_key();
        va.cmp(vb)
            .then_with(|| cb.cmp(&ca))
            .then_with(|| na.cmp(nb))
    });
}

/// The disk and snapshot operations of a provider driver.
///
/// Invariants every driver keeps (checked by the contract suite in
/// `tests/k3s_driver.rs`):
/// - names are unique per (app, volume); creating a taken name → `Conflict`;
/// - `assign_disk` leaves exactly one assigned disk per volume;
/// - `delete_disk` refuses the assigned disk (`Conflict`); deleting a
///   missing disk or snapshot succeeds (NotFound = success);
/// - a source that does not exist → `NotFound`;
/// - lists are sorted by volume, then `created_at` descending, then name.
pub trait Driver: Send + Sync {
    /// Driver id (`k3s`, `aks`, …).
    fn id(&self) -> &str;

    /// All disks of the app (all volumes).
    fn list_disks<'a>(
        &'a self,
        scope: &'a DiskScope,
    ) -> BoxFuture<'a, Result<Vec<Disk>, DriverError>>;

    /// Creates a disk of `volume`; it is created unassigned.
    fn create_disk<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        req: CreateDisk,
    ) -> BoxFuture<'a, Result<Disk, DriverError>>;

    /// Marks `name` as the one assigned disk of `volume`.
    fn assign_disk<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Deletes an unassigned disk; a missing disk is success.
    fn delete_disk<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>>;

    /// All good snapshots of the app (all volumes).
    fn list_snapshots<'a>(
        &'a self,
        scope: &'a DiskScope,
    ) -> BoxFuture<'a, Result<Vec<Snapshot>, DriverError>>;

    /// Snapshots `source` (default: the assigned disk of `volume`).
    fn create_snapshot<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
        source: Option<Source>,
    ) -> BoxFuture<'a, Result<Snapshot, DriverError>>;

    /// Deletes a snapshot; a missing snapshot is success.
    fn delete_snapshot<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Disks and snapshots of the app in one call (the plan's observe).
    fn observe<'a>(&'a self, scope: &'a DiskScope) -> BoxFuture<'a, Result<Observed, DriverError>> {
        Box::pin(async move {
            let disks = self.list_disks(scope).await?;
            let snapshots = self.list_snapshots(scope).await?;
            Ok((disks, snapshots))
        })
    }

    /// How a disk of `volume` becomes a PV.
    fn volume_class(&self, volume: &AppVolume) -> Result<VolumeClass, DriverError>;

    /// Whether disks live on one node ([`Placement::Node`], K3s) rather
    /// than in a zone: the apply's disk phase then offers the nodes the App
    /// may run on; other drivers get the App's zones.
    fn places_on_nodes(&self) -> bool {
        false
    }

    /// What a snapshot of a disk in use captures. The conservative default
    /// is [`SnapshotConsistency::FileLevel`], so a driver that does not say
    /// otherwise makes the CLI warn.
    fn snapshot_consistency(&self) -> SnapshotConsistency {
        SnapshotConsistency::FileLevel
    }

    /// Where to report the bytes copied by long operations (snapshot,
    /// restore); `None` stops reporting. The default ignores it: a driver
    /// whose copies run elsewhere (a cloud) has no byte count to report.
    fn set_progress(&mut self, progress: Option<ProgressFn>) {
        let _ = progress;
    }

    /// Copies a snapshot to another region (disaster recovery); cloud only.
    /// Returns the started operation (poll it with
    /// [`Driver::poll_operation`]).
    fn copy_snapshot<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
        target_region: &'a str,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        let _ = (scope, volume, name, target_region);
        not_supported(self.id(), "copying a snapshot to another region")
    }

    /// The state of the cluster (reference §6.1 `ClusterStatus`).
    fn cluster_status<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, Result<ClusterStatus, DriverError>> {
        let _ = cluster;
        not_supported(self.id(), "cluster status")
    }

    /// An admin kubeconfig for the cluster (DECISIONS 15), as bytes: the
    /// driver never writes credentials to disk. A Cluster's
    /// `spec.kubeconfig` overrides it. `NotSupported` when the driver has no
    /// way to obtain one (the caller then falls back to `KUBECONFIG`).
    fn cluster_kubeconfig<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, Result<Vec<u8>, DriverError>> {
        let _ = cluster;
        not_supported(self.id(), "cluster credentials (kubeconfig)")
    }

    /// The node pools of the cluster, sorted by name. `nodes` are the
    /// cluster's nodes as the caller last observed them: drivers whose
    /// pools are only node labels (K3s) answer from them, drivers whose
    /// pools are API objects (clouds) ignore them.
    fn list_node_pools<'a>(
        &'a self,
        cluster: &'a Cluster,
        nodes: Option<&'a [NodeInfo]>,
    ) -> BoxFuture<'a, Result<Vec<NodePool>, DriverError>> {
        let _ = (cluster, nodes);
        not_supported(self.id(), "node pools")
    }

    /// Starts creating a node pool; a taken name → `Conflict`.
    fn create_node_pool<'a>(
        &'a self,
        cluster: &'a Cluster,
        pool: NodePool,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        let _ = (cluster, pool);
        not_supported(self.id(), "creating node pools")
    }

    /// Starts changing the mutable fields of a node pool (see
    /// [`NodePoolUpdate`]); a missing pool → `NotFound`.
    fn update_node_pool<'a>(
        &'a self,
        cluster: &'a Cluster,
        update: NodePoolUpdate,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        let _ = (cluster, update);
        not_supported(self.id(), "updating node pools")
    }

    /// Starts deleting a node pool; a missing pool is success (an operation
    /// that has already succeeded).
    fn delete_node_pool<'a>(
        &'a self,
        cluster: &'a Cluster,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        let _ = (cluster, name);
        not_supported(self.id(), "deleting node pools")
    }

    /// Upserts record sets; a record set with no `rdata` is deleted
    /// (reference §6.1 `ClusterDNSApply`).
    fn apply_dns<'a>(
        &'a self,
        cluster: &'a Cluster,
        records: &'a [DnsRecordSet],
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        let _ = (cluster, records);
        not_supported(self.id(), "DNS records")
    }

    /// The current state of an operation a start method returned, by id, so
    /// a caller that crashed resumes by polling the id it saved. The default
    /// answers the ids of operations that completed synchronously
    /// ([`Operation::completed`]); a driver with real long-running
    /// operations overrides it.
    fn poll_operation<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(async move {
            Operation::parse_completed(id).ok_or_else(|| {
                DriverError::NotFound(format!(
                    "operation `{id}` is unknown to the `{}` driver (it runs no long operations in the background)",
                    self.id()
                ))
            })
        })
    }
}

/// The future of a default trait method: `NotSupported`, naming the driver
/// and what it does not offer.
fn not_supported<'a, T: Send + 'a>(
    driver: &str,
    what: &str,
) -> BoxFuture<'a, Result<T, DriverError>> {
    let e = DriverError::NotSupported(format!("the `{driver}` driver does not offer {what}"));
    Box::pin(async move { Err(e) })
}

/// What a snapshot of a disk in use captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotConsistency {
    /// Files are copied one by one (K3s): while the app writes, the copy may
    /// mix old and new files, so stop the app for a consistent snapshot.
    FileLevel,
    /// One point in time of the whole block device (cloud disk snapshots):
    /// what a power cut would leave, which databases recover from.
    CrashConsistent,
}

/// Bytes copied so far by a long operation, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// What is being copied, e.g. `snapshot data/s1`.
    pub what: String,
    pub done_bytes: u64,
    /// The total when known in advance.
    pub total_bytes: Option<u64>,
}

/// Receives [`Progress`] reports; called from the thread doing the copy.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What a driver knows about a cluster (reference §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The cluster exists (made by Kompox, or brought in as `existing`).
    pub existing: bool,
    /// Its control plane is up and credentials can be obtained; `None` when
    /// the driver cannot tell.
    pub provisioned: Option<bool>,
    /// Kompox's in-cluster components (ingress) are installed; `None` when
    /// the driver cannot tell.
    pub installed: Option<bool>,
    pub ingress_global_ip: Option<String>,
    pub ingress_fqdn: Option<String>,
}

/// A node of the cluster as observed through the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

/// The node label naming a node's pool (set by Kompox on the pools it
/// creates, by hand on K3s).
pub const NODE_POOL_LABEL: &str = "kompox.dev/node-pool";
/// The node label naming a node's zone, as Kompox placements select it.
pub const NODE_ZONE_LABEL: &str = "kompox.dev/node-zone";

/// A Kubernetes taint on the nodes of a pool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// A node pool (reference §6.1 `NodePool`). Zones, instance type and
/// taints are fixed when the pool is created; labels and the counts can
/// change ([`NodePoolUpdate`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodePool {
    pub name: String,
    #[serde(default)]
    pub zones: Vec<String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Autoscaling bounds; both set = autoscaling on.
    #[serde(default)]
    pub min_count: Option<u32>,
    #[serde(default)]
    pub max_count: Option<u32>,
    /// Desired nodes of a fixed-size pool; in a listing, the nodes it has.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
}

impl NodePool {
    /// The checks every driver shares: a DNS-1123 name, `min ≤ count ≤ max`.
    /// Drivers add their cloud's own limits (AKS: 12 characters).
    pub fn validate(&self) -> Result<(), DriverError> {
        if !is_dns1123_label(&self.name, 63) {
            return Err(DriverError::InvalidInput(format!(
                "node pool name `{}` must be a DNS-1123 label",
                self.name
            )));
        }
        check_counts(&self.name, self.min_count, self.max_count, self.count)
    }
}

fn check_counts(
    pool: &str,
    min: Option<u32>,
    max: Option<u32>,
    count: Option<u32>,
) -> Result<(), DriverError> {
    let bad = match (min, max, count) {
        (Some(a), Some(b), _) if a > b => true,
        (Some(a), _, Some(c)) if c < a => true,
        (_, Some(b), Some(c)) if c > b => true,
        _ => false,
    };
    if bad {
        return Err(DriverError::InvalidInput(format!(
            "node pool `{pool}`: counts must satisfy min ≤ count ≤ max (min {min:?}, count {count:?}, max {max:?})"
        )));
    }
    Ok(())
}

/// The mutable part of a node pool (reference §6.4: labels and
/// autoscaling); `None` leaves a field as it is. Immutable fields are not
/// representable here, so a driver cannot be asked to change them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePoolUpdate {
    pub name: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub min_count: Option<u32>,
    pub max_count: Option<u32>,
    pub count: Option<u32>,
}

impl NodePoolUpdate {
    /// The update that turns `current` into `desired`. A change of an
    /// immutable field (zones, instance type, taints) is `InvalidInput`
    /// naming the field: such a change needs a new pool, and silently
    /// ignoring it would leave Git and the cluster apart.
    pub fn between(current: &NodePool, desired: &NodePool) -> Result<NodePoolUpdate, DriverError> {
        if current.name != desired.name {
            return Err(DriverError::InvalidInput(format!(
                "node pool `{}` cannot be renamed to `{}`",
                current.name, desired.name
            )));
        }
        desired.validate()?;
        let fixed = |field: &str, changed: bool| {
            if changed {
                Err(DriverError::InvalidInput(format!(
                    "node pool `{}`: `{field}` is fixed when the pool is created; create a new pool instead",
                    current.name
                )))
            } else {
                Ok(())
            }
        };
        let mut zones_now = current.zones.clone();
        let mut zones_then = desired.zones.clone();
        zones_now.sort();
        zones_then.sort();
        fixed("zones", zones_now != zones_then)?;
        fixed(
            "instance_type",
            current.instance_type != desired.instance_type,
        )?;
        let mut taints_now = current.taints.clone();
        let mut taints_then = desired.taints.clone();
        taints_now.sort();
        taints_then.sort();
        fixed("taints", taints_now != taints_then)?;
        let changed = |a: Option<u32>, b: Option<u32>| (a != b).then_some(b).flatten();
        Ok(NodePoolUpdate {
            name: current.name.clone(),
            labels: (current.labels != desired.labels).then(|| desired.labels.clone()),
            min_count: changed(current.min_count, desired.min_count),
            max_count: changed(current.max_count, desired.max_count),
            count: changed(current.count, desired.count),
        })
    }

    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.labels.is_none()
            && self.min_count.is_none()
            && self.max_count.is_none()
            && self.count.is_none()
    }
}

/// DNS record types (reference §6.1 `DNSRecordSet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsRecordType {
    A,
    Aaaa,
    Cname,
    Txt,
    Mx,
    Ns,
    Srv,
    Caa,
}

/// One DNS record set; empty `rdata` means delete it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecordSet {
    /// Fully qualified name, without the trailing dot.
    pub fqdn: String,
    pub record_type: DnsRecordType,
    /// Seconds; 0 = the driver's default (300 on AKS).
    #[serde(default)]
    pub ttl: u32,
    #[serde(default)]
    pub rdata: Vec<String>,
}

impl DnsRecordSet {
    /// Whether applying this record set deletes it.
    pub fn is_delete(&self) -> bool {
        self.rdata.is_empty()
    }

    /// The checks every driver shares: a name, and one target for CNAME.
    pub fn validate(&self) -> Result<(), DriverError> {
        let name = self.fqdn.trim_end_matches('.');
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(DriverError::InvalidInput(format!(
                "DNS name `{}` is not a domain name",
                self.fqdn
            )));
        }
        if self.record_type == DnsRecordType::Cname && self.rdata.len() > 1 {
            return Err(DriverError::InvalidInput(format!(
                "CNAME `{name}` must have exactly one target, not {}",
                self.rdata.len()
            )));
        }
        Ok(())
    }
}

/// What a long-running operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    CreateNodePool,
    UpdateNodePool,
    DeleteNodePool,
    CopySnapshot,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::CreateNodePool => "create_node_pool",
            OperationKind::UpdateNodePool => "update_node_pool",
            OperationKind::DeleteNodePool => "delete_node_pool",
            OperationKind::CopySnapshot => "copy_snapshot",
        }
    }

    fn parse(s: &str) -> Option<OperationKind> {
        [
            OperationKind::CreateNodePool,
            OperationKind::UpdateNodePool,
            OperationKind::DeleteNodePool,
            OperationKind::CopySnapshot,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Where a long-running operation is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    Running,
    Succeeded,
    /// Failed, with the provider's message.
    Failed(String),
}

/// A long-running operation (DECISIONS 21): start methods return it at
/// once, [`Driver::poll_operation`] reports its state by `id`. The id is
/// all a caller needs to keep to resume after a crash; it is opaque to the
/// caller (a cloud's operation URL or id, or `sync:…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub kind: OperationKind,
    /// What the operation acts on (pool name, `volume/snapshot`).
    pub target: String,
    pub state: OperationState,
}

impl Operation {
    /// An operation that finished before its start method returned (K3s,
    /// or a delete of something already gone). Its id `sync:<kind>:<target>`
    /// is answered `Succeeded` by the default [`Driver::poll_operation`],
    /// so a caller treats synchronous and background operations alike.
    pub fn completed(kind: OperationKind, target: &str) -> Operation {
        Operation {
            id: format!("sync:{}:{target}", kind.as_str()),
            kind,
            target: target.to_string(),
            state: OperationState::Succeeded,
        }
    }

    /// The operation behind a `sync:` id, if `id` is one.
    pub fn parse_completed(id: &str) -> Option<Operation> {
        let rest = id.strip_prefix("sync:")?;
        let (kind, target) = rest.split_once(':')?;
        Some(Operation::completed(OperationKind::parse(kind)?, target))
    }

    /// Succeeded or failed: polling again changes nothing.
    pub fn is_done(&self) -> bool {
        !matches!(self.state, OperationState::Running)
    }
}

/// Polls `op` every `every` until it is done or `timeout` has passed.
/// Transient poll errors are retried; a timeout is `Transient` and names
/// the id, so the caller can resume with [`Driver::poll_operation`] later.
pub async fn wait_operation(
    driver: &dyn Driver,
    op: Operation,
    every: Duration,
    timeout: Duration,
) -> Result<Operation, DriverError> {
    let start = Instant::now();
    let mut op = op;
    while !op.is_done() {
        if start.elapsed() >= timeout {
            return Err(DriverError::Transient(format!(
                "operation `{}` ({} {}) is still running after {} s; poll it again by its id",
                op.id,
                op.kind.as_str(),
                op.target,
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(every).await;
        match driver.poll_operation(&op.id).await {
            Ok(next) => op = next,
            Err(e) if e.retryable() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(op)
}

/// A DNS-1123 label of at most `max` characters.
pub fn is_dns1123_label(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Validates a disk name (reference §2.4).
pub fn validate_disk_name(name: &str) -> Result<(), DriverError> {
    validate(name, MAX_DISK_NAME, "disk")
}

/// Validates a snapshot name (reference §2.4).
pub fn validate_snapshot_name(name: &str) -> Result<(), DriverError> {
    validate(name, MAX_SNAPSHOT_NAME, "snapshot")
}

/// Validates a volume name (reference §2.4).
pub fn validate_volume_name(name: &str) -> Result<(), DriverError> {
    validate(name, MAX_VOLUME_NAME, "volume")
}

fn validate(name: &str, max: usize, what: &str) -> Result<(), DriverError> {
    if is_dns1123_label(name, max) {
        Ok(())
    } else {
        Err(DriverError::InvalidInput(format!(
            "{what} name `{name}` must be a DNS-1123 label of 1..{max} characters"
        )))
    }
}

/// The driver of a provider (`provider.driver` and its settings).
///
/// K3s settings: `K3S_NODE_ROOTS` = `node=/abs/path,node2=/abs/path`, or
/// `K3S_NODE` (+ optional `K3S_ROOT`, default `/var/lib/kompox`) for a
/// single node; `K3S_HOST_ACCESS` = `local` (default; the only one now).
/// EKS settings: `AWS_REGION` and the others of [`super::eks`] (cargo
/// feature `aws`).
pub fn driver_for(
    provider_driver: &str,
    settings: &BTreeMap<String, String>,
) -> Result<Box<dyn Driver>, DriverError> {
    match provider_driver {
        "k3s" => Ok(Box::new(super::k3s::K3sDriver::from_settings(settings)?)),
        #[cfg(feature = "aws")]
        "eks" => Ok(Box::new(super::eks::EksDriver::from_settings(settings)?)),
        #[cfg(not(feature = "aws"))]
        "eks" => Err(DriverError::NotSupported(
            "the eks driver is not in this build: build kompoxops with the cargo feature `aws` (on by default)".to_string(),
        )),
        d if super::DRIVERS.contains(&d) => Err(DriverError::NotSupported(format!(
            "the disk/snapshot driver for `{d}` is not implemented yet (only `k3s` and `eks` are)"
        ))),
        d => Err(DriverError::InvalidInput(format!(
            "unknown provider driver `{d}` (known: {})",
            super::DRIVERS.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_vocabulary() {
        assert_eq!(
            Source::parse("disk:a", SourceKind::Snapshot),
            Ok(Source::Disk("a".into()))
        );
        assert_eq!(
            Source::parse("snapshot:s1", SourceKind::Disk),
            Ok(Source::Snapshot("s1".into()))
        );
        assert_eq!(
            Source::parse("s1", SourceKind::Snapshot),
            Ok(Source::Snapshot("s1".into()))
        );
        assert_eq!(
            Source::parse("d1", SourceKind::Disk),
            Ok(Source::Disk("d1".into()))
        );
        assert!(matches!(
            Source::parse("disk:", SourceKind::Disk),
            Err(DriverError::InvalidInput(_))
        ));
        assert!(matches!(
            Source::parse("arm:/x", SourceKind::Disk),
            Err(DriverError::InvalidInput(_))
        ));
        assert_eq!(Source::Snapshot("x".into()).to_string(), "snapshot:x");
    }

    #[test]
    fn names() {
        assert!(validate_disk_name("db-20240101").is_ok());
        assert!(validate_disk_name(&"a".repeat(24)).is_ok());
        assert!(validate_disk_name(&"a".repeat(25)).is_err());
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "../x"] {
            assert!(validate_disk_name(bad).is_err(), "{bad}");
        }
        assert!(validate_volume_name(&"v".repeat(17)).is_err());
    }

    #[test]
    fn retryable_only_transient() {
        assert!(DriverError::Transient("x".into()).retryable());
        assert!(!DriverError::Conflict("x".into()).retryable());
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(matches!(
            DriverError::from_io(&e, "p"),
            DriverError::NotFound(_)
        ));
    }

    /// A driver that implements only the required methods, like a new
    /// driver on its first day, and optionally long operations kept in a
    /// map shared across instances (the cloud side).
    struct Minimal {
        cloud: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<OperationState>>>>,
    }

    impl Minimal {
        fn new() -> Self {
            Minimal {
                cloud: Default::default(),
            }
        }
    }

    impl Driver for Minimal {
        fn id(&self) -> &str {
            "minimal"
        }
        fn list_disks<'a>(
            &'a self,
            _: &'a DiskScope,
        ) -> BoxFuture<'a, Result<Vec<Disk>, DriverError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn create_disk<'a>(
            &'a self,
            _: &'a DiskScope,
            _: &'a str,
            _: CreateDisk,
        ) -> BoxFuture<'a, Result<Disk, DriverError>> {
            Box::pin(async { Err(DriverError::NotSupported("x".into())) })
        }
        fn assign_disk<'a>(
            &'a self,
            _: &'a DiskScope,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<(), DriverError>> {
            Box::pin(async { Ok(()) })
        }
        fn delete_disk<'a>(
            &'a self,
            _: &'a DiskScope,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<(), DriverError>> {
            Box::pin(async { Ok(()) })
        }
        fn list_snapshots<'a>(
            &'a self,
            _: &'a DiskScope,
        ) -> BoxFuture<'a, Result<Vec<Snapshot>, DriverError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn create_snapshot<'a>(
            &'a self,
            _: &'a DiskScope,
            _: &'a str,
            _: &'a str,
            _: Option<Source>,
        ) -> BoxFuture<'a, Result<Snapshot, DriverError>> {
            Box::pin(async { Err(DriverError::NotSupported("x".into())) })
        }
        fn delete_snapshot<'a>(
            &'a self,
            _: &'a DiskScope,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<(), DriverError>> {
            Box::pin(async { Ok(()) })
        }
        fn volume_class(&self, _: &AppVolume) -> Result<VolumeClass, DriverError> {
            Err(DriverError::NotSupported("x".into()))
        }
        fn poll_operation<'a>(
            &'a self,
            id: &'a str,
        ) -> BoxFuture<'a, Result<Operation, DriverError>> {
            Box::pin(async move {
                let mut cloud = self.cloud.lock().unwrap();
                let states = cloud
                    .get_mut(id)
                    .ok_or_else(|| DriverError::NotFound(id.to_string()))?;
                let state = if states.len() > 1 {
                    states.remove(0)
                } else {
                    states[0].clone()
                };
                Ok(Operation {
                    id: id.to_string(),
                    kind: OperationKind::CopySnapshot,
                    target: "data/s1".into(),
                    state,
                })
            })
        }
    }

    fn block<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn cluster() -> Cluster {
        Cluster {
            existing: true,
            ..Default::default()
        }
    }

    /// Every method added for the clouds answers `NotSupported` naming the
    /// driver unless the driver overrides it: a caller can always ask.
    #[test]
    fn defaults_answer_not_supported() {
        let mut d = Minimal::new();
        let c = cluster();
        let scope = DiskScope::new("abc", "app");
        let ns = |r: Result<(), DriverError>, what: &str| match r {
            Err(DriverError::NotSupported(m)) => {
                assert!(m.contains("`minimal`"), "{what}: {m}")
            }
            other => panic!("{what}: {other:?}"),
        };
        block(async {
            ns(d.cluster_status(&c).await.map(|_| ()), "status");
            ns(d.cluster_kubeconfig(&c).await.map(|_| ()), "kubeconfig");
            ns(d.list_node_pools(&c, None).await.map(|_| ()), "list pools");
            ns(
                d.create_node_pool(&c, NodePool::default())
                    .await
                    .map(|_| ()),
                "create pool",
            );
            ns(
                d.update_node_pool(&c, NodePoolUpdate::default())
                    .await
                    .map(|_| ()),
                "update pool",
            );
            ns(d.delete_node_pool(&c, "p").await.map(|_| ()), "delete pool");
            ns(d.apply_dns(&c, &[]).await, "dns");
            ns(
                d.copy_snapshot(&scope, "data", "s1", "westeurope")
                    .await
                    .map(|_| ()),
                "copy",
            );
        });
        assert_eq!(d.snapshot_consistency(), SnapshotConsistency::FileLevel);
        d.set_progress(None);
    }

    #[test]
    fn completed_operations_poll_as_succeeded() {
        let op = Operation::completed(OperationKind::DeleteNodePool, "gpu");
        assert!(op.is_done());
        assert_eq!(op.id, "sync:delete_node_pool:gpu");
        assert_eq!(Operation::parse_completed(&op.id), Some(op.clone()));
        assert_eq!(Operation::parse_completed("sync:nope:x"), None);
        assert_eq!(Operation::parse_completed("/subscriptions/x"), None);
        // The default `poll_operation` (answering these ids) is exercised
        // through the K3s driver, which keeps it (provider::k3s tests).
    }

    /// start → poll → done, and resuming by id from another driver
    /// instance (a new process after a crash) sees the same operation.
    #[test]
    fn wait_operation_polls_until_done_and_resumes_by_id() {
        let d = Minimal::new();
        d.cloud.lock().unwrap().insert(
            "op-1".into(),
            vec![
                OperationState::Running,
                OperationState::Running,
                OperationState::Succeeded,
            ],
        );
        let started = Operation {
            id: "op-1".into(),
            kind: OperationKind::CopySnapshot,
            target: "data/s1".into(),
            state: OperationState::Running,
        };
        // Too short a timeout: Transient, naming the id to resume with.
        let e = block(wait_operation(
            &d,
            started.clone(),
            Duration::from_millis(1),
            Duration::ZERO,
        ))
        .unwrap_err();
        assert!(e.retryable() && e.to_string().contains("op-1"), "{e}");
        // "After a crash": a new instance, same cloud, same id.
        let again = Minimal {
            cloud: d.cloud.clone(),
        };
        let done = block(wait_operation(
            &again,
            started,
            Duration::from_millis(1),
            Duration::from_secs(5),
        ))
        .unwrap();
        assert_eq!(done.state, OperationState::Succeeded);
        // A failed operation is done, with the provider's message.
        d.cloud
            .lock()
            .unwrap()
            .insert("op-2".into(), vec![OperationState::Failed("quota".into())]);
        let failed = block(d.poll_operation("op-2")).unwrap();
        assert!(failed.is_done());
        assert_eq!(failed.state, OperationState::Failed("quota".into()));
    }

    #[test]
    fn node_pool_updates_carry_only_mutable_fields() {
        let current = NodePool {
            name: "user".into(),
            zones: vec!["1".into(), "2".into()],
            instance_type: Some("Standard_D4s_v5".into()),
            min_count: Some(1),
            max_count: Some(3),
            count: None,
            labels: BTreeMap::from([("team".into(), "a".into())]),
            taints: vec![],
        };
        let mut desired = current.clone();
        desired.zones.reverse(); // order does not matter
        assert!(
            NodePoolUpdate::between(&current, &desired)
                .unwrap()
                .is_empty()
        );
        desired.max_count = Some(5);
        desired.labels.insert("tier".into(), "web".into());
        let u = NodePoolUpdate::between(&current, &desired).unwrap();
        assert_eq!(u.max_count, Some(5));
        assert_eq!(u.min_count, None);
        assert_eq!(u.labels.as_ref().map(|l| l.len()), Some(2));
        for (field, change) in [
            ("zones", {
                let mut p = current.clone();
                p.zones.push("3".into());
                p
            }),
            ("instance_type", {
                let mut p = current.clone();
                p.instance_type = Some("Standard_D8s_v5".into());
                p
            }),
            ("taints", {
                let mut p = current.clone();
                p.taints.push(Taint {
                    key: "gpu".into(),
                    value: "true".into(),
                    effect: TaintEffect::NoSchedule,
                });
                p
            }),
        ] {
            match NodePoolUpdate::between(&current, &change) {
                Err(DriverError::InvalidInput(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut bad = current.clone();
        bad.count = Some(9);
        assert!(matches!(
            NodePoolUpdate::between(&current, &bad),
            Err(DriverError::InvalidInput(_))
        ));
    }

    #[test]
    fn dns_record_sets() {
        let mut r = DnsRecordSet {
            fqdn: "app.example.com.".into(),
            record_type: DnsRecordType::Cname,
            ttl: 0,
            rdata: vec!["a.example.net".into(), "b.example.net".into()],
        };
        assert!(r.validate().is_err(), "CNAME with two targets");
        r.rdata.pop();
        assert!(r.validate().is_ok());
        r.rdata.clear();
        assert!(r.is_delete());
        assert_eq!(
            serde_json::to_value(DnsRecordType::Aaaa).unwrap(),
            serde_json::json!("AAAA")
        );
    }

    #[test]
    fn registry() {
        let none = BTreeMap::new();
        assert!(matches!(
            driver_for("aks", &none),
            Err(DriverError::NotSupported(_))
        ));
        assert!(matches!(
            driver_for("nope", &none),
            Err(DriverError::InvalidInput(_))
        ));
        let s = BTreeMap::from([("K3S_NODE".to_string(), "n1".to_string())]);
        assert_eq!(
            driver_for("k3s", &s).map(|d| d.id().to_string()),
            Ok("k3s".into())
        );
        // Building the eks driver does no I/O: settings are checked, the
        // AWS clients come on first use.
        let s = BTreeMap::from([("AWS_REGION".to_string(), "us-east-1".to_string())]);
        #[cfg(feature = "aws")]
        {
            assert_eq!(
                driver_for("eks", &s).map(|d| d.id().to_string()),
                Ok("eks".into())
            );
            assert!(matches!(
                driver_for("eks", &none),
                Err(DriverError::InvalidInput(m)) if m.contains("AWS_REGION")
            ));
        }
        #[cfg(not(feature = "aws"))]
        assert!(matches!(
            driver_for("eks", &s),
            Err(DriverError::NotSupported(m)) if m.contains("`aws`")
        ));
    }
}
