//! Writes: server-side apply (and its dry-run), delete, and reading a
//! Deployment's rollout state.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::Value as Json;

use super::Connection;
use super::kinds::kind_info;

/// The field manager of every Kompox write.
pub const FIELD_MANAGER: &str = "kompoxops";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The API server rejected the request (status code and message).
    #[error("{what}: {message} ({code})")]
    Api {
        what: String,
        code: u16,
        message: String,
        reason: String,
    },
    #[error("{what}: {message}")]
    Transport { what: String, message: String },
    #[error("{0} is not a kind Kompox writes")]
    UnknownKind(String),
    /// This process is not (or no longer certainly) the one writer
    /// (DECISIONS 16): the write was not sent.
    #[error("{0}: not sent, this process does not hold the writer Lease")]
    NotLeader(String),
}

impl WriteError {
    pub fn from_kube(e: kube::Error, what: &str) -> WriteError {
        match e {
            kube::Error::Api(s) => WriteError::Api {
                what: what.to_string(),
                code: s.code,
                message: s.message,
                reason: s.reason,
            },
            other => WriteError::Transport {
                what: what.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// True when the server refused a change to an immutable field.
    pub fn is_immutable(&self) -> bool {
        matches!(self, WriteError::Api { code: 422, message, .. } if message.contains("immutable"))
    }

    /// True for errors a retry may fix (the server or the network).
    pub fn is_transient(&self) -> bool {
        match self {
            WriteError::Api { code, .. } => *code == 429 || *code >= 500,
            WriteError::Transport { .. } => true,
            WriteError::UnknownKind(_) | WriteError::NotLeader(_) => false,
        }
    }
}

/// The result of an apply.
#[derive(Debug, Clone)]
pub struct ApplyOutcome {
    pub body: Json,
}

fn api_for(conn: &Connection, body: &Json) -> Result<(Api<DynamicObject>, String), WriteError> {
    let av = body["apiVersion"].as_str().unwrap_or_default();
    let kind = body["kind"].as_str().unwrap_or_default();
    let info =
        kind_info(av, kind).ok_or_else(|| WriteError::UnknownKind(format!("{av}/{kind}")))?;
    let ar = info.api_resource();
    let name = body
        .pointer("/metadata/name")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    let api = match body.pointer("/metadata/namespace").and_then(Json::as_str) {
        Some(ns) if info.namespaced => Api::namespaced_with(conn.client.clone(), ns, &ar),
        _ => Api::all_with(conn.client.clone(), &ar),
    };
    Ok((api, name))
}

fn describe(body: &Json) -> String {
    format!(
        "{} {}{}",
        body["kind"].as_str().unwrap_or("?"),
        body.pointer("/metadata/namespace")
            .and_then(Json::as_str)
            .map(|n| format!("{n}/"))
            .unwrap_or_default(),
        body.pointer("/metadata/name")
            .and_then(Json::as_str)
            .unwrap_or("?")
    )
}

async fn ssa(conn: &Connection, body: &Json, dry_run: bool) -> Result<ApplyOutcome, WriteError> {
    let (api, name) = api_for(conn, body)?;
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    let what = format!("apply {}", describe(body));
    if !dry_run {
        conn.rate.acquire().await;
        conn.check_writer(&what)?;
    }
    let obj = api
        .patch(&name, &params, &Patch::Apply(body))
        .await
        .map_err(|e| WriteError::from_kube(e, &what))?;
    Ok(ApplyOutcome {
        body: serde_json::to_value(obj).unwrap_or(Json::Null),
    })
}

/// Server-side apply, forcing ownership of the fields we declare.
pub async fn apply_object(conn: &Connection, body: &Json) -> Result<ApplyOutcome, WriteError> {
    ssa(conn, body, false).await
}

/// A server-side dry-run apply: validates and reports immutable fields
/// without writing.
pub async fn dry_run_apply(conn: &Connection, body: &Json) -> Result<ApplyOutcome, WriteError> {
    ssa(conn, body, true).await
}

/// Deletes an object (background propagation); a missing object is done.
pub async fn delete_object(
    conn: &Connection,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), WriteError> {
    let mut body =
        serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let Some(ns) = namespace {
        body["metadata"]["namespace"] = Json::String(ns.to_string());
    }
    let (api, _) = api_for(conn, &body)?;
    conn.rate.acquire().await;
    conn.check_writer(&format!("delete {}", describe(&body)))?;
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(WriteError::from_kube(
            e,
            &format!("delete {}", describe(&body)),
        )),
    }
}

/// `(available, message)` of a Deployment's rollout: available once its
/// controller has seen the latest spec and its one replica is updated and
/// available.
pub async fn deployment_status(
    conn: &Connection,
    namespace: &str,
    name: &str,
) -> Result<(bool, String), WriteError> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(conn.client.clone(), namespace);
    let d = api
        .get(name)
        .await
        .map_err(|e| WriteError::from_kube(e, &format!("get Deployment {namespace}/{name}")))?;
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = d.status else {
        return Ok((false, "no status yet".into()));
    };
    let observed = status.observed_generation.unwrap_or(0) >= generation;
    let updated = status.updated_replicas.unwrap_or(0) >= 1;
    let available = status.available_replicas.unwrap_or(0) >= 1;
    let condition = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .map(|c| (c.status == "True", c.message.unwrap_or_default()))
        .unwrap_or((false, "waiting for the Available condition".into()));
    let ok = observed && updated && available && condition.0;
    Ok((ok, if ok { "available".into() } else { condition.1 }))
}
