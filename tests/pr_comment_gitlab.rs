//! `kompox::forge` on GitLab, against an in-process HTTP contract fake of
//! GitLab's REST API v4 on 127.0.0.1 (no real GitLab is reachable from
//! tests, and a GitLab server is far too heavy to build for them).
//!
//! The fake is shaped from GitLab's published API documentation
//! (docs.gitlab.com/api: rest/_index.md, rest/authentication.md, notes.md,
//! merge_requests.md, commits.md) and models only what the client uses:
//! - Every path under `/api/v4`; `:id` is the project's numeric id or its
//!   URL-encoded path (`group%2Fsub%2Fproject`, "Namespaced paths"); an
//!   unencoded path does not match and answers 404, as GitLab's router does.
//! - Authentication with `PRIVATE-TOKEN: <token>`; otherwise 401
//!   `{"message": "401 Unauthorized"}`.
//! - `GET /projects/:id/merge_requests/:merge_request_iid`: `id`, `iid`,
//!   `project_id`, `title`, `state` (`opened`, `closed`, `locked`,
//!   `merged`), `sha`, `source_branch`, `target_branch`, `diff_refs`
//!   (`base_sha`, `head_sha`, `start_sha`), `web_url`; 404 `{"message":
//!   "404 Not found"}` for another iid.
//! - `GET /projects/:id/merge_requests/:merge_request_iid/notes`: `sort`
//!   (`asc`/`desc`, default `desc`), `order_by` (`created_at`/`updated_at`),
//!   offset pagination with `page` (default 1) and `per_page` (default 20,
//!   at most 100); headers `x-page`, `x-per-page`, `x-next-page` (empty on
//!   the last page), `x-prev-page`, `x-total`, `x-total-pages` and a `Link`
//!   header (`prev`, `next`, `first`, `last`) whose URLs use the numeric
//!   project id, as in GitLab's example. Notes carry `id`, `type`, `body`,
//!   `attachment`, `author`, `created_at`, `updated_at`, `system`,
//!   `noteable_id`, `noteable_type`, `project_id`, `noteable_iid`,
//!   `resolvable`, `confidential`, `internal`; system notes (GitLab's own,
//!   such as "added 1 commit") are among them.
//! - `POST …/notes` `{body}` → 201 and the note; a missing body → 400
//!   `{"error": "body is missing"}`.
//! - `PUT …/notes/:note_id` `{body}` → 200 and the note; 404 `{"message":
//!   "404 Note Not Found"}` for an unknown id; 403 `{"message": "403
//!   Forbidden"}` for another user's note or a system note.
//! - `POST /projects/:id/statuses/:sha` `{state, name | context,
//!   description}` with `state` one of `pending`, `running`, `success`,
//!   `failed`, `canceled`, `skipped` → 201 with `id`, `sha`, `ref`,
//!   `status`, `name`, `description`, …; an unknown commit → 404 `{"message":
//!   "404 Commit Not Found"}`. As GitLab's `Ci::CreateCommitStatusService`
//!   does, a `pending` or `running` status of the same name is moved to the
//!   new state, and moving it to the state it is in is refused with 400
//!   `Cannot transition status via :enqueue from :pending (Reason(s): Status
//!   cannot transition via "enqueue")`; a finished status is never moved (a
//!   new one is recorded).
//! - The rate limit answer: 429 with the plain-text body `Retry later` and
//!   `Retry-After`, `RateLimit-Limit`, `RateLimit-Observed`,
//!   `RateLimit-Remaining`, `RateLimit-Reset` (Unix time),
//!   `RateLimit-ResetTime` (administration/settings/user_and_ip_rate_limits.md).
//!
//! Faults (5xx, lost answers, rate limits) are injected per request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kompox::forge::{
    ForgeAuth, ForgeClient, ForgeError, ForgeKind, PrRef, RETIRED_NOTE, StatusState, comment_marker,
};
use serde_json::{Value, json};

const TOKEN: &str = "glpat-TESTTOKEN0123456789ab";
const GROUP: &str = "group/sub";
const PROJECT: &str = "project";
/// The project's path as GitLab wants it in `:id`.
const ENCODED: &str = "group%2Fsub%2Fproject";
const PROJECT_ID: u64 = 278964;
const MR: u64 = 7;
const ME: &str = "kompox-bot";
const HEAD_SHA: &str = "e82eb4a098e32c796079ca3915e07487fc4db24c";
const BASE_SHA: &str = "1162f719d711319a2efb2a35566f3bfdadee8bab";
const START_SHA: &str = "9049f1265b7d61be4a8904a9a27120d2064dab3b";

// ---------------------------------------------------------------- the fake

#[derive(Clone, Debug)]
enum Fault {
    /// Answer with this status (and a GitLab-style message) without acting.
    Status(u16),
    /// GitLab's rate limit: 429 `Retry later` with `Retry-After: 0`.
    RateLimited,
    /// Carry the request out, then answer this status (a gateway that
    /// lost the backend's answer).
    ActThenStatus(u16),
}

struct Note {
    body: String,
    author: String,
    system: bool,
}

/// A commit status GitLab may still move (`pending` or `running`).
struct OpenStatus {
    name: String,
    state: String,
}

struct Fake {
    base: String,
    notes: BTreeMap<u64, Note>,
    next_id: u64,
    mr_state: &'static str,
    diff_refs: Value,
    /// Every status record, in order.
    statuses: Vec<Value>,
    open_statuses: Vec<OpenStatus>,
    /// Statuses refused as "cannot transition".
    refused_transitions: usize,
    /// Leave out the `x-*` pagination headers (as some proxies do), so
    /// that only `Link` says where the next page is.
    strip_page_headers: bool,
    /// `METHOD path?query` of every request, in order.
    requests: Vec<String>,
    /// Headers of every request, in order.
    headers: Vec<HeaderMap>,
    /// Faults for the next requests with that method, in order.
    faults: VecDeque<(Method, Fault)>,
    /// Token → the username it authenticates.
    tokens: BTreeMap<String, String>,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeGitLab {
    base: String,
    state: Shared,
}

impl FakeGitLab {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state: Shared = Arc::new(Mutex::new(Fake {
            base: base.clone(),
            notes: BTreeMap::new(),
            next_id: 1_000,
            mr_state: "opened",
            diff_refs: json!({ "base_sha": BASE_SHA, "head_sha": HEAD_SHA, "start_sha": START_SHA }),
            statuses: Vec::new(),
            open_statuses: Vec::new(),
            refused_transitions: 0,
            strip_page_headers: false,
            requests: Vec::new(),
            headers: Vec::new(),
            faults: VecDeque::new(),
            tokens: BTreeMap::from([(TOKEN.to_string(), ME.to_string())]),
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeGitLab { base, state }
    }

    /// A client given the server's URL, as `--forge-url` would be
    /// (`/api/v4` is the client's to add).
    fn client(&self) -> ForgeClient {
        ForgeClient::new(
            ForgeKind::GitLab,
            Some(&self.base),
            ForgeAuth::Token(TOKEN.into()),
        )
        .unwrap()
    }

    fn fake(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.state.lock().unwrap()
    }

    fn seed(&self, author: &str, body: &str) -> u64 {
        self.seed_note(author, body, false)
    }

    fn seed_note(&self, author: &str, body: &str, system: bool) -> u64 {
        let mut f = self.fake();
        f.next_id += 1;
        let id = f.next_id;
        f.notes.insert(
            id,
            Note {
                body: body.into(),
                author: author.into(),
                system,
            },
        );
        id
    }

    fn fault(&self, method: Method, fault: Fault) {
        self.fake().faults.push_back((method, fault));
    }

    /// The notes that start with a Kompox marker, oldest first.
    fn plan_notes(&self) -> Vec<(u64, String)> {
        self.fake()
            .notes
            .iter()
            .filter(|(_, n)| n.body.starts_with("<!-- kompox-plan"))
            .map(|(id, n)| (*id, n.body.clone()))
            .collect()
    }

    fn body(&self, id: u64) -> String {
        self.fake().notes[&id].body.clone()
    }

    /// Requests other than GET since the last call.
    fn take_writes(&self) -> Vec<String> {
        self.take_requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET "))
            .collect()
    }

    fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut self.fake().requests)
    }
}

fn message(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

fn note_json(id: u64, n: &Note) -> Value {
    json!({
        "id": id,
        "type": null,
        "body": n.body,
        "attachment": null,
        "author": { "id": 1, "username": n.author, "name": n.author, "state": "active" },
        "created_at": "2013-10-02T09:22:45Z",
        "updated_at": "2013-10-02T10:22:45Z",
        "system": n.system,
        "noteable_id": 377,
        "noteable_type": "MergeRequest",
        "project_id": PROJECT_ID,
        "noteable_iid": MR,
        "resolvable": false,
        "confidential": false,
        "internal": false,
    })
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut f = state.lock().unwrap();
        f.requests.push(format!("{method} {uri}"));
        f.headers.push(headers.clone());
        let at = f.faults.iter().position(|(m, _)| *m == method);
        at.and_then(|i| f.faults.remove(i)).map(|(_, fault)| fault)
    };
    match fault {
        Some(Fault::Status(s)) => {
            let s = StatusCode::from_u16(s).unwrap();
            return message(s, &s.to_string());
        }
        Some(Fault::RateLimited) => {
            let reset = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let mut r = (StatusCode::TOO_MANY_REQUESTS, "Retry later\n").into_response();
            let h = r.headers_mut();
            h.insert("retry-after", "0".parse().unwrap());
            h.insert(
                "ratelimit-name",
                "throttle_authenticated_api".parse().unwrap(),
            );
            h.insert("ratelimit-limit", "60".parse().unwrap());
            h.insert("ratelimit-observed", "61".parse().unwrap());
            h.insert("ratelimit-remaining", "0".parse().unwrap());
            h.insert("ratelimit-reset", reset.to_string().parse().unwrap());
            h.insert(
                "ratelimit-resettime",
                "Tue, 05 Jan 2021 11:00:00 GMT".parse().unwrap(),
            );
            return r;
        }
        _ => {}
    }
    let response = route(&state, &method, &uri, &headers, &body);
    match fault {
        Some(Fault::ActThenStatus(s)) => {
            let s = StatusCode::from_u16(s).unwrap();
            message(s, &s.to_string())
        }
        _ => response,
    }
}

fn route(state: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut f = state.lock().unwrap();
    let Some(rest) = uri.path().strip_prefix("/api/v4/") else {
        return message(StatusCode::NOT_FOUND, "404 Not Found");
    };
    // Raw segments: `%2F` stays inside one.
    let segments: Vec<&str> = rest.split('/').collect();
    let Some(user) = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| f.tokens.get(t))
        .cloned()
    else {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    };
    let project_ok = |id: &str| id == ENCODED || id == PROJECT_ID.to_string();
    let mr = MR.to_string();
    let json_body = || serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    match (method.clone(), &segments[..]) {
        (Method::GET, ["projects", id, "merge_requests", iid]) if project_ok(id) && *iid == mr => {
            axum::Json(json!({
                "id": 155016530,
                "iid": MR,
                "project_id": PROJECT_ID,
                "title": "Bump the web image",
                "state": f.mr_state,
                "target_branch": "main",
                "source_branch": "bump",
                "sha": HEAD_SHA,
                "merge_commit_sha": null,
                "draft": false,
                "diff_refs": f.diff_refs,
                "web_url": format!("https://gitlab.example.com/{GROUP}/{PROJECT}/-/merge_requests/{MR}"),
            }))
            .into_response()
        }
        (Method::GET, ["projects", id, "merge_requests", _]) if project_ok(id) => {
            message(StatusCode::NOT_FOUND, "404 Not found")
        }
        (Method::GET, ["projects", id, "merge_requests", iid, "notes"])
            if project_ok(id) && *iid == mr =>
        {
            list(&f, uri)
        }
        (Method::POST, ["projects", id, "merge_requests", iid, "notes"])
            if project_ok(id) && *iid == mr =>
        {
            let Some(text) = json_body()["body"].as_str().map(str::to_string) else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({ "error": "body is missing" })),
                )
                    .into_response();
            };
            f.next_id += 1;
            let id = f.next_id;
            let n = Note {
                body: text,
                author: user,
                system: false,
            };
            let out = note_json(id, &n);
            f.notes.insert(id, n);
            (StatusCode::CREATED, axum::Json(out)).into_response()
        }
        (Method::PUT, ["projects", id, "merge_requests", iid, "notes", note])
            if project_ok(id) && *iid == mr =>
        {
            let Some(text) = json_body()["body"].as_str().map(str::to_string) else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({ "error": "body is missing" })),
                )
                    .into_response();
            };
            let note = note.parse::<u64>().ok().and_then(|id| {
                let n = f.notes.get_mut(&id)?;
                Some((id, n))
            });
            match note {
                None => message(StatusCode::NOT_FOUND, "404 Note Not Found"),
                Some((_, n)) if n.author != user || n.system => {
                    message(StatusCode::FORBIDDEN, "403 Forbidden")
                }
                Some((id, n)) => {
                    n.body = text;
                    axum::Json(note_json(id, n)).into_response()
                }
            }
        }
        (Method::POST, ["projects", id, "statuses", sha]) if project_ok(id) => {
            status(&mut f, sha, &json_body())
        }
        _ => message(StatusCode::NOT_FOUND, "404 Not Found"),
    }
}

fn list(f: &Fake, uri: &Uri) -> Response {
    let q = query(uri);
    let per_page: usize = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page: usize = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut all: Vec<(&u64, &Note)> = f.notes.iter().collect();
    // Ids grow with creation time; GitLab's default order is newest first.
    if q.get("sort").map(String::as_str) != Some("asc") {
        all.reverse();
    }
    let total = all.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(id, n)| note_json(**id, n))
        .collect();
    let mut r = axum::Json(items).into_response();
    let link = |p: usize, rel: &str| {
        let mut params: Vec<String> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        params.push(format!("page={p}"));
        params.sort();
        format!(
            "<{}/api/v4/projects/{PROJECT_ID}/merge_requests/{MR}/notes?{}>; rel=\"{rel}\"",
            f.base,
            params.join("&")
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
    }
    links.push(link(1, "first"));
    links.push(link(pages, "last"));
    let h = r.headers_mut();
    h.insert("link", links.join(", ").parse().unwrap());
    if !f.strip_page_headers {
        let next = if page < pages {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let prev = if page > 1 {
            (page - 1).to_string()
        } else {
            String::new()
        };
        h.insert("x-page", page.to_string().parse().unwrap());
        h.insert("x-per-page", per_page.to_string().parse().unwrap());
        h.insert("x-next-page", next.parse().unwrap());
        h.insert("x-prev-page", prev.parse().unwrap());
        h.insert("x-total", total.to_string().parse().unwrap());
        h.insert("x-total-pages", pages.to_string().parse().unwrap());
    }
    r
}

fn status(f: &mut Fake, sha: &str, b: &Value) -> Response {
    if sha != HEAD_SHA {
        return message(StatusCode::NOT_FOUND, "404 Commit Not Found");
    }
    let Some(state) = b["state"].as_str().map(str::to_string) else {
        return message(StatusCode::BAD_REQUEST, "State is required");
    };
    let event = match state.as_str() {
        "pending" => "enqueue",
        "running" => "run",
        "success" => "succeed",
        "failed" => "drop",
        "canceled" => "cancel",
        "skipped" => "skip",
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "state does not have a valid value" })),
            )
                .into_response();
        }
    };
    let name = b["name"]
        .as_str()
        .or_else(|| b["context"].as_str())
        .unwrap_or("default")
        .to_string();
    match f.open_statuses.iter().position(|s| s.name == name) {
        Some(i) if f.open_statuses[i].state == state => {
            f.refused_transitions += 1;
            let from = f.open_statuses[i].state.clone();
            return message(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Cannot transition status via :{event} from :{from} (Reason(s): Status cannot transition via \"{event}\")"
                ),
            );
        }
        Some(i) => {
            if matches!(state.as_str(), "pending" | "running") {
                f.open_statuses[i].state = state.clone();
            } else {
                f.open_statuses.remove(i);
            }
        }
        None if matches!(state.as_str(), "pending" | "running") => {
            f.open_statuses.push(OpenStatus {
                name: name.clone(),
                state: state.clone(),
            });
        }
        None => {}
    }
    let out = json!({
        "id": f.statuses.len() + 1,
        "sha": sha,
        "ref": "bump",
        "status": state,
        "name": name,
        "target_url": null,
        "description": b["description"],
        "created_at": "2016-01-19T09:05:50.355Z",
        "started_at": null,
        "finished_at": null,
        "allow_failure": false,
        "coverage": null,
        "pipeline_id": 538317940,
        "author": { "id": 1, "username": ME },
    });
    f.statuses.push(json!({ "sha": sha, "body": b }));
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

// ---------------------------------------------------------------- helpers

fn pr() -> PrRef {
    format!("gitlab:{GROUP}/{PROJECT}#{MR}").parse().unwrap()
}

fn parts(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

fn with_marker(key: &str, part: usize, text: &str) -> String {
    format!("{}\n{}", comment_marker(key, part), text)
}

fn notes_path() -> String {
    format!("/api/v4/projects/{ENCODED}/merge_requests/{MR}/notes")
}

fn list_request(page: u64) -> String {
    format!(
        "GET {}?per_page=100&page={page}&sort=asc&order_by=created_at",
        notes_path()
    )
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_merge_request_reads_as_a_pull_request() {
    let gl = FakeGitLab::start().await;
    let client = gl.client();
    assert_eq!(client.api_base(), format!("{}/api/v4", gl.base));
    let p = client.pull_request(&pr()).await.unwrap();
    assert_eq!(p.number, MR);
    assert_eq!(p.state, "open");
    assert_eq!(
        (p.head_ref.as_str(), p.head_sha.as_str()),
        ("bump", HEAD_SHA)
    );
    assert_eq!(
        (p.base_ref.as_str(), p.base_sha.as_str()),
        ("main", BASE_SHA)
    );
    assert_eq!(
        gl.take_requests(),
        [format!(
            "GET /api/v4/projects/{ENCODED}/merge_requests/{MR}"
        )]
    );

    // Merged, and without a recorded merge base: the target's head.
    {
        let mut f = gl.fake();
        f.mr_state = "merged";
        f.diff_refs = json!({ "base_sha": null, "head_sha": HEAD_SHA, "start_sha": START_SHA });
    }
    let p = client.pull_request(&pr()).await.unwrap();
    assert_eq!(
        (p.state.as_str(), p.base_sha.as_str()),
        ("closed", START_SHA)
    );

    let missing: PrRef = format!("gitlab:{GROUP}/{PROJECT}#999").parse().unwrap();
    let e = client.pull_request(&missing).await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("404 Not found"), "{e}");
}

#[tokio::test]
async fn a_merge_request_without_its_diff_yet_is_read_again_then_refused() {
    let gl = FakeGitLab::start().await;
    gl.fake().diff_refs = Value::Null;
    let started = Instant::now();
    let e = gl.client().pull_request(&pr()).await.unwrap_err();
    assert!(e.to_string().contains("no diff yet"), "{e}");
    assert_eq!(gl.take_requests().len(), 5, "the first read and 4 more");
    assert!(started.elapsed().as_secs() < 10);
}

#[tokio::test]
async fn a_first_sync_creates_a_note_and_a_changed_plan_edits_it_in_place() {
    let gl = FakeGitLab::start().await;
    gl.seed("alice", "Looks good, but let's see the plan.");
    let client = gl.client();

    let r = client
        .sync_comments(&pr(), "", &parts(&["plan v1"]))
        .await
        .unwrap();
    assert_eq!(r.created.len(), 1, "{r:?}");
    let id = r.created[0];
    assert_eq!(gl.body(id), "<!-- kompox-plan -->\nplan v1");
    assert_eq!(gl.take_writes(), [format!("POST {}", notes_path())]);

    let r = client
        .sync_comments(&pr(), "", &parts(&["plan v2"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [id], "{r:?}");
    assert!(r.created.is_empty());
    assert_eq!(gl.plan_notes(), [(id, with_marker("", 1, "plan v2"))]);
    assert_eq!(gl.take_writes(), [format!("PUT {}/{id}", notes_path())]);
}

#[tokio::test]
async fn an_unchanged_plan_sends_no_write() {
    let gl = FakeGitLab::start().await;
    let client = gl.client();
    let first = client
        .sync_comments(&pr(), "", &parts(&["same", "two"]))
        .await
        .unwrap();
    gl.take_requests();

    let r = client
        .sync_comments(&pr(), "", &parts(&["same", "two"]))
        .await
        .unwrap();
    assert_eq!(r.unchanged, first.created, "{r:?}");
    assert!(r.created.is_empty() && r.updated.is_empty() && r.retired.is_empty());
    assert_eq!(gl.take_requests(), [list_request(1)], "only the listing");
}

#[tokio::test]
async fn system_notes_and_quoted_markers_are_left_alone() {
    let gl = FakeGitLab::start().await;
    // GitLab's own note, which nobody can edit, even were it to start with
    // the marker; and a reply quoting the marker in its body.
    let system = gl.seed_note(ME, &with_marker("", 1, "added 1 commit"), true);
    let quoting = gl.seed(
        "alice",
        &format!("Why does\n> {}\nsay so?", comment_marker("", 1)),
    );
    let client = gl.client();

    let r = client
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    let [ours] = r.created[..] else {
        panic!("{r:?}")
    };
    assert!(ours > quoting);
    assert_eq!(gl.body(system), with_marker("", 1, "added 1 commit"));
    assert!(gl.body(quoting).starts_with("Why does"));
    assert_eq!(gl.take_writes(), [format!("POST {}", notes_path())]);

    // The next sync finds ours, not the older system note.
    let r = client
        .sync_comments(&pr(), "", &parts(&["plan 2"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [ours], "{r:?}");
    assert_eq!(gl.take_writes(), [format!("PUT {}/{ours}", notes_path())]);
}

#[tokio::test]
async fn the_plan_note_is_found_on_the_second_page_by_x_next_page() {
    let gl = FakeGitLab::start().await;
    for i in 0..150 {
        gl.seed_note("alice", &format!("note {i}"), i % 3 == 0);
    }
    let ours = gl.seed(ME, &with_marker("", 1, "old plan"));
    let client = gl.client();

    let r = client
        .sync_comments(&pr(), "", &parts(&["new plan"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [ours], "{r:?}");
    assert_eq!(gl.body(ours), with_marker("", 1, "new plan"));
    assert_eq!(
        gl.take_requests(),
        [
            list_request(1),
            list_request(2),
            format!("PUT {}/{ours}", notes_path()),
        ]
    );
}

#[tokio::test]
async fn without_x_next_page_the_link_header_is_followed() {
    let gl = FakeGitLab::start().await;
    gl.fake().strip_page_headers = true;
    for i in 0..100 {
        gl.seed("alice", &format!("note {i}"));
    }
    let ours = gl.seed(ME, &with_marker("", 1, "old plan"));
    let r = gl
        .client()
        .sync_comments(&pr(), "", &parts(&["new plan"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [ours], "{r:?}");
    let requests = gl.take_requests();
    assert_eq!(requests[0], list_request(1));
    assert_eq!(
        requests[1],
        format!(
            "GET /api/v4/projects/{PROJECT_ID}/merge_requests/{MR}/notes?order_by=created_at&page=2&per_page=100&sort=asc"
        ),
        "the link's numeric project id"
    );
    assert_eq!(requests.len(), 3, "{requests:?}");
}

#[tokio::test]
async fn a_shorter_plan_retires_the_extra_notes_by_editing_them() {
    let gl = FakeGitLab::start().await;
    let client = gl.client();
    let r = client
        .sync_comments(&pr(), "", &parts(&["one", "two", "three"]))
        .await
        .unwrap();
    let [p1, p2, p3] = r.created[..] else {
        panic!("{r:?}")
    };
    gl.take_writes();

    let r = client
        .sync_comments(&pr(), "", &parts(&["one"]))
        .await
        .unwrap();
    assert_eq!(r.unchanged, [p1], "{r:?}");
    assert_eq!(r.retired, [p2, p3], "{r:?}");
    assert_eq!(
        gl.plan_notes(),
        [
            (p1, with_marker("", 1, "one")),
            (p2, with_marker("", 2, RETIRED_NOTE)),
            (p3, with_marker("", 3, RETIRED_NOTE)),
        ]
    );
    assert_eq!(
        gl.take_writes(),
        [
            format!("PUT {}/{p2}", notes_path()),
            format!("PUT {}/{p3}", notes_path()),
        ],
        "edited, never deleted"
    );

    let r = client
        .sync_comments(&pr(), "", &parts(&["one"]))
        .await
        .unwrap();
    assert_eq!(r.retired, [p2, p3]);
    assert!(gl.take_writes().is_empty());
}

#[tokio::test]
async fn a_503_then_success_leaves_exactly_one_note() {
    let gl = FakeGitLab::start().await;
    gl.fault(Method::POST, Fault::Status(503));
    let r = gl
        .client()
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    assert_eq!(r.created.len(), 1, "{r:?}");
    assert_eq!(gl.plan_notes().len(), 1);
    assert_eq!(
        gl.take_writes().len(),
        2,
        "one failed create, one that worked"
    );
}

#[tokio::test]
async fn a_note_created_but_answered_504_is_not_created_again() {
    let gl = FakeGitLab::start().await;
    gl.fault(Method::POST, Fault::ActThenStatus(504));
    let r = gl
        .client()
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    let notes = gl.plan_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(r.created, [notes[0].0]);
    assert_eq!(gl.take_writes().len(), 1, "one POST only");
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let gl = FakeGitLab::start().await;
    let client = gl.client();
    let id = client
        .sync_comments(&pr(), "", &parts(&["a"]))
        .await
        .unwrap()
        .created[0];
    gl.fault(Method::GET, Fault::RateLimited);
    gl.fault(Method::PUT, Fault::RateLimited);
    gl.take_requests();
    let r = client
        .sync_comments(&pr(), "", &parts(&["b"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [id]);
    assert_eq!(gl.take_requests().len(), 4, "two refused, two answered");
    assert_eq!(gl.plan_notes().len(), 1);
}

#[tokio::test]
async fn another_users_note_with_the_marker_is_not_taken_over() {
    let gl = FakeGitLab::start().await;
    let theirs = gl.seed("mallory", &with_marker("", 1, "my own plan"));
    let client = gl.client();
    let r = client
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    let [ours] = r.created[..] else {
        panic!("{r:?}")
    };
    assert_eq!(gl.body(theirs), with_marker("", 1, "my own plan"));
    let r = client
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    assert_eq!(r.unchanged, [ours], "{r:?}");
}

#[tokio::test]
async fn a_note_deleted_meanwhile_is_created_again() {
    let gl = FakeGitLab::start().await;
    let client = gl.client();
    let old = client
        .sync_comments(&pr(), "", &parts(&["a"]))
        .await
        .unwrap()
        .created[0];
    // Deleted between the listing and the edit.
    gl.fault(Method::PUT, Fault::Status(404));
    let r = client
        .sync_comments(&pr(), "", &parts(&["b"]))
        .await
        .unwrap();
    assert_eq!(r.created.len(), 1, "{r:?}");
    assert_ne!(r.created[0], old);
    assert_eq!(gl.body(r.created[0]), with_marker("", 1, "b"));
}

#[tokio::test]
async fn statuses_use_gitlabs_state_names_and_name() {
    let gl = FakeGitLab::start().await;
    let client = gl.client();
    let long = "é".repeat(200);
    client
        .set_status(&pr(), HEAD_SHA, StatusState::Success, &long, "kompox/plan")
        .await
        .unwrap();
    client
        .set_status(
            &pr(),
            HEAD_SHA,
            StatusState::Failure,
            "an app failed",
            "kompox/plan (prod)",
        )
        .await
        .unwrap();
    client
        .set_status(&pr(), HEAD_SHA, StatusState::Error, "broken", "kompox/plan")
        .await
        .unwrap();
    let statuses = gl.fake().statuses.clone();
    let states: Vec<(&str, &str)> = statuses
        .iter()
        .map(|s| {
            (
                s["body"]["state"].as_str().unwrap(),
                s["body"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("success", "kompox/plan"),
            ("failed", "kompox/plan (prod)"),
            ("failed", "kompox/plan"),
        ]
    );
    assert_eq!(statuses[0]["sha"], HEAD_SHA);
    assert_eq!(
        statuses[0]["body"]["description"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        140
    );
    assert!(statuses[0]["body"].get("context").is_none());
    assert_eq!(
        gl.take_writes()[0],
        format!("POST /api/v4/projects/{ENCODED}/statuses/{HEAD_SHA}")
    );

    // Pending twice: GitLab refuses to move it to where it is; that is
    // not an error.
    for _ in 0..2 {
        client
            .set_status(
                &pr(),
                HEAD_SHA,
                StatusState::Pending,
                "planning",
                "kompox/plan",
            )
            .await
            .unwrap();
    }
    assert_eq!(gl.fake().refused_transitions, 1);
    assert_eq!(gl.take_writes().len(), 2, "not retried");
    client
        .set_status(&pr(), HEAD_SHA, StatusState::Success, "done", "kompox/plan")
        .await
        .unwrap();

    let e = client
        .set_status(&pr(), "main", StatusState::Pending, "", "kompox/plan")
        .await
        .unwrap_err();
    assert!(matches!(e, ForgeError::InvalidCommitSha { .. }), "{e}");
    let other = "0".repeat(40);
    let e = client
        .set_status(&pr(), &other, StatusState::Success, "", "kompox/plan")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(e.to_string().contains("404 Commit Not Found"), "{e}");
}

#[tokio::test]
async fn the_token_is_sent_as_private_token_and_never_shown() {
    let gl = FakeGitLab::start().await;
    gl.client().pull_request(&pr()).await.unwrap();
    let h = gl.fake().headers.last().cloned().unwrap();
    assert_eq!(h["private-token"], TOKEN);
    assert!(h.get("authorization").is_none(), "{h:?}");
    assert_eq!(h["accept"], "application/json");
    assert!(
        h["user-agent"].to_str().unwrap().starts_with("kompoxops/"),
        "{h:?}"
    );

    let wrong = "glpat-WRONGTOKEN_do_not_print";
    let client = ForgeClient::new(
        ForgeKind::GitLab,
        Some(&gl.base),
        ForgeAuth::Token(wrong.into()),
    )
    .unwrap();
    let e = client
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap_err();
    let shown = format!("{e} {e:?} {client:?}");
    assert!(!shown.contains("WRONGTOKEN"), "{shown}");
    let msg = e.to_string();
    assert!(
        msg.contains("gitlab API") && msg.contains("401 Unauthorized"),
        "{msg}"
    );
    // Errors name the path under the API root.
    assert!(
        msg.contains(&format!(
            "GET /projects/{ENCODED}/merge_requests/{MR}/notes?"
        )),
        "{msg}"
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn a_job_token_is_refused_before_any_request() {
    let gl = FakeGitLab::start().await;
    let e = ForgeClient::new(
        ForgeKind::GitLab,
        Some(&gl.base),
        ForgeAuth::Token("glcbt-64_secretjobtoken".into()),
    )
    .unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(
        msg.contains("CI_JOB_TOKEN") && msg.contains("project access token"),
        "{msg}"
    );
    assert!(!msg.contains("secretjobtoken"), "{msg}");
    assert!(gl.take_requests().is_empty());
}

#[tokio::test]
async fn a_nested_group_path_is_one_encoded_segment_everywhere() {
    let gl = FakeGitLab::start().await;
    let client = gl.client();
    client.pull_request(&pr()).await.unwrap();
    client
        .sync_comments(&pr(), "", &parts(&["a", "b"]))
        .await
        .unwrap();
    client
        .sync_comments(&pr(), "", &parts(&["c"]))
        .await
        .unwrap();
    client
        .set_status(&pr(), HEAD_SHA, StatusState::Success, "ok", "kompox/plan")
        .await
        .unwrap();
    let requests = gl.take_requests();
    assert!(requests.len() >= 7, "{requests:?}");
    for r in &requests {
        let path = r.split_once(' ').unwrap().1;
        assert!(
            path.starts_with("/api/v4/projects/group%2Fsub%2Fproject/"),
            "{r}"
        );
    }
    // The fake, as GitLab, does not know the project by an unencoded path.
    let http = reqwest::Client::new();
    let raw = http
        .get(format!(
            "{}/api/v4/projects/{GROUP}/{PROJECT}/merge_requests/{MR}",
            gl.base
        ))
        .header("private-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 404);
}
