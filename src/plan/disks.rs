//! Disk changes of one app (DECISIONS 3, 11): create and assign a disk for
//! a volume that has none, finish the assignment of a disk created by a run
//! that stopped half-way, and nothing for a volume with its assigned disk.
//!
//! Disks are never deleted here; see the plan module header.

use serde_json::Value as Json;

use super::{Action, Change, Risk, Target};
use crate::convert::{AppDesired, DiskIntent};
use crate::diag::Diagnostic;
use crate::live::{Live, LiveDisk};

/// The disk changes and warnings of an app, or errors when the live disks
/// are inconsistent (more than one assigned disk for a volume).
pub fn plan_disks(
    app: &AppDesired,
    live: &Live,
) -> Result<(Vec<Change>, Vec<String>), Vec<Diagnostic>> {
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for intent in &app.disks {
        let of_volume: Vec<&LiveDisk> = live
            .disks
            .iter()
            .filter(|d| d.app_id_hash == app.hashes.app_id && d.volume == intent.volume)
            .collect();
        let assigned: Vec<&LiveDisk> = of_volume.iter().copied().filter(|d| d.assigned).collect();
        if assigned.len() > 1 {
            let mut names: Vec<&str> = assigned.iter().map(|d| d.name.as_str()).collect();
            names.sort_unstable();
            errors.push(
                Diagnostic::error(
                    "disk-multiple-assigned",
                    format!(
                        "volume `{}` has {} assigned disks ({}); exactly one may be assigned",
                        intent.volume,
                        names.len(),
                        names.join(", ")
                    ),
                )
                .resource(app.app_id.to_string())
                .help("assign the disk to keep with `kompoxops disk assign`"),
            );
            continue;
        }
        if let Some(bound) = &intent.assigned {
            let target = Target::Disk {
                volume: intent.volume.clone(),
                name: bound.name.clone(),
            };
            changes.push(Change::new(target, Action::NoOp, Risk::Safe));
            continue;
        }
        if let Some(d) = assigned.first() {
            warnings.push(format!(
                "volume `{}`: the live disks list `{}` as assigned, but the desired state was converted without it; its PV/PVC names are shown as known after apply",
                intent.volume, d.name
            ));
            let mut c = Change::new(
                Target::Disk {
                    volume: intent.volume.clone(),
                    name: d.name.clone(),
                },
                Action::NoOp,
                Risk::Safe,
            );
            c.details.push("assigned".into());
            changes.push(c);
            continue;
        }
        let target = Target::Disk {
            volume: intent.volume.clone(),
            name: intent.planned_name.clone(),
        };
        if of_volume.iter().any(|d| d.name == intent.planned_name) {
            // Created by a run that stopped before assigning it.
            let mut c = Change::new(target, Action::Update, Risk::Safe);
            c.details.push("assign".into());
            c.reasons
                .push("created by an earlier run that stopped before assigning it".into());
            changes.push(c);
            continue;
        }
        let mut c = Change::new(target, Action::Create, Risk::Safe);
        c.details = create_details(intent);
        c.known_after_apply = true;
        changes.push(c);
    }
    if errors.is_empty() {
        Ok((changes, warnings))
    } else {
        Err(errors)
    }
}

fn create_details(intent: &DiskIntent) -> Vec<String> {
    let mut first = format!("{} {}", size_label(intent.size_bytes), intent.kind);
    for (k, v) in &intent.options {
        let v = match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        first.push_str(&format!(", {k}: {v}"));
    }
    let mut out = vec![first];
    out.push(match intent.zones.as_slice() {
        [] => "zone: driver's choice".to_string(),
        [z] => format!("zone: {z}"),
        zs => format!("zones: {}", zs.join(", ")),
    });
    match &intent.source {
        Some(s) if s.starts_with("snapshot:") => out.push(format!("restore from {s}")),
        Some(s) => out.push(format!("copy from {s}")),
        None => {}
    }
    out.push("assign".into());
    out
}

/// `32 GiB`, `1.5 GiB`, `512 MiB`.
pub fn size_label(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB {
        if bytes.is_multiple_of(GIB) {
            format!("{} GiB", bytes / GIB)
        } else {
            // One decimal, rounded up so a size is never understated.
            let tenths = (u128::from(bytes) * 10).div_ceil(u128::from(GIB));
            format!("{}.{} GiB", tenths / 10, tenths % 10)
        }
    } else if bytes >= MIB {
        format!("{} MiB", bytes.div_ceil(MIB))
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::size_label;

    #[test]
    fn sizes() {
        assert_eq!(size_label(32 << 30), "32 GiB");
        assert_eq!(size_label(3 << 29), "1.5 GiB");
        assert_eq!(size_label(512 << 20), "512 MiB");
        assert_eq!(size_label(10), "10 B");
    }
}
