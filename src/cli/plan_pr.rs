//! `kompoxops plan --pr github:owner/repo#12`: the plan of the Apps a pull
//! request touches, posted as one comment kept up to date, and a commit
//! status (DECISIONS 20). Meant for a CI job on the pull request's
//! checkout; read-only towards the cluster.

use std::path::Path;

use anyhow::{Context, bail};

use super::plan::{PlanArgs, header_of};
use super::{EXIT_ERROR, GlobalArgs, clusters, output, project, render};
use kompox::cluster::Observed;
use kompox::forge::{ForgeAuth, ForgeClient, ForgeKind, PrRef, StatusState};
use kompox::live::Live;
use kompox::model::ResourceId;
use kompox::pr::{Touched, touched_apps};
use kompox::reconcile::pull::status_context;
use kompox::report::LiveDescription;
use kompox::review::{self, ClusterView};

/// Where the forge is and who the client is.
#[derive(Debug, Clone, clap::Args)]
pub struct PrArgs {
    /// Plan a pull request and post the plan on it:
    /// `github:OWNER/REPO#N`, `gitea:OWNER/REPO#N` or
    /// `gitlab:GROUP/SUBGROUP/PROJECT#IID` (a merge request).
    #[arg(long, value_name = "FORGE:OWNER/REPO#N")]
    pub pr: Option<String>,
    /// The forge's base URL (GitHub: https://api.github.com by default;
    /// Gitea: required, e.g. https://gitea.example.com; GitLab:
    /// https://gitlab.com by default, or the server, e.g. $CI_SERVER_URL).
    #[arg(long, env = "KOMPOX_FORGE_URL", value_name = "URL")]
    pub forge_url: Option<String>,
    /// A file holding the forge token. Without it the token comes from
    /// `KOMPOX_FORGE_TOKEN`, then `GITHUB_TOKEN` (GitHub), `GITEA_TOKEN`
    /// (Gitea) or `GITLAB_TOKEN` (GitLab: an access token with scope `api`).
    #[arg(long, value_name = "FILE")]
    pub forge_token_file: Option<String>,
    /// GitHub App id (with --github-app-installation and --github-app-key-file),
    /// instead of a token.
    #[arg(long, value_name = "ID", requires_all = ["github_app_installation", "github_app_key_file"])]
    pub github_app_id: Option<String>,
    #[arg(long, value_name = "ID")]
    pub github_app_installation: Option<u64>,
    /// The GitHub App's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub github_app_key_file: Option<String>,
    /// The base commit to diff against (default: the pull request's base
    /// commit, which the checkout must contain).
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Keeps a separate comment per key (e.g. one per cluster job).
    #[arg(long, value_name = "KEY", default_value = "")]
    pub comment_key: String,
}

pub fn run(g: &GlobalArgs, args: &PlanArgs, pr_arg: &str) -> anyhow::Result<i32> {
    let pa = &args.pr;
    let pr: PrRef = pr_arg.parse()?;
    let client = ForgeClient::new(pr.forge, pa.forge_url.as_deref(), auth(pa, pr.forge)?)?;
    let rt = super::runtime()?;
    let info = rt
        .block_on(client.pull_request(&pr))
        .with_context(|| format!("cannot read pull request {pr}"))?;
    // A closed or merged pull request's plan would describe a change that
    // will not happen (or already did): its comment is left as it was.
    if info.state != "open" {
        eprintln!("pull request {pr} is {}: no plan posted", info.state);
        return Ok(0);
    }
    let loaded = project::load(g)?;
    let dest = Destination {
        rt: &rt,
        client: &client,
        pr: &pr,
        head_sha: &info.head_sha,
        key: &pa.comment_key,
    };

    let project = match loaded.project {
        Ok(p) => p,
        Err(diags) => {
            render::diagnostics(&diags, &loaded.tree);
            let errors: Vec<String> = diags.iter().map(ToString::to_string).collect();
            let parts = review::load_error_comment(&info.head_sha, &errors);
            dest.post(
                &parts,
                (false, "kompox plan: the KOM files have errors".into()),
            )?;
            return Ok(EXIT_ERROR);
        }
    };
    render::diagnostics(&project.warnings, &loaded.tree);

    let base_rev = pa.base.as_deref().unwrap_or(&info.base_sha);
    let (changed, prefix) = changed_paths(&loaded.root, base_rev)?;
    // The base's Apps tell which Apps the pull request removes; a base
    // that does not load only loses that precision.
    let base = kompox::source::git::tree_at(&loaded.root, base_rev, &prefix)
        .ok()
        .and_then(|t| kompox::kom::load_project(&t, &kompox::kom::ProjectEnv::default()).ok());
    let touched = touched_apps(
        &project,
        &changed,
        |p| loaded.root.join(p).exists(),
        base.as_ref(),
    );
    tracing::info!(pr = %pr, changed = changed.len(), apps = touched.apps.len(), "pull request");

    let ids = apps_in_scope(&project, &touched);
    let (views_owned, live_desc) = if args.offline || args.live.is_some() {
        let (live, desc) = match &args.live {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the live file `{path}`"))?;
                let live = Live::from_json(&text)
                    .with_context(|| format!("invalid live file `{path}`"))?;
                (live, LiveDescription::File(path.clone()))
            }
            None => (Live::empty(), LiveDescription::Offline),
        };
        // `apps_by_cluster` takes no ids as "all Apps".
        let clusters: Vec<ResourceId> = if ids.is_empty() {
            Vec::new()
        } else {
            clusters::apps_by_cluster(&project, &ids)
                .into_keys()
                .collect()
        };
        let observed = Observed {
            live,
            ..Observed::default()
        };
        (Owned::Offline(clusters, observed), desc)
    } else if ids.is_empty() {
        (
            Owned::Offline(Vec::new(), Observed::default()),
            LiveDescription::Offline,
        )
    } else {
        let runs = clusters::observe(&rt, &project, &loaded.root, &ids)?;
        let names = runs
            .iter()
            .map(|r| r.conn.cluster.clone())
            .collect::<Vec<_>>()
            .join(", ");
        (Owned::Runs(runs), LiveDescription::Cluster(names))
    };
    let views: Vec<ClusterView<'_>> = match &views_owned {
        Owned::Offline(ids, observed) => ids
            .iter()
            .map(|id| ClusterView {
                cluster_id: id.clone(),
                conn: None,
                observed,
            })
            .collect(),
        Owned::Runs(runs) => runs
            .iter()
            .map(|r| ClusterView {
                cluster_id: r.cluster_id.clone(),
                conn: Some(&r.conn),
                observed: &r.observed,
            })
            .collect(),
    };
    let rev = rt.block_on(review::plan_touched(
        &project,
        &loaded.tree,
        &views,
        &touched,
    ));

    let mut head = header_of(&loaded.root, &project, live_desc);
    head.revision = Some(info.head_sha.clone());
    let parts = review::comment(&rev, &head);
    let status = review::status_line(&rev.plan);
    dest.post(&parts, status.clone())?;
    output::stdout(&parts.join("\n\n---\n\n"));
    Ok(if !status.0 {
        EXIT_ERROR
    } else if args.detailed_exitcode && rev.plan.has_changes() {
        2
    } else {
        0
    })
}

/// Live state owned for the duration of the plan.
enum Owned {
    Offline(Vec<ResourceId>, Observed),
    Runs(Vec<clusters::ClusterRun>),
}

/// Every App of every Cluster that has a touched or removed App (prunes
/// need the whole cluster); all Apps when the pull request may remove
/// some we cannot name.
fn apps_in_scope(project: &kompox::kom::Project, touched: &Touched) -> Vec<ResourceId> {
    let clusters: Vec<ResourceId> = touched
        .apps
        .keys()
        .chain(touched.removed.keys())
        .filter_map(ResourceId::parent)
        .collect();
    project
        .kom
        .apps
        .iter()
        .filter(|a| {
            touched.removed_unknown || a.meta.id.parent().is_some_and(|c| clusters.contains(&c))
        })
        .map(|a| a.meta.id.clone())
        .collect()
}

/// Paths the pull request changes, relative to the project root, and
/// the project root's path in the repository (`""`: its root).
fn changed_paths(root: &Path, base: &str) -> anyhow::Result<(Vec<String>, String)> {
    let work_tree = kompox::source::git::work_tree_root(root)
        .with_context(|| format!("`{}` is not inside a Git checkout", root.display()))?;
    let (_, paths) = kompox::source::git::local_changed_paths(root, base, "HEAD").with_context(
        || {
            format!(
                "cannot diff the pull request against `{base}`: the checkout needs the base commit and history (GitHub Actions: actions/checkout with fetch-depth: 0; GitLab CI: GIT_DEPTH: 0)"
            )
        },
    )?;
    let work_tree = work_tree.canonicalize().unwrap_or(work_tree);
    let prefix = root
        .strip_prefix(&work_tree)
        .unwrap_or(Path::new(""))
        .to_string_lossy()
        .replace('\\', "/");
    let paths: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    Ok((
        kompox::pr::relative_to_project(&paths, Some(&prefix)),
        prefix,
    ))
}

fn auth(a: &PrArgs, forge: ForgeKind) -> anyhow::Result<ForgeAuth> {
    if let (Some(app_id), Some(inst), Some(key)) = (
        &a.github_app_id,
        a.github_app_installation,
        &a.github_app_key_file,
    ) {
        let pem = std::fs::read_to_string(key)
            .with_context(|| format!("cannot read the GitHub App key `{key}`"))?;
        return Ok(ForgeAuth::GitHubApp {
            app_id: app_id.clone(),
            installation_id: inst,
            private_key_pem: pem,
        });
    }
    if let Some(f) = &a.forge_token_file {
        let t = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the forge token file `{f}`"))?;
        return Ok(ForgeAuth::Token(t.trim().to_string()));
    }
    let fallback = match forge {
        ForgeKind::GitHub => "GITHUB_TOKEN",
        ForgeKind::Gitea => "GITEA_TOKEN",
        ForgeKind::GitLab => "GITLAB_TOKEN",
    };
    for var in ["KOMPOX_FORGE_TOKEN", fallback] {
        if let Ok(t) = std::env::var(var)
            && !t.trim().is_empty()
        {
            return Ok(ForgeAuth::Token(t.trim().to_string()));
        }
    }
    bail!(
        "no forge credentials: pass --forge-token-file FILE, set KOMPOX_FORGE_TOKEN or {fallback}, or use --github-app-id"
    )
}

/// Where the comment and the status go.
struct Destination<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: &'a ForgeClient,
    pr: &'a PrRef,
    head_sha: &'a str,
    key: &'a str,
}

impl Destination<'_> {
    fn post(&self, parts: &[String], (ok, line): (bool, String)) -> anyhow::Result<()> {
        let pr = self.pr;
        let report = self
            .rt
            .block_on(self.client.sync_comments(pr, self.key, parts))
            .with_context(|| format!("cannot post the plan on {pr}"))?;
        eprintln!(
            "plan comment on {pr}: {} created, {} updated, {} unchanged",
            report.created.len(),
            report.updated.len(),
            report.unchanged.len()
        );
        let state = if ok {
            StatusState::Success
        } else {
            StatusState::Failure
        };
        self.rt
            .block_on(self.client.set_status(
                pr,
                self.head_sha,
                state,
                &line,
                &status_context(self.key),
            ))
            .with_context(|| format!("cannot set the commit status on {pr}"))?;
        Ok(())
    }
}
