//! Checks across KOM documents and assembly of a [`KomSet`] (load stage,
//! pure).
//!
//! As the original's `NewSink` (reference §3.9): documents are taken in
//! kind order (Workspace, Provider, Cluster, App, Box), then by Resource
//! ID, so that a parent is always settled before its children; a Resource
//! ID may be defined once; every parent must exist. The caller decides what
//! an error means (all-or-nothing for a set).

use std::collections::{BTreeMap, BTreeSet};

use super::parse::{Object, ParsedDoc};
use crate::diag::Diagnostic;
use crate::model::{KomSet, Meta, Origin, ResourceId};

pub(crate) const RULE_DUPLICATE_ID: &str = "kom-duplicate-id";
pub(crate) const RULE_MISSING_PARENT: &str = "kom-missing-parent";

/// Origins of every object in a set, by Resource ID.
pub(crate) fn origins(set: &KomSet) -> BTreeMap<ResourceId, Origin> {
    metas(set)
        .map(|m| (m.id.clone(), m.origin.clone()))
        .collect()
}

pub(crate) fn metas(set: &KomSet) -> impl Iterator<Item = &Meta> {
    set.workspaces
        .iter()
        .map(|o| &o.meta)
        .chain(set.providers.iter().map(|o| &o.meta))
        .chain(set.clusters.iter().map(|o| &o.meta))
        .chain(set.apps.iter().map(|o| &o.meta))
        .chain(set.boxes.iter().map(|o| &o.meta))
}

/// Validates `docs` on top of `base` (whose objects may be parents) and
/// returns the new objects only. `taken` holds further Resource IDs that
/// must not be redefined but cannot be parents (other app files' objects in
/// repository mode). `invalid` are IDs of documents that failed their own
/// checks: their children are not reported again.
pub(crate) fn assemble(
    base: &KomSet,
    taken: &BTreeMap<ResourceId, Origin>,
    mut docs: Vec<ParsedDoc>,
    invalid: &BTreeSet<ResourceId>,
) -> (KomSet, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    // Stable: among equal IDs the first file (and document) read wins.
    docs.sort_by(|a, b| (a.kind, a.id()).cmp(&(b.kind, b.id())));
    let mut defined = origins(base);
    let parents: BTreeSet<ResourceId> = defined.keys().cloned().collect();
    let mut accepted: BTreeSet<ResourceId> = BTreeSet::new();
    // Documents rejected here: their children are not reported again.
    let mut rejected: BTreeSet<ResourceId> = BTreeSet::new();
    let mut out = KomSet::default();
    for doc in docs {
        let meta = doc.object.meta();
        let id = &meta.id;
        let here = &meta.origin;
        let kind = doc.kind.kom_name();
        if let Some(prev) = defined.get(id).or_else(|| taken.get(id)) {
            diags.push(
                Diagnostic::error(
                    RULE_DUPLICATE_ID,
                    format!(
                        "duplicate Resource ID: {kind} \"{id}\" is already defined in {} (document {})",
                        prev.path, prev.index
                    ),
                )
                .at(&here.path, doc.id_span)
                .resource(id.to_string())
                .help("a Resource ID may be defined only once across all KOM files; remove or rename one of them"),
            );
            continue;
        }
        if let Some(parent) = id.parent() {
            let exists = parents.contains(&parent) || accepted.contains(&parent);
            if !exists {
                if !invalid.contains(&parent) && !rejected.contains(&parent) {
                    let pkind = parent.kind().map_or("parent", |k| k.kom_name());
                    diags.push(
                        Diagnostic::error(
                            RULE_MISSING_PARENT,
                            format!("parent \"{parent}\" does not exist"),
                        )
                        .at(&here.path, doc.id_span)
                        .resource(id.to_string())
                        .help(format!(
                            "define the {pkind} \"{parent}\" in a KOM file that is loaded with this one, or fix the Resource ID"
                        )),
                    );
                }
                rejected.insert(id.clone());
                continue;
            }
        }
        defined.insert(id.clone(), here.clone());
        accepted.insert(id.clone());
        match doc.object {
            Object::Workspace(o) => out.workspaces.push(o),
            Object::Provider(o) => out.providers.push(o),
            Object::Cluster(o) => out.clusters.push(o),
            Object::App(o) => out.apps.push(*o),
            Object::Box(o) => out.boxes.push(o),
        }
    }
    (out, diags)
}

/// Adds `from` to `into`, keeping every list sorted by Resource ID.
pub(crate) fn merge(into: &mut KomSet, from: KomSet) {
    into.workspaces.extend(from.workspaces);
    into.providers.extend(from.providers);
    into.clusters.extend(from.clusters);
    into.apps.extend(from.apps);
    into.boxes.extend(from.boxes);
    into.workspaces.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
    into.providers.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
    into.clusters.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
    into.apps.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
    into.boxes.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
}
