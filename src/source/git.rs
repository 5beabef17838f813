//! Source stage (I/O): one branch of a Git repository, kept checked out in a
//! cache directory.
//!
//! [`GitSource::sync`] clones on first use and afterwards fetches only the
//! configured branch, incrementally (the objects already in the cache are
//! offered to the server as "haves"), then writes the branch tip's files to
//! a work tree that [`FileTree::read_dir`](super::FileTree::read_dir) reads.
//! What it guarantees:
//!
//! * the work tree is exactly the tip's tree: a force-pushed branch is
//!   followed (the local ref is overwritten, never merged), files deleted
//!   upstream disappear, stray files do not survive;
//! * credentials come from the caller (who reads them from files or the
//!   environment, in-cluster from mounted Secrets), never from the
//!   repository; the token never appears in an error, a log line or a
//!   `Debug` output, and URLs are shown without their userinfo;
//! * SSH host keys are checked against the `known_hosts` file given in
//!   [`GitAuth::SshKey`] only (not `~/.ssh/known_hosts`); unknown or changed
//!   keys are refused;
//! * errors say what went wrong in terms a person can act on
//!   ([`GitError`]), and whether retrying may help
//!   ([`GitError::is_retryable`]);
//! * a corrupt cache (killed mid-fetch, disk trouble) is thrown away and
//!   cloned again, once per call.
//!
//! Everything here blocks (libgit2): async callers use `spawn_blocking`.
//!
//! Cache layout (one [`GitSource`] per cache directory):
//!
//! ```text
//! cache_dir/repo.git/            bare repository: objects and refs
//! cache_dir/worktree/            files of the branch tip (sync)
//! cache_dir/checkouts/<name>/    files of a ref (checkout_ref)
//! cache_dir/tmp/                 staging for replacing a work tree
//! ```

mod known_hosts;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::source::FileTree;
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, ErrorClass, ErrorCode,
    FetchOptions, ObjectType, Oid, ProxyOptions, RemoteCallbacks, Repository, Tree,
};

use known_hosts::{KnownHosts, Verdict};

/// Which repository and branch to follow, and how to authenticate.
#[derive(Clone, PartialEq, Eq)]
pub struct GitSpec {
    /// `https://…`, `http://…`, `ssh://[user@]host[:port]/path`,
    /// `[user@]host:path` (scp-like), or a local path / `file://` URL.
    pub url: String,
    /// The one branch that is the desired state (e.g. `main`).
    pub branch: String,
    pub auth: GitAuth,
}

/// Credentials, as read by the caller from files or the environment.
#[derive(Clone, PartialEq, Eq)]
pub enum GitAuth {
    /// Public repositories and local paths.
    None,
    /// HTTP(S) basic authentication with a token as the password (GitHub:
    /// any username, e.g. `x-access-token`; GitLab: `oauth2`; Gitea: the
    /// user's name).
    Token { username: String, token: String },
    /// SSH public-key authentication. The server's host key must be listed
    /// in `known_hosts` (OpenSSH format); nothing else is trusted. The key
    /// must not have a passphrase.
    SshKey {
        private_key: PathBuf,
        known_hosts: PathBuf,
    },
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitAuth::None => f.write_str("None"),
            GitAuth::Token { username, .. } => f
                .debug_struct("Token")
                .field("username", username)
                .field("token", &"<redacted>")
                .finish(),
            GitAuth::SshKey {
                private_key,
                known_hosts,
            } => f
                .debug_struct("SshKey")
                .field("private_key", private_key)
                .field("known_hosts", known_hosts)
                .finish(),
        }
    }
}

impl fmt::Debug for GitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitSpec")
            .field("url", &redact_url(&self.url))
            .field("branch", &self.branch)
            .field("auth", &self.auth)
            .finish()
    }
}

/// A commit checked out on disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    /// The commit id, 40 hex digits.
    pub commit: String,
    /// The directory holding the commit's files (no `.git` inside).
    pub dir: PathBuf,
}

/// What the last download transferred; `None` from
/// [`GitSource::last_fetch`] when the tip was already in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchStats {
    /// Objects the server sent.
    pub received_objects: usize,
    pub received_bytes: usize,
}

/// Why a Git operation failed. Every message names the repository by its
/// URL without userinfo and never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{url}: authentication refused: {reason}")]
    AuthRejected { url: String, reason: String },
    #[error(
        "{url}: the SSH host key of {host} is not in `{}`: the server offered {key_type} {fingerprint}{}; check that fingerprint with the server's owner, then add the key to that file",
        known_hosts.display(),
        listed_types(known_types)
    )]
    HostKeyUnknown {
        url: String,
        /// As known_hosts names it: `host` or `[host]:port`.
        host: String,
        known_hosts: PathBuf,
        key_type: String,
        fingerprint: String,
        /// Key types the file does list for this host.
        known_types: Vec<String>,
    },
    #[error(
        "{url}: the SSH host key of {host} does not match `{}`: the server offered {key_type} {fingerprint}, the file lists {}; the server's key changed or the connection is intercepted",
        known_hosts.display(),
        expected.join(", ")
    )]
    HostKeyMismatch {
        url: String,
        host: String,
        known_hosts: PathBuf,
        key_type: String,
        fingerprint: String,
        expected: Vec<String>,
    },
    #[error(
        "{url}: the SSH host key {key_type} {fingerprint} of {host} is marked @revoked in `{}`",
        known_hosts.display()
    )]
    HostKeyRevoked {
        url: String,
        host: String,
        known_hosts: PathBuf,
        key_type: String,
        fingerprint: String,
    },
    #[error("{url}: network error (a retry may help): {message}")]
    Network { url: String, message: String },
    #[error("{url}: repository not found (or not readable with these credentials)")]
    RepositoryNotFound { url: String },
    #[error("{url}: branch `{branch}` not found")]
    BranchNotFound { url: String, branch: String },
    #[error("{url}: ref `{refname}` not found")]
    RefNotFound { url: String, refname: String },
    #[error("cannot read the {what} `{}`: {source}", path.display())]
    CredentialFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The spec or an argument cannot work (scheme vs credentials, names).
    #[error("{0}")]
    Config(String),
    #[error(
        "the Git cache `{}` is corrupt and cloning again did not help: {message}",
        path.display()
    )]
    CorruptCache { path: PathBuf, message: String },
    #[error("cannot write the Git cache at `{}`: {source}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown revision `{rev}` (not fetched yet?)")]
    UnknownRevision { rev: String },
    #[error("commits `{base}` and `{head}` have no common ancestor")]
    NoMergeBase { base: String, head: String },
    #[error("commit {commit} has the unsafe path `{path}`; refusing to check it out")]
    UnsafePath { commit: String, path: String },
    #[error("{url}: {message}")]
    Other { url: String, message: String },
}

fn listed_types(types: &[String]) -> String {
    if types.is_empty() {
        String::new()
    } else {
        format!(" (the file lists only {} for it)", types.join(", "))
    }
}

impl GitError {
    /// Whether the same call may succeed later without a change of
    /// configuration (network trouble, a full disk). Everything else needs
    /// a person: credentials, host keys, names.
    pub fn is_retryable(&self) -> bool {
        matches!(self, GitError::Network { .. } | GitError::Cache { .. })
    }
}

/// A Git repository source; see the module documentation.
#[derive(Debug)]
pub struct GitSource {
    spec: GitSpec,
    cache_dir: PathBuf,
    last_fetch: Option<FetchStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Http,
    Ssh,
    Local,
}

/// Where the URL points, parsed just enough to pick credentials and to find
/// the host in known_hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    transport: Transport,
    host: String,
    port: u16,
    user: Option<String>,
}

/// A host key the certificate callback refused, for the error message
/// (libgit2 replaces the callback's own error with a generic one).
#[derive(Debug, Clone)]
struct HostKeyRefusal {
    verdict: Verdict,
    key_type: String,
    fingerprint: String,
}

/// The spec, checked before any network traffic.
#[derive(Debug)]
struct Checked {
    endpoint: Endpoint,
    /// Parsed from the file in [`GitAuth::SshKey`].
    known_hosts: Option<KnownHosts>,
}

/// What the callbacks saw during one operation, to classify its failure.
#[derive(Debug, Default)]
struct Observed {
    /// Times a secret (token or key) was handed out; a second request
    /// means the first was rejected.
    secret_attempts: Cell<u32>,
    no_credentials: Cell<bool>,
    host_key: RefCell<Option<HostKeyRefusal>>,
}

/// libgit2 waits forever on a silent server by default; a controller must
/// not. Connect: 30 s; no data for 5 minutes: give up.
fn set_libgit2_timeouts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: these write two global ints in libgit2 without locking.
        // Every libgit2 operation of this crate runs through a GitSource,
        // whose constructor waits here until the write is done, so no
        // operation of ours reads them concurrently.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(30_000);
            let _ = git2::opts::set_server_timeout_in_milliseconds(300_000);
        }
    });
}

impl GitSource {
    /// A source caching into `cache_dir` (created on first use). Nothing is
    /// checked or fetched until [`GitSource::sync`].
    pub fn new(spec: GitSpec, cache_dir: PathBuf) -> Self {
        set_libgit2_timeouts();
        GitSource {
            spec,
            cache_dir,
            last_fetch: None,
        }
    }

    pub fn spec(&self) -> &GitSpec {
        &self.spec
    }

    /// Transfer figures of the last download by `sync`/`checkout_ref`;
    /// `None` when the last call found the tip already cached.
    pub fn last_fetch(&self) -> Option<FetchStats> {
        self.last_fetch
    }

    /// Clones on first use (into cache_dir), afterwards fetches only
    /// `branch` incrementally; checks the branch tip out into
    /// `cache_dir/worktree` and returns its [`Revision`]. When the tip is
    /// unchanged only the ref advertisement is fetched and the work tree is
    /// left as is. Blocking: callers wrap it in `spawn_blocking`.
    pub fn sync(&mut self) -> Result<Revision, GitError> {
        let branch = self.spec.branch.clone();
        if branch.is_empty() || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
            return Err(GitError::Config(format!(
                "`{branch}` is not a valid branch name"
            )));
        }
        let remote_ref = format!("refs/heads/{branch}");
        let local_ref = format!("refs/remotes/origin/{branch}");
        self.with_recovery(|this, repo, checked| {
            let oid = this.fetch(repo, checked, &remote_ref, &local_ref, |url| {
                GitError::BranchNotFound {
                    url,
                    branch: branch.clone(),
                }
            })?;
            this.export(repo, oid, "worktree")
        })
    }

    /// Paths changed between two commits (merge-base(base, head) .. head),
    /// for pull-request planning: what the pull request changes, not what
    /// the base branch gained meanwhile. Both must have been fetched
    /// (`sync`, `checkout_ref`); they are commit ids or local ref names.
    /// A renamed file is listed under both names; the list is sorted.
    pub fn changed_paths(&self, base: &str, head: &str) -> Result<Vec<PathBuf>, GitError> {
        let repo =
            Repository::open_bare(self.repo_dir()).map_err(|_| GitError::UnknownRevision {
                rev: base.to_string(),
            })?;
        diff_since_merge_base(&repo, base, head, |e| self.local_error(e))
    }

    /// Fetches an arbitrary ref (e.g. `refs/pull/7/head`) and checks that
    /// commit out into a separate work tree, `cache_dir/checkouts/<dir_name>`
    /// (`dir_name`: letters, digits, `.`, `_`, `-`); returns its Revision.
    /// The commit stays in the cache for [`GitSource::changed_paths`].
    pub fn checkout_ref(&mut self, refspec: &str, dir_name: &str) -> Result<Revision, GitError> {
        if !refspec.starts_with("refs/") || !git2::Reference::is_valid_name(refspec) {
            return Err(GitError::Config(format!(
                "`{refspec}` is not a full ref name such as `refs/pull/7/head`"
            )));
        }
        if !valid_dir_name(dir_name) {
            return Err(GitError::Config(format!(
                "`{dir_name}` cannot name a checkout: use letters, digits, `.`, `_` and `-`, not starting with `.`"
            )));
        }
        let local_ref = format!("refs/kompox/fetched/{dir_name}");
        let dest = format!("checkouts/{dir_name}");
        self.with_recovery(|this, repo, checked| {
            let oid = this.fetch(repo, checked, refspec, &local_ref, |url| {
                GitError::RefNotFound {
                    url,
                    refname: refspec.to_string(),
                }
            })?;
            this.export(repo, oid, &dest)
        })
    }

    fn repo_dir(&self) -> PathBuf {
        self.cache_dir.join("repo.git")
    }

    fn url(&self) -> String {
        redact_url(&self.spec.url)
    }

    /// Runs `op` on the cached repository; if the cache turns out to be
    /// corrupt, removes it and runs `op` once more on a fresh clone.
    fn with_recovery(
        &mut self,
        mut op: impl FnMut(&mut Self, &Repository, &Checked) -> Result<Revision, GitError>,
    ) -> Result<Revision, GitError> {
        let checked = self.check_spec()?;
        self.last_fetch = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .open_or_init()
                .and_then(|repo| op(self, &repo, &checked));
            match result {
                Err(GitError::CorruptCache { path, message }) if attempt == 1 => {
                    tracing::warn!(
                        cache = %path.display(),
                        %message,
                        "the Git cache is corrupt; cloning again"
                    );
                    let dir = self.repo_dir();
                    std::fs::remove_dir_all(&dir)
                        .map_err(|source| GitError::Cache { path: dir, source })?;
                }
                other => return other,
            }
        }
    }

    /// Checks that the URL and the credentials fit together, and that the
    /// credential files are readable, before any network traffic.
    fn check_spec(&self) -> Result<Checked, GitError> {
        let endpoint = parse_endpoint(&self.spec.url).ok_or_else(|| {
            GitError::Config(format!(
                "`{}` is not a Git URL Kompox can use (https://, http://, ssh://, user@host:path, file:// or a local path)",
                self.url()
            ))
        })?;
        match (&self.spec.auth, endpoint.transport) {
            (GitAuth::Token { .. }, Transport::Http) => {}
            (GitAuth::Token { .. }, _) => {
                return Err(GitError::Config(format!(
                    "{}: a token authenticates HTTP(S) URLs only",
                    self.url()
                )));
            }
            (GitAuth::SshKey { .. }, Transport::Ssh) => {}
            (GitAuth::SshKey { .. }, _) => {
                return Err(GitError::Config(format!(
                    "{}: an SSH key authenticates ssh:// and user@host:path URLs only",
                    self.url()
                )));
            }
            (GitAuth::None, Transport::Ssh) => {
                return Err(GitError::Config(format!(
                    "{}: SSH needs a key and a known_hosts file (GitAuth::SshKey)",
                    self.url()
                )));
            }
            (GitAuth::None, _) => {}
        }
        let mut known_hosts = None;
        if let GitAuth::SshKey {
            private_key,
            known_hosts: file,
        } = &self.spec.auth
        {
            std::fs::metadata(private_key).map_err(|source| GitError::CredentialFile {
                what: "SSH private key",
                path: private_key.clone(),
                source,
            })?;
            let text =
                std::fs::read_to_string(file).map_err(|source| GitError::CredentialFile {
                    what: "known_hosts file",
                    path: file.clone(),
                    source,
                })?;
            known_hosts = Some(KnownHosts::parse(&text));
        }
        Ok(Checked {
            endpoint,
            known_hosts,
        })
    }

    fn open_or_init(&self) -> Result<Repository, GitError> {
        let dir = self.repo_dir();
        std::fs::create_dir_all(&self.cache_dir).map_err(|source| GitError::Cache {
            path: self.cache_dir.clone(),
            source,
        })?;
        if !dir.exists() {
            tracing::info!(url = %self.url(), cache = %dir.display(), "cloning");
            // Failing to create a repository is a disk problem (permissions,
            // space), not corruption: cloning again would not help.
            return Repository::init_bare(&dir).map_err(|e| GitError::Cache {
                path: dir,
                source: std::io::Error::other(e.message().to_string()),
            });
        }
        match Repository::open_bare(&dir) {
            Ok(repo) if repo.is_bare() => Ok(repo),
            Ok(_) => Err(GitError::CorruptCache {
                path: dir,
                message: "not a bare repository".into(),
            }),
            Err(e) => Err(GitError::CorruptCache {
                path: dir,
                message: e.message().to_string(),
            }),
        }
    }

    /// Fetches `remote_ref` into `local_ref` (forced: a force-pushed ref is
    /// followed) and returns the commit it points to. Downloads nothing when
    /// that commit is already cached.
    fn fetch(
        &mut self,
        repo: &Repository,
        checked: &Checked,
        remote_ref: &str,
        local_ref: &str,
        missing: impl FnOnce(String) -> GitError,
    ) -> Result<Oid, GitError> {
        let observed = Observed::default();
        let mut remote = repo
            .remote_anonymous(&self.spec.url)
            .map_err(|e| self.remote_error(&e, &observed))?;
        let mut stats = None;
        let oid = {
            let mut options = FetchOptions::new();
            options
                .remote_callbacks(callbacks(&self.spec.auth, checked, &observed))
                .proxy_options(proxy())
                .download_tags(AutotagOption::None)
                .update_fetchhead(false);
            let mut connection = remote
                .connect_auth(
                    Direction::Fetch,
                    Some(callbacks(&self.spec.auth, checked, &observed)),
                    Some(proxy()),
                )
                .map_err(|e| self.remote_error(&e, &observed))?;
            let advertised = connection
                .list()
                .map_err(|e| self.remote_error(&e, &observed))?
                .iter()
                .find(|head| head.name() == remote_ref)
                .map(|head| head.oid());
            let Some(oid) = advertised else {
                return Err(missing(self.url()));
            };
            if repo.find_commit(oid).is_err() {
                let refspec = format!("+{remote_ref}:{local_ref}");
                connection
                    .remote()
                    .download(&[refspec.as_str()], Some(&mut options))
                    .map_err(|e| self.remote_error(&e, &observed))?;
                let progress = connection.remote().stats();
                stats = Some(FetchStats {
                    received_objects: progress.received_objects(),
                    received_bytes: progress.received_bytes(),
                });
            }
            oid
        };
        self.last_fetch = stats;
        let object = repo
            .find_object(oid, None)
            .map_err(|e| GitError::CorruptCache {
                path: self.repo_dir(),
                message: format!("fetched {oid} but cannot read it: {}", e.message()),
            })?;
        if object.kind() != Some(ObjectType::Commit) {
            return Err(GitError::Other {
                url: self.url(),
                message: format!(
                    "`{remote_ref}` points to a {:?}, not a commit",
                    object.kind()
                ),
            });
        }
        repo.reference(local_ref, oid, true, "kompox: fetch")
            .map_err(|e| self.local_error(&e))?;
        tracing::debug!(url = %self.url(), %remote_ref, commit = %oid, ?stats, "fetched");
        Ok(oid)
    }

    /// Writes the files of `commit` to `cache_dir/<dest>`, replacing what
    /// was there, unless that commit is already checked out there.
    fn export(&self, repo: &Repository, commit: Oid, dest: &str) -> Result<Revision, GitError> {
        let dir = self.cache_dir.join(dest);
        let revision = Revision {
            commit: commit.to_string(),
            dir: dir.clone(),
        };
        // Which commit the directory holds, kept as a ref so that it goes
        // away with the repository when the cache is rebuilt.
        let marker = format!("refs/kompox/checked-out/{dest}");
        if dir.is_dir() && repo.refname_to_id(&marker).ok() == Some(commit) {
            return Ok(revision);
        }
        let tree = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| self.local_error(&e))?;
        let tmp = self.cache_dir.join("tmp");
        let key = dest.replace('/', "-");
        let staging = tmp.join(format!("{key}.new"));
        let old = tmp.join(format!("{key}.old"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| GitError::Cache { path, source }
        };
        for leftover in [&staging, &old] {
            if leftover.exists() {
                std::fs::remove_dir_all(leftover).map_err(io(leftover))?;
            }
        }
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        write_tree(repo, &tree, &staging, "", commit).map_err(|e| match e {
            Export::Git(e) => self.local_error(&e),
            Export::Other(e) => e,
        })?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        if dir.exists() {
            std::fs::rename(&dir, &old).map_err(io(&dir))?;
        }
        std::fs::rename(&staging, &dir).map_err(io(&dir))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        repo.reference(&marker, commit, true, "kompox: checkout")
            .map_err(|e| self.local_error(&e))?;
        tracing::info!(url = %self.url(), %commit, dir = %dir.display(), "checked out");
        Ok(revision)
    }

    /// A libgit2 failure on the cache itself (an object or ref that cannot
    /// be read or written): treated as corruption, so the caller clones
    /// again once.
    fn local_error(&self, e: &git2::Error) -> GitError {
        GitError::CorruptCache {
            path: self.repo_dir(),
            message: scrub(e.message(), &self.spec),
        }
    }

    /// Turns a failure of a network operation into what the user can act
    /// on, using what the callbacks observed first (libgit2 replaces their
    /// errors with generic ones).
    fn remote_error(&self, e: &git2::Error, observed: &Observed) -> GitError {
        let url = self.url();
        let message = scrub(e.message(), &self.spec);
        if let Some(refusal) = observed.host_key.borrow_mut().take() {
            return self.host_key_error(refusal);
        }
        if observed.secret_attempts.get() > 1 {
            let reason = match self.spec.auth {
                GitAuth::SshKey { .. } => "the SSH key was not accepted",
                _ => "the token was not accepted",
            };
            return GitError::AuthRejected {
                url,
                reason: reason.into(),
            };
        }
        if observed.no_credentials.get() {
            let reason = if secrets(&self.spec).is_empty() {
                "the server asks for credentials and none are configured"
            } else {
                "the credentials in the URL were not accepted"
            };
            return GitError::AuthRejected {
                url,
                reason: reason.into(),
            };
        }
        let lower = message.to_ascii_lowercase();
        match (e.code(), e.class()) {
            (ErrorCode::Auth, _) => GitError::AuthRejected {
                url,
                reason: message,
            },
            (ErrorCode::Certificate, _) => GitError::Other { url, message },
            (_, ErrorClass::Http) if lower.contains("status code: 404") => {
                GitError::RepositoryNotFound { url }
            }
            (_, ErrorClass::Http)
                if lower.contains("status code: 401") || lower.contains("status code: 403") =>
            {
                GitError::AuthRejected {
                    url,
                    reason: message,
                }
            }
            (_, ErrorClass::Ssh)
                if lower.contains("does not appear to be a git repository")
                    || lower.contains("repository not found") =>
            {
                GitError::RepositoryNotFound { url }
            }
            (_, ErrorClass::Repository) if lower.contains("not found") && self.is_local() => {
                GitError::RepositoryNotFound { url }
            }
            (
                _,
                ErrorClass::Net
                | ErrorClass::Http
                | ErrorClass::Ssh
                | ErrorClass::Os
                | ErrorClass::Ssl,
            ) => GitError::Network { url, message },
            (ErrorCode::Locked, _)
            | (
                _,
                ErrorClass::Odb
                | ErrorClass::Object
                | ErrorClass::Zlib
                | ErrorClass::Indexer
                | ErrorClass::Reference
                | ErrorClass::Filesystem,
            ) => GitError::CorruptCache {
                path: self.repo_dir(),
                message,
            },
            _ => GitError::Other { url, message },
        }
    }

    fn is_local(&self) -> bool {
        parse_endpoint(&self.spec.url).is_some_and(|e| e.transport == Transport::Local)
    }

    fn host_key_error(&self, refusal: HostKeyRefusal) -> GitError {
        let GitAuth::SshKey { known_hosts, .. } = &self.spec.auth else {
            return GitError::Other {
                url: self.url(),
                message: "SSH host key refused".into(),
            };
        };
        let endpoint = parse_endpoint(&self.spec.url);
        let host = endpoint
            .map(|e| known_hosts::host_key_name(&e.host, e.port))
            .unwrap_or_default();
        let HostKeyRefusal {
            verdict,
            key_type,
            fingerprint,
        } = refusal;
        let (url, known_hosts) = (self.url(), known_hosts.clone());
        match verdict {
            Verdict::Unknown { known_types } => GitError::HostKeyUnknown {
                url,
                host,
                known_hosts,
                key_type,
                fingerprint,
                known_types,
            },
            Verdict::Mismatch { expected } => GitError::HostKeyMismatch {
                url,
                host,
                known_hosts,
                key_type,
                fingerprint,
                expected,
            },
            Verdict::Revoked => GitError::HostKeyRevoked {
                url,
                host,
                known_hosts,
                key_type,
                fingerprint,
            },
            // Not recorded as a refusal by the callback; kept total.
            Verdict::Trusted => GitError::Other {
                url,
                message: format!("SSH host key {key_type} {fingerprint} of {host} refused"),
            },
        }
    }
}

/// Callbacks for one network operation: credentials from the spec (each
/// secret handed out once: a second request means it was rejected, and
/// asking again would only loop), host keys from the known_hosts file.
fn callbacks<'a>(
    auth: &'a GitAuth,
    checked: &'a Checked,
    observed: &'a Observed,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_url, user_from_url, allowed| {
        let refuse = |message: &str| {
            Err(git2::Error::new(
                ErrorCode::Auth,
                ErrorClass::Callback,
                message,
            ))
        };
        let user = user_from_url
            .or(checked.endpoint.user.as_deref())
            .unwrap_or("git");
        // SSH asks for the user name first when the URL has none.
        if allowed.contains(CredentialType::USERNAME)
            && !allowed.intersects(CredentialType::SSH_KEY | CredentialType::USER_PASS_PLAINTEXT)
        {
            return Cred::username(user);
        }
        let hand_out = || {
            let n = observed.secret_attempts.get() + 1;
            observed.secret_attempts.set(n);
            n == 1
        };
        match auth {
            GitAuth::None => {
                observed.no_credentials.set(true);
                refuse("the server asks for credentials and none are configured")
            }
            GitAuth::Token { username, token } => {
                if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                    return refuse("the server offers no password authentication");
                }
                if !hand_out() {
                    return refuse("the token was not accepted");
                }
                Cred::userpass_plaintext(username, token)
            }
            GitAuth::SshKey { private_key, .. } => {
                if !allowed.contains(CredentialType::SSH_KEY) {
                    return refuse("the server offers no public-key authentication");
                }
                if !hand_out() {
                    return refuse("the SSH key was not accepted");
                }
                Cred::ssh_key(user, None, private_key, None)
            }
        }
    });
    // Without a progress callback libgit2 does not count received bytes.
    callbacks.transfer_progress(|_| true);
    callbacks.certificate_check(move |cert, _host| {
        // TLS certificates: libgit2's own validation (system trust store).
        let Some(hostkey) = cert.as_hostkey() else {
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let blob = hostkey.hostkey().unwrap_or_default();
        let verdict = match &checked.known_hosts {
            Some(known) => known.check(&checked.endpoint.host, checked.endpoint.port, blob),
            None => Verdict::Unknown {
                known_types: Vec::new(),
            },
        };
        if verdict == Verdict::Trusted {
            return Ok(CertificateCheckStatus::CertificateOk);
        }
        *observed.host_key.borrow_mut() = Some(HostKeyRefusal {
            verdict,
            key_type: known_hosts::key_type(blob).unwrap_or("unknown").to_string(),
            fingerprint: known_hosts::fingerprint(blob),
        });
        Err(git2::Error::new(
            ErrorCode::Certificate,
            ErrorClass::Ssh,
            "SSH host key not trusted",
        ))
    });
    callbacks
}

/// Proxies as git would find them (`http.proxy`, `https_proxy`, …).
fn proxy<'a>() -> ProxyOptions<'a> {
    let mut options = ProxyOptions::new();
    options.auto();
    options
}

fn parse_endpoint(url: &str) -> Option<Endpoint> {
    let local = Endpoint {
        transport: Transport::Local,
        host: String::new(),
        port: 0,
        user: None,
    };
    if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        let (transport, default_port) = match scheme.as_str() {
            "http" => (Transport::Http, 80),
            "https" => (Transport::Http, 443),
            "ssh" | "git+ssh" | "ssh+git" => (Transport::Ssh, 22),
            "file" => return Some(local),
            _ => return None,
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (
                Some(userinfo.split(':').next().unwrap_or_default().to_string()),
                host_port,
            ),
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port, default_port)?;
        return Some(Endpoint {
            transport,
            host,
            port,
            user,
        });
    }
    if url.starts_with('/') || url.starts_with('.') {
        return Some(local);
    }
    // scp-like `[user@]host:path`: a colon before any slash
    match url.split_once(':') {
        Some((before, _)) if !before.is_empty() && !before.contains('/') => {
            let (user, host) = match before.rsplit_once('@') {
                Some((user, host)) => (Some(user.to_string()), host),
                None => (None, before),
            };
            (!host.is_empty()).then(|| Endpoint {
                transport: Transport::Ssh,
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port: 22,
                user,
            })
        }
        _ => Some(local),
    }
}

fn split_host_port(host_port: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        Some("") | None => default_port,
        Some(port) => port.parse().ok()?,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// What a pull request changes in a local clone (a CI job's checkout):
/// the paths changed between merge-base(`base`, `head`) and `head`, as
/// [`GitSource::changed_paths`] does on the cache, and `head`'s commit
/// id. `repo_dir` may be any directory inside the work tree.
pub fn local_changed_paths(
    repo_dir: &Path,
    base: &str,
    head: &str,
) -> Result<(String, Vec<PathBuf>), GitError> {
    let repo = Repository::discover(repo_dir).map_err(|e| {
        GitError::Config(format!(
            "`{}` is not inside a Git work tree: {}",
            repo_dir.display(),
            e.message()
        ))
    })?;
    let local = |e: &git2::Error| GitError::Config(e.message().to_string());
    let head_id = repo
        .revparse_single(head)
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| GitError::UnknownRevision {
            rev: head.to_string(),
        })?
        .id()
        .to_string();
    let paths = diff_since_merge_base(&repo, base, head, local)?;
    Ok((head_id, paths))
}

/// The files of commit `rev` under directory `sub` (`""`: all), paths
/// relative to `sub`, from the repository holding `repo_dir` (a work tree
/// or a bare cache): the base of a pull request, read without a checkout.
pub fn tree_at(repo_dir: &Path, rev: &str, sub: &str) -> Result<FileTree, GitError> {
    let repo = Repository::open(repo_dir)
        .or_else(|_| Repository::discover(repo_dir))
        .map_err(|e| GitError::Config(e.message().to_string()))?;
    let tree = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_tree())
        .map_err(|_| GitError::UnknownRevision {
            rev: rev.to_string(),
        })?;
    let sub = sub.trim_matches('/');
    let prefix = if sub.is_empty() {
        String::new()
    } else {
        format!("{sub}/")
    };
    let mut out = FileTree::new();
    let mut failed = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() != Some(git2::ObjectType::Blob) {
            return git2::TreeWalkResult::Ok;
        }
        let path = format!("{dir}{}", entry.name().unwrap_or_default());
        let Some(rel) = path.strip_prefix(&prefix) else {
            return git2::TreeWalkResult::Ok;
        };
        match repo.find_blob(entry.id()) {
            Ok(blob) => {
                out.add_file(rel, blob.content().to_vec());
                git2::TreeWalkResult::Ok
            }
            Err(e) => {
                failed = Some(e);
                git2::TreeWalkResult::Abort
            }
        }
    })
    .map_err(|e| GitError::Config(e.message().to_string()))?;
    match failed {
        Some(e) => Err(GitError::Config(e.message().to_string())),
        None => Ok(out),
    }
}

/// The work tree root of the repository holding `dir`, if any.
pub fn work_tree_root(dir: &Path) -> Option<PathBuf> {
    Repository::discover(dir)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_path_buf))
}

fn diff_since_merge_base(
    repo: &Repository,
    base: &str,
    head: &str,
    local_error: impl Fn(&git2::Error) -> GitError,
) -> Result<Vec<PathBuf>, GitError> {
    let commit = |rev: &str| {
        repo.revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map_err(|_| GitError::UnknownRevision {
                rev: rev.to_string(),
            })
    };
    let (b, h) = (commit(base)?, commit(head)?);
    let mb = repo
        .merge_base(b.id(), h.id())
        .map_err(|e| match e.code() {
            ErrorCode::NotFound => GitError::NoMergeBase {
                base: base.to_string(),
                head: head.to_string(),
            },
            _ => local_error(&e),
        })?;
    let old = repo
        .find_commit(mb)
        .and_then(|c| c.tree())
        .map_err(|e| local_error(&e))?;
    let new = h.tree().map_err(|e| local_error(&e))?;
    let diff = repo
        .diff_tree_to_tree(Some(&old), Some(&new), None)
        .map_err(|e| local_error(&e))?;
    let mut paths = BTreeSet::new();
    for delta in diff.deltas() {
        paths.extend(delta.old_file().path().map(Path::to_path_buf));
        paths.extend(delta.new_file().path().map(Path::to_path_buf));
    }
    Ok(paths.into_iter().collect())
}

/// `url` as it may be shown: an HTTP(S) URL loses its userinfo (GitHub
/// accepts a token as the user name), other URLs their password.
pub fn redact_url(url: &str) -> String {
    let Some(index) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = (&url[..index], &url[index + 3..]);
    let end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let shown = if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        "***".to_string()
    } else {
        match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***"),
            None => userinfo.to_string(),
        }
    };
    format!("{scheme}://{shown}{}", &rest[at..])
}

/// A libgit2 message made safe to show: URLs in it redacted, and the
/// token and any password of the spec's URL replaced, wherever they occur.
fn scrub(text: &str, spec: &GitSpec) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find("://") {
        let head = &rest[..index];
        let start = head
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || "+-.".contains(*c)))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let after = &rest[index + 3..];
        let end = after
            .find(|c: char| c == '/' || c.is_whitespace() || "'\"<>()".contains(c))
            .unwrap_or(after.len());
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..index + 3 + end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    for secret in secrets(spec) {
        out = out.replace(&secret, "***");
    }
    out
}

/// Strings that must never be shown; short ones are left out (replacing
/// every `a` of a message would help nobody).
fn secrets(spec: &GitSpec) -> Vec<String> {
    let mut secrets = Vec::new();
    if let GitAuth::Token { token, .. } = &spec.auth {
        secrets.push(token.clone());
    }
    if let Some((scheme, rest)) = spec.url.split_once("://") {
        let authority = rest.split('/').next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            match userinfo.split_once(':') {
                Some((_, password)) => secrets.push(password.to_string()),
                None if scheme.to_ascii_lowercase().starts_with("http") => {
                    secrets.push(userinfo.to_string())
                }
                None => {}
            }
        }
    }
    secrets.retain(|s| s.len() >= 4);
    secrets
}

fn valid_dir_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A tree entry name that cannot climb out of, or into the metadata of,
/// the directory it is written to (git's own fsck rules).
fn safe_entry_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name != b"."
        && name != b".."
        && !name.eq_ignore_ascii_case(b".git")
        && !name.contains(&b'/')
        && !name.contains(&0)
}

enum Export {
    Git(git2::Error),
    Other(GitError),
}

impl From<git2::Error> for Export {
    fn from(e: git2::Error) -> Self {
        Export::Git(e)
    }
}

/// Writes `tree` under `dir` (which exists and is empty): files with their
/// executable bit, symlinks as symlinks (resolved later inside the
/// FileTree, never followed here), submodules as empty directories.
fn write_tree(
    repo: &Repository,
    tree: &Tree<'_>,
    dir: &Path,
    prefix: &str,
    commit: Oid,
) -> Result<(), Export> {
    for entry in tree.iter() {
        let name = entry.name_bytes();
        let shown = format!("{prefix}{}", String::from_utf8_lossy(name));
        let unsafe_path = |path: String| {
            Export::Other(GitError::UnsafePath {
                commit: commit.to_string(),
                path,
            })
        };
        if !safe_entry_name(name) {
            return Err(unsafe_path(shown));
        }
        let path = dir.join(file_name(name));
        let io = |source| {
            Export::Other(GitError::Cache {
                path: path.clone(),
                source,
            })
        };
        match entry.filemode() {
            0o040000 => {
                std::fs::create_dir(&path).map_err(io)?;
                let subtree = repo.find_tree(entry.id())?;
                write_tree(repo, &subtree, &path, &format!("{shown}/"), commit)?;
            }
            mode @ (0o100644 | 0o100664 | 0o100755) => {
                let blob = repo.find_blob(entry.id())?;
                write_file(&path, blob.content(), mode == 0o100755).map_err(io)?;
            }
            0o120000 => {
                let blob = repo.find_blob(entry.id())?;
                write_symlink(blob.content(), &path).map_err(io)?;
            }
            // A submodule: its commit is in another repository.
            0o160000 => std::fs::create_dir(&path).map_err(io)?,
            mode => return Err(unsafe_path(format!("{shown} (mode {mode:o})"))),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn file_name(name: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(name)
}

#[cfg(not(unix))]
fn file_name(name: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(name).into_owned().into()
}

fn write_file(path: &Path, content: &[u8], executable: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if executable { 0o755 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = executable;
    options.open(path)?.write_all(content)
}

#[cfg(unix)]
fn write_symlink(target: &[u8], path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(file_name(target), path)
}

/// Without symlinks the link is a file holding its target, as git does
/// with `core.symlinks=false`.
#[cfg(not(unix))]
fn write_symlink(target: &[u8], path: &Path) -> std::io::Result<()> {
    write_file(path, target, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_spec(url: &str) -> GitSpec {
        GitSpec {
            url: url.into(),
            branch: "main".into(),
            auth: GitAuth::Token {
                username: "x-access-token".into(),
                token: "ghp_s3cr3tT0ken".into(),
            },
        }
    }

    #[test]
    fn debug_redacts_the_token_and_url_userinfo() {
        let spec = token_spec("https://bot:hunter22@example.com/org/repo.git");
        let shown = format!("{spec:?}");
        assert!(!shown.contains("ghp_s3cr3tT0ken"), "{shown}");
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(shown.contains("x-access-token"), "{shown}");
        assert!(
            shown.contains("https://***@example.com/org/repo.git"),
            "{shown}"
        );
        let source = GitSource::new(spec, PathBuf::from("/nonexistent"));
        assert!(!format!("{source:?}").contains("s3cr3t"));
    }

    #[test]
    fn redact_url_keeps_ssh_users_but_drops_http_userinfo() {
        assert_eq!(
            redact_url("https://ghp_tok@github.com/o/r.git"),
            "https://***@github.com/o/r.git"
        );
        assert_eq!(redact_url("HTTP://u:p@h:8080/r"), "HTTP://***@h:8080/r");
        assert_eq!(
            redact_url("ssh://git@github.com:22/o/r.git"),
            "ssh://git@github.com:22/o/r.git"
        );
        assert_eq!(redact_url("ssh://git:pw@h/r"), "ssh://git:***@h/r");
        assert_eq!(
            redact_url("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
        assert_eq!(
            redact_url("https://github.com/o/r@v1.git"),
            "https://github.com/o/r@v1.git"
        );
    }

    #[test]
    fn scrub_removes_urls_userinfo_and_the_token_from_messages() {
        let spec = token_spec("https://bot:hunter22@example.com/r.git");
        let message = "failed 'https://bot:hunter22@example.com/r.git' (token ghp_s3cr3tT0ken) über http://a:b@c";
        let scrubbed = scrub(message, &spec);
        assert_eq!(
            scrubbed,
            "failed 'https://***@example.com/r.git' (token ***) über http://***@c"
        );
    }

    #[test]
    fn endpoints_of_every_url_form() {
        let e = parse_endpoint("ssh://root@127.0.0.1:2222/srv/repo.git").unwrap();
        assert_eq!(
            e,
            Endpoint {
                transport: Transport::Ssh,
                host: "127.0.0.1".into(),
                port: 2222,
                user: Some("root".into())
            }
        );
        let e = parse_endpoint("git@GitHub.com:org/repo.git").unwrap();
        assert_eq!(
            (e.transport, e.host.as_str(), e.port),
            (Transport::Ssh, "GitHub.com", 22)
        );
        let e = parse_endpoint("https://tok@[::1]:8443/r.git").unwrap();
        assert_eq!(
            (e.transport, e.host.as_str(), e.port),
            (Transport::Http, "::1", 8443)
        );
        let e = parse_endpoint("http://127.0.0.1/r.git").unwrap();
        assert_eq!(e.port, 80);
        assert_eq!(
            parse_endpoint("/srv/r.git").unwrap().transport,
            Transport::Local
        );
        assert_eq!(
            parse_endpoint("file:///srv/r.git").unwrap().transport,
            Transport::Local
        );
        assert_eq!(parse_endpoint("a/b:c").unwrap().transport, Transport::Local);
        assert!(parse_endpoint("ftp://h/r").is_none());
        assert!(parse_endpoint("https://h:port/r").is_none());
    }

    #[test]
    fn credentials_must_fit_the_transport() {
        let check = |url: &str, auth: GitAuth| {
            GitSource::new(
                GitSpec {
                    url: url.into(),
                    branch: "main".into(),
                    auth,
                },
                PathBuf::from("/nonexistent"),
            )
            .check_spec()
            .map(|_| ())
        };
        let token = GitAuth::Token {
            username: "u".into(),
            token: "t0ken".into(),
        };
        assert!(check("https://h/r.git", token.clone()).is_ok());
        let e = check("ssh://h/r.git", token).unwrap_err();
        assert!(e.to_string().contains("HTTP(S) URLs only"), "{e}");
        let e = check("git@h:r.git", GitAuth::None).unwrap_err();
        assert!(e.to_string().contains("known_hosts"), "{e}");
        let e = check(
            "ssh://h/r.git",
            GitAuth::SshKey {
                private_key: "/nonexistent/id".into(),
                known_hosts: "/nonexistent/kh".into(),
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                GitError::CredentialFile {
                    what: "SSH private key",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in [&b""[..], b".", b"..", b".git", b".GIT", b"a/b", b"a\0"] {
            assert!(!safe_entry_name(bad), "{bad:?}");
        }
        assert!(safe_entry_name(b".github"));
        assert!(safe_entry_name(b"..."));
        assert!(valid_dir_name("pr-7"));
        assert!(valid_dir_name("pull_7.head"));
        for bad in ["", ".x", "a/b", "..", "a b"] {
            assert!(!valid_dir_name(bad), "{bad}");
        }
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let network = GitError::Network {
            url: "u".into(),
            message: "m".into(),
        };
        assert!(network.is_retryable());
        let auth = GitError::AuthRejected {
            url: "u".into(),
            reason: "r".into(),
        };
        assert!(!auth.is_retryable());
    }
}
