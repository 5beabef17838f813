//! `kompoxops app …`: commands on one App (or every App in repository mode).

use std::collections::BTreeMap;

use anyhow::bail;

use super::{GlobalArgs, output, project, render};
use kompox::desired::{self, AppOutcome};
use kompox::diag::Diagnostic;
use kompox::kom::{self, Mode, Project};
use kompox::model::ResourceId;
use kompox::model::compose::KeyStatus;

#[derive(Debug, clap::Args)]
pub struct AppArgs {
    #[command(subcommand)]
    pub command: AppCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// Load and convert the App; print the conversion report, and optionally
    /// the normalised compose file and the Kubernetes manifest.
    Validate {
        /// Write the normalised compose YAML to FILE (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        out_compose: Option<String>,
        /// Write the Kubernetes manifest to FILE (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        out_manifest: Option<String>,
    },
    /// Apply the App to its cluster without asking (server-side apply,
    /// inventory, prune, wait for the Deployment).
    Deploy {
        /// Seconds to wait for the Deployment to become Available.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        timeout: u64,
        /// Do not wait for the Deployment.
        #[arg(long)]
        no_wait: bool,
    },
    /// Remove the App's stateless objects from its cluster. Disks, PVs and
    /// PVCs are never touched.
    Destroy {
        /// Also delete the App's namespace (refused when it holds a
        /// PersistentVolumeClaim, unless --allow-destroy).
        #[arg(long)]
        delete_namespace: bool,
        /// Allow deleting a namespace that holds a PersistentVolumeClaim.
        #[arg(long)]
        allow_destroy: bool,
    },
}

pub fn run(g: &GlobalArgs, args: &AppArgs) -> anyhow::Result<i32> {
    match &args.command {
        AppCommand::Validate {
            out_compose,
            out_manifest,
        } => validate(g, out_compose.as_deref(), out_manifest.as_deref()),
        AppCommand::Deploy { timeout, no_wait } => {
            let sel = match super::plan::select(g)? {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let opts = kompox::apply::ApplyOptions {
                wait: !no_wait,
                timeout: std::time::Duration::from_secs(*timeout),
                ..Default::default()
            };
            super::apply::execute(&sel, None, true, &opts, &Default::default())
        }
        AppCommand::Destroy {
            delete_namespace,
            allow_destroy,
        } => super::destroy::run(g, *delete_namespace, *allow_destroy),
    }
}

/// The Apps a command works on: the selected one, or in repository mode
/// with nothing selected, all of them.
pub fn selected_apps(g: &GlobalArgs, project: &Project) -> Result<Vec<ResourceId>, Diagnostic> {
    let explicit = g.app_id.is_some() || g.app_name.is_some();
    if matches!(project.mode, Mode::Repository) && !explicit {
        return Ok(Vec::new());
    }
    kom::select_app(project, g.app_id.as_deref(), g.app_name.as_deref()).map(|id| vec![id])
}

fn validate(
    g: &GlobalArgs,
    out_compose: Option<&str>,
    out_manifest: Option<&str>,
) -> anyhow::Result<i32> {
    let loaded = project::load(g)?;
    let project = match loaded.project {
        Ok(p) => p,
        Err(diags) => {
            render::diagnostics(&diags, &loaded.tree);
            bail!(
                "the KOM files have {} error(s); nothing was converted",
                count_errors(&diags)
            );
        }
    };
    render::diagnostics(&project.warnings, &loaded.tree);
    let ids = match selected_apps(g, &project) {
        Ok(ids) => ids,
        Err(d) => {
            render::diagnostics(&[d], &loaded.tree);
            return Ok(super::EXIT_ERROR);
        }
    };
    let desired = desired::build(&project, &loaded.tree, &ids, &BTreeMap::new());
    let mut failed = false;
    for (file, errs) in &desired.failed_files {
        render::diagnostics(errs, &loaded.tree);
        eprintln!("error: app file `{file}` failed to load");
        failed = true;
    }
    let stdout_busy = out_compose == Some("-") || out_manifest == Some("-");
    let mut compose_out = String::new();
    let mut manifest_out = String::new();
    let mut manifest_complete = true;
    for outcome in &desired.apps {
        match &outcome.result {
            Err(errs) => {
                render::diagnostics(errs, &loaded.tree);
                failed = true;
            }
            Ok(d) => {
                render::diagnostics(&d.warnings, &loaded.tree);
                let report = conversion_report(outcome);
                if stdout_busy {
                    eprint!("{report}");
                } else {
                    output::stdout(&report);
                }
                if d.is_complete() {
                    manifest_out.push_str(&d.manifest_yaml());
                } else {
                    manifest_complete = false;
                }
            }
        }
        if let Some(c) = &outcome.compose {
            compose_out.push_str("---\n");
            compose_out.push_str(&kompox::yaml::to_yaml_string(&c.normalized));
        }
    }
    if failed {
        eprintln!("error: validation failed; nothing was written");
        return Ok(super::EXIT_ERROR);
    }
    if let Some(target) = out_compose {
        output::write_target(target, &compose_out)?;
    }
    if let Some(target) = out_manifest {
        if manifest_complete {
            output::write_target(target, &manifest_out)?;
        } else {
            eprintln!(
                "warning: the manifest is not written: a volume has no assigned disk (run `kompoxops plan` to see the disk to create)"
            );
        }
    }
    Ok(0)
}

fn count_errors(diags: &[Diagnostic]) -> usize {
    diags.iter().filter(|d| d.is_error()).count()
}

/// The per-key conversion report (DECISIONS 6).
fn conversion_report(outcome: &AppOutcome) -> String {
    let Some(compose) = &outcome.compose else {
        return String::new();
    };
    let mut s = format!("conversion report for {}\n", outcome.app_id);
    let width = compose
        .report
        .iter()
        .map(|r| r.key.len())
        .max()
        .unwrap_or(0);
    for r in &compose.report {
        let status = match r.status {
            KeyStatus::Mapped => "mapped",
            KeyStatus::Ignored => "ignored",
            KeyStatus::Rejected => "rejected",
        };
        s.push_str(&format!("  {status:<8} {:<width$}  {}\n", r.key, r.note));
    }
    s
}
