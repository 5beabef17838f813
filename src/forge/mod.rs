//! Forge client: read a pull request, keep Kompox's plan comments on it up
//! to date and set a commit status, on GitHub, Gitea and GitLab (merge
//! requests and their notes), the way Atlantis comments Terraform plans.
//!
//! Stage: reporting edge (`DESIGN.md`), I/O. What to post is decided
//! elsewhere (which apps a pull request touches, the markdown); this module
//! only puts it on the forge. The decision of which comment to create, edit
//! or retire is a pure function ([`plan_comment_sync`]); [`ForgeClient`]
//! carries it out over HTTP.
//!
//! Guarantees:
//! - One family of comments per (pull request, key), recognised by the
//!   marker on a comment's *first line* only, so a user quoting the marker
//!   in a reply is never edited. A family is edited in place: a plan that
//!   changes does not add a comment, an unchanged plan sends no request.
//! - Comments are never deleted. Parts left over from a longer plan are
//!   edited to say they are no longer needed.
//! - A comment create whose answer was lost (timeout, dropped connection,
//!   gateway error) is not blindly sent again: the comments are listed
//!   again first and a comment that appeared with the marker is used.
//! - Tokens, JWTs and keys never appear in errors, logs or `Debug` output.
//! - The TLS stack is rustls on aws-lc-rs, configured here: using the
//!   client never depends on, nor panics for lack of, a process-level
//!   crypto provider.
//!
//! GitLab says "merge request" and "note" where GitHub says "pull request"
//! and "comment"; this module uses GitHub's words for all three forges.

mod comments;
mod error;
mod github_app;
mod gitlab;
mod http;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

pub use self::comments::{
    CommentAction, ExistingComment, Fallback, MAX_COMMENT_CHARS, RETIRED_NOTE, plan_comment_sync,
};
pub use self::error::ForgeError;
pub use crate::webhook::Forge as ForgeKind;

use self::http::Http;

/// A pull request on a forge, as written on a command line:
/// `github:owner/repo#12`, `gitea:owner/repo#3`, `gitlab:group/sub/project#7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrRef {
    pub forge: ForgeKind,
    /// The user or organisation; for GitLab, the group path (may contain
    /// `/` for subgroups).
    pub owner: String,
    pub repo: String,
    pub number: u64,
}

impl FromStr for PrRef {
    type Err = ForgeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ForgeError::InvalidPrRef {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (forge, rest) = input
            .split_once(':')
            .ok_or_else(|| err("no forge prefix"))?;
        let forge = match forge.to_ascii_lowercase().as_str() {
            "github" => ForgeKind::GitHub,
            "gitea" => ForgeKind::Gitea,
            "gitlab" => ForgeKind::GitLab,
            _ => return Err(err("unknown forge")),
        };
        let (path, number) = rest
            .rsplit_once('#')
            .ok_or_else(|| err("no pull request number after '#'"))?;
        let number: u64 = match number.parse() {
            Ok(n) if n > 0 && number.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(err("the pull request number must be a positive integer")),
        };
        // GitLab groups nest (`group/subgroup/project`); GitHub and Gitea
        // have exactly one owner level.
        let (owner, repo) = match forge {
            ForgeKind::GitLab => path.rsplit_once('/'),
            _ => path.split_once('/'),
        }
        .ok_or_else(|| err("expected OWNER/REPO"))?;
        let owner_ok = match forge {
            ForgeKind::GitLab => owner.split('/').all(valid_name_segment),
            _ => valid_name_segment(owner),
        };
        if !owner_ok || !valid_name_segment(repo) {
            return Err(err(
                "owner and repository names are letters, digits and . _ - (and not . or ..)",
            ));
        }
        Ok(PrRef {
            forge,
            owner: owner.to_string(),
            repo: repo.to_string(),
            number,
        })
    }
}

impl fmt::Display for PrRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}/{}#{}",
            self.forge, self.owner, self.repo, self.number
        )
    }
}

/// Owner and repository names go into URL paths unescaped, so only the
/// characters the forges allow in them are accepted.
fn valid_name_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What Kompox needs of a pull request to plan it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The number in the reference (GitLab: the merge request's `iid`).
    pub number: u64,
    /// `open` or `closed` (merged pull requests are `closed`; GitLab's
    /// `opened` is `open`, its `closed`, `locked` and `merged` are `closed`).
    pub state: String,
    pub head_sha: String,
    /// The head branch (GitLab: `source_branch`).
    pub head_ref: String,
    /// The base branch (GitLab: `target_branch`).
    pub base_ref: String,
    /// GitHub and Gitea: the base branch's head. GitLab: the merge base of
    /// the head and the target branch (`diff_refs.base_sha`, else
    /// `diff_refs.start_sha`). Either way, diffing from the merge base of
    /// this and the head gives the pull request's changes.
    pub base_sha: String,
}

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum ForgeAuth {
    /// A personal access token, a fine-grained token, GitHub Actions'
    /// `GITHUB_TOKEN`, a Gitea access token, or a GitLab personal, project
    /// or group access token (scope `api`). GitLab CI/CD job tokens
    /// (`CI_JOB_TOKEN`) cannot write notes and are refused.
    Token(String),
    /// A GitHub App installation: the client signs a JWT with the app's key
    /// and trades it for installation tokens, which it renews itself.
    GitHubApp {
        /// The app id or client id (the JWT's `iss`).
        app_id: String,
        installation_id: u64,
        /// The PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`) GitHub hands out.
        private_key_pem: String,
    },
}

impl fmt::Debug for ForgeAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForgeAuth::Token(_) => f.write_str("Token(<redacted>)"),
            ForgeAuth::GitHubApp {
                app_id,
                installation_id,
                ..
            } => f
                .debug_struct("GitHubApp")
                .field("app_id", app_id)
                .field("installation_id", installation_id)
                .field("private_key_pem", &"<redacted>")
                .finish(),
        }
    }
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    /// The value both GitHub and Gitea expect in `state` (GitLab has its
    /// own names: `failed` for both failures).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

impl fmt::Display for StatusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`ForgeClient::sync_comments`] did, by comment id, in part order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub created: Vec<u64>,
    pub updated: Vec<u64>,
    /// Comments that already had the wanted body: no request was sent.
    pub unchanged: Vec<u64>,
    /// Comments of parts beyond the current plan: edited now to say so, or
    /// already saying so (then without a request).
    pub retired: Vec<u64>,
}

/// The longest comment family key: it is repeated in every marker, and a
/// cluster id or a path is far shorter.
pub const MAX_KEY_CHARS: usize = 100;

/// How long one HTTP request may take before it counts as lost.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The marker line that identifies part `part` (1-based; 0 is taken as 1)
/// of the plan comment family `key`: `<!-- kompox-plan -->`,
/// `<!-- kompox-plan:KEY -->`, `<!-- kompox-plan part 2 -->`,
/// `<!-- kompox-plan:KEY part 2 -->`.
///
/// An HTML comment, so the forges render nothing for it. `key` must pass
/// [`validate_comment_key`]; [`ForgeClient::sync_comments`] checks it.
pub fn comment_marker(key: &str, part: usize) -> String {
    let mut m = String::from("<!-- kompox-plan");
    if !key.is_empty() {
        m.push(':');
        m.push_str(key);
    }
    if part >= 2 {
        m.push_str(" part ");
        m.push_str(&part.to_string());
    }
    m.push_str(" -->");
    m
}

/// Checks a comment family key: empty (the CLI's family) or letters,
/// digits and `/ . _ -`.
///
/// The key is written inside an HTML comment, so it must not end it
/// (`-->`) and must not contain `--`, which HTML forbids inside comments
/// and a forge's sanitiser may then show as text.
pub fn validate_comment_key(key: &str) -> Result<(), ForgeError> {
    let err = |reason| ForgeError::InvalidCommentKey {
        key: key.to_string(),
        reason,
    };
    if key.contains("-->") {
        return Err(err("it would end the HTML comment that holds the marker"));
    }
    if key.contains("--") {
        return Err(err("HTML comments must not contain \"--\""));
    }
    if key.len() > MAX_KEY_CHARS {
        return Err(err("it is longer than MAX_KEY_CHARS (100) characters"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
    {
        return Err(err(
            "it contains a character other than letters, digits and / . _ -",
        ));
    }
    Ok(())
}

/// A client for one forge. Cheap to clone: clones share the connection
/// pool and the GitHub App token cache.
#[derive(Clone)]
pub struct ForgeClient {
    http: Arc<Http>,
}

impl fmt::Debug for ForgeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForgeClient")
            .field("forge", &self.http.kind)
            .field("api_base", &self.http.api_base)
            .field("auth", &self.http.auth_kind())
            .finish()
    }
}

impl ForgeClient {
    /// A client for `kind`.
    ///
    /// `base_url`: for GitHub, the REST API root (default
    /// `https://api.github.com`; for GitHub Enterprise Server
    /// `https://HOST/api/v3`; `https://github.com` is taken to mean the
    /// default). For Gitea, the server's URL (`https://gitea.example.com`,
    /// `http://127.0.0.1:3000`), to which `/api/v1` is appended unless it
    /// is there already; Gitea has no default. For GitLab, the server's URL
    /// (default `https://gitlab.com`; `https://gitlab.example.com`), to
    /// which `/api/v4` is appended unless it is there already.
    pub fn new(
        kind: ForgeKind,
        base_url: Option<&str>,
        auth: ForgeAuth,
    ) -> Result<Self, ForgeError> {
        Ok(ForgeClient {
            http: Arc::new(Http::new(kind, base_url, auth, DEFAULT_REQUEST_TIMEOUT)?),
        })
    }

    /// The same client with another per-request timeout (default 30 s).
    /// A request that takes longer counts as lost and is retried as such.
    pub fn with_request_timeout(self, timeout: Duration) -> Self {
        let mut http = Arc::unwrap_or_clone(self.http);
        http.timeout = timeout;
        ForgeClient {
            http: Arc::new(http),
        }
    }

    /// The forge this client talks to.
    pub fn kind(&self) -> ForgeKind {
        self.http.kind
    }

    /// The REST API root requests go to, e.g. `http://127.0.0.1:3000/api/v1`.
    pub fn api_base(&self) -> &str {
        &self.http.api_base
    }

    /// Reads a pull request: its state and the commits of its head and base.
    pub async fn pull_request(&self, pr: &PrRef) -> Result<PullRequest, ForgeError> {
        self.check_pr(pr)?;
        if self.http.kind == ForgeKind::GitLab {
            return self.gitlab_merge_request(pr).await;
        }
        #[derive(Deserialize)]
        struct Branch {
            #[serde(rename = "ref")]
            git_ref: String,
            sha: String,
        }
        #[derive(Deserialize)]
        struct ApiPull {
            number: u64,
            state: String,
            head: Branch,
            base: Branch,
        }
        let path = format!("/repos/{}/{}/pulls/{}", pr.owner, pr.repo, pr.number);
        let reply = self.http.send(Method::GET, &path, None).await?;
        let p: ApiPull = reply.json(&self.http, &Method::GET, &path)?;
        Ok(PullRequest {
            number: p.number,
            state: p.state,
            head_sha: p.head.sha,
            head_ref: p.head.git_ref,
            base_ref: p.base.git_ref,
            base_sha: p.base.sha,
        })
    }

    /// Sets a commit status on `sha` (the pull request's head), under
    /// `context` (GitLab: the status's `name`). `description` is cut to
    /// GitHub's 140 characters.
    ///
    /// GitLab refuses to move a `pending` status to `pending` again; that
    /// answer counts as success (the status already says so).
    pub async fn set_status(
        &self,
        pr: &PrRef,
        sha: &str,
        state: StatusState,
        description: &str,
        context: &str,
    ) -> Result<(), ForgeError> {
        self.check_pr(pr)?;
        if !(sha.len() == 40 || sha.len() == 64) || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ForgeError::InvalidCommitSha {
                sha: sha.to_string(),
            });
        }
        if self.http.kind == ForgeKind::GitLab {
            return self
                .gitlab_set_status(pr, sha, state, description, context)
                .await;
        }
        let path = format!("/repos/{}/{}/statuses/{}", pr.owner, pr.repo, sha);
        let body = serde_json::json!({
            "state": state.as_str(),
            "description": truncate_chars(description, 140),
            "context": context,
        });
        // A repeated status is harmless (the newest per context wins), so
        // this POST is retried like a read.
        self.http.send(Method::POST, &path, Some(&body)).await?;
        Ok(())
    }

    fn check_pr(&self, pr: &PrRef) -> Result<(), ForgeError> {
        if pr.forge != self.http.kind {
            return Err(ForgeError::ForgeMismatch {
                pr: pr.to_string(),
                pr_forge: pr.forge,
                client: self.http.kind,
            });
        }
        Ok(())
    }
}

/// The longest prefix of `s` with at most `max` characters.
fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(s: &str) -> PrRef {
        s.parse().unwrap()
    }

    #[test]
    fn pr_refs_parse_and_print_back() {
        for s in [
            "github:octo-org/app#12",
            "gitea:me/my.repo_1#3",
            "gitlab:group/sub/project#7",
        ] {
            assert_eq!(pr(s).to_string(), s);
        }
        assert_eq!(
            pr("github:octo/app#12"),
            PrRef {
                forge: ForgeKind::GitHub,
                owner: "octo".into(),
                repo: "app".into(),
                number: 12
            }
        );
        assert_eq!(pr("GitHub:o/r#1").forge, ForgeKind::GitHub);
        let gl = pr("gitlab:a/b/c#1");
        assert_eq!((gl.owner.as_str(), gl.repo.as_str()), ("a/b", "c"));
    }

    #[test]
    fn bad_pr_refs_say_what_is_expected() {
        for (input, reason) in [
            ("octo/app#12", "no forge prefix"),
            ("bitbucket:o/r#1", "unknown forge"),
            ("github:o/r", "no pull request number"),
            ("github:o/r#", "positive integer"),
            ("github:o/r#0", "positive integer"),
            ("github:o/r#-1", "positive integer"),
            ("github:o/r#+1", "positive integer"),
            ("github:o/r#1x", "positive integer"),
            ("github:app#1", "expected OWNER/REPO"),
            ("github:o/r/x#1", "letters, digits"),
            ("github:o/#1", "letters, digits"),
            ("github:../r#1", "letters, digits"),
            ("gitea:o/r?x=1#1", "letters, digits"),
            ("gitlab:a//c#1", "letters, digits"),
        ] {
            let e = input.parse::<PrRef>().unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(reason), "{input}: {msg}");
            assert!(msg.contains("FORGE:OWNER/REPO#NUMBER"), "{msg}");
            assert!(msg.contains(input), "{msg}");
        }
    }

    #[test]
    fn markers_follow_the_documented_form() {
        assert_eq!(comment_marker("", 1), "<!-- kompox-plan -->");
        assert_eq!(comment_marker("", 0), "<!-- kompox-plan -->");
        assert_eq!(comment_marker("", 2), "<!-- kompox-plan part 2 -->");
        assert_eq!(comment_marker("prod", 1), "<!-- kompox-plan:prod -->");
        assert_eq!(
            comment_marker("eu/prod-1", 12),
            "<!-- kompox-plan:eu/prod-1 part 12 -->"
        );
    }

    #[test]
    fn comment_keys_are_checked() {
        for ok in ["", "prod", "eu/prod-1", "a.b_c", "x-y"] {
            validate_comment_key(ok).unwrap();
        }
        for (bad, why) in [
            ("a-->b", "end the HTML comment"),
            ("a--b", "\"--\""),
            ("a b", "character"),
            ("a>b", "character"),
            ("ä", "character"),
            ("a\nb", "character"),
        ] {
            let e = validate_comment_key(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(validate_comment_key(&"k".repeat(101)).is_err());
    }

    #[test]
    fn auth_debug_never_shows_secrets() {
        let t = format!("{:?}", ForgeAuth::Token("ghp_secret".into()));
        assert!(!t.contains("ghp_secret"), "{t}");
        let a = format!(
            "{:?}",
            ForgeAuth::GitHubApp {
                app_id: "42".into(),
                installation_id: 7,
                private_key_pem: "-----BEGIN RSA PRIVATE KEY-----secret".into(),
            }
        );
        assert!(!a.contains("secret"), "{a}");
        assert!(a.contains("42") && a.contains('7'), "{a}");
    }

    #[test]
    fn descriptions_are_cut_on_character_boundaries() {
        assert_eq!(truncate_chars("abc", 140), "abc");
        let long = "é".repeat(200);
        let cut = truncate_chars(&long, 140);
        assert_eq!(cut.chars().count(), 140);
        assert_eq!(truncate_chars("", 3), "");
    }

    #[test]
    fn gitlab_clients_default_to_gitlab_com() {
        let c = ForgeClient::new(ForgeKind::GitLab, None, ForgeAuth::Token("t".into())).unwrap();
        assert_eq!(c.api_base(), "https://gitlab.com/api/v4");
        let c = ForgeClient::new(
            ForgeKind::GitLab,
            Some("https://gitlab.example.com"),
            ForgeAuth::Token("t".into()),
        )
        .unwrap();
        assert_eq!(c.api_base(), "https://gitlab.example.com/api/v4");
        let e = ForgeClient::new(
            ForgeKind::GitLab,
            None,
            ForgeAuth::GitHubApp {
                app_id: "1".into(),
                installation_id: 2,
                private_key_pem: String::new(),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("GitHub only"), "{e}");
    }

    #[test]
    fn a_pr_on_another_forge_is_refused_before_any_request() {
        let c = ForgeClient::new(ForgeKind::GitHub, None, ForgeAuth::Token("t".into())).unwrap();
        let e = c.check_pr(&pr("gitea:o/r#1")).unwrap_err();
        assert!(e.to_string().contains("gitea"), "{e}");
    }
}
