//! Observe: what Kompox owns in a cluster, as a [`Live`] value.

use kube::Resource;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::Request;
use serde_json::Value as Json;
use serde_json::value::RawValue;

use super::kinds::{KINDS, KindInfo};
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

/// Objects per list request. The API server pages large lists anyway;
/// asking for pages keeps one response (its text and the parsed page) at
/// a bounded size whatever the number of Apps — client-go's pager uses
/// the same figure.
const PAGE: u32 = 500;

/// One page of a list response: the items are kept as raw JSON text and
/// parsed one at a time, so a page never exists as a whole parsed tree.
#[derive(serde::Deserialize)]
struct Page<'a> {
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
    #[serde(default)]
    metadata: PageMeta,
}

#[derive(serde::Deserialize, Default)]
struct PageMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

/// Lists every kind Kompox writes with the ownership label selector (one
/// request per kind and page), and the nodes' labels.
pub async fn observe(conn: &Connection) -> Result<Observed, WriteError> {
    let mut out = Observed::default();
    for k in KINDS {
        // Every claim, not only ours: a Namespace holding anyone's claim
        // is never deleted (invariant 1).
        let selector = (k.kind != "PersistentVolumeClaim").then_some(OWNED);
        list_kind(conn, k, selector, &mut out).await?;
    }
    // Labels are all the scheduling checks read: a metadata-only list
    // leaves out node status (image lists, conditions), the largest part
    // of a Node.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(conn.client.clone());
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let list = nodes
            .list_metadata(&params)
            .await
            .map_err(|e| WriteError::from_kube(e, "list nodes"))?;
        out.requests += 1;
        for n in list.items {
            out.nodes.push((
                n.metadata.name.unwrap_or_default(),
                n.metadata.labels.unwrap_or_default(),
            ));
        }
        match list.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(t) => params = params.continue_token(&t),
            None => break,
        }
    }
    out.live.objects.sort_by_key(|o| o.key());
    Ok(out)
}

/// Lists one kind page by page into `out.live`.
async fn list_kind(
    conn: &Connection,
    k: &KindInfo,
    selector: Option<&str>,
    out: &mut Observed,
) -> Result<(), WriteError> {
    let what = format!("list {}", k.plural);
    let ar = k.api_resource();
    let request = Request::new(DynamicObject::url_path(&ar, None));
    let mut params = ListParams::default().limit(PAGE);
    if let Some(s) = selector {
        params = params.labels(s);
    }
    let api_version = k.api_version();
    loop {
        let req = request
            .list(&params)
            .map_err(|e| WriteError::from_kube(kube::Error::BuildRequest(e), &what))?;
        let text = conn
            .client
            .request_text(req)
            .await
            .map_err(|e| WriteError::from_kube(e, &what))?;
        out.requests += 1;
        let page: Page = serde_json::from_str(&text).map_err(|e| WriteError::Transport {
            what: what.clone(),
            message: format!("the API server's answer is not a list: {e}"),
        })?;
        for item in page.items {
            // Never skip an object: one missing from the observation
            // would be planned as new.
            let mut body = serde_json::from_str::<Json>(item.get())
                .ok()
                .filter(Json::is_object)
                .ok_or_else(|| WriteError::Transport {
                    what: what.clone(),
                    message: "an item of the list is not a JSON object".into(),
                })?;
            // List items come without their type; the list's kind is known.
            body["apiVersion"] = Json::String(api_version.clone());
            body["kind"] = Json::String(k.kind.to_string());
            if let Ok(o) = LiveObject::from_body(body) {
                out.live.objects.push(o);
            }
        }
        match page.metadata.continue_token.filter(|t| !t.is_empty()) {
            Some(t) => params = params.continue_token(&t),
            None => return Ok(()),
        }
    }
}
