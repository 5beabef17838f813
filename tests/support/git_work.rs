//! A Git work directory for the tests (shared by the `git http-backend`
//! server and the Gitea harness): `git` run with only the test's own
//! configuration, and a work tree whose `origin` is a test repository.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `git` in `dir` with only the test's own configuration (no system or
/// global config, no prompts, a fixed author); panics with git's stderr if
/// it fails. Returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Kompox Test")
        .env("GIT_AUTHOR_EMAIL", "test@kompox.invalid")
        .env("GIT_COMMITTER_NAME", "Kompox Test")
        .env("GIT_COMMITTER_EMAIL", "test@kompox.invalid")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A work directory whose `origin` is a test repository (a bare one by
/// path, or a forge's URL): write and commit files, switch branches, push,
/// force-push, push any ref.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    /// `git init -b main` in a new temp dir, `origin` = `remote`.
    pub fn new(remote: &(impl AsRef<std::ffi::OsStr> + ?Sized)) -> Workdir {
        let dir = tempfile::Builder::new()
            .prefix("kompox-git-work-")
            .tempdir()
            .unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        let remote = remote.as_ref().to_str().expect("a UTF-8 remote");
        git(dir.path(), &["remote", "add", "origin", remote]);
        Workdir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(self.dir.path(), args)
    }

    /// Writes a file (parents created).
    pub fn write(&self, path: &str, content: &str) -> &Self {
        let path = self.dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.dir.path().join(path)).unwrap();
        self
    }

    /// Commits everything (additions and removals); returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Pushes HEAD to `branch` (fast-forward only).
    pub fn push(&self, branch: &str) {
        self.git(&["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")]);
    }

    /// Pushes HEAD to `branch`, rewriting its history.
    pub fn force_push(&self, branch: &str) {
        self.git(&[
            "push",
            "-q",
            "--force",
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
        ]);
    }

    /// Pushes HEAD to any ref, e.g. `refs/pull/1/head` as a forge does.
    pub fn push_ref(&self, refname: &str) {
        self.git(&[
            "push",
            "-q",
            "--force",
            "origin",
            &format!("HEAD:{refname}"),
        ]);
    }

    /// Moves the current branch to `rev`, files included.
    pub fn reset_hard(&self, rev: &str) {
        self.git(&["reset", "-q", "--hard", rev]);
    }

    /// Switches to (a new or reset) local branch `branch` at `start`.
    pub fn switch(&self, branch: &str, start: &str) {
        self.git(&["checkout", "-q", "-B", branch, start]);
    }
}
