//! The golden cases' conversion, shared by the golden tests and the
//! testbed check that the API server accepts every golden object.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use kompox::convert::{BoundDisk, Object};
use kompox::desired::{self, AssignedDisks};
use kompox::kom::{self, ProjectEnv};
use kompox::model::ResourceId;
use kompox::source::{FileTree, TreeLimits};

/// Converts every App of the project at `dir`; `disks.json` beside the KOM
/// binds volumes to disks: `{"<app id>": {"<volume>": {name, handle, size_bytes, zone}}}`.
pub fn convert_dir(dir: &Path) -> (String, Vec<Object>) {
    let tree = FileTree::read_dir(dir, &TreeLimits::default()).expect("read case");
    let env = ProjectEnv {
        cwd: String::new(),
        ..ProjectEnv::default()
    };
    let project = kom::load_project(&tree, &env).unwrap_or_else(|e| {
        panic!(
            "{}: KOM errors: {}",
            dir.display(),
            e.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let disks = load_disks(dir);
    let desired = desired::build(&project, &tree, &[], &disks);
    let mut out = String::new();
    let mut objects = Vec::new();
    for app in &desired.apps {
        out.push_str(&format!("# app {}\n", app.app_id));
        match &app.result {
            Err(errs) => {
                for e in errs {
                    out.push_str(&format!("# error: {e}\n"));
                }
            }
            Ok(d) => {
                for w in &d.warnings {
                    out.push_str(&format!("# warning: {w}\n"));
                }
                for disk in &d.disks {
                    out.push_str(&format!(
                        "# disk intent: volume={} planned={} size={} zones={:?} source={:?}\n",
                        disk.volume, disk.planned_name, disk.size_bytes, disk.zones, disk.source
                    ));
                }
                out.push_str(&d.manifest_yaml());
                objects.extend(d.objects.iter().cloned());
            }
        }
    }
    (out, objects)
}

pub fn load_disks(dir: &Path) -> AssignedDisks {
    let Ok(text) = std::fs::read_to_string(dir.join("disks.json")) else {
        return AssignedDisks::new();
    };
    let raw: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
        serde_json::from_str(&text).expect("disks.json");
    raw.into_iter()
        .map(|(app, vols)| {
            let id: ResourceId = app.parse().expect("app id");
            let vols = vols
                .into_iter()
                .map(|(v, d)| {
                    (
                        v,
                        BoundDisk {
                            name: d["name"].as_str().unwrap().to_string(),
                            handle: d["handle"].as_str().unwrap().to_string(),
                            size_bytes: d["size_bytes"].as_u64().unwrap(),
                            zone: d["zone"].as_str().map(str::to_string),
                        },
                    )
                })
                .collect();
            (id, vols)
        })
        .collect()
}
