//! Load + convert for every App of a project (pure).
//!
//! Joins the KOM model, each App's compose file and the driver's volume
//! classes into the desired state. Apps are independent: a broken App
//! yields its errors and the others still convert (DECISIONS 14).

use std::collections::BTreeMap;

use crate::compose::{self, envfile};
use crate::convert::{self, AppDesired, BoundDisk, ConvertInput};
use crate::diag::Diagnostic;
use crate::kom::Project;
use crate::model::compose::ComposeProject;
use crate::model::{App, AppContext, ComposeRef, KomSet, RefBase, ResourceId};
use crate::provider;
use crate::source::{self, FileTree};

/// One App's outcome.
#[derive(Debug, Clone)]
pub struct AppOutcome {
    pub app_id: ResourceId,
    pub result: Result<AppDesired, Vec<Diagnostic>>,
    /// The loaded compose project (for `--out-compose`), when it loaded.
    pub compose: Option<ComposeProject>,
}

/// The desired state of a project, app by app.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub apps: Vec<AppOutcome>,
    /// App files that failed to load (repository mode), with their errors.
    pub failed_files: Vec<(String, Vec<Diagnostic>)>,
}

impl Desired {
    /// True when any input failed to load or convert: the plan must not
    /// prune anything in such a run (DECISIONS 8).
    pub fn any_failed(&self) -> bool {
        !self.failed_files.is_empty() || self.apps.iter().any(|a| a.result.is_err())
    }
}

/// Assigned disks by App ID and volume name (from the driver; empty offline).
pub type AssignedDisks = BTreeMap<ResourceId, BTreeMap<String, BoundDisk>>;

/// Converts the selected Apps (all Apps when `only` is empty).
pub fn build(
    project: &Project,
    tree: &FileTree,
    only: &[ResourceId],
    disks: &AssignedDisks,
) -> Desired {
    let mut out = Desired {
        failed_files: failed_files(project),
        apps: Vec::new(),
    };
    for_each_app(project, tree, only, disks, |outcome| out.apps.push(outcome));
    out
}

/// App files that failed to load, with their errors (repository mode).
pub fn failed_files(project: &Project) -> Vec<(String, Vec<Diagnostic>)> {
    project
        .app_files
        .iter()
        .filter(|f| !f.errors.is_empty())
        .map(|f| (f.path.clone(), f.errors.clone()))
        .collect()
}

/// Converts the selected Apps one at a time, handing each outcome to `f`,
/// so a caller can plan an App and drop its objects before the next.
pub fn for_each_app(
    project: &Project,
    tree: &FileTree,
    only: &[ResourceId],
    disks: &AssignedDisks,
    mut f: impl FnMut(AppOutcome),
) {
    let empty = BTreeMap::new();
    for app in &project.kom.apps {
        if !only.is_empty() && !only.contains(&app.meta.id) {
            continue;
        }
        let app_disks = disks.get(&app.meta.id).unwrap_or(&empty);
        f(build_app(&project.kom, tree, app, app_disks));
    }
}

/// Loads the compose project of one App and converts it.
pub fn build_app(
    kom: &KomSet,
    tree: &FileTree,
    app: &App,
    disks: &BTreeMap<String, BoundDisk>,
) -> AppOutcome {
    let fail = |errs: Vec<Diagnostic>| AppOutcome {
        app_id: app.meta.id.clone(),
        result: Err(errs),
        compose: None,
    };
    let Some(ctx) = context(kom, app) else {
        return fail(vec![
            Diagnostic::error(
                "kom-missing-parent",
                "the App's Cluster, Provider or Workspace is not loaded",
            )
            .at(app.meta.origin.path.clone(), app.meta.origin.span)
            .resource(app.meta.id.to_string()),
        ]);
    };
    let located = match locate_compose(tree, app) {
        Ok(l) => l,
        Err(d) => return fail(vec![d]),
    };
    let mut vars = BTreeMap::new();
    if let Some(dir) = &located.base_dir {
        let env_path = source::join(dir, ".env");
        if let Ok(text) = tree.read_text(&env_path) {
            match envfile::parse_dotenv(&env_path, text) {
                Ok(pairs) => vars.extend(pairs),
                Err(d) => return fail(vec![d.resource(app.meta.id.to_string())]),
            }
        }
    }
    vars.extend(app.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    let loaded =
        match compose::load_compose(&located.text, &located.file, &vars, located.line_offset) {
            Ok(l) => l,
            Err(errs) => {
                return fail(
                    errs.into_iter()
                        .map(|d| d.resource(app.meta.id.to_string()))
                        .collect(),
                );
            }
        };
    let classes = app
        .volumes
        .iter()
        .filter_map(|v| {
            Some((
                v.name.clone(),
                provider::volume_class(&ctx.provider.driver, v)?,
            ))
        })
        .collect();
    let boundary = match &app.ref_base {
        RefBase::Dir(d) => d.clone(),
        RefBase::None => String::new(),
    };
    let input = ConvertInput {
        ctx,
        compose: &loaded.project,
        files: tree,
        base_dir: located.base_dir.as_deref(),
        boundary: &boundary,
        vars: &vars,
        disks,
        classes: &classes,
    };
    let result = convert::convert_app(&input).map(|mut d| {
        let mut w: Vec<Diagnostic> = loaded
            .warnings
            .iter()
            .cloned()
            .map(|d| d.resource(app.meta.id.to_string()))
            .collect();
        w.append(&mut d.warnings);
        d.warnings = w;
        d
    });
    AppOutcome {
        app_id: app.meta.id.clone(),
        result,
        compose: Some(loaded.project),
    }
}

/// An App's parents.
pub fn context<'a>(kom: &'a KomSet, app: &'a App) -> Option<AppContext<'a>> {
    let cluster_id = app.meta.id.parent()?;
    let cluster = kom.cluster(&cluster_id)?;
    let provider = kom.provider(&cluster_id.parent()?)?;
    let workspace = kom.workspace(&cluster_id.parent()?.parent()?)?;
    Some(AppContext {
        workspace,
        provider,
        cluster,
        app,
    })
}

struct LocatedCompose {
    text: String,
    /// Path shown in diagnostics.
    file: String,
    line_offset: u32,
    /// Where relative references resolve; `None` without local file access.
    base_dir: Option<String>,
}

/// Finds an App's compose text, enforcing RefBase (reference §3.8).
fn locate_compose(tree: &FileTree, app: &App) -> Result<LocatedCompose, Diagnostic> {
    let err = |rule: &'static str, msg: String, help: &str| {
        Diagnostic::error(rule, msg)
            .at(app.meta.origin.path.clone(), app.compose_span)
            .resource(app.meta.id.to_string())
            .help(help.to_string())
    };
    match (&app.compose, &app.ref_base) {
        (ComposeRef::Inline { text, line_offset }, base) => Ok(LocatedCompose {
            text: text.clone(),
            file: app.meta.origin.path.clone(),
            line_offset: *line_offset,
            base_dir: match base {
                RefBase::Dir(d) => Some(d.clone()),
                RefBase::None => None,
            },
        }),
        (ComposeRef::File(p), RefBase::None) => Err(err(
            "refbase",
            format!(
                "compose `file:{p}` not allowed: this App is not defined in an app file (RefBase is empty)"
            ),
            "define the App in the app's kompoxapp.yml, or inline the compose text",
        )),
        (ComposeRef::File(p), RefBase::Dir(dir)) => {
            if p.split('/').any(|s| s == "..") {
                return Err(err(
                    "refbase",
                    format!("compose `file:{p}` must not contain `..`"),
                    "keep the compose file inside the app directory",
                ));
            }
            let path = tree.resolve(dir, p, dir).map_err(|e| {
                err(
                    "compose-file",
                    format!("compose `file:{p}`: {e}"),
                    "use a relative path inside the app directory",
                )
            })?;
            let text = tree.read_text(&path).map_err(|e| {
                err(
                    "compose-file",
                    format!("compose `file:{p}`: {e}"),
                    "check the path in spec.compose",
                )
            })?;
            Ok(LocatedCompose {
                text: text.to_string(),
                base_dir: Some(source::parent_dir(&path).to_string()),
                file: path,
                line_offset: 0,
            })
        }
    }
}
