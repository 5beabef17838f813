//! `kompoxops plan`: what would change in the cluster and the disks.

use std::io::IsTerminal;

use anyhow::{Context, bail};

use super::clusters::{self, ClusterRun};
use super::project::Loaded;
use super::{EXIT_ERROR, GlobalArgs, output, project, render};
use kompox::desired;
use kompox::kom::Project;
use kompox::live::Live;
use kompox::model::ResourceId;
use kompox::plan::{Plan, Planner};
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
    /// Write the plan to FILE instead of stdout (`kompoxops apply FILE`
    /// takes a plan saved with `--format json`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub pr: super::plan_pr::PrArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// A loaded project with the Apps a command works on.
pub struct Selected {
    pub loaded: Loaded,
    pub project: Project,
    pub ids: Vec<ResourceId>,
}

/// Loads the project and resolves the App selection, rendering problems.
pub fn select(g: &GlobalArgs) -> anyhow::Result<Result<Selected, i32>> {
    let loaded = project::load(g)?;
    let project = match loaded.project.clone() {
        Ok(p) => p,
        Err(diags) => {
            render::diagnostics(&diags, &loaded.tree);
            bail!("the KOM files have errors; nothing was planned");
        }
    };
    render::diagnostics(&project.warnings, &loaded.tree);
    match super::app::selected_apps(g, &project) {
        Ok(ids) => Ok(Ok(Selected {
            loaded,
            project,
            ids,
        })),
        Err(d) => {
            render::diagnostics(&[d], &loaded.tree);
            Ok(Err(EXIT_ERROR))
        }
    }
}

pub fn run(g: &GlobalArgs, args: &PlanArgs) -> anyhow::Result<i32> {
    if let Some(pr) = &args.pr.pr {
        return super::plan_pr::run(g, args, pr);
    }
    let sel = match select(g)? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let (plan, failed, live_desc) = if args.offline || args.live.is_some() {
        let (live, desc) = if let Some(path) = &args.live {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the live file `{path}`"))?;
            let live =
                Live::from_json(&text).with_context(|| format!("invalid live file `{path}`"))?;
            (live, LiveDescription::File(path.clone()))
        } else {
            (Live::empty(), LiveDescription::Offline)
        };
        let (plan, failed) = plan_against(&sel, &live);
        (plan, failed, desc)
    } else {
        let rt = super::runtime()?;
        let runs = clusters::observe(&rt, &sel.project, &sel.loaded.root, &sel.ids)?;
        let (plan, failed) = plan_clusters(&sel, &runs, Some(&rt));
        let names = runs
            .iter()
            .map(|r| r.conn.cluster.clone())
            .collect::<Vec<_>>()
            .join(", ");
        (plan, failed, LiveDescription::Cluster(names))
    };
    let header = header(&sel, live_desc);
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

pub fn header(sel: &Selected, live: LiveDescription) -> Header {
    header_of(&sel.loaded.root, &sel.project, live)
}

pub fn header_of(root: &std::path::Path, project: &Project, live: LiveDescription) -> Header {
    kompox::review::header(project, kompox::source::git_head(root), live)
}

/// Plans every cluster against its own observed state and joins the plans.
pub fn plan_clusters(
    sel: &Selected,
    runs: &[ClusterRun],
    rt: Option<&tokio::runtime::Runtime>,
) -> (Plan, bool) {
    let mut plans = Vec::new();
    let mut failed = false;
    for (i, run) in runs.iter().enumerate() {
        let (p, f) = plan_one(
            sel,
            &run.observed.live,
            &run.apps,
            sel.ids.is_empty(),
            i == 0,
            rt.map(|r| (r, run)),
        );
        plans.push(p);
        failed |= f;
    }
    (Plan::merge(plans), failed)
}

/// Plans the selected Apps against one live state (offline or a file).
pub fn plan_against(sel: &Selected, live: &Live) -> (Plan, bool) {
    plan_one(sel, live, &sel.ids, sel.ids.is_empty(), true, None)
}

fn plan_one(
    sel: &Selected,
    live: &Live,
    ids: &[ResourceId],
    all_apps: bool,
    report_failed_files: bool,
    cluster: Option<(&tokio::runtime::Runtime, &ClusterRun)>,
) -> (Plan, bool) {
    let tree = &sel.loaded.tree;
    let disks = assigned_disks(&sel.project, live);
    let opts = plan_options(&sel.project, all_apps);
    // Convert and plan App by App: only one App's objects are held at a time.
    let mut planner = Planner::new(live, opts);
    let mut failed = false;
    for (path, errs) in desired::failed_files(&sel.project) {
        if report_failed_files {
            render::diagnostics(&errs, tree);
        }
        planner.add_failed_file(&path, &errs);
        failed = true;
    }
    let only: Vec<ResourceId> = if ids.is_empty() {
        sel.project
            .kom
            .apps
            .iter()
            .map(|a| a.meta.id.clone())
            .collect()
    } else {
        ids.to_vec()
    };
    desired::for_each_app(&sel.project, tree, &only, &disks, |outcome| {
        match &outcome.result {
            Err(errs) => {
                render::diagnostics(errs, tree);
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
                render::diagnostics(&warnings, tree)
            }
        }
        let app_plan = planner.add(&outcome);
        if let (Some((rt, run)), Ok(d)) = (cluster, &outcome.result) {
            let dry = rt.block_on(kompox::apply::refine_with_dry_run(&run.conn, d, app_plan));
            if dry.forbidden {
                app_plan
                    .warnings
                    .push(kompox::review::PREVIEW_FORBIDDEN.into());
            }
            if let Some(w) = kompox::plan::scheduling::unschedulable_warning(d, &run.observed.nodes)
            {
                app_plan.warnings.push(w);
            }
        }
    });
    (planner.finish(), failed)
}

pub use kompox::pipeline::assigned_disks;
use kompox::pipeline::plan_options;
