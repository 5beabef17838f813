//! Scheduling sanity (DECISIONS 18, pure): warn when no live node can run
//! an app's pod, e.g. the default `kompox.dev/node-pool=user` label missing
//! on a real cluster's nodes.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::convert::AppDesired;

/// A node's name and labels.
pub type NodeLabels = (String, BTreeMap<String, String>);

/// A warning when the app's Deployment has node requirements that no node
/// meets; `None` when some node fits or the cluster has no nodes listed.
pub fn unschedulable_warning(app: &AppDesired, nodes: &[NodeLabels]) -> Option<String> {
    if nodes.is_empty() {
        return None;
    }
    let (selector, exprs) = requirements(app)?;
    if !fitting_nodes_with(&selector, &exprs, nodes).is_empty() {
        return None;
    }
    let mut wanted: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    wanted.extend(
        exprs
            .iter()
            .map(|(k, vs)| format!("{k} in ({})", vs.join(", "))),
    );
    Some(format!(
        "no node of the cluster matches the pod's placement ({}): it would stay Pending; label the nodes or change spec.deployment",
        wanted.join(", ")
    ))
}

/// Names (sorted) of the nodes the app's pod may run on: where a new
/// node-local disk (K3s) may be created.
pub fn fitting_nodes(app: &AppDesired, nodes: &[NodeLabels]) -> Vec<String> {
    match requirements(app) {
        Some((selector, exprs)) => fitting_nodes_with(&selector, &exprs, nodes),
        None => Vec::new(),
    }
}

type Requirements = (BTreeMap<String, String>, Vec<(String, Vec<String>)>);

fn fitting_nodes_with(
    selector: &BTreeMap<String, String>,
    exprs: &[(String, Vec<String>)],
    nodes: &[NodeLabels],
) -> Vec<String> {
    let mut out: Vec<String> = nodes
        .iter()
        .filter(|(_, labels)| {
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                && exprs
                    .iter()
                    .all(|(k, vs)| labels.get(k).is_some_and(|l| vs.contains(l)))
        })
        .map(|(n, _)| n.clone())
        .collect();
    out.sort();
    out
}

/// The Deployment's node selector and `In` affinity expressions.
fn requirements(app: &AppDesired) -> Option<Requirements> {
    let dep = app.objects.iter().find(|o| o.kind == "Deployment")?;
    let spec = dep.body.pointer("/spec/template/spec")?;
    let selector: BTreeMap<String, String> = spec
        .get("nodeSelector")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let exprs: Vec<(String, Vec<String>)> = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter(|e| e["operator"] == "In")
                .map(|e| {
                    let values = e["values"]
                        .as_array()
                        .map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    (e["key"].as_str().unwrap_or_default().to_string(), values)
                })
                .collect()
        })
        .unwrap_or_default();
    Some((selector, exprs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::TestApp;

    fn node(labels: &[(&str, &str)]) -> NodeLabels {
        (
            "n1".into(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn warns_when_the_default_pool_label_is_missing() {
        let app = TestApp::gitea().desired();
        let w = unschedulable_warning(&app, &[node(&[("kubernetes.io/hostname", "n1")])]).unwrap();
        assert!(w.contains("kompox.dev/node-pool=user"), "{w}");
        assert_eq!(
            unschedulable_warning(&app, &[node(&[("kompox.dev/node-pool", "user")])]),
            None
        );
        assert_eq!(
            unschedulable_warning(&app, &[]),
            None,
            "no node list, no opinion"
        );
    }
}
