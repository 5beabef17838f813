//! Normalising a desired and a live object into comparable values (pure).
//!
//! The API server adds a great deal to what we send: defaults
//! (`revisionHistoryLimit`, `terminationMessagePath`, `dnsPolicy`…),
//! bookkeeping (`uid`, `resourceVersion`, `managedFields`, `status`) and
//! annotations of other tools. Comparing raw bodies would show all of it
//! as drift, so the live object is *projected* onto what we declare: map
//! keys we set, plus keys the `kompoxops` field manager owns according to
//! `metadata.managedFields` (so a field we used to set and removed shows as
//! removed); list items matched by their natural key. Secret values are
//! replaced by a short hash before anything else sees them.

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::convert::Object;
use crate::live::{LiveObject, api_group};

/// The field manager Kompox applies with (DECISIONS 2).
pub const FIELD_MANAGER: &str = "kompoxops";

/// Metadata the server sets; never compared.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Annotations kubectl and controllers add; never compared (the first one
/// also carries Secret values in clear text).
const SERVER_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
];

/// Keys that identify list items, in the order they are tried: volume
/// mounts by path (one volume may be mounted twice), then names, ports,
/// host aliases and key/path items.
const ITEM_KEYS: &[&str] = &["mountPath", "name", "containerPort", "ip", "key"];

/// What the live object says about who owns its fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Ownership {
    /// `kompoxops` has applied this object; the merged `fieldsV1` tree.
    Owned(Json),
    /// The object has managed fields but none from `kompoxops`: applying
    /// adopts it.
    Adoption,
    /// No `managedFields` in the input (e.g. `kubectl get` without
    /// `--show-managed-fields`): removed fields cannot be detected.
    Unknown,
}

/// A desired/live pair, normalised.
#[derive(Debug, Clone)]
pub struct Normalised {
    pub desired: Json,
    pub live: Json,
    pub ownership: Ownership,
}

/// The desired body as compared and shown.
pub fn desired(o: &Object) -> Json {
    let mut body = o.body.clone();
    strip_server_fields(&mut body);
    if is_secret(&o.api_version, &o.kind) {
        redact_secret(&mut body);
    }
    clean(body).unwrap_or(Json::Object(Map::new()))
}

/// A desired object and its live counterpart, both normalised: the live
/// body is projected onto the desired one (see the module header).
pub fn pair(d: &Object, l: &LiveObject) -> Normalised {
    let desired = desired(d);
    let mut body = l.body();
    let ownership = ownership(&body);
    strip_server_fields(&mut body);
    if is_secret(&l.api_version, &l.kind) {
        redact_secret(&mut body);
    }
    let owned = match &ownership {
        Ownership::Owned(tree) => Some(tree),
        _ => None,
    };
    let projected = project(&desired, &body, owned, "", "");
    let live = clean(projected).unwrap_or(Json::Object(Map::new()));
    Normalised {
        desired,
        live,
        ownership,
    }
}

pub fn is_secret(api_version: &str, kind: &str) -> bool {
    kind == "Secret" && api_group(api_version).is_empty()
}

/// Merges the `fieldsV1` trees of every `kompoxops` entry of the object
/// (status subresource entries excluded).
pub fn ownership(body: &Json) -> Ownership {
    let Some(entries) = body
        .pointer("/metadata/managedFields")
        .and_then(Json::as_array)
    else {
        return Ownership::Unknown;
    };
    let mut tree: Option<Json> = None;
    for e in entries {
        if e.get("manager").and_then(Json::as_str) != Some(FIELD_MANAGER) {
            continue;
        }
        if e.get("subresource")
            .and_then(Json::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            continue;
        }
        let fields = e
            .get("fieldsV1")
            .cloned()
            .unwrap_or(Json::Object(Map::new()));
        tree = Some(match tree {
            None => fields,
            Some(t) => merge(t, fields),
        });
    }
    match tree {
        Some(t) => Ownership::Owned(t),
        None => Ownership::Adoption,
    }
}

fn merge(a: Json, b: Json) -> Json {
    match (a, b) {
        (Json::Object(mut am), Json::Object(bm)) => {
            for (k, bv) in bm {
                let merged = match am.remove(&k) {
                    Some(av) => merge(av, bv),
                    None => bv,
                };
                am.insert(k, merged);
            }
            Json::Object(am)
        }
        (a, _) => a,
    }
}

fn strip_server_fields(body: &mut Json) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    obj.remove("status");
    let Some(meta) = obj.get_mut("metadata").and_then(Json::as_object_mut) else {
        return;
    };
    for k in SERVER_METADATA {
        meta.remove(*k);
    }
    if let Some(ann) = meta.get_mut("annotations").and_then(Json::as_object_mut) {
        for k in SERVER_ANNOTATIONS {
            ann.remove(*k);
        }
    }
}

/// `(sensitive: sha256 1a2b3c4d)`: the first 8 hex digits of the SHA-256
/// of the value's bytes. Enough to see that a value changed, useless to
/// recover it.
pub fn sensitive(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("(sensitive: sha256 {hex})")
}

/// Replaces every `data` (base64, hashed decoded) and `stringData` value.
fn redact_secret(body: &mut Json) {
    use base64::Engine as _;
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    for (field, base64) in [("data", true), ("stringData", false)] {
        let Some(map) = obj.get_mut(field).and_then(Json::as_object_mut) else {
            continue;
        };
        for v in map.values_mut() {
            let bytes = match &*v {
                Json::String(s) if base64 => base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .unwrap_or_else(|_| s.as_bytes().to_vec()),
                Json::String(s) => s.as_bytes().to_vec(),
                other => other.to_string().into_bytes(),
            };
            *v = Json::String(sensitive(&bytes));
        }
    }
}

/// Removes nulls and empty maps/lists (the server drops them too), and
/// rebuilds maps so keys are sorted whatever serde_json's map order is.
pub fn clean(v: Json) -> Option<Json> {
    match v {
        Json::Null => None,
        Json::Object(m) => {
            let mut entries: Vec<(String, Json)> = m
                .into_iter()
                .filter_map(|(k, v)| Some((k, clean(v)?)))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            if entries.is_empty() {
                return None;
            }
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, v);
            }
            Some(Json::Object(out))
        }
        Json::Array(items) => {
            let items: Vec<Json> = items
                .into_iter()
                .map(|i| clean(i).unwrap_or(Json::Object(Map::new())))
                .collect();
            (!items.is_empty()).then_some(Json::Array(items))
        }
        other => Some(other),
    }
}

/// `f:<key>` of a fieldsV1 node.
fn owned_field<'a>(owned: Option<&'a Json>, key: &str) -> Option<&'a Json> {
    owned?.as_object()?.get(&format!("f:{key}"))
}

/// The fieldsV1 node of a list item: `k:{...}` (associative lists),
/// `v:<value>` (sets), `i:<index>`; a list node with no item entries is
/// atomic and owned as a whole.
fn owned_item<'a>(owned: Option<&'a Json>, item: &Json, index: usize) -> Option<&'a Json> {
    let node = owned?;
    let map = node.as_object()?;
    let item_entries = map
        .keys()
        .any(|k| k.starts_with("k:") || k.starts_with("v:") || k.starts_with("i:"));
    if !item_entries {
        return Some(node);
    }
    for (k, child) in map {
        if let Some(key) = k.strip_prefix("k:") {
            let Ok(Json::Object(fields)) = serde_json::from_str::<Json>(key) else {
                continue;
            };
            if fields.iter().all(|(f, v)| item.get(f) == Some(v)) {
                return Some(child);
            }
        } else if let Some(v) = k.strip_prefix("v:") {
            if serde_json::from_str::<Json>(v).ok().as_ref() == Some(item) {
                return Some(child);
            }
        } else if let Some(i) = k.strip_prefix("i:")
            && i.parse::<usize>().ok() == Some(index)
        {
            return Some(child);
        }
    }
    None
}

/// Keeps of `l` what `d` declares, plus what `owned` says we own.
fn project(d: &Json, l: &Json, owned: Option<&Json>, key: &str, parent: &str) -> Json {
    match (d, l) {
        (Json::Object(dm), Json::Object(lm)) => {
            let mut out = Map::new();
            for (k, lv) in lm {
                let own = owned_field(owned, k);
                if let Some(dv) = dm.get(k) {
                    out.insert(k.clone(), project(dv, lv, own, k, key));
                } else if let Some(own) = own {
                    out.insert(k.clone(), project_owned(lv, own));
                }
            }
            // The server omits zero values of `omitempty` fields (an env
            // var's `value: ""`, `readOnly: false`): absent equals zero.
            for (k, dv) in dm {
                if !lm.contains_key(k) && is_zero(dv) {
                    out.insert(k.clone(), dv.clone());
                }
            }
            Json::Object(out)
        }
        (Json::Array(da), Json::Array(la)) => {
            let mut used = vec![false; la.len()];
            let mut out = Vec::new();
            for (i, di) in da.iter().enumerate() {
                if let Some(j) = match_item(di, i, la, &used) {
                    used[j] = true;
                    out.push(project(
                        di,
                        &la[j],
                        owned_item(owned, &la[j], j),
                        key,
                        parent,
                    ));
                }
            }
            for (j, li) in la.iter().enumerate() {
                if !used[j]
                    && let Some(own) = owned_item(owned, li, j)
                {
                    out.push(project_owned(li, own));
                }
            }
            Json::Array(out)
        }
        (Json::String(ds), Json::String(ls))
            if ds != ls && is_quantity_field(key, parent) && quantity_eq(ds, ls) =>
        {
            d.clone()
        }
        _ => l.clone(),
    }
}

fn is_zero(v: &Json) -> bool {
    match v {
        Json::String(s) => s.is_empty(),
        Json::Bool(b) => !b,
        Json::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// The parts of `l` that `owned` marks as ours (`{}` = all of it).
fn project_owned(l: &Json, owned: &Json) -> Json {
    let is_leaf = owned.as_object().is_none_or(|m| m.keys().all(|k| k == "."));
    if is_leaf {
        return l.clone();
    }
    match l {
        Json::Object(lm) => {
            let mut out = Map::new();
            for (k, lv) in lm {
                if let Some(own) = owned_field(Some(owned), k) {
                    out.insert(k.clone(), project_owned(lv, own));
                }
            }
            Json::Object(out)
        }
        Json::Array(la) => Json::Array(
            la.iter()
                .enumerate()
                .filter_map(|(j, li)| Some(project_owned(li, owned_item(Some(owned), li, j)?)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The live item a desired item stands for: by the first identifying key
/// the desired item has, else by position.
fn match_item(d: &Json, index: usize, live: &[Json], used: &[bool]) -> Option<usize> {
    if let Some(obj) = d.as_object()
        && let Some(k) = ITEM_KEYS.iter().find(|k| obj.contains_key(**k))
    {
        let want = &obj[*k];
        return live
            .iter()
            .enumerate()
            .find(|(j, l)| !used[*j] && l.get(*k) == Some(want))
            .map(|(j, _)| j);
    }
    (index < live.len() && !used[index]).then_some(index)
}

/// The label of a list item in a field path: its identifying key's value.
pub fn item_label(item: &Json) -> Option<String> {
    let obj = item.as_object()?;
    ITEM_KEYS.iter().find_map(|k| match obj.get(*k)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Where a string is a resource quantity the server rewrites into its
/// canonical form (`32768Mi` is stored as `32Gi`, `0.5` as `500m`).
fn is_quantity_field(key: &str, parent: &str) -> bool {
    matches!(parent, "requests" | "limits" | "capacity" | "hard") || key == "sizeLimit"
}

fn quantity_eq(a: &str, b: &str) -> bool {
    match (parse_quantity(a), parse_quantity(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A Kubernetes quantity as an exact fraction `num / den` (reduced), or
/// `None` when it is not one. Big enough for every suffix up to `Ei`.
pub fn parse_quantity(s: &str) -> Option<(i128, i128)> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (mut num, mut den) = parse_decimal(number)?;
    let (mul, div): (i128, i128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            if exp.unsigned_abs() > 18 {
                return None;
            }
            let p = 10i128.pow(exp.unsigned_abs());
            if exp >= 0 { (p, 1) } else { (1, p) }
        }
        _ => return None,
    };
    num = num.checked_mul(mul)?;
    den = den.checked_mul(div)?;
    let g = gcd(num.abs(), den);
    Some((num / g.max(1), den / g.max(1)))
}

fn parse_decimal(s: &str) -> Option<(i128, i128)> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if int.len() + frac.len() > 30 {
        return None;
    }
    let digits = format!("{int}{frac}");
    let num: i128 = digits.parse().ok()?;
    let den = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    Some((if neg { -num } else { num }, den))
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quantities_compare_by_value() {
        assert!(quantity_eq("32768Mi", "32Gi"));
        assert!(quantity_eq("0.5", "500m"));
        assert!(quantity_eq("1000", "1k"));
        assert!(quantity_eq("1e3", "1k"));
        assert!(!quantity_eq("1Gi", "1G"));
        assert_eq!(parse_quantity("abc"), None);
        assert_eq!(parse_quantity(""), None);
        assert_eq!(parse_quantity("1Xi"), None);
    }

    #[test]
    fn secret_values_are_hashed_never_shown() {
        let mut s = json!({"data": {"PW": "aHVudGVyMg=="}, "stringData": {"X": "hunter2"}});
        redact_secret(&mut s);
        let text = s.to_string();
        assert!(!text.contains("hunter2") && !text.contains("aHVudGVyMg"));
        // The same value gives the same hash through `data` and `stringData`.
        assert_eq!(s["data"]["PW"], s["stringData"]["X"]);
        assert!(
            s["data"]["PW"]
                .as_str()
                .unwrap()
                .starts_with("(sensitive: sha256 ")
        );
    }

    #[test]
    fn owned_fields_survive_projection_and_defaults_do_not() {
        let desired = json!({"spec": {"containers": [{"name": "a", "image": "x:2"}]}});
        let live = json!({"spec": {
            "containers": [
                {"name": "a", "image": "x:1", "terminationMessagePath": "/dev/termination-log",
                 "env": [{"name": "OLD", "value": "1"}]},
                {"name": "gone", "image": "y"},
            ],
            "dnsPolicy": "ClusterFirst",
            "hostname": "h",
        }});
        let owned = json!({"f:spec": {
            "f:containers": {
                "k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}, "f:env": {"k:{\"name\":\"OLD\"}": {".": {}, "f:name": {}, "f:value": {}}}},
                "k:{\"name\":\"gone\"}": {".": {}, "f:image": {}, "f:name": {}},
            },
            "f:hostname": {},
        }});
        let p = clean(project(&desired, &live, Some(&owned), "", "")).unwrap();
        assert_eq!(
            p,
            json!({"spec": {
                "containers": [
                    {"name": "a", "image": "x:1", "env": [{"name": "OLD", "value": "1"}]},
                    {"name": "gone", "image": "y"},
                ],
                "hostname": "h",
            }})
        );
    }

    #[test]
    fn managed_fields_of_other_managers_mean_adoption() {
        let body = json!({"metadata": {"managedFields": [
            {"manager": "kubectl-client-side-apply", "operation": "Update", "fieldsV1": {}},
        ]}});
        assert_eq!(ownership(&body), Ownership::Adoption);
        assert_eq!(ownership(&json!({})), Ownership::Unknown);
        let body = json!({"metadata": {"managedFields": [
            {"manager": "kompoxops", "operation": "Apply", "fieldsV1": {"f:a": {}}},
            {"manager": "kompoxops", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {}}},
            {"manager": "kompoxops", "operation": "Update", "fieldsV1": {"f:b": {}}},
        ]}});
        assert_eq!(
            ownership(&body),
            Ownership::Owned(json!({"f:a": {}, "f:b": {}}))
        );
    }
}
