//! GitLab's side of the forge client (REST API v4): projects addressed by
//! their URL-encoded path, merge requests read as pull requests, GitLab's
//! commit status names, and the refusal that means a status is already so.
//!
//! Comments are GitLab merge request *notes*; listing, creating and editing
//! them goes through the shared sync in `comments.rs`, which asks this
//! module only for paths.
//!
//! Endpoints, as documented at docs.gitlab.com/api: `GET
//! /projects/:id/merge_requests/:merge_request_iid` (merge_requests.md),
//! `GET|POST /projects/:id/merge_requests/:merge_request_iid/notes` and
//! `PUT …/notes/:note_id` (notes.md), `POST /projects/:id/statuses/:sha`
//! (commits.md, "Set the pipeline status of a commit"); `:id` is the
//! project's path with `/` written `%2F` (rest/_index.md, "Namespaced
//! paths").

use std::fmt::Write as _;

use reqwest::Method;
use serde::Deserialize;

use super::http::{MAX_RETRIES, backoff};
use super::{ForgeClient, ForgeError, PrRef, PullRequest, StatusState, truncate_chars};

/// `/projects/GROUP%2FSUB%2FPROJECT`.
pub(crate) fn project_path(pr: &PrRef) -> String {
    format!(
        "/projects/{}",
        encode_path_segment(&format!("{}/{}", pr.owner, pr.repo))
    )
}

/// `/projects/:id/merge_requests/:iid`.
pub(crate) fn merge_request_path(pr: &PrRef) -> String {
    format!("{}/merge_requests/{}", project_path(pr), pr.number)
}

/// Percent-encodes all but RFC 3986's unreserved characters, so that a
/// namespaced path is one path segment. `PrRef` already limits names to
/// letters, digits and `. _ -`, so in practice this writes `/` as `%2F`.
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The `state` GitLab takes for a commit status. GitLab has `pending`,
/// `running`, `success`, `failed` and `canceled`; it has no separate
/// "error", so both failures are `failed`.
pub(crate) fn status_state(state: StatusState) -> &'static str {
    match state {
        StatusState::Pending => "pending",
        StatusState::Success => "success",
        StatusState::Failure | StatusState::Error => "failed",
    }
}

/// Whether a refused status says it is already in `state`.
///
/// GitLab keeps a status that is `pending` or `running` and moves it to the
/// state asked for; asking for the state it is in is answered 400 "Cannot
/// transition status via :enqueue from :pending (Reason(s): Status cannot
/// transition via "enqueue")" (`:run from :running` for `running`). A
/// finished status is never moved: a new one is recorded, so `success` and
/// `failed` are not refused this way.
pub(crate) fn already_in_state(e: &ForgeError, state: &str) -> bool {
    let ForgeError::Status {
        status: 400,
        message,
        ..
    } = e
    else {
        return false;
    };
    let Some((_, rest)) = message.split_once("Cannot transition status via :") else {
        return false;
    };
    let Some((_, from)) = rest.split_once(" from :") else {
        return false;
    };
    let current: String = from
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    current == state
}

/// What the client reads of a merge request (`GET
/// /projects/:id/merge_requests/:iid`).
#[derive(Debug, Deserialize)]
pub(crate) struct ApiMergeRequest {
    iid: u64,
    /// `opened`, `closed`, `locked` (being merged) or `merged`.
    state: String,
    /// The diff head SHA.
    #[serde(default)]
    sha: Option<String>,
    source_branch: String,
    target_branch: String,
    /// Empty (or with null members) until GitLab has computed the first
    /// diff of a new merge request.
    #[serde(default)]
    diff_refs: Option<DiffRefs>,
}

#[derive(Debug, Deserialize)]
struct DiffRefs {
    /// The merge base of the head and the target branch.
    #[serde(default)]
    base_sha: Option<String>,
    /// The target branch's head when the diff was made.
    #[serde(default)]
    start_sha: Option<String>,
}

impl ApiMergeRequest {
    /// The merge request as a pull request, or `None` while GitLab has
    /// not yet filled in its head and base commits.
    pub(crate) fn into_pull_request(self) -> Option<PullRequest> {
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let head_sha = nonempty(self.sha)?;
        let refs = self.diff_refs?;
        let base_sha = nonempty(refs.base_sha).or_else(|| nonempty(refs.start_sha))?;
        Some(PullRequest {
            number: self.iid,
            state: pull_request_state(&self.state).to_string(),
            head_sha,
            head_ref: self.source_branch,
            base_ref: self.target_branch,
            base_sha,
        })
    }
}

/// GitLab's merge request state as [`PullRequest::state`] has it: only an
/// `opened` merge request is open.
fn pull_request_state(state: &str) -> &'static str {
    match state {
        "opened" => "open",
        _ => "closed",
    }
}

impl ForgeClient {
    /// Reads a merge request. A merge request created a moment ago may not
    /// have its diff yet (`sha`, `diff_refs`): it is read again a few times
    /// (about 3 s in all) before giving up.
    pub(crate) async fn gitlab_merge_request(&self, pr: &PrRef) -> Result<PullRequest, ForgeError> {
        let path = merge_request_path(pr);
        let mut retry = 0;
        loop {
            let reply = self.http.send(Method::GET, &path, None).await?;
            let mr: ApiMergeRequest = reply.json(&self.http, &Method::GET, &path)?;
            if let Some(p) = mr.into_pull_request() {
                return Ok(p);
            }
            if retry >= MAX_RETRIES {
                return Err(self.http.invalid_response(
                    &Method::GET,
                    &path,
                    "the merge request has no diff yet (`sha` or `diff_refs` is empty; GitLab \
                     fills them in shortly after the merge request is created or pushed to): \
                     try again",
                ));
            }
            tokio::time::sleep(backoff(retry, None)).await;
            retry += 1;
        }
    }

    /// Sets a commit status: `name` is the context. A status already in
    /// the state asked for (GitLab refuses to move it) counts as set.
    pub(crate) async fn gitlab_set_status(
        &self,
        pr: &PrRef,
        sha: &str,
        state: StatusState,
        description: &str,
        context: &str,
    ) -> Result<(), ForgeError> {
        let path = format!("{}/statuses/{}", project_path(pr), sha);
        let state = status_state(state);
        let body = serde_json::json!({
            "state": state,
            "name": context,
            // GitLab allows 255 characters; the shared 140 keeps statuses
            // alike on every forge.
            "description": truncate_chars(description, 140),
        });
        match self.http.send(Method::POST, &path, Some(&body)).await {
            Ok(_) => Ok(()),
            Err(e) if already_in_state(&e, state) => {
                tracing::debug!(pr = %pr, sha, state, context, "commit status already in that state");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::ForgeKind;

    fn pr(s: &str) -> PrRef {
        s.parse().unwrap()
    }

    #[test]
    fn projects_are_addressed_by_their_encoded_path() {
        assert_eq!(
            project_path(&pr("gitlab:group/sub/project#7")),
            "/projects/group%2Fsub%2Fproject"
        );
        assert_eq!(
            merge_request_path(&pr("gitlab:my-group/my.project_1#12")),
            "/projects/my-group%2Fmy.project_1/merge_requests/12"
        );
        assert_eq!(
            project_path(&pr("gitlab:a/b/c/d/e#1")),
            "/projects/a%2Fb%2Fc%2Fd%2Fe"
        );
        assert_eq!(encode_path_segment("a b/ü~"), "a%20b%2F%C3%BC~");
    }

    #[test]
    fn status_states_use_gitlabs_names() {
        assert_eq!(status_state(StatusState::Pending), "pending");
        assert_eq!(status_state(StatusState::Success), "success");
        assert_eq!(status_state(StatusState::Failure), "failed");
        assert_eq!(status_state(StatusState::Error), "failed");
    }

    fn status_error(status: u16, message: &str) -> ForgeError {
        ForgeError::Status {
            forge: ForgeKind::GitLab,
            method: "POST".into(),
            path: "/projects/g%2Fp/statuses/abc".into(),
            status,
            message: message.into(),
            retryable: false,
        }
    }

    #[test]
    fn only_a_refused_move_to_the_same_state_counts_as_set() {
        let same = "Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via \"enqueue\")";
        assert!(already_in_state(&status_error(400, same), "pending"));
        assert!(already_in_state(
            &status_error(400, "Cannot transition status via :run from :running"),
            "running"
        ));
        // Another state, another status code, another message.
        assert!(!already_in_state(
            &status_error(400, "Cannot transition status via :enqueue from :running"),
            "pending"
        ));
        assert!(!already_in_state(
            &status_error(400, "Cannot transition status via :enqueue from :pending_x"),
            "pending"
        ));
        assert!(!already_in_state(&status_error(409, same), "pending"));
        assert!(!already_in_state(
            &status_error(400, "State is required"),
            "pending"
        ));
        assert!(!already_in_state(
            &ForgeError::Client("x".into()),
            "pending"
        ));
    }

    fn mr(json: serde_json::Value) -> Option<PullRequest> {
        serde_json::from_value::<ApiMergeRequest>(json)
            .unwrap()
            .into_pull_request()
    }

    #[test]
    fn merge_requests_become_pull_requests() {
        let head = "e82eb4a098e32c796079ca3915e07487fc4db24c";
        let base = "1162f719d711319a2efb2a35566f3bfdadee8bab";
        let start = "9049f1265b7d61be4a8904a9a27120d2064dab3b";
        let p = mr(serde_json::json!({
            "id": 155016530, "iid": 133, "state": "opened", "sha": head,
            "source_branch": "manual-job-rules", "target_branch": "master",
            "diff_refs": { "base_sha": base, "head_sha": head, "start_sha": start },
        }))
        .unwrap();
        assert_eq!(
            p,
            PullRequest {
                number: 133,
                state: "open".into(),
                head_sha: head.into(),
                head_ref: "manual-job-rules".into(),
                base_ref: "master".into(),
                base_sha: base.into(),
            }
        );
        // No merge base recorded: the target's head when the diff was made.
        let p = mr(serde_json::json!({
            "iid": 1, "state": "merged", "sha": head,
            "source_branch": "a", "target_branch": "main",
            "diff_refs": { "base_sha": null, "head_sha": head, "start_sha": start },
        }))
        .unwrap();
        assert_eq!((p.base_sha.as_str(), p.state.as_str()), (start, "closed"));
        for state in ["closed", "locked", "merged"] {
            assert_eq!(pull_request_state(state), "closed");
        }
        // A brand-new merge request without its diff yet.
        for json in [
            serde_json::json!({"iid": 1, "state": "opened", "sha": head,
                "source_branch": "a", "target_branch": "main", "diff_refs": null}),
            serde_json::json!({"iid": 1, "state": "opened", "sha": head,
                "source_branch": "a", "target_branch": "main"}),
            serde_json::json!({"iid": 1, "state": "opened", "sha": null,
                "source_branch": "a", "target_branch": "main",
                "diff_refs": {"base_sha": base, "start_sha": start}}),
            serde_json::json!({"iid": 1, "state": "opened", "sha": head,
                "source_branch": "a", "target_branch": "main",
                "diff_refs": {"base_sha": null, "head_sha": null, "start_sha": null}}),
        ] {
            assert_eq!(mr(json.clone()), None, "{json}");
        }
    }
}
