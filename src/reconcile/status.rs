//! The reconciler's status (I/O): one ConfigMap `kompox-status` in the
//! controller's namespace, one key per App (until the CRD exists,
//! DECISIONS 22), and Kubernetes Events when an App's result changes.
//!
//! Only the writer (the Lease holder) writes status. Every value is built
//! from plan summaries and error messages, which never carry Secret data
//! (the plan shows Secrets as hashes only).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};

use super::pass::AppResult;
use crate::cluster::Connection;

/// Name of the status ConfigMap.
pub const STATUS_NAME: &str = "kompox-status";
const FIELD_MANAGER: &str = "kompoxops-status";

/// The status of one App as stored and shown by `reconcile status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatusRecord {
    pub app: String,
    /// The revision of the last attempt.
    pub revision: String,
    /// The last revision applied or found up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    pub result: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// RFC 3339.
    pub time: String,
}

/// The ConfigMap key of an App: its resource id with `/` as `.`
/// (ConfigMap keys allow `[-._a-zA-Z0-9]`).
pub fn key_of(app: &str) -> String {
    app.trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '.'
            }
        })
        .collect()
}

/// Why status could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("status ConfigMap {namespace}/{STATUS_NAME}: {source}")]
    Api {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("status of {key} is not valid JSON: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes the given Apps' records into the status ConfigMap (server-side
/// apply of only these keys, so records of other Apps stay).
pub async fn write(
    conn: &Connection,
    namespace: &str,
    records: &[AppStatusRecord],
) -> Result<(), StatusError> {
    if records.is_empty() || !conn.writer.may_write() {
        return Ok(());
    }
    let api: Api<ConfigMap> = Api::namespaced(conn.client.clone(), namespace);
    let current = api
        .get_opt(STATUS_NAME)
        .await
        .map_err(|source| StatusError::Api {
            namespace: namespace.into(),
            source,
        })?;
    let mut data: BTreeMap<String, String> = current.and_then(|c| c.data).unwrap_or_default();
    for r in records {
        data.insert(key_of(&r.app), serde_json::to_string(r).unwrap_or_default());
    }
    let cm = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": STATUS_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "kompox", "app.kubernetes.io/component": "status"},
        },
        "data": data,
    });
    api.patch(
        STATUS_NAME,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await
    .map_err(|source| StatusError::Api {
        namespace: namespace.into(),
        source,
    })?;
    Ok(())
}

/// Reads every App's record.
pub async fn read(
    client: kube::Client,
    namespace: &str,
) -> Result<Vec<AppStatusRecord>, StatusError> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let cm = api
        .get_opt(STATUS_NAME)
        .await
        .map_err(|source| StatusError::Api {
            namespace: namespace.into(),
            source,
        })?;
    let mut out = Vec::new();
    for (key, value) in cm.and_then(|c| c.data).unwrap_or_default() {
        out.push(
            serde_json::from_str(&value).map_err(|source| StatusError::Decode { key, source })?,
        );
    }
    out.sort_by(|a: &AppStatusRecord, b| a.app.cmp(&b.app));
    Ok(out)
}

/// The record of an App after a pass.
pub fn record_of(r: &AppResult, revision: &str, applied: Option<&str>) -> AppStatusRecord {
    AppStatusRecord {
        app: r.app_id.to_string(),
        revision: revision.to_string(),
        applied_revision: applied.map(str::to_string),
        result: r.outcome.label().to_string(),
        summary: r.summary.clone(),
        error: r.outcome.error().map(str::to_string),
        time: Timestamp::now().to_string(),
    }
}

/// Emits a Kubernetes Event about an App, attached to the status
/// ConfigMap (the App has no object of its own until the CRD exists).
pub async fn event(
    conn: &Connection,
    namespace: &str,
    record: &AppStatusRecord,
    identity: &str,
) -> Result<(), StatusError> {
    if !conn.writer.may_write() {
        return Ok(());
    }
    let warning = matches!(record.result.as_str(), "failed" | "load-failed" | "blocked");
    let now = Timestamp::now();
    let message = match &record.error {
        Some(e) => format!("{}: {} ({})", record.app, e, record.summary),
        None => format!("{}: {} at {}", record.app, record.summary, record.revision),
    };
    let ev = Event {
        metadata: ObjectMeta {
            generate_name: Some("kompox-".into()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(STATUS_NAME.into()),
            namespace: Some(namespace.to_string()),
            field_path: Some(format!("data[{}]", key_of(&record.app))),
            ..Default::default()
        },
        reason: Some(reason_of(&record.result).into()),
        message: Some(message.chars().take(1024).collect()),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        source: Some(EventSource {
            component: Some("kompox".into()),
            ..Default::default()
        }),
        reporting_component: Some("kompox".into()),
        reporting_instance: Some(identity.chars().take(128).collect()),
        action: Some("Reconcile".into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(conn.client.clone(), namespace);
    api.create(&PostParams::default(), &ev)
        .await
        .map_err(|source| StatusError::Api {
            namespace: namespace.into(),
            source,
        })?;
    Ok(())
}

fn reason_of(result: &str) -> &'static str {
    match result {
        "applied" => "Applied",
        "up-to-date" => "UpToDate",
        "suspended" => "Suspended",
        "blocked" => "Blocked",
        "load-failed" => "LoadFailed",
        "failed" => "ApplyFailed",
        _ => "Reconciled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_configmap_keys() {
        assert_eq!(
            key_of("/ws/acme/prv/k3s/cls/home/app/wiki"),
            "ws.acme.prv.k3s.cls.home.app.wiki"
        );
        assert!(
            key_of("/ws/a b/x")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        );
    }
}
