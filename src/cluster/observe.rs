//! Observe: what Kompox owns in a cluster, as a [`Live`] value.

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value as Json;

use super::kinds::KINDS;
use super::{Connection, write::WriteError};
use crate::live::{Live, LiveObject};

/// The owned objects plus the nodes (zones, pools) of a cluster.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub live: Live,
    /// Node labels, for scheduling checks (DECISIONS 18).
    pub nodes: Vec<(String, std::collections::BTreeMap<String, String>)>,
    /// Number of list requests made (one per kind, plus nodes).
    pub requests: usize,
}

const OWNED: &str = "app.kubernetes.io/managed-by=kompox";

/// Lists every kind Kompox writes with the ownership label selector, one
/// request per kind, and the nodes.
pub async fn observe(conn: &Connection) -> Result<Observed, WriteError> {
    let mut out = Observed::default();
    let owned = ListParams::default().labels(OWNED);
    let all = ListParams::default();
    for k in KINDS {
        let ar = k.api_resource();
        let api: Api<DynamicObject> = Api::all_with(conn.client.clone(), &ar);
        // Every claim, not only ours: a Namespace holding anyone's claim
        // is never deleted (invariant 1).
        let params = if k.kind == "PersistentVolumeClaim" {
            &all
        } else {
            &owned
        };
        let list = api
            .list(params)
            .await
            .map_err(|e| WriteError::from_kube(e, &format!("list {}", k.plural)))?;
        out.requests += 1;
        for item in list.items {
            let mut body = serde_json::to_value(&item).unwrap_or(Json::Null);
            // List items come without their type; the list's kind is known.
            body["apiVersion"] = Json::String(k.api_version());
            body["kind"] = Json::String(k.kind.to_string());
            if let Ok(o) = LiveObject::from_body(body) {
                out.live.objects.push(o);
            }
        }
    }
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(conn.client.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| WriteError::from_kube(e, "list nodes"))?;
    out.requests += 1;
    for n in list.items {
        out.nodes.push((
            n.metadata.name.unwrap_or_default(),
            n.metadata.labels.unwrap_or_default(),
        ));
    }
    out.live.objects.sort_by_key(|o| o.key());
    Ok(out)
}
