//! The `kompoxops` command tree (CLI edge: the only place that reads flags,
//! the environment and the working directory, and writes to stdout).
//!
//! Each noun has its own file; a command resolves its settings once, calls
//! the library and hands the result to a printer.

mod app;
mod apply;
mod clusters;
mod destroy;
mod init;
mod output;
mod plan;
mod plan_pr;
mod project;
mod reconcile;
mod render;
mod volumes;

use clap::{Args, Parser, Subcommand};

/// Exit code for any error, usage errors included (DECISIONS 10).
pub const EXIT_ERROR: i32 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "kompoxops",
    version,
    about = "Run Docker Compose apps with persistent disks on managed Kubernetes",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Run as if started in DIR (like `git -C`).
    #[arg(short = 'C', long = "chdir", global = true, value_name = "DIR")]
    pub chdir: Option<String>,
    /// Project root (default: walk up to the first directory with `.kompox/`).
    #[arg(long, global = true, env = "KOMPOX_ROOT", value_name = "DIR")]
    pub kompox_root: Option<String>,
    /// Kompox directory (default: `$KOMPOX_ROOT/.kompox`).
    #[arg(long, global = true, env = "KOMPOX_DIR", value_name = "DIR")]
    pub kompox_dir: Option<String>,
    /// KOM file or directory (repeatable); replaces every other KOM source.
    #[arg(long = "kom-path", global = true, value_name = "PATH")]
    pub kom_path: Vec<String>,
    /// The Kompox app file (default `./kompoxapp.yml`).
    #[arg(long, global = true, env = "KOMPOX_KOM_APP", value_name = "FILE")]
    pub kom_app: Option<String>,
    /// Select the App by Resource ID.
    #[arg(short = 'A', long = "app-id", global = true, value_name = "ID")]
    pub app_id: Option<String>,
    /// Select the App by name (must match exactly one App).
    #[arg(long = "app-name", global = true, value_name = "NAME")]
    pub app_name: Option<String>,
    /// Log format.
    #[arg(long, global = true, env = "KOMPOX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log level.
    #[arg(long, global = true, env = "KOMPOX_LOG_LEVEL", value_enum, default_value_t = LogLevel::Warn)]
    pub log_level: LogLevel,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    #[default]
    Warn,
    Error,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with one App: validate its conversion, deploy it, destroy it.
    App(app::AppArgs),
    /// Create `.kompox/` with a config file and a KOM directory.
    Init(init::InitArgs),
    /// Show what would change in the cluster and the disks.
    Plan(plan::PlanArgs),
    /// Apply the plan: server-side apply, inventory, prune, wait.
    Apply(apply::ApplyArgs),
    /// The disks of an App volume: list, create, assign, delete.
    Disk(volumes::DiskArgs),
    /// The snapshots of an App volume: list, create, delete.
    Snapshot(volumes::SnapshotArgs),
    /// The GitOps controller: follow a branch and keep the cluster and the
    /// disks in line with it (`--once` for one pass); `reconcile status`.
    Reconcile(Box<reconcile::ReconcileArgs>),
    /// Print the version.
    Version,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    // One rustls crypto provider for the whole process (CONVENTIONS).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let mut global = cli.global.clone();
    if matches!(cli.command, Command::Reconcile(_))
        && std::env::var_os("KOMPOX_LOG_LEVEL").is_none()
        && global.log_level == LogLevel::Warn
    {
        // A controller's log is its record of what it did.
        global.log_level = LogLevel::Info;
    }
    init_logging(&global);
    let result = match &cli.command {
        Command::App(a) => app::run(&cli.global, a),
        Command::Init(i) => init::run(&cli.global, i),
        Command::Plan(p) => plan::run(&cli.global, p),
        Command::Apply(a) => apply::run(&cli.global, a),
        Command::Disk(d) => volumes::run_disk(&cli.global, d),
        Command::Snapshot(s) => volumes::run_snapshot(&cli.global, s),
        Command::Reconcile(r) => reconcile::run(&cli.global, r),
        Command::Version => {
            output::stdout(&format!("kompoxops {}\n", env!("CARGO_PKG_VERSION")));
            Ok(0)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            render::error(&e);
            EXIT_ERROR
        }
    }
}

fn init_logging(g: &GlobalArgs) {
    let level = match g.log_level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("kompox={level}"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match g.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.without_time().try_init(),
    };
}

/// The async runtime for commands that talk to a cluster.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}
