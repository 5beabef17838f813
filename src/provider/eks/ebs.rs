//! Disks as EBS volumes, snapshots as EBS snapshots (reference §6.2–§6.4,
//! mirroring the AKS driver's tags and rules). Provider I/O.
//!
//! **Identity in tags.** Every volume and snapshot Kompox makes carries
//! [`tags`]: the app id hash, app name, volume, disk or snapshot name,
//! `kompox-disk-assigned`, `managed-by=kompox` and a `Name`. Lists filter
//! on `tag:kompox-app-id-hash` and `tag:managed-by`, so nothing else in the
//! account is ever touched. Volumes in `deleting`/`deleted` state are not
//! disks any more; only `completed` snapshots are listed (a `pending` one
//! is work in progress).
//!
//! **Zonal.** An EBS volume lives in one availability zone: a create
//! needs [`Placement::Zonal`] with a Kompox (`us-east-1-2`) or AWS
//! (`us-east-1b`) zone name (see [`super::zones`]), checked against the
//! region's zones. A restore creates the volume from a snapshot in any
//! zone of the region; cloning a disk goes through a temporary snapshot
//! (tagged `kompox-clone-for`, never listed, deleted once the new volume
//! is available).
//!
//! **Creates are idempotent** (a lost response, a throttled or timed-out
//! attempt, or a process killed after sending must never make a second
//! volume). Three layers:
//!
//! 1. Creates are sent with SDK retries off; the driver retries them
//!    itself and, before every resend, looks the resource up by its tags.
//!    A volume or snapshot an earlier attempt made is found, not repeated.
//!    This also holds on clouds that ignore `ClientToken` (moto does).
//! 2. `CreateVolume` carries a `ClientToken` derived from what is created
//!    (app, volume, name, size, zone, type, IOPS, throughput, encryption,
//!    source): `k4x-<40 hex of SHA-256>-g<generation>`. It covers the
//!    seconds in which a new volume is not yet visible to
//!    `DescribeVolumes`. AWS keeps tokens after a volume is deleted and
//!    answers a reuse with `IdempotentParameterMismatch`; the driver then
//!    moves to the next generation (`-g1`, `-g2`, …), so deleting a disk
//!    and creating one of the same name later works, and a resumed
//!    process walks the same generations to the same volume.
//! 3. The volume is tagged `kompox-create-token=<token>` at creation and
//!    the tag is removed once the create has finished (volume
//!    `available`). **Rule:** a create whose name is already taken returns
//!    that volume if it still carries a token from the *same* request
//!    (same parameters: the earlier process died between sending and
//!    recording the result), and is a `Conflict` otherwise (the name is
//!    taken by a finished disk, or by an unfinished create with other
//!    parameters). Snapshots follow the same rule with a token tag of the
//!    source volume (EC2 has no `ClientToken` for snapshots).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ec2::types::{
    Filter, ResourceType, SnapshotState, Tag, TagSpecification, VolumeState, VolumeType,
};
use sha2::{Digest, Sha256};

use super::aws_error::{code_of, sdk_error};
use super::{COPY_OP_PREFIX, Ec2, EksDriver, Timing, zones};
use crate::provider::driver::{
    CreateDisk, Disk, DiskScope, DriverError, Operation, OperationKind, OperationState, Placement,
    Progress, Snapshot, Source, validate_disk_name, validate_snapshot_name, validate_volume_name,
};

/// The tag keys Kompox puts on EBS volumes and snapshots.
pub mod tags {
    pub const APP_ID_HASH: &str = "kompox-app-id-hash";
    pub const APP_NAME: &str = "kompox-app-name";
    pub const VOLUME: &str = "kompox-volume";
    pub const DISK_NAME: &str = "kompox-disk-name";
    /// `true` on the one assigned disk of a volume, `false` on the others.
    pub const DISK_ASSIGNED: &str = "kompox-disk-assigned";
    pub const SNAPSHOT_NAME: &str = "kompox-snapshot-name";
    /// The disk a snapshot was taken from.
    pub const SOURCE_DISK: &str = "kompox-source-disk";
    /// Present while a create is unfinished (see the module doc).
    pub const CREATE_TOKEN: &str = "kompox-create-token";
    /// On the temporary snapshot of a disk clone: the new disk's name.
    pub const CLONE_FOR: &str = "kompox-clone-for";
    /// On a cross-region copy: `<source region>/<source snapshot id>`.
    pub const COPIED_FROM: &str = "kompox-copied-from";
    pub const MANAGED_BY: &str = "managed-by";
    pub const MANAGED_BY_VALUE: &str = "kompox";
    pub const NAME: &str = "Name";
}

/// EBS volume types a disk may have (`options.type`).
pub const VOLUME_TYPES: &[&str] = &["gp3", "gp2", "io1", "io2", "st1", "sc1"];
/// Option keys a disk create accepts.
pub const OPTION_KEYS: &[&str] = &["type", "iops", "throughput", "encrypted", "kmsKeyId"];
/// Largest EBS volume, GiB (64 TiB).
const MAX_GIB: i64 = 65_536;
/// Token generations tried before giving up (each is a deleted disk of
/// the same name and parameters within AWS's token memory).
const MAX_GENERATIONS: u32 = 32;

const GIB: u64 = 1 << 30;

// ---------------------------------------------------------------- pure part

/// What `CreateVolume` is asked for, from the disk's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VolumeSpec {
    pub kind: String,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
}

/// The volume spec of `options` (`type` gp3 by default, `iops`,
/// `throughput`, `encrypted` true by default, `kmsKeyId`, else
/// `default_kms`). Combinations EBS refuses are refused here, naming the
/// option, before anything is sent.
pub(super) fn volume_spec(
    options: &BTreeMap<String, serde_json::Value>,
    default_kms: Option<&str>,
) -> Result<VolumeSpec, DriverError> {
    let bad = |m: String| DriverError::InvalidInput(format!("disk options: {m}"));
    if let Some(k) = options.keys().find(|k| !OPTION_KEYS.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown option `{k}` (EBS disks take {})",
            OPTION_KEYS.join(", ")
        )));
    }
    let int = |k: &str| -> Result<Option<i32>, DriverError> {
        match options.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| bad(format!("`{k}` must be a positive integer, not {n}"))),
            Some(serde_json::Value::String(s)) => s
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| bad(format!("`{k}` must be a positive integer, not `{s}`"))),
            Some(v) => Err(bad(format!("`{k}` must be a positive integer, not {v}"))),
        }
    };
    let text = |k: &str| -> Result<Option<String>, DriverError> {
        match options.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                Ok(Some(s.trim().to_string()))
            }
            Some(v) => Err(bad(format!("`{k}` must be a non-empty string, not {v}"))),
        }
    };
    let kind = text("type")?.unwrap_or_else(|| "gp3".to_string());
    if !VOLUME_TYPES.contains(&kind.as_str()) {
        return Err(bad(format!(
            "`type` `{kind}` is not an EBS volume type Kompox uses ({})",
            VOLUME_TYPES.join(", ")
        )));
    }
    let iops = int("iops")?;
    let throughput = int("throughput")?;
    let encrypted = match options.get("encrypted") {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) if s == "true" => true,
        Some(serde_json::Value::String(s)) if s == "false" => false,
        Some(v) => return Err(bad(format!("`encrypted` must be true or false, not {v}"))),
    };
    let explicit_kms = text("kmsKeyId")?;
    match kind.as_str() {
        "io1" | "io2" if iops.is_none() => {
            return Err(bad(format!("`type` {kind} needs `iops`")));
        }
        "gp2" | "st1" | "sc1" if iops.is_some() => {
            return Err(bad(format!(
                "`iops` is for gp3, io1 and io2 volumes, not {kind}"
            )));
        }
        _ => {}
    }
    if throughput.is_some() && kind != "gp3" {
        return Err(bad(format!("`throughput` is for gp3 volumes, not {kind}")));
    }
    if explicit_kms.is_some() && !encrypted {
        return Err(bad(
            "`kmsKeyId` needs `encrypted: true` (the default)".to_string()
        ));
    }
    let kms_key_id = if encrypted {
        explicit_kms.or_else(|| default_kms.map(str::to_string))
    } else {
        None
    };
    Ok(VolumeSpec {
        kind,
        iops,
        throughput,
        encrypted,
        kms_key_id,
    })
}

/// Bytes as whole GiB, rounded up, at least 1 (EBS sizes are GiB).
pub(super) fn size_gib(bytes: u64) -> Result<i32, DriverError> {
    let gib = bytes.div_ceil(GIB).max(1);
    if gib > MAX_GIB as u64 {
        return Err(DriverError::InvalidInput(format!(
            "disk size {bytes} bytes is more than the 64 TiB an EBS volume can hold"
        )));
    }
    Ok(gib as i32)
}

/// The create token of a request: `k4x-` and 40 hex digits of the SHA-256
/// of its parts (NUL-separated, so parts cannot run into each other).
pub(super) fn token_base(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("k4x-{hex}")
}

/// The `ClientToken` of generation `generation` (≤ 64 ASCII characters).
pub(super) fn client_token(base: &str, generation: u32) -> String {
    format!("{base}-g{generation}")
}

/// Whether a resource's create-token tag comes from the request `base`.
fn token_matches(tags: &BTreeMap<String, String>, base: &str) -> bool {
    tags.get(tags::CREATE_TOKEN)
        .is_some_and(|t| t == base || t.strip_prefix(base).is_some_and(|g| g.starts_with("-g")))
}

/// `ebs-copy:<region>:<snapshot id>` → (region, snapshot id).
pub(super) fn parse_copy_id(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix(COPY_OP_PREFIX)?;
    let (region, snap) = rest.split_once(':')?;
    (is_region(region) && snap.starts_with("snap-") && !snap.contains(':'))
        .then_some((region, snap))
}

fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Seconds-resolution RFC 3339 (as the K3s driver writes), so that the
/// string order of `created_at` is the time order.
fn rfc3339(t: Option<&DateTime>) -> Option<String> {
    t.and_then(|t| {
        DateTime::from_secs(t.secs())
            .fmt(DateTimeFormat::DateTime)
            .ok()
    })
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag_filter(key: &str, value: &str) -> Filter {
    filter(&format!("tag:{key}"), value)
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        b = b.tags(tag(k, v));
    }
    b.build()
}

/// The tags every Kompox resource of `scope`/`volume` carries.
fn base_tags(scope: &DiskScope, volume: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (tags::APP_ID_HASH.to_string(), scope.app_id_hash.clone()),
        (tags::APP_NAME.to_string(), scope.app_name.clone()),
        (tags::VOLUME.to_string(), volume.to_string()),
        (
            tags::MANAGED_BY.to_string(),
            tags::MANAGED_BY_VALUE.to_string(),
        ),
    ])
}

/// An EBS volume that is a Kompox disk.
#[derive(Debug, Clone)]
struct Vol {
    id: String,
    name: String,
    volume: String,
    app_id_hash: String,
    assigned: bool,
    size_gib: i32,
    az: Option<String>,
    state: VolumeState,
    created: Option<DateTime>,
    tags: BTreeMap<String, String>,
}

impl Vol {
    /// `None` for a volume without the Kompox identity tags.
    fn from_sdk(v: &aws_sdk_ec2::types::Volume) -> Option<Vol> {
        let tags = tag_map(v.tags());
        Some(Vol {
            id: v.volume_id()?.to_string(),
            name: tags.get(tags::DISK_NAME)?.clone(),
            volume: tags.get(tags::VOLUME)?.clone(),
            app_id_hash: tags.get(tags::APP_ID_HASH)?.clone(),
            assigned: tags.get(tags::DISK_ASSIGNED).is_some_and(|a| a == "true"),
            size_gib: v.size().unwrap_or_default(),
            az: v.availability_zone().map(str::to_string),
            state: v.state().cloned().unwrap_or(VolumeState::Creating),
            created: v.create_time().cloned(),
            tags,
        })
    }

    fn is_gone(&self) -> bool {
        matches!(self.state, VolumeState::Deleting | VolumeState::Deleted)
    }
}

/// An EBS snapshot of a Kompox app (named, or a clone's temporary one).
#[derive(Debug, Clone)]
struct Snap {
    id: String,
    name: Option<String>,
    volume: String,
    app_id_hash: String,
    source_volume: Option<String>,
    state: SnapshotState,
    message: Option<String>,
    progress: Option<String>,
    size_gib: i32,
    started: Option<DateTime>,
    tags: BTreeMap<String, String>,
}

impl Snap {
    fn from_sdk(s: &aws_sdk_ec2::types::Snapshot) -> Option<Snap> {
        let tags = tag_map(s.tags());
        Some(Snap {
            id: s.snapshot_id()?.to_string(),
            name: tags.get(tags::SNAPSHOT_NAME).cloned(),
            volume: tags.get(tags::VOLUME).cloned().unwrap_or_default(),
            app_id_hash: tags.get(tags::APP_ID_HASH).cloned().unwrap_or_default(),
            source_volume: s.volume_id().map(str::to_string),
            state: s.state().cloned().unwrap_or(SnapshotState::Pending),
            message: s.state_message().map(str::to_string),
            progress: s.progress().map(str::to_string),
            size_gib: s.volume_size().unwrap_or_default(),
            started: s.start_time().cloned(),
            tags,
        })
    }

    fn failed(&self) -> bool {
        self.state == SnapshotState::Error
    }
}

/// What one create attempt made.
enum Made {
    /// The resource id.
    Id(String),
    /// `IdempotentParameterMismatch`: the client token belongs to an
    /// earlier, other request; try the next generation.
    TokenTaken,
}

/// Sends a create at most once per attempt and never again before a
/// lookup has shown that no earlier attempt made the resource (see the
/// module doc). `lookup` answers `Ok(Some(id))` for the resource this
/// request made, `Err(Conflict)` for a clash.
async fn create_once<S, SF, L, LF>(
    timing: &Timing,
    what: &str,
    mut send: S,
    mut lookup: L,
) -> Result<Made, DriverError>
where
    S: FnMut() -> SF,
    SF: Future<Output = Result<Made, DriverError>>,
    L: FnMut() -> LF,
    LF: Future<Output = Result<Option<String>, DriverError>>,
{
    let attempts = timing.create_attempts.max(1);
    let mut sent = false;
    let mut last: Option<DriverError> = None;
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(timing.backoff(attempt - 1)).await;
        }
        if sent {
            match lookup().await {
                Ok(Some(id)) => {
                    tracing::debug!(what, %id, "found what an earlier attempt created");
                    return Ok(Made::Id(id));
                }
                Ok(None) => {}
                Err(e) if e.retryable() => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        sent = true;
        match send().await {
            Ok(made) => return Ok(made),
            Err(e) if e.retryable() => {
                tracing::debug!(what, error = %e, attempt, "create attempt failed; will look up and retry");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(DriverError::Transient(format!(
        "{what}: still failing after {attempts} attempts; running it again resumes it: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

// ------------------------------------------------------------------ I/O part

impl EksDriver {
    async fn own_ec2(&self) -> Ec2 {
        self.ec2(&self.cfg.region).await
    }

    /// The availability zones of `ec2`'s region (cached).
    async fn region_zones(&self, ec2: &Ec2) -> Result<Vec<String>, DriverError> {
        if let Some(z) = self
            .zones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ec2.region)
        {
            return Ok(z.clone());
        }
        let out = ec2
            .client
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    &format!("list the availability zones of region {}", ec2.region),
                    e,
                )
            })?;
        let mut names: Vec<String> = out
            .availability_zones()
            .iter()
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect();
        names.sort();
        self.zones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ec2.region.clone(), names.clone());
        Ok(names)
    }

    /// The AWS availability zone of a placement.
    async fn resolve_zone(&self, ec2: &Ec2, placement: &Placement) -> Result<String, DriverError> {
        let region = &ec2.region;
        let zone = match placement {
            Placement::Zonal(z) => z,
            Placement::Any => {
                return Err(DriverError::InvalidInput(format!(
                    "an EBS volume lives in one availability zone: pass the zone with -Z/--zone (e.g. `{region}-1`) or set the App's deployment.zone"
                )));
            }
            Placement::Regional(zs) => {
                return Err(DriverError::NotSupported(format!(
                    "EBS has no regional volumes (asked for zones {}): a disk lives in one zone; to move it, snapshot it and restore the snapshot in another zone",
                    zs.join(", ")
                )));
            }
            Placement::ZoneRedundant => {
                return Err(DriverError::NotSupported(
                    "EBS has no zone-redundant volumes: a disk lives in one zone; to move it, snapshot it and restore the snapshot in another zone".to_string(),
                ));
            }
            Placement::Node(n) => {
                return Err(DriverError::NotSupported(format!(
                    "EBS volumes are placed in an availability zone, not on a node (`{n}`): pass a zone such as `{region}-1`"
                )));
            }
        };
        let known = self.region_zones(ec2).await?;
        let listing = || {
            known
                .iter()
                .map(|z| zones::to_kompox(region, z))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let aws = zones::to_aws(region, zone).ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "`{zone}` is not an availability zone of region {region} (zones: {})",
                listing()
            ))
        })?;
        if !known.contains(&aws) {
            return Err(DriverError::InvalidInput(format!(
                "zone `{zone}` ({aws}) does not exist in region {region} (zones: {})",
                listing()
            )));
        }
        Ok(aws)
    }

    /// Kompox volumes of `scope` (optionally one volume, one disk name),
    /// not being deleted.
    async fn find_volumes(
        &self,
        ec2: &Ec2,
        scope: &DiskScope,
        volume: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<Vol>, DriverError> {
        let mut req = ec2
            .client
            .describe_volumes()
            .filters(tag_filter(tags::APP_ID_HASH, &scope.app_id_hash))
            .filters(tag_filter(tags::MANAGED_BY, tags::MANAGED_BY_VALUE));
        if let Some(v) = volume {
            req = req.filters(tag_filter(tags::VOLUME, v));
        }
        if let Some(n) = name {
            req = req.filters(tag_filter(tags::DISK_NAME, n));
        }
        let items = req.into_paginator().items().send().try_collect().await;
        let items = items.map_err(|e| {
            sdk_error(
                &format!(
                    "list the EBS volumes of app `{}` in {}",
                    scope.app_name, ec2.region
                ),
                e,
            )
        })?;
        Ok(items
            .iter()
            .filter_map(Vol::from_sdk)
            .filter(|v| !v.is_gone() && v.app_id_hash == scope.app_id_hash)
            .filter(|v| volume.is_none_or(|x| v.volume == x))
            .filter(|v| name.is_none_or(|x| v.name == x))
            .collect())
    }

    /// Kompox snapshots of `scope` in `ec2`'s region (optionally one
    /// volume, and one more tag), in any state.
    async fn find_snapshots(
        &self,
        ec2: &Ec2,
        scope: &DiskScope,
        volume: Option<&str>,
        extra: Option<(&str, &str)>,
    ) -> Result<Vec<Snap>, DriverError> {
        let mut req = ec2
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(tag_filter(tags::APP_ID_HASH, &scope.app_id_hash))
            .filters(tag_filter(tags::MANAGED_BY, tags::MANAGED_BY_VALUE));
        if let Some(v) = volume {
            req = req.filters(tag_filter(tags::VOLUME, v));
        }
        if let Some((k, v)) = extra {
            req = req.filters(tag_filter(k, v));
        }
        let items = req.into_paginator().items().send().try_collect().await;
        let items = items.map_err(|e| {
            sdk_error(
                &format!(
                    "list the EBS snapshots of app `{}` in {}",
                    scope.app_name, ec2.region
                ),
                e,
            )
        })?;
        Ok(items
            .iter()
            .filter_map(Snap::from_sdk)
            .filter(|s| s.app_id_hash == scope.app_id_hash)
            .filter(|s| volume.is_none_or(|x| s.volume == x))
            .filter(|s| extra.is_none_or(|(k, v)| s.tags.get(k).is_some_and(|t| t == v)))
            .collect())
    }

    /// The snapshot `name` of `volume` (not failed), if any.
    async fn named_snapshot(
        &self,
        ec2: &Ec2,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<Option<Snap>, DriverError> {
        Ok(self
            .find_snapshots(ec2, scope, Some(volume), Some((tags::SNAPSHOT_NAME, name)))
            .await?
            .into_iter()
            .find(|s| !s.failed()))
    }

    async fn describe_volume(
        &self,
        ec2: &Ec2,
        id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::Volume>, DriverError> {
        match ec2.client.describe_volumes().volume_ids(id).send().await {
            Ok(out) => Ok(out.volumes().first().cloned()),
            Err(e) => match sdk_error(&format!("describe EBS volume {id}"), e) {
                DriverError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn describe_snapshot(&self, ec2: &Ec2, id: &str) -> Result<Option<Snap>, DriverError> {
        match ec2
            .client
            .describe_snapshots()
            .snapshot_ids(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.snapshots().first().and_then(Snap::from_sdk)),
            Err(e) => match sdk_error(&format!("describe EBS snapshot {id}"), e) {
                DriverError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Waits for a new volume to become usable.
    async fn wait_volume(&self, ec2: &Ec2, id: &str, what: &str) -> Result<Vol, DriverError> {
        let t = &self.cfg.timing;
        let start = Instant::now();
        let mut delay = t.poll_initial;
        loop {
            let mut state = "not visible yet".to_string();
            match self.describe_volume(ec2, id).await {
                Ok(Some(v)) => match v.state() {
                    Some(VolumeState::Available) | Some(VolumeState::InUse) => {
                        return Vol::from_sdk(&v).ok_or_else(|| {
                            DriverError::Io(format!("{what}: EBS volume {id} lost its Kompox tags"))
                        });
                    }
                    Some(VolumeState::Error) => {
                        return Err(DriverError::Io(format!(
                            "{what}: EBS volume {id} failed (state `error`); delete it with `disk delete` and create it again"
                        )));
                    }
                    Some(s @ (VolumeState::Deleting | VolumeState::Deleted)) => {
                        return Err(DriverError::Conflict(format!(
                            "{what}: EBS volume {id} was deleted while being created (state `{}`)",
                            s.as_str()
                        )));
                    }
                    Some(s) => state = format!("state `{}`", s.as_str()),
                    None => {}
                },
                Ok(None) => {}
                Err(e) if e.retryable() => state = e.to_string(),
                Err(e) => return Err(e),
            }
            if start.elapsed() >= t.volume_wait {
                return Err(DriverError::Transient(format!(
                    "{what}: EBS volume {id} is not available after {} s ({state}); running the same create again resumes it",
                    t.volume_wait.as_secs()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(t.poll_max);
        }
    }

    /// Waits for a snapshot to complete, reporting its progress.
    async fn wait_snapshot(&self, ec2: &Ec2, id: &str, what: &str) -> Result<Snap, DriverError> {
        let t = &self.cfg.timing;
        let start = Instant::now();
        let mut delay = t.poll_initial;
        loop {
            let mut state = "not visible yet".to_string();
            match self.describe_snapshot(ec2, id).await {
                Ok(Some(s)) => match &s.state {
                    SnapshotState::Completed => return Ok(s),
                    SnapshotState::Error => {
                        return Err(DriverError::Io(format!(
                            "{what}: EBS snapshot {id} failed: {}",
                            s.message.as_deref().unwrap_or("state `error`")
                        )));
                    }
                    other => {
                        let pct = s.progress.clone().unwrap_or_default();
                        self.report(what, &pct, s.size_gib);
                        state = format!("state `{}` {pct}", other.as_str());
                    }
                },
                Ok(None) => {}
                Err(e) if e.retryable() => state = e.to_string(),
                Err(e) => return Err(e),
            }
            if start.elapsed() >= t.snapshot_wait {
                return Err(DriverError::Transient(format!(
                    "{what}: EBS snapshot {id} is not complete after {} s ({state}); running the same command again keeps waiting",
                    t.snapshot_wait.as_secs()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(t.poll_max);
        }
    }

    /// Progress of a pending snapshot (`45%` of its volume size).
    fn report(&self, what: &str, pct: &str, size_gib: i32) {
        let Some(progress) = &self.progress else {
            return;
        };
        let total = u64::try_from(size_gib).unwrap_or_default() * GIB;
        let pct: u64 = pct.trim_end_matches('%').trim().parse().unwrap_or(0);
        progress(&Progress {
            what: what.to_string(),
            done_bytes: total / 100 * pct.min(100),
            total_bytes: Some(total),
        });
    }

    /// Removes the create-token tag: the create is finished.
    async fn finish_create(&self, ec2: &Ec2, id: &str, what: &str) -> Result<(), DriverError> {
        ec2.client
            .delete_tags()
            .resources(id)
            .tags(Tag::builder().key(tags::CREATE_TOKEN).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error(&format!("{what}: untag {id}"), e))
    }

    fn disk_of(&self, v: &Vol) -> Disk {
        Disk {
            name: v.name.clone(),
            volume: v.volume.clone(),
            app_id_hash: v.app_id_hash.clone(),
            assigned: v.assigned,
            size_bytes: u64::try_from(v.size_gib).unwrap_or_default() * GIB,
            // The AWS name: PersistentVolumes pin it on
            // `topology.kubernetes.io/zone`, which EKS nodes carry as
            // `us-east-1a`, not in the Kompox form.
            zone: v.az.clone(),
            node: None,
            handle: v.id.clone(),
            created_at: rfc3339(v.created.as_ref()),
        }
    }

    fn snapshot_of(&self, s: &Snap) -> Snapshot {
        Snapshot {
            name: s.name.clone().unwrap_or_default(),
            volume: s.volume.clone(),
            app_id_hash: s.app_id_hash.clone(),
            size_bytes: u64::try_from(s.size_gib).unwrap_or_default() * GIB,
            handle: s.id.clone(),
            source_disk: s.tags.get(tags::SOURCE_DISK).cloned(),
            checksum: None,
            created_at: rfc3339(s.started.as_ref()),
        }
    }

    pub(super) async fn ebs_list_disks(&self, scope: &DiskScope) -> Result<Vec<Disk>, DriverError> {
        scope.validate()?;
        let ec2 = self.own_ec2().await;
        let mut disks: Vec<Disk> = self
            .find_volumes(&ec2, scope, None, None)
            .await?
            .iter()
            .map(|v| self.disk_of(v))
            .collect();
        crate::provider::driver::sort_listing(&mut disks);
        Ok(disks)
    }

    pub(super) async fn ebs_list_snapshots(
        &self,
        scope: &DiskScope,
    ) -> Result<Vec<Snapshot>, DriverError> {
        scope.validate()?;
        let ec2 = self.own_ec2().await;
        let mut snaps: Vec<Snapshot> = self
            .find_snapshots(&ec2, scope, None, None)
            .await?
            .iter()
            .filter(|s| s.name.is_some() && s.state == SnapshotState::Completed)
            .map(|s| self.snapshot_of(s))
            .collect();
        crate::provider::driver::sort_listing(&mut snaps);
        Ok(snaps)
    }

    pub(super) async fn ebs_create_disk(
        &self,
        scope: &DiskScope,
        volume: &str,
        req: CreateDisk,
    ) -> Result<Disk, DriverError> {
        scope.validate()?;
        validate_volume_name(volume)?;
        validate_disk_name(&req.name)?;
        let name = req.name.as_str();
        let what = format!("create disk {volume}/{name}");
        let spec = volume_spec(&req.options, self.cfg.kms_key_id.as_deref())?;
        let mut gib = size_gib(req.size_bytes)?;
        let ec2 = self.own_ec2().await;
        let az = self.resolve_zone(&ec2, &req.placement).await?;

        // The source, resolved before anything is made.
        enum From {
            Empty,
            Snapshot(String),
            Disk(Vol),
        }
        let from = match &req.source {
            None => From::Empty,
            Some(Source::Snapshot(s)) => {
                let snap = self.restore_source(&ec2, scope, volume, s).await?;
                gib = gib.max(snap.size_gib);
                From::Snapshot(snap.id)
            }
            Some(Source::Disk(d)) => {
                validate_disk_name(d)?;
                let v = self
                    .find_volumes(&ec2, scope, Some(volume), Some(d))
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        DriverError::NotFound(format!("source disk `{d}` of volume `{volume}`"))
                    })?;
                gib = gib.max(v.size_gib);
                From::Disk(v)
            }
        };
        let source_label = match &from {
            From::Empty => String::new(),
            From::Snapshot(id) => format!("snapshot:{id}"),
            From::Disk(v) => format!("disk:{}", v.id),
        };
        let base = token_base(&[
            &scope.app_id_hash,
            volume,
            name,
            &gib.to_string(),
            &az,
            &spec.kind,
            &spec.iops.map(|n| n.to_string()).unwrap_or_default(),
            &spec.throughput.map(|n| n.to_string()).unwrap_or_default(),
            if spec.encrypted { "encrypted" } else { "plain" },
            spec.kms_key_id.as_deref().unwrap_or_default(),
            &source_label,
        ]);

        // A taken name: resume our own unfinished create, else Conflict.
        let taken = |v: &Vol| {
            DriverError::Conflict(format!(
                "disk `{name}` of volume `{volume}` already exists (EBS volume {}{})",
                v.id,
                if v.tags.contains_key(tags::CREATE_TOKEN) {
                    ", from an unfinished create with other parameters"
                } else {
                    ""
                }
            ))
        };
        if let Some(v) = self
            .find_volumes(&ec2, scope, Some(volume), Some(name))
            .await?
            .into_iter()
            .next()
        {
            if token_matches(&v.tags, &base) {
                return self.finish_volume(&ec2, scope, volume, &v.id, &what).await;
            }
            return Err(taken(&v));
        }

        let snapshot_id = match &from {
            From::Empty => None,
            From::Snapshot(id) => Some(id.clone()),
            From::Disk(v) => Some(self.clone_snapshot(&ec2, scope, volume, name, v).await?),
        };
        let mut tags = base_tags(scope, volume);
        tags.insert(tags::DISK_NAME.into(), name.into());
        tags.insert(tags::DISK_ASSIGNED.into(), "false".into());
        tags.insert(
            tags::NAME.into(),
            format!("kompox-{}-{volume}-{name}", scope.app_name),
        );

        let mut generation = 0;
        let id = loop {
            let token = client_token(&base, generation);
            let mut tags = tags.clone();
            tags.insert(tags::CREATE_TOKEN.into(), token.clone());
            let (ec2r, spec, az, tags, token, snapshot_id, what_r) =
                (&ec2, &spec, &az, &tags, &token, &snapshot_id, &what);
            let send = move || async move {
                let mut call = ec2r
                    .once
                    .create_volume()
                    .client_token(token)
                    .availability_zone(az)
                    .size(gib)
                    .volume_type(VolumeType::from(spec.kind.as_str()))
                    .encrypted(spec.encrypted)
                    .tag_specifications(tag_spec(ResourceType::Volume, tags));
                if let Some(n) = spec.iops {
                    call = call.iops(n);
                }
                if let Some(n) = spec.throughput {
                    call = call.throughput(n);
                }
                if let Some(k) = &spec.kms_key_id {
                    call = call.kms_key_id(k);
                }
                if let Some(s) = snapshot_id {
                    call = call.snapshot_id(s);
                }
                match call.send().await {
                    Ok(out) => out
                        .volume_id()
                        .map(|id| Made::Id(id.to_string()))
                        .ok_or_else(|| {
                            DriverError::Io(format!("{what_r}: CreateVolume returned no volume id"))
                        }),
                    Err(e) if code_of(&e) == Some("IdempotentParameterMismatch") => {
                        Ok(Made::TokenTaken)
                    }
                    Err(e) => Err(sdk_error(&format!("{what_r} (CreateVolume in {az})"), e)),
                }
            };
            let base_r = &base;
            let taken_r = &taken;
            let lookup = move || async move {
                match self
                    .find_volumes(ec2r, scope, Some(volume), Some(name))
                    .await?
                    .into_iter()
                    .next()
                {
                    None => Ok(None),
                    Some(v) if token_matches(&v.tags, base_r) => Ok(Some(v.id)),
                    Some(v) => Err(taken_r(&v)),
                }
            };
            match create_once(&self.cfg.timing, &what, send, lookup).await? {
                Made::Id(id) => break id,
                Made::TokenTaken if generation + 1 < MAX_GENERATIONS => generation += 1,
                Made::TokenTaken => {
                    return Err(DriverError::Conflict(format!(
                        "{what}: AWS refused {MAX_GENERATIONS} client tokens as used by earlier requests; try another disk name"
                    )));
                }
            }
        };
        self.finish_volume(&ec2, scope, volume, &id, &what).await
    }

    /// The snapshot a restore reads: the completed snapshot `name` of
    /// `volume`, or a provider-native snapshot id (`snap-…`, an import).
    async fn restore_source(
        &self,
        ec2: &Ec2,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<Snap, DriverError> {
        let missing = |extra: &str| {
            DriverError::NotFound(format!(
                "source snapshot `{name}` of volume `{volume}`{extra}"
            ))
        };
        if let Some(s) = self.named_snapshot(ec2, scope, volume, name).await? {
            return if s.state == SnapshotState::Completed {
                Ok(s)
            } else {
                Err(missing(" (it is still pending)"))
            };
        }
        if name.starts_with("snap-")
            && let Some(s) = self.describe_snapshot(ec2, name).await?
        {
            return if s.state == SnapshotState::Completed {
                Ok(s)
            } else {
                Err(missing(" (it is not completed)"))
            };
        }
        validate_snapshot_name(name)?;
        Err(missing(""))
    }

    /// The temporary snapshot a clone of `src` into disk `name` restores
    /// from: found again after a crash, else made; waited for.
    async fn clone_snapshot(
        &self,
        ec2: &Ec2,
        scope: &DiskScope,
        volume: &str,
        name: &str,
        src: &Vol,
    ) -> Result<String, DriverError> {
        let what = format!("clone disk {volume}/{} into {name}", src.name);
        let existing = |all: Vec<Snap>| {
            all.into_iter()
                .find(|s| !s.failed() && s.source_volume.as_deref() == Some(src.id.as_str()))
                .map(|s| s.id)
        };
        let found = existing(
            self.find_snapshots(ec2, scope, Some(volume), Some((tags::CLONE_FOR, name)))
                .await?,
        );
        let id = match found {
            Some(id) => id,
            None => {
                let mut tags = base_tags(scope, volume);
                tags.insert(tags::CLONE_FOR.into(), name.into());
                tags.insert(
                    tags::NAME.into(),
                    format!("kompox-{}-{volume}-{name}-clone", scope.app_name),
                );
                let (tags_r, what_r) = (&tags, &what);
                let send = move || async move {
                    match ec2
                        .once
                        .create_snapshot()
                        .volume_id(&src.id)
                        .description(format!("kompox: temporary snapshot for {what_r}"))
                        .tag_specifications(tag_spec(ResourceType::Snapshot, tags_r))
                        .send()
                        .await
                    {
                        Ok(out) => out
                            .snapshot_id()
                            .map(|id| Made::Id(id.to_string()))
                            .ok_or_else(|| {
                                DriverError::Io(format!("{what_r}: CreateSnapshot returned no id"))
                            }),
                        Err(e) => Err(sdk_error(&format!("{what_r} (CreateSnapshot)"), e)),
                    }
                };
                let lookup = move || async move {
                    Ok(existing(
                        self.find_snapshots(
                            ec2,
                            scope,
                            Some(volume),
                            Some((tags::CLONE_FOR, name)),
                        )
                        .await?,
                    ))
                };
                match create_once(&self.cfg.timing, &what, send, lookup).await? {
                    Made::Id(id) => id,
                    Made::TokenTaken => unreachable!("CreateSnapshot has no client token"),
                }
            }
        };
        self.wait_snapshot(ec2, &id, &what).await?;
        Ok(id)
    }

    /// Waits for the new volume, drops a clone's temporary snapshot and
    /// the create token: the create is done.
    async fn finish_volume(
        &self,
        ec2: &Ec2,
        scope: &DiskScope,
        volume: &str,
        id: &str,
        what: &str,
    ) -> Result<Disk, DriverError> {
        let v = self.wait_volume(ec2, id, what).await?;
        for s in self
            .find_snapshots(ec2, scope, Some(volume), Some((tags::CLONE_FOR, &v.name)))
            .await?
        {
            // Best effort: a leftover is cleaned up by the next clone into
            // the same name, and costs only its storage until then.
            if let Err(e) = ec2.client.delete_snapshot().snapshot_id(&s.id).send().await {
                tracing::warn!(snapshot = %s.id, error = %sdk_error("delete temporary clone snapshot", e), "left a temporary snapshot behind");
            }
        }
        if v.tags.contains_key(tags::CREATE_TOKEN) {
            self.finish_create(ec2, id, what).await?;
        }
        let mut v = v;
        v.tags.remove(tags::CREATE_TOKEN);
        Ok(self.disk_of(&v))
    }

    pub(super) async fn ebs_assign_disk(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<(), DriverError> {
        scope.validate()?;
        validate_volume_name(volume)?;
        validate_disk_name(name)?;
        let ec2 = self.own_ec2().await;
        let vols = self.find_volumes(&ec2, scope, Some(volume), None).await?;
        let target = vols
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| DriverError::NotFound(format!("disk `{name}` of volume `{volume}`")))?;
        // Target first: a crash in between leaves two assigned (detected,
        // fixed by assigning again), never zero (which would plan a new
        // disk). Unchanged disks are not touched.
        if !target.assigned {
            self.retag_assigned(&ec2, volume, name, &[target.id.as_str()], "true")
                .await?;
        }
        let others: Vec<&str> = vols
            .iter()
            .filter(|v| v.name != name && v.assigned)
            .map(|v| v.id.as_str())
            .collect();
        self.retag_assigned(&ec2, volume, name, &others, "false")
            .await
    }

    async fn retag_assigned(
        &self,
        ec2: &Ec2,
        volume: &str,
        name: &str,
        ids: &[&str],
        value: &str,
    ) -> Result<(), DriverError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut call = ec2
            .client
            .create_tags()
            .tags(tag(tags::DISK_ASSIGNED, value));
        for id in ids {
            call = call.resources(*id);
        }
        call.send().await.map(|_| ()).map_err(|e| {
            sdk_error(
                &format!("assign disk {volume}/{name}: tag {}", ids.join(", ")),
                e,
            )
        })
    }

    pub(super) async fn ebs_delete_disk(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<(), DriverError> {
        scope.validate()?;
        validate_volume_name(volume)?;
        validate_disk_name(name)?;
        let ec2 = self.own_ec2().await;
        for v in self
            .find_volumes(&ec2, scope, Some(volume), Some(name))
            .await?
        {
            if v.assigned {
                return Err(DriverError::Conflict(format!(
                    "disk `{name}` is the assigned disk of volume `{volume}`; assign another disk first"
                )));
            }
            match ec2.client.delete_volume().volume_id(&v.id).send().await {
                Ok(_) => {}
                Err(e) => match sdk_error(
                    &format!("delete disk {volume}/{name} (EBS volume {})", v.id),
                    e,
                ) {
                    DriverError::NotFound(_) => {}
                    DriverError::Conflict(m) => {
                        return Err(DriverError::Conflict(format!(
                            "{m} (is it still attached to a node? stop the app first)"
                        )));
                    }
                    other => return Err(other),
                },
            }
        }
        Ok(())
    }

    pub(super) async fn ebs_create_snapshot(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
        source: Option<Source>,
    ) -> Result<Snapshot, DriverError> {
        scope.validate()?;
        validate_volume_name(volume)?;
        validate_snapshot_name(name)?;
        let what = format!("create snapshot {volume}/{name}");
        let ec2 = self.own_ec2().await;
        let all = self
            .find_snapshots(&ec2, scope, Some(volume), Some((tags::SNAPSHOT_NAME, name)))
            .await?;
        for s in all.iter().filter(|s| s.failed()) {
            // A failed snapshot holds no data; it must not block the name.
            if let Err(e) = ec2.client.delete_snapshot().snapshot_id(&s.id).send().await {
                tracing::warn!(snapshot = %s.id, error = %sdk_error("delete failed snapshot", e), "could not delete a failed snapshot");
            }
        }
        let existing = all.into_iter().find(|s| !s.failed());

        // What to snapshot: a volume (by default the assigned disk), or a
        // snapshot to copy.
        enum Src {
            Volume { id: String, disk: String },
            Snapshot(Snap),
        }
        let resolved: Result<Src, DriverError> = match &source {
            None => {
                let assigned: Vec<Vol> = self
                    .find_volumes(&ec2, scope, Some(volume), None)
                    .await?
                    .into_iter()
                    .filter(|v| v.assigned)
                    .collect();
                match assigned.as_slice() {
                    [d] => Ok(Src::Volume {
                        id: d.id.clone(),
                        disk: d.name.clone(),
                    }),
                    [] => Err(DriverError::NotFound(format!(
                        "volume `{volume}` has no assigned disk to snapshot"
                    ))),
                    more => Err(DriverError::Conflict(format!(
                        "volume `{volume}` has {} assigned disks; assign one first",
                        more.len()
                    ))),
                }
            }
            Some(Source::Disk(d)) => {
                validate_disk_name(d)?;
                self.find_volumes(&ec2, scope, Some(volume), Some(d))
                    .await?
                    .into_iter()
                    .next()
                    .map(|v| Src::Volume {
                        id: v.id,
                        disk: v.name,
                    })
                    .ok_or_else(|| {
                        DriverError::NotFound(format!("source disk `{d}` of volume `{volume}`"))
                    })
            }
            Some(Source::Snapshot(s)) => {
                validate_snapshot_name(s)?;
                match self.named_snapshot(&ec2, scope, volume, s).await? {
                    Some(snap) if snap.state == SnapshotState::Completed => Ok(Src::Snapshot(snap)),
                    Some(_) => Err(DriverError::NotFound(format!(
                        "source snapshot `{s}` of volume `{volume}` (it is still pending)"
                    ))),
                    None => Err(DriverError::NotFound(format!(
                        "source snapshot `{s}` of volume `{volume}`"
                    ))),
                }
            }
        };
        let base = resolved.as_ref().ok().map(|src| {
            let source_id = match src {
                Src::Volume { id, .. } => format!("disk:{id}"),
                Src::Snapshot(s) => format!("snapshot:{}", s.id),
            };
            token_base(&[&scope.app_id_hash, volume, name, &source_id])
        });
        let taken = |s: &Snap| {
            DriverError::Conflict(format!(
                "snapshot `{name}` of volume `{volume}` already exists (EBS snapshot {}, {})",
                s.id,
                s.state.as_str()
            ))
        };
        if let Some(s) = existing {
            return match &base {
                Some(b) if token_matches(&s.tags, b) => {
                    self.finish_snapshot(&ec2, &s.id, &what).await
                }
                _ => Err(taken(&s)),
            };
        }
        let src = resolved?;
        let base = base.unwrap_or_default();
        let mut tags = base_tags(scope, volume);
        tags.insert(tags::SNAPSHOT_NAME.into(), name.into());
        tags.insert(tags::CREATE_TOKEN.into(), base.clone());
        tags.insert(
            tags::NAME.into(),
            format!("kompox-{}-{volume}-{name}", scope.app_name),
        );
        let source_disk = match &src {
            Src::Volume { disk, .. } => Some(disk.clone()),
            Src::Snapshot(s) => s.tags.get(tags::SOURCE_DISK).cloned(),
        };
        if let Some(d) = source_disk {
            tags.insert(tags::SOURCE_DISK.into(), d);
        }
        let description = format!("kompox snapshot {}/{volume}/{name}", scope.app_name);
        let (ec2r, tags_r, what_r, src_r, desc_r, region) = (
            &ec2,
            &tags,
            &what,
            &src,
            &description,
            self.cfg.region.as_str(),
        );
        let send = move || async move {
            let out = match src_r {
                Src::Volume { id, .. } => ec2r
                    .once
                    .create_snapshot()
                    .volume_id(id)
                    .description(desc_r)
                    .tag_specifications(tag_spec(ResourceType::Snapshot, tags_r))
                    .send()
                    .await
                    .map(|o| o.snapshot_id().map(str::to_string))
                    .map_err(|e| sdk_error(&format!("{what_r} (CreateSnapshot of {id})"), e)),
                Src::Snapshot(s) => ec2r
                    .once
                    .copy_snapshot()
                    .source_region(region)
                    .source_snapshot_id(&s.id)
                    .description(desc_r)
                    .tag_specifications(tag_spec(ResourceType::Snapshot, tags_r))
                    .send()
                    .await
                    .map(|o| o.snapshot_id().map(str::to_string))
                    .map_err(|e| sdk_error(&format!("{what_r} (CopySnapshot of {})", s.id), e)),
            }?;
            out.map(Made::Id)
                .ok_or_else(|| DriverError::Io(format!("{what_r}: AWS returned no snapshot id")))
        };
        let (base_r, taken_r) = (&base, &taken);
        let lookup = move || async move {
            match self.named_snapshot(ec2r, scope, volume, name).await? {
                None => Ok(None),
                Some(s) if token_matches(&s.tags, base_r) => Ok(Some(s.id)),
                Some(s) => Err(taken_r(&s)),
            }
        };
        let id = match create_once(&self.cfg.timing, &what, send, lookup).await? {
            Made::Id(id) => id,
            Made::TokenTaken => unreachable!("snapshots have no client token"),
        };
        self.finish_snapshot(&ec2, &id, &what).await
    }

    async fn finish_snapshot(
        &self,
        ec2: &Ec2,
        id: &str,
        what: &str,
    ) -> Result<Snapshot, DriverError> {
        let mut s = self.wait_snapshot(ec2, id, what).await?;
        if s.tags.remove(tags::CREATE_TOKEN).is_some() {
            self.finish_create(ec2, id, what).await?;
        }
        Ok(self.snapshot_of(&s))
    }

    pub(super) async fn ebs_delete_snapshot(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<(), DriverError> {
        scope.validate()?;
        validate_volume_name(volume)?;
        validate_snapshot_name(name)?;
        let ec2 = self.own_ec2().await;
        for s in self
            .find_snapshots(&ec2, scope, Some(volume), Some((tags::SNAPSHOT_NAME, name)))
            .await?
        {
            match ec2.client.delete_snapshot().snapshot_id(&s.id).send().await {
                Ok(_) => {}
                Err(e) => match sdk_error(
                    &format!("delete snapshot {volume}/{name} (EBS snapshot {})", s.id),
                    e,
                ) {
                    DriverError::NotFound(_) => {}
                    other => return Err(other),
                },
            }
        }
        Ok(())
    }

    pub(super) async fn ebs_copy_snapshot(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
        target_region: &str,
    ) -> Result<Operation, DriverError> {
        scope.validate()?;
        validate_volume_name(volume)?;
        validate_snapshot_name(name)?;
        let region = self.cfg.region.as_str();
        if !is_region(target_region) {
            return Err(DriverError::InvalidInput(format!(
                "`{target_region}` is not an AWS region name"
            )));
        }
        if target_region == region {
            return Err(DriverError::InvalidInput(format!(
                "snapshot `{name}` is already in region {region}; to copy it within the region use `snapshot create -S snapshot:{name}`"
            )));
        }
        let what = format!("copy snapshot {volume}/{name} to {target_region}");
        let ec2 = self.own_ec2().await;
        let src = match self.named_snapshot(&ec2, scope, volume, name).await? {
            Some(s) if s.state == SnapshotState::Completed => s,
            Some(s) => {
                return Err(DriverError::Transient(format!(
                    "{what}: EBS snapshot {} is still {}; copy it once it is complete",
                    s.id,
                    s.state.as_str()
                )));
            }
            None => {
                return Err(DriverError::NotFound(format!(
                    "snapshot `{name}` of volume `{volume}` in {region}"
                )));
            }
        };
        let copied_from = format!("{region}/{}", src.id);
        let target = self.ec2(target_region).await;
        let op = |id: &str, state: OperationState| Operation {
            id: format!("{COPY_OP_PREFIX}{target_region}:{id}"),
            kind: OperationKind::CopySnapshot,
            target: format!("{volume}/{name}"),
            state,
        };
        // A copy of this very snapshot is this operation (started before,
        // perhaps by a process that died); another snapshot of the name
        // in the target region is a clash.
        let find = |all: Vec<Snap>| -> Result<Option<Snap>, DriverError> {
            match all.into_iter().find(|s| !s.failed()) {
                None => Ok(None),
                Some(s) if s.tags.get(tags::COPIED_FROM) == Some(&copied_from) => Ok(Some(s)),
                Some(s) => Err(DriverError::Conflict(format!(
                    "{what}: region {target_region} already has a snapshot `{name}` of volume `{volume}` ({}) that is not a copy of {}",
                    s.id, src.id
                ))),
            }
        };
        let existing = self
            .find_snapshots(
                &target,
                scope,
                Some(volume),
                Some((tags::SNAPSHOT_NAME, name)),
            )
            .await?;
        if let Some(s) = find(existing)? {
            return Ok(op(&s.id, copy_state(&s)));
        }
        let mut tags: BTreeMap<String, String> = src
            .tags
            .iter()
            .filter(|(k, _)| k.starts_with("kompox-") || *k == tags::MANAGED_BY || *k == tags::NAME)
            .filter(|(k, _)| *k != tags::CREATE_TOKEN)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tags.insert(tags::COPIED_FROM.into(), copied_from.clone());
        let (tgt, tags_r, what_r, src_r) = (&target, &tags, &what, &src);
        let send = move || async move {
            match tgt
                .once
                .copy_snapshot()
                .source_region(region)
                .source_snapshot_id(&src_r.id)
                .description(format!(
                    "kompox copy of {region}/{} ({volume}/{name})",
                    src_r.id
                ))
                .tag_specifications(tag_spec(ResourceType::Snapshot, tags_r))
                .send()
                .await
            {
                Ok(out) => out
                    .snapshot_id()
                    .map(|id| Made::Id(id.to_string()))
                    .ok_or_else(|| {
                        DriverError::Io(format!("{what_r}: CopySnapshot returned no id"))
                    }),
                Err(e) => Err(sdk_error(&format!("{what_r} (CopySnapshot)"), e)),
            }
        };
        let find_r = &find;
        let lookup = move || async move {
            let all = self
                .find_snapshots(tgt, scope, Some(volume), Some((tags::SNAPSHOT_NAME, name)))
                .await?;
            Ok(find_r(all)?.map(|s| s.id))
        };
        match create_once(&self.cfg.timing, &what, send, lookup).await? {
            Made::Id(id) => Ok(op(&id, OperationState::Running)),
            Made::TokenTaken => unreachable!("CopySnapshot has no client token"),
        }
    }

    /// The state of a copy started by [`EksDriver::ebs_copy_snapshot`].
    pub(super) async fn ebs_poll_copy(&self, id: &str) -> Result<Operation, DriverError> {
        let (region, snap) = parse_copy_id(id).ok_or_else(|| {
            DriverError::NotFound(format!(
                "operation `{id}` is not a snapshot copy (`{COPY_OP_PREFIX}<region>:<snapshot id>`)"
            ))
        })?;
        let ec2 = self.ec2(region).await;
        let s = self.describe_snapshot(&ec2, snap).await?.ok_or_else(|| {
            // Just after the copy started AWS may not show it yet; a copy
            // deleted since is reported the same way, and waiting on it
            // ends by the caller's timeout.
            DriverError::Transient(format!(
                "snapshot copy {snap} in {region} is not visible (yet)"
            ))
        })?;
        Ok(Operation {
            id: id.to_string(),
            kind: OperationKind::CopySnapshot,
            target: format!("{}/{}", s.volume, s.name.clone().unwrap_or_default()),
            state: copy_state(&s),
        })
    }
}

fn copy_state(s: &Snap) -> OperationState {
    match s.state {
        SnapshotState::Completed => OperationState::Succeeded,
        SnapshotState::Error => OperationState::Failed(format!(
            "EBS snapshot {} failed: {}",
            s.id,
            s.message.as_deref().unwrap_or("state `error`")
        )),
        _ => OperationState::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn options_default_to_encrypted_gp3() {
        let s = volume_spec(&BTreeMap::new(), None).unwrap();
        assert_eq!(
            s,
            VolumeSpec {
                kind: "gp3".into(),
                iops: None,
                throughput: None,
                encrypted: true,
                kms_key_id: None
            }
        );
        let s = volume_spec(&BTreeMap::new(), Some("alias/k")).unwrap();
        assert_eq!(
            s.kms_key_id.as_deref(),
            Some("alias/k"),
            "the provider default"
        );
        let s = volume_spec(
            &opts(json!({"type": "gp3", "iops": 4000, "throughput": "250", "kmsKeyId": "alias/x"})),
            Some("alias/k"),
        )
        .unwrap();
        assert_eq!((s.iops, s.throughput), (Some(4000), Some(250)));
        assert_eq!(s.kms_key_id.as_deref(), Some("alias/x"), "the option wins");
        let s = volume_spec(&opts(json!({"encrypted": false})), Some("alias/k")).unwrap();
        assert!(!s.encrypted && s.kms_key_id.is_none());
        let s = volume_spec(&opts(json!({"type": "io2", "iops": 1000})), None).unwrap();
        assert_eq!(s.kind, "io2");
    }

    #[test]
    fn options_ebs_refuses_are_refused_naming_the_option() {
        for (bad, word) in [
            (json!({"type": "standard"}), "type"),
            (json!({"type": "io1"}), "iops"),
            (json!({"type": "gp2", "iops": 100}), "iops"),
            (
                json!({"type": "io1", "iops": 100, "throughput": 200}),
                "throughput",
            ),
            (json!({"iops": -1}), "iops"),
            (json!({"iops": "many"}), "iops"),
            (json!({"encrypted": "yes"}), "encrypted"),
            (json!({"encrypted": false, "kmsKeyId": "k"}), "kmsKeyId"),
            (json!({"sku": "Premium_LRS"}), "sku"),
        ] {
            match volume_spec(&opts(bad.clone()), None) {
                Err(DriverError::InvalidInput(m)) => assert!(m.contains(word), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn sizes_round_up_to_whole_gib() {
        assert_eq!(size_gib(0).unwrap(), 1);
        assert_eq!(size_gib(1).unwrap(), 1);
        assert_eq!(size_gib(GIB).unwrap(), 1);
        assert_eq!(size_gib(GIB + 1).unwrap(), 2);
        assert_eq!(size_gib(32 * GIB).unwrap(), 32);
        assert_eq!(size_gib(65_536 * GIB).unwrap(), 65_536);
        assert!(matches!(
            size_gib(65_536 * GIB + 1),
            Err(DriverError::InvalidInput(_))
        ));
    }

    #[test]
    fn client_tokens_are_deterministic_and_short() {
        let a = token_base(&["h", "data", "d1", "1"]);
        assert_eq!(a, token_base(&["h", "data", "d1", "1"]));
        assert_ne!(a, token_base(&["h", "data", "d1", "2"]));
        assert_ne!(
            token_base(&["ab", "c"]),
            token_base(&["a", "bc"]),
            "parts cannot run into each other"
        );
        let t = client_token(&a, MAX_GENERATIONS);
        assert!(t.len() <= 64 && t.is_ascii(), "{t}");
        assert!(t.starts_with("k4x-") && t.ends_with("-g32"));
    }

    #[test]
    fn a_create_token_tag_matches_any_generation_of_its_request() {
        let base = token_base(&["x"]);
        let with = |t: String| BTreeMap::from([(tags::CREATE_TOKEN.to_string(), t)]);
        assert!(token_matches(&with(client_token(&base, 0)), &base));
        assert!(token_matches(&with(client_token(&base, 7)), &base));
        assert!(token_matches(&with(base.clone()), &base), "snapshots");
        assert!(!token_matches(
            &with(client_token(&token_base(&["y"]), 0)),
            &base
        ));
        assert!(!token_matches(&with(format!("{base}0")), &base));
        assert!(!token_matches(&BTreeMap::new(), &base), "a finished create");
    }

    #[test]
    fn copy_operation_ids() {
        assert_eq!(
            parse_copy_id("ebs-copy:us-west-2:snap-0123abcd"),
            Some(("us-west-2", "snap-0123abcd"))
        );
        for bad in [
            "ebs-copy:us-west-2",
            "ebs-copy::snap-1",
            "ebs-copy:US:snap-1",
            "ebs-copy:us-west-2:vol-1",
            "ebs-copy:us-west-2:snap-1:x",
            "sync:copy_snapshot:data/s1",
        ] {
            assert_eq!(parse_copy_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn created_at_is_whole_seconds() {
        let t = DateTime::from_secs_and_nanos(1_700_000_000, 999_000_000);
        assert_eq!(rfc3339(Some(&t)).as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(rfc3339(None), None);
    }
}
