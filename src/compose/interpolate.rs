//! Compose variable interpolation (load stage, pure; DECISIONS 7).
//!
//! Users write compose files for `docker compose` first, so `$VAR`,
//! `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`, `${VAR:+a}`,
//! `${VAR+a}` and `$$` behave as compose-go's template package does,
//! including nested `${...}` inside defaults, error texts and alternatives,
//! and a `$` that starts nothing (`$1`, `a $ b`, a trailing `$`) staying
//! literal. Variables come only from the map the caller passes (the `.env`
//! beside the compose file and the App's `spec.settings`), never from the
//! process environment, so a plan does not depend on where it runs.
//!
//! The input is parsed into a small tree first and evaluated second: syntax
//! errors are found even in a default that is not used, while a default (or
//! `:?` message) is only *evaluated* when compose would evaluate it.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::Diagnostic;
use crate::yaml::{Node, Value};

const RULE: &str = "compose-interpolation";
const RULE_UNSET: &str = "compose-variable-unset";

/// Nesting of `${...}` inside defaults beyond this is refused, so that
/// hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

/// Why a string could not be interpolated, and where (byte offset into the
/// input, pointing at the `$` of the expression or the offending character).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InterpolationError {
    pub message: String,
    pub offset: usize,
}

/// Interpolates one string. An unset variable without a default becomes the
/// empty string, as in compose ([`interpolate_tree`] also warns about it).
pub fn interpolate_str(
    input: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, InterpolationError> {
    interpolate_collecting(input, vars, &mut Vec::new())
}

/// Interpolates every scalar VALUE in the tree (mapping keys are not interpolated), in place; scalars keep their `plain` flag. Collects all errors as Diagnostics with the file and the scalar's span (rule `compose-interpolation`); `${VAR:?msg}` errors say "required variable VAR is missing a value: msg".
///
/// Keys stay as written because compose does not interpolate them either
/// (a service name must not depend on the environment); `x-*` values are
/// interpolated like any other value. Keeping `plain` lets `replicas: ${N}`
/// still read as a number afterwards. One exception: a plain scalar whose
/// result would read as null (`""`, `~`, `null`) becomes quoted, because
/// compose interpolates after typing, so `A: ${UNSET}` is the empty string
/// there, and a null in `environment` would mean something else. A scalar
/// with an error is left as it was. Besides errors, one warning (rule `compose-variable-unset`) is
/// returned per variable that was used without a value or default, where
/// compose would print "variable is not set"; use `diag::has_errors` to
/// decide whether loading failed.
pub fn interpolate_tree(
    node: &mut Node,
    vars: &BTreeMap<String, String>,
    file: &str,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut warned = BTreeSet::new();
    // An explicit stack: trees built by hand are not bounded by the YAML
    // depth limit. Children are pushed in reverse so diagnostics come out in
    // document order.
    let mut stack: Vec<&mut Node> = vec![node];
    while let Some(n) = stack.pop() {
        let span = n.span;
        match &mut n.value {
            Value::Scalar { text, plain } => {
                if !text.contains('$') {
                    continue;
                }
                let mut unset = Vec::new();
                match interpolate_collecting(text, vars, &mut unset) {
                    Ok(out) => {
                        if is_null_text(&out) {
                            *plain = false;
                        }
                        *text = out;
                        for name in unset {
                            if warned.insert(name.clone()) {
                                diags.push(
                                    Diagnostic::warning(
                                        RULE_UNSET,
                                        format!("variable {name} is not set; an empty string is used"),
                                    )
                                    .at(file, span)
                                    .help(format!(
                                        "define {name} in the .env file beside the compose file or in the App's spec.settings, or write ${{{name}:-default}}"
                                    )),
                                );
                            }
                        }
                    }
                    Err(e) => {
                        let help = if e.message.starts_with("required variable") {
                            "define the variable in the .env file beside the compose file or in the App's spec.settings"
                        } else {
                            "close every `${` with `}` and start it with a variable name ([A-Za-z_][A-Za-z0-9_]*); write `$$` for a literal `$`"
                        };
                        diags.push(Diagnostic::error(RULE, e.message).at(file, span).help(help));
                    }
                }
            }
            Value::Seq(items) => stack.extend(items.iter_mut().rev()),
            Value::Map(entries) => stack.extend(entries.iter_mut().rev().map(|(_, v)| v)),
        }
    }
    diags
}

/// [`interpolate_str`], also reporting the names of variables that were
/// substituted without a value (in order of use).
fn interpolate_collecting(
    input: &str,
    vars: &BTreeMap<String, String>,
    unset: &mut Vec<String>,
) -> Result<String, InterpolationError> {
    if !input.contains('$') {
        return Ok(input.to_string());
    }
    let mut parser = Parser {
        text: input,
        bytes: input.as_bytes(),
        pos: 0,
    };
    let parts = parser.parts(0, false)?;
    let mut out = String::with_capacity(input.len());
    eval(&parts, vars, &mut out, unset)?;
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `:-` default when unset or empty.
    DefaultIfEmpty,
    /// `-` default when unset.
    DefaultIfUnset,
    /// `:?` error when unset or empty.
    ErrorIfEmpty,
    /// `?` error when unset.
    ErrorIfUnset,
    /// `:+` alternative when set and not empty.
    AltIfNonEmpty,
    /// `+` alternative when set.
    AltIfSet,
}

#[derive(Debug)]
enum Part<'a> {
    Text(&'a str),
    Var {
        name: &'a str,
        /// Offset of the `$`.
        offset: usize,
        op: Option<(Op, Vec<Part<'a>>)>,
    },
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'a> Parser<'a> {
    /// Parses up to the end of the input, or, when `nested` (inside the
    /// argument of `${NAME<op>...}`), up to the `}` that closes it, which
    /// is left unconsumed. Inside an argument, bare `{`...`}` pairs are
    /// text, as compose counts braces to find the closing one.
    ///
    /// All syntax is ASCII, so every slice boundary below is a char
    /// boundary.
    fn parts(&mut self, depth: usize, nested: bool) -> Result<Vec<Part<'a>>, InterpolationError> {
        let mut parts = Vec::new();
        let mut text_start = self.pos;
        let mut open_braces = 0usize;
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b'$' => {
                    let dollar = self.pos;
                    match self.bytes.get(dollar + 1) {
                        Some(b'$') => {
                            // Keep the first `$` as text, drop the second.
                            push_text(&mut parts, &self.text[text_start..=dollar]);
                            self.pos = dollar + 2;
                            text_start = self.pos;
                        }
                        Some(&c) if is_name_start(c) => {
                            push_text(&mut parts, &self.text[text_start..dollar]);
                            let end = self.name_end(dollar + 1);
                            parts.push(Part::Var {
                                name: &self.text[dollar + 1..end],
                                offset: dollar,
                                op: None,
                            });
                            self.pos = end;
                            text_start = end;
                        }
                        Some(b'{') => {
                            push_text(&mut parts, &self.text[text_start..dollar]);
                            let part = self.braced(dollar, depth)?;
                            parts.push(part);
                            text_start = self.pos;
                        }
                        // `$` that starts nothing is literal, as in compose.
                        _ => self.pos += 1,
                    }
                }
                b'{' if nested => {
                    open_braces += 1;
                    self.pos += 1;
                }
                b'}' if nested => {
                    if open_braces == 0 {
                        break;
                    }
                    open_braces -= 1;
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
        push_text(&mut parts, &self.text[text_start..self.pos]);
        Ok(parts)
    }

    fn name_end(&self, start: usize) -> usize {
        let mut end = start;
        while self.bytes.get(end).is_some_and(|&b| is_name_char(b)) {
            end += 1;
        }
        end
    }

    /// `${...}` with its `$` at `dollar`.
    fn braced(&mut self, dollar: usize, depth: usize) -> Result<Part<'a>, InterpolationError> {
        if depth >= MAX_DEPTH {
            return Err(InterpolationError {
                message: format!("`${{...}}` is nested more than {MAX_DEPTH} levels deep"),
                offset: dollar,
            });
        }
        let name_start = dollar + 2;
        match self.bytes.get(name_start) {
            None => return Err(unterminated(dollar)),
            Some(&c) if is_name_start(c) => {}
            Some(_) => {
                return Err(InterpolationError {
                    message: "invalid interpolation: `${` must be followed by a variable name ([A-Za-z_][A-Za-z0-9_]*)"
                        .to_string(),
                    offset: name_start,
                });
            }
        }
        let name_end = self.name_end(name_start);
        let name = &self.text[name_start..name_end];
        let (op, op_len) = match (self.bytes.get(name_end), self.bytes.get(name_end + 1)) {
            (None, _) | (Some(b':'), None) => return Err(unterminated(dollar)),
            (Some(b'}'), _) => {
                self.pos = name_end + 1;
                return Ok(Part::Var {
                    name,
                    offset: dollar,
                    op: None,
                });
            }
            (Some(b':'), Some(b'-')) => (Op::DefaultIfEmpty, 2),
            (Some(b':'), Some(b'?')) => (Op::ErrorIfEmpty, 2),
            (Some(b':'), Some(b'+')) => (Op::AltIfNonEmpty, 2),
            (Some(b'-'), _) => (Op::DefaultIfUnset, 1),
            (Some(b'?'), _) => (Op::ErrorIfUnset, 1),
            (Some(b'+'), _) => (Op::AltIfSet, 1),
            (Some(_), _) => {
                return Err(InterpolationError {
                    message: format!(
                        "invalid interpolation: `${{{name}` must be followed by `}}` or one of `:-`, `-`, `:?`, `?`, `:+`, `+`"
                    ),
                    offset: name_end,
                });
            }
        };
        self.pos = name_end + op_len;
        let arg = self.parts(depth + 1, true)?;
        if self.bytes.get(self.pos) != Some(&b'}') {
            return Err(unterminated(dollar));
        }
        self.pos += 1;
        Ok(Part::Var {
            name,
            offset: dollar,
            op: Some((op, arg)),
        })
    }
}

/// Texts a plain scalar reads as null (see `Node::is_null`).
fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn push_text<'a>(parts: &mut Vec<Part<'a>>, text: &'a str) {
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
}

fn unterminated(dollar: usize) -> InterpolationError {
    InterpolationError {
        message: "unterminated `${`: missing the closing `}`".to_string(),
        offset: dollar,
    }
}

fn eval(
    parts: &[Part<'_>],
    vars: &BTreeMap<String, String>,
    out: &mut String,
    unset: &mut Vec<String>,
) -> Result<(), InterpolationError> {
    for part in parts {
        let (name, offset, op) = match part {
            Part::Text(text) => {
                out.push_str(text);
                continue;
            }
            Part::Var { name, offset, op } => (*name, *offset, op),
        };
        let value = vars.get(name).map(String::as_str);
        let non_empty = value.filter(|v| !v.is_empty());
        let Some((op, arg)) = op else {
            match value {
                Some(v) => out.push_str(v),
                None => unset.push(name.to_string()),
            }
            continue;
        };
        match op {
            Op::DefaultIfEmpty => match non_empty {
                Some(v) => out.push_str(v),
                None => eval(arg, vars, out, unset)?,
            },
            Op::DefaultIfUnset => match value {
                Some(v) => out.push_str(v),
                None => eval(arg, vars, out, unset)?,
            },
            Op::ErrorIfEmpty | Op::ErrorIfUnset => {
                let found = if *op == Op::ErrorIfEmpty {
                    non_empty
                } else {
                    value
                };
                match found {
                    Some(v) => out.push_str(v),
                    None => {
                        let mut reason = String::new();
                        eval(arg, vars, &mut reason, unset)?;
                        let message = if reason.is_empty() {
                            format!("required variable {name} is missing a value")
                        } else {
                            format!("required variable {name} is missing a value: {reason}")
                        };
                        return Err(InterpolationError { message, offset });
                    }
                }
            }
            Op::AltIfNonEmpty => {
                if non_empty.is_some() {
                    eval(arg, vars, out, unset)?;
                }
            }
            Op::AltIfSet => {
                if value.is_some() {
                    eval(arg, vars, out, unset)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;
    use crate::yaml::{Limits, parse_documents};
    use proptest::prelude::*;

    /// The variables compose-go's own template tests use.
    fn vars() -> BTreeMap<String, String> {
        [
            ("FOO", "first"),
            ("BAR", ""),
            ("JSON", r#"{"json":2}"#),
            ("lower", "low"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn ok(input: &str) -> String {
        interpolate_str(input, &vars()).unwrap()
    }

    fn err(input: &str) -> InterpolationError {
        interpolate_str(input, &vars()).unwrap_err()
    }

    #[test]
    fn plain_and_braced_variables() {
        assert_eq!(ok("$FOO"), "first");
        assert_eq!(ok("${FOO}"), "first");
        assert_eq!(ok("a ${FOO} b $FOO c"), "a first b first c");
        assert_eq!(ok("$FOO-bar"), "first-bar");
        assert_eq!(ok("${FOO}bar"), "firstbar");
        assert_eq!(ok("$FOObar"), "");
        assert_eq!(ok("$lower ${lower}"), "low low");
        assert_eq!(ok("${JSON}"), r#"{"json":2}"#);
        assert_eq!(ok("é${FOO}é"), "éfirsté");
    }

    #[test]
    fn unset_without_default_is_empty() {
        assert_eq!(ok("This ${missing} var"), "This  var");
        assert_eq!(ok("This ${BAR} var"), "This  var");
        assert_eq!(ok("$missing"), "");
    }

    #[test]
    fn dollar_dollar_is_literal_dollar() {
        assert_eq!(ok("$${foo}"), "${foo}");
        assert_eq!(ok("$$FOO"), "$FOO");
        assert_eq!(ok("a$$$$b"), "a$$b");
        assert_eq!(ok("$$$FOO"), "$first");
    }

    #[test]
    fn dollar_that_starts_nothing_is_literal() {
        for s in [
            "a $ string",
            "^REGEX$",
            "$}",
            "$",
            "$1",
            "cost: 5$",
            "$-x",
            "{}",
            "}{",
        ] {
            assert_eq!(ok(s), s);
        }
    }

    #[test]
    fn default_when_unset_or_empty() {
        assert_eq!(ok("${missing:-def}"), "def");
        assert_eq!(ok("${BAR:-def}"), "def");
        assert_eq!(ok("${FOO:-def}"), "first");
        assert_eq!(ok("${missing:-}"), "");
        assert_eq!(ok("${missing:-a b:c-d}"), "a b:c-d");
    }

    #[test]
    fn default_when_unset_only() {
        assert_eq!(ok("${missing-def}"), "def");
        assert_eq!(ok("${BAR-def}"), "");
        assert_eq!(ok("${FOO-def}"), "first");
    }

    #[test]
    fn alternative_when_set() {
        assert_eq!(ok("${FOO:+alt}"), "alt");
        assert_eq!(ok("${BAR:+alt}"), "");
        assert_eq!(ok("${missing:+alt}"), "");
        assert_eq!(ok("${FOO+alt}"), "alt");
        assert_eq!(ok("${BAR+alt}"), "alt");
        assert_eq!(ok("${missing+alt}"), "");
    }

    #[test]
    fn required_errors() {
        let cases = [
            (
                "not ok ${UNSET_VAR:?Mandatory Variable Unset}",
                "required variable UNSET_VAR is missing a value: Mandatory Variable Unset",
            ),
            (
                "not ok ${BAR:?Mandatory Variable Empty}",
                "required variable BAR is missing a value: Mandatory Variable Empty",
            ),
            (
                "not ok ${UNSET_VAR:?}",
                "required variable UNSET_VAR is missing a value",
            ),
            (
                "not ok ${UNSET_VAR?Mandatory Variable Unset}",
                "required variable UNSET_VAR is missing a value: Mandatory Variable Unset",
            ),
            (
                "not ok ${UNSET_VAR?}",
                "required variable UNSET_VAR is missing a value",
            ),
            (
                "not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}",
                "required variable UNSET_VAR is missing a value: Mandatory Variable first",
            ),
            (
                "not ok ${UNSET_VAR?Mandatory Variable ${FOO}}",
                "required variable UNSET_VAR is missing a value: Mandatory Variable first",
            ),
        ];
        for (input, message) in cases {
            let e = err(input);
            assert_eq!(e.message, message);
            assert_eq!(e.offset, 7, "{input}");
        }
        assert_eq!(ok("${FOO:?x}"), "first");
        assert_eq!(ok("${BAR?x}"), "");
    }

    #[test]
    fn nested_defaults() {
        let cases = [
            ("ok ${UNSET_VAR-$FOO}", "ok first"),
            ("ok ${UNSET_VAR-${FOO}}", "ok first"),
            ("ok ${UNSET_VAR-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR:-$FOO}", "ok first"),
            ("ok ${BAR:-${FOO}}", "ok first"),
            ("ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR+$FOO}", "ok first"),
            ("ok ${BAR+$FOO ${FOO:+second}}", "ok first second"),
            ("${a:-${b:-${c:-deep}}}", "deep"),
            ("${a:-$$}", "$"),
            ("${a:-$}", "$"),
            ("${a:-{x}}", "{x}"),
            ("${a:-{\"k\":{}}}", "{\"k\":{}}"),
            ("${a:-x}}", "x}"),
        ];
        for (input, expected) in cases {
            assert_eq!(ok(input), expected, "{input}");
        }
    }

    #[test]
    fn unused_default_is_not_evaluated() {
        assert_eq!(ok("${FOO:-${UNSET:?boom}}"), "first");
        assert!(err("${UNSET:-${UNSET:?boom}}").message.contains("boom"));
    }

    #[test]
    fn values_are_not_rescanned() {
        let mut v = vars();
        v.insert("X".into(), "${FOO} $$".into());
        assert_eq!(interpolate_str("$X", &v).unwrap(), "${FOO} $$");
    }

    #[test]
    fn unterminated_is_error_at_dollar() {
        for (input, offset) in [
            ("${", 0),
            ("a ${FOO", 2),
            ("${FOO:-x", 0),
            ("${FOO:", 0),
            ("x ${a:-${b}", 2),
            ("${a:-{}", 0),
        ] {
            let e = err(input);
            assert!(e.message.contains("unterminated"), "{input}: {}", e.message);
            assert_eq!(e.offset, offset, "{input}");
        }
    }

    #[test]
    fn invalid_names_are_errors() {
        for input in [
            "${}", "${ }", "${ foo}", "${foo }", "${foo!}", "${1A}", "${-x}", "${A:x}", "${A.B}",
            "a ${é}",
        ] {
            let e = err(input);
            assert!(
                e.message.contains("invalid interpolation"),
                "{input}: {}",
                e.message
            );
        }
        assert_eq!(err("ab${foo!}").offset, 7);
        assert_eq!(err("ab${ }").offset, 4);
    }

    #[test]
    fn too_deep_nesting_is_error_not_overflow() {
        let input = format!("{}x{}", "${a:-".repeat(10_000), "}".repeat(10_000));
        assert!(err(&input).message.contains("nested"));
        let ok_input = format!("{}x{}", "${a:-".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(ok(&ok_input), "x");
    }

    #[test]
    fn never_reads_process_environment() {
        // PATH is set in every test environment.
        assert_eq!(interpolate_str("${PATH}", &BTreeMap::new()).unwrap(), "");
    }

    fn tree(text: &str) -> Node {
        parse_documents(text, &Limits::default()).unwrap().remove(0)
    }

    #[test]
    fn tree_interpolates_values_not_keys_and_keeps_plain() {
        let mut node = tree(
            "services:\n  ${FOO}:\n    image: \"app:${FOO}\"\n    replicas: ${N}\n    command: [a, $FOO, '$$x']\nx-meta:\n  owner: ${FOO:-x}\n",
        );
        let mut v = vars();
        v.insert("N".into(), "3".into());
        let diags = interpolate_tree(&mut node, &v, "compose.yml");
        assert!(diags.is_empty(), "{diags:?}");
        let svc = node
            .get("services")
            .unwrap()
            .get("${FOO}")
            .expect("key kept as written");
        assert_eq!(svc.get("image").unwrap().as_str(), Some("app:first"));
        let replicas = svc.get("replicas").unwrap();
        assert_eq!(replicas.as_i64(), Some(3), "plain flag kept");
        let cmd: Vec<_> = svc
            .get("command")
            .unwrap()
            .as_seq()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(cmd, ["a", "first", "$x"]);
        assert_eq!(
            node.get("x-meta").unwrap().get("owner").unwrap().as_str(),
            Some("first")
        );
    }

    #[test]
    fn tree_collects_all_errors_with_file_and_span() {
        let mut node = tree("a: ok\nb: ${DB:?set DB in .env}\nc:\n  - ${oops\nd: ${FOO}\n");
        let diags = interpolate_tree(&mut node, &vars(), "compose.yml");
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert_eq!(diags[0].rule, "compose-interpolation");
        assert_eq!(
            diags[0].message,
            "required variable DB is missing a value: set DB in .env"
        );
        assert_eq!(diags[0].file.as_deref(), Some("compose.yml"));
        let s = diags[0].span.unwrap();
        assert_eq!((s.line, s.col), (2, 4));
        assert!(diags[0].help.is_some());
        assert_eq!(diags[1].span.unwrap().line, 4);
        assert!(diags[1].message.contains("unterminated"));
        assert!(diags.iter().all(Diagnostic::is_error));
        // The broken scalar is left as written, the good ones are replaced.
        assert_eq!(node.get("d").unwrap().as_str(), Some("first"));
        assert_eq!(
            node.get("b").unwrap().as_str(),
            Some("${DB:?set DB in .env}")
        );
    }

    #[test]
    fn tree_warns_once_per_unset_variable() {
        let mut node = tree("a: $NOPE\nb: ${NOPE}\nc: ${NOPE:-x}\nd: ${OTHER}\n");
        let diags = interpolate_tree(&mut node, &vars(), "compose.yml");
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert!(
            diags
                .iter()
                .all(|d| d.severity == Severity::Warning && d.rule == "compose-variable-unset")
        );
        assert!(diags[0].message.contains("NOPE"));
        assert_eq!(diags[0].span.unwrap().line, 1);
        assert!(diags[1].message.contains("OTHER"));
        assert!(!crate::diag::has_errors(&diags));
        // Empty, not null: compose interpolates after typing.
        assert_eq!(node.get("a").unwrap().as_str(), Some(""));
    }

    #[test]
    fn tree_result_that_reads_as_null_becomes_quoted() {
        let mut node = tree("a: ${EMPTY}\nb: ${TILDE}\nc: ${N}\nd: '${EMPTY}'\n");
        let v: BTreeMap<String, String> = [("EMPTY", ""), ("TILDE", "~"), ("N", "7")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(interpolate_tree(&mut node, &v, "f").is_empty());
        for key in ["a", "b", "d"] {
            let n = node.get(key).unwrap();
            assert!(!n.is_null(), "{key}");
            assert!(
                matches!(n.value, Value::Scalar { plain: false, .. }),
                "{key}"
            );
        }
        assert_eq!(node.get("b").unwrap().as_str(), Some("~"));
        assert!(matches!(
            node.get("c").unwrap().value,
            Value::Scalar { plain: true, .. }
        ));
    }

    #[test]
    fn tree_handles_hand_built_deep_nesting() {
        let mut node = Node::scalar("$FOO", Default::default());
        for _ in 0..100_000 {
            node = Node {
                value: Value::Seq(vec![node]),
                span: Default::default(),
                tag: None,
            };
        }
        assert!(interpolate_tree(&mut node, &vars(), "f").is_empty());
        let mut inner = &node;
        while let Some(items) = inner.as_seq() {
            inner = &items[0];
        }
        assert_eq!(inner.as_str(), Some("first"));
        // Dropping a deeply nested tree is recursive; leak it instead of
        // testing Drop here.
        std::mem::forget(node);
    }

    proptest! {
        #[test]
        fn never_panics(input in any::<String>()) {
            let _ = interpolate_str(&input, &vars());
        }

        #[test]
        fn never_panics_on_template_like_input(input in "[${}:?+\\-a-zA-Z_0-9 é]{0,80}") {
            match interpolate_str(&input, &vars()) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.offset <= input.len()),
            }
        }

        #[test]
        fn text_without_dollar_is_unchanged(input in "[^$]*") {
            prop_assert_eq!(interpolate_str(&input, &vars()).unwrap(), input);
        }

        #[test]
        fn escaped_dollars_round_trip(input in any::<String>()) {
            let escaped = input.replace('$', "$$");
            prop_assert_eq!(interpolate_str(&escaped, &vars()).unwrap(), input);
        }
    }
}
