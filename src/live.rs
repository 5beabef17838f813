//! Live state (observe stage's value; this module is pure): the Kubernetes
//! objects, cloud disks and snapshots the plan compares the desired state
//! with, and the per-app inventory that pruning is based on.
//!
//! Live comes either from `observe` (a cluster and a driver), from a JSON
//! file (`kompoxops plan --live F`, documented in `docs/plan-json.md`) or
//! is empty (`--offline`). This module parses a value — the caller reads the
//! file — and never touches the filesystem, the clock or the environment.
//!
//! Guarantees: parsing never panics on input; every object keeps the exact
//! body the API server returned (managedFields included, so the planner can
//! tell which fields `kompoxops` owns); the inventory written by
//! [`inventory_object`] is read back by [`Live::inventories`] unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value as Json, json};

use crate::convert::{AppDesired, Object};
use crate::model::ResourceId;

/// Name of the inventory ConfigMap in each app namespace (DECISIONS 8).
pub const INVENTORY_NAME: &str = "kompox-inventory";
/// Label that marks a ConfigMap as a Kompox inventory.
pub const INVENTORY_LABEL: &str = "kompox.dev/inventory";
/// Annotation carrying the App Resource ID the inventory belongs to.
pub const INVENTORY_APP_ANNOTATION: &str = "kompox.dev/app-id";
/// Key of the inventory ConfigMap's data holding the object lines.
pub const INVENTORY_DATA_KEY: &str = "objects";

/// Errors reading a live document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    #[error("live file is not valid JSON for the live format: {0}")]
    Json(String),
    #[error("live file must be a JSON object with `objects`, `disks` and `snapshots`")]
    NotAnObject,
    #[error(
        "live `objects` must be a Kubernetes List (`kind: List` with `items`), found kind `{0}`"
    )]
    NotAList(String),
    #[error("live `objects.items[{index}]` has no `{field}`")]
    ObjectField { index: usize, field: &'static str },
}

/// Everything observed: objects Kompox owns, disks and snapshots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    pub objects: Vec<LiveObject>,
    pub disks: Vec<LiveDisk>,
    pub snapshots: Vec<LiveSnapshot>,
}

/// One object as the API server returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveObject {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The full object, server-set fields included, as compact JSON text.
    /// Text, not a parsed tree: a `serde_json::Value` costs about eight
    /// times its text (every JSON object is a map node of its own, and
    /// `managedFields` is made of small objects), and the observed state
    /// of a whole cluster is held for a pass — 220 MiB as trees for 1,000
    /// Apps. The planner reads each object once or twice per pass, and
    /// parsing it costs about what cloning the tree did.
    text: Box<str>,
}

/// A cloud disk, in the shape of `kompoxops disk list -o json`.
///
/// Disks are keyed by the cluster-independent app id hash (the cloud tag
/// `kompox-app-id-hash`), so one file can describe the disks of many apps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveDisk {
    pub name: String,
    #[serde(alias = "volumeName", alias = "volume_name")]
    pub volume: String,
    #[serde(alias = "appIdHash")]
    pub app_id_hash: String,
    #[serde(default)]
    pub assigned: bool,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub zone: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, Json>,
    /// The driver's volume handle (hashed into PV/PVC names).
    #[serde(default)]
    pub handle: String,
    #[serde(default, alias = "createdAt", deserialize_with = "empty_as_none")]
    pub created_at: Option<String>,
    #[serde(default, alias = "updatedAt", deserialize_with = "empty_as_none")]
    pub updated_at: Option<String>,
}

/// A cloud snapshot, in the shape of `kompoxops snapshot list -o json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSnapshot {
    pub name: String,
    #[serde(alias = "volumeName", alias = "volume_name")]
    pub volume: String,
    #[serde(alias = "appIdHash")]
    pub app_id_hash: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub handle: String,
    #[serde(default, alias = "createdAt", deserialize_with = "empty_as_none")]
    pub created_at: Option<String>,
}

fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    Ok(v.filter(|s| !s.is_empty()))
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The on-disk live document. Unknown top-level keys are rejected so a
/// plan JSON or a bare `kubectl` List passed by mistake gets a clear error.
/// The objects stay raw text here and are parsed one at a time: the file
/// is never held as one parsed tree (see [`LiveObject`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveFile<'a> {
    #[serde(borrow, default)]
    objects: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "null_as_default")]
    disks: Vec<LiveDisk>,
    #[serde(default, deserialize_with = "null_as_default")]
    snapshots: Vec<LiveSnapshot>,
}

/// `objects`: a Kubernetes List (other keys, such as `metadata`, ignored).
#[derive(Deserialize)]
struct ListDoc<'a> {
    #[serde(default)]
    kind: Json,
    #[serde(borrow, default)]
    items: Option<&'a RawValue>,
}

impl Live {
    /// No live state (`--offline`): everything is planned as new.
    pub fn empty() -> Live {
        Live::default()
    }

    /// Parses `{"objects": <kubectl List>, "disks": [...], "snapshots": [...]}`;
    /// every key may be absent.
    pub fn from_json(text: &str) -> Result<Live, LiveError> {
        // Checks the syntax of the whole text without building a tree.
        let raw: &RawValue =
            serde_json::from_str(text).map_err(|e| LiveError::Json(e.to_string()))?;
        if !raw.get().starts_with('{') {
            return Err(LiveError::NotAnObject);
        }
        let file: LiveFile =
            serde_json::from_str(raw.get()).map_err(|e| LiveError::Json(e.to_string()))?;
        let objects = match file.objects {
            Some(list) if list.get() != "null" => parse_list(list)?,
            _ => Vec::new(),
        };
        Ok(Live {
            objects,
            disks: file.disks,
            snapshots: file.snapshots,
        })
    }

    /// Every inventory found in the live objects, sorted by app id then
    /// namespace. An inventory whose app id annotation is missing or not a
    /// Resource ID cannot be attributed to an app and is returned as an
    /// error, so the planner can say why it was not used.
    pub fn inventories(&self) -> Vec<Result<Inventory, InventoryError>> {
        let mut out: Vec<Result<Inventory, InventoryError>> = self
            .objects
            .iter()
            .filter(|o| is_inventory(o))
            .map(Inventory::parse)
            .collect();
        out.sort_by_key(|r| match r {
            Ok(i) => (0, i.app_id.to_string(), i.namespace.clone()),
            Err(e) => (1, e.to_string(), String::new()),
        });
        out
    }

    /// True when a PersistentVolumeClaim exists in the namespace.
    pub fn namespace_holds_pvc(&self, namespace: &str) -> bool {
        self.objects
            .iter()
            .any(|o| o.kind == "PersistentVolumeClaim" && o.namespace.as_deref() == Some(namespace))
    }
}

fn parse_list(list: &RawValue) -> Result<Vec<LiveObject>, LiveError> {
    let Ok(doc) = serde_json::from_str::<ListDoc>(list.get()) else {
        return Err(LiveError::NotAList(String::new()));
    };
    let kind = doc.kind.as_str().unwrap_or("").to_string();
    if !kind.ends_with("List") {
        return Err(LiveError::NotAList(kind));
    }
    let items: Vec<&RawValue> = match doc.items {
        Some(items) if items.get() != "null" => {
            serde_json::from_str(items.get()).map_err(|_| LiveError::NotAList(kind.clone()))?
        }
        _ => Vec::new(),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let body: Json =
                serde_json::from_str(item.get()).map_err(|e| LiveError::Json(e.to_string()))?;
            LiveObject::from_body(body).map_err(|field| LiveError::ObjectField { index, field })
        })
        .collect()
}

impl LiveObject {
    /// Reads the identity of an object; `Err(field)` names what is missing.
    pub fn from_body(body: Json) -> Result<LiveObject, &'static str> {
        let s = |p: &str| {
            body.pointer(p)
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(LiveObject {
            api_version: s("/apiVersion").ok_or("apiVersion")?,
            kind: s("/kind").ok_or("kind")?,
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name").ok_or("metadata.name")?,
            text: text_of(&body),
        })
    }

    /// The object as the API server returned it (parsed from the stored
    /// text: the caller owns the tree and may change it freely).
    pub fn body(&self) -> Json {
        // The text was written from a `Json` by this module, so it always
        // parses; `Null` would only hide a bug, never bad input.
        serde_json::from_str(&self.text).unwrap_or(Json::Null)
    }

    /// Changes the body (tests and fixtures that simulate live edits).
    /// The identity fields (`api_version`, `kind`, `namespace`, `name`)
    /// stay as they were.
    pub fn edit_body(&mut self, f: impl FnOnce(&mut Json)) {
        let mut body = self.body();
        f(&mut body);
        self.text = text_of(&body);
    }

    /// A live object standing for a desired one (tests, and planning the
    /// desired state against itself).
    pub fn from_object(o: &Object) -> LiveObject {
        LiveObject {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            text: text_of(&o.body),
        }
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            &self.api_version,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

fn text_of(body: &Json) -> Box<str> {
    // Serialising a `Value` cannot fail: its map keys are strings.
    serde_json::to_string(body)
        .unwrap_or_else(|_| "null".into())
        .into_boxed_str()
}

/// Identity of an object across API versions: group (not version), kind,
/// namespace, name — `apps/v1` and `apps/v1beta2` name the same Deployment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: api_group(api_version).to_string(),
            kind: kind.to_string(),
            namespace: namespace.unwrap_or("").to_string(),
            name: name.to_string(),
        }
    }

    pub fn of(o: &Object) -> ObjectKey {
        ObjectKey::new(&o.api_version, &o.kind, o.namespace.as_deref(), &o.name)
    }
}

/// Live objects by [`ObjectKey`], borrowing each object's own names: an
/// owned key per object cost about 300 bytes, and the index covers every
/// object of the cluster for a whole pass.
#[derive(Debug, Clone)]
pub struct LiveIndex<'l> {
    sorted: Vec<&'l LiveObject>,
}

/// The fields of [`ObjectKey`], in its order, borrowed.
fn borrowed_key(o: &LiveObject) -> (&str, &str, &str, &str) {
    (
        api_group(&o.api_version),
        &o.kind,
        o.namespace.as_deref().unwrap_or(""),
        &o.name,
    )
}

impl<'l> LiveIndex<'l> {
    pub fn new(live: &'l Live) -> LiveIndex<'l> {
        let mut sorted: Vec<&LiveObject> = live.objects.iter().collect();
        sorted.sort_by(|a, b| borrowed_key(a).cmp(&borrowed_key(b)));
        // One object listed twice (under two API versions of its group):
        // the later one wins, as in a map filled in order.
        let mut out: Vec<&LiveObject> = Vec::with_capacity(sorted.len());
        for o in sorted {
            match out.last_mut() {
                Some(last) if borrowed_key(last) == borrowed_key(o) => *last = o,
                _ => out.push(o),
            }
        }
        LiveIndex { sorted: out }
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&'l LiveObject> {
        let k = (
            key.group.as_str(),
            key.kind.as_str(),
            key.namespace.as_str(),
            key.name.as_str(),
        );
        self.sorted
            .binary_search_by(|o| borrowed_key(o).cmp(&k))
            .ok()
            .map(|i| self.sorted[i])
    }
}

/// `apps/v1` → `apps`; `v1` → `` (the core group).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// One line of an inventory: an object Kompox applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InventoryEntry {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl InventoryEntry {
    /// `<apiVersion>/<Kind>/<namespace or empty>/<name>`.
    pub fn line(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.api_version,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }

    /// Parses a line from the right: names, namespaces and kinds have no
    /// `/`, an apiVersion may (`apps/v1`).
    pub fn parse(line: &str) -> Option<InventoryEntry> {
        let mut parts = line.rsplitn(4, '/');
        let name = parts.next()?;
        let namespace = parts.next()?;
        let kind = parts.next()?;
        let api_version = parts.next()?;
        if name.is_empty() || kind.is_empty() || api_version.is_empty() {
            return None;
        }
        Some(InventoryEntry {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
            name: name.to_string(),
        })
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            &self.api_version,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

/// What Kompox applied for one app, read from its inventory ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub app_id: ResourceId,
    /// Namespace of the inventory ConfigMap.
    pub namespace: String,
    /// Sorted, duplicates removed.
    pub entries: Vec<InventoryEntry>,
    /// Lines that could not be read (never pruned).
    pub bad_lines: Vec<String>,
}

/// An inventory that cannot be attributed to an app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error(
        "inventory {namespace}/{name} has no `kompox.dev/app-id` annotation; it is not used for pruning"
    )]
    NoAppId { namespace: String, name: String },
    #[error(
        "inventory {namespace}/{name}: app id `{value}` is not a Resource ID ({reason}); it is not used for pruning"
    )]
    BadAppId {
        namespace: String,
        name: String,
        value: String,
        reason: String,
    },
}

fn is_inventory(o: &LiveObject) -> bool {
    o.kind == "ConfigMap"
        && o.api_version == "v1"
        && o.name == INVENTORY_NAME
        && o.body()
            .pointer("/metadata/labels")
            .and_then(|l| l.get(INVENTORY_LABEL))
            .and_then(Json::as_str)
            == Some("true")
}

impl Inventory {
    fn parse(o: &LiveObject) -> Result<Inventory, InventoryError> {
        let namespace = o.namespace.clone().unwrap_or_default();
        let body = o.body();
        let value = body
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(INVENTORY_APP_ANNOTATION))
            .and_then(Json::as_str)
            .ok_or_else(|| InventoryError::NoAppId {
                namespace: namespace.clone(),
                name: o.name.clone(),
            })?;
        let app_id: ResourceId =
            value.parse().map_err(
                |e: crate::model::ResourceIdError| InventoryError::BadAppId {
                    namespace: namespace.clone(),
                    name: o.name.clone(),
                    value: value.to_string(),
                    reason: e.to_string(),
                },
            )?;
        let text = body
            .pointer("/data")
            .and_then(|d| d.get(INVENTORY_DATA_KEY))
            .and_then(Json::as_str)
            .unwrap_or("");
        let mut entries = Vec::new();
        let mut bad_lines = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match InventoryEntry::parse(line) {
                Some(e) => entries.push(e),
                None => bad_lines.push(line.to_string()),
            }
        }
        entries.sort();
        entries.dedup();
        Ok(Inventory {
            app_id,
            namespace,
            entries,
            bad_lines,
        })
    }
}

/// The inventory ConfigMap of an app: one line per object the apply stage
/// writes, sorted. Pending objects (names known after apply) are left out:
/// the apply stage converts again once the disk exists and writes the
/// inventory from that result. The plan never shows the inventory itself
/// as a change.
pub fn inventory_object(app: &AppDesired) -> Object {
    let mut lines: Vec<String> = app
        .objects
        .iter()
        .filter(|o| !o.pending)
        .map(|o| {
            InventoryEntry {
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
                namespace: o.namespace.clone(),
                name: o.name.clone(),
            }
            .line()
        })
        .collect();
    lines.sort();
    lines.dedup();
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let name = app.app_id.name();
    Object::new(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": INVENTORY_NAME,
            "namespace": app.namespace,
            "labels": {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/instance": format!("{name}-{}", app.hashes.instance),
                "app.kubernetes.io/managed-by": "kompox",
                "kompox.dev/app-instance-hash": app.hashes.instance,
                "kompox.dev/app-id-hash": app.hashes.app_id,
                INVENTORY_LABEL: "true",
            },
            "annotations": {INVENTORY_APP_ANNOTATION: app.app_id.to_string()},
        },
        "data": {INVENTORY_DATA_KEY: text},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_empty_live() {
        assert_eq!(Live::from_json("{}").unwrap(), Live::empty());
        assert_eq!(
            Live::from_json(r#"{"objects": null, "disks": null}"#).unwrap(),
            Live::empty()
        );
    }

    #[test]
    fn reads_kubectl_list_and_disk_list_shapes() {
        let text = r#"{
          "objects": {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": [
              {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "a", "namespace": "ns", "uid": "x"}, "spec": {}},
              {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv"}}
            ]},
          "disks": [{"name": "data-1", "volumeName": "data", "appIdHash": "13o40q",
                     "assigned": true, "size": 34359738368, "zone": "", "options": null,
                     "handle": "/subscriptions/x", "createdAt": "2025-01-01T00:00:00Z",
                     "updatedAt": "2025-01-02T00:00:00Z"}],
          "snapshots": [{"name": "s1", "volume_name": "data", "app_id_hash": "13o40q",
                         "size": 1, "handle": "h", "created_at": "2025-01-03T00:00:00Z"}]
        }"#;
        let live = Live::from_json(text).unwrap();
        assert_eq!(live.objects.len(), 2);
        assert_eq!(live.objects[0].namespace.as_deref(), Some("ns"));
        assert_eq!(live.objects[1].namespace, None);
        let d = &live.disks[0];
        assert_eq!(
            (d.volume.as_str(), d.app_id_hash.as_str(), d.assigned),
            ("data", "13o40q", true)
        );
        assert_eq!(d.zone, None);
        assert!(d.options.is_empty());
        assert_eq!(d.created_at.as_deref(), Some("2025-01-01T00:00:00Z"));
        assert_eq!(live.snapshots[0].volume, "data");
    }

    #[test]
    fn rejects_what_is_not_the_live_format() {
        assert_eq!(Live::from_json("[]"), Err(LiveError::NotAnObject));
        assert!(matches!(Live::from_json("{"), Err(LiveError::Json(_))));
        assert!(matches!(
            Live::from_json(r#"{"format_version": 1}"#),
            Err(LiveError::Json(_))
        ));
        assert_eq!(
            Live::from_json(r#"{"objects": {"kind": "Deployment"}}"#),
            Err(LiveError::NotAList("Deployment".into()))
        );
        assert_eq!(
            Live::from_json(
                r#"{"objects": {"kind": "List", "items": [{"kind": "X", "metadata": {"name": "a"}}]}}"#
            ),
            Err(LiveError::ObjectField {
                index: 0,
                field: "apiVersion"
            })
        );
        assert!(matches!(
            Live::from_json(r#"{"disks": [{"name": "d"}]}"#),
            Err(LiveError::Json(_))
        ));
        // Shapes the item-by-item reading must refuse just as clearly.
        assert_eq!(
            Live::from_json(r#"{"objects": 5}"#),
            Err(LiveError::NotAList(String::new()))
        );
        assert_eq!(
            Live::from_json(r#"{"objects": {"kind": "List", "items": 5}}"#),
            Err(LiveError::NotAList("List".into()))
        );
        assert_eq!(
            Live::from_json(r#"{"objects": {"kind": "List", "items": [7]}}"#),
            Err(LiveError::ObjectField {
                index: 0,
                field: "apiVersion"
            })
        );
    }

    #[test]
    fn the_index_finds_objects_across_api_versions_and_the_later_duplicate_wins() {
        let obj = |v: &str, kind: &str, ns: Option<&str>, name: &str, tag: &str| {
            let mut b =
                json!({"apiVersion": v, "kind": kind, "metadata": {"name": name}, "tag": tag});
            if let Some(ns) = ns {
                b["metadata"]["namespace"] = json!(ns);
            }
            LiveObject::from_body(b).unwrap()
        };
        let live = Live {
            objects: vec![
                obj("v1", "ConfigMap", Some("b"), "x", "cm-b"),
                obj("apps/v1", "Deployment", Some("a"), "web", "first"),
                obj("v1", "Namespace", None, "a", "ns"),
                obj("apps/v1beta2", "Deployment", Some("a"), "web", "second"),
                obj("v1", "ConfigMap", Some("a"), "x", "cm-a"),
            ],
            ..Live::default()
        };
        let index = LiveIndex::new(&live);
        let tag = |v: &str, kind: &str, ns: Option<&str>, name: &str| {
            index
                .get(&ObjectKey::new(v, kind, ns, name))
                .map(|o| o.body()["tag"].as_str().unwrap().to_string())
        };
        assert_eq!(
            tag("apps/v1", "Deployment", Some("a"), "web").as_deref(),
            Some("second")
        );
        assert_eq!(
            tag("v1", "ConfigMap", Some("a"), "x").as_deref(),
            Some("cm-a")
        );
        assert_eq!(
            tag("v1", "ConfigMap", Some("b"), "x").as_deref(),
            Some("cm-b")
        );
        assert_eq!(tag("v1", "Namespace", None, "a").as_deref(), Some("ns"));
        assert_eq!(tag("v1", "ConfigMap", Some("c"), "x"), None);
        assert_eq!(tag("v1", "Secret", Some("a"), "x"), None);
    }

    /// The body read back is the object as given, key for key (the text
    /// form is only how it is held).
    #[test]
    fn bodies_read_back_unchanged_and_edits_stick() {
        let item = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns",
                         "managedFields": [{"manager": "kompoxops", "fieldsV1": {"f:data": {"f:k": {}}}}]},
            "data": {"k": "dmFsdWU="}, "type": "Opaque"});
        let text = json!({"objects": {"kind": "List", "items": [item.clone()]}}).to_string();
        let mut live = Live::from_json(&text).unwrap();
        assert_eq!(live.objects[0].body(), item);
        assert_eq!(
            live.objects[0],
            LiveObject::from_body(item.clone()).unwrap()
        );
        live.objects[0].edit_body(|b| b["data"]["k"] = json!("b3RoZXI="));
        assert_eq!(live.objects[0].body()["data"]["k"], "b3RoZXI=");
        assert_eq!(live.objects[0].name, "s");
    }

    #[test]
    fn inventory_lines_round_trip() {
        for line in [
            "apps/v1/Deployment/ns/web",
            "v1/PersistentVolume//pv-1",
            "networking.k8s.io/v1/Ingress/ns/x",
        ] {
            assert_eq!(InventoryEntry::parse(line).unwrap().line(), line);
        }
        let pv = InventoryEntry::parse("v1/PersistentVolume//pv-1").unwrap();
        assert_eq!(pv.namespace, None);
        assert_eq!(pv.api_version, "v1");
        assert_eq!(InventoryEntry::parse("Deployment/ns/web"), None);
        assert_eq!(InventoryEntry::parse("v1/Secret/ns/"), None);
    }

    #[test]
    fn api_groups() {
        assert_eq!(api_group("v1"), "");
        assert_eq!(api_group("apps/v1"), "apps");
        assert_eq!(
            ObjectKey::new("apps/v1", "Deployment", Some("n"), "a"),
            ObjectKey::new("apps/v1beta2", "Deployment", Some("n"), "a")
        );
    }

    #[test]
    fn unattributable_inventory_is_an_error() {
        let live = Live {
            objects: vec![LiveObject::from_body(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": INVENTORY_NAME, "namespace": "ns", "labels": {INVENTORY_LABEL: "true"},
                             "annotations": {INVENTORY_APP_ANNOTATION: "not-an-id"}},
                "data": {"objects": "v1/Service/ns/a\n"},
            }))
            .unwrap()],
            ..Live::default()
        };
        let inv = live.inventories();
        assert!(matches!(inv[0], Err(InventoryError::BadAppId { .. })));
    }
}
