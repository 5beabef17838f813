//! `kompox::forge` against an in-process HTTP contract fake of GitHub's REST
//! API on 127.0.0.1 (no real GitHub is reachable from tests).
//!
//! The fake is shaped from GitHub's published REST documentation
//! (docs.github.com/en/rest, API version 2022-11-28) and models only what
//! the client uses:
//! - `GET /repos/{owner}/{repo}/issues/{issue_number}/comments`: `per_page`
//!   (default 30, at most 100) and `page`; a `Link` header with `rel="next"`,
//!   `"prev"`, `"first"`, `"last"` whose URLs use the
//!   `/repositories/{repository_id}/...` form, as GitHub's do; comments
//!   oldest first with `id`, `node_id`, `url`, `html_url`, `body`,
//!   `user.login`, `created_at`, `updated_at`, `author_association`.
//! - `POST /repos/{owner}/{repo}/issues/{issue_number}/comments` `{body}` →
//!   201 and the comment.
//! - `PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}` `{body}` →
//!   200 and the comment; 404 for an unknown id; 403 for another user's
//!   comment (a token without the right to edit it).
//! - `GET /repos/{owner}/{repo}/pulls/{pull_number}`: `number`, `state`,
//!   `head.ref`, `head.sha`, `base.ref`, `base.sha`.
//! - `POST /repos/{owner}/{repo}/statuses/{sha}` `{state, description,
//!   context}` → 201 with those fields.
//! - `POST /app/installations/{installation_id}/access_tokens` with the app's
//!   RS256 JWT (`iss`, `iat`, `exp` at most 10 minutes ahead) → 201
//!   `{token, expires_at, permissions}`.
//! - Errors as `{"message", "documentation_url"}`: 401 "Bad credentials",
//!   403 without a `User-Agent`, the secondary rate limit as 403 with
//!   `retry-after`.
//!
//! Faults (5xx, lost answers, rate limits) are injected per request.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kompox::forge::{
    ForgeAuth, ForgeClient, ForgeError, ForgeKind, PrRef, RETIRED_NOTE, StatusState, comment_marker,
};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_TESTTOKEN0123456789abcdef";
const OWNER: &str = "octo-org";
const REPO: &str = "app";
const PR: u64 = 12;
const REPO_ID: u64 = 1296269;
const ME: &str = "kompox-bot";
const APP_ID: &str = "12345";
const INSTALLATION: u64 = 678;
const APP_KEY: &str = include_str!("fixtures/forge/github_app_test_key.pem");
const APP_PUBLIC_KEY: &str = include_str!("fixtures/forge/github_app_test_key.pub.pem");
const HEAD_SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

// ---------------------------------------------------------------- the fake

#[derive(Clone, Debug)]
enum Fault {
    /// Answer with this status (and GitHub's message) without acting.
    Status(u16),
    /// GitHub's secondary rate limit: 403 with `retry-after: 0`.
    SecondaryRateLimit,
    /// Carry the request out, then answer this status (a gateway that
    /// lost the backend's answer).
    ActThenStatus(u16),
    /// Carry the request out, then answer only after this long (the
    /// client gives up first).
    ActThenStall(Duration),
}

struct Comment {
    body: String,
    author: String,
}

#[derive(Default)]
struct Fake {
    base: String,
    comments: BTreeMap<u64, Comment>,
    next_id: u64,
    statuses: Vec<Value>,
    /// `METHOD path?query` of every request, in order.
    requests: Vec<String>,
    /// Headers of the last request, for the header checks.
    last_headers: Option<HeaderMap>,
    /// Faults for the next requests with that method, in order.
    faults: VecDeque<(Method, Fault)>,
    /// Token → the login it authenticates.
    tokens: BTreeMap<String, String>,
    token_exchanges: usize,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeGitHub {
    base: String,
    state: Shared,
}

impl FakeGitHub {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state: Shared = Arc::new(Mutex::new(Fake {
            base: base.clone(),
            next_id: 1_000,
            ..Fake::default()
        }));
        state
            .lock()
            .unwrap()
            .tokens
            .insert(TOKEN.to_string(), ME.to_string());
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeGitHub { base, state }
    }

    fn client(&self) -> ForgeClient {
        ForgeClient::new(
            ForgeKind::GitHub,
            Some(&self.base),
            ForgeAuth::Token(TOKEN.into()),
        )
        .unwrap()
    }

    fn app_client(&self, app_id: &str) -> ForgeClient {
        ForgeClient::new(
            ForgeKind::GitHub,
            Some(&self.base),
            ForgeAuth::GitHubApp {
                app_id: app_id.into(),
                installation_id: INSTALLATION,
                private_key_pem: APP_KEY.into(),
            },
        )
        .unwrap()
    }

    fn fake(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.state.lock().unwrap()
    }

    fn seed(&self, author: &str, body: &str) -> u64 {
        let mut f = self.fake();
        f.next_id += 1;
        let id = f.next_id;
        f.comments.insert(
            id,
            Comment {
                body: body.into(),
                author: author.into(),
            },
        );
        id
    }

    fn fault(&self, method: Method, fault: Fault) {
        self.fake().faults.push_back((method, fault));
    }

    /// The comments that start with a Kompox marker, oldest first.
    fn plan_comments(&self) -> Vec<(u64, String)> {
        self.fake()
            .comments
            .iter()
            .filter(|(_, c)| c.body.starts_with("<!-- kompox-plan"))
            .map(|(id, c)| (*id, c.body.clone()))
            .collect()
    }

    fn body(&self, id: u64) -> String {
        self.fake().comments[&id].body.clone()
    }

    /// Requests other than GET since the last call.
    fn take_writes(&self) -> Vec<String> {
        let mut f = self.fake();
        let all = std::mem::take(&mut f.requests);
        all.into_iter().filter(|r| !r.starts_with("GET ")).collect()
    }

    fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut self.fake().requests)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        })),
    )
        .into_response()
}

fn comment_json(base: &str, id: u64, c: &Comment) -> Value {
    json!({
        "id": id,
        "node_id": format!("IC_{id}"),
        "url": format!("{base}/repos/{OWNER}/{REPO}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{OWNER}/{REPO}/pull/{PR}#issuecomment-{id}"),
        "body": c.body,
        "user": { "login": c.author, "id": 1, "type": if c.author == ME { "Bot" } else { "User" } },
        "created_at": "2011-04-14T16:00:49Z",
        "updated_at": "2011-04-14T16:00:49Z",
        "author_association": "COLLABORATOR",
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
        f.last_headers = Some(headers.clone());
        let at = f.faults.iter().position(|(m, _)| *m == method);
        at.and_then(|i| f.faults.remove(i)).map(|(_, fault)| fault)
    };
    match fault {
        Some(Fault::Status(s)) => {
            let s = StatusCode::from_u16(s).unwrap();
            return error(s, s.canonical_reason().unwrap_or("error"));
        }
        Some(Fault::SecondaryRateLimit) => {
            let mut r = error(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            r.headers_mut().insert("retry-after", "0".parse().unwrap());
            return r;
        }
        _ => {}
    }
    let response = route(&state, &method, &uri, &headers, &body);
    match fault {
        Some(Fault::ActThenStatus(s)) => {
            let s = StatusCode::from_u16(s).unwrap();
            error(s, s.canonical_reason().unwrap_or("error"))
        }
        Some(Fault::ActThenStall(d)) => {
            tokio::time::sleep(d).await;
            response
        }
        _ => response,
    }
}

fn route(state: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut f = state.lock().unwrap();
    if headers.get("user-agent").is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        );
    }
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();

    if let ["app", "installations", id, "access_tokens"] = segments[..] {
        if *method != Method::POST {
            return error(StatusCode::NOT_FOUND, "Not Found");
        }
        return access_token(&mut f, id, &auth);
    }

    let Some(user) = auth
        .strip_prefix("Bearer ")
        .and_then(|t| f.tokens.get(t))
        .cloned()
    else {
        return error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let json_body = || serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let base = f.base.clone();
    let issue = format!("{PR}");
    match (method.clone(), &segments[..]) {
        (Method::GET, ["repos", o, r, "issues", n, "comments"])
            if *o == OWNER && *r == REPO && *n == issue =>
        {
            list(&f, uri)
        }
        (Method::GET, ["repositories", id, "issues", n, "comments"])
            if *id == REPO_ID.to_string() && *n == issue =>
        {
            list(&f, uri)
        }
        (Method::POST, ["repos", o, r, "issues", n, "comments"])
            if *o == OWNER && *r == REPO && *n == issue =>
        {
            let Some(text) = json_body()["body"].as_str().map(str::to_string) else {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            };
            f.next_id += 1;
            let id = f.next_id;
            let c = Comment {
                body: text,
                author: user,
            };
            let out = comment_json(&base, id, &c);
            f.comments.insert(id, c);
            (StatusCode::CREATED, axum::Json(out)).into_response()
        }
        (Method::PATCH, ["repos", o, r, "issues", "comments", id]) if *o == OWNER && *r == REPO => {
            let Ok(id) = id.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let Some(text) = json_body()["body"].as_str().map(str::to_string) else {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            };
            match f.comments.get_mut(&id) {
                None => error(StatusCode::NOT_FOUND, "Not Found"),
                Some(c) if c.author != user => error(
                    StatusCode::FORBIDDEN,
                    "Resource not accessible by integration",
                ),
                Some(c) => {
                    c.body = text;
                    axum::Json(comment_json(&base, id, c)).into_response()
                }
            }
        }
        (Method::GET, ["repos", o, r, "pulls", n]) if *o == OWNER && *r == REPO && *n == issue => {
            axum::Json(json!({
                "url": format!("{base}/repos/{OWNER}/{REPO}/pulls/{PR}"),
                "id": 1,
                "number": PR,
                "state": "open",
                "title": "Bump the web image",
                "head": { "label": "octo-org:bump", "ref": "bump", "sha": HEAD_SHA },
                "base": { "label": "octo-org:main", "ref": "main",
                          "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b" },
                "merged": false,
            }))
            .into_response()
        }
        (Method::POST, ["repos", o, r, "statuses", sha]) if *o == OWNER && *r == REPO => {
            let b = json_body();
            let state_ok = matches!(
                b["state"].as_str(),
                Some("error" | "failure" | "pending" | "success")
            );
            if !state_ok || sha.len() != 40 {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            }
            let out = json!({
                "id": f.statuses.len() + 1,
                "state": b["state"],
                "description": b["description"],
                "context": b.get("context").cloned().unwrap_or(json!("default")),
                "target_url": null,
            });
            f.statuses.push(json!({ "sha": sha, "body": b }));
            (StatusCode::CREATED, axum::Json(out)).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn list(f: &Fake, uri: &Uri) -> Response {
    let q = query(uri);
    let per_page: usize = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let all: Vec<Value> = f
        .comments
        .iter()
        .map(|(id, c)| comment_json(&f.base, *id, c))
        .collect();
    let last = all.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let link = |p: usize, rel: &str| {
        format!(
            "<{}/repositories/{REPO_ID}/issues/{PR}/comments?per_page={per_page}&page={p}>; rel=\"{rel}\"",
            f.base
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let mut r = axum::Json(items).into_response();
    if !links.is_empty() {
        r.headers_mut()
            .insert("link", links.join(", ").parse().unwrap());
    }
    r
}

#[derive(serde::Deserialize)]
struct AppClaims {
    iss: String,
    iat: u64,
    exp: u64,
}

fn access_token(f: &mut Fake, id: &str, auth: &str) -> Response {
    let Some(jwt) = auth.strip_prefix("Bearer ") else {
        return error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        );
    };
    let public = pem::parse(APP_PUBLIC_KEY).unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_der(public.contents());
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&[APP_ID]);
    v.set_required_spec_claims(&["exp", "iat", "iss"]);
    let claims = match jsonwebtoken::decode::<AppClaims>(jwt, &key, &v) {
        Ok(d) => d.claims,
        Err(_) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
            );
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims.exp > now + 600
        || claims.exp <= claims.iat
        || claims.iat > now
        || claims.iss != APP_ID
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "'Expiration time' claim ('exp') is too far in the future",
        );
    }
    if id != INSTALLATION.to_string() {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    f.token_exchanges += 1;
    let token = format!("ghs_installation{}", f.token_exchanges);
    f.tokens.insert(token.clone(), ME.to_string());
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "token": token,
            "expires_at": "2099-01-01T00:00:00Z",
            "permissions": { "issues": "write", "pull_requests": "write", "statuses": "write" },
            "repository_selection": "selected",
        })),
    )
        .into_response()
}

// ---------------------------------------------------------------- helpers

fn pr() -> PrRef {
    format!("github:{OWNER}/{REPO}#{PR}").parse().unwrap()
}

fn parts(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

fn with_marker(key: &str, part: usize, text: &str) -> String {
    format!("{}\n{}", comment_marker(key, part), text)
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_first_sync_creates_the_comment_and_a_changed_plan_edits_it_in_place() {
    let gh = FakeGitHub::start().await;
    gh.seed("alice", "Looks good, but let's see the plan.");
    let client = gh.client();

    let r = client
        .sync_comments(&pr(), "", &parts(&["plan v1"]))
        .await
        .unwrap();
    assert_eq!(r.created.len(), 1, "{r:?}");
    let id = r.created[0];
    assert_eq!(gh.body(id), "<!-- kompox-plan -->\nplan v1");
    assert_eq!(
        gh.take_writes(),
        [format!("POST /repos/{OWNER}/{REPO}/issues/{PR}/comments")]
    );

    let r = client
        .sync_comments(&pr(), "", &parts(&["plan v2"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [id], "{r:?}");
    assert!(r.created.is_empty());
    assert_eq!(gh.plan_comments(), [(id, with_marker("", 1, "plan v2"))]);
    assert_eq!(
        gh.take_writes(),
        [format!("PATCH /repos/{OWNER}/{REPO}/issues/comments/{id}")]
    );
}

#[tokio::test]
async fn an_unchanged_plan_sends_no_write() {
    let gh = FakeGitHub::start().await;
    let client = gh.client();
    let first = client
        .sync_comments(&pr(), "", &parts(&["same", "two"]))
        .await
        .unwrap();
    gh.take_requests();

    let r = client
        .sync_comments(&pr(), "", &parts(&["same", "two"]))
        .await
        .unwrap();
    assert_eq!(r.unchanged, first.created, "{r:?}");
    assert!(r.created.is_empty() && r.updated.is_empty() && r.retired.is_empty());
    let requests = gh.take_requests();
    assert_eq!(
        requests,
        [format!(
            "GET /repos/{OWNER}/{REPO}/issues/{PR}/comments?per_page=100"
        )],
        "only the listing"
    );
}

#[tokio::test]
async fn a_shorter_plan_retires_the_extra_parts_without_deleting_them() {
    let gh = FakeGitHub::start().await;
    let client = gh.client();
    let r = client
        .sync_comments(&pr(), "", &parts(&["one", "two", "three"]))
        .await
        .unwrap();
    let [p1, p2, p3] = r.created[..] else {
        panic!("{r:?}")
    };
    assert_eq!(gh.body(p2), with_marker("", 2, "two"));

    let r = client
        .sync_comments(&pr(), "", &parts(&["one"]))
        .await
        .unwrap();
    assert_eq!(r.unchanged, [p1], "{r:?}");
    assert_eq!(r.retired, [p2, p3], "{r:?}");
    assert_eq!(
        gh.plan_comments(),
        [
            (p1, with_marker("", 1, "one")),
            (p2, with_marker("", 2, RETIRED_NOTE)),
            (p3, with_marker("", 3, RETIRED_NOTE)),
        ]
    );
    gh.take_writes();

    // Retired parts stay retired without further edits...
    let r = client
        .sync_comments(&pr(), "", &parts(&["one"]))
        .await
        .unwrap();
    assert_eq!(r.retired, [p2, p3]);
    assert!(gh.take_writes().is_empty());
    // ...and come back when the plan grows again.
    let r = client
        .sync_comments(&pr(), "", &parts(&["one", "2 again"]))
        .await
        .unwrap();
    assert_eq!(
        (r.updated.as_slice(), r.retired.as_slice()),
        ([p2].as_slice(), [p3].as_slice())
    );
    assert_eq!(gh.plan_comments().len(), 3);
}

#[tokio::test]
async fn the_existing_comment_is_found_on_the_second_page() {
    let gh = FakeGitHub::start().await;
    for i in 0..150 {
        gh.seed("alice", &format!("comment {i}"));
    }
    let ours = gh.seed(ME, &with_marker("", 1, "old plan"));
    let client = gh.client();

    let r = client
        .sync_comments(&pr(), "", &parts(&["new plan"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [ours], "{r:?}");
    assert_eq!(gh.body(ours), with_marker("", 1, "new plan"));
    let requests = gh.take_requests();
    assert_eq!(
        requests,
        [
            format!("GET /repos/{OWNER}/{REPO}/issues/{PR}/comments?per_page=100"),
            format!("GET /repositories/{REPO_ID}/issues/{PR}/comments?per_page=100&page=2"),
            format!("PATCH /repos/{OWNER}/{REPO}/issues/comments/{ours}"),
        ]
    );
}

#[tokio::test]
async fn two_503s_then_success_leave_exactly_one_comment() {
    let gh = FakeGitHub::start().await;
    gh.fault(Method::POST, Fault::Status(503));
    gh.fault(Method::POST, Fault::Status(503));
    let r = gh
        .client()
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    assert_eq!(r.created.len(), 1, "{r:?}");
    assert_eq!(gh.plan_comments().len(), 1);
    assert_eq!(
        gh.take_writes().len(),
        3,
        "two failed creates, one that worked"
    );
}

#[tokio::test]
async fn a_create_answered_504_after_it_happened_is_not_repeated() {
    let gh = FakeGitHub::start().await;
    gh.fault(Method::POST, Fault::ActThenStatus(504));
    let r = gh
        .client()
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    let comments = gh.plan_comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(r.created, [comments[0].0]);
    assert_eq!(gh.take_writes().len(), 1, "one POST only");
}

#[tokio::test]
async fn a_create_whose_answer_never_came_is_not_repeated() {
    let gh = FakeGitHub::start().await;
    gh.fault(Method::POST, Fault::ActThenStall(Duration::from_secs(3)));
    let client = gh.client().with_request_timeout(Duration::from_millis(300));
    let r = client
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    let comments = gh.plan_comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(r.created, [comments[0].0]);
    assert_eq!(gh.take_writes().len(), 1, "one POST only");
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let gh = FakeGitHub::start().await;
    let client = gh.client();
    let id = client
        .sync_comments(&pr(), "", &parts(&["a"]))
        .await
        .unwrap()
        .created[0];
    gh.fault(Method::PATCH, Fault::SecondaryRateLimit);
    gh.fault(Method::PATCH, Fault::Status(429));
    gh.take_writes();
    let r = client
        .sync_comments(&pr(), "", &parts(&["b"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [id]);
    assert_eq!(gh.take_writes().len(), 3);
    assert_eq!(gh.plan_comments().len(), 1);
}

#[tokio::test]
async fn a_user_comment_starting_with_the_marker_is_not_taken_over() {
    let gh = FakeGitHub::start().await;
    let theirs = gh.seed("mallory", &with_marker("", 1, "my own plan, thank you"));
    let client = gh.client();

    let r = client
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    let [ours] = r.created[..] else {
        panic!("{r:?}")
    };
    assert_eq!(
        gh.body(theirs),
        with_marker("", 1, "my own plan, thank you")
    );

    // Later syncs find ours behind theirs: no new comment each time.
    let r = client
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    assert_eq!(r.unchanged, [ours], "{r:?}");
    let r = client
        .sync_comments(&pr(), "", &parts(&["plan 2"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [ours], "{r:?}");
    assert_eq!(gh.plan_comments().len(), 2);
}

#[tokio::test]
async fn a_comment_deleted_meanwhile_is_created_again() {
    let gh = FakeGitHub::start().await;
    let client = gh.client();
    let old = client
        .sync_comments(&pr(), "", &parts(&["a"]))
        .await
        .unwrap()
        .created[0];
    gh.fault(Method::PATCH, Fault::Status(404));
    let r = client
        .sync_comments(&pr(), "", &parts(&["b"]))
        .await
        .unwrap();
    assert_eq!(r.created.len(), 1, "{r:?}");
    assert_ne!(r.created[0], old);
    assert_eq!(gh.body(r.created[0]), with_marker("", 1, "b"));
}

#[tokio::test]
async fn families_with_different_keys_keep_to_themselves() {
    let gh = FakeGitHub::start().await;
    let client = gh.client();
    let cli = client
        .sync_comments(&pr(), "", &parts(&["cli"]))
        .await
        .unwrap()
        .created[0];
    let prod = client
        .sync_comments(&pr(), "prod", &parts(&["prod"]))
        .await
        .unwrap()
        .created[0];
    assert_ne!(cli, prod);
    assert!(gh.body(prod).starts_with("<!-- kompox-plan:prod -->\n"));
    let r = client
        .sync_comments(&pr(), "prod", &parts(&["prod 2"]))
        .await
        .unwrap();
    assert_eq!(r.updated, [prod]);
    assert_eq!(gh.body(cli), with_marker("", 1, "cli"));
}

#[tokio::test]
async fn invalid_plans_are_refused_before_any_request() {
    let gh = FakeGitHub::start().await;
    let client = gh.client();
    let e = client
        .sync_comments(&pr(), "", &["x".repeat(70_000)])
        .await
        .unwrap_err();
    assert!(matches!(e, ForgeError::BodyTooLong { part: 1, .. }), "{e}");
    let e = client
        .sync_comments(&pr(), "bad key", &parts(&["x"]))
        .await
        .unwrap_err();
    assert!(matches!(e, ForgeError::InvalidCommentKey { .. }), "{e}");
    assert!(gh.take_requests().is_empty());
}

#[tokio::test]
async fn statuses_record_state_description_and_context() {
    let gh = FakeGitHub::start().await;
    let long = "é".repeat(200);
    gh.client()
        .set_status(&pr(), HEAD_SHA, StatusState::Success, &long, "kompox/plan")
        .await
        .unwrap();
    let statuses = gh.fake().statuses.clone();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0]["sha"], HEAD_SHA);
    let body = &statuses[0]["body"];
    assert_eq!(body["state"], "success");
    assert_eq!(body["context"], "kompox/plan");
    assert_eq!(body["description"].as_str().unwrap().chars().count(), 140);
    assert_eq!(
        gh.take_writes(),
        [format!("POST /repos/{OWNER}/{REPO}/statuses/{HEAD_SHA}")]
    );

    let e = gh
        .client()
        .set_status(&pr(), "main", StatusState::Pending, "", "kompox/plan")
        .await
        .unwrap_err();
    assert!(matches!(e, ForgeError::InvalidCommitSha { .. }), "{e}");
}

#[tokio::test]
async fn pull_requests_are_read() {
    let gh = FakeGitHub::start().await;
    let p = gh.client().pull_request(&pr()).await.unwrap();
    assert_eq!(p.number, PR);
    assert_eq!(p.state, "open");
    assert_eq!(
        (p.head_ref.as_str(), p.head_sha.as_str()),
        ("bump", HEAD_SHA)
    );
    assert_eq!(
        (p.base_ref.as_str(), p.base_sha.as_str()),
        ("main", "9049f1265b7d61be4a8904a9a27120d2064dab3b")
    );
    let missing: PrRef = format!("github:{OWNER}/{REPO}#999").parse().unwrap();
    let e = gh.client().pull_request(&missing).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn the_token_is_sent_as_bearer_with_github_headers_and_never_shown() {
    let gh = FakeGitHub::start().await;
    gh.client().pull_request(&pr()).await.unwrap();
    let h = gh.fake().last_headers.clone().unwrap();
    assert_eq!(h["authorization"], format!("Bearer {TOKEN}").as_str());
    assert_eq!(h["accept"], "application/vnd.github+json");
    assert_eq!(h["x-github-api-version"], "2022-11-28");
    assert!(
        h["user-agent"].to_str().unwrap().starts_with("kompoxops/"),
        "{h:?}"
    );

    let wrong = "ghp_WRONGTOKEN_do_not_print";
    let client = ForgeClient::new(
        ForgeKind::GitHub,
        Some(&gh.base),
        ForgeAuth::Token(wrong.into()),
    )
    .unwrap();
    let e = client
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap_err();
    let shown = format!("{e} {e:?} {client:?}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(!shown.contains("WRONGTOKEN"), "{shown}");
    let msg = e.to_string();
    assert!(
        msg.contains("401") && msg.contains("Bad credentials"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("GET /repos/{OWNER}/{REPO}/issues/{PR}/comments")),
        "{msg}"
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn an_unreachable_forge_is_a_retryable_error_naming_the_request() {
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = ForgeClient::new(
        ForgeKind::GitHub,
        Some(&format!("http://127.0.0.1:{port}")),
        ForgeAuth::Token(TOKEN.into()),
    )
    .unwrap();
    let e = client.pull_request(&pr()).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("GET /repos/{OWNER}/{REPO}/pulls/{PR}")),
        "{msg}"
    );
    assert!(!msg.contains(TOKEN), "{msg}");
}

#[tokio::test]
async fn a_github_app_trades_its_jwt_for_an_installation_token() {
    let gh = FakeGitHub::start().await;
    let client = gh.app_client(APP_ID);
    let r = client
        .sync_comments(&pr(), "", &parts(&["plan"]))
        .await
        .unwrap();
    assert_eq!(r.created.len(), 1);
    client
        .sync_comments(&pr(), "", &parts(&["plan 2"]))
        .await
        .unwrap();
    let f = gh.fake();
    assert_eq!(f.token_exchanges, 1, "the token is cached");
    assert_eq!(
        f.last_headers.as_ref().unwrap()["authorization"],
        "Bearer ghs_installation1"
    );
    assert_eq!(f.comments[&r.created[0]].author, ME);
    let exchanges = f
        .requests
        .iter()
        .filter(|r| *r == &format!("POST /app/installations/{INSTALLATION}/access_tokens"))
        .count();
    assert_eq!(exchanges, 1);
    assert!(!format!("{client:?}").contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_revoked_installation_token_is_replaced() {
    let gh = FakeGitHub::start().await;
    let client = gh.app_client(APP_ID);
    client.pull_request(&pr()).await.unwrap();
    gh.fake().tokens.remove("ghs_installation1");
    client.pull_request(&pr()).await.unwrap();
    assert_eq!(gh.fake().token_exchanges, 2);
}

#[tokio::test]
async fn a_jwt_for_another_app_is_refused() {
    let gh = FakeGitHub::start().await;
    let e = gh.app_client("999").pull_request(&pr()).await.unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.status(), Some(401), "{msg}");
    assert!(
        msg.contains(&format!(
            "POST /app/installations/{INSTALLATION}/access_tokens"
        )),
        "{msg}"
    );
    assert!(!msg.contains("eyJ"), "no JWT in errors: {msg}");
    let seen: HashSet<String> = gh.take_requests().into_iter().collect();
    assert!(!seen.iter().any(|r| r.contains("/pulls/")), "{seen:?}");
}
