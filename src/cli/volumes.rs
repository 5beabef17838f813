//! `kompoxops disk …` and `kompoxops snapshot …` (reference §7, §8.2):
//! the disks and snapshots of one App volume, through the driver of the
//! App's Provider.
//!
//! `list` and `create` print pretty JSON on stdout; every other message
//! goes to stderr. Any error exits 1 with the driver's message.
//!
//! Long copies (snapshot, restore) show a progress bar on a terminal
//! (stderr) and nothing extra elsewhere, so logs and scripts see the same
//! lines as before.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use super::{GlobalArgs, output};
use kompox::apply::StopEvent;
use kompox::cluster::Connection;
use kompox::convert::{Names, disk_name_for};
use kompox::desired;
use kompox::model::{App, AppVolume, Cluster};
use kompox::provider::driver::{
    self, CreateDisk, Disk, DiskScope, Driver, DriverError, Placement, Progress, Snapshot,
    SnapshotConsistency, Source, SourceKind,
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
        /// Stop the App during the snapshot (scale its Deployment to 0 and
        /// wait for its pods to go), then start it again, also when the
        /// snapshot fails. Needs the App's cluster.
        #[arg(long)]
        consistent: bool,
        /// Seconds to wait for the App's pods to stop (with --consistent).
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        timeout: u64,
        /// The writer Lease (with --consistent: stopping the App is a write).
        #[command(flatten)]
        lease: super::apply::LeaseArgs,
    },
    /// Delete a snapshot.
    #[command(disable_version_flag = true)]
    Delete,
    /// Copy a snapshot to another region (a region move or disaster
    /// recovery), then restore it there with `disk create -S`. Prints the
    /// operation (JSON); without `--no-wait`, waits until it is done.
    #[command(disable_version_flag = true)]
    Copy {
        /// The target region (e.g. `us-west-2`).
        #[arg(long = "to-region", value_name = "REGION")]
        to_region: String,
        /// Print the started operation and return; poll it again by
        /// running the same command (the driver answers the same copy).
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for the copy.
        #[arg(long, default_value_t = 3600, value_name = "SECS")]
        timeout: u64,
    },
}

/// The selected App and its Provider's driver.
struct Target {
    app: App,
    driver: Box<dyn Driver>,
    scope: DiskScope,
    rt: tokio::runtime::Runtime,
    /// The App's Cluster and the project root (for `--consistent`).
    cluster: Cluster,
    root: PathBuf,
    names: Names,
    /// The progress bars on a terminal; `None` elsewhere.
    bars: Option<Arc<Bars>>,
}

/// One progress bar per copy, on a terminal only (CONVENTIONS: bars only on
/// a TTY). Fed by the driver's progress reports.
#[derive(Default)]
struct Bars {
    current: Mutex<Option<(String, indicatif::ProgressBar, Instant, u64)>>,
}

impl Bars {
    fn report(&self, p: &Progress) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_none_or(|(what, ..)| *what != p.what) {
            if let Some((what, bar, start, done)) = cur.take() {
                Self::done(&what, &bar, start, done);
            }
            let bar = match p.total_bytes {
                Some(total) => {
                    let b = indicatif::ProgressBar::new(total);
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{msg} [{bar:20}] {percent:>3}% {binary_bytes}/{binary_total_bytes} {eta}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b
                }
                None => {
                    let b = indicatif::ProgressBar::new_spinner();
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{msg} {spinner} {binary_bytes}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    b
                }
            };
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_message(p.what.clone());
            *cur = Some((p.what.clone(), bar, Instant::now(), 0));
        }
        if let Some((_, bar, _, done)) = cur.as_mut() {
            bar.set_position(p.done_bytes);
            *done = p.done_bytes;
        }
    }

    /// Clears the bar and leaves one summary line.
    fn finish(&self) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((what, bar, start, done)) = cur.take() {
            Self::done(&what, &bar, start, done);
        }
    }

    fn done(what: &str, bar: &indicatif::ProgressBar, start: Instant, bytes: u64) {
        bar.finish_and_clear();
        eprintln!(
            "{what}: {} copied in {:.1}s",
            indicatif::BinaryBytes(bytes),
            start.elapsed().as_secs_f64()
        );
    }
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

    /// Runs a driver call, then closes its progress bar (if any).
    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        let r = self.rt.block_on(f);
        if let Some(b) = &self.bars {
            b.finish();
        }
        r
    }

    /// Connects to the App's Cluster (DECISIONS 15): the Cluster's
    /// `spec.kubeconfig` (relative to the project root) when set, else the
    /// driver's credentials for the Cluster, else `KUBECONFIG`, else
    /// `~/.kube/config`.
    fn connect(&self) -> anyhow::Result<Connection> {
        Ok(self.rt.block_on(kompox::pipeline::connect_cluster(
            &self.cluster,
            &self.root,
            Some(self.driver.as_ref()),
        ))?)
    }

    fn placement(&self, zone: Option<&str>) -> Placement {
        match zone {
            None => Placement::Any,
            Some(z) if self.driver.places_on_nodes() => Placement::Node(z.to_string()),
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
    let names = Names::new(&ctx);
    let mut driver = driver::driver_for(&ctx.provider.driver, &ctx.provider.settings)
        .map_err(|e| derr(&format!("provider `{}`", ctx.provider.meta.name), e))?;
    let bars = std::io::stderr()
        .is_terminal()
        .then(|| Arc::new(Bars::default()));
    if let Some(b) = &bars {
        let b = b.clone();
        driver.set_progress(Some(Arc::new(move |p: &Progress| b.report(p))));
    }
    Ok(Ok(Target {
        app: app.clone(),
        driver,
        scope: DiskScope::from_hashes(&names.hashes, &app.meta.name),
        rt: super::runtime()?,
        cluster: ctx.cluster.clone(),
        root: sel.loaded.root.clone(),
        names,
        bars,
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
            let disk = t
                .run(t.driver.create_disk(&t.scope, &vol.name, req))
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
            t.run(t.driver.create_disk(&t.scope, &vol.name, req))
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
        SnapshotCommand::Create {
            source,
            consistent,
            timeout,
            lease,
        } => {
            let source = source
                .as_deref()
                .map(|s| Source::parse(s, SourceKind::Disk))
                .transpose()
                .map_err(|e| derr("snapshot create", e))?;
            let name = match args.name.as_deref() {
                Some(n) => n.to_string(),
                None => default_snapshot_name(&t, &vol.name, source.as_ref())?,
            };
            if *consistent {
                return consistent_snapshot(
                    &t,
                    &vol.name,
                    &name,
                    source,
                    Duration::from_secs(*timeout),
                    lease,
                );
            }
            if t.driver.snapshot_consistency() == SnapshotConsistency::FileLevel {
                eprintln!(
                    "warning: the `{}` driver copies files one by one: while the App writes, the snapshot is consistent per file only (a database may not start from it); pass --consistent to stop the App during the snapshot",
                    t.driver.id()
                );
            }
            let snap = t
                .run(t.driver.create_snapshot(&t.scope, &vol.name, &name, source))
                .map_err(|e| derr(&format!("snapshot create `{name}`"), e))?;
            eprintln!("created snapshot `{}` of volume `{}`", snap.name, vol.name);
            print_json(&snap)?;
        }
        SnapshotCommand::Copy {
            to_region,
            no_wait,
            timeout,
        } => {
            let name = need_name(args.name.as_deref(), "snapshot")?;
            let op =
                t.rt.block_on(t.driver.copy_snapshot(&t.scope, &vol.name, name, to_region))
                    .map_err(|e| derr(&format!("snapshot copy `{name}` to {to_region}"), e))?;
            let op = if *no_wait {
                op
            } else {
                eprintln!(
                    "copying snapshot `{name}` of volume `{}` to {to_region} (operation {})",
                    vol.name, op.id
                );
                t.run(kompox::provider::driver::wait_operation(
                    t.driver.as_ref(),
                    op,
                    std::time::Duration::from_secs(2),
                    std::time::Duration::from_secs(*timeout),
                ))
                .map_err(|e| derr(&format!("snapshot copy `{name}` to {to_region}"), e))?
            };
            if let kompox::provider::driver::OperationState::Failed(m) = &op.state {
                anyhow::bail!("snapshot copy `{name}` to {to_region} failed: {m}");
            }
            print_json(&op)?;
        }
        SnapshotCommand::Delete => {
            let name = need_name(args.name.as_deref(), "snapshot")?;
            // Only good snapshots are listed, but the driver also removes
            // an incomplete or corrupt one of this name: otherwise it would
            // hold its name forever.
            let listed = t.snapshots(&vol.name)?.iter().any(|s| s.name == name);
            t.rt.block_on(t.driver.delete_snapshot(&t.scope, &vol.name, name))
                .map_err(|e| derr(&format!("snapshot delete `{name}`"), e))?;
            if listed {
                eprintln!("deleted snapshot `{name}` of volume `{}`", vol.name);
            } else {
                eprintln!(
                    "snapshot `{name}` of volume `{}` is not listed (it does not exist, or it is incomplete or corrupt); removed whatever was left of it",
                    vol.name
                );
            }
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

/// `snapshot create --consistent`: the App's Deployment is scaled to zero
/// and its pods are gone before the copy starts, and its replica count is
/// put back afterwards, also when the snapshot fails.
fn consistent_snapshot(
    t: &Target,
    volume: &str,
    name: &str,
    source: Option<Source>,
    timeout: Duration,
    lease: &super::apply::LeaseArgs,
) -> anyhow::Result<i32> {
    let mut conn = t.connect()?;
    // Stopping and starting the App are writes: the same Lease as `apply`,
    // so a running controller does not start the App mid-copy.
    let held = super::apply::take_lease(&t.rt, &mut conn, lease)?;
    let (ns, deployment) = (&t.names.namespace, &t.names.workload);
    let tty = std::io::stderr().is_terminal();
    let mut last_line = Duration::ZERO;
    let mut on_event = |e: StopEvent| match e {
        StopEvent::Scaled { what, from, to: 0 } => {
            eprintln!("stopping {what} for a consistent snapshot (replicas {from} -> 0)")
        }
        StopEvent::Scaled { what, to, .. } => {
            eprintln!("started {what} again (replicas 0 -> {to})")
        }
        StopEvent::Waiting {
            what,
            elapsed,
            pods,
        } => {
            if !tty && elapsed >= last_line + Duration::from_secs(5) {
                last_line = elapsed;
                eprintln!(
                    "  waiting for {pods} pod(s) of {what} to stop ({}s)",
                    elapsed.as_secs()
                );
            }
        }
        StopEvent::Stopped { what, elapsed } => eprintln!(
            "all pods of {what} are gone ({:.1}s); taking the snapshot",
            elapsed.as_secs_f64()
        ),
        StopEvent::Absent { what } => {
            eprintln!("{what} does not exist: nothing runs, nothing to stop")
        }
    };
    let run =
        t.rt.block_on(kompox::apply::with_deployment_stopped(
            &conn,
            ns,
            deployment,
            timeout,
            &mut on_event,
            || async {
                let r = t
                    .driver
                    .create_snapshot(&t.scope, volume, name, source)
                    .await;
                if let Some(b) = &t.bars {
                    b.finish();
                }
                r
            },
        ))
        .map_err(|e| anyhow!("snapshot create `{name}` --consistent: {e}; no snapshot was taken"));
    super::apply::release(&t.rt, held.into_iter().collect());
    let run = run?;
    match (run.result, run.restored) {
        (Ok(snap), Ok(())) => {
            eprintln!("created snapshot `{}` of volume `{volume}`", snap.name);
            print_json(&snap)?;
            Ok(0)
        }
        (Ok(snap), Err(e)) => {
            eprintln!("created snapshot `{}` of volume `{volume}`", snap.name);
            print_json(&snap)?;
            bail!(
                "the App is still stopped: putting the replica count of Deployment {ns}/{deployment} back failed: {e}; run `kompoxops apply` to start it"
            )
        }
        (Err(e), Ok(())) => bail!(
            "{}; no snapshot was taken, the App was started again",
            derr(&format!("snapshot create `{name}`"), e)
        ),
        (Err(e), Err(r)) => bail!(
            "{}; no snapshot was taken, and the App is still stopped: {r}; run `kompoxops apply` to start it",
            derr(&format!("snapshot create `{name}`"), e)
        ),
    }
}
