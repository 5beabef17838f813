//! A real Gitea forge on 127.0.0.1 for the pull-request tests: REST API,
//! Git over HTTP, commit statuses and webhooks, backed by SQLite.
//!
//! Include it from a test file with
//!
//! ```ignore
//! #[path = "support/gitea.rs"]
//! mod gitea;
//! ```
//!
//! and call [`gitea()`]. The first test that does so builds the binary if it
//! is missing from the cache (`tests/testbed/build-gitea.sh`: Gitea from the
//! Go module proxy, into `~/.cache/kompox-testbed/gitea/<version>/gitea` or
//! under `$KOMPOX_TESTBED_CACHE`; measured on 2 cores: 272 s cold, well
//! under a second when current) and starts it (under a second: `migrate`,
//! the admin user, `web` answering); every test in that test
//! binary then shares the one Gitea. Tests isolate themselves by repository
//! ([`Gitea::unique_name`], [`Gitea::create_repo`]).
//!
//! What runs: `gitea web` with an `app.ini` written into a temp dir (SQLite
//! database, repositories, logs, all in that dir), after `gitea migrate` and
//! `gitea admin user create --admin` (which also makes the API token with
//! scope `all`). Everything is offline: no mailer, no update checker, no
//! SSH server, no Gravatar, Actions and packages off; webhooks may call
//! loopback hosts (`[webhook] ALLOWED_HOST_LIST = loopback`), so a test's
//! HTTP server on 127.0.0.1 receives them ([`HookSink`]).
//!
//! Cleanup (the pattern of `tests/support/testbed.rs`): Gitea is spawned
//! from one long-lived thread with `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so
//! the kernel kills it if the test process dies; an `atexit` handler stops
//! it (SIGTERM, then SIGKILL after 3 s) and removes the temp dir; the next
//! start removes stale `kompox-gitea-*` dirs whose owner process is gone.
//! Set `KOMPOX_GITEA_KEEP=1` to keep the temp dir (`log/gitea.log`,
//! `gitea.out`, the database) for debugging.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// The admin user that owns the test repositories and the token.
pub const USER: &str = "kompox-admin";
/// Its e-mail address.
pub const EMAIL: &str = "kompox-admin@example.com";
/// Prefix of the temp dirs under `std::env::temp_dir()`.
pub const DIR_PREFIX: &str = "kompox-gitea-";

/// How long Gitea may take to answer after `gitea web` starts.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running Gitea. Everything lives under [`Gitea::dir`].
pub struct Gitea {
    /// The temp dir: `app.ini`, `gitea.db`, `repos/`, `log/`, `gitea.out`.
    pub dir: PathBuf,
    /// The gitea binary (in the build cache).
    pub bin: PathBuf,
    pub port: u16,
    /// What `GET /api/v1/version` reports, e.g. `1.26.0`.
    pub version: String,
    /// Wall time from the call to [`gitea()`] until ready (build excluded).
    pub start_duration: Duration,
    base_url: String,
    password: String,
    token: String,
    client: reqwest::blocking::Client,
}

/// The process-wide Gitea: built and started by the first caller. A failed
/// start is remembered: the other tests fail at once with the same error.
pub fn gitea() -> &'static Gitea {
    static G: OnceLock<Result<Gitea, String>> = OnceLock::new();
    match G.get_or_init(start) {
        Ok(g) => g,
        Err(e) => panic!("gitea failed to start: {e}"),
    }
}

/// The path of the gitea binary, built on first use
/// (`tests/testbed/build-gitea.sh`; a no-op when the cache is current).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(build) {
        Ok(p) => p,
        Err(e) => panic!("gitea is not available: {e}"),
    }
}

// ---------------------------------------------------------------------------
// Accessors and REST helpers

impl Gitea {
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// An API token of [`USER`] with scope `all`
    /// (`Authorization: token <it>`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The admin user, [`USER`].
    pub fn user(&self) -> &str {
        USER
    }

    /// The admin user's password (basic auth for the API and Git over HTTP).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A client that sends the token and never uses a proxy.
    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    /// `base_url` + `/api/v1` + `path`.
    pub fn api_url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.base_url, path)
    }

    /// A name unique in this test run: `<prefix>-<pid>-<n>`.
    pub fn unique_name(&self, prefix: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{n}", std::process::id())
    }

    /// GET `/api/v1<path>` with the token, expecting 2xx and JSON.
    pub fn get_json(&self, path: &str) -> Result<Value, String> {
        let r = self.client.get(self.api_url(path)).send();
        json_response("GET", path, r)
    }

    /// POST a JSON body to `/api/v1<path>` with the token, expecting 2xx.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, String> {
        let r = self.client.post(self.api_url(path)).json(body).send();
        json_response("POST", path, r)
    }

    /// PATCH a JSON body to `/api/v1<path>` with the token, expecting 2xx.
    pub fn patch_json(&self, path: &str, body: &Value) -> Result<Value, String> {
        let r = self.client.patch(self.api_url(path)).json(body).send();
        json_response("PATCH", path, r)
    }

    /// DELETE `/api/v1<path>` with the token, expecting 2xx.
    pub fn delete(&self, path: &str) -> Result<(), String> {
        let r = self.client.delete(self.api_url(path)).send();
        json_response("DELETE", path, r).map(|_| ())
    }

    /// Creates an empty repository of [`USER`] (no initial commit, default
    /// branch `main`); returns its full name `owner/name`.
    pub fn create_repo(&self, name: &str) -> String {
        let v = self
            .post_json(
                "/user/repos",
                &json!({
                    "name": name,
                    "auto_init": false,
                    "default_branch": "main",
                    "private": false,
                }),
            )
            .unwrap_or_else(|e| panic!("create repo {name}: {e}"));
        v["full_name"]
            .as_str()
            .unwrap_or_else(|| panic!("create repo {name}: no full_name in {v}"))
            .to_string()
    }

    /// `http://127.0.0.1:<port>/<owner>/<repo>.git`.
    pub fn clone_url(&self, repo: &str) -> String {
        format!("{}/{repo}.git", self.base_url)
    }

    /// `http://<user>:<password>@127.0.0.1:<port>/<owner>/<repo>.git`, for
    /// `git push` (the user name and password need no escaping).
    pub fn clone_url_with_auth(&self, repo: &str) -> String {
        format!(
            "http://{USER}:{}@127.0.0.1:{}/{repo}.git",
            self.password, self.port
        )
    }

    /// Opens a pull request `head` → `base` in `repo`; returns its number.
    pub fn open_pull(&self, repo: &str, head: &str, base: &str, title: &str) -> u64 {
        let v = self
            .post_json(
                &format!("/repos/{repo}/pulls"),
                &json!({"head": head, "base": base, "title": title, "body": ""}),
            )
            .unwrap_or_else(|e| panic!("open pull request in {repo}: {e}"));
        v["number"]
            .as_u64()
            .unwrap_or_else(|| panic!("open pull request in {repo}: no number in {v}"))
    }

    /// The pull request (`GET /repos/{repo}/pulls/{number}`).
    pub fn pull(&self, repo: &str, number: u64) -> Value {
        self.get_json(&format!("/repos/{repo}/pulls/{number}"))
            .unwrap_or_else(|e| panic!("get pull request {repo}#{number}: {e}"))
    }

    /// The comments of issue or pull request `number`, oldest first, as
    /// `(id, body)`.
    pub fn comments(&self, repo: &str, number: u64) -> Vec<(i64, String)> {
        let v = self
            .get_json(&format!("/repos/{repo}/issues/{number}/comments"))
            .unwrap_or_else(|e| panic!("list comments of {repo}#{number}: {e}"));
        v.as_array()
            .unwrap_or_else(|| panic!("comments of {repo}#{number}: not an array: {v}"))
            .iter()
            .map(|c| {
                (
                    c["id"].as_i64().unwrap_or_default(),
                    c["body"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Posts a comment on issue or pull request `number`; returns its id.
    pub fn post_comment(&self, repo: &str, number: u64, body: &str) -> i64 {
        let v = self
            .post_json(
                &format!("/repos/{repo}/issues/{number}/comments"),
                &json!({ "body": body }),
            )
            .unwrap_or_else(|e| panic!("comment on {repo}#{number}: {e}"));
        v["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("comment on {repo}#{number}: no id in {v}"))
    }

    /// Replaces the body of comment `id`.
    pub fn edit_comment(&self, repo: &str, id: i64, body: &str) -> Value {
        self.patch_json(
            &format!("/repos/{repo}/issues/comments/{id}"),
            &json!({ "body": body }),
        )
        .unwrap_or_else(|e| panic!("edit comment {id} in {repo}: {e}"))
    }

    /// The commit statuses of `sha`, newest first
    /// (`GET /repos/{repo}/commits/{sha}/statuses?sort=leastindex`).
    ///
    /// Gitea's default order is `created_unix DESC`, with one-second
    /// resolution: statuses made in the same second come back oldest first.
    /// `sort=leastindex` orders by the per-commit `index` descending (the
    /// name is Gitea's), which is the creation order reversed.
    pub fn statuses(&self, repo: &str, sha: &str) -> Vec<Value> {
        let v = self
            .get_json(&format!(
                "/repos/{repo}/commits/{sha}/statuses?sort=leastindex&limit=50"
            ))
            .unwrap_or_else(|e| panic!("list statuses of {repo}@{sha}: {e}"));
        match v {
            Value::Array(a) => a,
            other => panic!("statuses of {repo}@{sha}: not an array: {other}"),
        }
    }

    /// Creates a commit status (`state`: pending, success, error, failure,
    /// warning); returns Gitea's answer.
    pub fn create_status(
        &self,
        repo: &str,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
        target_url: &str,
    ) -> Value {
        self.post_json(
            &format!("/repos/{repo}/statuses/{sha}"),
            &json!({
                "state": state,
                "context": context,
                "description": description,
                "target_url": target_url,
            }),
        )
        .unwrap_or_else(|e| panic!("create status on {repo}@{sha}: {e}"))
    }

    /// Adds an active webhook of type `gitea` (JSON body, HMAC-SHA256 of the
    /// body with `secret` in `X-Gitea-Signature`) for `events`, e.g.
    /// `["pull_request", "push"]`; returns its id.
    pub fn add_webhook(&self, repo: &str, url: &str, secret: &str, events: &[&str]) -> i64 {
        let v = self
            .post_json(
                &format!("/repos/{repo}/hooks"),
                &json!({
                    "type": "gitea",
                    "config": {"url": url, "content_type": "json", "secret": secret},
                    "events": events,
                    "active": true,
                }),
            )
            .unwrap_or_else(|e| panic!("add webhook to {repo}: {e}"));
        v["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("add webhook to {repo}: no id in {v}"))
    }

    /// A new local work directory whose `origin` is `repo` on this Gitea
    /// (with credentials in the URL), on branch `main`.
    pub fn workdir(&self, repo: &str) -> Workdir {
        Workdir::new(&self.clone_url_with_auth(repo))
    }

    /// Gitea's own log so far (`log/gitea.log`), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log").join("gitea.log")).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// Git over HTTP with the system `git`

// Shared with the other Git harness; see `child.rs` for the lint.
#[allow(clippy::duplicate_mod)]
#[path = "git_work.rs"]
mod git_work;
pub use git_work::Workdir;

// ---------------------------------------------------------------------------
// A loopback HTTP server that records webhook deliveries

/// One HTTP request as [`HookSink`] received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that answers every request `200 OK` and
/// records it: a webhook target. It lives as long as the process (one
/// thread blocked in `accept`); tests take deliveries with
/// [`HookSink::wait_for`].
#[derive(Clone)]
pub struct HookSink {
    pub port: u16,
    seen: Arc<Mutex<Vec<Delivery>>>,
}

impl HookSink {
    pub fn start() -> HookSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        std::thread::Builder::new()
            .name(format!("hook-sink-{port}"))
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    if let Some(d) = read_request(stream) {
                        seen2.lock().unwrap_or_else(|e| e.into_inner()).push(d);
                    }
                }
            })
            .expect("spawn the hook sink thread");
        HookSink { port, seen }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything received so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Polls until a delivery matches `pred`; `None` after `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Delivery) -> bool,
    ) -> Option<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(d) = self.deliveries().into_iter().find(|d| pred(d)) {
                return Some(d);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reads one request (headers, then `Content-Length` bytes) and answers
/// `200 OK`, closing the connection.
fn read_request(mut stream: TcpStream) -> Option<Delivery> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    Some(Delivery {
        method,
        path,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------
// Build and start

fn progress(msg: &str) {
    static T0: OnceLock<Instant> = OnceLock::new();
    let t = T0.get_or_init(Instant::now).elapsed().as_secs_f64();
    let _ = writeln!(std::io::stderr(), "[gitea +{t:6.1}s] {msg}");
}

fn build() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/build-gitea.sh");
    let t = Instant::now();
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
    let path = stdout
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .ok_or("build-gitea.sh printed no path")?;
    let path = PathBuf::from(path.trim());
    if !path.is_file() {
        return Err(format!(
            "build-gitea.sh printed {path:?}, which is not a file"
        ));
    }
    if t.elapsed().as_secs() > 5 {
        progress(&format!(
            "built {} in {:.0}s",
            path.display(),
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(path)
}

/// `n` random bytes from the kernel, hex-encoded.
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".into())
}

fn app_ini(dir: &Path, port: u16, secret_key: &str, internal_token: &str) -> String {
    let d = dir.display();
    let run_user = current_user();
    format!(
        r#"APP_NAME = kompox-test
RUN_USER = {run_user}
RUN_MODE = prod
WORK_PATH = {d}
; the tests and CI run as root; Gitea refuses that without this
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:{port}/
LOCAL_ROOT_URL = http://127.0.0.1:{port}/
APP_DATA_PATH = {d}/data
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false
; also no Gravatar or federated avatars
OFFLINE_MODE = true
ENABLE_PPROF = false
GRACEFUL_HAMMER_TIME = 2s

[database]
DB_TYPE = sqlite3
PATH = {d}/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = {d}/repos
DEFAULT_BRANCH = main
DISABLE_STARS = true

[security]
INSTALL_LOCK = true
SECRET_KEY = {secret_key}
INTERNAL_TOKEN = {internal_token}

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = false
ENABLE_NOTIFY_MAIL = false
DEFAULT_KEEP_EMAIL_PRIVATE = true
NO_REPLY_ADDRESS = noreply.invalid

[mailer]
ENABLED = false

[webhook]
; the tests' receivers listen on 127.0.0.1
ALLOWED_HOST_LIST = loopback
SKIP_TLS_VERIFY = true
DELIVER_TIMEOUT = 5

[log]
MODE = file
LEVEL = Info
ROOT_PATH = {d}/log

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[queue]
TYPE = channel

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[oauth2]
ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[cron.update_checker]
ENABLED = false

[other]
SHOW_FOOTER_VERSION = false
"#
    )
}

/// A `gitea` command with a clean environment: HOME in the temp dir, no
/// proxy variables (webhooks and Gitea's internal API calls honour them).
fn gitea_cmd(bin: &Path, dir: &Path, args: &[&str], config: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir.join("home"))
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("USER", current_user())
        .env("GITEA_WORK_DIR", dir)
        .stdin(Stdio::null());
    cmd
}

fn run_cli(bin: &Path, dir: &Path, args: &[&str], config: &Path) -> Result<Output, String> {
    let out = gitea_cmd(bin, dir, args, config)
        .output()
        .map_err(|e| format!("run gitea {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gitea {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

fn start() -> Result<Gitea, String> {
    let bin = binary().to_path_buf();
    let t0 = Instant::now();
    clean_stale_dirs();
    let dir = std::env::temp_dir().join(format!(
        "{DIR_PREFIX}{}-{}",
        std::process::id(),
        &random_hex(4)
    ));
    for sub in ["home", "data", "repos", "log"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("mkdir {dir:?}/{sub}: {e}"))?;
    }
    std::fs::write(dir.join("owner"), std::process::id().to_string())
        .map_err(|e| format!("write owner: {e}"))?;
    let keep = std::env::var_os("KOMPOX_GITEA_KEEP").is_some_and(|v| v != "0" && !v.is_empty());
    *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()) = Some((dir.clone(), keep));
    static AT_EXIT: OnceLock<()> = OnceLock::new();
    AT_EXIT.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn with no arguments.
        unsafe { libc::atexit(at_exit) };
    });

    let config = dir.join("app.ini");
    let secret_key = random_hex(32);
    let internal_token = random_hex(32);
    let password = format!("pw-{}", random_hex(12));
    let mut port = free_port();
    std::fs::write(&config, app_ini(&dir, port, &secret_key, &internal_token))
        .map_err(|e| format!("write app.ini: {e}"))?;

    // Schema first, then the admin user and its token, then the server.
    run_cli(&bin, &dir, &["migrate"], &config)?;
    let out = run_cli(
        &bin,
        &dir,
        &[
            "admin",
            "user",
            "create",
            "--admin",
            "--username",
            USER,
            "--password",
            &password,
            "--email",
            EMAIL,
            "--must-change-password=false",
            "--access-token",
            "--access-token-name",
            "kompox-test",
            "--access-token-scopes",
            "all",
        ],
        &config,
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Access token was successfully created..."))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            format!("no access token in the output of `admin user create`:\n{stdout}")
        })?;
    progress(&format!(
        "database and admin user ready in {:.1}s",
        t0.elapsed().as_secs_f64()
    ));

    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(
                reqwest::header::AUTHORIZATION,
                format!("token {token}").parse().unwrap(),
            );
            h
        })
        .build()
        .map_err(|e| format!("build HTTP client: {e}"))?;

    let mut attempt = 0;
    loop {
        attempt += 1;
        let out_path = dir.join("gitea.out");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .map_err(|e| format!("open {out_path:?}: {e}"))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = gitea_cmd(&bin, &dir, &["web"], &config);
        cmd.stdout(out).stderr(err);
        let child = child::spawn_tied(cmd).map_err(|e| format!("spawn gitea web: {e}"))?;
        *CHILD.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let base_url = format!("http://127.0.0.1:{port}");
        let version_url = format!("{base_url}/api/v1/version");
        let deadline = Instant::now() + START_TIMEOUT;
        let exited = loop {
            if let Some(v) = client
                .get(&version_url)
                .timeout(Duration::from_secs(2))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|r| r.json::<Value>().ok())
            {
                let version = v["version"].as_str().unwrap_or_default().to_string();
                let start_duration = t0.elapsed();
                progress(&format!(
                    "Gitea {version} ready at {base_url} in {:.1}s ({})",
                    start_duration.as_secs_f64(),
                    dir.display()
                ));
                return Ok(Gitea {
                    dir,
                    bin,
                    port,
                    version,
                    start_duration,
                    base_url,
                    password,
                    token,
                    client,
                });
            }
            let status = CHILD
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = status {
                break status;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer from {version_url} within {START_TIMEOUT:?}; {}",
                    logs_tail(&dir)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let logs = logs_tail(&dir);
        if attempt < 5 && logs.contains("address already in use") {
            // Someone took the port between choosing and binding it.
            port = free_port();
            std::fs::write(&config, app_ini(&dir, port, &secret_key, &internal_token))
                .map_err(|e| format!("write app.ini: {e}"))?;
            continue;
        }
        return Err(format!("gitea web exited ({exited}); {logs}"));
    }
}

fn logs_tail(dir: &Path) -> String {
    let tail = |p: PathBuf| {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "last lines of {}:\n{}",
            p.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    };
    format!(
        "{}\n{}",
        tail(dir.join("gitea.out")),
        tail(dir.join("log").join("gitea.log"))
    )
}

// ---------------------------------------------------------------------------
// Child process and cleanup

static CHILD: Mutex<Option<Child>> = Mutex::new(None);
/// The temp dir, and whether to keep it.
static CLEANUP: Mutex<Option<(PathBuf, bool)>> = Mutex::new(None);

extern "C" fn at_exit() {
    if let Ok(mut child) = CHILD.try_lock()
        && let Some(mut c) = child.take()
    {
        // Only a child not yet reaped: its pid cannot have been reused.
        if let Ok(None) = c.try_wait() {
            // SAFETY: kill(2) on our own, still running child.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
    if let Ok(cleanup) = CLEANUP.try_lock()
        && let Some((dir, keep)) = cleanup.as_ref()
    {
        if *keep {
            let _ = writeln!(std::io::stderr(), "[gitea] kept {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Removes `kompox-gitea-*` dirs whose owner process is gone (after a
/// `kill -9` of a test process; the kernel killed its Gitea).
fn clean_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DIR_PREFIX) || name.starts_with("kompox-gitea-work-") {
            continue;
        }
        let dir = e.path();
        let owner = std::fs::read_to_string(dir.join("owner"))
            .ok()
            .and_then(|s| s.trim().parse::<libc::pid_t>().ok());
        let Some(pid) = owner else { continue };
        // SAFETY: kill(pid, 0) only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
