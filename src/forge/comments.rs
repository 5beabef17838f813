//! Plan comment families: which comment to create, edit or retire (a pure
//! function of the comments on the pull request and the plan's parts), and
//! carrying that out on the forge.
//!
//! A comment belongs to part *n* of family *key* when its first line is
//! exactly [`comment_marker`]`(key, n)`: markers quoted further down a
//! reply, or the marker of another key, never match.
//!
//! The same sync runs on every forge; only paths, the edit method and
//! pagination differ (GitLab: merge request notes, edited with `PUT`,
//! paged by `X-Next-Page`; its system notes are not comments).

use std::collections::{BTreeMap, HashSet};

use reqwest::Method;
use serde::Deserialize;

use super::http::{MAX_RETRIES, RetryClass, backoff, next_link};
use super::{
    ForgeClient, ForgeError, ForgeKind, PrRef, SyncReport, comment_marker, gitlab,
    validate_comment_key,
};

/// GitHub's limit on a comment body, in characters (Gitea's and GitLab's,
/// 1,000,000, are larger; the smallest keeps plans portable). Counted with
/// the marker line.
pub const MAX_COMMENT_CHARS: usize = 65_536;

/// What a part that a shorter plan no longer needs is edited to say, after
/// its marker. Such comments are kept rather than deleted: the pull
/// request's conversation and any replies referring to them stay intact.
pub const RETIRED_NOTE: &str =
    "_This part of the Kompox plan is no longer needed: the plan now fits in fewer comments._";

/// GitHub's largest page.
const GITHUB_PAGE: usize = 100;
/// Gitea's default `MAX_RESPONSE_ITEMS`; a larger `limit` is cut to it.
const GITEA_PAGE: usize = 50;
/// GitLab's largest `per_page`.
const GITLAB_PAGE: usize = 100;
/// Stops a forge that keeps answering "next page" from looping forever
/// (100,000 comments on GitHub).
const MAX_PAGES: usize = 1000;

/// A comment on the pull request, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingComment {
    pub id: u64,
    pub body: String,
}

/// Another comment of the same part, tried in id order when editing the
/// chosen one is refused (403: not ours, e.g. a user's comment starting
/// with our marker; 404: deleted meanwhile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub id: u64,
    /// It already has the wanted body: nothing to send.
    pub same_body: bool,
}

/// One step of a sync, in the order they are carried out: the plan's parts
/// first (1, 2, …), then the retired ones. `body` includes the marker line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentAction {
    /// No comment has this part's marker.
    Create { part: usize, body: String },
    /// Edit the oldest comment of the part (the others, left by a race of
    /// two writers, are left alone).
    Update {
        part: usize,
        id: u64,
        body: String,
        fallbacks: Vec<Fallback>,
    },
    /// The oldest comment of the part already reads so.
    Unchanged { part: usize, id: u64 },
    /// A part beyond the plan: edit it to [`RETIRED_NOTE`].
    Retire {
        part: usize,
        id: u64,
        body: String,
        fallbacks: Vec<Fallback>,
    },
    /// A part beyond the plan that already says it is retired.
    AlreadyRetired { part: usize, id: u64 },
}

/// Decides how to bring the family `key` on a pull request in line with
/// `parts` (the bodies without markers), given all of its comments.
///
/// Refuses an invalid key and a part over [`MAX_COMMENT_CHARS`] before
/// anything is decided, so nothing is sent for a plan that cannot be
/// posted whole.
pub fn plan_comment_sync(
    key: &str,
    existing: &[ExistingComment],
    parts: &[String],
) -> Result<Vec<CommentAction>, ForgeError> {
    let bodies = desired_bodies(key, parts)?;
    Ok(decide(key, existing, bodies))
}

/// The bodies to post: each part after its marker line.
fn desired_bodies(key: &str, parts: &[String]) -> Result<Vec<String>, ForgeError> {
    validate_comment_key(key)?;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let body = format!("{}\n{}", comment_marker(key, i + 1), part);
            let chars = body.chars().count();
            if chars > MAX_COMMENT_CHARS {
                return Err(ForgeError::BodyTooLong {
                    part: i + 1,
                    chars,
                    limit: MAX_COMMENT_CHARS,
                });
            }
            Ok(body)
        })
        .collect()
}

fn decide(key: &str, existing: &[ExistingComment], bodies: Vec<String>) -> Vec<CommentAction> {
    let mut by_part: BTreeMap<usize, Vec<&ExistingComment>> = BTreeMap::new();
    for c in existing {
        if let Some(part) = marker_part(key, first_line(&c.body)) {
            by_part.entry(part).or_default().push(c);
        }
    }
    for comments in by_part.values_mut() {
        comments.sort_by_key(|c| c.id);
    }
    let fallbacks = |rest: &[&ExistingComment], body: &str| -> Vec<Fallback> {
        rest.iter()
            .map(|c| Fallback {
                id: c.id,
                same_body: c.body == body,
            })
            .collect()
    };

    let wanted = bodies.len();
    let mut actions = Vec::with_capacity(wanted);
    for (i, body) in bodies.into_iter().enumerate() {
        let part = i + 1;
        actions.push(match by_part.remove(&part).as_deref() {
            None | Some([]) => CommentAction::Create { part, body },
            Some([oldest, ..]) if oldest.body == body => CommentAction::Unchanged {
                part,
                id: oldest.id,
            },
            Some([oldest, rest @ ..]) => CommentAction::Update {
                part,
                id: oldest.id,
                fallbacks: fallbacks(rest, &body),
                body,
            },
        });
    }
    // What is left are parts beyond the plan (all numbers ≤ `wanted` were
    // removed above).
    for (part, comments) in by_part {
        debug_assert!(part > wanted);
        let body = format!("{}\n{}", comment_marker(key, part), RETIRED_NOTE);
        let (oldest, rest) = comments.split_first().expect("groups are never empty");
        actions.push(if oldest.body == body {
            CommentAction::AlreadyRetired {
                part,
                id: oldest.id,
            }
        } else {
            CommentAction::Retire {
                part,
                id: oldest.id,
                fallbacks: fallbacks(rest, &body),
                body,
            }
        });
    }
    actions
}

/// The first line of a body. A trailing `\r` is dropped: a comment edited
/// in a browser comes back with CRLF line ends.
fn first_line(body: &str) -> &str {
    let line = body.split('\n').next().unwrap_or_default();
    line.strip_suffix('\r').unwrap_or(line)
}

/// Which part of family `key` a first line marks, if it is exactly one of
/// its markers.
fn marker_part(key: &str, line: &str) -> Option<usize> {
    let inner = line
        .strip_prefix("<!-- kompox-plan")?
        .strip_suffix(" -->")?;
    let rest = if key.is_empty() {
        inner
    } else {
        inner.strip_prefix(':')?.strip_prefix(key)?
    };
    let part = match rest {
        "" => 1,
        _ => {
            let n = rest.strip_prefix(" part ")?;
            if n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n.parse().ok().filter(|&n| n >= 2)?
        }
    };
    debug_assert_eq!(comment_marker(key, part), line);
    Some(part)
}

#[derive(Deserialize)]
struct ApiComment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    /// GitLab: a note GitLab wrote about a change (a push, an approval),
    /// not a comment anyone can edit.
    #[serde(default)]
    system: bool,
}

impl From<ApiComment> for ExistingComment {
    fn from(c: ApiComment) -> Self {
        ExistingComment {
            id: c.id,
            body: c.body.unwrap_or_default(),
        }
    }
}

/// Whether an edit was refused because the comment is not ours or is gone
/// (not a rate limit, which is a 403 too but retryable).
fn foreign_or_gone(e: &ForgeError) -> bool {
    matches!(
        e,
        ForgeError::Status {
            status: 403 | 404 | 410,
            retryable: false,
            ..
        }
    )
}

impl ForgeClient {
    /// Creates or edits, in place, the plan comments of family `key` on a
    /// pull request so that they read `parts` (bodies without markers;
    /// each gets its marker line prepended). `key` is empty for the CLI's
    /// family, or e.g. a cluster id so that each reconciler keeps its own.
    ///
    /// Comments are listed once; then parts are created or edited in order
    /// (an unchanged part sends nothing), and parts beyond `parts.len()`
    /// from an earlier, longer plan are edited to say they are no longer
    /// needed. An invalid key or an over-long part is refused before any
    /// request.
    pub async fn sync_comments(
        &self,
        pr: &PrRef,
        key: &str,
        parts: &[String],
    ) -> Result<SyncReport, ForgeError> {
        self.check_pr(pr)?;
        let bodies = desired_bodies(key, parts)?;
        let existing = self.list_comments(pr).await?;
        let known: HashSet<u64> = existing.iter().map(|c| c.id).collect();
        let mut report = SyncReport::default();
        for action in decide(key, &existing, bodies) {
            tracing::debug!(pr = %pr, key, action = ?ActionSummary(&action), "plan comment");
            match action {
                CommentAction::Create { part, body } => {
                    self.create_part(pr, key, part, &body, &known, &mut report)
                        .await?;
                }
                CommentAction::Unchanged { id, .. } => report.unchanged.push(id),
                CommentAction::AlreadyRetired { id, .. } => report.retired.push(id),
                CommentAction::Update {
                    part,
                    id,
                    body,
                    fallbacks,
                } => match self.edit_first_of(pr, id, &fallbacks, &body).await? {
                    Some((id, true)) => report.updated.push(id),
                    Some((id, false)) => report.unchanged.push(id),
                    None => {
                        self.create_part(pr, key, part, &body, &known, &mut report)
                            .await?;
                    }
                },
                CommentAction::Retire {
                    part,
                    id,
                    body,
                    fallbacks,
                } => match self.edit_first_of(pr, id, &fallbacks, &body).await? {
                    Some((id, _)) => report.retired.push(id),
                    // Never create a comment only to say it is not needed.
                    None => {
                        tracing::warn!(pr = %pr, key, part, "no editable comment of a retired plan part")
                    }
                },
            }
        }
        Ok(report)
    }

    /// Edits `id` or, while that is refused, the fallbacks in turn.
    /// Returns the comment that now reads `body` and whether it was edited
    /// (a fallback may read so already); `None` when every one refused.
    async fn edit_first_of(
        &self,
        pr: &PrRef,
        id: u64,
        fallbacks: &[Fallback],
        body: &str,
    ) -> Result<Option<(u64, bool)>, ForgeError> {
        let first = Fallback {
            id,
            same_body: false,
        };
        for c in std::iter::once(&first).chain(fallbacks) {
            if c.same_body {
                return Ok(Some((c.id, false)));
            }
            match self.edit_comment(pr, c.id, body).await {
                Ok(()) => return Ok(Some((c.id, true))),
                Err(e) if foreign_or_gone(&e) => {
                    tracing::warn!(pr = %pr, comment = c.id, error = %e, "cannot edit a plan comment; trying the next");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    async fn edit_comment(&self, pr: &PrRef, id: u64, body: &str) -> Result<(), ForgeError> {
        let (method, path) = self.comment_edit(pr, id);
        let payload = serde_json::json!({ "body": body });
        self.http
            .send(method, &path, Some(&payload))
            .await
            .map(drop)
    }

    /// The pull request's comments: listed with `GET`, created with `POST`.
    fn comments_path(&self, pr: &PrRef) -> String {
        match self.http.kind {
            ForgeKind::GitLab => format!("{}/notes", gitlab::merge_request_path(pr)),
            _ => format!(
                "/repos/{}/{}/issues/{}/comments",
                pr.owner, pr.repo, pr.number
            ),
        }
    }

    /// How comment `id` is edited.
    fn comment_edit(&self, pr: &PrRef, id: u64) -> (Method, String) {
        match self.http.kind {
            ForgeKind::GitLab => (
                Method::PUT,
                format!("{}/notes/{}", gitlab::merge_request_path(pr), id),
            ),
            _ => (
                Method::PATCH,
                format!("/repos/{}/{}/issues/comments/{}", pr.owner, pr.repo, id),
            ),
        }
    }

    /// Creates part `part`. A create whose answer was lost may have been
    /// carried out, so before sending it again the comments are listed and
    /// a new comment with the part's marker (one not in `known`, the ids
    /// listed before) is taken as the result.
    async fn create_part(
        &self,
        pr: &PrRef,
        key: &str,
        part: usize,
        body: &str,
        known: &HashSet<u64>,
        report: &mut SyncReport,
    ) -> Result<(), ForgeError> {
        let path = self.comments_path(pr);
        let payload = serde_json::json!({ "body": body });
        let marker = comment_marker(key, part);
        let mut retry = 0;
        loop {
            let failure = match self
                .http
                .send_once(Method::POST, &path, Some(&payload))
                .await
            {
                Ok(reply) => {
                    let c: ApiComment = reply.json(&self.http, &Method::POST, &path)?;
                    report.created.push(c.id);
                    return Ok(());
                }
                Err(f) => f,
            };
            if failure.class == RetryClass::Never {
                return Err(failure.error);
            }
            // Wait first: a forge that answered 504 may still be writing.
            let wait = backoff(retry, failure.retry_after);
            tracing::warn!(pr = %pr, part, error = %failure.error, wait_ms = wait.as_millis() as u64, "creating a plan comment failed");
            tokio::time::sleep(wait).await;
            if failure.class == RetryClass::MaybeDone {
                let landed = self
                    .list_comments(pr)
                    .await?
                    .into_iter()
                    .filter(|c| !known.contains(&c.id) && first_line(&c.body) == marker)
                    .min_by_key(|c| c.id);
                if let Some(c) = landed {
                    if c.body == body {
                        report.created.push(c.id);
                    } else {
                        // Another writer's, with another plan: make it ours.
                        self.edit_comment(pr, c.id, body).await?;
                        report.updated.push(c.id);
                    }
                    return Ok(());
                }
            }
            if retry >= MAX_RETRIES {
                return Err(failure.error);
            }
            retry += 1;
        }
    }

    /// All comments on the pull request, oldest first (GitLab's system
    /// notes left out).
    async fn list_comments(&self, pr: &PrRef) -> Result<Vec<ExistingComment>, ForgeError> {
        let base = self.comments_path(pr);
        let mut seen = HashSet::new();
        let mut out: Vec<ExistingComment> = Vec::new();
        // How many comments of the page were not seen before (system notes
        // included, so that a page of them does not end the walk).
        let mut push_new = |page: Vec<ApiComment>, out: &mut Vec<ExistingComment>| {
            let mut new = 0;
            for c in page {
                if seen.insert(c.id) {
                    new += 1;
                    if !c.system {
                        out.push(c.into());
                    }
                }
            }
            new
        };
        match self.http.kind {
            ForgeKind::GitHub => {
                let mut target = format!("{base}?per_page={GITHUB_PAGE}");
                for _ in 0..MAX_PAGES {
                    let reply = self.http.send(Method::GET, &target, None).await?;
                    let page: Vec<ApiComment> = reply.json(&self.http, &Method::GET, &target)?;
                    push_new(page, &mut out);
                    match next_link(&reply.headers) {
                        Some(next) => target = next,
                        None => return Ok(sorted(out)),
                    }
                }
            }
            ForgeKind::GitLab => {
                // Oldest first, as GitLab documents `sort` and `order_by`
                // (its default is newest first). The next page is the one
                // `X-Next-Page` names (empty on the last); without that
                // header, the `Link` header's `rel="next"`; without either,
                // the next number after a full page.
                let page_url = |n: u64| {
                    format!("{base}?per_page={GITLAB_PAGE}&page={n}&sort=asc&order_by=created_at")
                };
                let mut page_no = 1;
                let mut target = page_url(page_no);
                for _ in 0..MAX_PAGES {
                    let reply = self.http.send(Method::GET, &target, None).await?;
                    let page: Vec<ApiComment> = reply.json(&self.http, &Method::GET, &target)?;
                    let len = page.len();
                    let new = push_new(page, &mut out);
                    let next = match reply.headers.get("x-next-page") {
                        Some(v) => v
                            .to_str()
                            .ok()
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .filter(|&n| n > page_no)
                            .map(|n| (n, page_url(n))),
                        None => match next_link(&reply.headers) {
                            Some(link) => Some((page_no + 1, link)),
                            None => {
                                (len >= GITLAB_PAGE).then(|| (page_no + 1, page_url(page_no + 1)))
                            }
                        },
                    };
                    match next {
                        Some((n, url)) if new > 0 => {
                            page_no = n;
                            target = url;
                        }
                        _ => return Ok(sorted(out)),
                    }
                }
            }
            ForgeKind::Gitea => {
                // Gitea: `page`/`limit`. Some versions ignore them on this
                // endpoint and answer everything at once, so a page that
                // brings nothing new, or reaching X-Total-Count, also ends
                // the walk.
                for page_no in 1..=MAX_PAGES {
                    let target = format!("{base}?page={page_no}&limit={GITEA_PAGE}");
                    let reply = self.http.send(Method::GET, &target, None).await?;
                    let page: Vec<ApiComment> = reply.json(&self.http, &Method::GET, &target)?;
                    let total: Option<usize> = reply
                        .headers
                        .get("x-total-count")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse().ok());
                    let len = page.len();
                    let new = push_new(page, &mut out);
                    if len < GITEA_PAGE || new == 0 || total.is_some_and(|t| out.len() >= t) {
                        return Ok(sorted(out));
                    }
                }
            }
        }
        Err(self.http.invalid_response(
            &Method::GET,
            &base,
            format!("more than {MAX_PAGES} pages of comments; giving up"),
        ))
    }
}

fn sorted(mut comments: Vec<ExistingComment>) -> Vec<ExistingComment> {
    comments.sort_by_key(|c| c.id);
    comments
}

/// An action without its body, for logs.
struct ActionSummary<'a>(&'a CommentAction);

impl std::fmt::Debug for ActionSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            CommentAction::Create { part, .. } => write!(f, "create part {part}"),
            CommentAction::Update { part, id, .. } => write!(f, "update part {part} (#{id})"),
            CommentAction::Unchanged { part, id } => write!(f, "part {part} unchanged (#{id})"),
            CommentAction::Retire { part, id, .. } => write!(f, "retire part {part} (#{id})"),
            CommentAction::AlreadyRetired { part, id } => {
                write!(f, "part {part} already retired (#{id})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u64, body: &str) -> ExistingComment {
        ExistingComment {
            id,
            body: body.to_string(),
        }
    }

    fn parts(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn body(key: &str, part: usize, text: &str) -> String {
        format!("{}\n{}", comment_marker(key, part), text)
    }

    fn retired(key: &str, part: usize) -> String {
        body(key, part, RETIRED_NOTE)
    }

    #[test]
    fn first_lines_ignore_the_rest_and_crlf() {
        assert_eq!(first_line("a\nb"), "a");
        assert_eq!(first_line("a\r\nb"), "a");
        assert_eq!(first_line("a"), "a");
        assert_eq!(first_line(""), "");
        assert_eq!(first_line("\nb"), "");
    }

    #[test]
    fn markers_are_recognised_exactly() {
        assert_eq!(marker_part("", "<!-- kompox-plan -->"), Some(1));
        assert_eq!(marker_part("", "<!-- kompox-plan part 2 -->"), Some(2));
        assert_eq!(marker_part("", "<!-- kompox-plan part 13 -->"), Some(13));
        assert_eq!(marker_part("prod", "<!-- kompox-plan:prod -->"), Some(1));
        assert_eq!(
            marker_part("eu/prod", "<!-- kompox-plan:eu/prod part 3 -->"),
            Some(3)
        );
        for (key, line) in [
            // Another family.
            ("", "<!-- kompox-plan:prod -->"),
            ("prod", "<!-- kompox-plan -->"),
            ("prod", "<!-- kompox-plan:production -->"),
            ("prod", "<!-- kompox-plan:pro -->"),
            ("", "<!-- kompox-plan:prod part 2 -->"),
            // Not the exact form.
            ("", "<!-- kompox-plan part 1 -->"),
            ("", "<!-- kompox-plan part 02 -->"),
            ("", "<!-- kompox-plan part 0 -->"),
            ("", "<!-- kompox-plan part -->"),
            ("", "<!-- kompox-plan part 2x -->"),
            ("", "<!-- kompox-plan part 99999999999999999999999 -->"),
            ("", "<!--kompox-plan-->"),
            ("", " <!-- kompox-plan -->"),
            ("", "<!-- kompox-plan --> trailing"),
            ("", "> <!-- kompox-plan -->"),
            ("", "<!-- kompox-planner -->"),
        ] {
            assert_eq!(marker_part(key, line), None, "{key:?} {line:?}");
        }
    }

    #[test]
    fn a_first_sync_creates_every_part() {
        let a = plan_comment_sync("", &[c(1, "lgtm")], &parts(&["one", "two"])).unwrap();
        assert_eq!(
            a,
            vec![
                CommentAction::Create {
                    part: 1,
                    body: "<!-- kompox-plan -->\none".into()
                },
                CommentAction::Create {
                    part: 2,
                    body: "<!-- kompox-plan part 2 -->\ntwo".into()
                },
            ]
        );
    }

    #[test]
    fn changed_parts_are_updated_and_equal_ones_left_alone() {
        let existing = [
            c(5, &body("k", 1, "old")),
            c(6, "unrelated"),
            c(7, &body("k", 2, "same")),
        ];
        let a = plan_comment_sync("k", &existing, &parts(&["new", "same"])).unwrap();
        assert_eq!(
            a,
            vec![
                CommentAction::Update {
                    part: 1,
                    id: 5,
                    body: body("k", 1, "new"),
                    fallbacks: vec![]
                },
                CommentAction::Unchanged { part: 2, id: 7 },
            ]
        );
    }

    #[test]
    fn surplus_parts_are_retired_not_deleted() {
        let existing = [
            c(1, &body("", 1, "a")),
            c(2, &body("", 2, "b")),
            c(3, &body("", 3, "c")),
        ];
        let a = plan_comment_sync("", &existing, &parts(&["a"])).unwrap();
        assert_eq!(
            a,
            vec![
                CommentAction::Unchanged { part: 1, id: 1 },
                CommentAction::Retire {
                    part: 2,
                    id: 2,
                    body: retired("", 2),
                    fallbacks: vec![]
                },
                CommentAction::Retire {
                    part: 3,
                    id: 3,
                    body: retired("", 3),
                    fallbacks: vec![]
                },
            ]
        );
        // Once retired, they stay so without a request; a longer plan
        // brings them back.
        let existing = [
            c(1, &body("", 1, "a")),
            c(2, &retired("", 2)),
            c(3, &retired("", 3)),
        ];
        let a = plan_comment_sync("", &existing, &parts(&["a"])).unwrap();
        assert_eq!(
            &a[1..],
            &[
                CommentAction::AlreadyRetired { part: 2, id: 2 },
                CommentAction::AlreadyRetired { part: 3, id: 3 }
            ]
        );
        let a = plan_comment_sync("", &existing, &parts(&["a", "b2"])).unwrap();
        assert_eq!(
            a[1],
            CommentAction::Update {
                part: 2,
                id: 2,
                body: body("", 2, "b2"),
                fallbacks: vec![]
            }
        );
        assert_eq!(a[2], CommentAction::AlreadyRetired { part: 3, id: 3 });
    }

    #[test]
    fn an_empty_plan_retires_every_part() {
        let a = plan_comment_sync("", &[c(1, &body("", 1, "a"))], &[]).unwrap();
        assert_eq!(
            a,
            vec![CommentAction::Retire {
                part: 1,
                id: 1,
                body: retired("", 1),
                fallbacks: vec![]
            }]
        );
    }

    #[test]
    fn a_race_updates_the_oldest_and_keeps_the_others_as_fallbacks() {
        let existing = [
            c(9, &body("", 1, "racer")),
            c(4, &body("", 1, "old")),
            c(7, &body("", 1, "new")),
        ];
        let a = plan_comment_sync("", &existing, &parts(&["new"])).unwrap();
        assert_eq!(
            a,
            vec![CommentAction::Update {
                part: 1,
                id: 4,
                body: body("", 1, "new"),
                fallbacks: vec![
                    Fallback {
                        id: 7,
                        same_body: true
                    },
                    Fallback {
                        id: 9,
                        same_body: false
                    }
                ]
            }]
        );
        // The oldest already reads so: nothing to do, whatever the others say.
        let existing = [c(4, &body("", 1, "new")), c(7, &body("", 1, "stale"))];
        let a = plan_comment_sync("", &existing, &parts(&["new"])).unwrap();
        assert_eq!(a, vec![CommentAction::Unchanged { part: 1, id: 4 }]);
    }

    #[test]
    fn quoted_markers_and_other_families_are_not_matched() {
        let existing = [
            c(1, &format!("> {}\n> old plan\nwhy?", comment_marker("", 1))),
            c(2, &format!("see\n{}\nquoted", comment_marker("", 1))),
            c(3, &body("prod", 1, "other reconciler")),
            c(4, &body("", 2, "a stale second part")),
        ];
        let a = plan_comment_sync("", &existing, &parts(&["plan"])).unwrap();
        assert_eq!(
            a,
            vec![
                CommentAction::Create {
                    part: 1,
                    body: body("", 1, "plan")
                },
                CommentAction::Retire {
                    part: 2,
                    id: 4,
                    body: retired("", 2),
                    fallbacks: vec![]
                },
            ]
        );
        // The other family sees only its own.
        let a = plan_comment_sync("prod", &existing, &parts(&["other reconciler"])).unwrap();
        assert_eq!(a, vec![CommentAction::Unchanged { part: 1, id: 3 }]);
    }

    #[test]
    fn a_comment_edited_in_a_browser_still_matches() {
        let existing = [c(1, "<!-- kompox-plan -->\r\nold\r\n")];
        let a = plan_comment_sync("", &existing, &parts(&["new"])).unwrap();
        assert!(
            matches!(a[..], [CommentAction::Update { id: 1, .. }]),
            "{a:?}"
        );
    }

    #[test]
    fn over_long_parts_and_bad_keys_are_refused() {
        let marker_len = comment_marker("", 2).chars().count() + 1;
        // Characters, not bytes: 'é' is two bytes.
        let fits = "é".repeat(MAX_COMMENT_CHARS - marker_len);
        let a = plan_comment_sync("", &[], &[String::new(), fits.clone()]).unwrap();
        assert_eq!(a.len(), 2);
        let e = plan_comment_sync("", &[], &["x".into(), format!("{fits}é")]).unwrap_err();
        assert_eq!(
            e,
            ForgeError::BodyTooLong {
                part: 2,
                chars: MAX_COMMENT_CHARS + 1,
                limit: MAX_COMMENT_CHARS
            }
        );
        assert!(e.to_string().contains("split"), "{e}");
        let e = plan_comment_sync("a-->b", &[], &parts(&["x"])).unwrap_err();
        assert!(matches!(e, ForgeError::InvalidCommentKey { .. }), "{e}");
    }

    #[test]
    fn only_refusals_that_are_not_rate_limits_fall_back() {
        let status = |status, retryable| ForgeError::Status {
            forge: ForgeKind::GitHub,
            method: "PATCH".into(),
            path: "/x".into(),
            status,
            message: String::new(),
            retryable,
        };
        assert!(foreign_or_gone(&status(403, false)));
        assert!(foreign_or_gone(&status(404, false)));
        assert!(!foreign_or_gone(&status(403, true)));
        assert!(!foreign_or_gone(&status(422, false)));
        assert!(!foreign_or_gone(&status(500, false)));
    }
}
