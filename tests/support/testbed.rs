//! Testbed: a real Kubernetes control plane on 127.0.0.1 for integration tests.
//!
//! Include it from a test file with
//!
//! ```ignore
//! #[path = "support/testbed.rs"]
//! mod testbed;
//! ```
//!
//! and call [`testbed()`]. The first test that does so builds the binaries if
//! they are missing from the cache (`tests/testbed/build.sh`: etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the Go
//! module proxy) and starts them; every test in that test binary then shares
//! the one testbed. Tests isolate themselves by namespace
//! ([`Testbed::unique_name`]).
//!
//! What runs (all on 127.0.0.1, nothing dials anything else):
//! * etcd (plain HTTP on loopback, `--unsafe-no-fsync`);
//! * kube-apiserver with TLS from a generated CA, token authentication
//!   (`tokens.csv`), RBAC, and an audit log at level Metadata in JSON lines
//!   ([`Testbed::audit_events`]: the oracle for request counts and writers);
//! * kube-controller-manager (`--use-service-account-credentials`, so each
//!   controller writes as its own service account) and kube-scheduler;
//! * kwok playing the kubelet for six fake nodes, two per zone `zone-a`,
//!   `zone-b`, `zone-c` (no taints), plus a default StorageClass `standard`.
//!
//! Cleanup (Rust's test harness has no global teardown):
//! * every child is spawned from one long-lived thread with
//!   `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so the kernel kills it if the test
//!   process dies in any way (the death signal follows the *thread* that
//!   forked, hence the dedicated thread that never exits);
//! * an `atexit` handler stops the children in reverse order (SIGTERM, then
//!   SIGKILL after 2 s) and removes the temp dir on a normal exit
//!   (including a failed test run);
//! * a watchdog shell (its own process group) waits for the test process to
//!   go, kills whatever listed child is left, and removes the temp dir: this
//!   covers SIGKILL of the test process;
//! * the next start removes stale `kompox-testbed-*` dirs whose owner died.
//!
//! Set `KOMPOX_TESTBED_KEEP=1` to keep the temp dir (logs, audit log) after
//! the run for debugging; it is removed by the next run's stale cleanup.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

// Shared with the other REST harness; see `child.rs` for the lint.
#[allow(clippy::duplicate_mod)]
#[path = "http_json.rs"]
mod http_json;
use http_json::json_response;

// Each harness includes the shared spawner itself, so a test file need
// not know about it; a binary using two harnesses gets two spawner threads.
#[allow(clippy::duplicate_mod)]
#[path = "child.rs"]
mod child;

/// Prefix of the testbed's temp dirs under `std::env::temp_dir()`.
pub const DIR_PREFIX: &str = "kompox-testbed-";
/// The zones of the fake nodes, two nodes each (`node-a1`, `node-a2`, ...).
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
/// The region label of every fake node.
pub const REGION: &str = "region-1";
/// The user of [`Testbed::token`] (in group `system:masters`).
pub const TEST_USER: &str = "kompox-test";
/// The default StorageClass.
pub const STORAGE_CLASS: &str = "standard";

/// How long one start-up phase may take on a slow 2-core machine.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

/// A running testbed. Everything lives under [`Testbed::dir`].
pub struct Testbed {
    /// The temp dir holding certificates, data, logs and kubeconfigs.
    pub dir: PathBuf,
    /// The directory with the control-plane binaries (the cache).
    pub bin_dir: PathBuf,
    /// kubeconfig for [`TEST_USER`] (token auth, CA embedded).
    pub kubeconfig_path: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server_url: String,
    /// Bearer token of [`TEST_USER`].
    pub token: String,
    /// Name of the token's user, [`TEST_USER`].
    pub user: String,
    /// PEM of the CA that signed the apiserver's serving certificate.
    pub ca_pem: Vec<u8>,
    /// The same CA as a file.
    pub ca_cert_path: PathBuf,
    /// JSON-lines audit log of the apiserver (level Metadata).
    pub audit_log_path: PathBuf,
    /// `gitVersion` reported by the apiserver's `/version`.
    pub k8s_version: String,
    /// Names of the fake nodes, in zone order.
    pub node_names: Vec<String>,
    /// Wall time from the call to [`testbed()`] until ready (build excluded).
    pub start_duration: Duration,
    client: reqwest::blocking::Client,
    /// kube-apiserver's command line, for [`Testbed::restart_apiserver`].
    apiserver_args: Vec<String>,
}

/// The process-wide testbed: built and started by the first caller.
/// A failed start is remembered: the other tests fail at once with the same
/// error instead of trying again.
pub fn testbed() -> &'static Testbed {
    static TB: OnceLock<Result<Testbed, String>> = OnceLock::new();
    match TB.get_or_init(start) {
        Ok(tb) => tb,
        Err(e) => panic!("testbed failed to start: {e}"),
    }
}

// ---------------------------------------------------------------------------
// Public helpers

impl Testbed {
    /// An HTTP client that trusts only the testbed CA and sends the test
    /// user's bearer token.
    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    /// `server_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server_url, path)
    }

    /// GET `path`, expecting 2xx and a JSON body.
    pub fn get_json(&self, path: &str) -> Result<Value, String> {
        let r = self.client.get(self.url(path)).send();
        json_response("GET", path, r)
    }

    /// GET `path`; `Ok(None)` on 404.
    pub fn get_opt(&self, path: &str) -> Result<Option<Value>, String> {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .map_err(|e| format!("GET {path}: {e}"))?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        json_response("GET", path, Ok(r)).map(Some)
    }

    /// POST a JSON object to `path`, expecting 2xx.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, String> {
        let r = self.client.post(self.url(path)).json(body).send();
        json_response("POST", path, r)
    }

    /// DELETE `path`, expecting 2xx or 404.
    pub fn delete(&self, path: &str) -> Result<(), String> {
        let r = self
            .client
            .delete(self.url(path))
            .send()
            .map_err(|e| format!("DELETE {path}: {e}"))?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        json_response("DELETE", path, Ok(r)).map(|_| ())
    }

    /// Server-side apply of `obj` (JSON is YAML) at the object's `path`
    /// (e.g. `/apis/apps/v1/namespaces/ns/deployments/web`), with
    /// `fieldManager=manager` and `force=true`.
    pub fn apply(&self, path: &str, manager: &str, obj: &Value) -> Result<Value, String> {
        let r = self
            .client
            .patch(self.url(path))
            .query(&[("fieldManager", manager), ("force", "true")])
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/apply-patch+yaml",
            )
            .body(obj.to_string())
            .send();
        json_response("PATCH", path, r)
    }

    /// A name unique in this test run, for a test's own namespace, workspace
    /// or app: `<prefix>-<pid>-<n>`, at most 63 characters.
    pub fn unique_name(&self, prefix: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let mut s = format!("{prefix}-{}-{n}", std::process::id());
        s.truncate(63);
        s
    }

    /// A kubeconfig for the testbed, written to `dir/<who>.kubeconfig`,
    /// that authenticates as [`TEST_USER`] and impersonates user `who` in
    /// `groups` (none: the API server adds only `system:authenticated`).
    /// The audit log names the impersonated user in `impersonatedUser`,
    /// and RBAC grants the impersonated user only what its bindings give.
    pub fn impersonating_kubeconfig(&self, dir: &Path, who: &str, groups: &[&str]) -> PathBuf {
        let text = fs::read_to_string(&self.kubeconfig_path).unwrap();
        let token_line = format!("    token: {}\n", self.token);
        assert!(text.contains(&token_line));
        let mut extra = format!("    as: {who}\n");
        if !groups.is_empty() {
            let quoted: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
            extra.push_str(&format!("    as-groups: [{}]\n", quoted.join(", ")));
        }
        let text = text.replace(&token_line, &format!("{token_line}{extra}"));
        let path = dir.join(format!("{who}.kubeconfig"));
        fs::write(&path, text).unwrap();
        path
    }

    /// Every event of the audit log so far (one JSON object per line).
    pub fn audit_events(&self) -> Vec<Value> {
        self.audit_events_since(0)
    }

    /// The audit log's current length: pass it to
    /// [`Testbed::audit_events_since`] to see only later requests.
    pub fn audit_mark(&self) -> u64 {
        fs::metadata(&self.audit_log_path)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Audit events written after `mark` (see [`Testbed::audit_mark`]).
    /// With `--audit-log-mode=blocking` an event is written before the
    /// response is sent, for small responses; poll briefly for large ones.
    pub fn audit_events_since(&self, mark: u64) -> Vec<Value> {
        let mut buf = Vec::new();
        if let Ok(mut f) = fs::File::open(&self.audit_log_path) {
            use std::io::Seek;
            if f.seek(std::io::SeekFrom::Start(mark)).is_ok() {
                let _ = f.read_to_end(&mut buf);
            }
        }
        buf.split(|&b| b == b'\n')
            .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
            .collect()
    }

    /// Write requests (create/update/patch/delete) that [`TEST_USER`] — the
    /// identity kompoxops runs as in tests — made since `mark` on objects in
    /// `ns` or on the namespace object itself, as `"verb" "uri"`. Only the
    /// test user counts: the controllers of the testbed keep writing
    /// (EndpointSlices, ReplicaSets) on their own schedule.
    pub fn test_user_writes_in(&self, mark: u64, ns: &str) -> Vec<String> {
        self.audit_events_since(mark)
            .into_iter()
            .filter(|e| {
                matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete")
                )
            })
            .filter(|e| e["user"]["username"] == TEST_USER)
            .filter(|e| e["objectRef"]["namespace"] == ns || e["objectRef"]["name"] == ns)
            .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
            .collect()
    }

    /// Polls `f` every 250 ms until it returns `Some`, or panics after
    /// `timeout` naming `what`.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        match poll(timeout, f) {
            Some(v) => v,
            None => panic!("testbed: timed out after {timeout:?} waiting for {what}"),
        }
    }

    /// Kills kube-apiserver (SIGKILL: no graceful shutdown, requests in
    /// flight are cut off; etcd keeps the data), starts it again with the
    /// same flags, port, certificates and audit log (appended to), and
    /// waits until `/readyz` is OK. Returns the time from the kill until
    /// ready. The new process is spawned like the first one (from the
    /// spawner thread with the death signal, its pid added to the
    /// watchdog's list, stopped by the exit handler).
    ///
    /// Every test in the binary shares the testbed, so a test that calls
    /// this belongs in a test binary of its own.
    pub fn restart_apiserver(&self) -> Result<Duration, String> {
        self.restart_apiserver_down_for(Duration::ZERO)
    }

    /// [`Testbed::restart_apiserver`], starting the new process only `down`
    /// after the kill (its port refuses connections meanwhile).
    pub fn restart_apiserver_down_for(&self, down: Duration) -> Result<Duration, String> {
        const NAME: &str = "kube-apiserver";
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let t = Instant::now();
        {
            let mut procs = PROCS.lock().unwrap_or_else(|e| e.into_inner());
            let p = procs
                .iter_mut()
                .find(|p| p.name == NAME)
                .ok_or("kube-apiserver is not running")?;
            // kill(2) only a child not yet reaped (its pid cannot have been
            // reused); wait() reaps it, so its port is free again.
            if let Ok(None) = p.child.try_wait() {
                p.child
                    .kill()
                    .map_err(|e| format!("kill kube-apiserver: {e}"))?;
            }
            let status = p
                .child
                .wait()
                .map_err(|e| format!("wait for kube-apiserver: {e}"))?;
            progress(&format!(
                "kube-apiserver stopped ({status}); starting it again in {:.1}s",
                down.as_secs_f64()
            ));
            std::thread::sleep(down);
            // Replaced in place: the exit handler's stop order stays the same.
            p.child = spawn_proc(&self.dir, &self.bin_dir, NAME, &self.apiserver_args)?;
        }
        let readyz = self.url("/readyz");
        wait_ready(&self.dir, "kube-apiserver /readyz after a restart", || {
            self.client
                .get(&readyz)
                .timeout(Duration::from_secs(5))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        })?;
        let took = t.elapsed();
        progress(&format!(
            "kube-apiserver ready again {:.1}s after the kill",
            took.as_secs_f64()
        ));
        Ok(took)
    }
}

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------
// Progress output: straight to the process's stderr, past libtest's capture.

static T0: OnceLock<Instant> = OnceLock::new();

fn progress(msg: &str) {
    let t = T0.get_or_init(Instant::now).elapsed().as_secs_f64();
    let _ = writeln!(std::io::stderr(), "[testbed +{t:6.1}s] {msg}");
}

// ---------------------------------------------------------------------------
// Child processes and cleanup

struct Proc {
    name: &'static str,
    child: Child,
}

/// Children in start order, and the state the exit handler needs.
static PROCS: Mutex<Vec<Proc>> = Mutex::new(Vec::new());
static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);

struct Cleanup {
    dir: PathBuf,
    keep: bool,
    watchdog: Option<Child>,
}

/// Starts `bin` with `args`, output to `<dir>/logs/<name>.log`, a clean
/// environment (HOME = the testbed dir), and records it for cleanup.
fn start_proc(
    dir: &Path,
    bin_dir: &Path,
    name: &'static str,
    args: &[String],
) -> Result<(), String> {
    let child = spawn_proc(dir, bin_dir, name, args)?;
    PROCS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Proc { name, child });
    Ok(())
}

/// Spawns `bin` with `args` (see [`start_proc`]) and appends its pid to
/// `<dir>/pids` for the watchdog; the caller records it in [`PROCS`]. The
/// log is appended to, so a restarted component keeps its earlier output.
fn spawn_proc(
    dir: &Path,
    bin_dir: &Path,
    name: &'static str,
    args: &[String],
) -> Result<Child, String> {
    let log_path = dir.join("logs").join(format!("{name}.log"));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("create {log_path:?}: {e}"))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin_dir.join(name));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", "/usr/bin:/bin")
        .env("TMPDIR", dir.join("tmp"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let child = child::spawn_tied(cmd).map_err(|e| format!("spawn {name}: {e}"))?;
    let mut pids = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("pids"))
        .map_err(|e| e.to_string())?;
    let _ = writeln!(pids, "{}", child.id());
    Ok(child)
}

/// `Err` with the log tail if a started process has exited.
fn check_alive(dir: &Path) -> Result<(), String> {
    let mut procs = PROCS.lock().unwrap_or_else(|e| e.into_inner());
    for p in procs.iter_mut() {
        if let Ok(Some(status)) = p.child.try_wait() {
            return Err(format!(
                "{} exited ({status}); last lines of its log:\n{}",
                p.name,
                log_tail(dir, p.name, 40)
            ));
        }
    }
    Ok(())
}

fn log_tail(dir: &Path, name: &str, n: usize) -> String {
    let text = fs::read_to_string(dir.join("logs").join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Stops the children in reverse start order: SIGTERM, then SIGKILL after
/// `grace`. Safe to call more than once. Returns the names that needed
/// SIGKILL.
fn stop_all(grace: Duration) -> Vec<&'static str> {
    let mut killed = Vec::new();
    let Ok(mut procs) = PROCS.try_lock() else {
        return killed;
    };
    // kwok, scheduler and controller-manager first (all together), then the
    // apiserver, then etcd, so nothing logs errors about a missing server.
    let mut groups: Vec<Vec<Proc>> = Vec::new();
    let mut clients = Vec::new();
    for p in procs.drain(..).rev() {
        match p.name {
            "kube-apiserver" | "etcd" => groups.push(vec![p]),
            _ => clients.push(p),
        }
    }
    groups.insert(0, clients);
    for mut group in groups {
        for p in &mut group {
            // Only a child not yet reaped: its pid cannot have been reused.
            if let Ok(None) = p.child.try_wait() {
                // SAFETY: plain kill(2) on our own, still running child.
                unsafe { libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + grace;
        for p in &mut group {
            loop {
                match p.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        killed.push(p.name);
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
    killed
}

extern "C" fn at_exit() {
    let t = Instant::now();
    // 2 s: the apiserver sometimes waits 5 s in http.Server.Shutdown for a
    // loopback connection that never sent a request; its state is thrown
    // away anyway (the audit log is written synchronously).
    let killed = stop_all(Duration::from_secs(2));
    if !killed.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "[testbed] SIGKILL after 2 s: {}",
            killed.join(", ")
        );
    }
    let Ok(mut cleanup) = CLEANUP.try_lock() else {
        return;
    };
    if let Some(c) = cleanup.as_mut() {
        if c.keep {
            let _ = writeln!(
                std::io::stderr(),
                "[testbed] stopped in {:.1}s; kept {}",
                t.elapsed().as_secs_f64(),
                c.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&c.dir);
            let _ = writeln!(
                std::io::stderr(),
                "[testbed] stopped and removed in {:.1}s",
                t.elapsed().as_secs_f64()
            );
        }
        if let Some(mut w) = c.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// A shell that outlives us: once our pid is gone it kills the listed
/// children that are still running in `dir` (pids checked against their
/// command line) and removes `dir`.
fn start_watchdog(dir: &Path, keep: bool) -> Option<Child> {
    let script = r#"
while kill -0 "$1" 2>/dev/null; do sleep 1; done
for p in $(cat "$2/pids" 2>/dev/null); do
  if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$2"; then kill -9 "$p"; fi
done
[ "$3" = keep ] || rm -rf -- "$2"
"#;
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("kompox-testbed-watchdog")
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg(if keep { "keep" } else { "remove" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()
}

/// Removes `kompox-testbed-*` dirs whose owning process is gone, killing
/// any of their processes that survived (e.g. after `kill -9` of a test).
fn clean_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DIR_PREFIX) || !e.path().is_dir() {
            continue;
        }
        let dir = e.path();
        let owner = fs::read_to_string(dir.join("owner"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let stale = match owner {
            Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
            // No owner file: only if it is clearly not being created now.
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600))
                .unwrap_or(false),
        };
        if !stale {
            continue;
        }
        let dir_s = dir.to_string_lossy().into_owned();
        for pid in fs::read_to_string(dir.join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
        {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&dir_s) {
                // SAFETY: kill(2) of a leftover testbed process, identified
                // by its pid *and* its command line naming the stale dir.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        progress(&format!("removing stale {}", dir.display()));
        let _ = fs::remove_dir_all(&dir);
    }
}

// ---------------------------------------------------------------------------
// Start-up

fn start() -> Result<Testbed, String> {
    T0.get_or_init(Instant::now);
    clean_stale_dirs();
    let bin_dir = build()?;
    let t = Instant::now();
    // A port picked free may be taken by the time a server binds it; one
    // retry with new ports covers that race.
    let mut last_err = String::new();
    for attempt in 1..=2 {
        match start_once(&bin_dir, t) {
            Ok(tb) => return Ok(tb),
            Err(e) => {
                progress(&format!("start attempt {attempt} failed: {e}"));
                let _ = stop_all(Duration::from_secs(2));
                if let Some(c) = CLEANUP.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    if !c.keep {
                        let _ = fs::remove_dir_all(&c.dir);
                    }
                    if let Some(mut w) = c.watchdog {
                        let _ = w.kill();
                        let _ = w.wait();
                    }
                }
                last_err = e;
            }
        }
    }
    Err(last_err)
}

/// Runs `tests/testbed/build.sh` (a quick no-op when the cache is warm) and
/// returns the bin dir it prints last.
fn build() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/build.sh");
    progress(&format!("checking binaries ({})", script.display()));
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bin = stdout
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .ok_or("build.sh printed no bin dir")?;
    Ok(PathBuf::from(bin.trim()))
}

fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    // Hold all listeners at once so the ports are distinct.
    let ls: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    ls.iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect()
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running openssl (Debian package `openssl`): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// CA, serving certificate for 127.0.0.1/localhost, service-account key.
fn make_pki(pki: &Path) -> Result<(), String> {
    fs::create_dir_all(pki).map_err(|e| e.to_string())?;
    fs::write(
        pki.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth,clientAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .map_err(|e| e.to_string())?;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "7"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=kompox-testbed-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(pki, &ca)?;
    let mut csr = vec!["req", "-new", "-nodes"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(pki, &csr)?;
    let serial = format!("0x{}", random_hex(16)?);
    openssl(
        pki,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial,
            "-days",
            "7",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    )?;
    openssl(
        pki,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "sa.key",
        ],
    )?;
    openssl(pki, &["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(())
}

fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &[u8],
    user: &str,
    token: &str,
) -> Result<(), String> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kompox-testbed
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: kompox-testbed
  context:
    cluster: kompox-testbed
    user: {user}
current-context: kompox-testbed
"
    );
    fs::write(path, text).map_err(|e| format!("write {path:?}: {e}"))
}

const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
";

fn s(v: impl Into<String>) -> String {
    v.into()
}

fn start_once(bin_dir: &Path, t: Instant) -> Result<Testbed, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{nanos}", std::process::id()));
    for sub in ["", "logs", "tmp", "pki"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| format!("mkdir {dir:?}/{sub}: {e}"))?;
    }
    fs::write(dir.join("owner"), std::process::id().to_string()).map_err(|e| e.to_string())?;
    let keep = std::env::var_os("KOMPOX_TESTBED_KEEP").is_some_and(|v| !v.is_empty() && v != "0");
    {
        static REGISTERED: OnceLock<()> = OnceLock::new();
        REGISTERED.get_or_init(|| {
            // SAFETY: registers a plain extern "C" fn with no arguments.
            unsafe { libc::atexit(at_exit) };
        });
        let watchdog = start_watchdog(&dir, keep);
        *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cleanup {
            dir: dir.clone(),
            keep,
            watchdog,
        });
    }
    progress(&format!("dir {}", dir.display()));

    let pki = dir.join("pki");
    make_pki(&pki)?;
    let ca_pem = fs::read(pki.join("ca.crt")).map_err(|e| e.to_string())?;
    let p = |f: &str| pki.join(f).to_string_lossy().into_owned();

    let ports = free_ports(5)?;
    let (etcd_port, peer_port, api_port, kcm_port, sched_port) =
        (ports[0], ports[1], ports[2], ports[3], ports[4]);
    let server_url = format!("https://127.0.0.1:{api_port}");

    // Identities: the test user, and one per component so the audit log
    // tells the writers apart.
    let token = random_hex(16)?;
    let kcm_token = random_hex(16)?;
    let sched_token = random_hex(16)?;
    let kwok_token = random_hex(16)?;
    fs::write(
        dir.join("tokens.csv"),
        format!(
            "{token},{TEST_USER},{TEST_USER},\"system:masters\"\n\
             {kcm_token},system:kube-controller-manager,system:kube-controller-manager\n\
             {sched_token},system:kube-scheduler,system:kube-scheduler\n\
             {kwok_token},kwok-controller,kwok-controller,\"system:masters\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let kubeconfig_path = dir.join("kubeconfig");
    write_kubeconfig(&kubeconfig_path, &server_url, &ca_pem, TEST_USER, &token)?;
    let kc = |name: &str, user: &str, tok: &str| -> Result<String, String> {
        let path = dir.join(format!("{name}.kubeconfig"));
        write_kubeconfig(&path, &server_url, &ca_pem, user, tok)?;
        Ok(path.to_string_lossy().into_owned())
    };
    let kcm_kc = kc(
        "kube-controller-manager",
        "system:kube-controller-manager",
        &kcm_token,
    )?;
    let sched_kc = kc("kube-scheduler", "system:kube-scheduler", &sched_token)?;
    let kwok_kc = kc("kwok", "kwok-controller", &kwok_token)?;
    let audit_log_path = dir.join("audit.log");
    fs::write(dir.join("audit-policy.yaml"), AUDIT_POLICY).map_err(|e| e.to_string())?;
    let d = |f: &str| dir.join(f).to_string_lossy().into_owned();

    let ca_cert = reqwest::Certificate::from_pem(&ca_pem).map_err(|e| e.to_string())?;
    let builder = || {
        reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca_cert.clone())
            .no_proxy()
            .timeout(Duration::from_secs(30))
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}")
            .parse()
            .map_err(|e| format!("{e}"))?,
    );
    let client = builder()
        .default_headers(headers)
        .build()
        .map_err(|e| e.to_string())?;
    let anon = builder().build().map_err(|e| e.to_string())?;

    // --- etcd
    progress(&format!("starting etcd on 127.0.0.1:{etcd_port}"));
    start_proc(
        &dir,
        bin_dir,
        "etcd",
        &[
            s("--name=testbed"),
            format!("--data-dir={}", d("etcd")),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=testbed=http://127.0.0.1:{peer_port}"),
            s("--unsafe-no-fsync=true"),
            s("--quota-backend-bytes=8589934592"),
            s("--log-level=warn"),
        ],
    )?;
    let etcd_health = format!("http://127.0.0.1:{etcd_port}/health");
    wait_ready(&dir, "etcd /health", || {
        anon.get(&etcd_health)
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.text().ok())
            .filter(|b| b.contains("\"true\""))
            .map(|_| ())
    })?;

    // --- kube-apiserver
    progress(&format!("starting kube-apiserver on {server_url}"));
    let apiserver_args = vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        s("--bind-address=127.0.0.1"),
        s("--advertise-address=127.0.0.1"),
        format!("--secure-port={api_port}"),
        format!("--cert-dir={}", d("tmp")),
        format!("--tls-cert-file={}", p("server.crt")),
        format!("--tls-private-key-file={}", p("server.key")),
        format!("--client-ca-file={}", p("ca.crt")),
        format!("--token-auth-file={}", d("tokens.csv")),
        s("--authorization-mode=Node,RBAC"),
        s("--service-account-issuer=https://kubernetes.default.svc.cluster.local"),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        // Room for thousands of Services (benchmarks); nothing dials them.
        s("--service-cluster-ip-range=10.96.0.0/16"),
        s("--allow-privileged=true"),
        // Loopback addresses are invalid in Endpoints; nothing needs them.
        s("--endpoint-reconciler-type=none"),
        // Pods leave a NotReady node 5 s after the taint (default 300 s).
        s("--default-not-ready-toleration-seconds=5"),
        s("--default-unreachable-toleration-seconds=5"),
        format!("--audit-policy-file={}", d("audit-policy.yaml")),
        format!("--audit-log-path={}", audit_log_path.display()),
        s("--audit-log-format=json"),
        s("--audit-log-mode=blocking"),
        s("--audit-log-maxbackup=0"),
        s("--profiling=false"),
    ];
    start_proc(&dir, bin_dir, "kube-apiserver", &apiserver_args)?;
    let readyz = format!("{server_url}/readyz");
    wait_ready(&dir, "kube-apiserver /readyz", || {
        client
            .get(&readyz)
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })?;
    let version: Value = client
        .get(format!("{server_url}/version"))
        .send()
        .and_then(|r| r.json())
        .map_err(|e| format!("GET /version: {e}"))?;
    let k8s_version = version["gitVersion"].as_str().unwrap_or("?").to_string();
    progress(&format!("kube-apiserver {k8s_version} ready"));

    // --- kube-controller-manager, kube-scheduler, kwok
    start_proc(
        &dir,
        bin_dir,
        "kube-controller-manager",
        &[
            format!("--kubeconfig={kcm_kc}"),
            s("--bind-address=127.0.0.1"),
            format!("--secure-port={kcm_port}"),
            format!("--cert-dir={}", d("tmp")),
            format!("--tls-cert-file={}", p("server.crt")),
            format!("--tls-private-key-file={}", p("server.key")),
            s("--leader-elect=false"),
            s("--controllers=*"),
            s("--use-service-account-credentials=true"),
            format!("--root-ca-file={}", p("ca.crt")),
            format!("--service-account-private-key-file={}", p("sa.key")),
            s("--node-monitor-period=2s"),
            s("--node-monitor-grace-period=40s"),
            s("--kube-api-qps=200"),
            s("--kube-api-burst=400"),
            s("--profiling=false"),
        ],
    )?;
    start_proc(
        &dir,
        bin_dir,
        "kube-scheduler",
        &[
            format!("--kubeconfig={sched_kc}"),
            s("--bind-address=127.0.0.1"),
            format!("--secure-port={sched_port}"),
            format!("--cert-dir={}", d("tmp")),
            format!("--tls-cert-file={}", p("server.crt")),
            format!("--tls-private-key-file={}", p("server.key")),
            s("--leader-elect=false"),
            s("--profiling=false"),
        ],
    )?;
    start_proc(
        &dir,
        bin_dir,
        "kwok",
        &[
            format!("--kubeconfig={kwok_kc}"),
            // Stages from build.sh: node initialize + lease heartbeat, pod
            // ready/complete/delete, and the node-not-ready chaos stage
            // (label `node-not-ready.stage.kwok.x-k8s.io=true`).
            format!("--config={}", bin_dir.join("kwok-stages.yaml").display()),
            s("--manage-all-nodes=false"),
            s("--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake"),
            s("--manage-nodes-with-label-selector="),
            s("--manage-single-node="),
            s("--cidr=10.244.0.1/16"),
            s("--node-ip=127.0.0.1"),
            s("--node-lease-duration-seconds=40"),
        ],
    )?;

    // --- cluster objects: default StorageClass and the fake nodes
    let tb = Testbed {
        dir: dir.clone(),
        bin_dir: bin_dir.to_path_buf(),
        kubeconfig_path,
        server_url: server_url.clone(),
        token,
        user: TEST_USER.to_string(),
        ca_pem,
        ca_cert_path: pki.join("ca.crt"),
        audit_log_path,
        k8s_version,
        node_names: Vec::new(),
        start_duration: Duration::ZERO,
        client,
        apiserver_args,
    };
    tb.post_json(
        "/apis/storage.k8s.io/v1/storageclasses",
        &json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete"
        }),
    )?;
    let mut node_names = Vec::new();
    for zone in ZONES {
        let z = zone.trim_start_matches("zone-");
        for i in 1..=2 {
            let name = format!("node-{z}{i}");
            tb.post_json("/api/v1/nodes", &fake_node(&name, zone))?;
            node_names.push(name);
        }
    }
    progress(&format!(
        "created StorageClass {STORAGE_CLASS} and nodes {}",
        node_names.join(", ")
    ));

    // --- wait for the rest to be up
    let kcm_health = format!("https://127.0.0.1:{kcm_port}/healthz");
    wait_ready(&dir, "kube-controller-manager /healthz", || {
        anon.get(&kcm_health)
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })?;
    let sched_health = format!("https://127.0.0.1:{sched_port}/healthz");
    wait_ready(&dir, "kube-scheduler /healthz", || {
        anon.get(&sched_health)
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })?;
    // The serviceaccount controller has run: pods can be admitted.
    wait_ready(&dir, "ServiceAccount default/default", || {
        tb.get_opt("/api/v1/namespaces/default/serviceaccounts/default")
            .ok()
            .flatten()
            .map(|_| ())
    })?;
    // kwok has taken the nodes, and node-lifecycle removed the not-ready taint.
    wait_ready(&dir, "6 nodes Ready and untainted", || {
        let list = tb.get_json("/api/v1/nodes").ok()?;
        let items = list["items"].as_array()?;
        let ready = items
            .iter()
            .filter(|n| {
                node_ready(n) && n["spec"]["taints"].as_array().is_none_or(|t| t.is_empty())
            })
            .count();
        (ready == node_names.len()).then_some(())
    })?;
    let start_duration = t.elapsed();
    progress(&format!(
        "ready in {:.1}s: {server_url} (kubeconfig {})",
        start_duration.as_secs_f64(),
        tb.kubeconfig_path.display()
    ));
    Ok(Testbed {
        node_names,
        start_duration,
        ..tb
    })
}

fn wait_ready(dir: &Path, what: &str, mut f: impl FnMut() -> Option<()>) -> Result<(), String> {
    let mut failed = None;
    let ok = poll(PHASE_TIMEOUT, || {
        if let Err(e) = check_alive(dir) {
            failed = Some(e);
            return Some(false);
        }
        f().map(|_| true)
    });
    match (ok, failed) {
        (_, Some(e)) => Err(e),
        (Some(true), None) => Ok(()),
        _ => {
            let logs: Vec<String> = PROCS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|p| format!("--- {}:\n{}", p.name, log_tail(dir, p.name, 15)))
                .collect();
            Err(format!(
                "timed out after {PHASE_TIMEOUT:?} waiting for {what}\n{}",
                logs.join("\n")
            ))
        }
    }
}

/// Whether a Node object has condition Ready=True.
pub fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn fake_node(name: &str, zone: &str) -> Value {
    let resources =
        json!({"cpu": "64", "memory": "512Gi", "pods": "250", "ephemeral-storage": "1Ti"});
    let labels: HashMap<&str, &str> = HashMap::from([
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("type", "kwok"),
        ("topology.kubernetes.io/zone", zone),
        ("topology.kubernetes.io/region", REGION),
        ("kompox.dev/node-pool", "user"),
        ("kompox.dev/node-zone", zone),
    ]);
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0"
            }
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources
        }
    })
}

/// Lines of a file (e.g. a component log) for diagnostics.
pub fn read_lines(path: &Path) -> Vec<String> {
    fs::File::open(path)
        .map(|f| {
            std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .collect()
        })
        .unwrap_or_default()
}
