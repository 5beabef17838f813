//! The last guard before a comment leaves the process: every Secret value
//! Kompox knows of is replaced, wherever it appears.
//!
//! The plan itself only carries hashes of Secret data, but a comment also
//! carries error messages and warnings, and those quote inputs (an env
//! file line that failed to parse, a value echoed by the API server). A
//! reviewer-visible comment is the wrong place to find out that one of
//! those paths leaked, so the finished text is scrubbed as a whole.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use serde_json::Value as Json;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "(redacted)";

/// Values shorter than this are not searched for. Every `environment:`
/// value of a compose file becomes Secret data, so the values include
/// `gitea`, `prod`, `5432` and `true`; scrubbing those would garble app,
/// cluster and object names all over the comment, while a real password,
/// token or key is longer (and the plan itself never prints Secret data).
const MIN_LEN: usize = 8;

/// Replaces known secret values (and each line of a multi-line value, such
/// as a key file) in text.
#[derive(Clone)]
pub struct Redactor {
    matcher: Option<AhoCorasick>,
    count: usize,
}

impl std::fmt::Debug for Redactor {
    // Never print the values themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.count)
    }
}

impl Redactor {
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut needles: Vec<String> = Vec::new();
        for v in values {
            if v.lines().count() > 1 {
                needles.extend(
                    v.lines()
                        .map(str::trim)
                        .filter(|l| l.chars().count() >= MIN_LEN)
                        .map(str::to_string),
                );
            }
            let v = v.trim().to_string();
            if v.chars().count() >= MIN_LEN {
                needles.push(v);
            }
        }
        needles.sort();
        needles.dedup();
        let count = needles.len();
        let matcher = (!needles.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&needles)
                .expect("plain string patterns always build")
        });
        Redactor { matcher, count }
    }

    /// How many values are searched for.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => {
                Cow::Owned(m.replace_all(text, &vec![REDACTED; self.count]))
            }
            _ => Cow::Borrowed(text),
        }
    }
}

/// The values of Secret objects (`data`, base64-decoded when it is UTF-8,
/// and `stringData`), desired or live.
pub fn secret_values<'a>(bodies: impl IntoIterator<Item = &'a Json>) -> Vec<String> {
    let mut out = Vec::new();
    for body in bodies {
        if body["kind"] != "Secret" {
            continue;
        }
        if let Some(data) = body["data"].as_object() {
            for v in data.values().filter_map(Json::as_str) {
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(v)
                    && let Ok(s) = String::from_utf8(bytes)
                {
                    out.push(s);
                }
            }
        }
        if let Some(data) = body["stringData"].as_object() {
            out.extend(data.values().filter_map(Json::as_str).map(str::to_string));
        }
    }
    out
}
