//! The domain model that the loaders produce and the converter consumes.
//!
//! These are plain values: no I/O, no parsing. `kom` fills the KOM kinds,
//! `compose` fills [`compose`]. Field names follow KOM (reference §3) and
//! the extension fields of DECISIONS 14.

pub mod compose;
mod resource_id;

use std::collections::BTreeMap;

pub use resource_id::{Kind, ResourceId, ResourceIdError, is_dns_label};

use crate::yaml::Span;

/// Where a KOM document came from (the reference's `doc-path`/`doc-index`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// Path relative to the project root, `/`-separated.
    pub path: String,
    /// 1-based index of the document in its file.
    pub index: usize,
    /// Span of the document's `kind:` value (for messages about the document).
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meta {
    pub id: ResourceId,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Workspace {
    pub meta: Meta,
    pub settings: BTreeMap<String, String>,
    pub policy: WorkspacePolicy,
}

/// Workspace `spec.policy` (DECISIONS 14).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspacePolicy {
    pub allow_app_removal: bool,
    pub suspend: bool,
    /// Largest share of apps a single run may prune (0..=1).
    pub max_prune_share: f64,
}

impl Default for WorkspacePolicy {
    fn default() -> Self {
        WorkspacePolicy {
            allow_app_removal: false,
            suspend: false,
            max_prune_share: 0.5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Provider {
    pub meta: Meta,
    pub driver: String,
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cluster {
    pub meta: Meta,
    pub existing: bool,
    pub ingress: ClusterIngress,
    pub protection: Protection,
    pub settings: BTreeMap<String, String>,
    /// Cluster `spec.kubeconfig` (DECISIONS 15).
    pub kubeconfig: Option<KubeconfigRef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterIngress {
    pub namespace: String,
    pub controller: Option<String>,
    pub service_account: String,
    pub domain: Option<String>,
    pub cert_resolver: Option<String>,
    pub cert_email: Option<String>,
    pub certificates: Vec<Certificate>,
}

impl Default for ClusterIngress {
    fn default() -> Self {
        ClusterIngress {
            namespace: "traefik".into(),
            controller: None,
            service_account: "ingress-service-account".into(),
            domain: None,
            cert_resolver: None,
            cert_email: None,
            certificates: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub name: String,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtectionLevel {
    #[default]
    None,
    CannotDelete,
    ReadOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protection {
    pub provisioning: ProtectionLevel,
    pub installation: ProtectionLevel,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubeconfigRef {
    pub path: Option<String>,
    pub context: Option<String>,
}

/// Where an App's relative file references are resolved (reference §3.8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RefBase {
    /// The directory (relative to the project root, `""` for the root) of
    /// the app file that defined the App: local files may be read from it.
    Dir(String),
    /// No local file access (Apps from shared KOM).
    #[default]
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeRef {
    /// Inline compose YAML text; `line_offset` is the line of the text's
    /// first line in the KOM file, so compose errors can point into it.
    Inline { text: String, line_offset: u32 },
    /// `file:<relative path>`.
    File(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub meta: Meta,
    pub compose: ComposeRef,
    pub compose_span: Span,
    pub ingress: AppIngress,
    pub volumes: Vec<AppVolume>,
    pub deployment: Placement,
    pub network_policy: NetworkPolicy,
    pub resources: BTreeMap<String, String>,
    pub settings: BTreeMap<String, String>,
    /// App `spec.snapshots` (DECISIONS 12/14).
    pub snapshots: Option<SnapshotPolicy>,
    /// App `spec.policy` (DECISIONS 14).
    pub policy: AppPolicy,
    pub ref_base: RefBase,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppIngress {
    pub cert_resolver: Option<String>,
    pub rules: Vec<IngressRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRule {
    pub name: String,
    pub port: u16,
    pub hosts: Vec<String>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VolumeType {
    #[default]
    Disk,
    Files,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppVolume {
    pub name: String,
    pub size_bytes: u64,
    pub kind: VolumeType,
    /// Driver-interpreted options (e.g. `sku`, `iops`).
    pub options: BTreeMap<String, serde_json::Value>,
    /// `snapshot:<name>` or `disk:<name>`, used only when the disk is created.
    pub source: Option<String>,
    pub span: Span,
}

/// App `spec.deployment`: where the pod may run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    pub pool: Option<String>,
    pub pools: Vec<String>,
    pub zone: Option<String>,
    pub zones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkPolicy {
    pub ingress_rules: Vec<NetworkPolicyRule>,
}

/// One extra ingress rule. Selectors are kept as JSON (they are copied
/// verbatim into the Kubernetes object after validation).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkPolicyRule {
    pub from: Vec<serde_json::Value>,
    pub ports: Vec<NetworkPolicyPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicyPort {
    pub protocol: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPolicy {
    pub schedule: String,
    pub keep_count: Option<u32>,
    /// Kept as written (`30d`, `720h`); validated at load.
    pub keep_max_age: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZoneFailover {
    #[default]
    Manual,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppPolicy {
    pub allow_destroy: bool,
    pub suspend: bool,
    pub zone_failover: ZoneFailover,
}

/// Box (reference §3.6): loaded and validated; only standalone boxes
/// produce objects, and not yet in this version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BoxSpec {
    pub meta: Meta,
    pub component: Option<String>,
    pub image: Option<String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
}

/// The `Defaults` pseudo-kind of an app file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Defaults {
    pub kom_path: Vec<String>,
    pub app_id: Option<ResourceId>,
    pub origin: Origin,
}

/// A validated set of KOM objects.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KomSet {
    pub workspaces: Vec<Workspace>,
    pub providers: Vec<Provider>,
    pub clusters: Vec<Cluster>,
    pub apps: Vec<App>,
    pub boxes: Vec<BoxSpec>,
}

impl KomSet {
    pub fn workspace(&self, id: &ResourceId) -> Option<&Workspace> {
        self.workspaces.iter().find(|w| &w.meta.id == id)
    }
    pub fn provider(&self, id: &ResourceId) -> Option<&Provider> {
        self.providers.iter().find(|p| &p.meta.id == id)
    }
    pub fn cluster(&self, id: &ResourceId) -> Option<&Cluster> {
        self.clusters.iter().find(|c| &c.meta.id == id)
    }
    pub fn app(&self, id: &ResourceId) -> Option<&App> {
        self.apps.iter().find(|a| &a.meta.id == id)
    }
}

/// An App together with its parents: everything the converter needs from KOM.
#[derive(Debug, Clone, Copy)]
pub struct AppContext<'a> {
    pub workspace: &'a Workspace,
    pub provider: &'a Provider,
    pub cluster: &'a Cluster,
    pub app: &'a App,
}
