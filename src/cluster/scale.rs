//! Scaling an app's Deployment (I/O), so a snapshot can be taken while
//! nothing writes to the disk; and connecting with a kubeconfig held in
//! memory (a driver's credentials, DECISIONS 15).
//!
//! Scaling goes through the `scale` subresource with a merge patch under
//! the field manager `kompoxops`, never through server-side apply: an apply
//! of an object holding only `spec.replicas` under our field manager would
//! tell the API server that we no longer own every other field we applied
//! (containers, volumes…), and it would remove them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::Kubeconfig;

use super::write::{FIELD_MANAGER, WriteError};
use super::{ConnectError, Connection};

/// The desired replica count of a Deployment (`spec.replicas`, 1 when
/// unset, as the API server defaults it); `None` when it does not exist.
pub async fn deployment_replicas(
    conn: &Connection,
    namespace: &str,
    name: &str,
) -> Result<Option<i32>, WriteError> {
    let api: Api<Deployment> = Api::namespaced(conn.client.clone(), namespace);
    let what = format!("get Deployment {namespace}/{name}");
    match api.get_opt(name).await {
        Ok(Some(d)) => Ok(Some(d.spec.and_then(|s| s.replicas).unwrap_or(1))),
        Ok(None) => Ok(None),
        Err(e) => Err(WriteError::from_kube(e, &what)),
    }
}

/// Sets a Deployment's replica count through its `scale` subresource.
pub async fn scale_deployment(
    conn: &Connection,
    namespace: &str,
    name: &str,
    replicas: i32,
) -> Result<(), WriteError> {
    let what = format!("scale Deployment {namespace}/{name} to {replicas}");
    conn.check_writer(&what)?;
    let api: Api<Deployment> = Api::namespaced(conn.client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    api.patch_scale(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| WriteError::from_kube(e, &what))?;
    Ok(())
}

/// Names of the pods a Deployment selects (by its `matchLabels`),
/// terminating ones included: a terminating pod may still write.
pub async fn deployment_pods(
    conn: &Connection,
    namespace: &str,
    name: &str,
) -> Result<Vec<String>, WriteError> {
    let deployments: Api<Deployment> = Api::namespaced(conn.client.clone(), namespace);
    let d = deployments
        .get(name)
        .await
        .map_err(|e| WriteError::from_kube(e, &format!("get Deployment {namespace}/{name}")))?;
    let labels = d
        .spec
        .and_then(|s| s.selector.match_labels)
        .unwrap_or_default();
    if labels.is_empty() {
        // A selector of expressions only: Kompox never writes one; refuse
        // rather than list every pod of the namespace.
        return Err(WriteError::Api {
            what: format!("Deployment {namespace}/{name}"),
            code: 422,
            message: "its selector has no matchLabels".into(),
            reason: "Invalid".into(),
        });
    }
    let selector = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| WriteError::from_kube(e, &format!("list pods of {namespace}/{name}")))?;
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Connects with a kubeconfig held in memory, e.g. from
/// `Driver::cluster_kubeconfig`: credentials a driver hands out are never
/// written to disk.
pub async fn connect_yaml(
    cluster: &str,
    what: &str,
    yaml: &[u8],
    context: Option<&str>,
) -> Result<Connection, ConnectError> {
    let text = String::from_utf8_lossy(yaml);
    let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|source| ConnectError::Read {
        path: what.to_string(),
        source,
    })?;
    super::connect_with(cluster, what, kubeconfig, context).await
}
