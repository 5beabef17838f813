//! Pull-request plans (DECISIONS 20): which Apps a pull request touches,
//! and the comment that shows their plan. Pure: the Git diff, the live
//! state and the forge calls are the caller's (`source::git`,
//! `cluster::observe`, `forge`).
//!
//! The comment is what reviewers trust before merging, so two rules are
//! enforced here rather than left to each caller: no Secret value may
//! appear in it ([`Redactor`]), and no single comment may exceed what the
//! forge accepts ([`comment_parts`]).

mod fit;
mod redact;
mod touched;

pub use fit::{COMMENT_LIMIT, CommentInput, MAX_PARTS, comment_parts};
pub use redact::{REDACTED, Redactor, secret_values};
pub use touched::{Touched, relative_to_project, touched_apps};

#[cfg(test)]
mod tests;
