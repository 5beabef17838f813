//! env_file parsing and merging (load stage, pure; reference §4.6).
//!
//! A service's `env_file` entries become one Kubernetes Secret, so the rules
//! here are the original Kompox rules, kept byte for byte where a user could
//! notice: a file that loaded there must give the same Secret here. The
//! format is chosen by extension (`.yml`/`.yaml`, `.json`, anything else is
//! dotenv). Dotenv is deliberately small and literal: no inline comments, no
//! `${VAR}` expansion, no multi-line values, so a value means exactly what
//! its line says.
//!
//! Values are secrets: no error message here ever contains a value, and for
//! dotenv not even a malformed name (a stray line of a pasted key can look
//! like `abc+def=`). Errors name the key when it is known to be a name, and
//! the span points at the offending character instead.
//!
//! YAML and JSON scalars are taken as written (`0x1F` stays `0x1F`, JSON
//! `1000000` stays `1000000`): an environment variable is a string, and the
//! original's re-formatting of numbers (`1e+06`) surprised nobody in a good
//! way. For the common forms (`22`, `1.5`, `true`) the result is the same.

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::yaml::{self, Node, Span, Value};

/// Rule for input the format cannot read at all.
const RULE_SYNTAX: &str = "envfile-syntax";
/// Rule for well-formed input whose content is not allowed in a Secret.
const RULE_INVALID: &str = "envfile-invalid";

/// Kubernetes rejects Secrets over 1 MiB; the original checks key+value
/// bytes against this round number, and so do we.
pub const MAX_TOTAL_BYTES: usize = 1_000_000;

const KEY_HELP: &str = "a variable name must match [A-Za-z_][A-Za-z0-9_]*: letters, digits and `_`, not starting with a digit";

/// Parses one env file; format chosen by extension (.yml/.yaml, .json, else dotenv).
///
/// Bytes rather than text, because a non-UTF-8 file must be reported with
/// its line instead of failing somewhere upstream without one.
pub fn parse_env_file(path: &str, bytes: &[u8]) -> Result<Vec<(String, String)>, Diagnostic> {
    let (body, base) = strip_bom(bytes);
    let text = std::str::from_utf8(body).map_err(|e| not_utf8(path, body, base, &e))?;
    match Format::of(path) {
        Format::Yaml => parse_yaml(path, text, base),
        Format::Json => parse_json(path, text, base),
        Format::Dotenv => parse_dotenv_body(path, text, base),
    }
}

/// Merges several files in order (later wins), then validates the merged data (keys, control chars, 1,000,000-byte total).
///
/// The result is sorted by key (a `BTreeMap`), so the Secret and its content
/// hash do not depend on file order beyond which value wins.
///
/// Validation runs on the merged result, not per file, because the limit
/// is on the Secret that is finally written, and a value overridden by a
/// later file never reaches it.
pub fn merge_env(
    files: Vec<Vec<(String, String)>>,
) -> Result<BTreeMap<String, String>, Diagnostic> {
    let mut merged = BTreeMap::new();
    for (key, value) in files.into_iter().flatten() {
        merged.insert(key, value);
    }
    let mut total: usize = 0;
    for (key, value) in &merged {
        if key_error_at(key).is_some() {
            return Err(Diagnostic::error(
                RULE_INVALID,
                format!("invalid variable name {key:?} in env_file data"),
            )
            .help(KEY_HELP));
        }
        if let Some(c) = value.chars().find(|&c| is_forbidden_control(c)) {
            return Err(Diagnostic::error(
                RULE_INVALID,
                format!(
                    "value of {key} contains the control character U+{:04X}, which a Secret used as environment must not hold",
                    u32::from(c)
                ),
            )
            .help("remove the character, or store the value encoded (for example base64) and decode it in the container"));
        }
        total = total.saturating_add(key.len()).saturating_add(value.len());
    }
    if total > MAX_TOTAL_BYTES {
        return Err(Diagnostic::error(
            RULE_INVALID,
            format!(
                "env_file data is {total} bytes (names plus values), over the limit of {MAX_TOTAL_BYTES} bytes"
            ),
        )
        .help("Kubernetes Secrets are limited to about 1 MB; move large values into a file mounted from a config or volume"));
    }
    Ok(merged)
}

/// Parses a `.env` for interpolation variables (same dotenv rules).
///
/// One format for both uses, so a line that works in an env_file also works
/// in `.env` and a user learns one set of rules.
pub fn parse_dotenv(path: &str, text: &str) -> Result<Vec<(String, String)>, Diagnostic> {
    let (body, base) = match text.strip_prefix('\u{feff}') {
        Some(rest) => (rest, 3),
        None => (text, 0),
    };
    parse_dotenv_body(path, body, base)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
    Dotenv,
}

impl Format {
    /// Like Go's `filepath.Ext` lowercased, as the original does: the text
    /// from the last `.` of the last path component (`.yml` itself is YAML).
    fn of(path: &str) -> Format {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let ext = name
            .rfind('.')
            .map(|i| name[i..].to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            ".yml" | ".yaml" => Format::Yaml,
            ".json" => Format::Json,
            _ => Format::Dotenv,
        }
    }
}

/// Editors on Windows write a UTF-8 byte order mark; it is not part of the
/// first variable's name. Returns the rest and how many bytes were skipped,
/// so spans still count bytes of the file as stored.
fn strip_bom(bytes: &[u8]) -> (&[u8], usize) {
    match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, 3),
        None => (bytes, 0),
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Span of `text[start..end]` (offsets into `text`, which begins `base`
/// bytes into the file). Line and column are counted in characters, as
/// editors count them.
fn span_in(text: &str, base: usize, start: usize, end: usize) -> Span {
    let mut start = start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    Span {
        line: to_u32(line),
        col: to_u32(col),
        start: to_u32(base.saturating_add(start)),
        end: to_u32(base.saturating_add(end.max(start))),
    }
}

fn shift(span: Span, base: usize) -> Span {
    let base = to_u32(base);
    Span {
        start: span.start.saturating_add(base),
        end: span.end.saturating_add(base),
        ..span
    }
}

fn not_utf8(path: &str, body: &[u8], base: usize, e: &std::str::Utf8Error) -> Diagnostic {
    let valid = e.valid_up_to();
    // The prefix up to `valid` is UTF-8 by definition of `valid_up_to`.
    let prefix = std::str::from_utf8(&body[..valid]).unwrap_or_default();
    let bad_len = e.error_len().unwrap_or(body.len() - valid);
    let span = span_in(prefix, base, valid, valid + bad_len);
    Diagnostic::error(
        RULE_SYNTAX,
        format!(
            "env file is not valid UTF-8 (invalid byte on line {})",
            span.line
        ),
    )
    .at(path, span)
    .help("save the file as UTF-8")
}

// ---------------------------------------------------------------- dotenv

/// Position of a dotenv line, to turn an offset within it into a [`Span`].
struct Line<'a> {
    path: &'a str,
    text: &'a str,
    number: usize,
    /// Offset of the line in the file.
    start: usize,
}

impl Line<'_> {
    /// Span of `len` bytes at byte `at` of the line.
    fn span(&self, at: usize, len: usize) -> Span {
        let at = at.min(self.text.len());
        let col = self.text.get(..at).map_or(at, |s| s.chars().count()) + 1;
        let start = self.start.saturating_add(at);
        Span {
            line: to_u32(self.number),
            col: to_u32(col),
            start: to_u32(start),
            end: to_u32(start.saturating_add(len)),
        }
    }

    fn error(
        &self,
        rule: &'static str,
        at: usize,
        len: usize,
        message: String,
        help: &str,
    ) -> Diagnostic {
        Diagnostic::error(rule, message)
            .at(self.path, self.span(at, len))
            .help(help)
    }
}

fn parse_dotenv_body(
    path: &str,
    text: &str,
    base: usize,
) -> Result<Vec<(String, String)>, Diagnostic> {
    let mut out = Vec::new();
    let mut next_start = 0usize;
    for (index, raw) in text.split('\n').enumerate() {
        let line_start = next_start;
        next_start = next_start.saturating_add(raw.len() + 1);
        // Go's line scanner drops the `\r` of CRLF files; so do we.
        let line_text = raw.strip_suffix('\r').unwrap_or(raw);
        let line = Line {
            path,
            text: line_text,
            number: index + 1,
            start: base.saturating_add(line_start),
        };
        if let Some(pair) = parse_dotenv_line(&line)? {
            out.push(pair);
        }
    }
    Ok(out)
}

fn parse_dotenv_line(line: &Line<'_>) -> Result<Option<(String, String)>, Diagnostic> {
    let content = line.text.trim_start();
    if content.is_empty() || content.starts_with('#') {
        return Ok(None);
    }
    let content_at = line.text.len() - content.len();
    let (stmt, stmt_at) = match content.strip_prefix("export ") {
        Some(rest) => (rest, content_at + "export ".len()),
        None => (content, content_at),
    };
    let Some(eq) = stmt.find('=') else {
        return Err(line.error(
            RULE_SYNTAX,
            content_at,
            content.len(),
            format!("line {} is not NAME=value: it has no `=`", line.number),
            "write NAME=value, a comment starting with `#`, or an empty line; a value cannot continue onto the next line (use \"\\n\" inside double quotes)",
        ));
    };
    let key_raw = &stmt[..eq];
    let key = key_raw.trim();
    let key_at = stmt_at + (key_raw.len() - key_raw.trim_start().len());
    if key.is_empty() {
        return Err(line.error(
            RULE_SYNTAX,
            stmt_at + eq,
            1,
            format!("line {} has no variable name before `=`", line.number),
            KEY_HELP,
        ));
    }
    if let Some(bad) = key_error_at(key) {
        let len = key[bad..].chars().next().map_or(1, char::len_utf8);
        return Err(line.error(
            RULE_SYNTAX,
            key_at + bad,
            len,
            format!(
                "invalid variable name on line {}: character at column {} is not allowed",
                line.number,
                line.span(key_at + bad, 0).col
            ),
            KEY_HELP,
        ));
    }
    let value = parse_dotenv_value(line, key, &stmt[eq + 1..], stmt_at + eq + 1)?;
    Ok(Some((key.to_string(), value)))
}

/// The value part of a line, `raw` starting at byte `at` of the line.
///
/// A value is quoted only when the quote follows `=` immediately, as in the
/// original: `A= "x"` is the unquoted value `"x"` (quotes included).
fn parse_dotenv_value(
    line: &Line<'_>,
    key: &str,
    raw: &str,
    at: usize,
) -> Result<String, Diagnostic> {
    if raw.starts_with('"') {
        if raw.len() < 2 || !raw.ends_with('"') {
            return Err(line.error(
                RULE_SYNTAX,
                at,
                1,
                format!("double-quoted value of {key} on line {} is not closed: the line must end with `\"`", line.number),
                "close the quote at the end of the line, with nothing after it (no comment, no spaces); a value cannot span lines, write \\n for a newline",
            ));
        }
        let body = &raw[1..raw.len() - 1];
        return unescape(line, key, body, at + 1);
    }
    if raw.starts_with('\'') {
        if raw.len() < 2 || !raw.ends_with('\'') {
            return Err(line.error(
                RULE_SYNTAX,
                at,
                1,
                format!("single-quoted value of {key} on line {} is not closed: the line must end with `'`", line.number),
                "close the quote at the end of the line, with nothing after it (no comment, no spaces)",
            ));
        }
        return Ok(raw[1..raw.len() - 1].to_string());
    }
    Ok(raw.strip_prefix(' ').unwrap_or(raw).to_string())
}

/// Double-quoted escapes: only `\\ \" \n \r \t`. Anything else is an error
/// rather than kept, so that `"C:\temp"` does not silently lose or keep a
/// backslash depending on which tool reads the file.
fn unescape(line: &Line<'_>, key: &str, body: &str, at: usize) -> Result<String, Diagnostic> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '\\')) => out.push('\\'),
            Some((_, '"')) => out.push('"'),
            Some((_, 'n')) => out.push('\n'),
            Some((_, 'r')) => out.push('\r'),
            Some((_, 't')) => out.push('\t'),
            Some((_, other)) => {
                return Err(line.error(
                    RULE_SYNTAX,
                    at + i,
                    1 + other.len_utf8(),
                    format!("unsupported escape sequence in the double-quoted value of {key} on line {}", line.number),
                    "only \\\\, \\\", \\n, \\r and \\t are allowed in double quotes; write \\\\ for a backslash, or use single quotes for a literal value",
                ));
            }
            None => {
                return Err(line.error(
                    RULE_SYNTAX,
                    at + i,
                    1,
                    format!("double-quoted value of {key} on line {} ends with a lone backslash, which escapes the closing quote", line.number),
                    "write \\\\ for a backslash at the end of the value",
                ));
            }
        }
    }
    Ok(out)
}

/// Byte index of the first character that makes `key` an invalid name
/// (`[A-Za-z_][A-Za-z0-9_]*`), or `None` when it is valid. An empty key is
/// invalid at 0.
fn key_error_at(key: &str) -> Option<usize> {
    let bytes = key.as_bytes();
    match bytes.first() {
        None => return Some(0),
        Some(b) if !(b.is_ascii_alphabetic() || *b == b'_') => return Some(0),
        Some(_) => {}
    }
    bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
}

/// Control characters a Secret used as environment must not hold; tab,
/// newline and carriage return are fine.
fn is_forbidden_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}')
}

// ---------------------------------------------------------------- YAML

fn parse_yaml(path: &str, text: &str, base: usize) -> Result<Vec<(String, String)>, Diagnostic> {
    let docs = yaml::parse_documents(text, &yaml::Limits::default()).map_err(|e| {
        Diagnostic::error(
            RULE_SYNTAX,
            format!("env file is not valid YAML: {}", e.message),
        )
        .at(path, shift(e.span, base))
        .help("write one YAML mapping of NAME: value")
    })?;
    if let Some(extra) = docs.get(1) {
        return Err(
            Diagnostic::error(RULE_SYNTAX, "env file holds more than one YAML document")
                .at(path, shift(extra.span, base))
                .help("put all variables into one mapping, without `---` separators"),
        );
    }
    let Some(root) = docs.first() else {
        return Ok(Vec::new());
    };
    if root.is_null() {
        // An empty file (or `~`) is an empty env file, as in the original.
        return Ok(Vec::new());
    }
    let Some(entries) = root.as_map() else {
        return Err(Diagnostic::error(
            RULE_INVALID,
            format!(
                "env file must be a mapping of NAME: value, found {}",
                root.kind_name()
            ),
        )
        .at(path, shift(root.span, base))
        .help("write one `NAME: value` line per variable"));
    };
    entries
        .iter()
        .map(|(k, v)| yaml_entry(path, base, k, v))
        .collect()
}

fn yaml_entry(path: &str, base: usize, k: &Node, v: &Node) -> Result<(String, String), Diagnostic> {
    let key = match (&k.value, k.is_null()) {
        (Value::Scalar { text, .. }, false) if key_error_at(text).is_none() => text.clone(),
        _ => {
            return Err(
                Diagnostic::error(RULE_INVALID, "invalid variable name in env file")
                    .at(path, shift(k.span, base))
                    .help(KEY_HELP),
            );
        }
    };
    match &v.value {
        Value::Scalar { text, .. } if !v.is_null() => Ok((key, text.clone())),
        _ => Err(value_kind_error(
            path,
            shift(v.span, base),
            &key,
            v.kind_name(),
        )),
    }
}

fn value_kind_error(path: &str, span: Span, key: &str, kind: &str) -> Diagnostic {
    Diagnostic::error(
        RULE_INVALID,
        format!("value of {key} is {kind}; env file values must be a string, number or boolean"),
    )
    .at(path, span)
    .help("write the value as a string (quote it); an empty value is \"\", not null")
}

// ---------------------------------------------------------------- JSON

/// JSON is checked by serde_json (so exactly JSON is accepted, nesting is
/// bounded and syntax errors have a position), then read by a small scanner
/// that keeps each value's span and its text as written.
fn parse_json(path: &str, text: &str, base: usize) -> Result<Vec<(String, String)>, Diagnostic> {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(json_syntax_error(path, text, base, &e));
    }
    let mut scan = JsonScan {
        path,
        text,
        base,
        bytes: text.as_bytes(),
        pos: 0,
    };
    scan.object()
}

fn json_syntax_error(path: &str, text: &str, base: usize, e: &serde_json::Error) -> Diagnostic {
    // serde_json counts lines from 1 and columns in bytes from 1 (0 before
    // the first byte of a line).
    let line_start = text
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum::<usize>();
    let at = line_start
        .saturating_add(e.column().saturating_sub(1))
        .min(text.len());
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    Diagnostic::error(
        RULE_SYNTAX,
        format!("env file is not valid JSON: {message}"),
    )
    .at(
        path,
        span_in(text, base, at, at.saturating_add(1).min(text.len())),
    )
    .help("write one JSON object of \"NAME\": value pairs")
}

struct JsonScan<'a> {
    path: &'a str,
    text: &'a str,
    base: usize,
    bytes: &'a [u8],
    pos: usize,
}

impl JsonScan<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        span_in(self.text, self.base, start, end)
    }

    /// Only reachable if serde_json and this scanner disagree; an error
    /// instead of a panic either way.
    fn unexpected(&self) -> Diagnostic {
        Diagnostic::error(
            RULE_SYNTAX,
            "env file is not a JSON object this reader understands",
        )
        .at(
            self.path,
            self.span(self.pos, self.pos.saturating_add(1).min(self.text.len())),
        )
        .help("write one JSON object of \"NAME\": value pairs")
    }

    fn object(&mut self) -> Result<Vec<(String, String)>, Diagnostic> {
        self.skip_ws();
        if self.text[self.pos..].starts_with("null") {
            // `null` decodes to an empty map in the original.
            return Ok(Vec::new());
        }
        if self.peek() != Some(b'{') {
            let end = self.scalar_or_string_end(self.pos);
            return Err(Diagnostic::error(
                RULE_INVALID,
                "env file must be a JSON object of \"NAME\": value pairs",
            )
            .at(self.path, self.span(self.pos, end))
            .help("wrap the variables in { }"));
        }
        self.pos += 1;
        let mut out = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            return Ok(out);
        }
        loop {
            self.skip_ws();
            let key_start = self.pos;
            let key_end = self
                .string_end(key_start)
                .ok_or_else(|| self.unexpected())?;
            let key: String = serde_json::from_str(&self.text[key_start..key_end])
                .map_err(|_| self.unexpected())?;
            if key_error_at(&key).is_some() {
                return Err(
                    Diagnostic::error(RULE_INVALID, "invalid variable name in env file")
                        .at(self.path, self.span(key_start, key_end))
                        .help(KEY_HELP),
                );
            }
            self.pos = key_end;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.unexpected());
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(&key)?;
            out.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => return Ok(out),
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn value(&mut self, key: &str) -> Result<String, Diagnostic> {
        let start = self.pos;
        let kind = match self.peek() {
            Some(b'"') => {
                let end = self.string_end(start).ok_or_else(|| self.unexpected())?;
                let value: String =
                    serde_json::from_str(&self.text[start..end]).map_err(|_| self.unexpected())?;
                self.pos = end;
                return Ok(value);
            }
            Some(b'n') => "null",
            Some(b'[') => "a list",
            Some(b'{') => "an object",
            Some(b't' | b'f' | b'-' | b'0'..=b'9') => {
                let end = self.scalar_or_string_end(start);
                self.pos = end;
                return Ok(self.text[start..end].to_string());
            }
            _ => return Err(self.unexpected()),
        };
        Err(value_kind_error(
            self.path,
            self.span(start, start + 1),
            key,
            kind,
        ))
    }

    /// End (exclusive) of the JSON string starting at `start` (a `"`).
    fn string_end(&self, start: usize) -> Option<usize> {
        if self.bytes.get(start) != Some(&b'"') {
            return None;
        }
        let mut i = start + 1;
        loop {
            match self.bytes.get(i)? {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
    }

    /// End of a number or literal (or of a string) starting at `start`.
    fn scalar_or_string_end(&self, start: usize) -> usize {
        if let Some(end) = self.string_end(start) {
            return end;
        }
        let mut i = start;
        while let Some(b) = self.bytes.get(i) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}' | b']' | b':') {
                break;
            }
            i += 1;
        }
        // Numbers and literals are ASCII, but stay on a char boundary for
        // anything else.
        while i < self.text.len() && !self.text.is_char_boundary(i) {
            i += 1;
        }
        i.max(start.min(self.text.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(path: &str, text: &str) -> Vec<(String, String)> {
        parse_env_file(path, text.as_bytes()).unwrap()
    }

    fn err(path: &str, text: &str) -> Diagnostic {
        parse_env_file(path, text.as_bytes()).unwrap_err()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn span_of(d: &Diagnostic) -> (u32, u32) {
        let s = d.span.expect("span");
        (s.line, s.col)
    }

    // ------------------------------------------------------------ dotenv

    #[test]
    fn dotenv_basic_pairs_in_order() {
        assert_eq!(env("a.env", "A=1\nB=2\n"), pairs(&[("A", "1"), ("B", "2")]));
    }

    #[test]
    fn dotenv_skips_empty_blank_and_comment_lines() {
        let text = "\n# comment\n   # indented comment\n \t \nA=1\n\n";
        assert_eq!(env(".env", text), pairs(&[("A", "1")]));
    }

    #[test]
    fn dotenv_strips_export_prefix() {
        assert_eq!(
            env(".env", "export A=1\n  export B=2"),
            pairs(&[("A", "1"), ("B", "2")])
        );
        // Without the space it is just part of a name.
        assert_eq!(env(".env", "exportA=1"), pairs(&[("exportA", "1")]));
    }

    #[test]
    fn dotenv_splits_at_first_equals() {
        assert_eq!(env(".env", "A=b=c=="), pairs(&[("A", "b=c==")]));
    }

    #[test]
    fn dotenv_key_is_trimmed() {
        assert_eq!(env(".env", "  A \t=x"), pairs(&[("A", "x")]));
    }

    #[test]
    fn dotenv_unquoted_drops_one_leading_space_and_keeps_rest_verbatim() {
        assert_eq!(env(".env", "A= x"), pairs(&[("A", "x")]));
        assert_eq!(env(".env", "A=  x "), pairs(&[("A", " x ")]));
        assert_eq!(
            env(".env", "A=x # not a comment"),
            pairs(&[("A", "x # not a comment")])
        );
        assert_eq!(env(".env", "A=${B} $C"), pairs(&[("A", "${B} $C")]));
        assert_eq!(env(".env", "A=\\n"), pairs(&[("A", "\\n")]));
        assert_eq!(env(".env", "A="), pairs(&[("A", "")]));
    }

    #[test]
    fn dotenv_quote_after_space_is_not_quoting() {
        // As in the original: the quote must follow `=` directly.
        assert_eq!(env(".env", "A= \"x\""), pairs(&[("A", "\"x\"")]));
    }

    #[test]
    fn dotenv_double_quoted_escapes() {
        let text = r#"A="a\\b\"c\nd\re\tf""#;
        assert_eq!(env(".env", text), pairs(&[("A", "a\\b\"c\nd\re\tf")]));
        assert_eq!(env(".env", "A=\"\""), pairs(&[("A", "")]));
        assert_eq!(env(".env", "A=\"# x $Y\""), pairs(&[("A", "# x $Y")]));
    }

    #[test]
    fn dotenv_double_quoted_unsupported_escape_is_error_at_backslash() {
        let d = err("x.env", "A=1\nB=\"C:\\data\"");
        assert_eq!(d.rule, "envfile-syntax");
        assert_eq!(d.file.as_deref(), Some("x.env"));
        assert_eq!(span_of(&d), (2, 6));
        let s = d.span.unwrap();
        assert_eq!(&"A=1\nB=\"C:\\data\""[s.range()], "\\d");
        assert!(d.message.contains("escape"), "{}", d.message);
        assert!(d.help.is_some());
    }

    #[test]
    fn dotenv_double_quoted_must_end_with_quote_on_same_line() {
        let d = err(".env", "A=\"abc");
        assert_eq!((d.rule, span_of(&d)), ("envfile-syntax", (1, 3)));
        let d = err(".env", "A=\"abc\" # comment");
        assert_eq!(span_of(&d), (1, 3));
        let d = err(".env", "A=\"");
        assert_eq!(span_of(&d), (1, 3));
        let d = err(".env", "A=\"line1\nline2\"");
        assert_eq!(span_of(&d), (1, 3));
    }

    #[test]
    fn dotenv_double_quoted_trailing_backslash_is_error() {
        let d = err(".env", "A=\"abc\\\"");
        assert_eq!(d.rule, "envfile-syntax");
        assert_eq!(span_of(&d), (1, 7));
    }

    #[test]
    fn dotenv_single_quoted_is_literal() {
        assert_eq!(
            env(".env", r"A='a\nb $C \q'"),
            pairs(&[("A", r"a\nb $C \q")])
        );
        assert_eq!(env(".env", "A=''"), pairs(&[("A", "")]));
        let d = err(".env", "A='abc");
        assert_eq!((d.rule, span_of(&d)), ("envfile-syntax", (1, 3)));
        let d = err(".env", "A='");
        assert_eq!(span_of(&d), (1, 3));
    }

    #[test]
    fn dotenv_line_without_equals_is_error() {
        let d = err("a.env", "A=1\n\n  secretvalue\n");
        assert_eq!(d.rule, "envfile-syntax");
        assert_eq!(span_of(&d), (3, 3));
        assert!(!d.message.contains("secretvalue"));
        assert!(d.help.is_some());
    }

    #[test]
    fn dotenv_invalid_key_points_at_offending_char() {
        let d = err(".env", "GOOD=1\nBAD-KEY=1");
        assert_eq!((d.rule, span_of(&d)), ("envfile-syntax", (2, 4)));
        let d = err(".env", "1A=1");
        assert_eq!(span_of(&d), (1, 1));
        let d = err(".env", "  export  A B=1");
        assert_eq!(span_of(&d), (1, 12));
        let d = err(".env", "=1");
        assert_eq!(span_of(&d), (1, 1));
        let d = err(".env", "ÄB=1");
        assert_eq!(span_of(&d), (1, 1));
    }

    #[test]
    fn dotenv_error_never_contains_value_or_malformed_name() {
        for text in [
            "A=\"s3cr3t\\x\"",
            "A=\"s3cr3t",
            "A='s3cr3t",
            "s3cr3t",
            "s3cr3t+x=",
            "A=\"s3cr3t\\",
        ] {
            let d = err(".env", text);
            assert!(!d.to_string().contains("s3cr3t"), "{text}: {d}");
        }
    }

    #[test]
    fn dotenv_crlf_and_bom() {
        assert_eq!(
            env(".env", "\u{feff}A=1\r\nB=\"x\"\r\n"),
            pairs(&[("A", "1"), ("B", "x")])
        );
        // The span counts the BOM's bytes but not as a column.
        let d = err(".env", "\u{feff}1A=x");
        let s = d.span.unwrap();
        assert_eq!((s.line, s.col, s.start), (1, 1, 3));
    }

    #[test]
    fn dotenv_duplicate_keys_are_all_returned() {
        assert_eq!(env(".env", "A=1\nA=2"), pairs(&[("A", "1"), ("A", "2")]));
    }

    #[test]
    fn dotenv_byte_offsets_point_into_file() {
        let text = "A=1\nB=\"\\q\"";
        let d = err(".env", text);
        let s = d.span.unwrap();
        assert_eq!(&text[s.range()], "\\q");
    }

    #[test]
    fn dotenv_columns_count_characters() {
        let d = err(".env", "A=é\nB=\"é\\z\"");
        assert_eq!(span_of(&d), (2, 5));
    }

    #[test]
    fn parse_dotenv_same_rules() {
        assert_eq!(
            parse_dotenv(".env", "# c\nexport A= x\nB='y'\n").unwrap(),
            pairs(&[("A", "x"), ("B", "y")])
        );
        let d = parse_dotenv(".env", "A\n").unwrap_err();
        assert_eq!((d.rule, span_of(&d)), ("envfile-syntax", (1, 1)));
        assert_eq!(d.file.as_deref(), Some(".env"));
    }

    #[test]
    fn non_utf8_is_error_with_line() {
        let d = parse_env_file("a.env", b"A=1\nB=\xff\n").unwrap_err();
        assert_eq!(d.rule, "envfile-syntax");
        let s = d.span.unwrap();
        assert_eq!((s.line, s.col, s.start, s.end), (2, 3, 6, 7));
        assert!(d.message.contains("line 2"));
        let d = parse_env_file("a.json", b"{\"A\":\n\"\xc3\"}").unwrap_err();
        assert_eq!(d.span.unwrap().line, 2);
    }

    // ------------------------------------------------------------ format choice

    #[test]
    fn format_by_extension() {
        assert_eq!(Format::of("dir/a.yml"), Format::Yaml);
        assert_eq!(Format::of("a.YAML"), Format::Yaml);
        assert_eq!(Format::of("x/.yml"), Format::Yaml);
        assert_eq!(Format::of("a.Json"), Format::Json);
        assert_eq!(Format::of(".env"), Format::Dotenv);
        assert_eq!(Format::of("a.env"), Format::Dotenv);
        assert_eq!(Format::of("yml"), Format::Dotenv);
        assert_eq!(Format::of("a.yml/env"), Format::Dotenv);
        assert_eq!(Format::of("a.json.bak"), Format::Dotenv);
    }

    // ------------------------------------------------------------ YAML

    #[test]
    fn yaml_scalars_are_stringified_as_written() {
        let text = "A: x\nB: 22\nC: true\nD: 1.5\nE: \"q\"\nF: ''\nG: 0x1F\n";
        assert_eq!(
            env("e.yml", text),
            pairs(&[
                ("A", "x"),
                ("B", "22"),
                ("C", "true"),
                ("D", "1.5"),
                ("E", "q"),
                ("F", ""),
                ("G", "0x1F")
            ])
        );
    }

    #[test]
    fn yaml_empty_or_null_document_is_empty() {
        assert!(env("e.yaml", "").is_empty());
        assert!(env("e.yaml", "# only a comment\n").is_empty());
        assert!(env("e.yaml", "~\n").is_empty());
        assert!(env("e.yaml", "{}").is_empty());
    }

    #[test]
    fn yaml_null_list_and_mapping_values_are_errors_at_value() {
        for (text, kind) in [
            ("A: 1\nB:\n", "null"),
            ("A: 1\nB: [1]\n", "a list"),
            ("A: 1\nB: {c: 1}\n", "a mapping"),
        ] {
            let d = err("e.yml", text);
            assert_eq!(d.rule, "envfile-invalid", "{text}");
            assert_eq!(d.span.unwrap().line, 2, "{text}");
            assert!(d.message.contains("value of B"), "{}", d.message);
            assert!(d.message.contains(kind), "{}", d.message);
        }
    }

    #[test]
    fn yaml_top_level_must_be_mapping() {
        let d = err("e.yml", "- A\n");
        assert_eq!((d.rule, span_of(&d)), ("envfile-invalid", (1, 1)));
        let d = err("e.yml", "just text\n");
        assert_eq!(d.rule, "envfile-invalid");
    }

    #[test]
    fn yaml_invalid_key_is_error_at_key() {
        let d = err("e.yml", "A: 1\nB-C: 2\n");
        assert_eq!((d.rule, span_of(&d)), ("envfile-invalid", (2, 1)));
        let d = err("e.yml", "A: 1\n1: 2\n");
        assert_eq!((d.rule, span_of(&d)), ("envfile-invalid", (2, 1)));
        let d = err("e.yml", "~: 2\n");
        assert_eq!(d.rule, "envfile-invalid");
        // Complex keys are refused by the YAML reader itself.
        assert!(parse_env_file("e.yml", b"? [x]\n: 2\n").is_err());
    }

    #[test]
    fn yaml_syntax_error_and_duplicates_and_multiple_documents() {
        let d = err("e.yml", "A: [1\n");
        assert_eq!(d.rule, "envfile-syntax");
        assert!(d.span.is_some());
        let d = err("e.yml", "A: 1\nA: 2\n");
        assert_eq!((d.rule, d.span.unwrap().line), ("envfile-syntax", 2));
        let d = err("e.yml", "A: 1\n---\nB: 2\n");
        assert_eq!(d.rule, "envfile-syntax");
    }

    #[test]
    fn yaml_spans_account_for_bom() {
        let d = err("e.yml", "\u{feff}A: 1\nB: [x]\n");
        let s = d.span.unwrap();
        assert_eq!(s.line, 2);
        assert_eq!(&"\u{feff}A: 1\nB: [x]\n"[s.range()][..1], "[");
    }

    // ------------------------------------------------------------ JSON

    #[test]
    fn json_scalars_are_stringified_as_written() {
        let text =
            r#"{"B": 22, "C": true, "D": false, "E": "x\n\u00e9", "F": -1.5e3, "G": 1000000}"#;
        assert_eq!(
            env("b.json", text),
            pairs(&[
                ("B", "22"),
                ("C", "true"),
                ("D", "false"),
                ("E", "x\né"),
                ("F", "-1.5e3"),
                ("G", "1000000")
            ])
        );
        assert!(env("b.json", " {} ").is_empty());
        assert!(env("b.json", "null").is_empty());
    }

    #[test]
    fn json_null_array_object_values_are_errors_at_value() {
        let text = "{\"A\": \"ok\",\n  \"B\": null}";
        let d = err("b.json", text);
        assert_eq!((d.rule, span_of(&d)), ("envfile-invalid", (2, 8)));
        assert!(d.message.contains("null"));
        let d = err("b.json", r#"{"A": [1]}"#);
        assert!(d.message.contains("a list"));
        let d = err("b.json", r#"{"A": {"x": 1}}"#);
        assert!(d.message.contains("an object"));
    }

    #[test]
    fn json_top_level_must_be_object() {
        let d = err("b.json", "\n [1, 2]");
        assert_eq!((d.rule, span_of(&d)), ("envfile-invalid", (2, 2)));
        let d = err("b.json", "\"text\"");
        assert_eq!(d.rule, "envfile-invalid");
    }

    #[test]
    fn json_syntax_errors_have_position_and_no_value() {
        let d = err("b.json", "{\"A\": \"s3cr3t\",\n \"B\" 1}");
        assert_eq!(d.rule, "envfile-syntax");
        assert_eq!(d.span.unwrap().line, 2);
        assert!(!d.to_string().contains("s3cr3t"));
        assert!(!d.message.contains("at line"));
        let d = err("b.json", "");
        assert_eq!(d.rule, "envfile-syntax");
        let d = err("b.json", "{\"A\": 1} x");
        assert_eq!(d.rule, "envfile-syntax");
        // Deep nesting is no stack overflow, just a value of the wrong kind.
        let deep = format!("{{\"A\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(err("b.json", &deep).rule, "envfile-invalid");
    }

    #[test]
    fn json_invalid_key_is_error_at_key() {
        let d = err("b.json", "{\"A\": 1,\n \"B C\": 2}");
        assert_eq!((d.rule, span_of(&d)), ("envfile-invalid", (2, 2)));
    }

    #[test]
    fn json_duplicate_keys_later_wins_after_merge() {
        let parsed = env("b.json", r#"{"A": "1", "A": "2"}"#);
        assert_eq!(merge_env(vec![parsed]).unwrap()["A"], "2");
    }

    // ------------------------------------------------------------ merge

    #[test]
    fn merge_later_file_wins() {
        let merged = merge_env(vec![
            env("a.env", "A=1\nB=2\n"),
            env("b.json", r#"{"B":22,"C":true}"#),
        ])
        .unwrap();
        let expect: BTreeMap<String, String> = pairs(&[("A", "1"), ("B", "22"), ("C", "true")])
            .into_iter()
            .collect();
        assert_eq!(merged, expect);
        assert!(merge_env(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn merge_rejects_control_characters_without_showing_value() {
        for c in [
            '\0', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{e}', '\u{1f}', '\u{7f}',
        ] {
            let d = merge_env(vec![pairs(&[("K", &format!("s3cr3t{c}"))])]).unwrap_err();
            assert_eq!(d.rule, "envfile-invalid");
            assert!(d.message.contains("K"));
            assert!(!d.to_string().contains("s3cr3t"));
        }
        for ok in ["\t", "\n", "\r", "é", " "] {
            assert!(merge_env(vec![pairs(&[("K", ok)])]).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn merge_control_character_overridden_by_later_file_is_fine() {
        assert!(merge_env(vec![pairs(&[("K", "\u{1}")]), pairs(&[("K", "ok")])]).is_ok());
    }

    #[test]
    fn merge_rejects_invalid_keys() {
        let d = merge_env(vec![pairs(&[("A-B", "x")])]).unwrap_err();
        assert_eq!(d.rule, "envfile-invalid");
        assert!(merge_env(vec![pairs(&[("", "x")])]).is_err());
    }

    #[test]
    fn merge_total_size_limit() {
        let value = "x".repeat(MAX_TOTAL_BYTES - 1);
        assert!(merge_env(vec![pairs(&[("A", &value)])]).is_ok());
        let value = "x".repeat(MAX_TOTAL_BYTES);
        let d = merge_env(vec![pairs(&[("A", &value)])]).unwrap_err();
        assert_eq!(d.rule, "envfile-invalid");
        assert!(d.message.contains("1000001"));
        // Counted after merging: an overridden big value does not count.
        assert!(merge_env(vec![pairs(&[("A", &value)]), pairs(&[("A", "small")])]).is_ok());
    }

    // ------------------------------------------------------------ properties

    proptest! {
        #[test]
        fn parse_env_file_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), ext in 0usize..4) {
            let path = ["a.env", "a.yml", "a.json", ".env"][ext];
            let _ = parse_env_file(path, &bytes);
        }

        #[test]
        fn parse_env_file_never_panics_on_envlike_text(text in "[A-Za-z_ =\"'\\\\#\\n\\r\t{}:,\\[\\]0-9é-]{0,200}", ext in 0usize..3) {
            let path = ["a.env", "a.yml", "a.json"][ext];
            if let Err(d) = parse_env_file(path, text.as_bytes()) {
                let s = d.span.expect("parse errors carry a span");
                prop_assert!(s.line >= 1 && s.col >= 1);
                prop_assert!(s.start as usize <= text.len() && s.end as usize <= text.len() + 1);
            }
        }

        #[test]
        fn dotenv_round_trips_single_quoted(key in "[A-Za-z_][A-Za-z0-9_]{0,8}", value in "[^'\\n\\r]{0,40}") {
            let text = format!("{key}='{value}'\n");
            prop_assert_eq!(parse_dotenv(".env", &text).unwrap(), vec![(key, value)]);
        }
    }
}
