//! K3s host access over SSH ([`SshHost`]): the multi-node case, where
//! kompoxops runs outside the cluster and reaches each node's root
//! directory through the system OpenSSH client. I/O stage (processes,
//! network); what it guarantees is what [`HostAccess`] promises, plus
//! errors that name the node, its `user@host:port` and what to check.
//!
//! # Why the `ssh` binary and not an in-process SSH library
//!
//! - Host key checking, key formats and ciphers are OpenSSH's own, so a
//!   `known_hosts` file made with `ssh-keyscan` or by `ssh` itself, and any
//!   key OpenSSH accepts, work as they are; security fixes come with the
//!   system's OpenSSH, and no new dependency enters the tree.
//! - [`HostAccess`] is fine grained (one call per directory listing, file
//!   or attribute change), so one driver operation is tens to hundreds of
//!   calls. Connection multiplexing (`ControlMaster=auto`, a socket per
//!   node address in a private directory, `ControlPersist`) makes each
//!   call one short `ssh` process on an already authenticated connection
//!   (about 10 ms on loopback) instead of a new connection and key
//!   exchange (about 270 ms; see docs/performance.md).
//!
//! The cost is a process per call, and requirements on the node: sshd, a
//! POSIX login shell for the SSH user (sh, dash, bash), GNU coreutils and
//! findutils (`find -printf`, `mv -T`, `sync FILE`, `stat`). Commands run
//! in the user's login shell, so that user's shell start-up files must be
//! cheap for non-interactive shells (bash sources `~/.bashrc` for commands
//! run by sshd).
//!
//! # What `ssh` is told
//!
//! `-F /dev/null` (the user's and the system's `ssh_config` cannot change
//! what runs), `BatchMode=yes` (never prompt), `StrictHostKeyChecking=yes`
//! against the given known_hosts file only (`GlobalKnownHostsFile=/dev/null`,
//! `UpdateHostKeys=no`: the file is never written), the given key only
//! (`IdentitiesOnly`, no agent), no forwarding of any kind, `ConnectTimeout`
//! and `ServerAlive*` so that a dead node fails a call instead of hanging
//! it. kompox never reads the private key (ssh does), so its contents
//! cannot end up in a message.
//!
//! # Remote commands
//!
//! One POSIX sh script per call, with every path quoted by [`shell_quote`]
//! and `LC_ALL=C` (error messages are classified by their text). The
//! scripts report "does not exist", "wrong kind" and "exists" with their
//! own exit codes, so NotFound does not depend on message text; the ssh
//! client's own failures (exit 255) are classified from its message:
//! unreachable → `Transient`, host key or authentication → `Permission`,
//! each naming the node, its address and the setting to check. A full
//! disk (`No space left on device`) is an `Io` error that says retrying
//! does not help.
//!
//! # Streaming
//!
//! Reads stream from `cat FILE` on stdout and writes stream into
//! `cat > FILE` on stdin; no file is held in memory. Both first wait for
//! one ready byte from the remote script, so a missing file or directory
//! is reported when the file is opened, not at the first read. A read
//! checks the exit status at end of stream (a dropped connection is an
//! error, never a short file); a write's `finish` closes the stream and
//! waits for the remote `sync FILE`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::driver::DriverError;
use super::k3s::{Attrs, Entry, EntryKind, HostAccess, WriteSink};

/// Port used when an address has none.
pub const DEFAULT_SSH_PORT: u16 = 22;
/// User used when an address has none.
pub const DEFAULT_SSH_USER: &str = "root";

/// Exit codes of the remote scripts (255 is the ssh client's own).
const EXIT_NOT_FOUND: i32 = 44;
const EXIT_WRONG_KIND: i32 = 45;
const EXIT_EXISTS: i32 = 46;
const EXIT_SSH: i32 = 255;
/// The byte a streaming script prints once the file is open.
const READY: u8 = b'K';
/// How much of a command's stderr is kept for the error message.
const STDERR_LIMIT: u64 = 16 * 1024;

/// Quotes `s` for a POSIX shell: the result is one word whose value is
/// exactly `s` (spaces, quotes, `$`, backquotes, globs and newlines are
/// all literal inside single quotes; a single quote is written as `'\''`).
/// Words made only of safe characters are left as they are, which keeps
/// commands readable in logs.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// An SSH destination: `user@host:port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl SshTarget {
    /// Parses `[user@]host[:port]` (IPv6: `[user@][addr]:port`); the user
    /// defaults to [`DEFAULT_SSH_USER`], the port to [`DEFAULT_SSH_PORT`].
    /// Users and hosts that could be read as ssh options (a leading `-`)
    /// or that hold shell or config syntax are refused.
    pub fn parse(s: &str) -> Result<SshTarget, DriverError> {
        let bad = |why: &str| {
            DriverError::InvalidInput(format!(
                "SSH address `{s}`: {why} (expected `user@host:port`)"
            ))
        };
        let (user, rest) = s.split_once('@').unwrap_or((DEFAULT_SSH_USER, s));
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            match after {
                "" => (h, None),
                a => (
                    h,
                    Some(
                        a.strip_prefix(':')
                            .ok_or_else(|| bad("expected `:port` after `]`"))?,
                    ),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(bad("an IPv6 address needs brackets: `[addr]:port`"));
                }
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => DEFAULT_SSH_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be a number in 1..65535"))?,
        };
        let word = |x: &str, extra: &str| {
            !x.is_empty()
                && !x.starts_with('-')
                && x.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(c))
        };
        if !word(user, "") {
            return Err(bad("the user must be letters, digits, `.`, `_` or `-`"));
        }
        if !word(host, ":%") {
            return Err(bad(
                "the host must be a name or an address (letters, digits, `.`, `-`)",
            ));
        }
        Ok(SshTarget {
            user: user.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// Parses `node=user@host:port,…` (comma, space or newline separated).
pub fn parse_hosts(list: &str) -> Result<BTreeMap<String, SshTarget>, DriverError> {
    let mut out = BTreeMap::new();
    for item in list.split([',', ' ', '\n']).filter(|s| !s.is_empty()) {
        let (node, addr) = item.split_once('=').ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "K3S_SSH_HOSTS item `{item}`: expected `node=user@host:port`"
            ))
        })?;
        if out
            .insert(node.to_string(), SshTarget::parse(addr)?)
            .is_some()
        {
            return Err(DriverError::InvalidInput(format!(
                "K3S_SSH_HOSTS names node `{node}` twice"
            )));
        }
    }
    if out.is_empty() {
        return Err(DriverError::InvalidInput(
            "K3S_SSH_HOSTS is empty: expected `node=user@host:port,…`".into(),
        ));
    }
    Ok(out)
}

/// One node reached over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshNode {
    pub target: SshTarget,
    /// The Kompox root on the node (as the node sees it).
    pub root: PathBuf,
}

/// Client settings shared by all nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// Private key file (`K3S_SSH_KEY`); read by ssh only.
    pub identity_file: PathBuf,
    /// The only known_hosts file trusted (`K3S_SSH_KNOWN_HOSTS`).
    pub known_hosts: PathBuf,
    /// TCP connect timeout of a new connection.
    pub connect_timeout: Duration,
    /// How long an idle multiplexed connection stays open.
    pub control_persist: Duration,
}

impl SshOptions {
    /// Defaults: connect timeout 10 s, idle connections kept 60 s.
    pub fn new(identity_file: impl Into<PathBuf>, known_hosts: impl Into<PathBuf>) -> Self {
        SshOptions {
            identity_file: identity_file.into(),
            known_hosts: known_hosts.into(),
            connect_timeout: Duration::from_secs(10),
            control_persist: Duration::from_secs(60),
        }
    }
}

/// A private (0700) directory for the control sockets, removed on drop.
#[derive(Debug)]
struct ControlDir(PathBuf);

impl Drop for ControlDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl ControlDir {
    /// Under the temp dir, unless its path is so long that a socket path
    /// (limited to 108 bytes, and ssh adds a 17-byte suffix while it sets
    /// one up) would not fit: then under `/tmp`.
    fn create() -> Result<ControlDir, DriverError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = std::env::temp_dir();
        let base = if tmp.as_os_str().len() > 60 {
            PathBuf::from("/tmp")
        } else {
            tmp
        };
        let mut last = None;
        for _ in 0..16 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = base.join(format!(
                "kompox-ssh-{}-{}-{nanos:x}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let mut b = std::fs::DirBuilder::new();
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            match b.create(&p) {
                Ok(()) => return Ok(ControlDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(DriverError::from_io(
                        &e,
                        &format!("creating the SSH control directory {}", p.display()),
                    ));
                }
            }
        }
        Err(DriverError::Io(format!(
            "no free SSH control directory name under {}: {}",
            base.display(),
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }
}

/// [`HostAccess`] over SSH: each node is a `user@host:port` and a root
/// directory on that host. Several nodes may share one address (they then
/// share one multiplexed connection).
pub struct SshHost {
    nodes: BTreeMap<String, SshNode>,
    opts: SshOptions,
    /// Index of each distinct address: its control socket's file name.
    socket_of: BTreeMap<SshTarget, usize>,
    control: OnceLock<Result<ControlDir, DriverError>>,
    /// Addresses that may have a master connection to close on drop.
    used: Mutex<BTreeSet<SshTarget>>,
}

impl fmt::Debug for SshHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshHost")
            .field("nodes", &self.nodes)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// A path as an ssh config value: quoted, `%` escaped (ssh expands `%`
/// tokens in these options). Paths ssh could not take are refused.
fn config_path(p: &Path, what: &str) -> Result<String, DriverError> {
    let s = p.to_str().ok_or_else(|| {
        DriverError::InvalidInput(format!("{what} `{}` is not UTF-8", p.display()))
    })?;
    if !p.is_absolute() || s.contains(['"', '\\', '\n', '\r']) {
        return Err(DriverError::InvalidInput(format!(
            "{what} `{s}` must be an absolute path without `\"`, `\\` or line breaks"
        )));
    }
    Ok(format!("\"{}\"", s.replace('%', "%%")))
}

impl SshHost {
    /// Validates the configuration (node names, absolute roots, key and
    /// known_hosts paths); nothing is contacted until the first call.
    pub fn new(nodes: BTreeMap<String, SshNode>, opts: SshOptions) -> Result<Self, DriverError> {
        if nodes.is_empty() {
            return Err(DriverError::InvalidInput(
                "no k3s node configured for SSH".into(),
            ));
        }
        for (name, n) in &nodes {
            if name.is_empty() || name.contains([':', '/']) {
                return Err(DriverError::InvalidInput(format!(
                    "k3s node name `{name}` must be non-empty, without `:` or `/`"
                )));
            }
            if !n.root.is_absolute() || n.root.to_str().is_none() {
                return Err(DriverError::InvalidInput(format!(
                    "k3s root `{}` of node `{name}` must be an absolute UTF-8 path",
                    n.root.display()
                )));
            }
        }
        config_path(&opts.identity_file, "K3S_SSH_KEY")?;
        config_path(&opts.known_hosts, "K3S_SSH_KNOWN_HOSTS")?;
        let targets: BTreeSet<SshTarget> = nodes.values().map(|n| n.target.clone()).collect();
        let socket_of = targets
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i))
            .collect();
        Ok(SshHost {
            nodes,
            opts,
            socket_of,
            control: OnceLock::new(),
            used: Mutex::new(BTreeSet::new()),
        })
    }

    /// The address of a node (for messages and tests).
    pub fn target(&self, node: &str) -> Result<&SshTarget, DriverError> {
        Ok(&self.node(node)?.target)
    }

    fn node(&self, node: &str) -> Result<&SshNode, DriverError> {
        self.nodes
            .get(node)
            .ok_or_else(|| DriverError::NotFound(format!("k3s node `{node}` is not configured")))
    }

    /// `path` must lie under the node's root (defence against bad names);
    /// returns it quoted for the remote shell.
    fn check(&self, node: &str, path: &Path) -> Result<String, DriverError> {
        let n = self.node(node)?;
        let s = path.to_str().ok_or_else(|| {
            DriverError::InvalidInput(format!("path {} is not UTF-8", path.display()))
        })?;
        if path.starts_with(&n.root)
            && !path.components().any(|c| matches!(c, Component::ParentDir))
        {
            Ok(shell_quote(s))
        } else {
            Err(DriverError::InvalidInput(format!(
                "path {} is outside the root {} of node `{node}`",
                path.display(),
                n.root.display()
            )))
        }
    }

    fn control_dir(&self) -> Result<&Path, DriverError> {
        match self.control.get_or_init(ControlDir::create) {
            Ok(d) => Ok(&d.0),
            Err(e) => Err(e.clone()),
        }
    }

    /// Checked on every call (cheap next to a process start), so fixing a
    /// file while a long-running kompox waits is picked up.
    fn preflight(&self) -> Result<(), DriverError> {
        for (path, setting, what) in [
            (&self.opts.identity_file, "K3S_SSH_KEY", "private key"),
            (
                &self.opts.known_hosts,
                "K3S_SSH_KNOWN_HOSTS",
                "known_hosts file",
            ),
        ] {
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    return Err(DriverError::InvalidInput(format!(
                        "{setting}: the SSH {what} {} is not a file",
                        path.display()
                    )));
                }
                Err(e) => {
                    return Err(DriverError::InvalidInput(format!(
                        "{setting}: cannot use the SSH {what} {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The common ssh options for an address.
    fn base_command(&self, target: &SshTarget) -> Result<Command, DriverError> {
        let dir = self.control_dir()?;
        let socket = dir.join(self.socket_of.get(target).copied().unwrap_or(0).to_string());
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-T", "-x", "-a", "-e", "none"]);
        let opts = [
            "BatchMode=yes".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            format!(
                "UserKnownHostsFile={}",
                config_path(&self.opts.known_hosts, "K3S_SSH_KNOWN_HOSTS")?
            ),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            "UpdateHostKeys=no".to_string(),
            "CheckHostIP=no".to_string(),
            format!(
                "IdentityFile={}",
                config_path(&self.opts.identity_file, "K3S_SSH_KEY")?
            ),
            "IdentitiesOnly=yes".to_string(),
            "IdentityAgent=none".to_string(),
            "PasswordAuthentication=no".to_string(),
            "KbdInteractiveAuthentication=no".to_string(),
            "ClearAllForwardings=yes".to_string(),
            "ConnectionAttempts=1".to_string(),
            format!(
                "ConnectTimeout={}",
                self.opts.connect_timeout.as_secs().max(1)
            ),
            "ServerAliveInterval=15".to_string(),
            "ServerAliveCountMax=4".to_string(),
            "ControlMaster=auto".to_string(),
            format!("ControlPath={}", config_path(&socket, "SSH control path")?),
            format!(
                "ControlPersist={}",
                self.opts.control_persist.as_secs().max(1)
            ),
            "LogLevel=ERROR".to_string(),
        ];
        for o in opts {
            c.arg("-o").arg(o);
        }
        c.arg("-p")
            .arg(target.port.to_string())
            .arg("-l")
            .arg(&target.user);
        Ok(c)
    }

    /// `ssh … -- host 'script'` for a node, with the failure context.
    fn command(
        &self,
        node: &str,
        what: String,
        script: &str,
    ) -> Result<(Command, Fail), DriverError> {
        let n = self.node(node)?;
        self.preflight()?;
        let mut c = self.base_command(&n.target)?;
        c.arg("--")
            .arg(&n.target.host)
            .arg(format!("LC_ALL=C; export LC_ALL; {script}"));
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n.target.clone());
        let fail = Fail {
            node: node.to_string(),
            target: n.target.to_string(),
            host: n.target.host.clone(),
            port: n.target.port,
            root: n.root.display().to_string(),
            key: self.opts.identity_file.display().to_string(),
            known_hosts: self.opts.known_hosts.display().to_string(),
            what,
        };
        Ok((c, fail))
    }

    /// Runs a script to completion; its stdout on success.
    fn run(&self, node: &str, what: String, script: &str) -> Result<Vec<u8>, DriverError> {
        let (mut c, fail) = self.command(node, what, script)?;
        let out = c
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_error(&e))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(fail.classify(out.status.code(), &String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Starts a streaming script and waits for its ready byte.
    fn stream(
        &self,
        node: &str,
        what: String,
        script: &str,
        with_stdin: bool,
    ) -> Result<Running, DriverError> {
        let (mut c, fail) = self.command(node, what, script)?;
        c.stdin(if with_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| spawn_error(&e))?;
        let stdout = child.stdout.take();
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let _ = (&mut err).take(STDERR_LIMIT).read_to_end(&mut kept);
                let _ = std::io::copy(&mut err, &mut std::io::sink());
                kept
            })
        });
        let mut run = Running {
            child,
            stdout,
            stdin,
            stderr,
            fail,
            outcome: None,
        };
        let mut byte = [0u8; 1];
        let first = loop {
            match run.stdout.as_mut().map(|o| o.read(&mut byte)) {
                Some(Ok(1)) => break Some(byte[0]),
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                _ => break None,
            }
        };
        match first {
            Some(READY) => Ok(run),
            Some(_) => {
                // Something printed before the script ran (a login shell
                // that talks): the stream cannot be trusted, and the
                // remote may keep writing, so stop it instead of waiting.
                let e = DriverError::Io(format!(
                    "{}: unexpected output before the data; the login shell of the SSH user \
                     must print nothing for non-interactive commands",
                    run.fail.context()
                ));
                drop(run);
                Err(e)
            }
            None => {
                // The script ended before it was ready (missing file,
                // refused connection…): its exit says why.
                run.stdout = None;
                match run.conclude() {
                    Err(e) => Err(e),
                    Ok(()) => Err(DriverError::Io(format!(
                        "{}: the remote command ended before its data",
                        run.fail.context()
                    ))),
                }
            }
        }
    }
}

impl Drop for SshHost {
    /// Closes the master connections this host opened (they would
    /// otherwise linger for `ControlPersist`), then removes the sockets'
    /// directory.
    fn drop(&mut self) {
        let used = std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(Ok(_)) = self.control.get() {
            for t in used {
                if let Ok(mut c) = self.base_command(&t) {
                    let _ = c
                        .args(["-O", "exit", "--", &t.host])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

fn spawn_error(e: &std::io::Error) -> DriverError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DriverError::NotSupported(
            "K3S_HOST_ACCESS=ssh runs the OpenSSH client `ssh`, which is not installed on this machine"
                .into(),
        )
    } else {
        DriverError::Io(format!("cannot run `ssh`: {e}"))
    }
}

/// What a failed call was doing, for its error message.
#[derive(Debug, Clone)]
struct Fail {
    node: String,
    target: String,
    host: String,
    port: u16,
    root: String,
    key: String,
    known_hosts: String,
    what: String,
}

impl Fail {
    fn context(&self) -> String {
        format!("k3s node `{}` ({}): {}", self.node, self.target, self.what)
    }

    /// Maps an exit code and stderr to a [`DriverError`]. Exit 255 is the
    /// ssh client's (connection, host key, authentication); other codes
    /// come from the remote script.
    fn classify(&self, code: Option<i32>, stderr: &str) -> DriverError {
        let msg = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("@@@"))
            .collect::<Vec<_>>()
            .join("; ");
        let has = |needles: &[&str]| needles.iter().any(|n| stderr.contains(n));
        let (node, target) = (&self.node, &self.target);
        match code {
            Some(EXIT_SSH) => {
                if has(&[
                    "Host key verification failed",
                    "REMOTE HOST IDENTIFICATION HAS CHANGED",
                    "host key is known",
                    "Host key for",
                ]) {
                    // OpenSSH's banner is long; keep the lines that say
                    // which key was offered and which entry disagrees.
                    let key_lines = stderr
                        .lines()
                        .map(str::trim)
                        .filter(|l| {
                            ["SHA256:", "Offending", "Host key", "host key is known"]
                                .iter()
                                .any(|k| l.contains(k))
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    DriverError::Permission(format!(
                        "k3s node `{node}` ({target}): the SSH host key does not match the one recorded for it in {} \
                         ({key_lines}); check K3S_SSH_KNOWN_HOSTS: compare the node's own fingerprint \
                         (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node), then record its key \
                         (`ssh-keyscan -p {} {}`)",
                        self.known_hosts, self.port, self.host
                    ))
                } else if has(&["Permission denied", "Too many authentication failures"]) {
                    DriverError::Permission(format!(
                        "k3s node `{node}` ({target}): SSH authentication with the key {} failed ({msg}); \
                         check K3S_SSH_KEY and that its public key is in the user's authorized_keys on the node \
                         (and, for root, that sshd has `PermitRootLogin prohibit-password`)",
                        self.key
                    ))
                } else if has(&[
                    "Load key",
                    "invalid format",
                    "bad permissions",
                    "UNPROTECTED PRIVATE KEY FILE",
                ]) {
                    DriverError::Permission(format!(
                        "k3s node `{node}` ({target}): ssh cannot use the private key {} ({msg}); \
                         check K3S_SSH_KEY (an OpenSSH private key without passphrase, mode 0600)",
                        self.key
                    ))
                } else if has(&[
                    "Connection refused",
                    "Connection timed out",
                    "timed out",
                    "No route to host",
                    "Network is unreachable",
                    "Could not resolve hostname",
                    "Temporary failure in name resolution",
                    "Connection reset",
                    "Connection closed",
                    "closed by remote host",
                    "Broken pipe",
                    "kex_exchange_identification",
                    "administratively prohibited",
                    "Timeout, server",
                    "mux_client",
                    "Control socket",
                ]) || stderr.trim().is_empty()
                {
                    DriverError::Transient(format!(
                        "cannot reach k3s node `{node}` at {target} over SSH ({msg}) while {}; \
                         check that the node is up, that sshd listens on that port and that no firewall \
                         blocks it (K3S_SSH_HOSTS)",
                        self.what
                    ))
                } else {
                    DriverError::Io(format!("{}: ssh failed: {msg}", self.context()))
                }
            }
            Some(EXIT_NOT_FOUND) => DriverError::NotFound(format!("{}: {msg}", self.context())),
            Some(EXIT_WRONG_KIND) => {
                DriverError::InvalidInput(format!("{}: {msg}", self.context()))
            }
            Some(EXIT_EXISTS) => DriverError::Conflict(format!("{}: {msg}", self.context())),
            _ if has(&["No space left on device", "Disk quota exceeded"]) => {
                DriverError::Io(format!(
                    "{}: the node's filesystem is full ({msg}); free space under {} on the node or use \
                     another node (retrying will not help)",
                    self.context(),
                    self.root
                ))
            }
            _ if has(&["Permission denied", "Operation not permitted"]) => {
                DriverError::Permission(format!(
                    "{}: {msg}; the SSH user must own {} on the node, and changing file owners needs root",
                    self.context(),
                    self.root
                ))
            }
            _ if has(&["Read-only file system"]) => DriverError::Io(format!(
                "{}: {msg}; the node's filesystem is read-only",
                self.context()
            )),
            _ if has(&["No such file or directory"]) => {
                DriverError::NotFound(format!("{}: {msg}", self.context()))
            }
            _ if has(&["File exists", "Directory not empty"]) => {
                DriverError::Conflict(format!("{}: {msg}", self.context()))
            }
            _ if has(&[
                "unknown predicate",
                "invalid option",
                "unrecognized option",
                "command not found",
                ": not found",
            ]) =>
            {
                DriverError::NotSupported(format!(
                    "{}: {msg}; the node needs a POSIX shell with GNU coreutils and findutils",
                    self.context()
                ))
            }
            Some(c) => DriverError::Io(format!("{}: exit {c}: {msg}", self.context())),
            None => DriverError::Io(format!(
                "{}: ssh was killed by a signal: {msg}",
                self.context()
            )),
        }
    }
}

/// A [`DriverError`] carried through `std::io` (the reader and sink
/// traits), with a kind that [`DriverError::from_io`] maps back to the
/// same variant where one exists.
fn to_io(e: DriverError) -> std::io::Error {
    use std::io::ErrorKind as K;
    let (kind, msg) = match e {
        DriverError::NotFound(m) => (K::NotFound, m),
        DriverError::Permission(m) => (K::PermissionDenied, m),
        DriverError::Conflict(m) => (K::AlreadyExists, m),
        DriverError::Transient(m) => (K::TimedOut, m),
        DriverError::InvalidInput(m) => (K::InvalidInput, m),
        DriverError::NotSupported(m) | DriverError::Corrupt(m) | DriverError::Io(m) => {
            (K::Other, m)
        }
    };
    std::io::Error::new(kind, msg)
}

/// A running streaming command.
struct Running {
    child: Child,
    stdout: Option<ChildStdout>,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    fail: Fail,
    outcome: Option<Result<(), DriverError>>,
}

impl Running {
    /// Closes stdin, waits for the command and classifies its exit (once;
    /// later calls return the same outcome).
    fn conclude(&mut self) -> Result<(), DriverError> {
        if let Some(o) = &self.outcome {
            return o.clone();
        }
        self.stdin = None;
        let status = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let o = match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(self
                .fail
                .classify(s.code(), &String::from_utf8_lossy(&stderr))),
            Err(e) => Err(DriverError::Io(format!(
                "{}: waiting for ssh: {e}",
                self.fail.context()
            ))),
        };
        self.outcome = Some(o.clone());
        o
    }
}

impl Drop for Running {
    /// An abandoned stream: stop ssh (the remote `cat` then ends too).
    fn drop(&mut self) {
        if self.outcome.is_none() {
            self.stdin = None;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A file streamed from a node (`cat FILE`).
struct SshReader(Running);

impl Read for SshReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(o) = &self.0.outcome {
            return o.clone().map(|()| 0).map_err(to_io);
        }
        let n = match self.0.stdout.as_mut() {
            Some(out) => out.read(buf)?,
            None => 0,
        };
        if n == 0 && !buf.is_empty() {
            // End of stream: only a clean exit makes it the end of file.
            self.0.stdout = None;
            self.0.conclude().map_err(to_io)?;
        }
        Ok(n)
    }
}

/// A file streamed to a node (`cat > FILE`, then `sync FILE`).
struct SshSink(Running);

impl SshSink {
    /// A failed write (usually a broken pipe) is explained by the remote
    /// command's exit, e.g. a full disk.
    fn explain(&mut self, e: std::io::Error) -> std::io::Error {
        match self.0.conclude() {
            Err(d) => to_io(d),
            Ok(()) => e,
        }
    }
}

impl Write for SshSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = match self.0.stdin.as_mut() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the remote write already ended",
            )),
        };
        r.map_err(|e| self.explain(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = match self.0.stdin.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        };
        r.map_err(|e| self.explain(e))
    }
}

impl WriteSink for SshSink {
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.flush()?;
        self.0.conclude().map_err(to_io)
    }
}

/// Parses `find -printf '%y %m %U %G %P\0'` records.
fn parse_entries(out: &[u8], dir: &Path) -> Result<Vec<Entry>, DriverError> {
    let bad = |why: &str| {
        DriverError::Io(format!(
            "listing {}: unexpected output from find: {why}",
            dir.display()
        ))
    };
    let mut v = Vec::new();
    for rec in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let mut it = rec.splitn(5, |b| *b == b' ');
        let mut field = || {
            it.next()
                .ok_or_else(|| bad("a record has fewer than five fields"))
        };
        let (y, m, u, g, name) = (field()?, field()?, field()?, field()?, field()?);
        let num = |f: &[u8], radix: u32| {
            std::str::from_utf8(f)
                .ok()
                .and_then(|s| u32::from_str_radix(s, radix).ok())
                .ok_or_else(|| bad("a number does not parse"))
        };
        let kind = match y {
            b"d" => EntryKind::Dir,
            b"l" => EntryKind::Symlink,
            _ => EntryKind::File,
        };
        let name = String::from_utf8(name.to_vec()).map_err(|e| {
            DriverError::Io(format!(
                "non-UTF-8 file name {:?} in {}",
                String::from_utf8_lossy(e.as_bytes()),
                dir.display()
            ))
        })?;
        v.push(Entry {
            name,
            kind,
            attrs: Attrs {
                mode: num(m, 8)? & 0o7777,
                uid: num(u, 10)?,
                gid: num(g, 10)?,
            },
        });
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// `[ -e P ] || [ -L P ]` (a dangling symlink exists too).
fn exists_test(p: &str) -> String {
    format!("{{ [ -e {p} ] || [ -L {p} ]; }}")
}

/// Prints `<path>: <msg>` to stderr and exits with `code` (`printf`,
/// not `echo`: dash's echo interprets backslashes in the path).
fn fail_with(p: &str, msg: &str, code: i32) -> String {
    format!("{{ printf '%s: {msg}\\n' {p} >&2; exit {code}; }}")
}

/// Fails with EXIT_NOT_FOUND and the usual message when `p` is missing.
fn require(p: &str) -> String {
    format!(
        "{} || {}",
        exists_test(p),
        fail_with(p, "No such file or directory", EXIT_NOT_FOUND)
    )
}

impl HostAccess for SshHost {
    fn nodes(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn root(&self, node: &str) -> Result<PathBuf, DriverError> {
        Ok(self.node(node)?.root.clone())
    }

    /// `find -H`: a directory given as a symlink is listed like
    /// `read_dir` lists it (followed); the entries themselves are not.
    fn list(&self, node: &str, dir: &Path) -> Result<Vec<Entry>, DriverError> {
        let d = self.check(node, dir)?;
        let script = format!(
            "{}; [ -d {d} ] || {}; find -H {d} -mindepth 1 -maxdepth 1 -printf {}",
            require(&d),
            fail_with(&d, "Not a directory", EXIT_WRONG_KIND),
            shell_quote("%y %m %U %G %P\\0")
        );
        let out = self.run(node, format!("listing {}", dir.display()), &script)?;
        parse_entries(&out, dir)
    }

    fn read(&self, node: &str, path: &Path) -> Result<Vec<u8>, DriverError> {
        let mut r = self.open_read(node, path)?;
        let mut v = Vec::new();
        r.read_to_end(&mut v)
            .map_err(|e| DriverError::from_io(&e, &path.display().to_string()))?;
        Ok(v)
    }

    fn write(&self, node: &str, path: &Path, data: &[u8]) -> Result<(), DriverError> {
        let mut w = self.create_write(node, path)?;
        let io = |e: std::io::Error| DriverError::from_io(&e, &path.display().to_string());
        w.write_all(data).map_err(io)?;
        w.finish().map_err(io)
    }

    fn open_read(&self, node: &str, path: &Path) -> Result<Box<dyn Read + Send>, DriverError> {
        let p = self.check(node, path)?;
        let script = format!(
            "{}; [ -f {p} ] || {}; printf {}; exec cat -- {p}",
            require(&p),
            fail_with(&p, "not a regular file", EXIT_WRONG_KIND),
            READY as char
        );
        let run = self.stream(node, format!("reading {}", path.display()), &script, false)?;
        Ok(Box::new(SshReader(run)))
    }

    fn create_write(&self, node: &str, path: &Path) -> Result<Box<dyn WriteSink>, DriverError> {
        let p = self.check(node, path)?;
        let parent = path
            .parent()
            .and_then(Path::to_str)
            .map(shell_quote)
            .ok_or_else(|| DriverError::InvalidInput(format!("bad path {}", path.display())))?;
        let script = format!(
            "[ -d {parent} ] || {}; exec 3> {p} || exit 1; printf {}; \
             cat >&3 || exit 1; exec 3>&-; sync -- {p}",
            fail_with(&parent, "No such file or directory", EXIT_NOT_FOUND),
            READY as char
        );
        let run = self.stream(node, format!("writing {}", path.display()), &script, true)?;
        Ok(Box::new(SshSink(run)))
    }

    fn rename(&self, node: &str, from: &Path, to: &Path) -> Result<(), DriverError> {
        let f = self.check(node, from)?;
        let t = self.check(node, to)?;
        let script = format!("{}; mv -fT -- {f} {t}", require(&f));
        self.run(
            node,
            format!("renaming {} to {}", from.display(), to.display()),
            &script,
        )
        .map(drop)
    }

    fn remove(&self, node: &str, path: &Path) -> Result<(), DriverError> {
        let p = self.check(node, path)?;
        self.run(
            node,
            format!("removing {}", path.display()),
            &format!("rm -rf -- {p}"),
        )
        .map(drop)
    }

    fn mkdir(&self, node: &str, path: &Path) -> Result<(), DriverError> {
        let p = self.check(node, path)?;
        self.run(
            node,
            format!("creating directory {}", path.display()),
            &format!("mkdir -p -- {p}"),
        )
        .map(drop)
    }

    fn exists(&self, node: &str, path: &Path) -> Result<bool, DriverError> {
        let p = self.check(node, path)?;
        let out = self.run(
            node,
            format!("checking {}", path.display()),
            &format!("if {}; then echo y; else echo n; fi", exists_test(&p)),
        )?;
        match out.as_slice() {
            b"y\n" => Ok(true),
            b"n\n" => Ok(false),
            other => Err(DriverError::Io(format!(
                "k3s node `{node}`: checking {}: unexpected output {:?}",
                path.display(),
                String::from_utf8_lossy(other)
            ))),
        }
    }

    fn read_link(&self, node: &str, path: &Path) -> Result<PathBuf, DriverError> {
        let p = self.check(node, path)?;
        let script = format!(
            "{}; [ -L {p} ] || {}; readlink -- {p}",
            require(&p),
            fail_with(&p, "not a symbolic link", EXIT_WRONG_KIND)
        );
        let mut out = self.run(node, format!("reading link {}", path.display()), &script)?;
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        String::from_utf8(out).map(PathBuf::from).map_err(|_| {
            DriverError::Io(format!(
                "k3s node `{node}`: the target of symlink {} is not UTF-8",
                path.display()
            ))
        })
    }

    fn symlink(&self, node: &str, target: &Path, path: &Path) -> Result<(), DriverError> {
        let p = self.check(node, path)?;
        let t = target.to_str().map(shell_quote).ok_or_else(|| {
            DriverError::InvalidInput(format!("symlink target {} is not UTF-8", target.display()))
        })?;
        let script = format!(
            "if {}; then {}; fi; ln -s -- {t} {p}",
            exists_test(&p),
            fail_with(&p, "File exists", EXIT_EXISTS)
        );
        self.run(
            node,
            format!("creating symlink {}", path.display()),
            &script,
        )
        .map(drop)
    }

    fn attrs(&self, node: &str, path: &Path) -> Result<Attrs, DriverError> {
        let p = self.check(node, path)?;
        let script = format!(
            "{}; find {p} -maxdepth 0 -printf {}",
            require(&p),
            shell_quote("%y %m %U %G .\\0")
        );
        let out = self.run(
            node,
            format!("reading attributes of {}", path.display()),
            &script,
        )?;
        parse_entries(&out, path)?
            .pop()
            .map(|e| e.attrs)
            .ok_or_else(|| {
                DriverError::Io(format!(
                    "k3s node `{node}`: no attributes for {}",
                    path.display()
                ))
            })
    }

    fn set_attrs(&self, node: &str, path: &Path, attrs: Attrs) -> Result<(), DriverError> {
        let p = self.check(node, path)?;
        let owner = format!("{}:{}", attrs.uid, attrs.gid);
        // Owner first (chown clears set-id bits), then the mode; five
        // octal digits so that GNU chmod also clears a directory's set-id
        // bits when the mode has none.
        let script = format!(
            "{}; if [ \"$(find {p} -maxdepth 0 -printf '%U:%G')\" != {owner} ]; then chown -h {owner} -- {p} || exit 1; fi; \
             [ -L {p} ] || chmod 0{:04o} -- {p}",
            require(&p),
            attrs.mode & 0o7777
        );
        self.run(
            node,
            format!("setting owner and mode of {}", path.display()),
            &script,
        )
        .map(drop)
    }

    fn disk_usage(&self, node: &str, path: &Path) -> Result<u64, DriverError> {
        let p = self.check(node, path)?;
        let script = format!("{}; find {p} -type f -printf '%s\\n'", require(&p));
        let out = self.run(node, format!("measuring {}", path.display()), &script)?;
        let mut total = 0u64;
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            total += std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    DriverError::Io(format!(
                        "k3s node `{node}`: measuring {}: unexpected output from find",
                        path.display()
                    ))
                })?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh` makes of a quoted word: the word must come back exactly.
    fn through_sh(word: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote(word)))
            .output()
            .expect("run sh");
        assert!(out.status.success(), "{word:?}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    #[test]
    fn shell_quote_round_trips_through_sh() {
        for w in [
            "plain",
            "/var/lib/kompox/disks/abc/data/d1",
            "with space",
            "it's",
            "'",
            "''",
            "\"double\"",
            "$HOME",
            "${x:-y}",
            "$(touch /tmp/kompox-pwned)",
            "`id`",
            "back\\slash",
            "new\nline",
            "tab\there",
            "*?[a]",
            "-rf",
            "a;b|c&d>e<f",
            "~root",
            "ünïcødé",
            "",
        ] {
            assert_eq!(through_sh(w), w, "{w:?} quoted as {}", shell_quote(w));
        }
        assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn targets_parse_and_print() {
        let t = SshTarget::parse("admin@10.0.0.5:2222").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("admin", "10.0.0.5", 2222)
        );
        assert_eq!(t.to_string(), "admin@10.0.0.5:2222");
        let d = SshTarget::parse("vm1.example.org").unwrap();
        assert_eq!(d.to_string(), "root@vm1.example.org:22");
        let v6 = SshTarget::parse("k@[fd00::1]:2200").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("fd00::1", 2200));
        assert_eq!(v6.to_string(), "k@[fd00::1]:2200");
        for bad in [
            "",
            "root@",
            "@host",
            "-oProxyCommand=x@h",
            "root@-oProxyCommand=x",
            "root@h:0",
            "root@h:70000",
            "root@h:x",
            "root@fd00::1",
            "root@[fd00::1",
            "ro ot@h",
            "root@h;rm",
            "root@h/x",
        ] {
            assert!(
                matches!(SshTarget::parse(bad), Err(DriverError::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hosts_setting() {
        let h = parse_hosts("b=root@10.0.0.2:22, a=admin@10.0.0.1\nc=[::1]:2222").unwrap();
        assert_eq!(h.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(h["a"].to_string(), "admin@10.0.0.1:22");
        assert_eq!(h["c"].to_string(), "root@[::1]:2222");
        for bad in ["", "a", "a=root@h,a=root@h2", "a=root@h:x"] {
            assert!(
                matches!(parse_hosts(bad), Err(DriverError::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    fn fail() -> Fail {
        Fail {
            node: "vm2".into(),
            target: "root@10.0.0.2:22".into(),
            host: "10.0.0.2".into(),
            port: 22,
            root: "/var/lib/kompox".into(),
            key: "/etc/kompox/id_ed25519".into(),
            known_hosts: "/etc/kompox/known_hosts".into(),
            what: "listing /var/lib/kompox/disks".into(),
        }
    }

    #[test]
    fn ssh_failures_name_the_node_and_what_to_check() {
        let f = fail();
        let e = f.classify(
            Some(255),
            "ssh: connect to host 10.0.0.2 port 22: Connection refused\n",
        );
        let DriverError::Transient(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("`vm2`") && m.contains("root@10.0.0.2:22"), "{m}");
        assert!(
            m.contains("Connection refused") && m.contains("K3S_SSH_HOSTS"),
            "{m}"
        );
        assert!(e.retryable());
        let e = f.classify(
            Some(255),
            "@@@@@@@\n@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\nHost key verification failed.\n",
        );
        let DriverError::Permission(m) = &e else {
            panic!("{e:?}")
        };
        assert!(
            m.contains("`vm2`") && m.contains("/etc/kompox/known_hosts"),
            "{m}"
        );
        assert!(
            m.contains("K3S_SSH_KNOWN_HOSTS") && !m.contains("@@@"),
            "{m}"
        );
        let e = f.classify(Some(255), "root@10.0.0.2: Permission denied (publickey).\n");
        let DriverError::Permission(m) = &e else {
            panic!("{e:?}")
        };
        assert!(
            m.contains("K3S_SSH_KEY") && m.contains("/etc/kompox/id_ed25519"),
            "{m}"
        );
        assert!(matches!(
            f.classify(
                Some(255),
                "ssh: Could not resolve hostname vm2: Name or service not known"
            ),
            DriverError::Transient(_)
        ));
    }

    #[test]
    fn remote_failures_map_to_driver_errors() {
        let f = fail();
        assert!(matches!(
            f.classify(Some(44), "/x: No such file or directory"),
            DriverError::NotFound(_)
        ));
        assert!(matches!(
            f.classify(Some(46), "/x: File exists"),
            DriverError::Conflict(_)
        ));
        let e = f.classify(Some(1), "cat: write error: No space left on device\n");
        let DriverError::Io(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("filesystem is full") && m.contains("retrying will not help"));
        assert!(m.contains("`vm2`") && m.contains("/var/lib/kompox"), "{m}");
        assert!(!e.retryable());
        assert!(matches!(
            f.classify(
                Some(1),
                "chown: changing ownership of '/x': Operation not permitted"
            ),
            DriverError::Permission(_)
        ));
        assert!(matches!(
            f.classify(Some(1), "find: unknown predicate `-printf'"),
            DriverError::NotSupported(_)
        ));
        assert!(matches!(
            f.classify(Some(3), "something odd"),
            DriverError::Io(_)
        ));
    }

    #[test]
    fn io_round_trip_keeps_the_variant() {
        for e in [
            DriverError::NotFound("a".into()),
            DriverError::Permission("b".into()),
            DriverError::Transient("c".into()),
            DriverError::Conflict("d".into()),
            DriverError::InvalidInput("e".into()),
            DriverError::Io("f".into()),
        ] {
            let back = DriverError::from_io(&to_io(e.clone()), "p");
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{e:?} -> {back:?}"
            );
        }
    }

    #[test]
    fn find_records_parse() {
        let out = b"d 755 0 0 sub\0f 4644 1000 100 it's a \"file\" $x\nline\0l 777 0 0 link\0";
        let v = parse_entries(out, Path::new("/r")).unwrap();
        assert_eq!(
            v.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["it's a \"file\" $x\nline", "link", "sub"]
        );
        assert_eq!(v[0].kind, EntryKind::File);
        assert_eq!(
            v[0].attrs,
            Attrs {
                mode: 0o4644,
                uid: 1000,
                gid: 100
            }
        );
        assert_eq!(v[1].kind, EntryKind::Symlink);
        assert_eq!(v[2].kind, EntryKind::Dir);
        assert!(parse_entries(b"d 7x5 0 0 a\0", Path::new("/r")).is_err());
        assert!(parse_entries(b"d 755 0\0", Path::new("/r")).is_err());
    }

    #[test]
    fn configuration_is_validated_before_any_connection() {
        let node = |root: &str| SshNode {
            target: SshTarget::parse("root@127.0.0.1:2222").unwrap(),
            root: PathBuf::from(root),
        };
        let opts = SshOptions::new("/k/id", "/k/known_hosts");
        let ok = SshHost::new(
            BTreeMap::from([("a".to_string(), node("/r"))]),
            opts.clone(),
        )
        .unwrap();
        assert_eq!(ok.nodes(), ["a"]);
        assert!(ok.check("a", Path::new("/etc/passwd")).is_err());
        assert!(ok.check("a", Path::new("/r/../etc")).is_err());
        assert_eq!(
            ok.check("a", Path::new("/r/it's")).unwrap(),
            "'/r/it'\\''s'"
        );
        assert!(matches!(ok.root("b"), Err(DriverError::NotFound(_))));
        for (nodes, o) in [
            (
                BTreeMap::from([("a".to_string(), node("rel"))]),
                opts.clone(),
            ),
            (
                BTreeMap::from([("a:b".to_string(), node("/r"))]),
                opts.clone(),
            ),
            (BTreeMap::new(), opts.clone()),
            (
                BTreeMap::from([("a".to_string(), node("/r"))]),
                SshOptions::new("id", "/k/kh"),
            ),
            (
                BTreeMap::from([("a".to_string(), node("/r"))]),
                SshOptions::new("/k/id", "/k/k\"h"),
            ),
        ] {
            assert!(
                matches!(SshHost::new(nodes, o), Err(DriverError::InvalidInput(_))),
                "should be refused"
            );
        }
        // A missing key is reported before ssh runs, naming the setting.
        let e = ok.list("a", Path::new("/r")).unwrap_err();
        assert!(
            matches!(&e, DriverError::InvalidInput(m) if m.contains("K3S_SSH_KEY") && m.contains("/k/id")),
            "{e:?}"
        );
    }
}
