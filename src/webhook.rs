//! Forge webhooks: authenticate and parse push and pull-request deliveries
//! from GitHub, Gitea and GitLab.
//!
//! Stage: triggers (around the pipeline, `DESIGN.md`). Pure: functions of a
//! request's headers and raw body, no clock, no I/O; the HTTP edge is
//! `server`.
//!
//! Guarantees:
//! - Nothing is accepted without proof that it came from the forge: an
//!   HMAC-SHA256 of the raw body (GitHub, Gitea) or the shared token
//!   (GitLab), both compared in constant time. With no secret configured
//!   every delivery is refused — an unsigned webhook would let anyone on the
//!   network trigger reconciles and pull-request plans.
//! - The body is parsed only after it is authenticated, so unauthenticated
//!   input never reaches the JSON parser.
//! - A delivery is accepted at most once while it is in the
//!   [`DeliveryCache`]: keyed on the delivery id *and* on a digest of the
//!   body, because the forges sign the body only — an attacker who captured
//!   a delivery could replay it under a fresh delivery id.
//! - Only the fields needed are read; commit ids are checked to be hex, so
//!   they can be handed to Git as they are.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The largest body accepted. Push payloads list at most 20 commits on
/// GitHub and are a few tens of KiB; 1 MiB leaves room for big pushes while
/// bounding what an unauthenticated client can make the server buffer.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How many deliveries [`DeliveryCache::default`] remembers. Far more than a
/// repository sees between two restarts of a replica in normal use, and
/// small: two 32-byte digests per delivery.
pub const DEFAULT_DELIVERY_CACHE: usize = 4096;

/// The forge a delivery came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forge {
    GitHub,
    Gitea,
    GitLab,
}

impl Forge {
    /// The lowercase name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
            Forge::GitLab => "gitlab",
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The webhook secret shared with the forge: the HMAC key for GitHub and
/// Gitea, the token for GitLab.
///
/// It has no `Display` and its `Debug` is redacted, so it cannot end up in
/// a log line or an error by accident. Cloning is cheap (shared bytes).
#[derive(Clone)]
pub struct WebhookSecret(Arc<[u8]>);

impl WebhookSecret {
    /// `None` for an empty secret: an empty HMAC key or token is no secret,
    /// and treating it as one would accept deliveries anyone can sign.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            None
        } else {
            Some(WebhookSecret(bytes.into()))
        }
    }

    /// The secret as read from a mounted file or an environment variable:
    /// the trailing newline that editors and `kubectl create secret
    /// --from-file` leave would otherwise silently become part of the key
    /// and every signature would fail to verify.
    pub fn from_file_contents(contents: &[u8]) -> Option<Self> {
        let end = contents
            .iter()
            .rposition(|b| !matches!(b, b'\n' | b'\r'))
            .map_or(0, |i| i + 1);
        Self::new(&contents[..end])
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why a delivery was refused. Each maps to an HTTP status
/// ([`WebhookError::status`]); the messages are safe to return to the
/// client and to log (they never contain the secret or the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhooks are refused: no webhook secret is configured on this controller")]
    NotConfigured,
    #[error("{forge} delivery without a signature (expected header {header})")]
    MissingSignature { forge: Forge, header: &'static str },
    #[error("{forge} delivery with a signature that does not match the webhook secret")]
    BadSignature { forge: Forge },
    #[error("delivery already received (replayed delivery id or body)")]
    Replayed,
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("bad payload: {0}")]
    BadPayload(String),
    #[error(
        "not a GitHub, Gitea or GitLab webhook (no X-GitHub-Event, X-Gitea-Event or X-Gitlab-Event header)"
    )]
    UnknownForge,
}

impl WebhookError {
    /// The HTTP status the server answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookError::NotConfigured
            | WebhookError::MissingSignature { .. }
            | WebhookError::BadSignature { .. } => StatusCode::UNAUTHORIZED,
            WebhookError::Replayed => StatusCode::CONFLICT,
            WebhookError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::BadPayload(_) | WebhookError::UnknownForge => StatusCode::BAD_REQUEST,
        }
    }
}

/// A push to a branch or tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub forge: Forge,
    /// `owner/name` (GitLab: the project's `path_with_namespace`).
    pub repo_full_name: String,
    /// The repository's HTTPS and SSH clone URLs, in that order, as the forge
    /// reports them; the reconciler matches them against its configured
    /// source to ignore pushes to other repositories.
    pub clone_urls: Vec<String>,
    /// The full ref pushed, `refs/heads/<branch>` or `refs/tags/<tag>`.
    pub git_ref: String,
    /// The commit the ref points to after the push (hex).
    pub after_commit: String,
}

/// What happened to a pull request, normalised across forges. Only the
/// actions that change what a plan would show are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestAction {
    /// GitHub and Gitea `opened`, GitLab `open`.
    Opened,
    /// New commits on the head branch: GitHub `synchronize`, Gitea
    /// `synchronized`, GitLab `update`.
    Synchronize,
    /// GitHub and Gitea `reopened`, GitLab `reopen`.
    Reopened,
}

/// A pull request (GitLab: merge request) whose plan comment needs
/// refreshing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub forge: Forge,
    /// The base repository, `owner/name`.
    pub repo_full_name: String,
    /// The pull request number (GitLab: the merge request `iid`).
    pub number: u64,
    pub action: PullRequestAction,
    /// The head commit (hex).
    pub head_sha: String,
    /// The head branch name (not a full ref).
    pub head_ref: String,
    /// The base branch name (not a full ref).
    pub base_ref: String,
}

/// What an authenticated delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    Push(PushEvent),
    PullRequest(PullRequestEvent),
    /// GitHub's `ping`, sent when a webhook is created.
    Ping,
    /// Authenticated but nothing to do (another event type, a closed pull
    /// request, a deleted branch); the reason is for logs and the response.
    Ignored(String),
}

/// An authenticated, parsed delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub forge: Forge,
    /// The forge's delivery id (`X-GitHub-Delivery`, `X-Gitea-Delivery`,
    /// `X-Gitlab-Event-UUID`), when it sent one.
    pub id: Option<String>,
    pub event: WebhookEvent,
    replay: ReplayKeys,
}

/// Authenticates a delivery and parses it.
///
/// Order: size, forge, secret, signature, then (only once authenticated)
/// the JSON body. Replays are checked separately with a [`DeliveryCache`],
/// which needs state.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&WebhookSecret>,
) -> Result<Delivery, WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let forge = forge_of(headers).ok_or(WebhookError::UnknownForge)?;
    let secret = secret.ok_or(WebhookError::NotConfigured)?;
    authenticate(forge, headers, body, secret)?;

    let id = match forge {
        Forge::GitHub => header(headers, "x-github-delivery"),
        Forge::Gitea => header(headers, "x-gitea-delivery"),
        Forge::GitLab => header(headers, "x-gitlab-event-uuid"),
    }
    .filter(|id| !id.is_empty())
    .map(str::to_owned);
    let event_name = match forge {
        Forge::GitHub => header(headers, "x-github-event"),
        Forge::Gitea => header(headers, "x-gitea-event"),
        Forge::GitLab => header(headers, "x-gitlab-event"),
    }
    .unwrap_or_default();
    let event = parse_event(forge, event_name, body)?;
    let replay = ReplayKeys::new(forge, id.as_deref(), body);
    Ok(Delivery {
        forge,
        id,
        event,
        replay,
    })
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The forge a request claims to come from, by its event header (not
/// authenticated: for metrics and logs of refused requests). Gitea (and
/// Forgejo) also send `X-GitHub-Event` for compatibility, so the Gitea
/// header is looked at first.
pub fn forge_of(headers: &HeaderMap) -> Option<Forge> {
    if headers.contains_key("x-gitea-event") {
        Some(Forge::Gitea)
    } else if headers.contains_key("x-gitlab-event") {
        Some(Forge::GitLab)
    } else if headers.contains_key("x-github-event") {
        Some(Forge::GitHub)
    } else {
        None
    }
}

fn authenticate(
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    secret: &WebhookSecret,
) -> Result<(), WebhookError> {
    match forge {
        Forge::GitHub => {
            let signature =
                headers
                    .get("x-hub-signature-256")
                    .ok_or(WebhookError::MissingSignature {
                        forge,
                        header: "X-Hub-Signature-256",
                    })?;
            let hex = signature
                .to_str()
                .ok()
                .and_then(|s| s.strip_prefix("sha256="))
                .ok_or(WebhookError::BadSignature { forge })?;
            verify_hmac(forge, secret, body, hex)
        }
        Forge::Gitea => {
            // Gitea sends its own header (bare hex) and, since 1.20, the
            // GitHub one too; either proves the sender has the secret.
            if let Some(signature) = headers.get("x-gitea-signature") {
                let hex = signature
                    .to_str()
                    .map_err(|_| WebhookError::BadSignature { forge })?;
                verify_hmac(forge, secret, body, hex)
            } else if let Some(signature) = headers.get("x-hub-signature-256") {
                let hex = signature
                    .to_str()
                    .ok()
                    .and_then(|s| s.strip_prefix("sha256="))
                    .ok_or(WebhookError::BadSignature { forge })?;
                verify_hmac(forge, secret, body, hex)
            } else {
                Err(WebhookError::MissingSignature {
                    forge,
                    header: "X-Gitea-Signature",
                })
            }
        }
        Forge::GitLab => {
            let token = headers
                .get("x-gitlab-token")
                .ok_or(WebhookError::MissingSignature {
                    forge,
                    header: "X-Gitlab-Token",
                })?;
            if tokens_equal(secret.bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(WebhookError::BadSignature { forge })
            }
        }
    }
}

/// `Mac::verify_slice` compares in constant time; a malformed hex string is
/// refused before any comparison (its length says nothing about the key).
fn verify_hmac(
    forge: Forge,
    secret: &WebhookSecret,
    body: &[u8],
    hex: &str,
) -> Result<(), WebhookError> {
    let expected = decode_hex_32(hex.trim()).ok_or(WebhookError::BadSignature { forge })?;
    let mut mac = HmacSha256::new_from_slice(secret.bytes())
        .map_err(|_| WebhookError::BadSignature { forge })?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::BadSignature { forge })
}

/// Constant-time token comparison that does not leak the token's length
/// either: both sides are MACed under a fixed key and the tags are compared
/// with `verify_slice` (the "double HMAC" comparison), which avoids another
/// dependency for a constant-time `eq`.
fn tokens_equal(expected: &[u8], presented: &[u8]) -> bool {
    const KEY: &[u8] = b"kompox webhook token comparison";
    let tag = |bytes: &[u8]| {
        let mut mac = HmacSha256::new_from_slice(KEY).expect("HMAC takes keys of any length");
        mac.update(bytes);
        mac
    };
    let expected_tag = tag(expected).finalize().into_bytes();
    tag(presented).verify_slice(&expected_tag).is_ok()
}

fn decode_hex_32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

// --- payloads: only the fields used -------------------------------------

#[derive(Deserialize)]
struct HubRepository {
    full_name: String,
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    ssh_url: Option<String>,
}

/// GitHub's and Gitea's push payloads share this layout.
#[derive(Deserialize)]
struct HubPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    repository: HubRepository,
}

#[derive(Deserialize)]
struct ActionOnly {
    action: Option<String>,
}

#[derive(Deserialize)]
struct HubBranch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
}

#[derive(Deserialize)]
struct HubPullRequestBody {
    head: HubBranch,
    base: HubBranch,
}

/// GitHub's and Gitea's pull-request payloads share this layout.
#[derive(Deserialize)]
struct HubPullRequest {
    number: u64,
    pull_request: HubPullRequestBody,
    repository: HubRepository,
}

#[derive(Deserialize)]
struct LabProject {
    path_with_namespace: String,
    #[serde(default)]
    git_http_url: Option<String>,
    #[serde(default)]
    git_ssh_url: Option<String>,
}

#[derive(Deserialize)]
struct LabPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    project: LabProject,
}

#[derive(Deserialize)]
struct LabCommit {
    id: String,
}

#[derive(Deserialize)]
struct LabMergeRequestAttributes {
    iid: u64,
    source_branch: String,
    target_branch: String,
    last_commit: LabCommit,
}

#[derive(Deserialize)]
struct LabMergeRequestActionOnly {
    object_attributes: ActionOnly,
}

#[derive(Deserialize)]
struct LabMergeRequest {
    project: LabProject,
    object_attributes: LabMergeRequestAttributes,
}

fn parse_event(forge: Forge, event_name: &str, body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    match (forge, event_name) {
        (Forge::GitHub, "ping") => Ok(WebhookEvent::Ping),
        (Forge::GitHub | Forge::Gitea, "push") => {
            let p: HubPush = json(body)?;
            let clone_urls = [p.repository.clone_url, p.repository.ssh_url];
            push(
                forge,
                p.repository.full_name,
                clone_urls,
                p.git_ref,
                p.after,
            )
        }
        (Forge::GitHub | Forge::Gitea, "pull_request") => {
            let ActionOnly { action } = json(body)?;
            let action = action.unwrap_or_default();
            let Some(action) = hub_action(forge, &action) else {
                return Ok(WebhookEvent::Ignored(format!(
                    "pull request action `{action}`"
                )));
            };
            let p: HubPullRequest = json(body)?;
            pull_request(PullRequestEvent {
                forge,
                repo_full_name: p.repository.full_name,
                number: p.number,
                action,
                head_sha: p.pull_request.head.sha,
                head_ref: p.pull_request.head.git_ref,
                base_ref: p.pull_request.base.git_ref,
            })
        }
        // Tag pushes come as `push` on GitHub and Gitea too; the reconciler
        // decides by `git_ref` what it follows.
        (Forge::GitLab, "Push Hook" | "Tag Push Hook") => {
            let p: LabPush = json(body)?;
            let clone_urls = [p.project.git_http_url, p.project.git_ssh_url];
            push(
                forge,
                p.project.path_with_namespace,
                clone_urls,
                p.git_ref,
                p.after,
            )
        }
        (Forge::GitLab, "Merge Request Hook") => {
            let LabMergeRequestActionOnly {
                object_attributes: ActionOnly { action },
            } = json(body)?;
            let action = action.unwrap_or_default();
            let Some(action) = lab_action(&action) else {
                return Ok(WebhookEvent::Ignored(format!(
                    "merge request action `{action}`"
                )));
            };
            let p: LabMergeRequest = json(body)?;
            let a = p.object_attributes;
            pull_request(PullRequestEvent {
                forge,
                repo_full_name: p.project.path_with_namespace,
                number: a.iid,
                action,
                head_sha: a.last_commit.id,
                head_ref: a.source_branch,
                base_ref: a.target_branch,
            })
        }
        (_, "") => Err(WebhookError::BadPayload(format!(
            "{forge} delivery without an event header"
        ))),
        (_, other) => Ok(WebhookEvent::Ignored(format!("{forge} event `{other}`"))),
    }
}

fn hub_action(forge: Forge, action: &str) -> Option<PullRequestAction> {
    match (forge, action) {
        (_, "opened") => Some(PullRequestAction::Opened),
        (_, "reopened") => Some(PullRequestAction::Reopened),
        (Forge::GitHub, "synchronize") | (Forge::Gitea, "synchronized") => {
            Some(PullRequestAction::Synchronize)
        }
        _ => None,
    }
}

fn lab_action(action: &str) -> Option<PullRequestAction> {
    match action {
        "open" => Some(PullRequestAction::Opened),
        "update" => Some(PullRequestAction::Synchronize),
        "reopen" => Some(PullRequestAction::Reopened),
        _ => None,
    }
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, WebhookError> {
    serde_json::from_slice(body).map_err(|e| {
        // serde_json's messages name the field and position, never the
        // value, so they are safe to return.
        WebhookError::BadPayload(format!(
            "{e} (is the webhook's content type application/json?)"
        ))
    })
}

fn push(
    forge: Forge,
    repo_full_name: String,
    clone_urls: [Option<String>; 2],
    git_ref: String,
    after: String,
) -> Result<WebhookEvent, WebhookError> {
    check_commit("after", &after)?;
    // A deleted branch or tag: every forge sends an all-zero `after`.
    if after.bytes().all(|b| b == b'0') {
        return Ok(WebhookEvent::Ignored(format!("`{git_ref}` was deleted")));
    }
    Ok(WebhookEvent::Push(PushEvent {
        forge,
        repo_full_name,
        clone_urls: clone_urls
            .into_iter()
            .flatten()
            .filter(|u| !u.is_empty())
            .collect(),
        git_ref,
        after_commit: after,
    }))
}

fn pull_request(event: PullRequestEvent) -> Result<WebhookEvent, WebhookError> {
    check_commit("head sha", &event.head_sha)?;
    Ok(WebhookEvent::PullRequest(event))
}

/// SHA-1 (40) or SHA-256 (64) object names in hex: anything else is not a
/// commit id and is refused rather than passed on to Git.
fn check_commit(what: &str, id: &str) -> Result<(), WebhookError> {
    if matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(WebhookError::BadPayload(format!(
            "{what} is not a commit id"
        )))
    }
}

// --- replay protection ----------------------------------------------------

/// The digests a delivery is remembered by: its delivery id (when sent) and
/// its body, each tagged with the forge so that they cannot collide.
/// Digests keep the memory per delivery fixed however long the header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplayKeys {
    id: Option<[u8; 32]>,
    body: [u8; 32],
}

impl ReplayKeys {
    fn new(forge: Forge, id: Option<&str>, body: &[u8]) -> Self {
        let digest = |kind: &[u8], bytes: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(forge.as_str().as_bytes());
            h.update([0]);
            h.update(kind);
            h.update([0]);
            h.update(bytes);
            h.finalize().into()
        };
        ReplayKeys {
            id: id.map(|id| digest(b"delivery", id.as_bytes())),
            body: digest(b"body", body),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.id.iter().chain(std::iter::once(&self.body))
    }
}

/// The deliveries seen recently, oldest evicted first, so that a replayed
/// delivery is refused. Per replica and in memory: a replay to another
/// replica or after a restart gets through, which costs one more reconcile
/// of the current branch head (the reconciler fetches; it does not trust
/// the payload's commit), never a wrong apply.
#[derive(Debug)]
pub struct DeliveryCache {
    capacity: usize,
    order: VecDeque<ReplayKeys>,
    seen: HashSet<[u8; 32]>,
}

impl Default for DeliveryCache {
    fn default() -> Self {
        Self::new(DEFAULT_DELIVERY_CACHE)
    }
}

impl DeliveryCache {
    /// Remembers the last `capacity` deliveries (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        DeliveryCache {
            capacity,
            order: VecDeque::with_capacity(capacity.min(1024)),
            seen: HashSet::new(),
        }
    }

    /// Records the delivery, or refuses it with [`WebhookError::Replayed`]
    /// when its id or its body was seen before.
    pub fn admit(&mut self, delivery: &Delivery) -> Result<(), WebhookError> {
        let keys = delivery.replay;
        if keys.iter().any(|k| self.seen.contains(k)) {
            return Err(WebhookError::Replayed);
        }
        self.seen.extend(keys.iter().copied());
        self.order.push_back(keys);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                for k in old.iter() {
                    self.seen.remove(k);
                }
            }
        }
        Ok(())
    }

    /// Forgets an admitted delivery, so that the forge's retry is accepted
    /// when the delivery could not be acted on (the trigger queue was full).
    pub fn forget(&mut self, delivery: &Delivery) {
        let keys = delivery.replay;
        if let Some(pos) = self.order.iter().rposition(|k| *k == keys) {
            self.order.remove(pos);
            for k in keys.iter() {
                self.seen.remove(k);
            }
        }
    }

    /// How many deliveries are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const COMMIT: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
    const HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

    fn secret() -> WebhookSecret {
        WebhookSecret::new(SECRET).unwrap()
    }

    fn sign(key: &[u8], body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn github(event: &str, delivery: &str, body: &[u8]) -> HeaderMap {
        let sig = format!("sha256={}", sign(SECRET, body));
        headers(&[
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", &sig),
            ("content-type", "application/json"),
        ])
    }

    fn gitea(event: &str, delivery: &str, body: &[u8]) -> HeaderMap {
        let sig = sign(SECRET, body);
        // Gitea sends the GitHub and Gogs headers as well.
        headers(&[
            ("x-gitea-event", event),
            ("x-gitea-event-type", event),
            ("x-gitea-delivery", delivery),
            ("x-gitea-signature", &sig),
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("x-gogs-event", event),
        ])
    }

    fn gitlab(event: &str, uuid: &str, token: &str) -> HeaderMap {
        headers(&[
            ("x-gitlab-event", event),
            ("x-gitlab-event-uuid", uuid),
            ("x-gitlab-token", token),
            ("x-gitlab-instance", "https://gitlab.example.com"),
        ])
    }

    fn github_push(after: &str) -> Vec<u8> {
        serde_json::json!({
            "ref": "refs/heads/main",
            "before": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "after": after,
            "created": false,
            "deleted": after.bytes().all(|b| b == b'0'),
            "forced": false,
            "compare": "https://github.com/acme/deploy/compare/0d1a26e67d8f...6113728f27ae",
            "commits": [{"id": after, "message": "gitea: 1.24", "distinct": true}],
            "head_commit": {"id": after},
            "repository": {
                "id": 1296269,
                "name": "deploy",
                "full_name": "acme/deploy",
                "private": true,
                "owner": {"login": "acme", "id": 1},
                "clone_url": "https://github.com/acme/deploy.git",
                "ssh_url": "git@github.com:acme/deploy.git",
                "git_url": "git://github.com/acme/deploy.git",
                "default_branch": "main"
            },
            "pusher": {"name": "alice", "email": "alice@example.com"},
            "sender": {"login": "alice", "id": 2}
        })
        .to_string()
        .into_bytes()
    }

    fn github_pull_request(action: &str, head: &str) -> Vec<u8> {
        serde_json::json!({
            "action": action,
            "number": 42,
            "pull_request": {
                "url": "https://api.github.com/repos/acme/deploy/pulls/42",
                "number": 42,
                "state": "open",
                "title": "wiki: bigger disk",
                "head": {"label": "acme:wiki-disk", "ref": "wiki-disk", "sha": head,
                         "repo": {"full_name": "acme/deploy"}},
                "base": {"label": "acme:main", "ref": "main", "sha": COMMIT,
                         "repo": {"full_name": "acme/deploy"}}
            },
            "repository": {"full_name": "acme/deploy",
                           "clone_url": "https://github.com/acme/deploy.git"},
            "sender": {"login": "alice"}
        })
        .to_string()
        .into_bytes()
    }

    fn gitea_push(after: &str) -> Vec<u8> {
        serde_json::json!({
            "ref": "refs/heads/main",
            "before": "28e1879d029cb852e4844d9c718537df08844e03",
            "after": after,
            "compare_url": "http://gitea.local:3000/acme/deploy/compare/28e1879d...",
            "commits": [{"id": after, "message": "wiki: 2 GiB\n"}],
            "repository": {
                "id": 140,
                "owner": {"id": 1, "login": "acme", "username": "acme"},
                "name": "deploy",
                "full_name": "acme/deploy",
                "private": false,
                "html_url": "http://gitea.local:3000/acme/deploy",
                "ssh_url": "ssh://git@gitea.local:2222/acme/deploy.git",
                "clone_url": "http://gitea.local:3000/acme/deploy.git",
                "default_branch": "main"
            },
            "pusher": {"id": 1, "login": "alice"},
            "sender": {"id": 1, "login": "alice"}
        })
        .to_string()
        .into_bytes()
    }

    fn gitea_pull_request(action: &str) -> Vec<u8> {
        serde_json::json!({
            "action": action,
            "number": 7,
            "pull_request": {
                "id": 31,
                "number": 7,
                "state": "open",
                "head": {"label": "wiki-disk", "ref": "wiki-disk", "sha": HEAD, "repo_id": 140},
                "base": {"label": "main", "ref": "main", "sha": COMMIT, "repo_id": 140}
            },
            "repository": {"full_name": "acme/deploy",
                           "clone_url": "http://gitea.local:3000/acme/deploy.git"},
            "sender": {"login": "alice"}
        })
        .to_string()
        .into_bytes()
    }

    fn gitlab_push(after: &str) -> Vec<u8> {
        serde_json::json!({
            "object_kind": "push",
            "event_name": "push",
            "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
            "after": after,
            "ref": "refs/heads/main",
            "ref_protected": true,
            "checkout_sha": after,
            "user_username": "alice",
            "project_id": 15,
            "project": {
                "id": 15,
                "name": "deploy",
                "web_url": "https://gitlab.example.com/acme/deploy",
                "git_ssh_url": "git@gitlab.example.com:acme/deploy.git",
                "git_http_url": "https://gitlab.example.com/acme/deploy.git",
                "namespace": "acme",
                "path_with_namespace": "acme/deploy",
                "default_branch": "main"
            },
            "commits": [{"id": after, "message": "wiki: 2 GiB"}],
            "total_commits_count": 1
        })
        .to_string()
        .into_bytes()
    }

    fn gitlab_merge_request(action: &str) -> Vec<u8> {
        serde_json::json!({
            "object_kind": "merge_request",
            "event_type": "merge_request",
            "user": {"username": "alice"},
            "project": {
                "id": 15,
                "path_with_namespace": "acme/deploy",
                "git_http_url": "https://gitlab.example.com/acme/deploy.git",
                "git_ssh_url": "git@gitlab.example.com:acme/deploy.git"
            },
            "object_attributes": {
                "id": 99,
                "iid": 3,
                "target_branch": "main",
                "source_branch": "wiki-disk",
                "source_project_id": 15,
                "target_project_id": 15,
                "state": "opened",
                "title": "wiki: bigger disk",
                "last_commit": {"id": HEAD, "message": "wiki: 2 GiB"},
                "action": action
            }
        })
        .to_string()
        .into_bytes()
    }

    fn push_of(delivery: Delivery) -> PushEvent {
        match delivery.event {
            WebhookEvent::Push(p) => p,
            other => panic!("expected a push, got {other:?}"),
        }
    }

    fn pr_of(delivery: Delivery) -> PullRequestEvent {
        match delivery.event {
            WebhookEvent::PullRequest(p) => p,
            other => panic!("expected a pull request, got {other:?}"),
        }
    }

    #[test]
    fn github_push_is_verified_and_parsed() {
        let body = github_push(COMMIT);
        let d = verify(&github("push", "d-1", &body), &body, Some(&secret())).unwrap();
        assert_eq!(d.forge, Forge::GitHub);
        assert_eq!(d.id.as_deref(), Some("d-1"));
        assert_eq!(
            push_of(d),
            PushEvent {
                forge: Forge::GitHub,
                repo_full_name: "acme/deploy".into(),
                clone_urls: vec![
                    "https://github.com/acme/deploy.git".into(),
                    "git@github.com:acme/deploy.git".into()
                ],
                git_ref: "refs/heads/main".into(),
                after_commit: COMMIT.into(),
            }
        );
    }

    #[test]
    fn github_signature_in_upper_case_hex_is_accepted() {
        let body = github_push(COMMIT);
        let sig = format!("sha256={}", sign(SECRET, &body).to_uppercase());
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &sig)]);
        assert!(verify(&h, &body, Some(&secret())).is_ok());
    }

    #[test]
    fn github_signature_with_another_key_is_refused() {
        let body = github_push(COMMIT);
        let sig = format!("sha256={}", sign(b"not the secret", &body));
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &sig)]);
        assert_eq!(
            verify(&h, &body, Some(&secret())).unwrap_err(),
            WebhookError::BadSignature {
                forge: Forge::GitHub
            }
        );
    }

    #[test]
    fn github_signature_of_another_body_is_refused() {
        let body = github_push(COMMIT);
        let h = github("push", "d-1", &body);
        let tampered = github_push(HEAD);
        assert_eq!(
            verify(&h, &tampered, Some(&secret())).unwrap_err(),
            WebhookError::BadSignature {
                forge: Forge::GitHub
            }
        );
    }

    #[test]
    fn malformed_github_signatures_are_refused() {
        let body = github_push(COMMIT);
        let good = sign(SECRET, &body);
        for sig in [
            good.clone(),                        // no prefix
            format!("sha1={good}"),              // wrong algorithm
            format!("sha256={}", &good[..62]),   // truncated
            format!("sha256={good}00"),          // too long
            format!("sha256={}zz", &good[..62]), // not hex
            "sha256=".to_string(),               // empty
        ] {
            let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &sig)]);
            assert_eq!(
                verify(&h, &body, Some(&secret())).unwrap_err(),
                WebhookError::BadSignature {
                    forge: Forge::GitHub
                },
                "{sig}"
            );
        }
    }

    #[test]
    fn github_sha1_signature_alone_is_missing_a_signature() {
        let body = github_push(COMMIT);
        let h = headers(&[
            ("x-github-event", "push"),
            (
                "x-hub-signature",
                "sha1=0000000000000000000000000000000000000000",
            ),
        ]);
        let err = verify(&h, &body, Some(&secret())).unwrap_err();
        assert_eq!(
            err,
            WebhookError::MissingSignature {
                forge: Forge::GitHub,
                header: "X-Hub-Signature-256"
            }
        );
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn without_a_secret_everything_is_refused_even_when_signed() {
        let body = github_push(COMMIT);
        let err = verify(&github("push", "d-1", &body), &body, None).unwrap_err();
        assert_eq!(err, WebhookError::NotConfigured);
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        let body = gitlab_push(COMMIT);
        let h = gitlab("Push Hook", "u-1", std::str::from_utf8(SECRET).unwrap());
        assert_eq!(
            verify(&h, &body, None).unwrap_err(),
            WebhookError::NotConfigured
        );
    }

    #[test]
    fn empty_secrets_are_no_secret_and_trailing_newlines_are_trimmed() {
        assert!(WebhookSecret::new(Vec::new()).is_none());
        assert!(WebhookSecret::from_file_contents(b"\n").is_none());
        let from_file =
            WebhookSecret::from_file_contents(b"It's a Secret to Everybody\r\n").unwrap();
        let body = github_push(COMMIT);
        assert!(verify(&github("push", "d", &body), &body, Some(&from_file)).is_ok());
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let s = secret();
        let shown = format!("{s:?} {:?}", Some(s.clone()));
        assert!(!shown.contains("Secret to Everybody"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn github_ping_is_a_ping() {
        let body = br#"{"zen":"Keep it logically awesome.","hook_id":1,"hook":{"type":"Repository","events":["push","pull_request"],"config":{"content_type":"json","url":"https://kompox.example.com/webhook"}}}"#;
        let d = verify(&github("ping", "p-1", body), body, Some(&secret())).unwrap();
        assert_eq!(d.event, WebhookEvent::Ping);
    }

    #[test]
    fn github_pull_request_actions() {
        for (action, want) in [
            ("opened", PullRequestAction::Opened),
            ("synchronize", PullRequestAction::Synchronize),
            ("reopened", PullRequestAction::Reopened),
        ] {
            let body = github_pull_request(action, HEAD);
            let h = github("pull_request", "d", &body);
            let pr = pr_of(verify(&h, &body, Some(&secret())).unwrap());
            assert_eq!(
                pr,
                PullRequestEvent {
                    forge: Forge::GitHub,
                    repo_full_name: "acme/deploy".into(),
                    number: 42,
                    action: want,
                    head_sha: HEAD.into(),
                    head_ref: "wiki-disk".into(),
                    base_ref: "main".into(),
                }
            );
        }
        for action in ["closed", "edited", "labeled", "synchronized"] {
            let body = github_pull_request(action, HEAD);
            let h = github("pull_request", "d", &body);
            let d = verify(&h, &body, Some(&secret())).unwrap();
            assert!(
                matches!(&d.event, WebhookEvent::Ignored(r) if r.contains(action)),
                "{action}: {:?}",
                d.event
            );
        }
    }

    #[test]
    fn other_github_events_are_ignored_after_authentication() {
        let body = br#"{"action":"created","issue":{"number":1}}"#;
        let d = verify(&github("issues", "d", body), body, Some(&secret())).unwrap();
        assert_eq!(
            d.event,
            WebhookEvent::Ignored("github event `issues`".into())
        );
        // ... but not before: an unsigned one is still refused.
        let h = headers(&[("x-github-event", "issues")]);
        assert!(matches!(
            verify(&h, body, Some(&secret())),
            Err(WebhookError::MissingSignature { .. })
        ));
    }

    #[test]
    fn deleted_branch_is_ignored() {
        let zero = "0".repeat(40);
        let body = github_push(&zero);
        let d = verify(&github("push", "d", &body), &body, Some(&secret())).unwrap();
        assert_eq!(
            d.event,
            WebhookEvent::Ignored("`refs/heads/main` was deleted".into())
        );
    }

    #[test]
    fn commit_ids_that_are_not_hex_are_refused() {
        for after in ["main", "--upload-pack=touch /tmp/x", &"g".repeat(40), ""] {
            let body = github_push(after);
            let err = verify(&github("push", "d", &body), &body, Some(&secret())).unwrap_err();
            assert!(matches!(err, WebhookError::BadPayload(_)), "{after}: {err}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
        let sha256 = "a".repeat(64);
        let body = github_push(&sha256);
        let d = verify(&github("push", "d", &body), &body, Some(&secret())).unwrap();
        assert_eq!(push_of(d).after_commit, sha256);
    }

    #[test]
    fn form_encoded_bodies_are_a_bad_payload_that_names_the_content_type() {
        let body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D";
        let err = verify(&github("push", "d", body), body, Some(&secret())).unwrap_err();
        match err {
            WebhookError::BadPayload(m) => assert!(m.contains("application/json"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gitea_push_is_verified_with_its_own_header() {
        let body = gitea_push(COMMIT);
        let d = verify(&gitea("push", "g-1", &body), &body, Some(&secret())).unwrap();
        assert_eq!(d.forge, Forge::Gitea);
        assert_eq!(d.id.as_deref(), Some("g-1"));
        let p = push_of(d);
        assert_eq!(p.forge, Forge::Gitea);
        assert_eq!(p.after_commit, COMMIT);
        assert_eq!(p.git_ref, "refs/heads/main");
        assert_eq!(
            p.clone_urls,
            vec![
                "http://gitea.local:3000/acme/deploy.git".to_string(),
                "ssh://git@gitea.local:2222/acme/deploy.git".to_string()
            ]
        );
    }

    #[test]
    fn gitea_push_is_verified_with_the_github_header_too() {
        let body = gitea_push(COMMIT);
        let sig = format!("sha256={}", sign(SECRET, &body));
        let h = headers(&[
            ("x-gitea-event", "push"),
            ("x-github-event", "push"),
            ("x-hub-signature-256", &sig),
        ]);
        assert_eq!(
            verify(&h, &body, Some(&secret())).unwrap().forge,
            Forge::Gitea
        );
    }

    #[test]
    fn gitea_bad_and_missing_signatures_are_refused() {
        let body = gitea_push(COMMIT);
        let mut h = gitea("push", "g", &body);
        h.insert(
            "x-gitea-signature",
            HeaderValue::from_str(&sign(b"wrong", &body)).unwrap(),
        );
        assert_eq!(
            verify(&h, &body, Some(&secret())).unwrap_err(),
            WebhookError::BadSignature {
                forge: Forge::Gitea
            }
        );
        h.remove("x-gitea-signature");
        assert_eq!(
            verify(&h, &body, Some(&secret())).unwrap_err(),
            WebhookError::MissingSignature {
                forge: Forge::Gitea,
                header: "X-Gitea-Signature"
            }
        );
    }

    #[test]
    fn gitea_pull_request_actions() {
        let body = gitea_pull_request("synchronized");
        let pr = pr_of(verify(&gitea("pull_request", "g", &body), &body, Some(&secret())).unwrap());
        assert_eq!(
            pr,
            PullRequestEvent {
                forge: Forge::Gitea,
                repo_full_name: "acme/deploy".into(),
                number: 7,
                action: PullRequestAction::Synchronize,
                head_sha: HEAD.into(),
                head_ref: "wiki-disk".into(),
                base_ref: "main".into(),
            }
        );
        for (action, want) in [
            ("opened", PullRequestAction::Opened),
            ("reopened", PullRequestAction::Reopened),
        ] {
            let body = gitea_pull_request(action);
            let h = gitea("pull_request", "g", &body);
            assert_eq!(
                pr_of(verify(&h, &body, Some(&secret())).unwrap()).action,
                want
            );
        }
        for action in ["closed", "label_updated", "assigned"] {
            let body = gitea_pull_request(action);
            let h = gitea("pull_request", "g", &body);
            let d = verify(&h, &body, Some(&secret())).unwrap();
            assert!(matches!(d.event, WebhookEvent::Ignored(_)), "{action}");
        }
        // Review approvals come with action `synchronized` under another
        // event name; they do not change the plan.
        let body = gitea_pull_request("synchronized");
        let h = gitea("pull_request_approved", "g", &body);
        let d = verify(&h, &body, Some(&secret())).unwrap();
        assert!(matches!(d.event, WebhookEvent::Ignored(_)));
    }

    #[test]
    fn gitlab_push_is_verified_by_token() {
        let body = gitlab_push(COMMIT);
        let h = gitlab("Push Hook", "u-1", "It's a Secret to Everybody");
        let d = verify(&h, &body, Some(&secret())).unwrap();
        assert_eq!(d.forge, Forge::GitLab);
        assert_eq!(d.id.as_deref(), Some("u-1"));
        assert_eq!(
            push_of(d),
            PushEvent {
                forge: Forge::GitLab,
                repo_full_name: "acme/deploy".into(),
                clone_urls: vec![
                    "https://gitlab.example.com/acme/deploy.git".into(),
                    "git@gitlab.example.com:acme/deploy.git".into()
                ],
                git_ref: "refs/heads/main".into(),
                after_commit: COMMIT.into(),
            }
        );
    }

    #[test]
    fn gitlab_wrong_or_missing_token_is_refused() {
        let body = gitlab_push(COMMIT);
        for token in [
            "It's a Secret to Everybod",
            "It's a Secret to Everybody ",
            "it's a secret to everybody",
            "",
        ] {
            let h = gitlab("Push Hook", "u", token);
            assert_eq!(
                verify(&h, &body, Some(&secret())).unwrap_err(),
                WebhookError::BadSignature {
                    forge: Forge::GitLab
                },
                "{token:?}"
            );
        }
        let h = headers(&[("x-gitlab-event", "Push Hook")]);
        assert_eq!(
            verify(&h, &body, Some(&secret())).unwrap_err(),
            WebhookError::MissingSignature {
                forge: Forge::GitLab,
                header: "X-Gitlab-Token"
            }
        );
    }

    #[test]
    fn gitlab_merge_request_actions() {
        for (action, want) in [
            ("open", PullRequestAction::Opened),
            ("update", PullRequestAction::Synchronize),
            ("reopen", PullRequestAction::Reopened),
        ] {
            let body = gitlab_merge_request(action);
            let h = gitlab("Merge Request Hook", "u", "It's a Secret to Everybody");
            let pr = pr_of(verify(&h, &body, Some(&secret())).unwrap());
            assert_eq!(
                pr,
                PullRequestEvent {
                    forge: Forge::GitLab,
                    repo_full_name: "acme/deploy".into(),
                    number: 3,
                    action: want,
                    head_sha: HEAD.into(),
                    head_ref: "wiki-disk".into(),
                    base_ref: "main".into(),
                }
            );
        }
        for action in ["close", "merge", "approved"] {
            let body = gitlab_merge_request(action);
            let h = gitlab("Merge Request Hook", "u", "It's a Secret to Everybody");
            let d = verify(&h, &body, Some(&secret())).unwrap();
            assert!(matches!(d.event, WebhookEvent::Ignored(_)), "{action}");
        }
    }

    #[test]
    fn unknown_forge_and_oversized_bodies() {
        let body = github_push(COMMIT);
        let err = verify(&HeaderMap::new(), &body, Some(&secret())).unwrap_err();
        assert_eq!(err, WebhookError::UnknownForge);
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);

        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let err = verify(&github("push", "d", &big), &big, Some(&secret())).unwrap_err();
        assert_eq!(
            err,
            WebhookError::TooLarge {
                limit: MAX_BODY_BYTES
            }
        );
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn replayed_delivery_id_is_refused() {
        let mut cache = DeliveryCache::default();
        let body = github_push(COMMIT);
        let d = verify(&github("push", "d-1", &body), &body, Some(&secret())).unwrap();
        cache.admit(&d).unwrap();
        let again = verify(&github("push", "d-1", &body), &body, Some(&secret())).unwrap();
        let err = cache.admit(&again).unwrap_err();
        assert_eq!(err, WebhookError::Replayed);
        assert_eq!(err.status(), StatusCode::CONFLICT);

        // Same id, another (validly signed) body: still the same delivery.
        let other = github_push(HEAD);
        let d = verify(&github("push", "d-1", &other), &other, Some(&secret())).unwrap();
        assert_eq!(cache.admit(&d), Err(WebhookError::Replayed));
    }

    #[test]
    fn replayed_body_under_a_fresh_delivery_id_is_refused() {
        let mut cache = DeliveryCache::default();
        let body = gitlab_push(COMMIT);
        let token = "It's a Secret to Everybody";
        let d = verify(&gitlab("Push Hook", "u-1", token), &body, Some(&secret())).unwrap();
        cache.admit(&d).unwrap();
        let d = verify(&gitlab("Push Hook", "u-2", token), &body, Some(&secret())).unwrap();
        assert_eq!(cache.admit(&d), Err(WebhookError::Replayed));
        // Without any delivery id the body still identifies it.
        let h = headers(&[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", token)]);
        let d = verify(&h, &body, Some(&secret())).unwrap();
        assert_eq!(d.id, None);
        assert_eq!(cache.admit(&d), Err(WebhookError::Replayed));
    }

    #[test]
    fn same_delivery_id_on_another_forge_is_another_delivery() {
        let mut cache = DeliveryCache::default();
        let gh = github_push(COMMIT);
        let d = verify(&github("push", "same", &gh), &gh, Some(&secret())).unwrap();
        cache.admit(&d).unwrap();
        let gt = gitea_push(COMMIT);
        let d = verify(&gitea("push", "same", &gt), &gt, Some(&secret())).unwrap();
        cache.admit(&d).unwrap();
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn delivery_cache_evicts_the_oldest_first() {
        let mut cache = DeliveryCache::new(2);
        let deliveries: Vec<Delivery> = (0..3u8)
            .map(|i| {
                let body = github_push(&format!("{i}").repeat(40));
                verify(
                    &github("push", &format!("d-{i}"), &body),
                    &body,
                    Some(&secret()),
                )
                .unwrap()
            })
            .collect();
        // "0" * 40 is a deleted branch: ignored, but still a delivery.
        for d in &deliveries {
            cache.admit(d).unwrap();
        }
        assert_eq!(cache.len(), 2);
        // The first was evicted, so it is accepted again (and evicts d-1).
        cache.admit(&deliveries[0]).unwrap();
        assert_eq!(cache.admit(&deliveries[2]), Err(WebhookError::Replayed));
        assert_eq!(cache.admit(&deliveries[0]), Err(WebhookError::Replayed));
        cache.admit(&deliveries[1]).unwrap();
    }

    #[test]
    fn forgotten_delivery_is_accepted_again() {
        let mut cache = DeliveryCache::default();
        let body = github_push(COMMIT);
        let d = verify(&github("push", "d-1", &body), &body, Some(&secret())).unwrap();
        cache.admit(&d).unwrap();
        cache.forget(&d);
        assert!(cache.is_empty());
        cache.admit(&d).unwrap();
        assert_eq!(cache.admit(&d), Err(WebhookError::Replayed));
    }

    #[test]
    fn tokens_equal_compares_whole_values() {
        assert!(tokens_equal(b"abc", b"abc"));
        assert!(!tokens_equal(b"abc", b"abcd"));
        assert!(!tokens_equal(b"abc", b"ab"));
        assert!(!tokens_equal(b"abc", b"abd"));
        assert!(!tokens_equal(b"abc", b""));
    }
}
