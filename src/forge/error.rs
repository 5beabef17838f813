//! The forge client's one error type.

use super::ForgeKind;

/// Why a forge operation failed.
///
/// Messages name the request (method and path, which never carry a
/// credential) and what the forge said, so an operator can act on them
/// without a debug log; no variant holds a token, a JWT or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    #[error(
        "invalid pull request reference {input:?}: {reason} (expected FORGE:OWNER/REPO#NUMBER \
         with FORGE one of github, gitea, gitlab, e.g. github:octo-org/app#12)"
    )]
    InvalidPrRef { input: String, reason: String },

    #[error(
        "invalid plan comment key {key:?}: {reason} (keys are letters, digits and / . _ -, \
         e.g. a cluster id)"
    )]
    InvalidCommentKey { key: String, reason: &'static str },

    #[error("invalid {forge} base URL: {reason}")]
    InvalidBaseUrl { forge: ForgeKind, reason: String },

    #[error("invalid {what} for {forge}: {reason}")]
    InvalidCredentials {
        forge: ForgeKind,
        what: &'static str,
        reason: String,
    },

    #[error("invalid commit id {sha:?}: expected a full hexadecimal commit id (40 or 64 digits)")]
    InvalidCommitSha { sha: String },

    #[error("{forge}: {what} is not supported yet")]
    Unsupported {
        forge: ForgeKind,
        what: &'static str,
    },

    #[error("pull request {pr} is on {pr_forge}, but this client talks to {client}")]
    ForgeMismatch {
        pr: String,
        pr_forge: ForgeKind,
        client: ForgeKind,
    },

    #[error(
        "plan comment part {part} is {chars} characters long with its marker, over the forge's \
         limit of {limit}: split the plan into more parts"
    )]
    BodyTooLong {
        part: usize,
        chars: usize,
        limit: usize,
    },

    #[error("cannot set up the HTTP client: {0}")]
    Client(String),

    /// The forge answered, with a status that is not success.
    #[error(
        "{forge} API: {method} {path} answered HTTP {status}: {message}{}",
        retry_hint(*retryable)
    )]
    Status {
        forge: ForgeKind,
        method: String,
        path: String,
        status: u16,
        /// The forge's own `message` (and, for validation errors, the
        /// `errors` details), or the start of a non-JSON body.
        message: String,
        retryable: bool,
    },

    /// No usable answer: the connection failed, was dropped, or timed out.
    #[error("{forge} API: {method} {path} failed: {detail}{}", retry_hint(true))]
    Transport {
        forge: ForgeKind,
        method: String,
        path: String,
        detail: String,
        timed_out: bool,
    },

    #[error("{forge} API: {method} {path}: unexpected response: {detail}")]
    InvalidResponse {
        forge: ForgeKind,
        method: String,
        path: String,
        detail: String,
    },
}

fn retry_hint(retryable: bool) -> &'static str {
    if retryable {
        " (transient: retrying later may help)"
    } else {
        ""
    }
}

impl ForgeError {
    /// Whether the same call may succeed later without any change: rate
    /// limits, forge outages, network trouble. Everything else (bad
    /// credentials, missing pull request, invalid input) needs a fix first.
    pub fn is_retryable(&self) -> bool {
        match self {
            ForgeError::Status { retryable, .. } => *retryable,
            ForgeError::Transport { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status the forge answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ForgeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
