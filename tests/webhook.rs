//! The controller's HTTP server over real HTTP on 127.0.0.1: forge webhooks
//! (GitHub, Gitea, GitLab) reach the reconciler's trigger queue exactly
//! once when signed and never otherwise; `/metrics`, `/healthz`, `/readyz`.
//!
//! Each test starts its own server on an ephemeral port and speaks to it
//! with a blocking HTTP client, as a forge would. "Nothing happened" is
//! asserted on the receiving end of the trigger queue: it must be empty
//! (and still connected) after the response came back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use kompox::metrics::Metrics;
use kompox::server::{self, ServerState, Trigger};
use kompox::webhook::{Forge, MAX_BODY_BYTES, PullRequestAction, WebhookSecret};
use reqwest::StatusCode;
use reqwest::blocking::{Body, Client, Response};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};

const SECRET: &str = "correct horse battery staple";
const COMMIT: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const COMMIT_2: &str = "a1e8f0c3d7b24b6e9f5d0c1b2a3948576d6e5f40";
const HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    triggers: mpsc::Receiver<Trigger>,
    ready: Arc<AtomicBool>,
    http: Client,
    stop: Option<oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

struct Options {
    secret: Option<&'static str>,
    queue: usize,
    enqueue_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            secret: Some(SECRET),
            queue: 16,
            enqueue_timeout: Duration::from_secs(5),
        }
    }
}

impl Server {
    fn start() -> Self {
        Self::start_with(Options::default())
    }

    fn start_with(options: Options) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, triggers) = mpsc::channel(options.queue);
        let ready = Arc::new(AtomicBool::new(false));
        let mut state = ServerState::new(
            options.secret.and_then(WebhookSecret::new),
            tx,
            Arc::new(Metrics::new()),
            ready.clone(),
        );
        state.enqueue_timeout = options.enqueue_timeout;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        runtime.spawn(server::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Server {
            base: format!("http://{addr}"),
            addr,
            triggers,
            ready,
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stop: Some(stop),
            runtime: Some(runtime),
        }
    }

    fn post(&self, headers: &[(&str, String)], body: impl Into<Body>) -> Response {
        let mut req = self
            .http
            .post(format!("{}/webhook", self.base))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.body(body).send().unwrap()
    }

    fn get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap()
    }

    /// The one trigger the last request queued; fails if there is none or
    /// more than one.
    fn one_trigger(&mut self) -> Trigger {
        let t = self
            .triggers
            .try_recv()
            .expect("a trigger should have been queued");
        self.assert_no_trigger();
        t
    }

    fn assert_no_trigger(&mut self) {
        match self.triggers.try_recv() {
            Err(mpsc::error::TryRecvError::Empty) => {}
            other => panic!("expected no trigger, got {other:?}"),
        }
    }

    fn metrics(&self) -> String {
        let resp = self.get("/metrics");
        assert_eq!(resp.status(), StatusCode::OK);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text; version=1.0.0"),
            "{content_type}"
        );
        resp.text().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

// --- what the forges send -------------------------------------------------

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn github_headers(
    event: &str,
    delivery: &str,
    key: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("user-agent", "GitHub-Hookshot/044aadd".into()),
        ("x-github-event", event.into()),
        ("x-github-delivery", delivery.into()),
        ("x-github-hook-id", "292430182".into()),
        (
            "x-hub-signature-256",
            format!("sha256={}", hmac_hex(key, body)),
        ),
    ]
}

fn gitea_headers(
    event: &str,
    delivery: &str,
    key: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("user-agent", "Go-http-client/1.1".into()),
        ("x-gitea-event", event.into()),
        ("x-gitea-event-type", event.into()),
        ("x-gitea-delivery", delivery.into()),
        ("x-gitea-signature", hmac_hex(key, body)),
        ("x-github-event", event.into()),
        ("x-github-delivery", delivery.into()),
        ("x-gogs-event", event.into()),
        ("x-gogs-delivery", delivery.into()),
    ]
}

fn gitlab_headers(event: &str, uuid: &str, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("user-agent", "GitLab/17.5.0".into()),
        ("x-gitlab-event", event.into()),
        ("x-gitlab-event-uuid", uuid.into()),
        ("x-gitlab-instance", "https://gitlab.example.com".into()),
        ("x-gitlab-token", token.into()),
    ]
}

fn github_push(after: &str) -> Vec<u8> {
    json!({
        "ref": "refs/heads/main",
        "before": HEAD,
        "after": after,
        "created": false,
        "deleted": false,
        "commits": [{"id": after, "message": "wiki: bigger disk", "distinct": true}],
        "repository": {
            "id": 1296269,
            "full_name": "acme/deploy",
            "clone_url": "https://github.com/acme/deploy.git",
            "ssh_url": "git@github.com:acme/deploy.git"
        },
        "pusher": {"name": "alice"},
        "sender": {"login": "alice"}
    })
    .to_string()
    .into_bytes()
}

fn github_pull_request(action: &str) -> Vec<u8> {
    json!({
        "action": action,
        "number": 42,
        "pull_request": {
            "number": 42,
            "state": "open",
            "head": {"ref": "wiki-disk", "sha": HEAD},
            "base": {"ref": "main", "sha": COMMIT}
        },
        "repository": {"full_name": "acme/deploy"},
        "sender": {"login": "alice"}
    })
    .to_string()
    .into_bytes()
}

fn gitea_push(after: &str) -> Vec<u8> {
    json!({
        "ref": "refs/heads/main",
        "before": HEAD,
        "after": after,
        "compare_url": "http://gitea.local:3000/acme/deploy/compare/x...y",
        "commits": [{"id": after, "message": "wiki: bigger disk\n"}],
        "repository": {
            "id": 140,
            "full_name": "acme/deploy",
            "clone_url": "http://gitea.local:3000/acme/deploy.git",
            "ssh_url": "ssh://git@gitea.local:2222/acme/deploy.git"
        },
        "pusher": {"login": "alice"},
        "sender": {"login": "alice"}
    })
    .to_string()
    .into_bytes()
}

fn gitea_pull_request(action: &str) -> Vec<u8> {
    json!({
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"ref": "wiki-disk", "sha": HEAD},
            "base": {"ref": "main", "sha": COMMIT}
        },
        "repository": {"full_name": "acme/deploy"},
        "sender": {"login": "alice"}
    })
    .to_string()
    .into_bytes()
}

fn gitlab_push(after: &str) -> Vec<u8> {
    json!({
        "object_kind": "push",
        "before": HEAD,
        "after": after,
        "ref": "refs/heads/main",
        "checkout_sha": after,
        "project": {
            "id": 15,
            "path_with_namespace": "acme/deploy",
            "git_http_url": "https://gitlab.example.com/acme/deploy.git",
            "git_ssh_url": "git@gitlab.example.com:acme/deploy.git"
        },
        "commits": [{"id": after}],
        "total_commits_count": 1
    })
    .to_string()
    .into_bytes()
}

fn gitlab_merge_request(action: &str) -> Vec<u8> {
    json!({
        "object_kind": "merge_request",
        "project": {"id": 15, "path_with_namespace": "acme/deploy"},
        "object_attributes": {
            "iid": 3,
            "action": action,
            "source_branch": "wiki-disk",
            "target_branch": "main",
            "last_commit": {"id": HEAD}
        }
    })
    .to_string()
    .into_bytes()
}

fn push_commit(t: Trigger) -> (Forge, String) {
    match t {
        Trigger::Push(p) => {
            assert_eq!(p.repo_full_name, "acme/deploy");
            assert_eq!(p.git_ref, "refs/heads/main");
            (p.forge, p.after_commit)
        }
        other => panic!("expected a push trigger, got {other:?}"),
    }
}

// --- valid deliveries -------------------------------------------------------

#[test]
fn signed_github_push_queues_one_trigger_with_its_commit() {
    let mut s = Server::start();
    let body = github_push(COMMIT);
    let resp = s.post(&github_headers("push", "gh-1", SECRET, &body), body);
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(push_commit(s.one_trigger()), (Forge::GitHub, COMMIT.into()));
}

#[test]
fn signed_gitea_push_queues_one_trigger_with_its_commit() {
    let mut s = Server::start();
    let body = gitea_push(COMMIT);
    let resp = s.post(&gitea_headers("push", "gt-1", SECRET, &body), body);
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(push_commit(s.one_trigger()), (Forge::Gitea, COMMIT.into()));

    // Gitea ≥ 1.20 also signs with the GitHub header; that alone suffices.
    let body = gitea_push(COMMIT_2);
    let headers = vec![
        ("x-gitea-event", "push".to_string()),
        ("x-gitea-delivery", "gt-2".into()),
        (
            "x-hub-signature-256",
            format!("sha256={}", hmac_hex(SECRET, &body)),
        ),
    ];
    assert_eq!(s.post(&headers, body).status(), StatusCode::ACCEPTED);
    assert_eq!(
        push_commit(s.one_trigger()),
        (Forge::Gitea, COMMIT_2.into())
    );
}

#[test]
fn gitlab_push_with_the_token_queues_one_trigger_with_its_commit() {
    let mut s = Server::start();
    let body = gitlab_push(COMMIT);
    let resp = s.post(&gitlab_headers("Push Hook", "gl-1", SECRET), body);
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(push_commit(s.one_trigger()), (Forge::GitLab, COMMIT.into()));
}

#[test]
fn pull_request_webhooks_queue_pull_request_triggers() {
    let mut s = Server::start();
    let cases = [
        (
            github_headers(
                "pull_request",
                "pr-1",
                SECRET,
                &github_pull_request("synchronize"),
            ),
            github_pull_request("synchronize"),
            Forge::GitHub,
            42,
            PullRequestAction::Synchronize,
        ),
        (
            gitea_headers(
                "pull_request",
                "pr-2",
                SECRET,
                &gitea_pull_request("opened"),
            ),
            gitea_pull_request("opened"),
            Forge::Gitea,
            7,
            PullRequestAction::Opened,
        ),
        (
            gitlab_headers("Merge Request Hook", "pr-3", SECRET),
            gitlab_merge_request("reopen"),
            Forge::GitLab,
            3,
            PullRequestAction::Reopened,
        ),
    ];
    for (headers, body, forge, number, action) in cases {
        let resp = s.post(&headers, body);
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{forge}");
        match s.one_trigger() {
            Trigger::PullRequest(pr) => {
                assert_eq!(pr.forge, forge);
                assert_eq!(pr.number, number);
                assert_eq!(pr.action, action);
                assert_eq!(pr.head_sha, HEAD);
                assert_eq!(pr.head_ref, "wiki-disk");
                assert_eq!(pr.base_ref, "main");
                assert_eq!(pr.repo_full_name, "acme/deploy");
            }
            other => panic!("{forge}: expected a pull request trigger, got {other:?}"),
        }
    }
}

#[test]
fn ping_and_uninteresting_events_are_answered_but_queue_nothing() {
    let mut s = Server::start();
    let ping = br#"{"zen":"Design for failure.","hook_id":292430182}"#.to_vec();
    let resp = s.post(&github_headers("ping", "p-1", SECRET, &ping), ping);
    assert_eq!(resp.status(), StatusCode::OK);
    s.assert_no_trigger();

    let closed = github_pull_request("closed");
    let resp = s.post(
        &github_headers("pull_request", "c-1", SECRET, &closed),
        closed,
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().unwrap().contains("closed"));
    s.assert_no_trigger();

    let merged = gitlab_merge_request("merge");
    let resp = s.post(&gitlab_headers("Merge Request Hook", "m-1", SECRET), merged);
    assert_eq!(resp.status(), StatusCode::OK);
    s.assert_no_trigger();
}

// --- refused deliveries ---------------------------------------------------

#[test]
fn bad_signatures_are_401_and_queue_nothing() {
    let mut s = Server::start();
    let wrong = "correct horse battery stapler";

    let body = github_push(COMMIT);
    let resp = s.post(&github_headers("push", "gh-bad", wrong, &body), body);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    s.assert_no_trigger();

    // Signed correctly, then tampered with: the commit changed in transit.
    let signed = github_push(COMMIT);
    let tampered = github_push(COMMIT_2);
    let resp = s.post(
        &github_headers("push", "gh-tampered", SECRET, &signed),
        tampered,
    );
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    s.assert_no_trigger();

    let body = gitea_push(COMMIT);
    let resp = s.post(&gitea_headers("push", "gt-bad", wrong, &body), body);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    s.assert_no_trigger();

    let body = gitlab_push(COMMIT);
    let resp = s.post(&gitlab_headers("Push Hook", "gl-bad", wrong), body);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let text = resp.text().unwrap();
    assert!(!text.contains(SECRET) && !text.contains(wrong), "{text}");
    s.assert_no_trigger();
}

#[test]
fn missing_signatures_are_401_and_queue_nothing() {
    let mut s = Server::start();
    let unsigned = |mut h: Vec<(&'static str, String)>| {
        h.retain(|(k, _)| {
            !matches!(
                *k,
                "x-hub-signature-256" | "x-gitea-signature" | "x-gitlab-token"
            )
        });
        h
    };
    let body = github_push(COMMIT);
    let resp = s.post(
        &unsigned(github_headers("push", "u-1", SECRET, &body)),
        body,
    );
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body = gitea_push(COMMIT);
    let resp = s.post(&unsigned(gitea_headers("push", "u-2", SECRET, &body)), body);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body = gitlab_push(COMMIT);
    let resp = s.post(&unsigned(gitlab_headers("Push Hook", "u-3", SECRET)), body);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    s.assert_no_trigger();
}

#[test]
fn without_a_configured_secret_even_signed_deliveries_are_refused() {
    let mut s = Server::start_with(Options {
        secret: None,
        ..Options::default()
    });
    let body = github_push(COMMIT);
    let resp = s.post(&github_headers("push", "gh-1", SECRET, &body), body);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().unwrap().contains("no webhook secret"));
    let body = gitlab_push(COMMIT);
    let resp = s.post(&gitlab_headers("Push Hook", "gl-1", ""), body);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    s.assert_no_trigger();
}

#[test]
fn replayed_deliveries_are_409_and_queue_nothing_more() {
    let mut s = Server::start();
    let body = github_push(COMMIT);
    let headers = github_headers("push", "gh-replay", SECRET, &body);
    assert_eq!(
        s.post(&headers, body.clone()).status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(push_commit(s.one_trigger()).1, COMMIT);

    // The same request again.
    assert_eq!(
        s.post(&headers, body.clone()).status(),
        StatusCode::CONFLICT
    );
    s.assert_no_trigger();

    // The same signed body under a fresh delivery id (the id is not signed).
    let fresh = github_headers("push", "gh-replay-2", SECRET, &body);
    assert_eq!(s.post(&fresh, body).status(), StatusCode::CONFLICT);
    s.assert_no_trigger();

    // GitLab: same event UUID, same token.
    let body = gitlab_push(COMMIT);
    let headers = gitlab_headers("Push Hook", "gl-replay", SECRET);
    assert_eq!(
        s.post(&headers, body.clone()).status(),
        StatusCode::ACCEPTED
    );
    s.one_trigger();
    assert_eq!(s.post(&headers, body).status(), StatusCode::CONFLICT);
    s.assert_no_trigger();
}

/// A request head written by hand, for the cases an HTTP client library
/// would not send (or whose answer it would not wait for).
fn raw_head(addr: std::net::SocketAddr, headers: &[(&str, String)], framing: &str) -> String {
    let mut head = format!(
        "POST /webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{framing}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Reads the response's status line.
fn status_line(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            other => panic!(
                "no status line ({other:?}) after {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8(got).unwrap().trim_end().to_owned()
}

#[test]
fn oversized_bodies_are_413_and_queue_nothing() {
    let mut s = Server::start();

    // Declared by Content-Length: refused before the body is read (the
    // client waits for the answer before sending it).
    let mut body = github_push(COMMIT);
    body.resize(MAX_BODY_BYTES + 1, b' ');
    let headers = github_headers("push", "big-1", SECRET, &body);
    let head = raw_head(s.addr, &headers, &format!("content-length: {}", body.len()));
    let mut raw = TcpStream::connect(s.addr).unwrap();
    raw.write_all(head.as_bytes()).unwrap();
    assert_eq!(status_line(&mut raw), "HTTP/1.1 413 Payload Too Large");
    drop(raw);
    s.assert_no_trigger();

    // Streamed without a length (chunked): cut off at the limit while the
    // client is still sending.
    let mut body = github_push(COMMIT_2);
    body.resize(MAX_BODY_BYTES + 256 * 1024, b' ');
    let headers = github_headers("push", "big-2", SECRET, &body);
    let head = raw_head(s.addr, &headers, "transfer-encoding: chunked");
    let mut raw = TcpStream::connect(s.addr).unwrap();
    let mut writer = raw.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        // The server stops reading at the limit and closes: write errors
        // are expected and ignored.
        let _ = writer.write_all(head.as_bytes());
        for chunk in body.chunks(16 * 1024) {
            let sent = write!(writer, "{:x}\r\n", chunk.len())
                .and_then(|()| writer.write_all(chunk))
                .and_then(|()| writer.write_all(b"\r\n"));
            if sent.is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    assert_eq!(status_line(&mut raw), "HTTP/1.1 413 Payload Too Large");
    sender.join().unwrap();
    s.assert_no_trigger();

    // A body of exactly the limit is fine.
    let mut body = github_push(COMMIT_2);
    body.resize(MAX_BODY_BYTES, b' ');
    let headers = github_headers("push", "big-3", SECRET, &body);
    assert_eq!(s.post(&headers, body).status(), StatusCode::ACCEPTED);
    assert_eq!(push_commit(s.one_trigger()).1, COMMIT_2);
}

#[test]
fn a_full_queue_is_503_and_the_redelivery_is_accepted_later() {
    let mut s = Server::start_with(Options {
        queue: 1,
        enqueue_timeout: Duration::from_millis(200),
        ..Options::default()
    });
    let first = github_push(COMMIT);
    let resp = s.post(&github_headers("push", "q-1", SECRET, &first), first);
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    let second = github_push(COMMIT_2);
    let headers = github_headers("push", "q-2", SECRET, &second);
    let resp = s.post(&headers, second.clone());
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(push_commit(s.one_trigger()).1, COMMIT);

    // The forge redelivers (same id, same body) once the reconciler caught up.
    let resp = s.post(&headers, second);
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(push_commit(s.one_trigger()).1, COMMIT_2);
}

#[test]
fn unknown_senders_and_malformed_payloads_are_400() {
    let mut s = Server::start();
    let body = github_push(COMMIT);
    let resp = s.post(
        &[(
            "x-hub-signature-256",
            format!("sha256={}", hmac_hex(SECRET, &body)),
        )],
        body,
    );
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Signed, but form-encoded (the webhook's content type was not JSON).
    let form = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D".to_vec();
    let resp = s.post(&github_headers("push", "f-1", SECRET, &form), form);
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().unwrap().contains("application/json"));
    s.assert_no_trigger();
}

// --- metrics and probes -----------------------------------------------------

/// A small OpenMetrics text check: every line is a `# HELP`/`# TYPE`/`# UNIT`
/// comment or a sample of a declared family with a numeric value, and the
/// exposition ends with `# EOF`.
fn assert_openmetrics(text: &str) {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
    let mut families: Vec<String> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if *line == "# EOF" {
            assert_eq!(i, lines.len() - 1, "# EOF before the end");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap();
            let name = parts.next().expect("metric name");
            assert!(matches!(keyword, "HELP" | "TYPE" | "UNIT"), "{line}");
            if keyword == "TYPE" {
                let kind = parts.next().unwrap();
                assert!(
                    [
                        "counter",
                        "gauge",
                        "histogram",
                        "info",
                        "stateset",
                        "summary",
                        "unknown"
                    ]
                    .contains(&kind),
                    "{line}"
                );
                families.push(name.to_owned());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(
            families.iter().any(|f| name.starts_with(f.as_str())),
            "sample of an undeclared family: {line}"
        );
        let labels = &series[name.len()..];
        assert!(
            labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
            "{line}"
        );
    }
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_webhook_outcomes_in_openmetrics() {
    let mut s = Server::start();
    let body = github_push(COMMIT);
    let headers = github_headers("push", "m-1", SECRET, &body);
    s.post(&headers, body.clone());
    s.post(&headers, body.clone()); // replayed
    s.post(&github_headers("push", "m-2", "wrong", &body), body); // bad signature
    let body = gitlab_push(COMMIT);
    s.post(&gitlab_headers("Push Hook", "m-3", SECRET), body.clone());
    s.post(&gitlab_headers("Push Hook", "m-4", "wrong"), body);
    let ping = br#"{"zen":"Half measures are as bad as nothing at all."}"#.to_vec();
    s.post(&github_headers("ping", "m-5", SECRET, &ping), ping);
    s.post(&[], b"{}".to_vec()); // no forge headers at all

    let text = s.metrics();
    assert_openmetrics(&text);
    for (series, want) in [
        (
            r#"kompox_webhook_requests_total{forge="github",outcome="accepted"}"#,
            1.0,
        ),
        (
            r#"kompox_webhook_requests_total{forge="github",outcome="replayed"}"#,
            1.0,
        ),
        (
            r#"kompox_webhook_requests_total{forge="github",outcome="unauthorized"}"#,
            1.0,
        ),
        (
            r#"kompox_webhook_requests_total{forge="github",outcome="ping"}"#,
            1.0,
        ),
        (
            r#"kompox_webhook_requests_total{forge="gitlab",outcome="accepted"}"#,
            1.0,
        ),
        (
            r#"kompox_webhook_requests_total{forge="gitlab",outcome="unauthorized"}"#,
            1.0,
        ),
        (
            r#"kompox_webhook_requests_total{forge="unknown",outcome="bad_request"}"#,
            1.0,
        ),
        ("kompox_queue_depth", 2.0),
        ("kompox_leader", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    }
    assert!(!text.contains(SECRET));
    // The two accepted pushes, in order, and nothing else.
    assert_eq!(push_commit(s.triggers.try_recv().unwrap()).0, Forge::GitHub);
    assert_eq!(push_commit(s.one_trigger()).0, Forge::GitLab);
}

#[test]
fn readyz_flips_when_ready_is_set_and_healthz_is_always_ok() {
    let s = Server::start();
    assert_eq!(s.get("/healthz").status(), StatusCode::OK);
    assert_eq!(s.get("/readyz").status(), StatusCode::SERVICE_UNAVAILABLE);
    s.ready.store(true, Ordering::Release);
    assert_eq!(s.get("/readyz").status(), StatusCode::OK);
    assert_eq!(s.get("/healthz").status(), StatusCode::OK);
    s.ready.store(false, Ordering::Release);
    assert_eq!(s.get("/readyz").status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn the_server_stops_when_shutdown_completes() {
    let mut s = Server::start();
    assert_eq!(s.get("/healthz").status(), StatusCode::OK);
    let _ = s.stop.take().unwrap().send(());
    // Graceful shutdown closes the listener; new connections are refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if TcpStream::connect(s.addr).is_err() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}
