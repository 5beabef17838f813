//! A real OpenSSH server on 127.0.0.1 for tests (K3s host access over
//! SSH, Git over SSH). Include it with
//!
//! ```ignore
//! #[path = "support/sshd.rs"]
//! mod sshd;
//! ```
//!
//! and call [`Sshd::start`]: each call starts its own `/usr/sbin/sshd`
//! (Debian's openssh-server; `.ci/run` installs it) on a free port, with
//! a fresh host key and client key made by `ssh-keygen` in a temp dir,
//! its own `sshd_config` (`-f`, `-D`, `-e`), and a `known_hosts` file
//! that trusts exactly that host key. Only 127.0.0.1 is ever used.
//!
//! What the config says, and why:
//! * public key authentication only, with `AuthorizedKeysFile` in the
//!   temp dir (the machine's `~/.ssh` is never read or written), no PAM,
//!   `StrictModes no` (the temp dir's modes are the test's business);
//! * `PermitRootLogin prohibit-password`: the tests run as root; the
//!   login user is the current user ([`Sshd::user`]);
//! * `SetEnv HOME=<temp dir>/home`: commands run in the user's login
//!   shell, and bash sources `~/.bashrc` for commands run by sshd; a
//!   developer's or CI image's `.bashrc` (pyenv, nvm…) can cost 0.3 s per
//!   command, which would make every multiplexed call that slow. Real
//!   nodes have a cheap one; the tests should not measure this machine's;
//! * no forwarding of any kind, `UseDNS no`, `PrintMotd no`.
//!
//! Lifetime: sshd is spawned with `PR_SET_PDEATHSIG = SIGKILL` from a
//! thread that lives as long as the process (the pattern of
//! `tests/support/testbed.rs`), so the kernel kills it if the test process
//! dies; [`Drop`] stops it (SIGTERM, then SIGKILL) and removes the temp
//! dir. Running as root, sshd needs its privilege separation directory
//! `/run/sshd`, which is created if missing (as Debian's service unit
//! does).

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Each harness includes the shared spawner itself, so a test file need
// not know about it; a binary using two harnesses gets two spawner threads.
#[allow(clippy::duplicate_mod)]
#[path = "child.rs"]
mod child;

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd on 127.0.0.1.
pub struct Sshd {
    pub port: u16,
    /// The user to log in as (the current user).
    pub user: String,
    /// Private key accepted by this sshd (OpenSSH format, no passphrase).
    pub client_key: PathBuf,
    /// A known_hosts file trusting exactly this sshd's host key.
    pub known_hosts: PathBuf,
    /// The host public key line (`ssh-ed25519 AAAA…`).
    pub host_public_key: String,
    /// The temp dir holding keys, config and log.
    pub dir: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

/// A port that was free a moment ago (bind to :0, then release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A port on 127.0.0.1 where nothing listens (connections are refused).
pub fn closed_port() -> u16 {
    free_port()
}

fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen (package openssh-client)");
    assert!(out.status.success(), "ssh-keygen failed: {out:?}");
}

/// `type base64` of a `.pub` file (the comment dropped).
fn public_key(pub_file: &Path) -> String {
    let s = std::fs::read_to_string(pub_file).expect("read public key");
    s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .expect("run `id -un`");
    String::from_utf8(out.stdout)
        .expect("utf-8 user name")
        .trim()
        .to_string()
}

/// Quotes a word for `sh` (GIT_SSH_COMMAND is run by a shell).
fn sh_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Sshd {
    /// Starts sshd and waits until it listens; panics with its log if it
    /// cannot start. A port taken between choosing and binding it is
    /// retried with another port.
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} is missing: install Debian's openssh-server (.ci/run does)"
        );
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 && !Path::new("/run/sshd").is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create("/run/sshd");
        }
        let tmp = tempfile::Builder::new()
            .prefix("kompox-sshd-")
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let host_key = dir.join("host_ed25519");
        let client_key = dir.join("client_ed25519");
        keygen(&host_key, "kompox-test-host");
        keygen(&client_key, "kompox-test-client");
        let host_public_key = public_key(&host_key.with_extension("pub"));
        std::fs::write(
            dir.join("authorized_keys"),
            format!("{}\n", public_key(&client_key.with_extension("pub"))),
        )
        .expect("write authorized_keys");
        std::fs::create_dir_all(dir.join("home")).expect("mkdir home");
        let user = current_user();

        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}
ListenAddress 127.0.0.1
AddressFamily inet
HostKey {host_key}
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
AllowUsers {user}
SetEnv HOME={dir}/home
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
PermitTunnel no
Subsystem sftp internal-sftp
LogLevel INFO
",
                    host_key = host_key.display(),
                    dir = dir.display(),
                ),
            )
            .expect("write sshd_config");
            let log_path = dir.join("sshd.log");
            let log = std::fs::File::create(&log_path).expect("create sshd.log");
            let mut cmd = Command::new(SSHD);
            cmd.arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            let mut child = child::spawn_tied(cmd).expect("spawn sshd");
            let deadline = Instant::now() + Duration::from_secs(15);
            let listening = format!("Server listening on 127.0.0.1 port {port}");
            loop {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains(&listening)
                    && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                {
                    let mut known = dir.join("known_hosts");
                    std::fs::write(&known, format!("[127.0.0.1]:{port} {host_public_key}\n"))
                        .expect("write known_hosts");
                    known = known.canonicalize().unwrap_or(known);
                    return Sshd {
                        port,
                        user,
                        client_key,
                        known_hosts: known,
                        host_public_key,
                        dir,
                        child: Some(child),
                        _tmp: tmp,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    last_log = log;
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("sshd did not start listening within 15 s; its log:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !last_log.contains("Address already in use") {
                break;
            }
        }
        panic!("sshd exited at start; its log:\n{last_log}");
    }

    /// `user@127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("{}@127.0.0.1:{}", self.user, self.port)
    }

    /// `ssh://user@127.0.0.1:port/<abs path>` (a Git remote URL).
    pub fn url(&self, abs_path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            abs_path.display()
        )
    }

    /// A `GIT_SSH_COMMAND`-style command line for this sshd:
    /// `ssh -i KEY -o UserKnownHostsFile=… -o StrictHostKeyChecking=yes -p PORT`
    /// (plus `BatchMode` and `IdentitiesOnly`, so that nothing prompts and
    /// no agent key is offered), paths quoted for `sh`.
    pub fn ssh_command_env(&self) -> String {
        format!(
            "ssh -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes -p {}",
            sh_word(&self.client_key.display().to_string()),
            sh_word(&self.known_hosts.display().to_string()),
            self.port
        )
    }

    /// A known_hosts file that records a *different* host key for this
    /// sshd's address (what a man in the middle, or a reinstalled node,
    /// looks like to the client).
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let other = self.dir.join("other_host_ed25519");
        if !other.exists() {
            keygen(&other, "kompox-test-other-host");
        }
        let path = self.dir.join("known_hosts.wrong");
        std::fs::write(
            &path,
            format!(
                "[127.0.0.1]:{} {}\n",
                self.port,
                public_key(&other.with_extension("pub"))
            ),
        )
        .expect("write known_hosts.wrong");
        path
    }

    /// Also accepts the key whose private file is `private_key` (its
    /// `.pub` next to it), e.g. another instance's [`Sshd::client_key`],
    /// so that one key reaches several servers.
    pub fn authorize_key(&self, private_key: &Path) {
        use std::io::Write;
        let line = public_key(&private_key.with_extension("pub"));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("authorized_keys"))
            .expect("open authorized_keys");
        writeln!(f, "{line}").expect("append authorized_keys");
    }

    /// A known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_public_key)
    }

    /// How many SSH connections this server has accepted so far.
    pub fn accepted_connections(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// Kills this server's connection processes (the descendants of its
    /// listener, found in /proc), as a network failure would cut the
    /// connections; the listener keeps accepting new ones.
    pub fn drop_connections(&self) {
        let Some(listener) = self.child.as_ref().map(|c| c.id()) else {
            return;
        };
        let parent_of = |pid: u32| -> Option<u32> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parens.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split_whitespace().nth(1)?.parse().ok()
        };
        let pids: Vec<u32> = std::fs::read_dir("/proc")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let descends = |mut pid: u32| {
            while let Some(pp) = parent_of(pid) {
                if pp == listener {
                    return true;
                }
                if pp <= 1 {
                    return false;
                }
                pid = pp;
            }
            false
        };
        for pid in pids.into_iter().filter(|p| *p != listener && descends(*p)) {
            // SAFETY: kill(2) on a descendant of our own sshd.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }

    /// sshd's log so far (stderr, `-e`).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("sshd.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
}
