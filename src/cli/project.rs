//! Resolves where the project is (`-C`, `KOMPOX_ROOT`, `KOMPOX_DIR`, the
//! KOM path flags) once, then snapshots its files and loads it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::GlobalArgs;
use kompox::kom::{self, Project, ProjectEnv};
use kompox::source::{FileTree, TreeLimits};

/// A loaded project and what it was loaded from.
pub struct Loaded {
    pub tree: FileTree,
    pub project: Result<Project, Vec<kompox::diag::Diagnostic>>,
    pub root: PathBuf,
}

/// The directory the command runs in (`-C` applied).
pub fn working_dir(g: &GlobalArgs) -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(match &g.chdir {
        Some(d) => {
            let p = cwd.join(d);
            if !p.is_dir() {
                bail!("-C {d}: no such directory");
            }
            p
        }
        None => cwd,
    })
}

pub fn load(g: &GlobalArgs) -> anyhow::Result<Loaded> {
    let cwd = canonical(&working_dir(g)?)?;
    let root = match &g.kompox_root {
        Some(r) => canonical(&cwd.join(expand(r, None, None)))?,
        None => find_root(&cwd)?,
    };
    let kdir = match &g.kompox_dir {
        Some(d) => canonical(&cwd.join(expand(d, Some(&root), None)))?,
        None => root.join(".kompox"),
    };
    if !kdir.is_dir() {
        bail!(
            "KOMPOX_DIR `{}` is not a directory (run `kompoxops init` to create one)",
            kdir.display()
        );
    }
    let rel = |p: &Path, what: &str| -> anyhow::Result<String> {
        let p = if p.exists() {
            canonical(p)?
        } else {
            p.to_path_buf()
        };
        match p.strip_prefix(&root) {
            Ok(r) => Ok(r.to_string_lossy().replace('\\', "/")),
            Err(_) => bail!(
                "{what} `{}` is outside the project root `{}`",
                p.display(),
                root.display()
            ),
        }
    };
    let cwd_rel = rel(&cwd, "the working directory")?;
    let kdir_rel = rel(&kdir, "KOMPOX_DIR")?;
    // Flag and env paths are relative to the working directory; KOM works
    // with root-relative paths, so convert them here.
    let to_root = |p: &str| -> anyhow::Result<String> {
        let expanded = expand(p, Some(&root), Some(&kdir));
        if expanded.contains("://") {
            return Ok(expanded);
        }
        rel(&cwd.join(&expanded), "KOM path")
    };
    let kom_path_flag = g
        .kom_path
        .iter()
        .map(|p| to_root(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let kom_path_env = match std::env::var("KOMPOX_KOM_PATH") {
        Ok(v) if !v.trim().is_empty() => v
            .split([':', ','])
            .filter(|s| !s.trim().is_empty())
            .map(|p| to_root(p.trim()))
            .collect::<anyhow::Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    let kom_app = g.kom_app.as_deref().map(to_root).transpose()?;
    let tree = FileTree::read_dir(&root, &TreeLimits::default())
        .with_context(|| format!("cannot read the project at `{}`", root.display()))?;
    let env = ProjectEnv {
        cwd: cwd_rel,
        kompox_dir: kdir_rel,
        kom_path_flag,
        kom_path_env,
        kom_app,
    };
    let project = kom::load_project(&tree, &env);
    Ok(Loaded {
        tree,
        project,
        root,
    })
}

fn canonical(p: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("no such directory `{}`", p.display()))
}

/// Walks up like git does to the first directory holding `.kompox/`.
fn find_root(start: &Path) -> anyhow::Result<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if d.join(".kompox").is_dir() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    bail!(
        "no `.kompox/` directory in `{}` or any parent (run `kompoxops init`, or pass --kompox-root)",
        start.display()
    )
}

/// Expands `$KOMPOX_ROOT` / `$KOMPOX_DIR` in a flag value (reference §3.9).
fn expand(v: &str, root: Option<&Path>, kdir: Option<&Path>) -> String {
    let mut s = v.to_string();
    for (name, val) in [("KOMPOX_ROOT", root), ("KOMPOX_DIR", kdir)] {
        if let Some(val) = val {
            let val = val.to_string_lossy();
            s = s
                .replace(&format!("${{{name}}}"), &val)
                .replace(&format!("${name}"), &val);
        }
    }
    s
}
