//! A real Git server on 127.0.0.1 for the Git source tests: bare
//! repositories served by Git's own `git http-backend` (CGI) behind a small
//! loopback HTTP/1.1 server (axum) that demands a basic-auth token, plus
//! helpers that commit and push with the `git` CLI.
//!
//! Include it from a test file with
//!
//! ```ignore
//! #[path = "support/git_server.rs"]
//! mod git_server;
//! ```
//!
//! Each [`GitServer`] has its own temp dir (the `GIT_PROJECT_ROOT`), port
//! and token, so tests run in parallel without sharing anything; dropping it
//! stops the server and removes the repositories. Requests are logged
//! ([`GitServer::requests`]) so tests can assert what went over the wire
//! (how many credential attempts, whether a sync downloaded anything).
//!
//! The `git` CLI runs with the user's and the system's configuration
//! switched off, so a developer's `~/.gitconfig` changes nothing.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;

const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Whether the request carried credentials at all (right or wrong).
    pub sent_credentials: bool,
    /// `Content-Encoding: gzip` (the git CLI compresses large requests).
    pub gzip: bool,
}

struct Shared {
    root: PathBuf,
    username: String,
    token: String,
    log: Mutex<Vec<Logged>>,
}

/// A running server; see the module documentation.
pub struct GitServer {
    pub username: String,
    pub token: String,
    port: u16,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    _root: tempfile::TempDir,
}

impl GitServer {
    /// Starts a server with a fresh token on a free port.
    pub fn start() -> GitServer {
        let root = tempfile::Builder::new()
            .prefix("kompox-git-server-")
            .tempdir()
            .unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let shared = Arc::new(Shared {
            root: root.path().to_path_buf(),
            username: "kompox-bot".into(),
            token: format!("tok-{nanos:x}-{}", std::process::id()),
            log: Mutex::new(Vec::new()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        GitServer {
            username: shared.username.clone(),
            token: shared.token.clone(),
            port,
            shared,
            runtime: Some(runtime),
            _root: root,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the bare repository `<name>.git` and returns its path (push
    /// to it with a [`Workdir`]).
    pub fn create_repo(&self, name: &str) -> PathBuf {
        let path = self.shared.root.join(format!("{name}.git"));
        git(
            &self.shared.root,
            &["init", "-q", "--bare", "-b", "main", path.to_str().unwrap()],
        );
        path
    }

    /// The HTTP URL of repository `name` (no credentials in it).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.port)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let credentials = basic_credentials(&parts.headers);
    let gzip = header_str(&parts.headers, header::CONTENT_ENCODING.as_str())
        .is_some_and(|e| e.contains("gzip"));
    let authorized = credentials
        .as_ref()
        .is_some_and(|(user, token)| *user == shared.username && *token == shared.token);
    let response = if !authorized {
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"kompox test git\"")
            .body(Body::from("authentication required\n"))
            .unwrap()
    } else {
        match axum::body::to_bytes(body, 256 * 1024 * 1024).await {
            Err(e) => Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .body(Body::from(format!("cannot read the body: {e}\n")))
                .unwrap(),
            Ok(body) => {
                let cgi = Cgi {
                    method: method.clone(),
                    path: path.clone(),
                    query: query.clone(),
                    content_type: header_str(&parts.headers, "content-type"),
                    content_encoding: header_str(&parts.headers, "content-encoding"),
                    git_protocol: header_str(&parts.headers, "git-protocol"),
                    user: shared.username.clone(),
                };
                let root = shared.root.clone();
                tokio::task::spawn_blocking(move || cgi.run(&root, body))
                    .await
                    .unwrap()
            }
        }
    };
    shared.log.lock().unwrap().push(Logged {
        method,
        path,
        query,
        status: response.status().as_u16(),
        sent_credentials: credentials.is_some(),
        gzip,
    });
    response
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, token) = text.split_once(':')?;
    Some((user.to_string(), token.to_string()))
}

/// One CGI request to `git http-backend` (RFC 3875 variables).
struct Cgi {
    method: String,
    path: String,
    query: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    git_protocol: Option<String>,
    user: String,
}

impl Cgi {
    fn run(self, root: &Path, body: Bytes) -> Response {
        let mut command = Command::new(HTTP_BACKEND);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("REMOTE_USER", &self.user)
            .env("REQUEST_METHOD", &self.method)
            .env("PATH_INFO", &self.path)
            .env("QUERY_STRING", &self.query)
            .env("CONTENT_LENGTH", body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(value) = &self.content_type {
            command.env("CONTENT_TYPE", value);
        }
        // The body stays compressed: http-backend inflates it itself when
        // told the encoding (CONTENT_LENGTH is the compressed length).
        if let Some(value) = &self.content_encoding {
            command.env("HTTP_CONTENT_ENCODING", value);
        }
        if let Some(value) = &self.git_protocol {
            command.env("GIT_PROTOCOL", value);
        }
        let mut child = command.spawn().expect("start git http-backend");
        let mut stdin = child.stdin.take().unwrap();
        // Written from another thread: the backend may answer before it has
        // read everything, and both pipes are bounded.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let mut stdout = Vec::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut stdout)
            .unwrap();
        let mut stderr = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        let status = child.wait().unwrap();
        let _ = writer.join();
        if !status.success() && stdout.is_empty() {
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Body::from(format!("git http-backend failed: {stderr}")))
                .unwrap();
        }
        cgi_response(&stdout)
    }
}

/// Parses a CGI response: header lines, a blank line, the body; `Status:`
/// sets the status code.
fn cgi_response(output: &[u8]) -> Response {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        });
    let Some((end, body_start)) = split else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from("malformed CGI output"))
            .unwrap();
    };
    let mut builder = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&output[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            builder = builder.status(code.parse::<u16>().unwrap_or(500));
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder
        .body(Body::from(output[body_start..].to_vec()))
        .unwrap()
}

// Shared with the other Git harness; see `child.rs` for the lint.
#[allow(clippy::duplicate_mod)]
#[path = "git_work.rs"]
mod git_work;
pub use git_work::{Workdir, git};
