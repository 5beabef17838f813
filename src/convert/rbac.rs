//! The per-app ServiceAccount, Role and RoleBinding for human operators
//! (reference §4.9). Named `<app>` and `<app>-access`, as the code does.

use serde_json::json;

use super::{Names, Object};

pub fn objects(n: &Names) -> Vec<Object> {
    let labels = n.base_labels();
    let access = format!("{}-access", n.app);
    vec![
        Object::new(json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": n.meta(&n.app, labels.clone()),
        })),
        Object::new(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": n.meta(&access, labels.clone()),
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "watch"]},
                {"apiGroups": [""], "resources": ["pods/exec", "pods/portforward", "pods/attach"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["events", "services", "endpoints"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["update"]},
            ],
        })),
        Object::new(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": n.meta(&access, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": access},
            "subjects": [{"kind": "ServiceAccount", "name": n.app, "namespace": n.namespace}],
        })),
    ]
}
