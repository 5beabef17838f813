//! Source stage (I/O, development): say when a local project directory
//! changed, so that the reconciler reloads it.
//!
//! Events are debounced (an editor's save or a `git checkout` is one burst
//! of writes, and should be one reload) and reduced to "something changed":
//! the reconciler reads the whole tree again with
//! [`FileTree::read_dir`](super::FileTree::read_dir) anyway. Changes under
//! directories that `read_dir` skips ([`SKIPPED_DIRS`]: `.git`,
//! `node_modules`, …) are ignored, and so is reading a file: inotify
//! reports opens, and without that filter the reconciler's own reload would
//! trigger the next one, forever.
//!
//! The watch is recursive (inotify: one watch per directory, skipped
//! directories included, since notify cannot prune them); symlinks are not
//! followed.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{
    self, EventKind, RecommendedWatcher, RecursiveMode,
    event::{MetadataKind, ModifyKind},
};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer_opt};

use super::SKIPPED_DIRS;

/// Something under the watched directory changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirChanged {
    /// The changed paths, relative to the watched directory, sorted, for
    /// logs. Empty when the watcher lost track (event queue overflow, a
    /// watch error) and everything must be assumed changed.
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot watch `{}`: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Watches a directory recursively until dropped.
pub struct DirWatcher {
    root: PathBuf,
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl DirWatcher {
    /// Long enough to merge the writes of one save or checkout, short
    /// enough to feel immediate.
    pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

    /// Starts watching `root`; changes arrive on the returned channel.
    ///
    /// The channel holds at most one pending notice: while one waits, later
    /// changes are merged into it (their paths dropped), since a single
    /// reload after the last change covers them all. A slow reconciler
    /// therefore never builds a queue of stale reloads.
    pub fn new(
        root: impl AsRef<Path>,
        debounce: Duration,
    ) -> Result<(DirWatcher, tokio::sync::mpsc::Receiver<DirChanged>), WatchError> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let watcher = DirWatcher::with_handler(root, debounce, move |change| {
            // Full: a reload is already pending and will see this change.
            let _ = tx.try_send(change);
        })?;
        Ok((watcher, rx))
    }

    /// Starts watching `root` and calls `handler` (on the watcher's thread)
    /// after each debounced burst of relevant changes.
    pub fn with_handler(
        root: impl AsRef<Path>,
        debounce: Duration,
        mut handler: impl FnMut(DirChanged) + Send + 'static,
    ) -> Result<DirWatcher, WatchError> {
        let given = root.as_ref().to_path_buf();
        if !given.is_dir() {
            return Err(WatchError::NotADirectory(given));
        }
        // Events carry canonical paths (symlinked roots, `..`).
        let root = given.canonicalize().map_err(|e| WatchError::Watch {
            path: given.clone(),
            source: notify::Error::io(e),
        })?;
        let events_root = root.clone();
        let on_events = move |result: DebounceEventResult| {
            if let Some(change) = relevant(&events_root, result) {
                handler(change);
            }
        };
        // Symlinks are not followed, as FileTree::read_dir does not follow
        // them: a link to `/` must not put the whole disk under watch.
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut debouncer = new_debouncer_opt::<_, RecommendedWatcher, RecommendedCache>(
            debounce,
            None,
            on_events,
            RecommendedCache::new(),
            config,
        )
        .map_err(|source| WatchError::Watch {
            path: given.clone(),
            source,
        })?;
        debouncer
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Watch {
                path: given.clone(),
                source,
            })?;
        Ok(DirWatcher {
            root,
            _debouncer: debouncer,
        })
    }

    /// The watched directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// The change a debounced batch amounts to, if any.
fn relevant(root: &Path, result: DebounceEventResult) -> Option<DirChanged> {
    let events = match result {
        Ok(events) => events,
        Err(errors) => {
            for error in &errors {
                tracing::warn!(root = %root.display(), %error, "watching the directory");
            }
            // Something may have been missed: reload to be sure.
            return Some(DirChanged { paths: Vec::new() });
        }
    };
    let mut paths = Vec::new();
    for event in events.iter() {
        if event.need_rescan() {
            return Some(DirChanged { paths: Vec::new() });
        }
        if !changes_content(&event.kind) {
            continue;
        }
        for path in &event.paths {
            let relative = path.strip_prefix(root).unwrap_or(path);
            if !in_skipped_dir(relative) {
                paths.push(relative.to_path_buf());
            }
        }
    }
    paths.sort();
    paths.dedup();
    (!paths.is_empty()).then_some(DirChanged { paths })
}

/// Creations, writes, renames, removals and permission changes; not
/// opens, closes or access-time updates (reads).
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Other => false,
    }
}

fn in_skipped_dir(relative: &Path) -> bool {
    relative.components().any(|c| match c {
        Component::Normal(name) => name.to_str().is_some_and(|n| SKIPPED_DIRS.contains(&n)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, Event};
    use notify_debouncer_full::DebouncedEvent;
    use std::time::Instant;

    fn batch(events: Vec<(EventKind, &str)>) -> DebounceEventResult {
        Ok(events
            .into_iter()
            .map(|(kind, path)| {
                DebouncedEvent::new(
                    Event::new(kind).add_path(PathBuf::from(path)),
                    Instant::now(),
                )
            })
            .collect())
    }

    #[test]
    fn reads_and_skipped_dirs_are_not_changes() {
        let root = Path::new("/p");
        let open = EventKind::Access(AccessKind::Open(notify::event::AccessMode::Read));
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(relevant(root, batch(vec![(open, "/p/a.yml")])), None);
        assert_eq!(
            relevant(
                root,
                batch(vec![
                    (create, "/p/.git/index.lock"),
                    (create, "/p/apps/node_modules/x.js")
                ])
            ),
            None
        );
        assert_eq!(
            relevant(
                root,
                batch(vec![
                    (create, "/p/b.yml"),
                    (open, "/p/c.yml"),
                    (EventKind::Modify(ModifyKind::Any), "/p/a.yml"),
                    (create, "/p/b.yml"),
                ])
            ),
            Some(DirChanged {
                paths: vec!["a.yml".into(), "b.yml".into()]
            })
        );
    }

    #[test]
    fn errors_mean_reload_everything() {
        let result: DebounceEventResult = Err(vec![notify::Error::generic("queue overflow")]);
        assert_eq!(
            relevant(Path::new("/p"), result),
            Some(DirChanged { paths: vec![] })
        );
    }
}
