//! Which Apps a pull request touches, from the paths it changes.
//!
//! An App is touched when anything in its app file's directory changed
//! (its compose file, env files, configs), or the file that declares it,
//! or a file declaring a Workspace, Provider or Cluster it inherits from:
//! a shared KOM change can change every App under it. A change to
//! `.kompox/config.yml` (which app files exist, their defaults) touches
//! everything. Apps the pull request removes are found in the base
//! project (the same rules on its files); without a base, they are shown
//! when the pull request deletes a YAML file (see
//! [`Touched::removed_unknown`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::kom::Project;
use crate::model::{Kind, RefBase, ResourceId};

/// The project-wide configuration: it decides which app files are loaded.
const CONFIG_PATH: &str = ".kompox/config.yml";

/// What a pull request touches, with a reason per App for the comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Touched Apps, each with the first reason found.
    pub apps: BTreeMap<ResourceId, String>,
    /// App files that failed to load and whose directory changed.
    pub failed_files: BTreeSet<String>,
    /// Apps of the base that the head no longer has, and whose files the
    /// pull request changed: the pull request removes them.
    pub removed: BTreeMap<ResourceId, String>,
    /// No base project to compare with, and the pull request deletes a
    /// YAML file, which may remove Apps: Apps the plan finds in the cluster
    /// but not in Git are shown too.
    pub removed_unknown: bool,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
            && self.failed_files.is_empty()
            && self.removed.is_empty()
            && !self.removed_unknown
    }

    /// Whether the plan of a removed App (found live, not in Git) belongs
    /// in the comment.
    pub fn shows_removed(&self, id: &ResourceId) -> bool {
        self.removed_unknown || self.removed.contains_key(id)
    }
}

/// The Apps of `project` that the changed paths touch.
///
/// `changed` are `/`-separated paths relative to the project root (the
/// caller strips a repository sub-path); `exists_in_head` tells whether a
/// changed path still exists at the head commit (false: deleted); `base`
/// is the project at the pull request's base, when it could be loaded.
pub fn touched_apps(
    project: &Project,
    changed: &[String],
    exists_in_head: impl Fn(&str) -> bool,
    base: Option<&Project>,
) -> Touched {
    let changed: BTreeSet<&str> = changed.iter().map(|p| p.trim_start_matches("./")).collect();
    let mut out = Touched::default();
    let everything = changed.contains(CONFIG_PATH);
    let why = |index: &Index<'_>, app: &crate::model::App| {
        if everything {
            Some(format!("`{CONFIG_PATH}` changed"))
        } else {
            app_reason(app, &changed, &index.0, &index.1)
        }
    };
    let head_index = shared_index(project, &changed);
    for app in &project.kom.apps {
        if let Some(r) = why(&head_index, app) {
            out.apps.insert(app.meta.id.clone(), r);
        }
    }
    for f in project.app_files.iter().filter(|f| !f.is_loaded()) {
        let dir = parent_dir(&f.path);
        if everything || changed.iter().any(|p| under(p, dir)) {
            out.failed_files.insert(f.path.clone());
        }
    }
    match base {
        Some(base) => {
            let base_index = shared_index(base, &changed);
            for app in &base.kom.apps {
                if project.kom.app(&app.meta.id).is_none()
                    && let Some(r) = why(&base_index, app)
                {
                    out.removed.insert(app.meta.id.clone(), r);
                }
            }
        }
        None => {
            out.removed_unknown = changed.iter().any(|p| is_yaml(p) && !exists_in_head(p));
        }
    }
    out
}

/// Files declaring shared objects, by id (an App inherits from its
/// Workspace, Provider and Cluster), and the Apps whose Boxes changed.
type Index<'p> = (BTreeMap<String, &'p str>, BTreeSet<String>);

fn shared_index<'p>(project: &'p Project, changed: &BTreeSet<&str>) -> Index<'p> {
    let kom = &project.kom;
    let origin_of = kom
        .workspaces
        .iter()
        .map(|w| &w.meta)
        .chain(kom.providers.iter().map(|p| &p.meta))
        .chain(kom.clusters.iter().map(|c| &c.meta))
        .map(|m| (m.id.to_string(), m.origin.path.as_str()))
        .collect();
    let boxes_changed = kom
        .boxes
        .iter()
        .filter(|b| changed.contains(b.meta.origin.path.as_str()))
        .filter_map(|b| b.meta.id.parent().map(|p| p.to_string()))
        .collect();
    (origin_of, boxes_changed)
}

fn app_reason(
    app: &crate::model::App,
    changed: &BTreeSet<&str>,
    origin_of: &BTreeMap<String, &str>,
    boxes_changed: &BTreeSet<String>,
) -> Option<String> {
    if let RefBase::Dir(dir) = &app.ref_base
        && let Some(p) = changed.iter().find(|p| under(p, dir))
    {
        return Some(format!("`{p}` changed"));
    }
    let own = app.meta.origin.path.as_str();
    if changed.contains(own) {
        return Some(format!("`{own}` changed"));
    }
    if boxes_changed.contains(&app.meta.id.to_string()) {
        return Some("a Box of the app changed".into());
    }
    let mut id = app.meta.id.parent();
    while let Some(ancestor) = id {
        if let Some(path) = origin_of.get(&ancestor.to_string())
            && changed.contains(path)
        {
            let kind = ancestor.kind().map_or("object", Kind::kom_name);
            return Some(format!(
                "inherits {kind} `{}` from `{path}`, which changed",
                ancestor.name()
            ));
        }
        id = ancestor.parent();
    }
    None
}

/// `path` is inside directory `dir` (`""` is the project root).
fn under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yml") || path.ends_with(".yaml")
}

/// Repository paths made relative to the project's directory in the
/// repository (`--path`, or where a CI checkout's project sits); paths
/// outside it are dropped.
pub fn relative_to_project(paths: &[String], sub: Option<&str>) -> Vec<String> {
    let sub = sub.map(|s| s.trim_matches('/')).unwrap_or("");
    if sub.is_empty() {
        return paths.to_vec();
    }
    let prefix = format!("{sub}/");
    paths
        .iter()
        .filter_map(|p| p.strip_prefix(&prefix).map(str::to_string))
        .collect()
}
