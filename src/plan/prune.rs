//! Inventory-based pruning (DECISIONS 8).
//!
//! An object is pruned only when it is listed in its app's inventory (what
//! Kompox applied last time), still exists in live and is desired by no
//! app. PersistentVolumes, claims, disks, snapshots and a Namespace that
//! holds a claim are never pruned: they are listed as kept instead. No
//! pruning happens at all in a run where an input failed to load or where
//! more than the allowed share of the apps would be removed; a plan note
//! says why.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, AppPlan, AppStatus, Change, DesiredIndex, PlanOptions, Risk, Target};
use crate::live::{INVENTORY_NAME, InventoryEntry, Live, LiveIndex, ObjectKey, api_group};
use crate::model::{Kind, ResourceId};

/// One app's inventories, merged (an app normally has one).
struct Merged {
    app_id: ResourceId,
    namespace: String,
    entries: BTreeSet<InventoryEntry>,
    bad_lines: Vec<String>,
}

pub fn plan_prunes(
    desired: &DesiredIndex,
    live: &Live,
    index: &LiveIndex,
    opts: &PlanOptions,
    apps: &mut Vec<AppPlan>,
    notes: &mut Vec<String>,
) {
    let mut merged: BTreeMap<String, Merged> = BTreeMap::new();
    for inv in live.inventories() {
        match inv {
            Ok(inv) => {
                let m = merged
                    .entry(inv.app_id.to_string())
                    .or_insert_with(|| Merged {
                        app_id: inv.app_id.clone(),
                        namespace: inv.namespace.clone(),
                        entries: BTreeSet::new(),
                        bad_lines: Vec::new(),
                    });
                m.entries.extend(inv.entries);
                m.bad_lines.extend(inv.bad_lines);
            }
            Err(e) => notes.push(e.to_string()),
        }
    }

    let in_desired = &desired.app_ids;
    let desired_keys = &desired.keys;
    let removed: Vec<&Merged> = merged
        .values()
        .filter(|m| !in_desired.contains(&m.app_id.to_string()))
        .filter(|m| {
            m.app_id
                .name_of(Kind::Workspace)
                .is_some_and(|ws| opts.workspaces.iter().any(|w| w == ws))
        })
        .collect();

    let mut why_not: Vec<String> = Vec::new();
    for (path, _) in &desired.failed_files {
        why_not.push(format!("app file {path} failed to load"));
    }
    for a in &desired.failed_apps {
        why_not.push(format!("app {a} failed to load"));
    }
    let total = desired.app_ids.len() + removed.len();
    // A share that is not a number allows no removal at all.
    let share = if opts.max_prune_share.is_nan() {
        0.0
    } else {
        opts.max_prune_share.clamp(0.0, 1.0)
    };
    if !removed.is_empty() && (removed.len() as f64) > share * total as f64 {
        why_not.push(format!(
            "{} of {} apps would be removed, more than the allowed share {} (Workspace spec.policy.maxPruneShare)",
            removed.len(),
            total,
            share
        ));
    }
    let suppressed = !why_not.is_empty();
    if suppressed {
        notes.push(format!("no pruning: {}", why_not.join("; ")));
    }

    for m in &removed {
        let mut app = AppPlan::new(&m.app_id, AppStatus::Removed);
        app.namespace = Some(m.namespace.clone());
        app.driver = index
            .get(&ObjectKey::new("v1", "Namespace", None, &m.namespace))
            .and_then(|ns| {
                ns.body()
                    .pointer("/metadata/annotations/kompox.dev~1provider-driver")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            });
        app.warnings.push(
            "not in the desired state; its disks, snapshots, PersistentVolumes and claims are always kept".into(),
        );
        if !opts.allow_app_removal {
            app.warnings.push(
                "the reconciler removes an app only when its Workspace sets spec.policy.allowAppRemoval".into(),
            );
        }
        if suppressed {
            if desired.any_failed() {
                app.warnings
                    .push("it may be defined in an app file that failed to load; nothing is pruned in this run (see the notes)".into());
            } else {
                app.warnings
                    .push("nothing is pruned in this run (see the notes)".into());
            }
        } else {
            bad_line_warnings(m, &mut app.warnings);
            app.changes = prune_changes(m, true, live, index, desired_keys);
        }
        apps.push(app);
    }

    if suppressed {
        return;
    }
    for app in apps.iter_mut().filter(|a| a.status == AppStatus::Planned) {
        let Some(m) = merged.get(&app.app_id.to_string()) else {
            continue;
        };
        bad_line_warnings(m, &mut app.warnings);
        let changes = prune_changes(m, false, live, index, desired_keys);
        app.changes.extend(changes);
    }
}

fn bad_line_warnings(m: &Merged, warnings: &mut Vec<String>) {
    for line in &m.bad_lines {
        warnings.push(format!(
            "inventory line `{line}` cannot be read; it is not pruned"
        ));
    }
}

fn prune_changes(
    m: &Merged,
    app_removed: bool,
    live: &Live,
    index: &LiveIndex,
    desired_keys: &BTreeSet<ObjectKey>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for entry in &m.entries {
        let key = entry.key();
        if desired_keys.contains(&key) {
            continue;
        }
        let Some(obj) = index.get(&key) else {
            continue;
        };
        let core = api_group(&obj.api_version).is_empty();
        if core && obj.kind == "ConfigMap" && obj.name == INVENTORY_NAME {
            continue;
        }
        let target = Target::of_live(obj);
        if core
            && matches!(
                obj.kind.as_str(),
                "PersistentVolume" | "PersistentVolumeClaim"
            )
        {
            let mut c = Change::new(target, Action::NoOp, Risk::Safe);
            c.reasons
                .push("kept: PersistentVolumes and PersistentVolumeClaims are never pruned".into());
            out.push(c);
            continue;
        }
        if core && obj.kind == "Namespace" && live.namespace_holds_pvc(&obj.name) {
            let mut c = Change::new(target, Action::NoOp, Risk::Safe);
            c.reasons.push("kept: holds a PersistentVolumeClaim".into());
            out.push(c);
            continue;
        }
        let mut reasons = Vec::new();
        if app_removed {
            reasons.push("app removed from Git".to_string());
        }
        if core && obj.kind == "Namespace" {
            reasons.push("deletes everything left in the namespace, Secrets set with `kompoxops secret` included".into());
        } else if matches!(
            obj.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet"
        ) {
            reasons.push("pod stops: the workload left the desired state".into());
        }
        let risk = if reasons.is_empty() {
            Risk::Safe
        } else {
            Risk::Disruptive
        };
        let mut c = Change::new(target, Action::Prune, risk);
        c.reasons = reasons;
        out.push(c);
    }
    out
}
