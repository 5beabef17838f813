//! Provider drivers: where every cloud difference lives.
//!
//! The pure stages need only how a disk of an app volume becomes a
//! PersistentVolume ([`VolumeClass`], [`volume_class`]). The disk and
//! snapshot contract is [`driver::Driver`] (registry: [`driver::driver_for`]);
//! [`k3s`] is its first real implementation. Node pools, credentials and
//! the cloud drivers arrive later; nothing outside this module names a cloud.

pub mod driver;
#[cfg(feature = "aws")]
pub mod eks;
pub mod host_ssh;
pub mod k3s;

use std::collections::BTreeMap;

use crate::model::{AppVolume, VolumeType};

/// How a PersistentVolume reaches the disk (DECISIONS 21).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A CSI volume; the volume handle is the disk's cloud id.
    Csi {
        driver: String,
        fs_type: Option<String>,
        attributes: BTreeMap<String, String>,
    },
    /// A directory on one node (K3s); the handle is `k3s:<node>:<path>`.
    Local,
}

/// Driver opinion on the PV/PVC of one app volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeClass {
    pub storage_class_name: String,
    pub source: VolumeSource,
    pub access_modes: Vec<String>,
    pub reclaim_policy: String,
    pub volume_mode: String,
    /// Node label that carries a disk's zone, for PV node affinity.
    pub zone_topology_key: Option<String>,
}

/// Known driver names.
pub const DRIVERS: &[&str] = &["aks", "eks", "gke", "oke", "k3s"];

/// Volume class of a driver for an app volume, or `None` for an unknown
/// driver or a volume type the driver does not offer.
pub fn volume_class(driver: &str, volume: &AppVolume) -> Option<VolumeClass> {
    let csi = |sc: &str, drv: &str, fs: Option<&str>, topo: &str| VolumeClass {
        storage_class_name: sc.to_string(),
        source: VolumeSource::Csi {
            driver: drv.to_string(),
            fs_type: fs.map(str::to_string),
            attributes: fs
                .map(|f| BTreeMap::from([("fsType".to_string(), f.to_string())]))
                .unwrap_or_default(),
        },
        access_modes: vec!["ReadWriteOnce".into()],
        reclaim_policy: "Retain".into(),
        volume_mode: "Filesystem".into(),
        zone_topology_key: Some(topo.to_string()),
    };
    if volume.kind == VolumeType::Files {
        return match driver {
            "aks" => Some(VolumeClass {
                storage_class_name: "azurefile-csi".into(),
                source: VolumeSource::Csi {
                    driver: "file.csi.azure.com".into(),
                    fs_type: None,
                    attributes: BTreeMap::from([("protocol".to_string(), "smb".to_string())]),
                },
                access_modes: vec!["ReadWriteMany".into()],
                reclaim_policy: "Retain".into(),
                volume_mode: "Filesystem".into(),
                zone_topology_key: None,
            }),
            _ => None,
        };
    }
    match driver {
        "aks" => Some(csi(
            "managed-csi",
            "disk.csi.azure.com",
            Some("ext4"),
            "topology.disk.csi.azure.com/zone",
        )),
        "eks" => Some(csi(
            "kompox-ebs",
            "ebs.csi.aws.com",
            Some("ext4"),
            "topology.kubernetes.io/zone",
        )),
        "gke" => Some(csi(
            "kompox-pd",
            "pd.csi.storage.gke.io",
            Some("ext4"),
            "topology.gke.io/zone",
        )),
        "oke" => Some(csi(
            "oci-bv",
            "blockvolume.csi.oraclecloud.com",
            Some("ext4"),
            "topology.kubernetes.io/zone",
        )),
        "k3s" => Some(VolumeClass {
            storage_class_name: "kompox-local".into(),
            source: VolumeSource::Local,
            access_modes: vec!["ReadWriteOnce".into()],
            reclaim_policy: "Retain".into(),
            volume_mode: "Filesystem".into(),
            zone_topology_key: None,
        }),
        _ => None,
    }
}
