//! `kompoxops disk …` and `kompoxops snapshot …` (reference §7, §8.2):
//! the disks and snapshots of one App volume, through the driver of the
//! App's Provider.
//!
//! `list` and `create` print pretty JSON on stdout; every other message
//! goes to stderr. Any error exits 1 with the driver's message.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};

use super::{GlobalArgs, output};
use kompox::convert::disk_name_for;
use kompox::desired;
use kompox::hash::AppHashes;
use kompox::model::{App, AppVolume};
use kompox::provider::driver::{
    self, CreateDisk, Disk, DiskScope, Driver, DriverError, Placement, Snapshot, Source, SourceKind,
};

#[derive(Debug, clap::Args)]
#[command(disable_version_flag = true)]
pub struct DiskArgs {
    /// The App volume (`spec.volumes[].name`).
    #[arg(short = 'V', long = "vol-name", global = true, value_name = "VOL")]
    pub vol_name: Option<String>,
    /// The disk name.
    #[arg(
        short = 'N',
        long = "name",
        visible_alias = "disk-name",
        global = true,
        value_name = "NAME"
    )]
    pub name: Option<String>,
    #[command(subcommand)]
    pub command: DiskCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DiskCommand {
    /// List the disks of the volume (JSON, newest first).
    #[command(disable_version_flag = true)]
    List,
    /// Create a disk (unassigned), or with --bootstrap one assigned disk
    /// per App volume.
    #[command(disable_version_flag = true)]
    Create {
        /// Copy from `snapshot:<name>`, `disk:<name>` or a bare snapshot name.
        #[arg(short = 'S', long = "source", value_name = "SRC")]
        source: Option<String>,
        /// Zone of the new disk (the node name for k3s).
        #[arg(short = 'Z', long = "zone", value_name = "ZONE|NODE")]
        zone: Option<String>,
        /// Driver options as a JSON object (e.g. `{"sku":"Premium_LRS"}`).
        #[arg(short = 'O', long = "options", value_name = "JSON")]
        options: Option<String>,
        /// Create and assign one disk for every App volume without disks.
        #[arg(long)]
        bootstrap: bool,
    },
    /// Make the disk the one assigned (rendered) disk of the volume.
    #[command(disable_version_flag = true)]
    Assign,
    /// Delete an unassigned disk.
    #[command(disable_version_flag = true)]
    Delete,
}

#[derive(Debug, clap::Args)]
#[command(disable_version_flag = true)]
pub struct SnapshotArgs {
    /// The App volume (`spec.volumes[].name`).
    #[arg(short = 'V', long = "vol-name", global = true, value_name = "VOL")]
    pub vol_name: Option<String>,
    /// The snapshot name.
    #[arg(
        short = 'N',
        long = "name",
        visible_alias = "snap-name",
        global = true,
        value_name = "NAME"
    )]
    pub name: Option<String>,
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCommand {
    /// List the snapshots of the volume (JSON, newest first).
    #[command(disable_version_flag = true)]
    List,
    /// Snapshot a disk (default: the assigned disk of the volume).
    #[command(disable_version_flag = true)]
    Create {
        /// `disk:<name>` or a bare disk name.
        #[arg(short = 'S', long = "source", value_name = "SRC")]
        source: Option<String>,
    },
    /// Delete a snapshot.
    #[command(disable_version_flag = true)]
    Delete,
}

/// The selected App and its Provider's driver.
struct Target {
    app: App,
    driver: Box<dyn Driver>,
    scope: DiskScope,
    rt: tokio::runtime::Runtime,
}

impl Target {
    fn volume(&self, name: Option<&str>) -> anyhow::Result<AppVolume> {
        let name = name.ok_or_else(|| anyhow!("pass the App volume with -V/--vol-name"))?;
        self.app
            .volumes
            .iter()
            .find(|v| v.name == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = self.app.volumes.iter().map(|v| v.name.as_str()).collect();
                anyhow!(
                    "App `{}` has no volume `{name}` (known: {})",
                    self.app.meta.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            })
    }

    fn disks(&self, volume: &str) -> anyhow::Result<Vec<Disk>> {
        let mut disks: Vec<Disk> = self
            .rt
            .block_on(self.driver.list_disks(&self.scope))
            .map_err(|e| derr("disk list", e))?
            .into_iter()
            .filter(|d| d.volume == volume)
            .collect();
        disks.sort_by(|a, b| (&b.created_at, &a.name).cmp(&(&a.created_at, &b.name)));
        Ok(disks)
    }

    fn snapshots(&self, volume: &str) -> anyhow::Result<Vec<Snapshot>> {
        let mut snaps: Vec<Snapshot> = self
            .rt
            .block_on(self.driver.list_snapshots(&self.scope))
            .map_err(|e| derr("snapshot list", e))?
            .into_iter()
            .filter(|s| s.volume == volume)
            .collect();
        snaps.sort_by(|a, b| (&b.created_at, &a.name).cmp(&(&a.created_at, &b.name)));
        Ok(snaps)
    }

    fn placement(&self, zone: Option<&str>) -> Placement {
        match zone {
            None => Placement::Any,
            Some(z) if self.driver.id() == "k3s" => Placement::Node(z.to_string()),
            Some(z) => Placement::Zonal(z.to_string()),
        }
    }
}

/// A driver error with its kind, e.g. `disk create: not found: … (NotFound)`.
fn derr(what: &str, e: DriverError) -> anyhow::Error {
    let kind = match &e {
        DriverError::NotFound(_) => "NotFound",
        DriverError::NotSupported(_) => "NotSupported",
        DriverError::Conflict(_) => "Conflict",
        DriverError::Transient(_) => "Transient",
        DriverError::Permission(_) => "Permission",
        DriverError::InvalidInput(_) => "InvalidInput",
        DriverError::Corrupt(_) => "Corrupt",
        DriverError::Io(_) => "Io",
    };
    anyhow!("{what}: {e} ({kind})")
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    output::stdout(&text);
    Ok(())
}

fn need_name<'a>(name: Option<&'a str>, what: &str) -> anyhow::Result<&'a str> {
    name.ok_or_else(|| anyhow!("pass the {what} name with -N/--name"))
}

/// Loads the project, selects exactly one App and opens its driver.
fn target(g: &GlobalArgs) -> anyhow::Result<Result<Target, i32>> {
    let sel = match super::plan::select(g)? {
        Ok(s) => s,
        Err(code) => return Ok(Err(code)),
    };
    let id = match sel.ids.as_slice() {
        [id] => id.clone(),
        [] => bail!("this command works on one App: pass --app-id or --app-name"),
        _ => bail!("this command works on one App; pass --app-id or --app-name"),
    };
    let kom = &sel.project.kom;
    let app = kom
        .apps
        .iter()
        .find(|a| a.meta.id == id)
        .ok_or_else(|| anyhow!("App `{id}` is not loaded"))?;
    let ctx = desired::context(kom, app)
        .ok_or_else(|| anyhow!("the Cluster, Provider or Workspace of App `{id}` is not loaded"))?;
    let hashes = AppHashes::new(
        &ctx.workspace.meta.name,
        &ctx.provider.meta.name,
        &ctx.cluster.meta.name,
        &app.meta.name,
    );
    let driver = driver::driver_for(&ctx.provider.driver, &ctx.provider.settings)
        .map_err(|e| derr(&format!("provider `{}`", ctx.provider.meta.name), e))?;
    Ok(Ok(Target {
        app: app.clone(),
        driver,
        scope: DiskScope::from_hashes(&hashes, &app.meta.name),
        rt: super::runtime()?,
    }))
}

pub fn run_disk(g: &GlobalArgs, args: &DiskArgs) -> anyhow::Result<i32> {
    if let DiskCommand::Create {
        bootstrap: true,
        source,
        ..
    } = &args.command
    {
        if args.vol_name.is_some() {
            bail!(
                "--bootstrap works on every App volume; it cannot be combined with -V/--vol-name"
            );
        }
        if args.name.is_some() || source.is_some() {
            bail!("--bootstrap names the disks itself; it cannot be combined with -N or -S");
        }
    }
    let t = match target(g)? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let name = args.name.as_deref();
    match &args.command {
        DiskCommand::List => {
            let vol = t.volume(args.vol_name.as_deref())?;
            print_json(&t.disks(&vol.name)?)?;
        }
        DiskCommand::Create {
            zone,
            options,
            bootstrap: true,
            ..
        } => {
            let options = parse_options(options.as_deref())?;
            return bootstrap(&t, t.placement(zone.as_deref()), &options);
        }
        DiskCommand::Create {
            source,
            zone,
            options,
            ..
        } => {
            let vol = t.volume(args.vol_name.as_deref())?;
            let source = source
                .as_deref()
                .map(|s| Source::parse(s, SourceKind::Snapshot))
                .transpose()
                .map_err(|e| derr("disk create", e))?;
            let src_text = source.as_ref().map(Source::to_string);
            let name = match name {
                Some(n) => n.to_string(),
                None => disk_name_for(&t.scope.app_id_hash, &vol.name, src_text.as_deref()),
            };
            let req = CreateDisk {
                name: name.clone(),
                size_bytes: vol.size_bytes,
                placement: t.placement(zone.as_deref()),
                source,
                options: parse_options(options.as_deref())?,
            };
            let disk =
                t.rt.block_on(t.driver.create_disk(&t.scope, &vol.name, req))
                    .map_err(|e| derr(&format!("disk create `{name}`"), e))?;
            eprintln!("created disk `{}` of volume `{}`", disk.name, vol.name);
            print_json(&disk)?;
        }
        DiskCommand::Assign => {
            let vol = t.volume(args.vol_name.as_deref())?;
            let name = need_name(name, "disk")?;
            t.rt.block_on(t.driver.assign_disk(&t.scope, &vol.name, name))
                .map_err(|e| derr(&format!("disk assign `{name}`"), e))?;
            eprintln!("assigned disk `{name}` to volume `{}`", vol.name);
        }
        DiskCommand::Delete => {
            let vol = t.volume(args.vol_name.as_deref())?;
            let name = need_name(name, "disk")?;
            let disks = t.disks(&vol.name)?;
            match disks.iter().find(|d| d.name == name) {
                None => {
                    eprintln!(
                        "disk `{name}` of volume `{}` does not exist; nothing to delete",
                        vol.name
                    );
                    return Ok(0);
                }
                Some(d) if d.assigned => bail!(
                    "disk `{name}` is the assigned disk of volume `{}` and cannot be deleted; assign another disk first",
                    vol.name
                ),
                Some(_) => {}
            }
            t.rt.block_on(t.driver.delete_disk(&t.scope, &vol.name, name))
                .map_err(|e| derr(&format!("disk delete `{name}`"), e))?;
            eprintln!("deleted disk `{name}` of volume `{}`", vol.name);
        }
    }
    Ok(0)
}

fn parse_options(text: Option<&str>) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    match text {
        None => Ok(BTreeMap::new()),
        Some(t) => {
            serde_json::from_str(t).map_err(|e| anyhow!("-O/--options must be a JSON object: {e}"))
        }
    }
}

/// `disk create --bootstrap` (reference §7): every volume without an
/// assigned disk gets one, when no volume has one yet.
fn bootstrap(
    t: &Target,
    placement: Placement,
    options: &BTreeMap<String, serde_json::Value>,
) -> anyhow::Result<i32> {
    if t.app.volumes.is_empty() {
        eprintln!("App `{}` has no volumes; nothing to do", t.app.meta.name);
        return Ok(0);
    }
    let all =
        t.rt.block_on(t.driver.list_disks(&t.scope))
            .map_err(|e| derr("disk list", e))?;
    let counts: Vec<(&str, usize, usize)> = t
        .app
        .volumes
        .iter()
        .map(|v| {
            let of_vol = all.iter().filter(|d| d.volume == v.name);
            let assigned = of_vol.clone().filter(|d| d.assigned).count();
            (v.name.as_str(), assigned, of_vol.count())
        })
        .collect();
    if counts.iter().all(|c| c.1 == 1) {
        eprintln!(
            "already initialized: every volume of App `{}` has one assigned disk",
            t.app.meta.name
        );
        return Ok(0);
    }
    if !counts.iter().all(|c| c.1 == 0) {
        let list: Vec<String> = counts
            .iter()
            .map(|(v, a, n)| format!("{v}(assigned={a},total={n})"))
            .collect();
        bail!(
            "cannot bootstrap: the volumes are partly initialized: {}",
            list.join(", ")
        );
    }
    let mut created = Vec::new();
    for vol in &t.app.volumes {
        // Re-check right before creating: another run may have been faster.
        let disks = t.disks(&vol.name)?;
        if disks.iter().any(|d| d.assigned) {
            bail!(
                "volume `{}` got an assigned disk while bootstrapping; run again to check",
                vol.name
            );
        }
        let name = disk_name_for(&t.scope.app_id_hash, &vol.name, vol.source.as_deref());
        if !disks.iter().any(|d| d.name == name) {
            let source = vol
                .source
                .as_deref()
                .map(|s| Source::parse(s, SourceKind::Snapshot))
                .transpose()
                .map_err(|e| derr(&format!("volume `{}` source", vol.name), e))?;
            let req = CreateDisk {
                name: name.clone(),
                size_bytes: vol.size_bytes,
                placement: placement.clone(),
                source,
                options: if options.is_empty() {
                    vol.options.clone()
                } else {
                    options.clone()
                },
            };
            t.rt.block_on(t.driver.create_disk(&t.scope, &vol.name, req))
                .map_err(|e| derr(&format!("disk create `{name}`"), e))?;
        }
        t.rt.block_on(t.driver.assign_disk(&t.scope, &vol.name, &name))
            .map_err(|e| derr(&format!("disk assign `{name}`"), e))?;
        eprintln!(
            "created and assigned disk `{name}` of volume `{}`",
            vol.name
        );
        if let Some(d) = t.disks(&vol.name)?.into_iter().find(|d| d.name == name) {
            created.push(d);
        }
    }
    print_json(&created)?;
    Ok(0)
}

pub fn run_snapshot(g: &GlobalArgs, args: &SnapshotArgs) -> anyhow::Result<i32> {
    let t = match target(g)? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let vol = t.volume(args.vol_name.as_deref())?;
    match &args.command {
        SnapshotCommand::List => print_json(&t.snapshots(&vol.name)?)?,
        SnapshotCommand::Create { source } => {
            let source = source
                .as_deref()
                .map(|s| Source::parse(s, SourceKind::Disk))
                .transpose()
                .map_err(|e| derr("snapshot create", e))?;
            let name = match args.name.as_deref() {
                Some(n) => n.to_string(),
                None => default_snapshot_name(&t, &vol.name, source.as_ref())?,
            };
            let snap =
                t.rt.block_on(t.driver.create_snapshot(&t.scope, &vol.name, &name, source))
                    .map_err(|e| derr(&format!("snapshot create `{name}`"), e))?;
            eprintln!("created snapshot `{}` of volume `{}`", snap.name, vol.name);
            print_json(&snap)?;
        }
        SnapshotCommand::Delete => {
            let name = need_name(args.name.as_deref(), "snapshot")?;
            if !t.snapshots(&vol.name)?.iter().any(|s| s.name == name) {
                eprintln!(
                    "snapshot `{name}` of volume `{}` does not exist; nothing to delete",
                    vol.name
                );
                return Ok(0);
            }
            t.rt.block_on(t.driver.delete_snapshot(&t.scope, &vol.name, name))
                .map_err(|e| derr(&format!("snapshot delete `{name}`"), e))?;
            eprintln!("deleted snapshot `{name}` of volume `{}`", vol.name);
        }
    }
    Ok(0)
}

/// A deterministic snapshot name: hashed from the app, the volume and the
/// source disk, with a counter when an earlier snapshot took the name.
fn default_snapshot_name(
    t: &Target,
    volume: &str,
    source: Option<&Source>,
) -> anyhow::Result<String> {
    let src = match source {
        Some(s) => s.to_string(),
        None => match t.disks(volume)?.into_iter().find(|d| d.assigned) {
            Some(d) => format!("disk:{}", d.name),
            None => "assigned".to_string(),
        },
    };
    let taken: Vec<String> = t.snapshots(volume)?.into_iter().map(|s| s.name).collect();
    let mut n = 0u32;
    loop {
        let key = format!("snapshot-of:{src}#{n}");
        let name = disk_name_for(&t.scope.app_id_hash, volume, Some(&key));
        if !taken.contains(&name) {
            return Ok(name);
        }
        n += 1;
    }
}
