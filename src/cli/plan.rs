//! `kompoxops plan`: what would change in the cluster and the disks.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{Context, bail};

use super::{EXIT_ERROR, GlobalArgs, output, project, render};
use kompox::convert::BoundDisk;
use kompox::desired::{self, AssignedDisks};
use kompox::hash::AppHashes;
use kompox::kom::Project;
use kompox::live::Live;
use kompox::plan::{PlanOptions, Planner};
use kompox::report::{self, Header, LiveDescription};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Plan without live state: everything is planned as new.
    #[arg(long, conflicts_with = "live")]
    pub offline: bool,
    /// Live state from a file: `{"objects": <kubectl get -o json List>, "disks": [...], "snapshots": [...]}`.
    #[arg(long, value_name = "FILE")]
    pub live: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the plan to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

pub fn run(g: &GlobalArgs, args: &PlanArgs) -> anyhow::Result<i32> {
    let loaded = project::load(g)?;
    let project = match loaded.project {
        Ok(p) => p,
        Err(diags) => {
            render::diagnostics(&diags, &loaded.tree);
            bail!("the KOM files have errors; nothing was planned");
        }
    };
    render::diagnostics(&project.warnings, &loaded.tree);
    let ids = match super::app::selected_apps(g, &project) {
        Ok(ids) => ids,
        Err(d) => {
            render::diagnostics(&[d], &loaded.tree);
            return Ok(EXIT_ERROR);
        }
    };
    let (live, live_desc) = if args.offline {
        (Live::empty(), LiveDescription::Offline)
    } else if let Some(path) = &args.live {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the live file `{path}`"))?;
        let live = Live::from_json(&text).with_context(|| format!("invalid live file `{path}`"))?;
        (live, LiveDescription::File(path.clone()))
    } else {
        return Err(no_cluster(&project, &ids));
    };

    let disks = assigned_disks(&project, &live);
    let opts = plan_options(&project, ids.is_empty());
    // Convert and plan App by App: only one App's objects are held at a time.
    let mut planner = Planner::new(&live, opts);
    let mut failed = false;
    for (path, errs) in desired::failed_files(&project) {
        render::diagnostics(&errs, &loaded.tree);
        planner.add_failed_file(&path, &errs);
        failed = true;
    }
    desired::for_each_app(&project, &loaded.tree, &ids, &disks, |outcome| {
        match &outcome.result {
            Err(errs) => {
                render::diagnostics(errs, &loaded.tree);
                failed = true;
            }
            // The plan itself shows the disk to create; the converter's
            // "no assigned disk" warning would only repeat it.
            Ok(d) => {
                let warnings: Vec<_> = d
                    .warnings
                    .iter()
                    .filter(|w| w.rule != "volume-assignment-missing")
                    .cloned()
                    .collect();
                render::diagnostics(&warnings, &loaded.tree)
            }
        }
        planner.add(&outcome);
    });
    let plan = planner.finish();

    let header = Header {
        revision: kompox::source::git_head(&loaded.root),
        workspace: project
            .kom
            .workspaces
            .iter()
            .map(|w| w.meta.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        live: live_desc,
    };
    let color = args.out.is_none() && std::io::stdout().is_terminal();
    let rendered = match args.format {
        Format::Text => report::text(&plan, &header, color),
        Format::Markdown => report::markdown(&plan, &header),
        Format::Json => report::json(&plan, &header),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &rendered).with_context(|| format!("cannot write `{path}`"))?;
            eprintln!("plan written to {path}");
        }
        None => output::stdout(&rendered),
    }
    Ok(if failed {
        EXIT_ERROR
    } else if args.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}

/// Plan options from the workspace policy. Removed apps are only detected
/// when every App of the project is planned.
fn plan_options(project: &Project, all_apps: bool) -> PlanOptions {
    let ws = &project.kom.workspaces;
    PlanOptions {
        workspaces: if all_apps {
            ws.iter().map(|w| w.meta.name.clone()).collect()
        } else {
            Vec::new()
        },
        max_prune_share: ws
            .iter()
            .map(|w| w.policy.max_prune_share)
            .fold(PlanOptions::default().max_prune_share, f64::min),
        allow_app_removal: !ws.is_empty() && ws.iter().all(|w| w.policy.allow_app_removal),
    }
}

/// The assigned disk of each app volume, from the live disks (keyed by the
/// cluster-independent app id hash).
fn assigned_disks(project: &Project, live: &Live) -> AssignedDisks {
    let mut out = AssignedDisks::new();
    for app in &project.kom.apps {
        let Some(ctx) = desired::context(&project.kom, app) else {
            continue;
        };
        let h = AppHashes::new(
            &ctx.workspace.meta.name,
            &ctx.provider.meta.name,
            &ctx.cluster.meta.name,
            &app.meta.name,
        );
        let vols: BTreeMap<String, BoundDisk> = live
            .disks
            .iter()
            .filter(|d| d.assigned && d.app_id_hash == h.app_id)
            .map(|d| {
                (
                    d.volume.clone(),
                    BoundDisk {
                        name: d.name.clone(),
                        handle: d.handle.clone(),
                        size_bytes: d.size,
                        zone: d.zone.clone(),
                    },
                )
            })
            .collect();
        if !vols.is_empty() {
            out.insert(app.meta.id.clone(), vols);
        }
    }
    out
}

/// Without `--offline` or `--live`, the plan needs the cluster. Observing a
/// cluster arrives with the apply issue; until then say exactly what to do.
fn no_cluster(project: &Project, ids: &[kompox::model::ResourceId]) -> anyhow::Error {
    let clusters: Vec<String> = project
        .kom
        .apps
        .iter()
        .filter(|a| ids.is_empty() || ids.contains(&a.meta.id))
        .filter_map(|a| a.meta.id.parent())
        .map(|c| c.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    anyhow::anyhow!(
        "no reachable cluster to observe for {}: this version cannot read live state from a cluster yet.\n  \
         Use `--offline` to plan against empty live state, or `--live FILE` with `{{\"objects\": <kubectl get -o json>, \"disks\": [...]}}`.",
        if clusters.is_empty() {
            "the selected apps".to_string()
        } else {
            clusters.join(", ")
        }
    )
}
