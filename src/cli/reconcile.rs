//! `kompoxops reconcile`: the GitOps controller (continuous, or `--once`)
//! and `kompoxops reconcile status`.
//!
//! This file wires the pieces: the revision source (Git or a directory),
//! the HTTP server (webhooks, /metrics, /healthz, /readyz), the writer
//! Lease and the loop's timers. The decisions live in the library
//! (`kompox::reconcile`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{EXIT_ERROR, GlobalArgs, output, project};
use kompox::lease::{Elector, LeaseConfig, LeaseError};
use kompox::metrics::{Metrics, ReconcileResult};
use kompox::model::ResourceId;
use kompox::reconcile::step::{Outcome, Policy};
use kompox::reconcile::{Controller, DirSource, Iteration, RevisionSource, Settings, status};
use kompox::server::{self, ServerState, Trigger};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReconcileArgs {
    #[command(subcommand)]
    pub command: Option<ReconcileCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReconcileCommand {
    /// Show each App's last reconcile: revision, result, plan summary, error.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Namespace of the controller (its status ConfigMap).
    #[arg(long, env = "KOMPOX_LEASE_NAMESPACE", default_value = "kompox-system")]
    pub lease_namespace: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run one iteration over every App, then exit (non-zero if any App failed).
    #[arg(long)]
    pub once: bool,
    /// Git repository URL (https:// or ssh://); default: the local project directory.
    #[arg(long, env = "KOMPOX_REPO", value_name = "URL", conflicts_with = "dir")]
    pub repo: Option<String>,
    /// A local directory to reconcile from (development).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<String>,
    /// Branch to follow.
    #[arg(long, env = "KOMPOX_BRANCH", default_value = "main")]
    pub branch: String,
    /// The project directory inside the repository.
    #[arg(long, env = "KOMPOX_PATH", value_name = "SUBDIR")]
    pub path: Option<String>,
    /// Poll interval (jittered by ±5 %).
    #[arg(long, env = "KOMPOX_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,
    /// How often Apps are compared with the cluster without Git changes.
    #[arg(long, env = "KOMPOX_DRIFT_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub drift_interval: Duration,
    /// The Cluster this controller reconciles (default: the project's only Cluster).
    #[arg(long, env = "KOMPOX_CLUSTER_ID", value_name = "ID")]
    pub cluster_id: Option<String>,
    /// Address of the webhook, metrics and health server.
    #[arg(long, env = "KOMPOX_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Require the writer Lease (several replicas); without it a missing
    /// Lease namespace means writing without a Lease.
    #[arg(long, env = "KOMPOX_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the writer Lease, the status ConfigMap and Events.
    #[arg(long, env = "KOMPOX_LEASE_NAMESPACE", default_value = "kompox-system")]
    pub lease_namespace: String,
    #[arg(long, env = "KOMPOX_LEASE_NAME", default_value = "kompox")]
    pub lease_name: String,
    /// How long a Lease holder keeps it without renewing.
    #[arg(long, env = "KOMPOX_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// Take the Lease even when another writer holds it (`--once` only).
    #[arg(long)]
    pub force: bool,
    /// File holding the webhook secret (HMAC key / GitLab token).
    #[arg(long, env = "KOMPOX_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// File holding an HTTPS token for the repository.
    #[arg(long, env = "KOMPOX_GIT_TOKEN_FILE", value_name = "FILE")]
    pub git_token_file: Option<PathBuf>,
    /// User name sent with the token.
    #[arg(long, env = "KOMPOX_GIT_USERNAME", default_value = "git")]
    pub git_username: String,
    /// SSH private key for ssh:// repositories.
    #[arg(long, env = "KOMPOX_GIT_SSH_KEY_FILE", value_name = "FILE")]
    pub git_ssh_key_file: Option<PathBuf>,
    /// known_hosts file the SSH host key is checked against.
    #[arg(long, env = "KOMPOX_GIT_KNOWN_HOSTS_FILE", value_name = "FILE")]
    pub git_known_hosts_file: Option<PathBuf>,
    /// Where the Git checkout is kept.
    #[arg(long, env = "KOMPOX_CACHE_DIR", default_value = "/var/cache/kompox")]
    pub cache_dir: PathBuf,
    /// Seconds to wait for each Deployment to become Available.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
    /// Apps applied at the same time (bounded work, DECISIONS 19).
    #[arg(long, env = "KOMPOX_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Write requests per second toward the API server (0: unbounded).
    #[arg(long, env = "KOMPOX_MAX_WRITE_RATE", default_value_t = 200.0)]
    pub max_write_rate: f64,
    /// Use this kubeconfig instead of the Cluster's access settings.
    #[arg(long, env = "KOMPOX_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// File holding a forge token: turns on pull-request plan comments
    /// (pull-request webhooks are then planned and commented on).
    #[arg(long, env = "KOMPOX_FORGE_TOKEN_FILE", value_name = "FILE")]
    pub forge_token_file: Option<PathBuf>,
    /// The forge's base URL (GitHub: https://api.github.com by default;
    /// Gitea: required).
    #[arg(long, env = "KOMPOX_FORGE_URL", value_name = "URL")]
    pub forge_url: Option<String>,
}

/// `30s`, `1m`, `1h30m`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms"
        } else {
            match c {
                'h' => "h",
                'm' => "m",
                's' => "s",
                _ => return Err(format!("`{s}`: unknown unit `{c}` (use ms, s, m, h)")),
            }
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{s}`: expected a number before `{unit}`"))?;
        num.clear();
        let secs = match unit {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            _ => n * 3600.0,
        };
        total += Duration::from_secs_f64(secs);
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(format!("`{s}`: expected a duration like 30s, 1m, 1h30m"));
    }
    Ok(total)
}

pub fn run(g: &GlobalArgs, args: &ReconcileArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match &args.command {
        Some(ReconcileCommand::Status(s)) => rt.block_on(show_status(g, s)),
        None => rt.block_on(run_controller(g, &args.run)),
    }
}

fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    format!("{}:{}", hostname(), std::process::id())
}

/// This machine's name, for Lease identities.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn read_secret(path: &PathBuf, what: &str) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file `{}`", path.display()))?;
    let s = s.trim().to_string();
    if s.is_empty() {
        bail!("the {what} file `{}` is empty", path.display());
    }
    Ok(s)
}

/// The revision source, and the directory to watch for a local source.
fn source_of(
    g: &GlobalArgs,
    a: &RunArgs,
) -> anyhow::Result<(Box<dyn RevisionSource>, Option<PathBuf>)> {
    if let Some(url) = &a.repo {
        use kompox::source::git::{GitAuth, GitSource, GitSpec};
        let auth = match (&a.git_token_file, &a.git_ssh_key_file) {
            (Some(t), _) => GitAuth::Token {
                username: a.git_username.clone(),
                token: read_secret(t, "Git token")?,
            },
            (None, Some(key)) => GitAuth::SshKey {
                private_key: key.clone(),
                known_hosts: a.git_known_hosts_file.clone().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--git-ssh-key-file needs --git-known-hosts-file: the server's host key is always checked"
                    )
                })?,
            },
            (None, None) => GitAuth::None,
        };
        let spec = GitSpec {
            url: url.clone(),
            branch: a.branch.clone(),
            auth,
        };
        std::fs::create_dir_all(&a.cache_dir)
            .with_context(|| format!("cannot create --cache-dir `{}`", a.cache_dir.display()))?;
        return Ok((Box::new(GitSource::new(spec, a.cache_dir.clone())), None));
    }
    let dir = match &a.dir {
        Some(d) => project::working_dir(g)?.join(d),
        None => project::working_dir(g)?,
    };
    let dir = std::fs::canonicalize(&dir)
        .with_context(|| format!("no such directory `{}`", dir.display()))?;
    Ok((Box::new(DirSource { dir: dir.clone() }), Some(dir)))
}

fn result_of(o: &Outcome) -> ReconcileResult {
    match o {
        Outcome::Applied { .. } => ReconcileResult::Applied,
        Outcome::UpToDate => ReconcileResult::UpToDate,
        Outcome::Suspended => ReconcileResult::Suspended,
        Outcome::Blocked { .. } => ReconcileResult::Blocked,
        Outcome::LoadFailed { .. } => ReconcileResult::LoadFailed,
        Outcome::Failed { .. } => ReconcileResult::Failed,
        Outcome::NotLeader => ReconcileResult::NotLeader,
    }
}

/// Plans a pull request and comments on it; failures are logged (the
/// next push to the pull request tries again).
async fn review_pull(
    controller: &mut Controller,
    ev: &kompox::webhook::PullRequestEvent,
    a: &RunArgs,
    token: &str,
) {
    use kompox::forge::{ForgeAuth, ForgeClient};
    let client = match ForgeClient::new(
        ev.forge,
        a.forge_url.as_deref(),
        ForgeAuth::Token(token.to_string()),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "pull-request plan: no forge client");
            return;
        }
    };
    match controller.review_pull_request(ev, &client).await {
        Ok(r) => tracing::info!(
            pr = %r.pr,
            revision = %r.revision,
            planned = r.planned,
            status = %r.status,
            created = r.comments.created.len(),
            updated = r.comments.updated.len(),
            "pull-request plan posted"
        ),
        Err(e) => tracing::error!(number = ev.number, error = %e, "pull-request plan failed"),
    }
}

/// A number in `[0, 1)` for the poll jitter (not security relevant).
fn jitter_source() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

async fn run_controller(g: &GlobalArgs, a: &RunArgs) -> anyhow::Result<i32> {
    let (source, watch_dir) = source_of(g, a)?;
    let cluster_id = a
        .cluster_id
        .as_deref()
        .map(|s| {
            s.parse::<ResourceId>()
                .map_err(|e| anyhow::anyhow!("--cluster-id `{s}`: {e}"))
        })
        .transpose()?;
    let identity = identity();
    let settings = Settings {
        cluster_id,
        path: a.path.clone(),
        policy: Policy {
            interval: a.interval,
            drift_interval: a.drift_interval,
            ..Policy::default()
        },
        apply: kompox::apply::ApplyOptions {
            wait: true,
            timeout: Duration::from_secs(a.timeout),
            ..Default::default()
        },
        status_namespace: Some(a.lease_namespace.clone()),
        identity: identity.clone(),
        kubeconfig: a.kubeconfig.clone(),
        concurrency: a.concurrency.max(1),
        write_rate: a.max_write_rate,
    };
    let mut controller = Controller::new(source, settings);
    let forge_token = a
        .forge_token_file
        .as_ref()
        .map(|f| read_secret(f, "forge token"))
        .transpose()?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Trigger>(16);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let server = if a.once {
        None
    } else {
        let secret = match &a.webhook_secret_file {
            Some(f) => {
                kompox::webhook::WebhookSecret::new(read_secret(f, "webhook secret")?.into_bytes())
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        tracing::info!(listen = %a.listen, "serving /webhook, /metrics, /healthz, /readyz");
        let state = ServerState::new(secret, tx.clone(), metrics.clone(), ready.clone());
        let mut stop = stop_rx.clone();
        Some(tokio::spawn(server::serve(listener, state, async move {
            let _ = stop.changed().await;
        })))
    };

    // A local directory is reloaded as soon as a file changes.
    let _watcher = match (&watch_dir, a.once) {
        (Some(dir), false) => {
            let wake = tx.clone();
            Some(
                kompox::source::watch::DirWatcher::with_handler(
                    dir,
                    kompox::source::watch::DirWatcher::DEFAULT_DEBOUNCE,
                    move |_| {
                        let _ = wake.try_send(Trigger::Manual);
                    },
                )
                .with_context(|| format!("cannot watch `{}`", dir.display()))?,
            )
        }
        _ => None,
    };

    // The first fetch and connection: fail fast on bad settings.
    let mut first = controller.prepare().await;
    let mut attempts = 0;
    while let Err(e) = &first {
        attempts += 1;
        if a.once || attempts >= 3 {
            bail!("{e}");
        }
        tracing::warn!(error = %e, "cannot start; retrying");
        tokio::time::sleep(controller.retry_after_failure()).await;
        first = controller.prepare().await;
    }
    let conn = controller
        .connection()
        .cloned()
        .context("internal: no connection after prepare")?;

    // The writer Lease (DECISIONS 16).
    let mut elector = Elector::new(
        conn.client.clone(),
        LeaseConfig {
            duration: a.lease_duration,
            retry: (a.lease_duration / 7).max(Duration::from_millis(500)),
            ..LeaseConfig::new(&a.lease_namespace, &a.lease_name, &identity)
        },
    );
    let mut elector_task = None;
    let lease_ns_exists = namespace_exists(&conn.client, &a.lease_namespace).await;
    if !lease_ns_exists && !a.leader_elect {
        tracing::warn!(
            namespace = %a.lease_namespace,
            "the Lease namespace does not exist: writing without a Lease (create it, or pass --lease-namespace)"
        );
    } else if a.once {
        match elector.acquire_once(a.force).await {
            Ok(()) => controller.set_writer(elector.guard()),
            Err(e @ LeaseError::HeldBy { .. }) => bail!("{e}"),
            Err(e) => bail!("{e}"),
        }
        let stop = stop_rx.clone();
        elector_task = Some(tokio::spawn(elector.run(stop, |_| {})));
    } else {
        controller.set_writer(elector.guard());
        let m = metrics.clone();
        let wake = tx.clone();
        elector_task = Some(tokio::spawn(elector.run(stop_rx.clone(), move |leading| {
            m.set_leader(leading);
            if leading {
                let _ = wake.try_send(Trigger::Manual);
            }
        })));
    }

    let start = Instant::now();
    let mut code = 0;
    let mut deadline = tokio::time::Instant::now();
    let branch_ref = format!("refs/heads/{}", a.branch);
    loop {
        let force = if a.once {
            true
        } else {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => false,
                t = rx.recv() => {
                    match &t {
                        Some(Trigger::Push(p)) if p.git_ref != branch_ref => {
                            tracing::info!(git_ref = %p.git_ref, "push webhook for another branch: ignored");
                            continue;
                        }
                        Some(Trigger::Push(p)) => {
                            tracing::info!(commit = %p.after_commit, "push webhook: reconciling now");
                        }
                        Some(Trigger::PullRequest(p)) => {
                            // Read-only, so any replica may answer it: a
                            // webhook reaches only one of them.
                            match &forge_token {
                                Some(token) => review_pull(&mut controller, p, a, token).await,
                                None => tracing::info!(number = p.number, "pull-request webhook: plan comments are off (pass --forge-token-file)"),
                            }
                            continue;
                        }
                        _ => {}
                    }
                    false
                }
                _ = shutdown_signal() => break,
            }
        };
        if !a.once && !controller_may_write(&controller) {
            // A follower: serve webhooks and metrics, wait for the Lease.
            deadline = tokio::time::Instant::now() + a.lease_duration / 3;
            continue;
        }
        metrics.set_queue_depth(rx.len());
        let log = |e: kompox::apply::Event| log_event(&e);
        match controller
            .iterate(start.elapsed(), force, jitter_source(), &log)
            .await
        {
            Ok(it) => {
                ready.store(true, Ordering::Relaxed);
                record_metrics(&metrics, &it);
                report(&it, a.once);
                if it
                    .report
                    .apps
                    .iter()
                    .any(|r| r.outcome.is_failure() || r.outcome == Outcome::NotLeader)
                    || !it.report.failed_files.is_empty()
                {
                    code = EXIT_ERROR;
                }
                deadline = tokio::time::Instant::now() + it.next;
            }
            Err(e) => {
                tracing::error!(error = %e, "reconcile failed");
                metrics.observe_reconcile("*", ReconcileResult::Failed, Duration::ZERO);
                if a.once {
                    eprintln!("error: {e}");
                    code = EXIT_ERROR;
                }
                deadline = tokio::time::Instant::now() + controller.retry_after_failure();
            }
        }
        if a.once {
            break;
        }
    }
    let _ = stop_tx.send(true);
    if let Some(t) = elector_task {
        let _ = t.await;
    }
    if let Some(s) = server {
        let _ = s.await;
    }
    Ok(code)
}

fn controller_may_write(c: &Controller) -> bool {
    c.connection().is_none_or(|conn| conn.writer.may_write())
}

async fn namespace_exists(client: &kube::Client, ns: &str) -> bool {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    matches!(api.get_opt(ns).await, Ok(Some(_)))
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn log_event(e: &kompox::apply::Event) {
    use kompox::apply::Event;
    match e {
        Event::Applied { what, action } => {
            tracing::info!(action = action.as_str(), object = %what, "applied")
        }
        Event::Pruned { what } => tracing::info!(object = %what, "pruned"),
        Event::Ready { what, elapsed } => {
            tracing::info!(object = %what, secs = elapsed.as_secs_f64(), "available")
        }
        Event::Waiting { .. } => {}
    }
}

fn record_metrics(m: &Metrics, it: &Iteration) {
    for r in &it.report.apps {
        let app = r.app_id.to_string();
        m.observe_reconcile(&app, result_of(&r.outcome), r.duration);
        if matches!(r.outcome, Outcome::Applied { .. } | Outcome::UpToDate) {
            m.set_applied_revision(&app, &it.revision);
        }
    }
    for app in &it.report.removed {
        m.remove_app(&app.to_string());
    }
    use kompox::metrics::ApiVerb;
    for (verb, n) in [
        (ApiVerb::List, it.report.reads),
        (ApiVerb::Apply, it.report.applied),
        (ApiVerb::Delete, it.report.pruned),
    ] {
        for _ in 0..n {
            m.observe_api_request(verb, None, Some(200));
        }
    }
}

fn report(it: &Iteration, once: bool) {
    for (path, err) in &it.report.failed_files {
        tracing::error!(file = %path, error = %err, "app file failed to load");
        if once {
            eprintln!("error: {path}: {err}");
        }
    }
    for r in &it.report.apps {
        match r.outcome.error() {
            Some(err) => {
                tracing::warn!(app = %r.app_id, result = r.outcome.label(), error = %err, "reconciled")
            }
            None => {
                tracing::info!(app = %r.app_id, result = r.outcome.label(), summary = %r.summary, "reconciled")
            }
        }
        if once {
            let line = match r.outcome.error() {
                Some(err) => format!("{}: {} — {err}\n", r.app_id, r.outcome.label()),
                None => format!("{}: {} ({})\n", r.app_id, r.outcome.label(), r.summary),
            };
            output::stdout(&line);
        }
    }
    for id in &it.report.removed {
        tracing::info!(app = %id, "removed from Git: pruned");
        if once {
            output::stdout(&format!("{id}: removed from Git, pruned\n"));
        }
    }
    for id in &it.report.removed_skipped {
        tracing::warn!(app = %id, "removed from Git: kept (something failed to load, or the workspace does not allow app removal)");
    }
    if once {
        output::stdout(&format!(
            "revision {}: {} app(s), {} write request(s)\n",
            it.revision,
            it.report.apps.len(),
            it.report.writes
        ));
    }
}

async fn show_status(g: &GlobalArgs, s: &StatusArgs) -> anyhow::Result<i32> {
    let loaded = project::load(g)?;
    let project = loaded
        .project
        .map_err(|_| anyhow::anyhow!("the KOM files have errors"))?;
    let cluster = project
        .kom
        .clusters
        .first()
        .map(|c| c.meta.id.clone())
        .context("the project has no Cluster")?;
    let conn = kompox::reconcile::connect_cluster(&project, &loaded.root, &cluster).await?;
    let records = status::read(conn.client.clone(), &s.lease_namespace).await?;
    if s.json {
        output::stdout(&format!("{}\n", serde_json::to_string_pretty(&records)?));
        return Ok(0);
    }
    if records.is_empty() {
        output::stdout("no status yet: is the controller running in this namespace?\n");
        return Ok(0);
    }
    let mut out = String::new();
    for r in &records {
        out.push_str(&format!(
            "{}\n  result: {}  revision: {}  applied: {}  at {}\n  plan: {}\n",
            r.app,
            r.result,
            r.revision,
            r.applied_revision.as_deref().unwrap_or("-"),
            r.time,
            r.summary
        ));
        if let Some(e) = &r.error {
            out.push_str(&format!("  error: {e}\n"));
        }
    }
    output::stdout(&out);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }
}
