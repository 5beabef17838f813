//! App volumes → PV/PVC pairs and disk intents; compose volume entries →
//! pod mounts (reference §4.4, DECISIONS 11, 18, 21).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value as Json, json};

use super::{Cx, DiskIntent, KNOWN_AFTER_APPLY, Object, volume_type_name};
use crate::hash::{HASH_LEN, short_hash};
use crate::model::compose::{MountKind, Service};
use crate::provider::VolumeSource;
use crate::yaml::Span;

#[derive(Debug, Default)]
pub struct VolumePlan {
    pub pvs: Vec<Object>,
    pub pvcs: Vec<Object>,
    pub intents: Vec<DiskIntent>,
    /// App volume name → claim name (pending names included).
    pub claims: BTreeMap<String, String>,
}

/// A resolved mount of a container.
#[derive(Debug, Clone)]
pub struct Mount {
    pub volume: String,
    pub mount_path: String,
    pub sub_path: Option<String>,
    pub read_only: bool,
    pub span: Span,
}

/// Deterministic name of a disk created for a volume (DECISIONS 11): the
/// same app, volume and source always give the same name, so a retried or
/// resumed apply finds the disk it already created.
pub fn disk_name_for(app_id_hash: &str, volume: &str, source: Option<&str>) -> String {
    let h = short_hash(
        &format!("{app_id_hash}:{volume}:{}", source.unwrap_or("")),
        HASH_LEN,
    );
    format!("{volume}-{h}")
}

pub fn plan_volumes(cx: &mut Cx<'_, '_>) -> VolumePlan {
    let mut plan = VolumePlan::default();
    let app = cx.input.ctx.app;
    let n = cx.names;
    for vol in &app.volumes {
        let disk = cx.input.disks.get(&vol.name);
        let zones: Vec<String> = match (&app.deployment.zone, &app.deployment.zones) {
            (Some(z), _) => vec![z.clone()],
            (None, zs) => zs.clone(),
        };
        plan.intents.push(DiskIntent {
            volume: vol.name.clone(),
            size_bytes: vol.size_bytes,
            kind: volume_type_name(vol.kind),
            options: vol.options.clone(),
            zones,
            source: vol.source.clone(),
            planned_name: disk_name_for(&n.hashes.app_id, &vol.name, vol.source.as_deref()),
            assigned: disk.cloned(),
        });
        let Some(class) = cx.input.classes.get(&vol.name) else {
            cx.kom_error(
                "volume-class",
                vol.span,
                format!(
                    "provider driver `{}` offers no {} volumes (volume `{}`)",
                    n.driver,
                    volume_type_name(vol.kind),
                    vol.name
                ),
                "use a known driver (aks, eks, gke, oke, k3s) and a volume type it supports",
            );
            continue;
        };
        let (name, pending) = match disk {
            Some(d) => (n.pv_name(&vol.name, &d.handle), false),
            None => (
                format!(
                    "k4x-{}-{}-{}-{KNOWN_AFTER_APPLY}",
                    n.hashes.provider, vol.name, n.hashes.app_id
                ),
                true,
            ),
        };
        let size = disk
            .map(|d| d.size_bytes)
            .filter(|s| *s > 0)
            .unwrap_or(vol.size_bytes);
        // Rounded up to whole MiB (reference §6.1), then written the way
        // the API server stores it (32768Mi is kept as 32Gi: DECISIONS 5).
        let storage = crate::compose::memory_quantity(size.div_ceil(1 << 20) << 20);
        let handle = disk
            .map(|d| d.handle.clone())
            .unwrap_or_else(|| KNOWN_AFTER_APPLY.to_string());
        let mut spec = json!({
            "accessModes": class.access_modes,
            "capacity": {"storage": storage},
            "persistentVolumeReclaimPolicy": class.reclaim_policy,
            "storageClassName": class.storage_class_name,
            "volumeMode": class.volume_mode,
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": n.namespace, "name": name},
        });
        match &class.source {
            VolumeSource::Csi {
                driver,
                fs_type,
                attributes,
            } => {
                let mut csi = json!({"driver": driver, "volumeHandle": handle});
                if let Some(fs) = fs_type {
                    csi["fsType"] = json!(fs);
                }
                if !attributes.is_empty() {
                    csi["volumeAttributes"] = json!(attributes);
                }
                spec["csi"] = csi;
                if let (Some(key), Some(zone)) =
                    (&class.zone_topology_key, disk.and_then(|d| d.zone.as_ref()))
                {
                    spec["nodeAffinity"] = node_affinity(key, zone);
                }
            }
            VolumeSource::Local => {
                // Handle `k3s:<node>:<path>`: the PV pins the node, not a zone.
                let (node, path) = match handle.strip_prefix("k3s:").and_then(|r| r.split_once(':'))
                {
                    Some((node, path)) => (node.to_string(), path.to_string()),
                    None => (KNOWN_AFTER_APPLY.to_string(), KNOWN_AFTER_APPLY.to_string()),
                };
                spec["local"] = json!({"path": path});
                spec["nodeAffinity"] = node_affinity("kubernetes.io/hostname", &node);
            }
        }
        let mut pv = Object::new(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": n.base_labels()},
            "spec": spec,
        }));
        pv.pending = pending;
        let mut pvc = Object::new(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": n.meta(&name, n.base_labels()),
            "spec": {
                "accessModes": class.access_modes,
                "storageClassName": class.storage_class_name,
                "volumeMode": class.volume_mode,
                "volumeName": name,
                "resources": {"requests": {"storage": storage}},
            },
        }));
        pvc.pending = pending;
        plan.claims.insert(vol.name.clone(), name);
        plan.pvs.push(pv);
        plan.pvcs.push(pvc);
    }
    plan
}

fn node_affinity(key: &str, value: &str) -> Json {
    json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": key, "operator": "In", "values": [value]},
    ]}]}})
}

/// Resolves a service's compose volume entries to mounts of app volumes;
/// `subpaths` collects the (volume, sub-path) pairs the init container
/// must create.
pub fn resolve_mounts(
    cx: &mut Cx<'_, '_>,
    svc: &Service,
    subpaths: &mut BTreeSet<(String, String)>,
) -> Vec<Mount> {
    let app = cx.input.ctx.app;
    let mut out = Vec::new();
    for v in &svc.volumes {
        let Some(source) = v.source.as_deref().filter(|s| !s.is_empty()) else {
            cx.error(
                "compose-volume",
                v.span,
                format!("volume `{}` of service `{}` has no source; anonymous volumes are not supported", v.target, svc.name),
                "name an App volume (e.g. `data:/var/lib/app`) or a relative directory",
            );
            continue;
        };
        if v.target.is_empty() || !v.target.starts_with('/') {
            cx.error(
                "compose-volume",
                v.span,
                format!("volume target `{}` must be an absolute path", v.target),
                "",
            );
            continue;
        }
        let (volume, sub) = match &v.kind {
            MountKind::Bind => {
                if cx.input.base_dir.is_none() {
                    cx.error(
                        "refbase",
                        v.span,
                        format!("bind volume `{source}` not allowed: this App is not defined in an app file (RefBase is empty)"),
                        "define the App in the app's kompoxapp.yml",
                    );
                    continue;
                }
                if source.starts_with('/') || source.starts_with('~') {
                    cx.error(
                        "compose-volume",
                        v.span,
                        format!("absolute bind volume `{source}` is not supported"),
                        "use a relative directory (it becomes a sub-path of the App's first volume)",
                    );
                    continue;
                }
                let Some(rel) = normalize_relative(source) else {
                    cx.error(
                        "compose-volume",
                        v.span,
                        format!("bind volume `{source}` leaves the app directory"),
                        "remove `..` from the path",
                    );
                    continue;
                };
                let base = cx.input.base_dir.unwrap_or("");
                let full = if base.is_empty() {
                    rel.clone()
                } else {
                    format!("{base}/{rel}")
                };
                if cx.input.files.read(&full).is_ok() {
                    cx.error(
                        "compose-volume",
                        v.span,
                        format!(
                            "bind volume source `{source}` must be a directory, but it is a file"
                        ),
                        "mount single files with compose configs or secrets",
                    );
                    continue;
                }
                let Some(first) = app.volumes.first() else {
                    cx.error(
                        "compose-volume",
                        v.span,
                        format!("relative bind volume `{source}` requires at least one App volume"),
                        "add a volume under spec.volumes in the App",
                    );
                    continue;
                };
                (
                    first.name.clone(),
                    if rel.is_empty() { None } else { Some(rel) },
                )
            }
            MountKind::Volume => {
                let (name, sub) = match source.split_once('/') {
                    Some((n, s)) => (
                        n,
                        Some(s.trim_matches('/').to_string()).filter(|s| !s.is_empty()),
                    ),
                    None => (source, None),
                };
                if !app.volumes.iter().any(|av| av.name == name) {
                    cx.error(
                        "compose-volume",
                        v.span,
                        format!("named volume '{name}' referenced by '{source}' is not defined in app volumes"),
                        "add it under spec.volumes in the App (KOM volumes are the disks)",
                    );
                    continue;
                }
                if let Some(s) = &sub
                    && normalize_relative(s).is_none()
                {
                    cx.error(
                        "compose-volume",
                        v.span,
                        format!("volume sub-path `{s}` leaves the volume"),
                        "remove `..`",
                    );
                    continue;
                }
                (name.to_string(), sub)
            }
            MountKind::Tmpfs => continue,
            MountKind::Other(t) => {
                cx.error(
                    "compose-volume",
                    v.span,
                    format!("unsupported volume type `{t}` in service `{}`", svc.name),
                    "use bind, volume or tmpfs",
                );
                continue;
            }
        };
        if let Some(s) = &sub {
            subpaths.insert((volume.clone(), s.clone()));
        }
        out.push(Mount {
            volume,
            mount_path: v.target.clone(),
            sub_path: sub,
            read_only: v.read_only,
            span: v.span,
        });
    }
    out
}

/// `./a/b/` → `a/b`; `None` when the path climbs out with `..`.
fn normalize_relative(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}
