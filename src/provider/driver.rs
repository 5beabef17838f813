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

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use super::VolumeClass;
use crate::hash::AppHashes;
use crate::live::{LiveDisk, LiveSnapshot};
use crate::model::AppVolume;

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
pub fn driver_for(
    provider_driver: &str,
    settings: &BTreeMap<String, String>,
) -> Result<Box<dyn Driver>, DriverError> {
    match provider_driver {
        "k3s" => Ok(Box::new(super::k3s::K3sDriver::from_settings(settings)?)),
        d if super::DRIVERS.contains(&d) => Err(DriverError::NotSupported(format!(
            "the disk/snapshot driver for `{d}` is not implemented yet (only `k3s` is)"
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
    }
}
