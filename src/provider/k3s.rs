//! The K3s driver: disks are directories on a node, snapshots are
//! checksummed directory copies (reference §6.5, DECISIONS 21).
//!
//! Layout under each node's root (e.g. `/var/lib/kompox`):
//!
//! ```text
//! disks/<app_id_hash>/<volume>/<disk>/          disk data (the local PV path)
//! disks/<app_id_hash>/<volume>/<disk>.json      disk metadata (identity, assigned)
//! snapshots/<app_id_hash>/<volume>/<snap>.d/    snapshot data (a copy of the files)
//! snapshots/<app_id_hash>/<volume>/<snap>.json  snapshot metadata (complete, checksum)
//! ```
//!
//! All identity lives in the metadata files next to the data; the driver
//! keeps no state elsewhere. Metadata is always replaced atomically
//! (write a temporary file, then rename). Work in progress uses names that
//! start with `.` (`.<disk>.partial`, `.<snap>.partial`), which are never
//! valid disk or snapshot names and so never listed; a disk or snapshot
//! appears only once its data is complete and its metadata renamed into
//! place.
//!
//! Directory disks have **no size limit** unless the node's filesystem
//! enforces quotas: the size recorded on a disk is the requested size (the
//! PV capacity), not a limit.
//!
//! Snapshots copy the files one by one: they are consistent only if the
//! app does not write meanwhile (stop the app, or accept file-level
//! inconsistency). A snapshot is listed only if its metadata says complete
//! and the SHA-256 over its files (sorted relative paths, modes, owners
//! and contents; see [`tree_checksum`]) matches the recorded checksum;
//! restoring verifies the checksum again. Copies keep modes, owners and
//! symlinks (changing an owner needs root on the node). Listing reads
//! every snapshot in full to verify it, which costs I/O proportional to
//! the snapshot data.
//!
//! Node file access goes through [`HostAccess`]; [`LocalHost`] maps every
//! node to a local directory (a single-VM K3s, or tests). Work is done
//! synchronously inside the returned futures.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::VolumeClass;
use super::driver::{
    BoxFuture, ClusterStatus, CreateDisk, Disk, DiskScope, DnsRecordSet, Driver, DriverError,
    NODE_POOL_LABEL, NODE_ZONE_LABEL, NodeInfo, NodePool, NodePoolUpdate, Operation, Placement,
    Progress, ProgressFn, Snapshot, SnapshotConsistency, Source, validate_disk_name,
    validate_snapshot_name, validate_volume_name,
};
use crate::model::{AppVolume, Cluster};

/// Default root of the Kompox data on a K3s node.
pub const DEFAULT_ROOT: &str = "/var/lib/kompox";

/// Kind of a directory entry on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// Permission bits and owner of a file (zero on non-Unix hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attrs {
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// One entry of a directory listing (symlinks are not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub attrs: Attrs,
}

/// File access on the nodes of a K3s cluster. Paths are absolute paths as
/// the node sees them.
pub trait HostAccess: Send + Sync {
    /// Node names, sorted.
    fn nodes(&self) -> Vec<String>;
    /// The Kompox root directory on `node`; unknown node → `NotFound`.
    fn root(&self, node: &str) -> Result<PathBuf, DriverError>;
    /// Entries of a directory (not recursive), sorted by name.
    fn list(&self, node: &str, dir: &Path) -> Result<Vec<Entry>, DriverError>;
    fn read(&self, node: &str, path: &Path) -> Result<Vec<u8>, DriverError>;
    /// Creates or truncates `path` and writes `data` durably.
    fn write(&self, node: &str, path: &Path, data: &[u8]) -> Result<(), DriverError>;
    /// Opens a file for reading in chunks: disk files can be far larger
    /// than memory, so copies and checksums never read a file whole.
    fn open_read(&self, node: &str, path: &Path) -> Result<Box<dyn Read + Send>, DriverError>;
    /// Creates or truncates a file for writing in chunks; the sink's
    /// `finish` makes it durable.
    fn create_write(&self, node: &str, path: &Path) -> Result<Box<dyn WriteSink>, DriverError>;
    fn rename(&self, node: &str, from: &Path, to: &Path) -> Result<(), DriverError>;
    /// Removes a file or a whole directory tree; a missing path is success.
    fn remove(&self, node: &str, path: &Path) -> Result<(), DriverError>;
    /// Creates a directory and its parents.
    fn mkdir(&self, node: &str, path: &Path) -> Result<(), DriverError>;
    fn exists(&self, node: &str, path: &Path) -> Result<bool, DriverError>;
    fn read_link(&self, node: &str, path: &Path) -> Result<PathBuf, DriverError>;
    fn symlink(&self, node: &str, target: &Path, path: &Path) -> Result<(), DriverError>;
    /// Attributes of a path (symlinks are not followed).
    fn attrs(&self, node: &str, path: &Path) -> Result<Attrs, DriverError>;
    /// Sets owner, then mode (mode is not applied to symlinks). Changing
    /// the owner needs privileges: an owner change that is not permitted
    /// is an error, never silently skipped.
    fn set_attrs(&self, node: &str, path: &Path, attrs: Attrs) -> Result<(), DriverError>;
    /// Total bytes of the regular files under `path`.
    fn disk_usage(&self, node: &str, path: &Path) -> Result<u64, DriverError>;
}

/// A file being written through [`HostAccess::create_write`].
pub trait WriteSink: Write + Send {
    /// Flushes and syncs the file to stable storage.
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

struct LocalSink(std::fs::File);

impl Write for LocalSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl WriteSink for LocalSink {
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.0.flush()?;
        self.0.sync_all()
    }
}

/// A metadata file found by the shared walk of disks and snapshots.
struct Located<M> {
    node: String,
    volume: String,
    /// The volume directory holding `<name>.json`.
    dir: PathBuf,
    name: String,
    meta_path: PathBuf,
    meta: M,
}

/// Chunk size of streamed copies and checksums.
const CHUNK: usize = 1 << 20;

/// [`HostAccess`] on this machine: each node maps to its own directory.
#[derive(Debug, Clone)]
pub struct LocalHost {
    pub root_per_node: BTreeMap<String, PathBuf>,
}

impl LocalHost {
    pub fn new(root_per_node: BTreeMap<String, PathBuf>) -> Self {
        LocalHost { root_per_node }
    }

    /// `path` must lie under the node's root (defence against bad names).
    fn check(&self, node: &str, path: &Path) -> Result<(), DriverError> {
        let root = self.root(node)?;
        if path.starts_with(&root)
            && !path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            Ok(())
        } else {
            Err(DriverError::InvalidInput(format!(
                "path {} is outside the root {} of node `{node}`",
                path.display(),
                root.display()
            )))
        }
    }
}

fn attrs_of(m: &std::fs::Metadata) -> Attrs {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Attrs {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        Attrs::default()
    }
}

fn io(e: std::io::Error, p: &Path) -> DriverError {
    DriverError::from_io(&e, &p.display().to_string())
}

impl HostAccess for LocalHost {
    fn nodes(&self) -> Vec<String> {
        self.root_per_node.keys().cloned().collect()
    }

    fn root(&self, node: &str) -> Result<PathBuf, DriverError> {
        self.root_per_node
            .get(node)
            .cloned()
            .ok_or_else(|| DriverError::NotFound(format!("k3s node `{node}` is not configured")))
    }

    fn list(&self, node: &str, dir: &Path) -> Result<Vec<Entry>, DriverError> {
        self.check(node, dir)?;
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| io(e, dir))? {
            let e = e.map_err(|e| io(e, dir))?;
            let ft = e.file_type().map_err(|err| io(err, &e.path()))?;
            let kind = if ft.is_symlink() {
                EntryKind::Symlink
            } else if ft.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::File
            };
            let name = e.file_name().into_string().map_err(|n| {
                DriverError::Io(format!("non-UTF-8 file name {n:?} in {}", dir.display()))
            })?;
            let attrs = attrs_of(&e.metadata().map_err(|err| io(err, &e.path()))?);
            out.push(Entry { name, kind, attrs });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&self, node: &str, path: &Path) -> Result<Vec<u8>, DriverError> {
        self.check(node, path)?;
        std::fs::read(path).map_err(|e| io(e, path))
    }

    fn write(&self, node: &str, path: &Path, data: &[u8]) -> Result<(), DriverError> {
        self.check(node, path)?;
        let mut f = std::fs::File::create(path).map_err(|e| io(e, path))?;
        f.write_all(data).map_err(|e| io(e, path))?;
        f.sync_all().map_err(|e| io(e, path))
    }

    fn open_read(&self, node: &str, path: &Path) -> Result<Box<dyn Read + Send>, DriverError> {
        self.check(node, path)?;
        let f = std::fs::File::open(path).map_err(|e| io(e, path))?;
        Ok(Box::new(f))
    }

    fn create_write(&self, node: &str, path: &Path) -> Result<Box<dyn WriteSink>, DriverError> {
        self.check(node, path)?;
        let f = std::fs::File::create(path).map_err(|e| io(e, path))?;
        Ok(Box::new(LocalSink(f)))
    }

    fn rename(&self, node: &str, from: &Path, to: &Path) -> Result<(), DriverError> {
        self.check(node, from)?;
        self.check(node, to)?;
        std::fs::rename(from, to).map_err(|e| io(e, from))
    }

    fn remove(&self, node: &str, path: &Path) -> Result<(), DriverError> {
        self.check(node, path)?;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e, path)),
        };
        let r = if meta.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e, path)),
            _ => Ok(()),
        }
    }

    fn mkdir(&self, node: &str, path: &Path) -> Result<(), DriverError> {
        self.check(node, path)?;
        std::fs::create_dir_all(path).map_err(|e| io(e, path))
    }

    fn exists(&self, node: &str, path: &Path) -> Result<bool, DriverError> {
        self.check(node, path)?;
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e, path)),
        }
    }

    fn read_link(&self, node: &str, path: &Path) -> Result<PathBuf, DriverError> {
        self.check(node, path)?;
        std::fs::read_link(path).map_err(|e| io(e, path))
    }

    fn symlink(&self, node: &str, target: &Path, path: &Path) -> Result<(), DriverError> {
        self.check(node, path)?;
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(target, path).map_err(|e| io(e, path))
        }
        #[cfg(not(unix))]
        {
            let _ = target;
            Err(DriverError::NotSupported(format!(
                "symlink {}: symlinks need a Unix host",
                path.display()
            )))
        }
    }

    fn attrs(&self, node: &str, path: &Path) -> Result<Attrs, DriverError> {
        self.check(node, path)?;
        Ok(attrs_of(
            &std::fs::symlink_metadata(path).map_err(|e| io(e, path))?,
        ))
    }

    fn set_attrs(&self, node: &str, path: &Path, attrs: Attrs) -> Result<(), DriverError> {
        self.check(node, path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::symlink_metadata(path).map_err(|e| io(e, path))?;
            let now = attrs_of(&m);
            if (now.uid, now.gid) != (attrs.uid, attrs.gid) {
                std::os::unix::fs::lchown(path, Some(attrs.uid), Some(attrs.gid))
                    .map_err(|e| io(e, path))?;
            }
            if !m.file_type().is_symlink() {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(attrs.mode))
                    .map_err(|e| io(e, path))?;
            }
        }
        #[cfg(not(unix))]
        let _ = attrs;
        Ok(())
    }

    fn disk_usage(&self, node: &str, path: &Path) -> Result<u64, DriverError> {
        self.check(node, path)?;
        fn walk(p: &Path) -> std::io::Result<u64> {
            let m = std::fs::symlink_metadata(p)?;
            if m.is_dir() {
                let mut n = 0;
                for e in std::fs::read_dir(p)? {
                    n += walk(&e?.path())?;
                }
                Ok(n)
            } else if m.is_file() {
                Ok(m.len())
            } else {
                Ok(0)
            }
        }
        walk(path).map_err(|e| io(e, path))
    }
}

const DISK_KIND: &str = "kompox-k3s-disk";
const SNAPSHOT_KIND: &str = "kompox-k3s-snapshot";

/// Metadata of a disk (`<disk>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskMeta {
    pub kind: String,
    pub name: String,
    pub volume: String,
    pub app_id_hash: String,
    pub app_name: String,
    pub assigned: bool,
    pub size_bytes: u64,
    pub node: String,
    /// The source the disk was created from (`snapshot:<name>`, …).
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
    pub created_at: String,
}

/// Metadata of a snapshot (`<snap>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub kind: String,
    pub name: String,
    pub volume: String,
    pub app_id_hash: String,
    pub app_name: String,
    /// Written `true` only after all data is in place.
    pub complete: bool,
    /// Hex SHA-256 over the files (see [`tree_checksum`]).
    pub checksum: String,
    pub size_bytes: u64,
    pub entries: u64,
    pub node: String,
    #[serde(default)]
    pub source_disk: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    pub created_at: String,
}

/// Checksum and totals of a directory tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSum {
    pub checksum: String,
    pub bytes: u64,
    pub entries: u64,
}

#[derive(Debug, Clone)]
struct FoundDisk {
    meta: DiskMeta,
    node: String,
    dir: PathBuf,
    meta_path: PathBuf,
}

#[derive(Debug, Clone)]
struct FoundSnapshot {
    meta: SnapshotMeta,
    node: String,
    dir: PathBuf,
    meta_path: PathBuf,
}

/// The K3s driver.
pub struct K3sDriver {
    host: Box<dyn HostAccess>,
    /// Receives the bytes copied by snapshots and restores.
    progress: Option<ProgressFn>,
}

/// The Cluster setting naming the kubeconfig file of a K3s cluster on the
/// machine running kompoxops (K3s writes it to `/etc/rancher/k3s/k3s.yaml`).
pub const KUBECONFIG_SETTING: &str = "K3S_KUBECONFIG";

impl K3sDriver {
    pub fn new(host: impl HostAccess + 'static) -> Self {
        K3sDriver {
            host: Box::new(host),
            progress: None,
        }
    }

    /// Copies a tree like [`copy_tree`], reporting the bytes copied as
    /// `what` (of `total` bytes, when known) to the progress receiver.
    /// Errors name `to_node`, so a full disk or a refused owner says where.
    fn copy_reporting(
        &self,
        what: &str,
        total: Option<u64>,
        (from_node, from): (&str, &Path),
        (to_node, to): (&str, &Path),
    ) -> Result<TreeSum, DriverError> {
        let report = |done: u64| {
            if let Some(p) = &self.progress {
                p(&Progress {
                    what: what.to_string(),
                    done_bytes: done,
                    total_bytes: total,
                });
            }
        };
        report(0);
        let mut on_bytes = |done: u64| report(done);
        copy_tree_reporting(
            self.host.as_ref(),
            from_node,
            from,
            to_node,
            to,
            &mut on_bytes,
        )
        .map_err(|e| e.context(&format!("{what} onto node `{to_node}`")))
    }

    /// From provider settings.
    ///
    /// `K3S_HOST_ACCESS` = `local` (default): `K3S_NODE_ROOTS`
    /// (`node=/path,…`) or `K3S_NODE` + `K3S_ROOT` (default
    /// [`DEFAULT_ROOT`]), each node a directory of this machine.
    ///
    /// `K3S_HOST_ACCESS` = `ssh` ([`super::host_ssh::SshHost`]): `K3S_SSH_HOSTS`
    /// (`node=user@host:port,…`, which also names the nodes),
    /// `K3S_SSH_KEY` and `K3S_SSH_KNOWN_HOSTS` (absolute paths, required:
    /// there is no implicit trust of `~/.ssh`), the root on every node
    /// `K3S_ROOT` (default [`DEFAULT_ROOT`]) unless `K3S_NODE_ROOTS` gives
    /// a node its own, optional `K3S_SSH_CONNECT_TIMEOUT` (seconds, 1..600,
    /// default 10).
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Self, DriverError> {
        let access = settings
            .get("K3S_HOST_ACCESS")
            .map(String::as_str)
            .unwrap_or("local");
        if access != "local" && access != "ssh" {
            return Err(DriverError::NotSupported(format!(
                "K3S_HOST_ACCESS `{access}`: expected `local` or `ssh`"
            )));
        }
        let mut roots = BTreeMap::new();
        if let Some(list) = settings.get("K3S_NODE_ROOTS") {
            for item in list.split([',', ' ', '\n']).filter(|s| !s.is_empty()) {
                let (node, path) = item.split_once('=').ok_or_else(|| {
                    DriverError::InvalidInput(format!(
                        "K3S_NODE_ROOTS item `{item}`: expected `node=/absolute/path`"
                    ))
                })?;
                roots.insert(node.to_string(), PathBuf::from(path));
            }
        }
        let default_root = PathBuf::from(
            settings
                .get("K3S_ROOT")
                .map(String::as_str)
                .unwrap_or(DEFAULT_ROOT),
        );
        if access == "ssh" {
            let hosts = settings.get("K3S_SSH_HOSTS").ok_or_else(|| {
                DriverError::InvalidInput(
                    "K3S_HOST_ACCESS=ssh needs K3S_SSH_HOSTS (`node=user@host:port,…`)".into(),
                )
            })?;
            let hosts = super::host_ssh::parse_hosts(hosts)?;
            if let Some(n) = roots.keys().find(|n| !hosts.contains_key(*n)) {
                return Err(DriverError::InvalidInput(format!(
                    "K3S_NODE_ROOTS names node `{n}`, which is not in K3S_SSH_HOSTS"
                )));
            }
            let path = |key: &str, what: &str| {
                settings.get(key).map(PathBuf::from).ok_or_else(|| {
                    DriverError::InvalidInput(format!(
                        "K3S_HOST_ACCESS=ssh needs {key} ({what}, an absolute path)"
                    ))
                })
            };
            let mut opts = super::host_ssh::SshOptions::new(
                path("K3S_SSH_KEY", "the private key file")?,
                path(
                    "K3S_SSH_KNOWN_HOSTS",
                    "the known_hosts file with the nodes' host keys",
                )?,
            );
            if let Some(t) = settings.get("K3S_SSH_CONNECT_TIMEOUT") {
                let secs = t
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=600).contains(s))
                    .ok_or_else(|| {
                        DriverError::InvalidInput(format!(
                            "K3S_SSH_CONNECT_TIMEOUT `{t}`: expected seconds in 1..600"
                        ))
                    })?;
                opts.connect_timeout = std::time::Duration::from_secs(secs);
            }
            let nodes = hosts
                .into_iter()
                .map(|(node, target)| {
                    let root = roots.get(&node).unwrap_or(&default_root).clone();
                    (node, super::host_ssh::SshNode { target, root })
                })
                .collect();
            return Ok(K3sDriver::new(super::host_ssh::SshHost::new(nodes, opts)?));
        }
        if roots.is_empty()
            && let Some(node) = settings.get("K3S_NODE")
        {
            roots.insert(node.clone(), default_root);
        }
        if roots.is_empty() {
            return Err(DriverError::InvalidInput(
                "k3s driver needs K3S_NODE_ROOTS (`node=/path,…`) or K3S_NODE".into(),
            ));
        }
        for (node, root) in &roots {
            if node.is_empty() || node.contains([':', '/']) {
                return Err(DriverError::InvalidInput(format!(
                    "k3s node name `{node}` must be non-empty, without `:` or `/`"
                )));
            }
            if !root.is_absolute() {
                return Err(DriverError::InvalidInput(format!(
                    "k3s root `{}` of node `{node}` must be an absolute path",
                    root.display()
                )));
            }
        }
        Ok(K3sDriver::new(LocalHost::new(roots)))
    }

    fn disk_vol_dir(
        &self,
        node: &str,
        scope: &DiskScope,
        volume: &str,
    ) -> Result<PathBuf, DriverError> {
        Ok(self
            .host
            .root(node)?
            .join("disks")
            .join(&scope.app_id_hash)
            .join(volume))
    }

    fn snap_vol_dir(
        &self,
        node: &str,
        scope: &DiskScope,
        volume: &str,
    ) -> Result<PathBuf, DriverError> {
        Ok(self
            .host
            .root(node)?
            .join("snapshots")
            .join(&scope.app_id_hash)
            .join(volume))
    }

    /// The first node holding a metadata file `<name>.json` under
    /// `<root>/<what>/<hash>/<volume>/`, readable or not: a name is taken
    /// as long as its metadata exists, so data behind unreadable metadata
    /// is never overwritten.
    fn metadata_on(
        &self,
        what: &str,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<Option<String>, DriverError> {
        for node in self.host.nodes() {
            let p = self
                .host
                .root(&node)?
                .join(what)
                .join(&scope.app_id_hash)
                .join(volume)
                .join(format!("{name}.json"));
            if self.host.exists(&node, &p)? {
                return Ok(Some(node));
            }
        }
        Ok(None)
    }

    /// Entries of a directory, a missing directory being empty.
    fn list_or_empty(&self, node: &str, dir: &Path) -> Result<Vec<Entry>, DriverError> {
        match self.host.list(node, dir) {
            Err(DriverError::NotFound(_)) => Ok(Vec::new()),
            r => r,
        }
    }

    /// Volume directories under `<root>/<kind>/<hash>/`.
    fn volumes_under(&self, node: &str, base: &Path) -> Result<Vec<String>, DriverError> {
        Ok(self
            .list_or_empty(node, base)?
            .into_iter()
            .filter(|e| e.kind == EntryKind::Dir && validate_volume_name(&e.name).is_ok())
            .map(|e| e.name)
            .collect())
    }

    /// Metadata file stems (`<name>.json`, not starting with `.`).
    fn meta_names(&self, node: &str, dir: &Path) -> Result<Vec<String>, DriverError> {
        Ok(self
            .list_or_empty(node, dir)?
            .into_iter()
            .filter(|e| e.kind == EntryKind::File && !e.name.starts_with('.'))
            .filter_map(|e| e.name.strip_suffix(".json").map(str::to_string))
            .collect())
    }

    /// Every `<name>.json` metadata file under
    /// `<area>/<app id hash>/<volume>/` on every node, read as `M`;
    /// unreadable ones are skipped with a warning. Disks and snapshots
    /// share this walk; their callers check the identity in the metadata.
    fn metadata_under<M: for<'de> Deserialize<'de>>(
        &self,
        scope: &DiskScope,
        area: &str,
        only: Option<&str>,
    ) -> Result<Vec<Located<M>>, DriverError> {
        scope.validate()?;
        let mut out = Vec::new();
        for node in self.host.nodes() {
            let base = self.host.root(&node)?.join(area).join(&scope.app_id_hash);
            let vols = match only {
                Some(v) => vec![v.to_string()],
                None => self.volumes_under(&node, &base)?,
            };
            for vol in vols {
                let dir = base.join(&vol);
                for name in self.meta_names(&node, &dir)? {
                    let meta_path = dir.join(format!("{name}.json"));
                    match self.read_json(&node, &meta_path) {
                        Ok(meta) => out.push(Located {
                            node: node.clone(),
                            volume: vol.clone(),
                            dir: dir.clone(),
                            name,
                            meta_path,
                            meta,
                        }),
                        Err(e) => {
                            tracing::warn!(node, path = %meta_path.display(), error = %e, "skipping unreadable {area} metadata");
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn found_disks(
        &self,
        scope: &DiskScope,
        only: Option<&str>,
    ) -> Result<Vec<FoundDisk>, DriverError> {
        let mut out = Vec::new();
        for l in self.metadata_under::<DiskMeta>(scope, "disks", only)? {
            let meta = l.meta;
            if meta.kind != DISK_KIND
                || meta.name != l.name
                || meta.volume != l.volume
                || meta.app_id_hash != scope.app_id_hash
            {
                tracing::warn!(node = l.node, path = %l.meta_path.display(), "skipping disk metadata that does not match its location");
                continue;
            }
            let data_dir = l.dir.join(&l.name);
            if !self.host.exists(&l.node, &data_dir)? {
                tracing::warn!(node = l.node, path = %data_dir.display(), "skipping disk whose data directory is missing");
                continue;
            }
            out.push(FoundDisk {
                meta,
                node: l.node,
                dir: data_dir,
                meta_path: l.meta_path,
            });
        }
        Ok(out)
    }

    /// Snapshots with metadata (complete or not, checksum unverified).
    fn found_snapshots(
        &self,
        scope: &DiskScope,
        only: Option<&str>,
    ) -> Result<Vec<FoundSnapshot>, DriverError> {
        let mut out = Vec::new();
        for l in self.metadata_under::<SnapshotMeta>(scope, "snapshots", only)? {
            let meta = l.meta;
            if meta.kind != SNAPSHOT_KIND
                || meta.name != l.name
                || meta.volume != l.volume
                || meta.app_id_hash != scope.app_id_hash
            {
                continue;
            }
            out.push(FoundSnapshot {
                meta,
                node: l.node,
                dir: l.dir.join(format!("{}.d", l.name)),
                meta_path: l.meta_path,
            });
        }
        Ok(out)
    }

    /// Whether a snapshot is good: complete, data present, checksum verifies.
    fn snapshot_problem(&self, s: &FoundSnapshot) -> Result<Option<String>, DriverError> {
        if !s.meta.complete {
            return Ok(Some("metadata does not say complete".into()));
        }
        if !self.host.exists(&s.node, &s.dir)? {
            return Ok(Some("data directory is missing".into()));
        }
        let sum = tree_checksum(self.host.as_ref(), &s.node, &s.dir)?;
        if sum.checksum != s.meta.checksum {
            return Ok(Some(format!(
                "checksum mismatch (recorded {}, found {})",
                s.meta.checksum, sum.checksum
            )));
        }
        Ok(None)
    }

    /// Verifies one snapshot: `Ok` if good, `Corrupt`/`NotFound` otherwise.
    pub fn verify_snapshot(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<(), DriverError> {
        let s = self
            .found_snapshots(scope, Some(volume))?
            .into_iter()
            .find(|s| s.meta.name == name)
            .ok_or_else(|| {
                DriverError::NotFound(format!("snapshot `{name}` of volume `{volume}`"))
            })?;
        match self.snapshot_problem(&s)? {
            None => Ok(()),
            Some(p) => Err(DriverError::Corrupt(format!("snapshot `{name}`: {p}"))),
        }
    }

    fn good_snapshots(
        &self,
        scope: &DiskScope,
        only: Option<&str>,
    ) -> Result<Vec<FoundSnapshot>, DriverError> {
        let mut out = Vec::new();
        for s in self.found_snapshots(scope, only)? {
            match self.snapshot_problem(&s)? {
                None => out.push(s),
                Some(p) => {
                    tracing::warn!(
                        node = s.node,
                        snapshot = s.meta.name,
                        problem = p,
                        "snapshot is not listed"
                    );
                }
            }
        }
        Ok(out)
    }

    fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        node: &str,
        path: &Path,
    ) -> Result<T, DriverError> {
        let bytes = self.host.read(node, path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| DriverError::Corrupt(format!("{}: {e}", path.display())))
    }

    /// Replaces a metadata file atomically: `.<file>.tmp`, then rename.
    fn write_json<T: Serialize>(
        &self,
        node: &str,
        path: &Path,
        value: &T,
    ) -> Result<(), DriverError> {
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .ok_or_else(|| DriverError::InvalidInput(format!("bad path {}", path.display())))?;
        let tmp = path.with_file_name(format!(".{file}.tmp"));
        let mut bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| DriverError::Io(format!("{}: {e}", path.display())))?;
        bytes.push(b'\n');
        self.host.write(node, &tmp, &bytes)?;
        self.host.rename(node, &tmp, path)
    }

    fn disk_of(&self, f: &FoundDisk) -> Disk {
        Disk {
            name: f.meta.name.clone(),
            volume: f.meta.volume.clone(),
            app_id_hash: f.meta.app_id_hash.clone(),
            assigned: f.meta.assigned,
            size_bytes: f.meta.size_bytes,
            zone: None,
            node: Some(f.node.clone()),
            handle: handle(&f.node, &f.dir),
            created_at: Some(f.meta.created_at.clone()),
        }
    }

    fn snapshot_of(&self, s: &FoundSnapshot) -> Snapshot {
        Snapshot {
            name: s.meta.name.clone(),
            volume: s.meta.volume.clone(),
            app_id_hash: s.meta.app_id_hash.clone(),
            size_bytes: s.meta.size_bytes,
            handle: handle(&s.node, &s.dir),
            source_disk: s.meta.source_disk.clone(),
            checksum: Some(s.meta.checksum.clone()),
            created_at: Some(s.meta.created_at.clone()),
        }
    }

    fn list_disks_sync(&self, scope: &DiskScope) -> Result<Vec<Disk>, DriverError> {
        let mut v: Vec<Disk> = self
            .found_disks(scope, None)?
            .iter()
            .map(|f| self.disk_of(f))
            .collect();
        super::driver::sort_listing(&mut v);
        Ok(v)
    }

    fn list_snapshots_sync(&self, scope: &DiskScope) -> Result<Vec<Snapshot>, DriverError> {
        let mut v: Vec<Snapshot> = self
            .good_snapshots(scope, None)?
            .iter()
            .map(|s| self.snapshot_of(s))
            .collect();
        super::driver::sort_listing(&mut v);
        Ok(v)
    }

    fn create_disk_sync(
        &self,
        scope: &DiskScope,
        volume: &str,
        req: CreateDisk,
    ) -> Result<Disk, DriverError> {
        scope.validate()?;
        validate_volume_name(volume)?;
        validate_disk_name(&req.name)?;
        let node = self.place(&req.placement)?;
        let name = req.name.as_str();
        if let Some(on) = self.metadata_on("disks", scope, volume, name)? {
            return Err(DriverError::Conflict(format!(
                "disk `{name}` of volume `{volume}` already exists (node `{on}`)"
            )));
        }
        // Resolve the source before touching anything.
        enum From {
            Nothing,
            Disk(FoundDisk),
            Snap(FoundSnapshot),
        }
        let from = match &req.source {
            None => From::Nothing,
            Some(Source::Disk(d)) => {
                validate_disk_name(d)?;
                From::Disk(
                    self.found_disks(scope, Some(volume))?
                        .into_iter()
                        .find(|f| &f.meta.name == d)
                        .ok_or_else(|| {
                            DriverError::NotFound(format!("source disk `{d}` of volume `{volume}`"))
                        })?,
                )
            }
            Some(Source::Snapshot(s)) => {
                validate_snapshot_name(s)?;
                From::Snap(
                    self.good_snapshots(scope, Some(volume))?
                        .into_iter()
                        .find(|f| &f.meta.name == s)
                        .ok_or_else(|| {
                            DriverError::NotFound(format!(
                                "source snapshot `{s}` of volume `{volume}` (or it is incomplete or corrupt)"
                            ))
                        })?,
                )
            }
        };
        let vol_dir = self.disk_vol_dir(&node, scope, volume)?;
        let dir = vol_dir.join(name);
        let partial = vol_dir.join(format!(".{name}.partial"));
        // Leftovers of an interrupted create (no metadata: never a disk).
        self.host.remove(&node, &partial)?;
        self.host.remove(&node, &dir)?;
        self.host.mkdir(&node, &partial)?;
        let what = format!("disk {volume}/{name}");
        let filled = match &from {
            From::Nothing => Ok(()),
            From::Disk(d) => self
                .host
                .disk_usage(&d.node, &d.dir)
                .and_then(|total| {
                    self.copy_reporting(&what, Some(total), (&d.node, &d.dir), (&node, &partial))
                })
                .map(|_| ()),
            From::Snap(s) => self
                .copy_reporting(
                    &what,
                    Some(s.meta.size_bytes),
                    (&s.node, &s.dir),
                    (&node, &partial),
                )
                .and_then(|sum| {
                    if sum.checksum == s.meta.checksum {
                        Ok(())
                    } else {
                        Err(DriverError::Corrupt(format!(
                            "snapshot `{}` changed while restoring (checksum mismatch)",
                            s.meta.name
                        )))
                    }
                }),
        };
        if let Err(e) = filled {
            let _ = self.host.remove(&node, &partial);
            return Err(e);
        }
        self.host.rename(&node, &partial, &dir)?;
        let meta = DiskMeta {
            kind: DISK_KIND.into(),
            name: name.to_string(),
            volume: volume.to_string(),
            app_id_hash: scope.app_id_hash.clone(),
            app_name: scope.app_name.clone(),
            assigned: false,
            size_bytes: req.size_bytes,
            node: node.clone(),
            source: req.source.as_ref().map(Source::to_string),
            options: req.options,
            created_at: now_rfc3339(),
        };
        let meta_path = vol_dir.join(format!("{name}.json"));
        if let Err(e) = self.write_json(&node, &meta_path, &meta) {
            // Without metadata the data is no disk: free its space now
            // rather than at the next create of this name.
            let _ = self.host.remove(&node, &dir);
            return Err(e.context(&format!("disk {volume}/{name} on node `{node}`")));
        }
        Ok(self.disk_of(&FoundDisk {
            meta,
            node,
            dir,
            meta_path,
        }))
    }

    fn place(&self, placement: &Placement) -> Result<String, DriverError> {
        let nodes = self.host.nodes();
        match placement {
            Placement::Node(n) => {
                if nodes.contains(n) {
                    Ok(n.clone())
                } else {
                    Err(DriverError::InvalidInput(format!(
                        "k3s node `{n}` is not configured (known: {})",
                        nodes.join(", ")
                    )))
                }
            }
            Placement::Any => nodes
                .first()
                .cloned()
                .ok_or_else(|| DriverError::InvalidInput("no k3s node configured".into())),
            other => Err(DriverError::NotSupported(format!(
                "k3s disks are pinned to a node, not a zone: placement {other:?}"
            ))),
        }
    }

    fn assign_disk_sync(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<(), DriverError> {
        validate_volume_name(volume)?;
        validate_disk_name(name)?;
        let disks = self.found_disks(scope, Some(volume))?;
        let target = disks
            .iter()
            .find(|d| d.meta.name == name)
            .ok_or_else(|| DriverError::NotFound(format!("disk `{name}` of volume `{volume}`")))?;
        // Target first: a crash in between leaves two assigned (detected,
        // fixed by assigning again), never zero (which would plan a new disk).
        if !target.meta.assigned {
            let mut m = target.meta.clone();
            m.assigned = true;
            self.write_json(&target.node, &target.meta_path, &m)?;
        }
        for d in disks
            .iter()
            .filter(|d| d.meta.name != name && d.meta.assigned)
        {
            let mut m = d.meta.clone();
            m.assigned = false;
            self.write_json(&d.node, &d.meta_path, &m)?;
        }
        Ok(())
    }

    fn delete_disk_sync(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<(), DriverError> {
        validate_volume_name(volume)?;
        validate_disk_name(name)?;
        let Some(d) = self
            .found_disks(scope, Some(volume))?
            .into_iter()
            .find(|d| d.meta.name == name)
        else {
            return Ok(());
        };
        if d.meta.assigned {
            return Err(DriverError::Conflict(format!(
                "disk `{name}` is the assigned disk of volume `{volume}`; assign another disk first"
            )));
        }
        // Metadata first: the disk disappears at once; leftover data without
        // metadata is never listed and is removed by a later create.
        self.host.remove(&d.node, &d.meta_path)?;
        self.host.remove(&d.node, &d.dir)
    }

    fn create_snapshot_sync(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
        source: Option<Source>,
    ) -> Result<Snapshot, DriverError> {
        scope.validate()?;
        validate_volume_name(volume)?;
        validate_snapshot_name(name)?;
        if let Some(on) = self.metadata_on("snapshots", scope, volume, name)? {
            return Err(DriverError::Conflict(format!(
                "snapshot `{name}` of volume `{volume}` already exists (node `{on}`)"
            )));
        }
        let (src_node, src_dir, source_disk, expect) = match &source {
            None => {
                let assigned: Vec<FoundDisk> = self
                    .found_disks(scope, Some(volume))?
                    .into_iter()
                    .filter(|d| d.meta.assigned)
                    .collect();
                match assigned.as_slice() {
                    [d] => (
                        d.node.clone(),
                        d.dir.clone(),
                        Some(d.meta.name.clone()),
                        None,
                    ),
                    [] => {
                        return Err(DriverError::NotFound(format!(
                            "volume `{volume}` has no assigned disk to snapshot"
                        )));
                    }
                    _ => {
                        return Err(DriverError::Conflict(format!(
                            "volume `{volume}` has {} assigned disks; assign one first",
                            assigned.len()
                        )));
                    }
                }
            }
            Some(Source::Disk(n)) => {
                validate_disk_name(n)?;
                let d = self
                    .found_disks(scope, Some(volume))?
                    .into_iter()
                    .find(|d| &d.meta.name == n)
                    .ok_or_else(|| {
                        DriverError::NotFound(format!("source disk `{n}` of volume `{volume}`"))
                    })?;
                (d.node, d.dir, Some(d.meta.name), None)
            }
            Some(Source::Snapshot(n)) => {
                validate_snapshot_name(n)?;
                let s = self
                    .good_snapshots(scope, Some(volume))?
                    .into_iter()
                    .find(|s| &s.meta.name == n)
                    .ok_or_else(|| {
                        DriverError::NotFound(format!(
                            "source snapshot `{n}` of volume `{volume}` (or it is incomplete or corrupt)"
                        ))
                    })?;
                (s.node, s.dir, s.meta.source_disk, Some(s.meta.checksum))
            }
        };
        let node = src_node.clone();
        let vol_dir = self.snap_vol_dir(&node, scope, volume)?;
        let partial = vol_dir.join(format!(".{name}.partial"));
        let dir = vol_dir.join(format!("{name}.d"));
        self.host.remove(&node, &partial)?;
        self.host.remove(&node, &dir)?;
        self.host.mkdir(&node, &partial)?;
        // Measured first (a walk, no data read) so the bar has a total.
        let total = Some(self.host.disk_usage(&src_node, &src_dir)?);
        let what = format!("snapshot {volume}/{name}");
        let sum = match self.copy_reporting(&what, total, (&src_node, &src_dir), (&node, &partial))
        {
            Ok(sum) if expect.as_ref().is_none_or(|c| *c == sum.checksum) => sum,
            Ok(_) => {
                let _ = self.host.remove(&node, &partial);
                return Err(DriverError::Corrupt(
                    "source snapshot changed while copying (checksum mismatch)".to_string(),
                ));
            }
            Err(e) => {
                let _ = self.host.remove(&node, &partial);
                return Err(e);
            }
        };
        self.host.rename(&node, &partial, &dir)?;
        let meta = SnapshotMeta {
            kind: SNAPSHOT_KIND.into(),
            name: name.to_string(),
            volume: volume.to_string(),
            app_id_hash: scope.app_id_hash.clone(),
            app_name: scope.app_name.clone(),
            complete: true,
            checksum: sum.checksum,
            size_bytes: sum.bytes,
            entries: sum.entries,
            node: node.clone(),
            source_disk,
            source: source.as_ref().map(Source::to_string),
            created_at: now_rfc3339(),
        };
        let meta_path = vol_dir.join(format!("{name}.json"));
        if let Err(e) = self.write_json(&node, &meta_path, &meta) {
            let _ = self.host.remove(&node, &dir);
            return Err(e.context(&format!("snapshot {volume}/{name} on node `{node}`")));
        }
        Ok(self.snapshot_of(&FoundSnapshot {
            meta,
            node,
            dir,
            meta_path,
        }))
    }

    fn delete_snapshot_sync(
        &self,
        scope: &DiskScope,
        volume: &str,
        name: &str,
    ) -> Result<(), DriverError> {
        validate_volume_name(volume)?;
        validate_snapshot_name(name)?;
        for s in self
            .found_snapshots(scope, Some(volume))?
            .into_iter()
            .filter(|s| s.meta.name == name)
        {
            self.host.remove(&s.node, &s.meta_path)?;
            self.host.remove(&s.node, &s.dir)?;
        }
        Ok(())
    }
}

impl Driver for K3sDriver {
    fn id(&self) -> &str {
        "k3s"
    }

    fn list_disks<'a>(
        &'a self,
        scope: &'a DiskScope,
    ) -> BoxFuture<'a, Result<Vec<Disk>, DriverError>> {
        Box::pin(async move { self.list_disks_sync(scope) })
    }

    fn create_disk<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        req: CreateDisk,
    ) -> BoxFuture<'a, Result<Disk, DriverError>> {
        Box::pin(async move { self.create_disk_sync(scope, volume, req) })
    }

    fn assign_disk<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { self.assign_disk_sync(scope, volume, name) })
    }

    fn delete_disk<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { self.delete_disk_sync(scope, volume, name) })
    }

    fn list_snapshots<'a>(
        &'a self,
        scope: &'a DiskScope,
    ) -> BoxFuture<'a, Result<Vec<Snapshot>, DriverError>> {
        Box::pin(async move { self.list_snapshots_sync(scope) })
    }

    fn create_snapshot<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
        source: Option<Source>,
    ) -> BoxFuture<'a, Result<Snapshot, DriverError>> {
        Box::pin(async move { self.create_snapshot_sync(scope, volume, name, source) })
    }

    fn delete_snapshot<'a>(
        &'a self,
        scope: &'a DiskScope,
        volume: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { self.delete_snapshot_sync(scope, volume, name) })
    }

    /// `kompox-local`, a `local` PV pinned by `kubernetes.io/hostname`.
    fn volume_class(&self, volume: &AppVolume) -> Result<VolumeClass, DriverError> {
        super::volume_class("k3s", volume).ok_or_else(|| {
            DriverError::NotSupported(format!(
                "volume `{}`: k3s offers only `type: disk` volumes",
                volume.name
            ))
        })
    }

    /// A disk is a directory on one node.
    fn places_on_nodes(&self) -> bool {
        true
    }

    /// Files are copied one by one.
    fn snapshot_consistency(&self) -> SnapshotConsistency {
        SnapshotConsistency::FileLevel
    }

    fn set_progress(&mut self, progress: Option<ProgressFn>) {
        self.progress = progress;
    }

    /// K3s has no regions: a snapshot lives on a node.
    fn copy_snapshot<'a>(
        &'a self,
        _scope: &'a DiskScope,
        _volume: &'a str,
        _name: &'a str,
        target_region: &'a str,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(async move {
            Err(DriverError::NotSupported(format!(
                "k3s has no regions to copy a snapshot to (`{target_region}`): a snapshot lives on a node; restore it onto another node with `disk create -S snapshot:<name> -Z <node>`"
            )))
        })
    }

    /// A K3s cluster always exists (Kompox does not provision it);
    /// provisioned = its kubeconfig is readable, when one is configured.
    /// Whether Traefik runs is not visible to the driver.
    fn cluster_status<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, Result<ClusterStatus, DriverError>> {
        Box::pin(async move {
            let provisioned = match cluster_kubeconfig(cluster) {
                Ok(_) => Some(true),
                Err(DriverError::NotSupported(_)) => None,
                Err(_) => Some(false),
            };
            Ok(ClusterStatus {
                existing: true,
                provisioned,
                installed: None,
                ingress_global_ip: None,
                ingress_fqdn: None,
            })
        })
    }

    /// The file named by the Cluster setting `K3S_KUBECONFIG` (an absolute
    /// path on the machine running kompoxops, typically
    /// `/etc/rancher/k3s/k3s.yaml` on a single-VM K3s); `NotSupported`
    /// when it is not set.
    fn cluster_kubeconfig<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, Result<Vec<u8>, DriverError>> {
        Box::pin(async move { cluster_kubeconfig(cluster) })
    }

    /// K3s node pools are the cluster's nodes grouped by their
    /// `kompox.dev/node-pool` label: observation only.
    fn list_node_pools<'a>(
        &'a self,
        _cluster: &'a Cluster,
        nodes: Option<&'a [NodeInfo]>,
    ) -> BoxFuture<'a, Result<Vec<NodePool>, DriverError>> {
        Box::pin(async move {
            match nodes {
                Some(nodes) => Ok(pools_from_nodes(nodes)),
                None => Err(DriverError::NotSupported(format!(
                    "k3s node pools are the cluster's nodes grouped by their `{NODE_POOL_LABEL}` label; list them from the observed nodes"
                ))),
            }
        })
    }

    fn create_node_pool<'a>(
        &'a self,
        _cluster: &'a Cluster,
        pool: NodePool,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(async move { Err(no_pool_changes("create", &pool.name)) })
    }

    fn update_node_pool<'a>(
        &'a self,
        _cluster: &'a Cluster,
        update: NodePoolUpdate,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(async move { Err(no_pool_changes("update", &update.name)) })
    }

    fn delete_node_pool<'a>(
        &'a self,
        _cluster: &'a Cluster,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Operation, DriverError>> {
        Box::pin(async move { Err(no_pool_changes("delete", name)) })
    }

    /// K3s manages no DNS zone.
    fn apply_dns<'a>(
        &'a self,
        _cluster: &'a Cluster,
        records: &'a [DnsRecordSet],
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            Err(DriverError::NotSupported(format!(
                "k3s manages no DNS zone: create the {} record set(s) at your DNS provider, pointing at the node",
                records.len()
            )))
        })
    }

    // `poll_operation`: the default. Everything K3s does completes before
    // its method returns, so the only operation ids it could hand out are
    // the `sync:` ids of completed operations, which the default answers
    // `Succeeded`.
}

fn no_pool_changes(verb: &str, pool: &str) -> DriverError {
    DriverError::NotSupported(format!(
        "k3s cannot {verb} node pool `{pool}`: a K3s pool is the nodes labelled `{NODE_POOL_LABEL}={pool}`; join or label nodes with K3s itself (`k3s agent --node-label {NODE_POOL_LABEL}={pool}`)"
    ))
}

fn cluster_kubeconfig(cluster: &Cluster) -> Result<Vec<u8>, DriverError> {
    let Some(path) = cluster.settings.get(KUBECONFIG_SETTING) else {
        return Err(DriverError::NotSupported(format!(
            "cluster `{}` has no `{KUBECONFIG_SETTING}` setting (e.g. /etc/rancher/k3s/k3s.yaml) and no spec.kubeconfig",
            cluster.meta.name
        )));
    };
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err(DriverError::InvalidInput(format!(
            "cluster `{}`: {KUBECONFIG_SETTING} `{}` must be an absolute path",
            cluster.meta.name,
            path.display()
        )));
    }
    std::fs::read(path)
        .map_err(|e| DriverError::from_io(&e, &format!("{KUBECONFIG_SETTING} {}", path.display())))
}

/// Nodes grouped by their pool label, sorted by pool name. A pool's zones
/// are its nodes' `kompox.dev/node-zone` values, its count the number of
/// nodes, its labels and taints those all of its nodes share (the
/// per-node hostname dropped). Nodes without the label belong to no pool
/// (Kompox placements never select them).
pub fn pools_from_nodes(nodes: &[NodeInfo]) -> Vec<NodePool> {
    let mut by_pool: BTreeMap<&str, Vec<&NodeInfo>> = BTreeMap::new();
    for n in nodes {
        if let Some(p) = n.labels.get(NODE_POOL_LABEL) {
            by_pool.entry(p).or_default().push(n);
        }
    }
    by_pool
        .into_iter()
        .map(|(name, members)| {
            let mut zones: Vec<String> = members
                .iter()
                .filter_map(|n| n.labels.get(NODE_ZONE_LABEL).cloned())
                .collect();
            zones.sort();
            zones.dedup();
            let mut labels = members[0].labels.clone();
            labels.remove("kubernetes.io/hostname");
            labels.retain(|k, v| members.iter().all(|n| n.labels.get(k) == Some(v)));
            let mut taints = members[0].taints.clone();
            taints.retain(|t| members.iter().all(|n| n.taints.contains(t)));
            taints.sort();
            NodePool {
                name: name.to_string(),
                zones,
                instance_type: labels.get("node.kubernetes.io/instance-type").cloned(),
                min_count: None,
                max_count: None,
                count: Some(members.len() as u32),
                labels,
                taints,
            }
        })
        .collect()
}

/// The K3s volume handle: `k3s:<node>:<absolute path>` (DECISIONS 21).
pub fn handle(node: &str, dir: &Path) -> String {
    format!("k3s:{node}:{}", dir.display())
}

/// Relative paths (`/`-separated), kinds and attributes of a tree, sorted
/// by path (so a directory comes before its contents).
fn walk(
    host: &dyn HostAccess,
    node: &str,
    dir: &Path,
) -> Result<Vec<(String, EntryKind, Attrs)>, DriverError> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        for e in host.list(node, &abs)? {
            let r = if rel.is_empty() {
                e.name.clone()
            } else {
                format!("{rel}/{}", e.name)
            };
            if e.kind == EntryKind::Dir {
                stack.push((abs.join(&e.name), r.clone()));
            }
            out.push((r, e.kind, e.attrs));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Adds one entry to the tree hash: kind tag, path, NUL, mode, uid, gid
/// (u32 BE each), content length (u64 BE), content.
fn hash_entry(h: &mut Sha256, kind: EntryKind, rel: &str, attrs: Attrs, content: &[u8]) {
    hash_header(h, kind, rel, attrs);
    h.update(content);
    h.update((content.len() as u64).to_be_bytes());
}

/// The part of an entry's hash before its content; the content's length
/// follows the content, so a file can be hashed while it streams.
fn hash_header(h: &mut Sha256, kind: EntryKind, rel: &str, attrs: Attrs) {
    h.update(match kind {
        EntryKind::File => b"f",
        EntryKind::Dir => b"d",
        EntryKind::Symlink => b"l",
    });
    h.update(rel.as_bytes());
    h.update([0u8]);
    h.update(attrs.mode.to_be_bytes());
    h.update(attrs.uid.to_be_bytes());
    h.update(attrs.gid.to_be_bytes());
}

/// Streams a file into the hash (and into `sink`, when copying); returns
/// its length. The length is hashed after the content. `on_bytes` gets the
/// bytes of this file done so far after each chunk.
fn hash_file(
    h: &mut Sha256,
    mut src: Box<dyn Read + Send>,
    mut sink: Option<(&mut Box<dyn WriteSink>, &Path)>,
    path: &Path,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<u64, DriverError> {
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e, path)),
        };
        h.update(&buf[..n]);
        if let Some((w, dst)) = sink.as_mut() {
            w.write_all(&buf[..n]).map_err(|e| io(e, dst))?;
        }
        len += n as u64;
        on_bytes(len);
    }
    h.update(len.to_be_bytes());
    Ok(len)
}

fn link_bytes(p: &Path) -> Vec<u8> {
    p.to_string_lossy().into_owned().into_bytes()
}

/// SHA-256 over a tree: first the root directory (path `.`), then each
/// entry in sorted relative-path order, hashed by `hash_entry` (a
/// directory's content is empty, a symlink's is its target). Modes and
/// owners are part of the checksum: a restore must reproduce them.
pub fn tree_checksum(
    host: &dyn HostAccess,
    node: &str,
    dir: &Path,
) -> Result<TreeSum, DriverError> {
    let mut h = Sha256::new();
    hash_entry(&mut h, EntryKind::Dir, ".", host.attrs(node, dir)?, &[]);
    let (mut bytes, mut entries) = (0u64, 0u64);
    for (rel, kind, attrs) in walk(host, node, dir)? {
        let p = dir.join(&rel);
        match kind {
            EntryKind::File => {
                hash_header(&mut h, kind, &rel, attrs);
                bytes += hash_file(&mut h, host.open_read(node, &p)?, None, &p, &mut |_| {})?;
            }
            EntryKind::Dir => hash_entry(&mut h, kind, &rel, attrs, &[]),
            EntryKind::Symlink => hash_entry(
                &mut h,
                kind,
                &rel,
                attrs,
                &link_bytes(&host.read_link(node, &p)?),
            ),
        }
        entries += 1;
    }
    Ok(TreeSum {
        checksum: hex(&h.finalize()),
        bytes,
        entries,
    })
}

/// Copies a tree between (possibly different) nodes, with modes and
/// owners; returns the checksum of what was copied (as [`tree_checksum`]
/// of the source). Files stream in 1 MiB chunks.
pub fn copy_tree(
    host: &dyn HostAccess,
    from_node: &str,
    from: &Path,
    to_node: &str,
    to: &Path,
) -> Result<TreeSum, DriverError> {
    copy_tree_reporting(host, from_node, from, to_node, to, &mut |_| {})
}

/// [`copy_tree`], calling `on_bytes` with the total bytes of file content
/// copied so far after every chunk written (for a progress display).
pub fn copy_tree_reporting(
    host: &dyn HostAccess,
    from_node: &str,
    from: &Path,
    to_node: &str,
    to: &Path,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<TreeSum, DriverError> {
    let mut h = Sha256::new();
    let root_attrs = host.attrs(from_node, from)?;
    hash_entry(&mut h, EntryKind::Dir, ".", root_attrs, &[]);
    let (mut bytes, mut entries) = (0u64, 0u64);
    let mut dirs = vec![(to.to_path_buf(), root_attrs)];
    host.mkdir(to_node, to)?;
    for (rel, kind, attrs) in walk(host, from_node, from)? {
        let src = from.join(&rel);
        let dst = to.join(&rel);
        match kind {
            EntryKind::Dir => {
                host.mkdir(to_node, &dst)?;
                // Modes of directories are set last (a read-only directory
                // would refuse its contents).
                dirs.push((dst, attrs));
                hash_entry(&mut h, kind, &rel, attrs, &[]);
            }
            EntryKind::File => {
                hash_header(&mut h, kind, &rel, attrs);
                let mut sink = host.create_write(to_node, &dst)?;
                let before = bytes;
                bytes += hash_file(
                    &mut h,
                    host.open_read(from_node, &src)?,
                    Some((&mut sink, &dst)),
                    &src,
                    &mut |n| on_bytes(before + n),
                )?;
                sink.finish().map_err(|e| io(e, &dst))?;
                host.set_attrs(to_node, &dst, attrs)?;
            }
            EntryKind::Symlink => {
                let target = host.read_link(from_node, &src)?;
                host.symlink(to_node, &target, &dst)?;
                host.set_attrs(to_node, &dst, attrs)?;
                hash_entry(&mut h, kind, &rel, attrs, &link_bytes(&target));
            }
        }
        entries += 1;
    }
    for (dir, attrs) in dirs.iter().rev() {
        host.set_attrs(to_node, dir, *attrs)?;
    }
    Ok(TreeSum {
        checksum: hex(&h.finalize()),
        bytes,
        entries,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn settings() {
        let s = BTreeMap::from([("K3S_NODE_ROOTS".to_string(), "a=/x,b=/y".to_string())]);
        let d = K3sDriver::from_settings(&s).map(|d| d.host.nodes());
        assert_eq!(d, Ok(vec!["a".to_string(), "b".to_string()]));
        let rel = BTreeMap::from([("K3S_NODE_ROOTS".to_string(), "a=x".to_string())]);
        assert!(matches!(
            K3sDriver::from_settings(&rel),
            Err(DriverError::InvalidInput(_))
        ));
        let other = BTreeMap::from([
            ("K3S_NODE".to_string(), "a".to_string()),
            ("K3S_HOST_ACCESS".to_string(), "rsync".to_string()),
        ]);
        assert!(matches!(
            K3sDriver::from_settings(&other),
            Err(DriverError::NotSupported(_))
        ));
    }

    #[test]
    fn ssh_settings() {
        let with = |pairs: &[(&str, &str)]| {
            let mut s = BTreeMap::from([
                ("K3S_HOST_ACCESS".to_string(), "ssh".to_string()),
                (
                    "K3S_SSH_HOSTS".to_string(),
                    "vm2=admin@10.0.0.2:2222,vm1=10.0.0.1".to_string(),
                ),
                ("K3S_SSH_KEY".to_string(), "/etc/kompox/id".to_string()),
                (
                    "K3S_SSH_KNOWN_HOSTS".to_string(),
                    "/etc/kompox/kh".to_string(),
                ),
            ]);
            for (k, v) in pairs {
                match v {
                    &"-" => s.remove(*k),
                    v => s.insert(k.to_string(), v.to_string()),
                };
            }
            K3sDriver::from_settings(&s)
        };
        // Nodes come from K3S_SSH_HOSTS; roots from K3S_ROOT, per node
        // from K3S_NODE_ROOTS; nothing is contacted yet.
        let d = with(&[
            ("K3S_ROOT", "/srv/kompox"),
            ("K3S_NODE_ROOTS", "vm2=/data/k"),
        ])
        .unwrap();
        assert_eq!(d.host.nodes(), ["vm1", "vm2"]);
        assert_eq!(d.host.root("vm1"), Ok(PathBuf::from("/srv/kompox")));
        assert_eq!(d.host.root("vm2"), Ok(PathBuf::from("/data/k")));
        let d = with(&[]).unwrap();
        assert_eq!(d.host.root("vm1"), Ok(PathBuf::from(DEFAULT_ROOT)));
        assert!(with(&[("K3S_SSH_CONNECT_TIMEOUT", "5")]).is_ok());
        for bad in [
            vec![("K3S_SSH_HOSTS", "-")],
            vec![("K3S_SSH_KEY", "-")],
            vec![("K3S_SSH_KNOWN_HOSTS", "-")],
            vec![("K3S_SSH_KEY", "id_ed25519")],
            vec![("K3S_SSH_HOSTS", "vm1=root@-oProxyCommand=x")],
            vec![("K3S_SSH_HOSTS", "vm1")],
            vec![("K3S_NODE_ROOTS", "vm3=/x")],
            vec![("K3S_ROOT", "relative")],
            vec![("K3S_SSH_CONNECT_TIMEOUT", "0")],
        ] {
            assert!(
                matches!(with(&bad), Err(DriverError::InvalidInput(_))),
                "{bad:?} should be refused"
            );
        }
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn cluster_with(settings: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster {
            existing: true,
            ..Default::default()
        };
        c.meta.name = "home".into();
        for (k, v) in settings {
            c.settings.insert(k.to_string(), v.to_string());
        }
        c
    }

    fn node(name: &str, pool: Option<&str>, zone: &str) -> NodeInfo {
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            (NODE_ZONE_LABEL.to_string(), zone.to_string()),
            ("type".to_string(), "kwok".to_string()),
        ]);
        if let Some(p) = pool {
            labels.insert(NODE_POOL_LABEL.to_string(), p.to_string());
        }
        NodeInfo {
            name: name.into(),
            labels,
            taints: Vec::new(),
        }
    }

    fn one_node_driver(root: &Path) -> K3sDriver {
        K3sDriver::new(LocalHost::new(BTreeMap::from([(
            "n1".to_string(),
            root.to_path_buf(),
        )])))
    }

    /// Node pools on K3s are observation only: grouped from the nodes,
    /// never created, changed or deleted by Kompox.
    #[test]
    fn node_pools_are_the_nodes_grouped_by_their_pool_label() {
        let d = one_node_driver(Path::new("/r"));
        let c = cluster_with(&[]);
        let nodes = vec![
            node("a1", Some("user"), "zone-a"),
            node("b1", Some("user"), "zone-b"),
            node("g1", Some("gpu"), "zone-a"),
            node("x1", None, "zone-c"),
        ];
        let pools = block(d.list_node_pools(&c, Some(&nodes))).unwrap();
        assert_eq!(
            pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["gpu", "user"]
        );
        let user = &pools[1];
        assert_eq!(user.zones, ["zone-a", "zone-b"]);
        assert_eq!(user.count, Some(2));
        assert_eq!(
            user.labels,
            BTreeMap::from([
                (NODE_POOL_LABEL.to_string(), "user".to_string()),
                ("type".to_string(), "kwok".to_string()),
            ]),
            "only the labels every node shares; no hostname, no zone"
        );
        let not_supported = |r: Result<Operation, DriverError>| match r {
            Err(DriverError::NotSupported(m)) => {
                assert!(m.contains(NODE_POOL_LABEL), "{m}")
            }
            other => panic!("{other:?}"),
        };
        not_supported(block(d.create_node_pool(
            &c,
            NodePool {
                name: "gpu".into(),
                ..Default::default()
            },
        )));
        not_supported(block(d.update_node_pool(
            &c,
            NodePoolUpdate {
                name: "gpu".into(),
                ..Default::default()
            },
        )));
        not_supported(block(d.delete_node_pool(&c, "gpu")));
        assert!(matches!(
            block(d.list_node_pools(&c, None)),
            Err(DriverError::NotSupported(_))
        ));
    }

    #[test]
    fn kubeconfig_and_status_from_the_cluster_setting() {
        let d = one_node_driver(Path::new("/r"));
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("k3s.yaml");
        std::fs::write(&kc, b"apiVersion: v1\nkind: Config\n").unwrap();
        let set = cluster_with(&[(KUBECONFIG_SETTING, kc.to_str().unwrap())]);
        assert_eq!(
            block(d.cluster_kubeconfig(&set)).unwrap(),
            b"apiVersion: v1\nkind: Config\n"
        );
        let status = block(d.cluster_status(&set)).unwrap();
        assert!(status.existing);
        assert_eq!(status.provisioned, Some(true));
        assert_eq!(status.installed, None, "the driver cannot see Traefik");

        let unset = cluster_with(&[]);
        match block(d.cluster_kubeconfig(&unset)) {
            Err(DriverError::NotSupported(m)) => assert!(m.contains(KUBECONFIG_SETTING), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(block(d.cluster_status(&unset)).unwrap().provisioned, None);

        let missing = dir.path().join("nope.yaml");
        let gone = cluster_with(&[(KUBECONFIG_SETTING, missing.to_str().unwrap())]);
        assert!(matches!(
            block(d.cluster_kubeconfig(&gone)),
            Err(DriverError::NotFound(_))
        ));
        assert_eq!(
            block(d.cluster_status(&gone)).unwrap().provisioned,
            Some(false)
        );
        let relative = cluster_with(&[(KUBECONFIG_SETTING, "k3s.yaml")]);
        assert!(matches!(
            block(d.cluster_kubeconfig(&relative)),
            Err(DriverError::InvalidInput(_))
        ));
    }

    #[test]
    fn cloud_only_operations_say_why_not_and_sync_ids_poll_as_succeeded() {
        let d = one_node_driver(Path::new("/r"));
        let scope = DiskScope::new("abc", "app");
        match block(d.copy_snapshot(&scope, "data", "s1", "region-2")) {
            Err(DriverError::NotSupported(m)) => assert!(m.contains("disk create -S"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            block(d.apply_dns(&cluster_with(&[]), &[])),
            Err(DriverError::NotSupported(_))
        ));
        let op = block(d.poll_operation("sync:copy_snapshot:data/s1")).unwrap();
        assert_eq!(op.state, super::super::driver::OperationState::Succeeded);
        assert_eq!(op.target, "data/s1");
        assert!(matches!(
            block(d.poll_operation("op-123")),
            Err(DriverError::NotFound(_))
        ));
        assert_eq!(d.snapshot_consistency(), SnapshotConsistency::FileLevel);
    }

    /// Snapshots and restores report the bytes copied, growing to the total.
    #[test]
    fn copies_report_progress_up_to_the_total() {
        let root = tempfile::tempdir().unwrap();
        let mut d = one_node_driver(root.path());
        let seen: std::sync::Arc<std::sync::Mutex<Vec<Progress>>> = Default::default();
        let sink = seen.clone();
        d.set_progress(Some(std::sync::Arc::new(move |p: &Progress| {
            sink.lock().unwrap().push(p.clone())
        })));
        let scope = DiskScope::new("abc", "app");
        let disk = block(d.create_disk(
            &scope,
            "data",
            CreateDisk {
                name: "d1".into(),
                size_bytes: 1 << 30,
                placement: Placement::Any,
                source: None,
                options: BTreeMap::new(),
            },
        ))
        .unwrap();
        assert!(
            seen.lock().unwrap().is_empty(),
            "an empty disk copies nothing"
        );
        let dir = PathBuf::from(disk.handle.rsplit_once(':').unwrap().1);
        std::fs::write(dir.join("big"), vec![7u8; 3 * CHUNK + 5]).unwrap();
        std::fs::write(dir.join("small"), b"x").unwrap();
        let total = (3 * CHUNK + 6) as u64;
        block(d.assign_disk(&scope, "data", "d1")).unwrap();
        block(d.create_snapshot(&scope, "data", "s1", None)).unwrap();
        block(d.create_disk(
            &scope,
            "data",
            CreateDisk {
                name: "d2".into(),
                size_bytes: 1 << 30,
                placement: Placement::Any,
                source: Some(Source::Snapshot("s1".into())),
                options: BTreeMap::new(),
            },
        ))
        .unwrap();
        let seen = seen.lock().unwrap();
        for what in ["snapshot data/s1", "disk data/d2"] {
            let mine: Vec<&Progress> = seen.iter().filter(|p| p.what == what).collect();
            assert!(mine.len() >= 4, "{what}: a report per chunk: {mine:?}");
            assert!(
                mine.windows(2).all(|w| w[0].done_bytes <= w[1].done_bytes),
                "{what}: never goes back"
            );
            assert_eq!(mine[0].done_bytes, 0);
            let last = mine.last().unwrap();
            assert_eq!(
                (last.done_bytes, last.total_bytes),
                (total, Some(total)),
                "{what}"
            );
        }
    }

    #[test]
    fn local_host_refuses_paths_outside_root() {
        let h = LocalHost::new(BTreeMap::from([("n".to_string(), PathBuf::from("/r"))]));
        assert!(h.read("n", Path::new("/etc/passwd")).is_err());
        assert!(h.read("n", Path::new("/r/../etc/passwd")).is_err());
        assert!(matches!(h.root("m"), Err(DriverError::NotFound(_))));
    }
}
