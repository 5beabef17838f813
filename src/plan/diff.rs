//! Field-level differences of two normalised objects (pure): a unified diff
//! of their YAML, and the paths of the fields that changed.
//!
//! Deterministic: the inputs have sorted keys, YAML emission is stable and
//! the diff algorithm runs without a deadline, so the same pair always gives
//! the same bytes.

use serde_json::Value as Json;
use similar::{Algorithm, TextDiff};

use super::normalize::item_label;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// Unified diff `live` → `desired` of the normalised YAML, with headers
/// `--- live` / `+++ desired`; empty when equal.
pub fn unified(live: &Json, desired: &Json) -> String {
    let a = yaml(live);
    let b = yaml(desired);
    TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .diff_lines(&a, &b)
        .unified_diff()
        .context_radius(CONTEXT)
        .header("live", "desired")
        .to_string()
}

/// YAML of a value; an absent object renders as nothing.
fn yaml(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        v => crate::yaml::to_yaml_string(v),
    }
}

/// Paths of the leaves that differ, in key order, e.g.
/// `spec.template.spec.containers[web].image`. List items are labelled by
/// their identifying key (name, mountPath, …) when they have one, else by
/// position.
pub fn changed_paths(live: &Json, desired: &Json) -> Vec<String> {
    let mut out = Vec::new();
    walk(live, desired, String::new(), &mut out);
    out
}

fn walk(a: &Json, b: &Json, path: String, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Json::Object(am), Json::Object(bm)) => {
            let mut keys: Vec<&String> = am.keys().chain(bm.keys()).collect();
            keys.sort();
            keys.dedup();
            let null = Json::Null;
            for k in keys {
                let p = join_key(&path, k);
                walk(
                    am.get(k).unwrap_or(&null),
                    bm.get(k).unwrap_or(&null),
                    p,
                    out,
                );
            }
        }
        (Json::Array(aa), Json::Array(ba)) => {
            let labelled = aa.iter().chain(ba.iter()).all(|i| item_label(i).is_some());
            if labelled {
                let mut labels: Vec<String> = Vec::new();
                for i in aa.iter().chain(ba.iter()) {
                    let l = item_label(i).unwrap_or_default();
                    if !labels.contains(&l) {
                        labels.push(l);
                    }
                }
                let null = Json::Null;
                for l in labels {
                    let find = |v: &'_ [Json]| -> Option<usize> {
                        v.iter()
                            .position(|i| item_label(i).as_deref() == Some(l.as_str()))
                    };
                    let ai = find(aa).map_or(&null, |i| &aa[i]);
                    let bi = find(ba).map_or(&null, |i| &ba[i]);
                    walk(ai, bi, format!("{path}[{l}]"), out);
                }
            } else if aa.len() == ba.len() {
                for (i, (x, y)) in aa.iter().zip(ba.iter()).enumerate() {
                    walk(x, y, format!("{path}[{i}]"), out);
                }
            } else {
                out.push(path);
            }
        }
        _ => out.push(path),
    }
}

fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Json::String(key.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_name_list_items_by_their_key() {
        let a = json!({"spec": {"containers": [{"name": "web", "image": "a"}, {"name": "db", "image": "p"}]},
                       "metadata": {"labels": {"app.kubernetes.io/name": "x"}}});
        let b = json!({"spec": {"containers": [{"name": "web", "image": "b"}, {"name": "db", "image": "p"}]},
                       "metadata": {"labels": {"app.kubernetes.io/name": "y"}}});
        assert_eq!(
            changed_paths(&a, &b),
            vec![
                "metadata.labels[\"app.kubernetes.io/name\"]".to_string(),
                "spec.containers[web].image".to_string(),
            ]
        );
    }

    #[test]
    fn unlabelled_lists_use_positions() {
        let a = json!({"args": ["a", "b"]});
        let b = json!({"args": ["a", "c"]});
        assert_eq!(changed_paths(&a, &b), vec!["args[1]".to_string()]);
        assert_eq!(
            changed_paths(&a, &json!({"args": ["a"]})),
            vec!["args".to_string()]
        );
    }

    #[test]
    fn unified_diff_has_live_and_desired_headers() {
        let d = unified(&json!({"a": 1}), &json!({"a": 2}));
        assert!(d.starts_with("--- live\n+++ desired\n"), "{d}");
        assert!(d.contains("-a: 1\n") && d.contains("+a: 2\n"), "{d}");
        assert_eq!(unified(&json!({"a": 1}), &json!({"a": 1})), "");
    }
}
