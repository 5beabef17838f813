//! KOM loader (load stage, pure given a `FileTree`).
//!
//! Turns the KOM documents of a project (reference §3, DECISIONS 1 and 14)
//! into a validated [`KomSet`]. Everything the loader needs from the
//! outside world arrives as values: the file snapshot and a [`ProjectEnv`]
//! resolved by the CLI from flags and environment variables. So the same
//! tree and settings always give the same model and the same diagnostics,
//! in the same order.
//!
//! Two modes:
//! - **single-app** (the original's behaviour): the app file
//!   (`kompoxapp.yml`) and the KOM paths form one set, loaded
//!   all-or-nothing;
//! - **repository** (DECISIONS 14): at the root of a repository whose
//!   `.kompox/config.yml` lists `apps:` globs, the shared KOM is loaded
//!   all-or-nothing, then each app file on its own on top of it, so one
//!   broken app file fails only its own apps.

mod discover;
mod fields;
mod parse;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use discover::{KomLimits, KompoxConfig, LoggingConfig, load_config};
pub use parse::{API_VERSION, ID_ANNOTATION};
pub use values::parse_quantity;

use crate::diag::{Diagnostic, Severity, has_errors};
use crate::model::{Defaults, Kind, KomSet, Origin, RefBase, ResourceId};
use crate::source::{FileTree, join};
use discover::{
    RULE_PATH, app_dir, app_files, choose_paths, collect_files, read_text, resolve_user_path,
};
use parse::{DefaultsDoc, FileDocs, ParsedDoc, RULE_DEFAULTS, parse_file};
use validate::{assemble, merge, origins};

pub(crate) const RULE_APP_SELECT: &str = "kom-app-select";

/// The project settings the CLI resolves from flags and environment
/// variables (reference §3.9, ADR-015), as values.
///
/// Paths are relative to the tree root, `/`-separated. Path lists may also
/// start with `$KOMPOX_ROOT` or `$KOMPOX_DIR`; the CLI rewrites an absolute
/// path under the project root into that form (a tree cannot see outside
/// its root, so other absolute paths are rejected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectEnv {
    /// The current directory relative to the tree root (`""` = the root).
    pub cwd: String,
    /// The Kompox directory relative to the root (default `.kompox`).
    pub kompox_dir: String,
    /// `--kom-path` values (precedence level 1), relative to the app file's
    /// directory.
    pub kom_path_flag: Vec<String>,
    /// `KOMPOX_KOM_PATH`, already split (level 2), same base.
    pub kom_path_env: Vec<String>,
    /// `--kom-app` / `KOMPOX_KOM_APP`, relative to `cwd`; `None` means
    /// `kompoxapp.yml` in `cwd`.
    pub kom_app: Option<String>,
}

impl Default for ProjectEnv {
    fn default() -> Self {
        ProjectEnv {
            cwd: String::new(),
            kompox_dir: ".kompox".into(),
            kom_path_flag: Vec::new(),
            kom_path_env: Vec::new(),
            kom_app: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    SingleApp,
    Repository,
}

/// A loaded project.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub mode: Mode,
    /// Shared KOM plus every App (and Box) that loaded successfully, each
    /// App with its RefBase set.
    pub kom: KomSet,
    /// Repository mode: one per app file, sorted by path. Single-app mode:
    /// the app file, if there is one.
    pub app_files: Vec<AppFile>,
    /// Single-app mode: the app file's `Defaults`.
    pub defaults: Option<Defaults>,
    /// `.kompox/config.yml`, if present.
    pub config: Option<KompoxConfig>,
    /// Warnings (unknown fields, ignored documents, ...), sorted by file and
    /// position.
    pub warnings: Vec<Diagnostic>,
}

/// One app file (`kompoxapp.yml`).
#[derive(Debug, Clone, PartialEq)]
pub struct AppFile {
    pub path: String,
    /// Resource IDs of the Apps the file declares, also when the file
    /// failed to load (so a plan can name what it could not plan).
    pub apps: Vec<ResourceId>,
    /// Errors that kept this file's objects out of [`Project::kom`]
    /// (repository mode only; in single-app mode an error fails the load).
    pub errors: Vec<Diagnostic>,
    pub defaults: Option<Defaults>,
}

impl AppFile {
    pub fn is_loaded(&self) -> bool {
        self.errors.is_empty()
    }
}

impl Project {
    /// The app file that declares an App.
    pub fn app_file_of(&self, id: &ResourceId) -> Option<&AppFile> {
        self.app_files.iter().find(|f| f.apps.contains(id))
    }
}

/// Loads the project's KOM with the original's limits.
pub fn load_project(tree: &FileTree, env: &ProjectEnv) -> Result<Project, Vec<Diagnostic>> {
    load_project_with_limits(tree, env, &KomLimits::default())
}

/// Loads the project's KOM. Fails with every error found (and the warnings
/// gathered so far) when the shared set (repository mode) or the whole set
/// (single-app mode) does not validate.
pub fn load_project_with_limits(
    tree: &FileTree,
    env: &ProjectEnv,
    limits: &KomLimits,
) -> Result<Project, Vec<Diagnostic>> {
    let cwd = normalized(&env.cwd)?;
    let kompox_dir = normalized(&env.kompox_dir)?;
    let (config, config_warnings) = load_config(tree, &kompox_dir)?;
    let repository = cwd.is_empty()
        && env.kom_app.is_none()
        && config.as_ref().is_some_and(|c| !c.apps.is_empty());
    let mut diags = config_warnings;
    let result = if repository {
        load_repository(tree, env, &kompox_dir, config, limits, &mut diags)
    } else {
        load_single_app(tree, env, &cwd, &kompox_dir, config, limits, &mut diags)
    };
    sort_diags(&mut diags);
    match result {
        Some(mut project) if !has_errors(&diags) => {
            project.warnings = diags;
            Ok(project)
        }
        _ => Err(diags),
    }
}

fn normalized(path: &str) -> Result<String, Vec<Diagnostic>> {
    crate::source::normalize(path).map_err(|e| {
        vec![Diagnostic::error(
            RULE_PATH,
            format!("invalid project path: {e}"),
        )]
    })
}

/// Parsed KOM files, ready for [`assemble`].
#[derive(Default)]
struct Docs {
    docs: Vec<ParsedDoc>,
    invalid: BTreeSet<ResourceId>,
}

impl Docs {
    fn absorb(
        &mut self,
        fd: FileDocs,
        diags: &mut Vec<Diagnostic>,
    ) -> (Vec<DefaultsDoc>, Vec<ResourceId>) {
        self.docs.extend(fd.docs);
        self.invalid.extend(fd.invalid_ids);
        diags.extend(fd.diags);
        (fd.defaults, fd.declared_apps)
    }
}

/// Loads KOM files (not app files): their Apps get no RefBase, and
/// `Defaults` in them are ignored, with a warning.
fn load_kom_files(
    tree: &FileTree,
    files: &[String],
    limits: &KomLimits,
    diags: &mut Vec<Diagnostic>,
) -> Docs {
    let mut docs = Docs::default();
    for path in files {
        let text = match read_text(tree, path, Some(limits.max_file_bytes)) {
            Ok(t) => t,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let fd = parse_file(path, text, &RefBase::None);
        let (defaults, _) = docs.absorb(fd, diags);
        for d in defaults {
            diags.push(
                Diagnostic::warning(
                    RULE_DEFAULTS,
                    "Defaults is only read from the app file (kompoxapp.yml); this one is ignored",
                )
                .at(path, d.defaults.origin.span),
            );
        }
    }
    docs
}

/// An app file, parsed: its documents (Apps with RefBase of its
/// directory), its single `Defaults` and the App IDs it declares.
struct ParsedAppFile {
    docs: Docs,
    defaults: Option<DefaultsDoc>,
    declared: Vec<ResourceId>,
    diags: Vec<Diagnostic>,
}

fn parse_app_file(tree: &FileTree, path: &str, limits: &KomLimits) -> ParsedAppFile {
    let mut out = ParsedAppFile {
        docs: Docs::default(),
        defaults: None,
        declared: Vec::new(),
        diags: Vec::new(),
    };
    let text = match read_text(tree, path, Some(limits.max_file_bytes)) {
        Ok(t) => t,
        Err(d) => {
            out.diags.push(d);
            return out;
        }
    };
    let fd = parse_file(path, text, &RefBase::Dir(app_dir(path)));
    let (defaults, declared) = out.docs.absorb(fd, &mut out.diags);
    out.declared = declared;
    let mut defaults = defaults.into_iter();
    out.defaults = defaults.next();
    for extra in defaults {
        let first = out.defaults.as_ref().map_or(0, |d| d.defaults.origin.index);
        out.diags.push(
            Diagnostic::error(
                RULE_DEFAULTS,
                format!(
                    "a second Defaults document; an app file may have at most one (the first is document {first})"
                ),
            )
            .at(path, extra.defaults.origin.span)
            .help("merge the two Defaults documents into one"),
        );
    }
    out
}

fn load_single_app(
    tree: &FileTree,
    env: &ProjectEnv,
    cwd: &str,
    kompox_dir: &str,
    config: Option<KompoxConfig>,
    limits: &KomLimits,
    diags: &mut Vec<Diagnostic>,
) -> Option<Project> {
    let written = env.kom_app.as_deref().unwrap_or("kompoxapp.yml");
    let app_path = match resolve_user_path(tree, cwd, written, kompox_dir) {
        Ok(p) => p,
        Err(e) => {
            diags.push(Diagnostic::error(
                RULE_PATH,
                format!("app file `{written}`: {e}"),
            ));
            return None;
        }
    };
    let base = app_dir(&app_path);
    let mut app = None;
    if tree.is_file(&app_path) {
        app = Some(parse_app_file(tree, &app_path, limits));
    } else if tree.is_dir(&app_path) {
        diags.push(Diagnostic::error(
            RULE_PATH,
            format!("app file `{app_path}` is a directory"),
        ));
    } else if env.kom_app.is_some() {
        diags.push(Diagnostic::warning(
            RULE_PATH,
            format!("app file `{app_path}` does not exist; loading KOM paths only"),
        ));
    }
    let defaults_paths = app.as_ref().and_then(|a| a.defaults.as_ref()).map(|d| {
        (
            app_path.as_str(),
            d.defaults.kom_path.as_slice(),
            d.kom_path_spans.as_slice(),
        )
    });
    let paths = choose_paths(env, kompox_dir, &base, defaults_paths, config.as_ref());
    let mut exclude = BTreeSet::new();
    if app.is_some()
        && let Ok(real) = tree.real_path(&app_path)
    {
        exclude.insert(real);
    }
    let (files, path_diags) = collect_files(tree, &paths, kompox_dir, &exclude, limits);
    diags.extend(path_diags);
    let mut docs = load_kom_files(tree, &files, limits, diags);
    let mut app_file = None;
    let mut defaults = None;
    if let Some(a) = app {
        // App file documents come last: on a duplicate, the app file's copy
        // is the one reported.
        docs.docs.extend(a.docs.docs);
        docs.invalid.extend(a.docs.invalid);
        diags.extend(a.diags);
        defaults = a.defaults.map(|d| d.defaults);
        app_file = Some(AppFile {
            path: app_path.clone(),
            apps: a.declared,
            errors: Vec::new(),
            defaults: defaults.clone(),
        });
    }
    let (kom, set_diags) = assemble(
        &KomSet::default(),
        &BTreeMap::new(),
        docs.docs,
        &docs.invalid,
    );
    diags.extend(set_diags);
    let mut kom_sorted = KomSet::default();
    merge(&mut kom_sorted, kom);
    Some(Project {
        mode: Mode::SingleApp,
        kom: kom_sorted,
        app_files: app_file.into_iter().collect(),
        defaults,
        config,
        warnings: Vec::new(),
    })
}

fn load_repository(
    tree: &FileTree,
    env: &ProjectEnv,
    kompox_dir: &str,
    config: Option<KompoxConfig>,
    limits: &KomLimits,
    diags: &mut Vec<Diagnostic>,
) -> Option<Project> {
    let cfg = config.as_ref()?;
    let config_path = join(kompox_dir, "config.yml");
    let app_paths = match app_files(tree, cfg, &config_path) {
        Ok((paths, warnings)) => {
            diags.extend(warnings);
            paths
        }
        Err(errors) => {
            diags.extend(errors);
            return None;
        }
    };
    if tree.is_file("kompoxapp.yml") && !app_paths.iter().any(|p| p == "kompoxapp.yml") {
        diags.push(
            Diagnostic::warning(
                RULE_PATH,
                "kompoxapp.yml at the repository root is not an app file in repository mode (no `apps` pattern matches it); it is ignored",
            )
            .in_file("kompoxapp.yml"),
        );
    }

    // Shared KOM, all-or-nothing. Defaults.spec.komPath takes no part: each
    // app file may carry Defaults, but the shared set is the repository's.
    let paths = choose_paths(env, kompox_dir, "", None, Some(cfg));
    let exclude: BTreeSet<String> = app_paths
        .iter()
        .filter_map(|p| tree.real_path(p).ok())
        .collect();
    let (files, path_diags) = collect_files(tree, &paths, kompox_dir, &exclude, limits);
    diags.extend(path_diags);
    let docs = load_kom_files(tree, &files, limits, diags);
    let (shared, set_diags) = assemble(
        &KomSet::default(),
        &BTreeMap::new(),
        docs.docs,
        &docs.invalid,
    );
    diags.extend(set_diags);
    if has_errors(diags) {
        return None;
    }
    let mut kom = KomSet::default();
    merge(&mut kom, shared);

    // Each app file on its own, on top of the shared set.
    let shared_set = kom.clone();
    let mut taken: BTreeMap<ResourceId, Origin> = BTreeMap::new();
    let mut files_out = Vec::new();
    for path in app_paths {
        let mut a = parse_app_file(tree, &path, limits);
        if let Some(d) = &a.defaults
            && !d.defaults.kom_path.is_empty()
        {
            a.diags.push(
                Diagnostic::warning(
                    RULE_DEFAULTS,
                    "Defaults.spec.komPath is ignored in repository mode (shared KOM comes from --kom-path, KOMPOX_KOM_PATH, komPath in config.yml or .kompox/kom)",
                )
                .at(&path, d.kom_path_spans.first().copied().unwrap_or(d.defaults.origin.span)),
            );
        }
        let (new, set_diags) = assemble(&shared_set, &taken, a.docs.docs, &a.docs.invalid);
        a.diags.extend(set_diags);
        let (mut errors, warnings): (Vec<_>, Vec<_>) = a
            .diags
            .into_iter()
            .partition(|d| d.severity == Severity::Error);
        diags.extend(warnings);
        sort_diags(&mut errors);
        if errors.is_empty() {
            taken.extend(origins(&new));
            merge(&mut kom, new);
        }
        files_out.push(AppFile {
            path,
            apps: a.declared,
            errors,
            defaults: a.defaults.map(|d| d.defaults),
        });
    }
    Some(Project {
        mode: Mode::Repository,
        kom,
        app_files: files_out,
        defaults: None,
        config,
        warnings: Vec::new(),
    })
}

/// Orders diagnostics by file, then position (those without a file first),
/// keeping the discovery order among equals.
fn sort_diags(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            (
                d.file.clone(),
                d.span.map(|s| (s.line, s.col)).unwrap_or_default(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// Picks the App a command works on (reference §3.9 "Default App
/// selection"): `--app-id` > `--app-name` (exactly one match) >
/// `Defaults.spec.appId` > the only App of the app file (single-app mode).
// A `Diagnostic` is the project's error value; its size is not a concern
// for a call made once per command.
#[allow(clippy::result_large_err)]
pub fn select_app(
    project: &Project,
    app_id: Option<&str>,
    app_name: Option<&str>,
) -> Result<ResourceId, Diagnostic> {
    if let Some(text) = app_id {
        let id: ResourceId = text.parse().map_err(|e| {
            Diagnostic::error(RULE_APP_SELECT, format!("invalid --app-id \"{text}\": {e}"))
        })?;
        return loaded_app(project, id, "--app-id");
    }
    if let Some(name) = app_name {
        let hits: Vec<&ResourceId> = project
            .kom
            .apps
            .iter()
            .filter(|a| a.meta.name == name)
            .map(|a| &a.meta.id)
            .collect();
        return match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                let failed: Vec<&str> = project
                    .app_files
                    .iter()
                    .filter(|f| !f.is_loaded() && f.apps.iter().any(|a| a.name() == name))
                    .map(|f| f.path.as_str())
                    .collect();
                let mut d = Diagnostic::error(
                    RULE_APP_SELECT,
                    format!("no App named \"{name}\" is loaded"),
                );
                d = if failed.is_empty() {
                    d.help(known_apps(project))
                } else {
                    d.help(format!("its app file has errors: {}", failed.join(", ")))
                };
                Err(d)
            }
            many => Err(Diagnostic::error(
                RULE_APP_SELECT,
                format!(
                    "{} Apps are named \"{name}\": {}",
                    many.len(),
                    many.iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .help("choose one with --app-id")),
        };
    }
    if let Some(d) = &project.defaults
        && let Some(id) = &d.app_id
    {
        return loaded_app(project, id.clone(), "Defaults.spec.appId")
            .map_err(|e| e.at(d.origin.path.clone(), d.origin.span));
    }
    if project.mode == Mode::SingleApp
        && let [file] = project.app_files.as_slice()
        && let [only] = file.apps.as_slice()
    {
        return loaded_app(project, only.clone(), &file.path);
    }
    Err(
        Diagnostic::error(RULE_APP_SELECT, "no App selected").help(format!(
            "pass --app-id or --app-name, or set Defaults.spec.appId in the app file; {}",
            known_apps(project)
        )),
    )
}

#[allow(clippy::result_large_err)]
fn loaded_app(project: &Project, id: ResourceId, from: &str) -> Result<ResourceId, Diagnostic> {
    if id.kind() != Some(Kind::App) {
        return Err(Diagnostic::error(
            RULE_APP_SELECT,
            format!("{from}: \"{id}\" is not an App Resource ID (it ends in /app/<name>)"),
        ));
    }
    if project.kom.app(&id).is_some() {
        return Ok(id);
    }
    let mut d = Diagnostic::error(RULE_APP_SELECT, format!("{from}: App \"{id}\" not found"));
    d = match project.app_file_of(&id) {
        Some(f) if !f.is_loaded() => {
            d.help(format!("it is declared in {}, which has errors", f.path))
        }
        _ => d.help(known_apps(project)),
    };
    Err(d.resource(id.to_string()))
}

fn known_apps(project: &Project) -> String {
    if project.kom.apps.is_empty() {
        return "no Apps are loaded".into();
    }
    let ids: Vec<String> = project
        .kom
        .apps
        .iter()
        .map(|a| a.meta.id.to_string())
        .collect();
    format!("loaded Apps: {}", ids.join(", "))
}
