//! Source stage: a read-only snapshot of a project's files (I/O at the edge).
//!
//! [`FileTree::read_dir`] is the only function here that touches the disk.
//! Everything after it (`kom`, `compose`, `convert`) reads from the
//! snapshot, so those stages stay pure: the same tree always loads the same
//! model, and tests build trees in memory with [`FileTree::from_files`].
//!
//! Paths inside a tree are relative to the project root, `/`-separated, with
//! no `.`/`..` segments; the root itself is `""`. Symlinks are recorded, not
//! followed, when the tree is read; they are resolved later, inside the
//! tree, so that a link can never smuggle a file from outside the project
//! (or outside an app's directory) into a deployment.
//!
//! Where the files come from: [`git`] keeps a Git branch checked out in a
//! cache directory (the controller), [`watch`] says when a local directory
//! changed (development). Both end in a directory that
//! [`FileTree::read_dir`] snapshots.

pub mod git;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Budgets for [`FileTree::read_dir`], so that pointing Kompox at the wrong
/// directory (a home directory, a monorepo with build output) fails quickly
/// instead of reading gigabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    /// Files (and symlinks) in the tree; past this the read fails.
    pub max_files: usize,
    /// Larger files are recorded as [`Entry::TooLarge`] without content.
    pub max_file_bytes: u64,
    /// Sum of the contents read; past this the read fails.
    pub max_total_bytes: u64,
}

impl Default for TreeLimits {
    fn default() -> Self {
        TreeLimits {
            max_files: 20_000,
            max_file_bytes: 2 * 1024 * 1024,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Directory names never descended into: VCS metadata, dependency caches and
/// build output hold no Kompox input and can be huge.
pub const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".github",
    "node_modules",
    "vendor",
    ".direnv",
    ".venv",
    "dist",
    "build",
    "target",
];

/// One path in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>),
    /// A file over the size limit: its size is known, its content is not.
    TooLarge(u64),
    /// A symlink with its raw target (as written, `/`-separated).
    Symlink(String),
    Dir,
}

/// Why a file in the tree cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("`{path}` does not exist")]
    NotFound { path: String },
    #[error("`{path}` is a directory, not a file")]
    IsDir { path: String },
    #[error("`{path}` is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("`{path}` is an absolute path; only paths relative to the project are allowed")]
    Absolute { path: String },
    #[error("`{path}` is a URL; only local paths are allowed")]
    Url { path: String },
    #[error("`{path}` leaves {}", describe_dir(boundary))]
    Escapes { path: String, boundary: String },
    #[error(
        "symlink leaves the app directory: `{link}` points to `{target}`, outside {}",
        describe_dir(boundary)
    )]
    SymlinkEscapes {
        link: String,
        target: String,
        boundary: String,
    },
    #[error("too many levels of symlinks while resolving `{path}`")]
    SymlinkLoop { path: String },
    #[error("`{path}` is not valid UTF-8 (line {line}, byte {byte_offset})")]
    NotUtf8 {
        path: String,
        line: u32,
        byte_offset: usize,
    },
}

fn describe_dir(dir: &str) -> String {
    if dir.is_empty() {
        "the project root".to_string()
    } else {
        format!("the directory `{dir}`")
    }
}

/// Why a directory could not be snapshotted.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error(
        "more than {limit} files under `{}`; is this the right project directory? (skipped: {})",
        root.display(),
        SKIPPED_DIRS.join(", ")
    )]
    TooManyFiles { root: PathBuf, limit: usize },
    #[error(
        "files under `{}` add up to more than {limit} bytes; is this the right project directory?",
        root.display()
    )]
    TooManyBytes { root: PathBuf, limit: u64 },
    #[error("`{}` has a name that is not valid UTF-8", .0.display())]
    NonUtf8Path(PathBuf),
}

/// An in-memory snapshot of the files under a project root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileTree {
    /// Every file, symlink and directory, keyed by normalised path. The root
    /// (`""`) is implicit.
    entries: BTreeMap<String, Entry>,
    limits: TreeLimits,
}

/// Symlink hops allowed while resolving one path (as Linux's MAXSYMLINKS).
const MAX_SYMLINK_HOPS: usize = 40;

impl FileTree {
    /// An empty tree with default limits.
    pub fn new() -> Self {
        FileTree::default()
    }

    /// Builds a tree from `(path, content)` pairs (tests, benchmarks, trees
    /// read from Git objects). Parent directories are implied. Paths that
    /// are absolute or climb above the root cannot be part of a project and
    /// are left out.
    pub fn from_files<I, P>(files: I) -> Self
    where
        I: IntoIterator<Item = (P, Vec<u8>)>,
        P: AsRef<str>,
    {
        let mut tree = FileTree::new();
        for (path, bytes) in files {
            tree.add_file(path.as_ref(), bytes);
        }
        tree
    }

    /// Adds (or replaces) a file; see [`FileTree::from_files`] for which
    /// paths are accepted. A file over the tree's size limit is recorded as
    /// [`Entry::TooLarge`], as [`FileTree::read_dir`] would.
    pub fn add_file(&mut self, path: &str, bytes: Vec<u8>) -> &mut Self {
        let limit = self.limits.max_file_bytes;
        let size = bytes.len() as u64;
        let entry = if size > limit {
            Entry::TooLarge(size)
        } else {
            Entry::File(bytes)
        };
        self.insert(path, entry);
        self
    }

    /// Adds a symlink whose raw target is `target` (relative to the link's
    /// directory, or absolute, exactly as `readlink` would return it).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.insert(path, Entry::Symlink(target.replace('\\', "/")));
        self
    }

    /// Adds an (empty) directory.
    pub fn add_dir(&mut self, path: &str) -> &mut Self {
        self.insert(path, Entry::Dir);
        self
    }

    fn insert(&mut self, path: &str, entry: Entry) {
        let Ok(path) = normalize(path) else {
            return;
        };
        if path.is_empty() {
            return;
        }
        let mut dir = parent_dir(&path);
        while !dir.is_empty() {
            self.entries.insert(dir.to_string(), Entry::Dir);
            dir = parent_dir(dir);
        }
        self.entries.insert(path, entry);
    }

    /// The limits the tree was read with (used to report `TooLarge`).
    pub fn limits(&self) -> &TreeLimits {
        &self.limits
    }

    /// Snapshots the directory `root` recursively.
    ///
    /// Directories in [`SKIPPED_DIRS`] are not entered, symlinks are
    /// recorded with their raw target and not followed, files over
    /// `limits.max_file_bytes` are recorded without content, and other
    /// special files (sockets, FIFOs, devices) are left out.
    pub fn read_dir(root: &Path, limits: &TreeLimits) -> Result<FileTree, SourceError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SourceError::Io { path, source }
        };
        let meta = std::fs::metadata(root).map_err(io(root))?;
        if !meta.is_dir() {
            return Err(SourceError::NotADirectory(root.to_path_buf()));
        }
        let mut tree = FileTree {
            entries: BTreeMap::new(),
            limits: *limits,
        };
        let mut files = 0usize;
        let mut total = 0u64;
        // An explicit stack: no recursion, whatever the nesting depth.
        let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel_dir)) = stack.pop() {
            let mut children = Vec::new();
            for item in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let item = item.map_err(io(&dir))?;
                children.push(item);
            }
            children.sort_by_key(|c| c.file_name());
            for child in children {
                let full = child.path();
                let Some(name) = child.file_name().to_str().map(str::to_string) else {
                    return Err(SourceError::NonUtf8Path(full));
                };
                let rel = join(&rel_dir, &name);
                let ft = child.file_type().map_err(io(&full))?;
                if ft.is_dir() {
                    if SKIPPED_DIRS.contains(&name.as_str()) {
                        continue;
                    }
                    tree.entries.insert(rel.clone(), Entry::Dir);
                    stack.push((full, rel));
                    continue;
                }
                if !ft.is_file() && !ft.is_symlink() {
                    continue;
                }
                files += 1;
                if files > limits.max_files {
                    return Err(SourceError::TooManyFiles {
                        root: root.to_path_buf(),
                        limit: limits.max_files,
                    });
                }
                if ft.is_symlink() {
                    let target = std::fs::read_link(&full).map_err(io(&full))?;
                    let Some(target) = target.to_str() else {
                        return Err(SourceError::NonUtf8Path(full));
                    };
                    tree.entries
                        .insert(rel, Entry::Symlink(target.replace('\\', "/")));
                    continue;
                }
                let size = child.metadata().map_err(io(&full))?.len();
                if size > limits.max_file_bytes {
                    tree.entries.insert(rel, Entry::TooLarge(size));
                    continue;
                }
                let bytes = std::fs::read(&full).map_err(io(&full))?;
                total += bytes.len() as u64;
                if total > limits.max_total_bytes {
                    return Err(SourceError::TooManyBytes {
                        root: root.to_path_buf(),
                        limit: limits.max_total_bytes,
                    });
                }
                tree.entries.insert(rel, Entry::File(bytes));
            }
        }
        Ok(tree)
    }

    /// The raw entry at `path`, without following symlinks.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        let path = normalize(path).ok()?;
        if path.is_empty() {
            return Some(&Entry::Dir);
        }
        self.entries.get(&path)
    }

    /// True when `path` (following symlinks) is a file or directory.
    pub fn exists(&self, path: &str) -> bool {
        self.resolved_entry(path).is_ok_and(|(_, e)| e.is_some())
    }

    /// True when `path` (following symlinks) is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.resolved_entry(path), Ok((_, Some(Entry::Dir))))
    }

    /// True when `path` (following symlinks) is a file, including one that
    /// is too large to have been read.
    pub fn is_file(&self, path: &str) -> bool {
        matches!(
            self.resolved_entry(path),
            Ok((_, Some(Entry::File(_) | Entry::TooLarge(_))))
        )
    }

    /// The size of the file at `path` (following symlinks).
    pub fn file_size(&self, path: &str) -> Option<u64> {
        match self.resolved_entry(path) {
            Ok((_, Some(Entry::File(b)))) => Some(b.len() as u64),
            Ok((_, Some(Entry::TooLarge(n)))) => Some(*n),
            _ => None,
        }
    }

    /// The content of the file at `path`, following symlinks inside the tree.
    pub fn read(&self, path: &str) -> Result<&[u8], FileError> {
        let (_, entry) = self.resolved_entry(path)?;
        match entry {
            Some(Entry::File(bytes)) => Ok(bytes),
            Some(Entry::TooLarge(size)) => Err(FileError::TooLarge {
                path: path.to_string(),
                size: *size,
                limit: self.limits.max_file_bytes,
            }),
            Some(Entry::Dir) => Err(FileError::IsDir {
                path: path.to_string(),
            }),
            // resolved_entry never stops on a symlink.
            Some(Entry::Symlink(_)) | None => Err(FileError::NotFound {
                path: path.to_string(),
            }),
        }
    }

    /// Like [`FileTree::read`], but the content must be UTF-8; the error
    /// names the line and byte of the first invalid sequence.
    pub fn read_text(&self, path: &str) -> Result<&str, FileError> {
        let bytes = self.read(path)?;
        std::str::from_utf8(bytes).map_err(|e| {
            let valid = e.valid_up_to();
            let line = bytes[..valid].iter().filter(|b| **b == b'\n').count() + 1;
            FileError::NotUtf8 {
                path: path.to_string(),
                line: line as u32,
                byte_offset: valid,
            }
        })
    }

    /// Non-directory entries (files, too-large files, symlinks) under `dir`,
    /// recursively, in byte order of their paths. `dir` itself is taken as
    /// written (a symlinked directory is not followed: resolve it first with
    /// [`FileTree::real_path`]).
    pub fn list_under<'a>(&'a self, dir: &str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = match normalize(dir) {
            Ok(d) if d.is_empty() => Some(String::new()),
            Ok(d) => Some(format!("{d}/")),
            Err(_) => None,
        };
        let start = prefix.clone().unwrap_or_default();
        self.entries
            .range(start..)
            .take_while(move |(k, _)| match &prefix {
                Some(p) => k.starts_with(p.as_str()),
                None => false,
            })
            .filter(|(_, e)| !matches!(e, Entry::Dir))
            .map(|(k, _)| k.as_str())
    }

    /// Resolves `rel` against `base_dir` and checks that the result stays
    /// inside `boundary`: lexically (after `..`) and again after following
    /// every symlink on the way. Returns the lexical path (what the user
    /// wrote, normalised), which need not exist.
    pub fn resolve(&self, base_dir: &str, rel: &str, boundary: &str) -> Result<String, FileError> {
        if rel.contains("://") {
            return Err(FileError::Url {
                path: rel.to_string(),
            });
        }
        if is_absolute(rel) {
            return Err(FileError::Absolute {
                path: rel.to_string(),
            });
        }
        let boundary = normalize(boundary).map_err(|_| FileError::Escapes {
            path: boundary.to_string(),
            boundary: String::new(),
        })?;
        let escapes = || FileError::Escapes {
            path: rel.to_string(),
            boundary: boundary.clone(),
        };
        let joined = normalize(&join(base_dir, rel)).map_err(|_| escapes())?;
        if !is_under(&joined, &boundary) {
            return Err(escapes());
        }
        let (real, last_link) = self.follow(&joined)?;
        if !is_under(&real, &boundary) {
            let (link, target) = last_link.unwrap_or_else(|| (joined.clone(), real.clone()));
            return Err(FileError::SymlinkEscapes {
                link,
                target,
                boundary,
            });
        }
        Ok(joined)
    }

    /// The path with every symlink on the way followed (like `realpath -m`:
    /// components that do not exist are kept as written).
    pub fn real_path(&self, path: &str) -> Result<String, FileError> {
        let path = normalize(path).map_err(|_| FileError::Escapes {
            path: path.to_string(),
            boundary: String::new(),
        })?;
        self.follow(&path).map(|(real, _)| real)
    }

    fn resolved_entry(&self, path: &str) -> Result<(String, Option<&Entry>), FileError> {
        let real = self.real_path(path)?;
        if real.is_empty() {
            return Ok((real, Some(&Entry::Dir)));
        }
        let entry = self.entries.get(&real);
        Ok((real, entry))
    }

    /// Follows symlinks in a normalised path. Returns the real path and the
    /// last symlink followed (for error messages).
    fn follow(&self, path: &str) -> Result<(String, Option<(String, String)>), FileError> {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0usize;
        let mut last: Option<(String, String)> = None;
        while let Some(seg) = todo.pop() {
            match seg.as_str() {
                "" | "." => continue,
                ".." => {
                    if cur.pop().is_none() {
                        let (link, target) =
                            last.unwrap_or_else(|| (path.to_string(), "..".into()));
                        return Err(FileError::SymlinkEscapes {
                            link,
                            target,
                            boundary: String::new(),
                        });
                    }
                    continue;
                }
                _ => {}
            }
            cur.push(seg);
            let here = cur.join("/");
            if let Some(Entry::Symlink(target)) = self.entries.get(&here) {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(FileError::SymlinkLoop {
                        path: path.to_string(),
                    });
                }
                if is_absolute(target) {
                    return Err(FileError::SymlinkEscapes {
                        link: here,
                        target: target.clone(),
                        boundary: String::new(),
                    });
                }
                cur.pop();
                last = Some((here, target.clone()));
                for part in target.split('/').rev() {
                    todo.push(part.to_string());
                }
            }
        }
        Ok((cur.join("/"), last))
    }
}

/// Normalises a relative path: drops `.` and empty segments (`./`, `//`,
/// trailing `/`) and applies `..`. Fails when the path is absolute or climbs
/// above the root.
pub fn normalize(path: &str) -> Result<String, FileError> {
    if is_absolute(path) {
        return Err(FileError::Absolute {
            path: path.to_string(),
        });
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(FileError::Escapes {
                        path: path.to_string(),
                        boundary: String::new(),
                    });
                }
            }
            s => out.push(s),
        }
    }
    Ok(out.join("/"))
}

/// `dir` joined with `name` (either may be empty).
pub fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => dir.to_string(),
        (false, false) => format!("{}/{}", dir.trim_end_matches('/'), name),
    }
}

/// The directory part of a normalised path (`""` for a top-level name).
pub fn parent_dir(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// True when normalised `path` is `dir` or inside it.
pub fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// Unix absolute paths, and Windows ones (`C:\`, `\\server`), which a user
/// may paste into a KOM file.
fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with('/')
        || path.starts_with('\\')
        || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

/// The commit id checked out in `root` (or a parent), read from `.git`
/// without running git: `HEAD`, then the loose ref or `packed-refs`.
/// `None` when the project is not in a Git work tree.
pub fn git_head(root: &Path) -> Option<String> {
    let mut dir = Some(root);
    while let Some(d) = dir {
        let git = d.join(".git");
        if git.is_dir() {
            let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
            let head = head.trim();
            let Some(r) = head.strip_prefix("ref: ") else {
                return Some(head.to_string());
            };
            if let Ok(id) = std::fs::read_to_string(git.join(r)) {
                return Some(id.trim().to_string());
            }
            let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
            return packed
                .lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(_, name)| *name == r)
                .map(|(id, _)| id.to_string());
        }
        dir = d.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> FileTree {
        let mut t = FileTree::from_files([
            ("apps/web/kompoxapp.yml", b"kind: App\n".to_vec()),
            ("apps/web/compose.yml", b"services: {}\n".to_vec()),
            ("apps/db/compose.yml", b"services: {}\n".to_vec()),
            ("shared/common.env", b"A=1\n".to_vec()),
            ("top.yml", b"x: 1\n".to_vec()),
        ]);
        t.add_symlink("apps/web/env", "../../shared/common.env");
        t.add_symlink("apps/web/inside", "compose.yml");
        t.add_symlink("apps/web/outside", "../../../etc/passwd");
        t.add_symlink("apps/web/abs", "/etc/passwd");
        t.add_symlink("apps/web/dblink", "../db");
        t.add_symlink("loop1", "loop2");
        t.add_symlink("loop2", "loop1");
        t
    }

    #[test]
    fn normalize_drops_dot_and_double_slashes() {
        assert_eq!(normalize("./a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(normalize("a/b/../c").unwrap(), "a/c");
        assert_eq!(normalize("").unwrap(), "");
        assert!(matches!(normalize("../a"), Err(FileError::Escapes { .. })));
        assert!(matches!(normalize("/a"), Err(FileError::Absolute { .. })));
    }

    #[test]
    fn read_follows_symlinks_inside_the_tree() {
        let t = tree();
        assert_eq!(t.read("apps/web/env").unwrap(), b"A=1\n");
        assert_eq!(t.read("./apps//web/inside").unwrap(), b"services: {}\n");
        assert_eq!(
            t.read("apps/web/dblink/compose.yml").unwrap(),
            b"services: {}\n"
        );
        assert!(t.is_dir("apps/web/dblink"));
        assert!(matches!(t.read("apps"), Err(FileError::IsDir { .. })));
        assert!(matches!(
            t.read("nope.yml"),
            Err(FileError::NotFound { .. })
        ));
        assert!(matches!(
            t.read("loop1"),
            Err(FileError::SymlinkLoop { .. })
        ));
        assert!(matches!(
            t.read("apps/web/abs"),
            Err(FileError::SymlinkEscapes { .. })
        ));
    }

    #[test]
    fn entry_does_not_follow_symlinks() {
        let t = tree();
        assert_eq!(
            t.entry("apps/web/env"),
            Some(&Entry::Symlink("../../shared/common.env".into()))
        );
        assert_eq!(t.entry("apps"), Some(&Entry::Dir));
        assert_eq!(t.entry(""), Some(&Entry::Dir));
        assert!(t.exists("apps/web/env"));
        assert!(!t.exists("apps/web/outside"));
    }

    #[test]
    fn list_under_is_recursive_and_sorted() {
        let t = tree();
        let all: Vec<&str> = t.list_under("apps/web").collect();
        assert_eq!(
            all,
            [
                "apps/web/abs",
                "apps/web/compose.yml",
                "apps/web/dblink",
                "apps/web/env",
                "apps/web/inside",
                "apps/web/kompoxapp.yml",
                "apps/web/outside",
            ]
        );
        assert_eq!(t.list_under("").count(), 12);
        assert_eq!(t.list_under("ap").count(), 0);
    }

    #[test]
    fn resolve_rejects_absolute_urls_and_escapes() {
        let t = tree();
        assert_eq!(
            t.resolve("apps/web", "./compose.yml", "apps/web").unwrap(),
            "apps/web/compose.yml"
        );
        assert_eq!(
            t.resolve("apps/web", "sub/../compose.yml", "apps/web")
                .unwrap(),
            "apps/web/compose.yml"
        );
        // need not exist
        assert_eq!(
            t.resolve("apps/web", "data/x", "apps/web").unwrap(),
            "apps/web/data/x"
        );
        assert!(matches!(
            t.resolve("apps/web", "/etc/passwd", "apps/web"),
            Err(FileError::Absolute { .. })
        ));
        assert!(matches!(
            t.resolve("apps/web", "https://example.com/x.yml", "apps/web"),
            Err(FileError::Url { .. })
        ));
        let e = t
            .resolve("apps/web", "../db/compose.yml", "apps/web")
            .unwrap_err();
        assert!(matches!(e, FileError::Escapes { .. }), "{e:?}");
        assert!(e.to_string().contains("leaves the directory `apps/web`"));
        assert!(matches!(
            t.resolve("apps/web", "../../../x", ""),
            Err(FileError::Escapes { .. })
        ));
    }

    #[test]
    fn resolve_follows_symlinks_to_check_the_boundary() {
        let t = tree();
        let e = t.resolve("apps/web", "env", "apps/web").unwrap_err();
        assert_eq!(
            e,
            FileError::SymlinkEscapes {
                link: "apps/web/env".into(),
                target: "../../shared/common.env".into(),
                boundary: "apps/web".into()
            }
        );
        assert!(
            e.to_string()
                .starts_with("symlink leaves the app directory")
        );
        // inside the project root it is fine
        assert_eq!(t.resolve("apps/web", "env", "").unwrap(), "apps/web/env");
        // through a symlinked directory
        assert!(matches!(
            t.resolve("apps/web", "dblink/compose.yml", "apps/web"),
            Err(FileError::SymlinkEscapes { .. })
        ));
        assert!(matches!(
            t.resolve("apps/web", "outside", ""),
            Err(FileError::SymlinkEscapes { .. })
        ));
        assert_eq!(
            t.resolve("apps/web", "inside", "apps/web").unwrap(),
            "apps/web/inside"
        );
    }

    #[test]
    fn read_text_reports_line_of_bad_utf8() {
        let t = FileTree::from_files([("a.yml", b"ok: 1\nbad: \xff\xfe\n".to_vec())]);
        let e = t.read_text("a.yml").unwrap_err();
        assert_eq!(
            e,
            FileError::NotUtf8 {
                path: "a.yml".into(),
                line: 2,
                byte_offset: 11
            }
        );
        assert!(e.to_string().contains("line 2"));
    }

    #[test]
    fn too_large_files_have_no_content() {
        let mut t = FileTree::new();
        t.add_file("big.yml", vec![b'a'; 3 * 1024 * 1024]);
        assert_eq!(t.entry("big.yml"), Some(&Entry::TooLarge(3 * 1024 * 1024)));
        assert!(matches!(
            t.read("big.yml"),
            Err(FileError::TooLarge { size, limit, .. }) if size == 3 * 1024 * 1024 && limit == 2 * 1024 * 1024
        ));
        assert_eq!(t.file_size("big.yml"), Some(3 * 1024 * 1024));
    }

    #[cfg(unix)]
    #[test]
    fn read_dir_records_symlinks_and_skips_vcs_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git/objects")).unwrap();
        std::fs::write(root.join(".git/HEAD"), "ref: x").unwrap();
        std::fs::create_dir_all(root.join("apps/web/node_modules/x")).unwrap();
        std::fs::write(root.join("apps/web/node_modules/x/a.js"), "x").unwrap();
        std::fs::write(root.join("apps/web/compose.yml"), "services: {}\n").unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("big.bin"), vec![0u8; 100]).unwrap();
        std::os::unix::fs::symlink("../../big.bin", root.join("apps/web/link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();

        let limits = TreeLimits {
            max_file_bytes: 50,
            ..TreeLimits::default()
        };
        let t = FileTree::read_dir(root, &limits).unwrap();
        let files: Vec<&str> = t.list_under("").collect();
        assert_eq!(
            files,
            ["abs", "apps/web/compose.yml", "apps/web/link", "big.bin"]
        );
        assert_eq!(
            t.entry("apps/web/link"),
            Some(&Entry::Symlink("../../big.bin".into()))
        );
        assert_eq!(t.entry("big.bin"), Some(&Entry::TooLarge(100)));
        assert!(t.is_dir("empty"));
        assert!(t.entry(".git").is_none());
        assert_eq!(t.read("apps/web/compose.yml").unwrap(), b"services: {}\n");
        assert!(matches!(
            t.read("apps/web/link"),
            Err(FileError::TooLarge { limit: 50, .. })
        ));
        assert!(matches!(
            t.read("abs"),
            Err(FileError::SymlinkEscapes { .. })
        ));
    }

    #[test]
    fn read_dir_enforces_count_and_total_limits() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("f{i}")), "0123456789").unwrap();
        }
        let few = TreeLimits {
            max_files: 4,
            ..TreeLimits::default()
        };
        let e = FileTree::read_dir(dir.path(), &few).unwrap_err();
        assert!(
            matches!(e, SourceError::TooManyFiles { limit: 4, .. }),
            "{e}"
        );
        let small = TreeLimits {
            max_total_bytes: 45,
            ..TreeLimits::default()
        };
        let e = FileTree::read_dir(dir.path(), &small).unwrap_err();
        assert!(
            matches!(e, SourceError::TooManyBytes { limit: 45, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("45 bytes"));
        let e = FileTree::read_dir(&dir.path().join("f0"), &TreeLimits::default()).unwrap_err();
        assert!(matches!(e, SourceError::NotADirectory(_)));
    }
}
