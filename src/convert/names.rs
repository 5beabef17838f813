//! Names and labels of an app's objects (reference §4.2).

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::hash::AppHashes;
use crate::model::AppContext;

/// The component every compose service belongs to (Boxes come later).
pub const COMPONENT: &str = "app";

#[derive(Debug, Clone)]
pub struct Names {
    pub app: String,
    pub hashes: AppHashes,
    pub namespace: String,
    /// `<app>-<component>`: Deployment, ingress Service, selector value.
    pub workload: String,
    pub ingress_namespace: String,
    pub driver: String,
    /// `<ws>/<prv>/<cls>/<app>` for the namespace annotation.
    pub path: String,
}

impl Names {
    pub fn new(ctx: &AppContext<'_>) -> Names {
        let ws = &ctx.workspace.meta.name;
        let prv = &ctx.provider.meta.name;
        let cls = &ctx.cluster.meta.name;
        let app = &ctx.app.meta.name;
        let hashes = AppHashes::new(ws, prv, cls, app);
        Names {
            namespace: format!("k4x-{}-{}-{}", hashes.provider, app, hashes.app_id),
            workload: format!("{app}-{COMPONENT}"),
            app: app.clone(),
            ingress_namespace: ctx.cluster.ingress.namespace.clone(),
            driver: ctx.provider.driver.clone(),
            path: format!("{ws}/{prv}/{cls}/{app}"),
            hashes,
        }
    }

    pub fn base_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), self.app.clone()),
            (
                "app.kubernetes.io/instance".into(),
                format!("{}-{}", self.app, self.hashes.instance),
            ),
            ("app.kubernetes.io/managed-by".into(), "kompox".into()),
            (
                "kompox.dev/app-instance-hash".into(),
                self.hashes.instance.clone(),
            ),
            ("kompox.dev/app-id-hash".into(), self.hashes.app_id.clone()),
        ])
    }

    pub fn component_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.base_labels();
        l.insert("app".into(), self.workload.clone());
        l.insert("app.kubernetes.io/component".into(), COMPONENT.into());
        l
    }

    pub fn selector(&self) -> Json {
        json!({ "app": self.workload })
    }

    /// Metadata of a namespaced object.
    pub fn meta(&self, name: &str, labels: BTreeMap<String, String>) -> Json {
        json!({ "name": name, "namespace": self.namespace, "labels": labels })
    }

    pub fn pv_name(&self, volume: &str, handle: &str) -> String {
        format!(
            "k4x-{}-{}-{}-{}",
            self.hashes.provider,
            volume,
            self.hashes.app_id,
            crate::hash::short_hash(handle, crate::hash::HASH_LEN)
        )
    }

    pub fn namespace_object(&self) -> super::Object {
        super::Object::new(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": self.namespace,
                "labels": self.base_labels(),
                "annotations": {
                    "kompox.dev/app": self.path,
                    "kompox.dev/provider-driver": self.driver,
                },
            },
        }))
    }
}
