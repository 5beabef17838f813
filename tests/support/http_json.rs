//! The answer of a test harness's REST call as JSON, or an error that
//! names the request and carries the server's answer.

use serde_json::Value;

/// `Null` for an empty body; an error for a failed request, a non-2xx
/// status or a body that is not JSON.
pub fn json_response(
    method: &str,
    path: &str,
    r: reqwest::Result<reqwest::blocking::Response>,
) -> Result<Value, String> {
    let r = r.map_err(|e| format!("{method} {path}: {e}"))?;
    let status = r.status();
    let text = r
        .text()
        .map_err(|e| format!("{method} {path}: reading body: {e}"))?;
    if !status.is_success() {
        return Err(format!("{method} {path}: HTTP {status}: {text}"));
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("{method} {path}: bad JSON ({e}): {text}"))
}
