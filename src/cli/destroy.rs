//! `kompoxops app destroy`: remove an App's stateless objects.
//!
//! What is deleted comes from the App's inventory (what Kompox applied)
//! and, for apps deployed by the original Kompox (no inventory), from the
//! reference's selector `app=<app>-app`. PersistentVolumes, claims and
//! disks are never deleted; the namespace only with `--delete-namespace`,
//! and never while it holds a claim unless `--allow-destroy` (DECISIONS 9).

use anyhow::bail;
use serde_json::Value as Json;

use super::plan::select;
use super::{EXIT_ERROR, GlobalArgs, clusters};
use kompox::cluster;
use kompox::desired;
use kompox::live::{INVENTORY_NAME, ObjectKey};

/// Kinds `app destroy` deletes: everything stateless.
const STATELESS: &[&str] = &[
    "Ingress",
    "Service",
    "Deployment",
    "Secret",
    "ConfigMap",
    "NetworkPolicy",
    "RoleBinding",
    "Role",
    "ServiceAccount",
];

pub fn run(g: &GlobalArgs, delete_namespace: bool, allow_destroy: bool) -> anyhow::Result<i32> {
    let sel = match select(g)? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if sel.ids.is_empty() {
        bail!("app destroy needs one App: pass --app-id or --app-name");
    }
    let rt = super::runtime()?;
    let runs = clusters::observe(&rt, &sel.project, &sel.loaded.root, &sel.ids)?;
    let mut failed = false;
    for run in &runs {
        for id in &run.apps {
            let app = sel.project.kom.app(id).expect("selected app exists");
            let Some(ctx) = desired::context(&sel.project.kom, app) else {
                continue;
            };
            let names = kompox::convert::Names::new(&ctx);
            let ns = names.namespace.clone();
            let live = &run.observed.live;
            let inventory: Vec<ObjectKey> = live
                .inventories()
                .into_iter()
                .flatten()
                .filter(|inv| &inv.app_id == id)
                .flat_map(|inv| inv.entries.into_iter().map(|e| e.key()))
                .collect();
            let mut deleted = 0;
            for o in &live.objects {
                let in_ns = o.namespace.as_deref() == Some(ns.as_str());
                let by_inventory = inventory.contains(&o.key());
                // The reference's selector, for apps without an inventory;
                // like the reference it leaves Secrets and ConfigMaps (the
                // CLI's `-override` Secrets among them).
                let body = if in_ns { o.body() } else { Json::Null };
                let by_label = in_ns
                    && matches!(o.kind.as_str(), "Ingress" | "Service" | "Deployment")
                    && body
                        .pointer("/metadata/labels/app")
                        .and_then(|v| v.as_str())
                        == Some(names.workload.as_str());
                let headless = in_ns
                    && body
                        .pointer("/metadata/labels/kompox.dev~1compose-service-headless")
                        .is_some();
                if !(by_inventory || by_label || headless) || !STATELESS.contains(&o.kind.as_str())
                {
                    continue;
                }
                if o.kind == "ConfigMap" && o.name == INVENTORY_NAME {
                    continue;
                }
                rt.block_on(cluster::delete_object(
                    &run.conn,
                    &o.api_version,
                    &o.kind,
                    o.namespace.as_deref(),
                    &o.name,
                ))?;
                eprintln!("  delete {} {}/{}", o.kind, ns, o.name);
                deleted += 1;
            }
            rt.block_on(cluster::delete_object(
                &run.conn,
                "v1",
                "ConfigMap",
                Some(&ns),
                INVENTORY_NAME,
            ))?;
            if delete_namespace {
                if live.namespace_holds_pvc(&ns) && !allow_destroy {
                    eprintln!(
                        "error: namespace {ns} holds a PersistentVolumeClaim; it is kept (pass --allow-destroy to delete it; disks are never deleted)"
                    );
                    failed = true;
                } else {
                    rt.block_on(cluster::delete_object(
                        &run.conn,
                        "v1",
                        "Namespace",
                        None,
                        &ns,
                    ))?;
                    eprintln!("  delete Namespace {ns}");
                }
            }
            eprintln!("app {id}: {deleted} objects deleted; disks, PVs and PVCs kept");
        }
    }
    Ok(if failed { EXIT_ERROR } else { 0 })
}
