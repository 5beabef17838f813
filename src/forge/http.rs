//! Requests to a forge's REST API: authentication, headers, error
//! messages, and which failures are retried.
//!
//! Retries are classified by what the forge may have done: a request that
//! was refused for rate limiting or never reached the forge is safe to
//! send again; one whose answer was lost (timeout, dropped connection,
//! 502/503/504) may have been carried out, which matters only for creates
//! — [`Http::send_once`] leaves that decision to the caller.
//!
//! GitHub and Gitea take the token in `Authorization`; GitLab in
//! `PRIVATE-TOKEN` (its personal, project and group access tokens).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{
    ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, LINK, RETRY_AFTER,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::github_app::{CachedToken, GitHubApp, renew_at};
use super::{ForgeAuth, ForgeError, ForgeKind};

/// Retries after the first attempt, for failures where retrying helps.
pub(crate) const MAX_RETRIES: u32 = 4;
const BACKOFF_START: Duration = Duration::from_millis(200);
/// Also the cap on a `Retry-After`: a caller (the CLI, a reconcile pass)
/// would rather fail and try again later than hang for minutes.
const BACKOFF_CAP: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("kompoxops/", env!("CARGO_PKG_VERSION"));
const GITHUB_API: &str = "https://api.github.com";
const GITHUB_API_VERSION: &str = "2022-11-28";
const GITLAB_API: &str = "https://gitlab.com/api/v4";
/// GitLab's header for personal, project and group access tokens.
const PRIVATE_TOKEN: HeaderName = HeaderName::from_static("private-token");
/// How much of a forge's error message goes into an error.
const MAX_MESSAGE_CHARS: usize = 500;

#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) kind: ForgeKind,
    /// The REST root without a trailing slash; paths are appended to it.
    pub(crate) api_base: String,
    pub(crate) timeout: Duration,
    client: reqwest::Client,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    Token(Credential),
    App(Arc<GitHubApp>),
}

/// The header that carries a credential, its value marked sensitive.
#[derive(Clone)]
struct Credential {
    name: HeaderName,
    value: HeaderValue,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}: <redacted>)", self.name)
    }
}

impl Credential {
    fn authorization(value: HeaderValue) -> Self {
        Credential {
            name: AUTHORIZATION,
            value,
        }
    }
}

/// A successful answer.
pub(crate) struct Reply {
    pub(crate) headers: HeaderMap,
    body: Vec<u8>,
}

/// Whether a failed request may be sent again, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryClass {
    /// Retrying cannot help (4xx other than rate limits).
    Never,
    /// The forge did not act on it (rate limited, no connection).
    NotSent,
    /// The forge may have acted on it; the answer was lost.
    MaybeDone,
}

pub(crate) struct Failure {
    pub(crate) error: ForgeError,
    pub(crate) class: RetryClass,
    pub(crate) retry_after: Option<Duration>,
}

impl Failure {
    fn never(error: ForgeError) -> Self {
        Failure {
            error,
            class: RetryClass::Never,
            retry_after: None,
        }
    }
}

/// Where a request goes: the URL and the path shown in errors and logs.
struct Target {
    url: String,
    path: String,
}

impl Http {
    pub(crate) fn new(
        kind: ForgeKind,
        base_url: Option<&str>,
        auth: ForgeAuth,
        timeout: Duration,
    ) -> Result<Self, ForgeError> {
        let api_base = api_base(kind, base_url)?;
        let auth = match auth {
            ForgeAuth::Token(token) => Auth::Token(token_header(kind, &token)?),
            ForgeAuth::GitHubApp {
                app_id,
                installation_id,
                private_key_pem,
            } => {
                if kind != ForgeKind::GitHub {
                    return Err(ForgeError::InvalidCredentials {
                        forge: kind,
                        what: "credentials",
                        reason: "GitHub App authentication works with GitHub only; use a token"
                            .into(),
                    });
                }
                Auth::App(Arc::new(GitHubApp::new(
                    app_id,
                    installation_id,
                    &private_key_pem,
                )?))
            }
        };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config()?)
            .user_agent(USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ForgeError::Client(error_chain(&e)))?;
        Ok(Http {
            kind,
            api_base,
            timeout,
            client,
            auth,
        })
    }

    /// What `Debug` may show of the credentials: their kind and public ids.
    pub(crate) fn auth_kind(&self) -> String {
        match &self.auth {
            Auth::Token(_) => "token".into(),
            Auth::App(app) => format!(
                "GitHub App {} (installation {})",
                app.app_id, app.installation_id
            ),
        }
    }

    /// Sends a request, retrying whatever a retry can fix. For reads,
    /// edits, and creates whose repetition is harmless. `target` is a path
    /// (`/repos/...`) or a URL under the API base (a pagination link).
    pub(crate) async fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ForgeError> {
        let target = self.resolve(&method, target)?;
        self.send_retrying(&method, &target, body, None).await
    }

    /// Sends a request once (re-authenticating once if a GitHub App token
    /// was refused): for creates, whose caller must look before repeating.
    pub(crate) async fn send_once(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let target = self.resolve(&method, target).map_err(Failure::never)?;
        self.send_once_to(&method, &target, body, None).await
    }

    /// An error for an answer that is not what the API documents.
    pub(crate) fn invalid_response(
        &self,
        method: &Method,
        path: &str,
        detail: impl Into<String>,
    ) -> ForgeError {
        ForgeError::InvalidResponse {
            forge: self.kind,
            method: method.to_string(),
            path: path.to_string(),
            detail: detail.into(),
        }
    }

    fn resolve(&self, method: &Method, target: &str) -> Result<Target, ForgeError> {
        if target.starts_with('/') {
            return Ok(Target {
                url: format!("{}{}", self.api_base, target),
                path: target.to_string(),
            });
        }
        // Pagination links come from the forge: follow them only under the
        // API base, so that a token is never sent to another host.
        match target.strip_prefix(&self.api_base) {
            Some(path) if path.starts_with('/') => Ok(Target {
                url: target.to_string(),
                path: path.to_string(),
            }),
            _ => Err(self.invalid_response(
                method,
                "(pagination link)",
                "the link leads outside the API base URL; not followed",
            )),
        }
    }

    async fn send_retrying(
        &self,
        method: &Method,
        target: &Target,
        body: Option<&Value>,
        auth: Option<&Credential>,
    ) -> Result<Reply, ForgeError> {
        let mut retry = 0;
        loop {
            match self.send_once_to(method, target, body, auth).await {
                Ok(reply) => return Ok(reply),
                Err(f) if f.class != RetryClass::Never && retry < MAX_RETRIES => {
                    let wait = backoff(retry, f.retry_after);
                    tracing::warn!(
                        forge = %self.kind,
                        error = %f.error,
                        wait_ms = wait.as_millis() as u64,
                        "forge request failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    async fn send_once_to(
        &self,
        method: &Method,
        target: &Target,
        body: Option<&Value>,
        auth: Option<&Credential>,
    ) -> Result<Reply, Failure> {
        let mut renewed = false;
        loop {
            let credential = match auth {
                Some(c) => c.clone(),
                None => self.credential().await.map_err(Failure::never)?,
            };
            let out = self.attempt(method, target, body, credential).await;
            // An installation token can be revoked before it expires
            // (app reinstalled, key rotated): fetch a new one, once.
            if let (Err(f), Auth::App(app), None) = (&out, &self.auth, auth)
                && f.error.status() == Some(401)
                && !renewed
            {
                *app.cache.lock().await = None;
                renewed = true;
                continue;
            }
            return out;
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        target: &Target,
        body: Option<&Value>,
        credential: Credential,
    ) -> Result<Reply, Failure> {
        let mut req = self
            .client
            .request(method.clone(), &target.url)
            .timeout(self.timeout)
            .header(credential.name, credential.value);
        req = match self.kind {
            ForgeKind::GitHub => req
                .header(ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", GITHUB_API_VERSION),
            _ => req.header(ACCEPT, "application/json"),
        };
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_failure(method, &target.path, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_failure(method, &target.path, e))?;
        tracing::debug!(
            forge = %self.kind,
            method = %method,
            path = %target.path,
            status = status.as_u16(),
            "forge request"
        );
        if status.is_success() {
            return Ok(Reply {
                headers,
                body: bytes.to_vec(),
            });
        }
        Err(self.status_failure(method, &target.path, status, &headers, &bytes))
    }

    fn status_failure(
        &self,
        method: &Method,
        path: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Failure {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        // GitHub's secondary rate limit answers 403 with `retry-after`, its
        // primary one 403 or 429 with `x-ratelimit-remaining: 0`.
        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (headers.contains_key(RETRY_AFTER)
                    || header("x-ratelimit-remaining") == Some("0")));
        // GitLab answers 409 when another update of the same commit status
        // holds its lock: nothing was done, and it is free again shortly.
        let locked = self.kind == ForgeKind::GitLab && status == StatusCode::CONFLICT;
        let class = if rate_limited || locked {
            RetryClass::NotSent
        } else if matches!(status.as_u16(), 502..=504) {
            RetryClass::MaybeDone
        } else {
            RetryClass::Never
        };
        let retry_after = retry_after(headers, SystemTime::now());
        Failure {
            error: ForgeError::Status {
                forge: self.kind,
                method: method.to_string(),
                path: path.to_string(),
                status: status.as_u16(),
                message: forge_message(body),
                retryable: class != RetryClass::Never,
            },
            class,
            retry_after,
        }
    }

    fn transport_failure(&self, method: &Method, path: &str, e: reqwest::Error) -> Failure {
        // reqwest's message names the URL; the error names the path instead.
        let e = e.without_url();
        let class = if e.is_builder() {
            RetryClass::Never
        } else if e.is_connect() {
            RetryClass::NotSent
        } else {
            RetryClass::MaybeDone
        };
        let timed_out = e.is_timeout();
        let detail = if timed_out {
            format!("no answer within {} s", self.timeout.as_secs_f32())
        } else {
            error_chain(&e)
        };
        let error = ForgeError::Transport {
            forge: self.kind,
            method: method.to_string(),
            path: path.to_string(),
            detail,
            timed_out,
        };
        if class == RetryClass::Never {
            return Failure::never(ForgeError::Client(error.to_string()));
        }
        Failure {
            error,
            class,
            retry_after: None,
        }
    }

    async fn credential(&self) -> Result<Credential, ForgeError> {
        match &self.auth {
            Auth::Token(c) => Ok(c.clone()),
            Auth::App(app) => self
                .installation_token(app)
                .await
                .map(Credential::authorization),
        }
    }

    /// The cached installation token, or a new one. The lock is held while
    /// fetching, so concurrent requests wait for one token, not race for many.
    async fn installation_token(&self, app: &GitHubApp) -> Result<HeaderValue, ForgeError> {
        let mut cache = app.cache.lock().await;
        let now = SystemTime::now();
        if let Some(t) = cache.as_ref()
            && now < t.renew_at
        {
            return Ok(t.header.clone());
        }
        let jwt = app.jwt(now)?;
        let bearer = sensitive(&format!("Bearer {jwt}")).ok_or_else(|| {
            ForgeError::Client("the GitHub App JWT is not a valid header value".into())
        })?;
        let path = format!("/app/installations/{}/access_tokens", app.installation_id);
        let target = self.resolve(&Method::POST, &path)?;
        // Each call mints a new token and nothing else: safe to repeat.
        // Boxed: sending is what calls this (with the configured auth).
        let bearer = Credential::authorization(bearer);
        let reply =
            Box::pin(self.send_retrying(&Method::POST, &target, None, Some(&bearer))).await?;
        #[derive(serde::Deserialize)]
        struct AccessToken {
            token: String,
            expires_at: Option<String>,
        }
        let token: AccessToken = reply.json(self, &Method::POST, &path)?;
        let header = sensitive(&format!("Bearer {}", token.token)).ok_or_else(|| {
            self.invalid_response(
                &Method::POST,
                &path,
                "the token is not a valid header value",
            )
        })?;
        *cache = Some(CachedToken {
            header: header.clone(),
            renew_at: renew_at(token.expires_at.as_deref(), now),
        });
        tracing::debug!(
            installation = app.installation_id,
            "fetched a GitHub App installation token"
        );
        Ok(header)
    }
}

impl Reply {
    /// Decodes the body as the API documents it.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        http: &Http,
        method: &Method,
        path: &str,
    ) -> Result<T, ForgeError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| http.invalid_response(method, path, format!("cannot read the JSON: {e}")))
    }
}

/// How long to wait before retry number `retry` (0-based): the forge's
/// `Retry-After` if it gave one, else 200 ms doubling; at most 10 s.
pub(crate) fn backoff(retry: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or_else(|| BACKOFF_START.saturating_mul(2u32.saturating_pow(retry)))
        .min(BACKOFF_CAP)
}

/// How long the forge asked to wait: `Retry-After` in seconds (GitHub,
/// GitLab), else GitLab's `RateLimit-Reset`, documented as the Unix time
/// the quota resets (a small number is taken as seconds from now, as the
/// IETF draft of that header has it).
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(secs) = number(RETRY_AFTER.as_str()) {
        return Some(Duration::from_secs(secs));
    }
    let reset = number("ratelimit-reset")?;
    // Anything after 2001-09-09 is a time, not a delay.
    if reset < 1_000_000_000 {
        return Some(Duration::from_secs(reset));
    }
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
    Some(at.duration_since(now).unwrap_or_default())
}

/// The `rel="next"` URL of a `Link` header (RFC 8288), as GitHub and
/// GitLab paginate.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|entry| {
            let (url, params) = entry.split_once(';')?;
            let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
            let is_next = params.split(';').any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
            });
            is_next.then(|| url.to_string())
        })
}

fn api_base(kind: ForgeKind, base_url: Option<&str>) -> Result<String, ForgeError> {
    let bad = |reason: &str| ForgeError::InvalidBaseUrl {
        forge: kind,
        reason: reason.to_string(),
    };
    let raw = match base_url.map(str::trim).filter(|s| !s.is_empty()) {
        Some(raw) => raw,
        None if kind == ForgeKind::GitHub => return Ok(GITHUB_API.into()),
        None if kind == ForgeKind::GitLab => return Ok(GITLAB_API.into()),
        None => {
            return Err(bad(
                "none given; Gitea has no default (e.g. https://gitea.example.com)",
            ));
        }
    };
    // The input is not echoed: it might carry credentials.
    let url = reqwest::Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("expected an http:// or https:// URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "it must not contain credentials; pass the token as the client's auth",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or a fragment"));
    }
    let mut base = url.as_str().trim_end_matches('/').to_string();
    match kind {
        ForgeKind::GitHub if url.host_str() == Some("github.com") && url.path() == "/" => {
            base = GITHUB_API.into();
        }
        ForgeKind::Gitea if !base.ends_with("/api/v1") => base.push_str("/api/v1"),
        ForgeKind::GitLab if !base.ends_with("/api/v4") => base.push_str("/api/v4"),
        _ => {}
    }
    Ok(base)
}

fn token_header(kind: ForgeKind, token: &str) -> Result<Credential, ForgeError> {
    let bad = |reason: &str| ForgeError::InvalidCredentials {
        forge: kind,
        what: "token",
        reason: reason.to_string(),
    };
    // Tokens read from files or environment variables often end in a newline.
    let token = token.trim();
    if token.is_empty() {
        return Err(bad("it is empty"));
    }
    let not_header = || bad("it contains characters not allowed in an HTTP header");
    let (name, value) = match kind {
        ForgeKind::GitHub => (AUTHORIZATION, format!("Bearer {token}")),
        ForgeKind::Gitea => (AUTHORIZATION, format!("token {token}")),
        ForgeKind::GitLab => {
            // The documented prefixes (GitLab 16.9+) of the two kinds that
            // cannot write notes: refuse them before any request.
            if token.starts_with("glcbt-") {
                return Err(bad(
                    "it is a CI/CD job token (CI_JOB_TOKEN), which cannot write merge request \
                     notes; use a project access token with the `api` scope (role Developer or \
                     higher) in a masked CI/CD variable",
                ));
            }
            if token.starts_with("gldt-") {
                return Err(bad(
                    "it is a deploy token, which cannot use the API; use a project access token \
                     with the `api` scope",
                ));
            }
            (PRIVATE_TOKEN, token.to_string())
        }
    };
    let value = sensitive(&value).ok_or_else(not_header)?;
    Ok(Credential { name, value })
}

/// A header value that hyper and reqwest never print.
fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// rustls on aws-lc-rs, set up here rather than taken from the process
/// default: the client then works whether or not `main` installed a
/// provider, and never meets ring. Trust: the system store, so a
/// self-hosted forge behind an internal CA works, plus Mozilla's roots, so
/// github.com works from an image without a CA bundle.
fn tls_config() -> Result<rustls::ClientConfig, ForgeError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(
        system_roots = added,
        ignored,
        errors = native.errors.len(),
        "forge client trust roots"
    );
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForgeError::Client(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The forge's `message` (GitHub, Gitea and GitLab use that field; GitLab's
/// validation errors make it an object of field → messages), with GitHub's
/// validation `errors` details, or an OAuth-style `error_description`
/// (GitLab's insufficient scope); or the start of a non-JSON body (a
/// proxy's error page, GitLab's plain "Retry later").
fn forge_message(body: &[u8]) -> String {
    let mut msg = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let mut msg = match v.get("message") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(fields)) => fields
                    .iter()
                    .map(|(field, m)| match m {
                        Value::Array(list) => {
                            let list: Vec<String> = list
                                .iter()
                                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                                .collect();
                            format!("{field}: {}", list.join(", "))
                        }
                        Value::String(s) => format!("{field}: {s}"),
                        other => format!("{field}: {other}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => v
                    .get("error_description")
                    .or_else(|| v.get("error"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            };
            let details: Vec<String> = v
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| match e {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o
                        .get("message")
                        .or_else(|| o.get("code"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    _ => None,
                })
                .collect();
            if !details.is_empty() {
                msg = format!("{msg} ({})", details.join("; "));
            }
            msg
        }
        Err(_) => String::from_utf8_lossy(body)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    };
    if msg.trim().is_empty() {
        msg = "(no message)".into();
    }
    match msg.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &msg[..i]),
        None => msg,
    }
}

/// An error and its causes on one line ("error sending request: client
/// error (Connect): tcp connect error: Connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(links: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in links {
            h.append(LINK, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn next_links_are_found_among_others() {
        let github = r#"<https://api.github.com/repositories/1/issues/12/comments?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues/12/comments?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            next_link(&headers(&[github])).as_deref(),
            Some("https://api.github.com/repositories/1/issues/12/comments?per_page=100&page=2")
        );
        let reordered = r#"<https://x/a?page=1>; rel="prev", <https://x/a?page=3>; rel=next"#;
        assert_eq!(
            next_link(&headers(&[reordered])).as_deref(),
            Some("https://x/a?page=3")
        );
        let multi = r#"<https://x/b>; title="t"; rel="last next""#;
        assert_eq!(
            next_link(&headers(&[multi])).as_deref(),
            Some("https://x/b")
        );
        let split = [
            "<https://x/a?page=1>; rel=\"prev\"",
            "<https://x/c>; rel=\"next\"",
        ];
        assert_eq!(next_link(&headers(&split)).as_deref(), Some("https://x/c"));
        assert_eq!(
            next_link(&headers(&[r#"<https://x/a?page=1>; rel="prev""#])),
            None
        );
        assert_eq!(
            next_link(&headers(&[r#"<https://x/a>; rel="nextish""#])),
            None
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_doubles_honours_retry_after_and_is_capped() {
        assert_eq!(backoff(0, None), Duration::from_millis(200));
        assert_eq!(backoff(1, None), Duration::from_millis(400));
        assert_eq!(backoff(3, None), Duration::from_millis(1600));
        assert_eq!(backoff(10, None), BACKOFF_CAP);
        assert_eq!(backoff(40, None), BACKOFF_CAP);
        assert_eq!(
            backoff(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(backoff(0, Some(Duration::from_secs(3600))), BACKOFF_CAP);
    }

    #[test]
    fn base_urls_are_normalised() {
        let gh = |u| api_base(ForgeKind::GitHub, u);
        let gt = |u| api_base(ForgeKind::Gitea, u);
        assert_eq!(gh(None).unwrap(), "https://api.github.com");
        assert_eq!(
            gh(Some("https://github.com/")).unwrap(),
            "https://api.github.com"
        );
        assert_eq!(
            gh(Some("https://ghe.example.com/api/v3/")).unwrap(),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            gt(Some("http://127.0.0.1:3000")).unwrap(),
            "http://127.0.0.1:3000/api/v1"
        );
        assert_eq!(
            gt(Some("http://127.0.0.1:3000/api/v1/")).unwrap(),
            "http://127.0.0.1:3000/api/v1"
        );
        assert_eq!(
            gt(Some("https://example.com/gitea")).unwrap(),
            "https://example.com/gitea/api/v1"
        );
        assert!(gt(None).unwrap_err().to_string().contains("no default"));
        let gl = |u| api_base(ForgeKind::GitLab, u);
        assert_eq!(gl(None).unwrap(), "https://gitlab.com/api/v4");
        assert_eq!(
            gl(Some("https://gitlab.com")).unwrap(),
            "https://gitlab.com/api/v4"
        );
        assert_eq!(
            gl(Some("https://gitlab.example.com/")).unwrap(),
            "https://gitlab.example.com/api/v4"
        );
        assert_eq!(
            gl(Some("https://gitlab.example.com/api/v4/")).unwrap(),
            "https://gitlab.example.com/api/v4"
        );
        assert_eq!(
            gl(Some("http://127.0.0.1:8929/gitlab")).unwrap(),
            "http://127.0.0.1:8929/gitlab/api/v4"
        );
        for bad in [
            "ftp://x",
            "not a url",
            "https://u:hunter2@x",
            "https://x/?a=b",
        ] {
            let e = gt(Some(bad)).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn tokens_become_sensitive_authorization_values() {
        let c = token_header(ForgeKind::GitHub, " ghp_abc\n").unwrap();
        assert_eq!(c.name, AUTHORIZATION);
        let h = c.value;
        assert_eq!(h.to_str().unwrap(), "Bearer ghp_abc");
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("ghp_abc"));
        let c = token_header(ForgeKind::Gitea, "abc").unwrap();
        assert_eq!(c.name, AUTHORIZATION);
        assert_eq!(c.value.to_str().unwrap(), "token abc");
        assert!(token_header(ForgeKind::Gitea, "  ").is_err());
        let e = token_header(ForgeKind::Gitea, "a\u{7f}secret")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn gitlab_tokens_go_in_private_token_and_job_tokens_are_refused() {
        let c = token_header(ForgeKind::GitLab, "glpat-abc\n").unwrap();
        assert_eq!(c.name.as_str(), "private-token");
        assert_eq!(c.value.to_str().unwrap(), "glpat-abc");
        assert!(c.value.is_sensitive());
        for (token, why) in [
            ("glcbt-64_secretjob", "job token"),
            ("gldt-secretdeploy", "deploy token"),
        ] {
            let e = token_header(ForgeKind::GitLab, token)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why) && e.contains("project access token"), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn waits_come_from_retry_after_or_gitlabs_ratelimit_reset() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_609_844_370);
        let h = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert_eq!(retry_after(&h(&[]), now), None);
        assert_eq!(
            retry_after(
                &h(&[("retry-after", "7"), ("ratelimit-reset", "1609844400")]),
                now
            ),
            Some(Duration::from_secs(7))
        );
        // GitLab documents RateLimit-Reset as a Unix time.
        assert_eq!(
            retry_after(&h(&[("ratelimit-reset", "1609844400")]), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&h(&[("ratelimit-reset", "1609844000")]), now),
            Some(Duration::ZERO),
            "a reset in the past means now"
        );
        assert_eq!(
            retry_after(&h(&[("ratelimit-reset", "5")]), now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(retry_after(&h(&[("retry-after", "soon")]), now), None);
    }

    #[test]
    fn forge_messages_are_extracted() {
        assert_eq!(forge_message(br#"{"message":"Not Found"}"#), "Not Found");
        assert_eq!(
            forge_message(
                br#"{"message":"Validation Failed","errors":[{"resource":"Issue","code":"custom","message":"body is too long"},"plain"]}"#
            ),
            "Validation Failed (body is too long; plain)"
        );
        assert_eq!(
            forge_message(b"<html>\n  Bad   gateway</html>"),
            "<html> Bad gateway</html>"
        );
        assert_eq!(forge_message(b""), "(no message)");
        // GitLab: validation errors by field, OAuth-style scope errors,
        // the plain-text rate limit answer.
        assert_eq!(
            forge_message(
                br#"{"message":{"body":["is too long (maximum is 1000000 characters)"]}}"#
            ),
            "body: is too long (maximum is 1000000 characters)"
        );
        assert_eq!(
            forge_message(
                br#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"api"}"#
            ),
            "The request requires higher privileges than provided by the access token."
        );
        assert_eq!(forge_message(b"Retry later\n"), "Retry later");
        assert_eq!(
            forge_message(&[b'x'; 600]).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }

    #[test]
    fn the_client_builds_without_a_process_crypto_provider() {
        // No install_default() here: the client must bring its own.
        Http::new(
            ForgeKind::GitHub,
            None,
            ForgeAuth::Token("t".into()),
            Duration::from_secs(1),
        )
        .unwrap();
    }
}
