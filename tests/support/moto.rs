//! moto, the AWS emulator from PyPI, as a real server on 127.0.0.1 for the
//! EKS/EBS driver tests: one `moto_server` per test binary, started by the
//! first test that asks ([`moto()`]), killed with the test process.
//!
//! Include it with
//!
//! ```ignore
//! #[path = "support/moto.rs"]
//! mod moto;
//! ```
//!
//! One server answers every service (EC2, EKS, STS) and region; the region
//! comes from the request's SigV4 scope. Tests share it and isolate
//! themselves by app id hash (tags), never by resetting it.
//!
//! [`FaultProxy`] is a loopback proxy a test puts in front of moto to
//! inject what moto never does: lost answers, throttling, slow or hung
//! connections, AWS-only errors, resources in intermediate states. moto is
//! installed by `.ci/run`; when it is missing the harness installs the
//! pinned version with pip itself, so plain `cargo test` works.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

// Each harness includes the shared spawner itself, so a test file need
// not know about it; a binary using two harnesses gets two spawner threads.
#[allow(clippy::duplicate_mod)]
#[path = "child.rs"]
mod child;

/// The moto release the tests were written against (testbed-notes §6).
pub const MOTO_VERSION: &str = "5.2.5";

pub struct Moto {
    pub port: u16,
    /// `http://127.0.0.1:<port>`: the endpoint override of every client.
    pub endpoint: String,
    /// moto's output (for failure messages).
    pub log: PathBuf,
}

static CHILD: Mutex<Option<Child>> = Mutex::new(None);

/// The process-wide moto server.
pub fn moto() -> &'static Moto {
    static M: OnceLock<Result<Moto, String>> = OnceLock::new();
    match M.get_or_init(start) {
        Ok(m) => m,
        Err(e) => panic!("moto failed to start: {e}"),
    }
}

impl Moto {
    /// The last lines moto printed.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// The environment every test process talking to moto gets: static
/// credentials, no instance metadata lookups, the endpoint override.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
    ]
}

fn installed() -> bool {
    Command::new("python3")
        .args([
            "-c",
            &format!("import moto, moto.server; assert moto.__version__ == '{MOTO_VERSION}'"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn install() -> Result<(), String> {
    eprintln!("moto: installing moto[server,ec2,eks]=={MOTO_VERSION} with pip");
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            &format!("moto[server,ec2,eks]=={MOTO_VERSION}"),
        ])
        .output()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pip install moto failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn start() -> Result<Moto, String> {
    if !installed() {
        install()?;
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("kompox-moto-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let log = dir.join("moto.log");
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ])
    // No proxy may divert anything, and moto needs no credentials.
    .env_remove("HTTP_PROXY")
    .env_remove("HTTPS_PROXY")
    .env_remove("http_proxy")
    .env_remove("https_proxy")
    .stdin(Stdio::null())
    .stdout(out)
    .stderr(err);
    let child = child::spawn_tied(cmd).map_err(|e| format!("spawn moto: {e}"))?;
    *CHILD.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    register_at_exit();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if answers(port) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "not answering on {endpoint} after 60 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Moto {
        port,
        endpoint,
        log,
    })
}

/// Whether moto answers `GET /moto-api/` with 200. Plain std I/O, so
/// [`moto()`] may be called from async tests too (a blocking HTTP client
/// would start and drop a runtime inside theirs).
fn answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

fn register_at_exit() {
    static AT_EXIT: OnceLock<()> = OnceLock::new();
    AT_EXIT.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn with no arguments.
        unsafe { libc::atexit(at_exit) };
    });
}

extern "C" fn at_exit() {
    if let Ok(mut child) = CHILD.try_lock()
        && let Some(mut c) = child.take()
    {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A fault a [`FaultProxy`] injects into a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward to moto (which acts on it), then close the connection
    /// without answering: a response lost on the way back.
    DropResponse,
    /// Answer `status` with an EC2 error body of `code` (an empty code
    /// sends a plain-text body, as a load balancer would), without
    /// forwarding: nothing happens at moto.
    Error { status: u16, code: String },
    /// Forward, then wait this long before answering (beyond the client's
    /// timeout, the answer arrives at a closed connection).
    Delay(Duration),
    /// Forward, then never answer: the client hangs until it is killed.
    Stall,
    /// Forward, then replace each `(from, to)` in the answer's body (e.g.
    /// to show a snapshot as `pending`, which moto never does).
    Rewrite(Vec<(String, String)>),
}

impl Fault {
    pub fn error(status: u16, code: &str) -> Fault {
        Fault::Error {
            status,
            code: code.to_string(),
        }
    }

    pub fn rewrite(pairs: &[(&str, &str)]) -> Fault {
        Fault::Rewrite(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The EC2 `Action` (`CreateVolume`), or `<METHOD> <path>` for REST
    /// services.
    pub action: String,
    /// The form parameters of an EC2 request (`ClientToken`, …).
    pub params: std::collections::BTreeMap<String, String>,
    pub fault: Option<Fault>,
    /// moto answered it (so it acted on it).
    pub forwarded: bool,
}

struct Rule {
    action: Option<String>,
    remaining: usize,
    fault: Fault,
}

struct Shared {
    upstream: std::net::SocketAddr,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    changed: std::sync::Condvar,
}

/// A loopback HTTP proxy in front of moto that injects [`Fault`]s into
/// chosen requests: lost responses, throttling, slow answers, hung
/// connections, rewritten answers. It records every request, so a test
/// can count what reached moto. One connection per request (it answers
/// `Connection: close`).
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: give this to the client instead of moto.
    pub endpoint: String,
    shared: std::sync::Arc<Shared>,
}

impl FaultProxy {
    /// A proxy in front of `moto`'s endpoint (`http://127.0.0.1:<port>`).
    pub fn start(upstream: &str) -> FaultProxy {
        let addr: std::net::SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream is http://127.0.0.1:<port>");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = std::sync::Arc::new(Shared {
            upstream: addr,
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            changed: std::sync::Condvar::new(),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let s = s.clone();
                    std::thread::spawn(move || proxy::serve(&s, conn));
                }
            })
            .expect("spawn the proxy thread");
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            shared,
        }
    }

    /// Injects `fault` into the next `times` requests of `action` (`None`:
    /// any request). Rules apply in the order they were added.
    pub fn fail(&self, action: Option<&str>, times: usize, fault: Fault) {
        self.shared.rules.lock().unwrap().push(Rule {
            action: action.map(str::to_string),
            remaining: times,
            fault,
        });
    }

    /// Drops every rule not used up yet.
    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests of one action so far.
    pub fn seen_action(&self, action: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.action == action)
            .collect()
    }

    /// Waits until moto has answered `n` requests of `action`.
    pub fn wait_forwarded(&self, action: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut seen = self.shared.seen.lock().unwrap();
        loop {
            let count = seen
                .iter()
                .filter(|s| s.action == action && s.forwarded)
                .count();
            if count >= n {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            seen = self
                .shared
                .changed
                .wait_timeout(seen, deadline - now)
                .unwrap()
                .0;
        }
    }
}

mod proxy {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::time::Duration;

    use super::{Fault, Seen, Shared};

    struct Request {
        head: Vec<String>,
        body: Vec<u8>,
    }

    fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if line.is_empty() {
                break;
            }
            head.push(line);
        }
        let len = head
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        Some(Request { head, body })
    }

    fn url_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn form(body: &[u8]) -> BTreeMap<String, String> {
        String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((url_decode(k), url_decode(v)))
            })
            .collect()
    }

    fn error_response(status: u16, code: &str) -> Vec<u8> {
        let (ctype, body) = if code.is_empty() {
            ("text/plain", "Service Unavailable".to_string())
        } else {
            (
                "text/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
                ),
            )
        };
        format!(
            "HTTP/1.1 {status} Injected\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Sends the request to moto and reads its whole answer (moto closes
    /// the connection after it, as asked).
    fn forward(upstream: std::net::SocketAddr, req: &Request) -> std::io::Result<Vec<u8>> {
        let mut up = TcpStream::connect(upstream)?;
        up.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut out = Vec::new();
        for (i, h) in req.head.iter().enumerate() {
            let name = h.split(':').next().unwrap_or("").trim();
            if i > 0
                && (name.eq_ignore_ascii_case("connection")
                    || name.eq_ignore_ascii_case("keep-alive"))
            {
                continue;
            }
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&req.body);
        up.write_all(&out)?;
        let mut resp = Vec::new();
        up.read_to_end(&mut resp)?;
        Ok(resp)
    }

    fn dechunk(mut b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&b[..pos]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or(0);
            b = &b[pos + 2..];
            if size == 0 || b.len() < size {
                break;
            }
            out.extend_from_slice(&b[..size]);
            b = &b[(size + 2).min(b.len())..];
        }
        out
    }

    /// The answer with each `from` replaced by its `to` in its body,
    /// re-framed with a Content-Length.
    fn rewrite(resp: &[u8], pairs: &[(String, String)]) -> Vec<u8> {
        let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
            return resp.to_vec();
        };
        let head = String::from_utf8_lossy(&resp[..split]).into_owned();
        let raw = &resp[split + 4..];
        let chunked = head.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("transfer-encoding:") && l.contains("chunked")
        });
        let body = if chunked { dechunk(raw) } else { raw.to_vec() };
        let mut body = String::from_utf8_lossy(&body).into_owned();
        for (from, to) in pairs {
            body = body.replace(from.as_str(), to);
        }
        let mut out = String::new();
        for l in head.lines() {
            let lower = l.to_ascii_lowercase();
            if lower.starts_with("content-length:")
                || lower.starts_with("transfer-encoding:")
                || lower.starts_with("connection:")
            {
                continue;
            }
            out.push_str(l);
            out.push_str("\r\n");
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        out.push_str(&body);
        out.into_bytes()
    }

    pub(super) fn serve(s: &Shared, conn: TcpStream) {
        let Ok(read_half) = conn.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(read_half);
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        let params = form(&req.body);
        let action = params.get("Action").cloned().unwrap_or_else(|| {
            let mut parts = req.head[0].split_whitespace();
            format!(
                "{} {}",
                parts.next().unwrap_or(""),
                parts.next().unwrap_or("")
            )
        });
        let fault = {
            let mut rules = s.rules.lock().unwrap();
            let hit = rules
                .iter_mut()
                .find(|r| r.remaining > 0 && r.action.as_deref().is_none_or(|a| a == action));
            hit.map(|r| {
                r.remaining -= 1;
                r.fault.clone()
            })
        };
        let index = {
            let mut seen = s.seen.lock().unwrap();
            seen.push(Seen {
                action: action.clone(),
                params,
                fault: fault.clone(),
                forwarded: false,
            });
            seen.len() - 1
        };
        let mark_forwarded = || {
            s.seen.lock().unwrap()[index].forwarded = true;
            s.changed.notify_all();
        };
        let mut conn = conn;
        let answer = match &fault {
            Some(Fault::Error { status, code }) => Some(error_response(*status, code)),
            _ => match forward(s.upstream, &req) {
                Ok(resp) => {
                    mark_forwarded();
                    match &fault {
                        None => Some(resp),
                        Some(Fault::DropResponse) => None,
                        Some(Fault::Delay(d)) => {
                            std::thread::sleep(*d);
                            Some(resp)
                        }
                        Some(Fault::Stall) => {
                            // Hold the connection until the client goes.
                            let mut sink = Vec::new();
                            let _ = reader.read_to_end(&mut sink);
                            None
                        }
                        Some(Fault::Rewrite(pairs)) => Some(rewrite(&resp, pairs)),
                        Some(Fault::Error { .. }) => unreachable!(),
                    }
                }
                Err(_) => None,
            },
        };
        if let Some(a) = answer {
            let _ = conn.write_all(&a);
            let _ = conn.flush();
        }
        let _ = conn.shutdown(Shutdown::Both);
    }
}
