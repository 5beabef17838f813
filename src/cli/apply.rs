//! `kompoxops apply`: plan against the clusters, confirm, then apply.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

use super::clusters::{self, ClusterRun};
use super::plan::{Selected, header, plan_clusters, select};
use super::{EXIT_ERROR, GlobalArgs, output};
use kompox::apply::{self, ApplyOptions, ApplyReport, Event};
use kompox::desired;
use kompox::plan::{AppStatus, Plan};
use kompox::report::{self, LiveDescription};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A plan saved with `kompoxops plan --format json --out FILE`; refused
    /// when the repository or the cluster changed since.
    #[arg(value_name = "PLAN")]
    pub plan: Option<String>,
    /// Apply without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Seconds to wait for each Deployment to become Available.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
    /// Do not wait for Deployments to become Available.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub lease: LeaseArgs,
}

/// The writer Lease the CLI shares with the controller (DECISIONS 16).
#[derive(Debug, Clone, clap::Args)]
pub struct LeaseArgs {
    /// Namespace of the controller's writer Lease.
    #[arg(long, env = "KOMPOX_LEASE_NAMESPACE", default_value = "kompox-system")]
    pub lease_namespace: String,
    #[arg(long, env = "KOMPOX_LEASE_NAME", default_value = "kompox")]
    pub lease_name: String,
    /// Apply even while a controller holds the writer Lease.
    #[arg(long)]
    pub force: bool,
}

impl Default for LeaseArgs {
    fn default() -> Self {
        LeaseArgs {
            lease_namespace: std::env::var("KOMPOX_LEASE_NAMESPACE")
                .unwrap_or_else(|_| "kompox-system".into()),
            lease_name: "kompox".into(),
            force: false,
        }
    }
}

/// A Lease held for the duration of an apply; released on drop of the
/// runtime work (`release`).
pub struct HeldLease {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Takes the writer Lease of a cluster for this apply: refused while a
/// controller (or another apply) holds it, unless `--force`. No Lease
/// namespace means no controller runs there: nothing to take.
pub fn take_lease(
    rt: &tokio::runtime::Runtime,
    conn: &mut kompox::cluster::Connection,
    lease: &LeaseArgs,
) -> anyhow::Result<Option<HeldLease>> {
    use kompox::lease::{Elector, LeaseConfig};
    let client = conn.client.clone();
    let ns_api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    if !matches!(
        rt.block_on(ns_api.get_opt(&lease.lease_namespace)),
        Ok(Some(_))
    ) {
        return Ok(None);
    }
    let identity = format!(
        "kompoxops-cli@{}:{}",
        super::reconcile::hostname(),
        std::process::id()
    );
    let mut elector = Elector::new(
        client,
        LeaseConfig::new(&lease.lease_namespace, &lease.lease_name, &identity),
    );
    rt.block_on(elector.acquire_once(lease.force))
        .with_context(|| format!("cluster `{}`", conn.cluster))?;
    conn.writer = elector.guard();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = rt.spawn(elector.run(rx, |_| {}));
    Ok(Some(HeldLease { stop, task }))
}

pub fn release(rt: &tokio::runtime::Runtime, held: Vec<HeldLease>) {
    for h in held {
        let _ = h.stop.send(true);
        let _ = rt.block_on(h.task);
    }
}

pub fn run(g: &GlobalArgs, args: &ApplyArgs) -> anyhow::Result<i32> {
    let sel = match select(g)? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let opts = ApplyOptions {
        wait: !args.no_wait,
        timeout: std::time::Duration::from_secs(args.timeout),
        ..ApplyOptions::default()
    };
    execute(
        &sel,
        args.plan.as_deref(),
        args.auto_approve,
        &opts,
        &args.lease,
    )
}

/// Plans, checks, confirms and applies; shared with `app deploy`.
pub fn execute(
    sel: &Selected,
    saved: Option<&str>,
    auto_approve: bool,
    opts: &ApplyOptions,
    lease: &LeaseArgs,
) -> anyhow::Result<i32> {
    let rt = super::runtime()?;
    let mut runs = clusters::observe(&rt, &sel.project, &sel.loaded.root, &sel.ids)?;
    let (plan, failed) = plan_clusters(sel, &runs, Some(&rt));
    let names = runs
        .iter()
        .map(|r| r.conn.cluster.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let header = header(sel, LiveDescription::Cluster(names));
    if let Some(path) = saved {
        check_not_stale(path, &report::json(&plan, &header))?;
    }
    output::stdout(&report::text(
        &plan,
        &header,
        std::io::stdout().is_terminal(),
    ));
    if !plan.has_changes() {
        return Ok(if failed { EXIT_ERROR } else { 0 });
    }
    if plan.summary.counts.destructive > 0 {
        bail!("the plan has destructive changes; Kompox refuses to apply them in this version");
    }
    if !auto_approve && !confirm()? {
        eprintln!("Apply cancelled.");
        return Ok(EXIT_ERROR);
    }
    let mut held = Vec::new();
    for run in &mut runs {
        match take_lease(&rt, &mut run.conn, lease) {
            Ok(Some(h)) => held.push(h),
            Ok(None) => {}
            Err(e) => {
                release(&rt, held);
                return Err(e);
            }
        }
    }
    let mut total = ApplyReport::default();
    let mut errors = 0;
    for run in &runs {
        apply_cluster(sel, run, &plan, opts, &rt, &mut total, &mut errors);
    }
    release(&rt, held);
    eprintln!(
        "Apply complete: {} applied, {} pruned, {} write requests{}.",
        total.applied,
        total.pruned,
        total.writes,
        if errors > 0 {
            format!(", {errors} app(s) failed")
        } else {
            String::new()
        }
    );
    Ok(if failed || errors > 0 { EXIT_ERROR } else { 0 })
}

fn apply_cluster(
    sel: &Selected,
    run: &ClusterRun,
    plan: &Plan,
    opts: &ApplyOptions,
    rt: &tokio::runtime::Runtime,
    total: &mut ApplyReport,
    errors: &mut usize,
) {
    let disks = super::plan::assigned_disks(&sel.project, &run.observed.live);
    // A spinner while waiting on a terminal; plain lines (every 5 s)
    // elsewhere, so CI logs stay readable.
    let tty = std::io::stderr().is_terminal();
    let mut spinner: Option<indicatif::ProgressBar> = None;
    let mut last_line = std::time::Duration::ZERO;
    let mut on_event = |e: Event| match e {
        Event::Applied { what, action } => eprintln!("  {} {what}", action.as_str()),
        Event::Pruned { what } => eprintln!("  prune {what}"),
        Event::Waiting {
            what,
            elapsed,
            message,
        } => {
            if tty {
                let bar = spinner.get_or_insert_with(|| {
                    let b = indicatif::ProgressBar::new_spinner();
                    b.enable_steady_tick(std::time::Duration::from_millis(120));
                    b
                });
                bar.set_message(format!(
                    "waiting for {what} ({}s): {message}",
                    elapsed.as_secs()
                ));
            } else if elapsed >= last_line + std::time::Duration::from_secs(5) {
                last_line = elapsed;
                eprintln!(
                    "  waiting for {what} to be available ({}s): {message}",
                    elapsed.as_secs()
                );
            }
        }
        Event::Ready { what, elapsed } => {
            if let Some(bar) = spinner.take() {
                bar.finish_and_clear();
            }
            last_line = std::time::Duration::ZERO;
            eprintln!("  {what} is available ({:.1}s)", elapsed.as_secs_f64())
        }
    };
    let mut fail = |r: Result<(), apply::ApplyError>, app: &str| {
        if let Err(e) = r {
            eprintln!("error: app {app}: {e}");
            *errors += 1;
        }
    };
    desired::for_each_app(
        &sel.project,
        &sel.loaded.tree,
        &run.apps,
        &disks,
        |outcome| {
            let (Ok(d), Some(p)) = (
                &outcome.result,
                plan.apps.iter().find(|p| p.app_id == outcome.app_id),
            ) else {
                return;
            };
            eprintln!("app {}:", outcome.app_id);
            // Disks first (DECISIONS 11): create and assign what the plan
            // showed as known after apply, then convert the App again so
            // its PV/PVC names are real, and plan it once more.
            let replanned;
            let (d, p) = if d.objects.iter().any(|o| o.pending) {
                let phase = rt.block_on(kompox::pipeline::disk_phase(
                    &sel.project,
                    &sel.loaded.tree,
                    &run.observed,
                    d,
                    &mut on_event,
                ));
                match phase {
                    Ok(Some((again, ap))) => {
                        replanned = again;
                        (
                            &replanned,
                            std::borrow::Cow::Owned(kompox::pipeline::with_prunes(&ap, p)),
                        )
                    }
                    Ok(None) => (d, std::borrow::Cow::Borrowed(p)),
                    Err(e) => {
                        fail(Err(e), &outcome.app_id.to_string());
                        return;
                    }
                }
            } else {
                (d, std::borrow::Cow::Borrowed(p))
            };
            let p = p.as_ref();
            let r = rt.block_on(apply::apply_app(
                &run.conn,
                d,
                p,
                &run.observed.live,
                opts,
                &mut *total,
                &mut on_event,
            ));
            fail(r, &outcome.app_id.to_string());
        },
    );
    for p in plan
        .apps
        .iter()
        .filter(|p| p.status == AppStatus::Removed && p.cluster_id == run.cluster_id)
    {
        eprintln!("app {} (removed from Git):", p.app_id);
        let r = rt.block_on(apply::apply_removed(
            &run.conn,
            p,
            opts,
            total,
            &mut on_event,
        ));
        fail(r, &p.app_id.to_string());
    }
}

/// A saved plan is applied only if planning now gives the same changes.
fn check_not_stale(path: &str, fresh: &str) -> anyhow::Result<()> {
    let saved = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the saved plan `{path}`"))?;
    let saved: serde_json::Value = serde_json::from_str(&saved)
        .with_context(|| format!("`{path}` is not a plan saved with `--format json`"))?;
    let fresh: serde_json::Value =
        serde_json::from_str(fresh).context("internal: fresh plan is not JSON")?;
    let strip = |mut v: serde_json::Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("header");
        }
        v
    };
    if saved.get("format_version") != fresh.get("format_version") {
        bail!("the saved plan `{path}` has another format version; plan again");
    }
    if strip(saved) != strip(fresh) {
        bail!(
            "the saved plan `{path}` is stale: the repository or the cluster changed since it was made; run `kompoxops plan` again"
        );
    }
    Ok(())
}

fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to apply without confirmation: stdin is not a terminal (pass --auto-approve)"
        );
    }
    eprint!("Apply these changes? Only 'yes' is accepted: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}
