//! A loaded compose project: what the converter needs, with spans.
//!
//! Produced by `compose::load` after interpolation, merge keys and
//! `!reset`/`!override` are applied. Every service key was classified as
//! mapped, ignored or rejected (see [`KeyReport`]).

use std::collections::BTreeMap;

use crate::yaml::Span;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ComposeProject {
    /// Active services, sorted by name.
    pub services: Vec<Service>,
    pub configs: BTreeMap<String, FileObjectDef>,
    pub secrets: BTreeMap<String, FileObjectDef>,
    /// Top-level `volumes:` names (informational: KOM volumes are the disks).
    pub volumes: BTreeMap<String, Span>,
    /// The per-key conversion report (DECISIONS 6).
    pub report: Vec<KeyReport>,
    /// The normalised compose document (`--out-compose`), as JSON.
    pub normalized: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileObjectDef {
    pub name: String,
    pub source: FileObjectSource,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileObjectSource {
    /// `file:` relative to the compose file's directory, as written.
    File(String),
    /// `content:` inline text.
    Content(String),
    /// `environment:` name of a variable (resolved from interpolation vars).
    Environment(String),
    /// `external: true` or name-only: passthrough, no object generated.
    External,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Service {
    pub name: String,
    pub span: Span,
    pub image: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    /// `None` values are keys given without a value (dropped, as compose
    /// would take them from the host environment, which we never read).
    pub environment: BTreeMap<String, Option<String>>,
    pub env_files: Vec<EnvFileRef>,
    pub ports: Vec<PortMapping>,
    pub volumes: Vec<VolumeMount>,
    pub configs: Vec<FileRef>,
    pub secrets: Vec<FileRef>,
    pub healthcheck: Option<Healthcheck>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub read_only: bool,
    pub tmpfs: Vec<TmpfsMount>,
    /// `(hostname, ip)` pairs in the order written.
    pub extra_hosts: Vec<(String, String)>,
    pub stop_grace_period_secs: Option<i64>,
    pub resources: Resources,
    pub depends_on: Vec<Dependency>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub stdin_open: bool,
    pub tty: bool,
    /// Kubernetes spelling (`Always`, `Never`, `IfNotPresent`).
    pub pull_policy: Option<String>,
    pub x_kompox: XKompox,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileRef {
    pub path: String,
    pub required: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The published (host) port; `None` when only a container port was given.
    pub published: Option<u16>,
    pub target: u16,
    pub protocol: String,
    pub host_ip: Option<String>,
    /// The entry as written, for messages.
    pub raw: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Volume,
    Tmpfs,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub kind: MountKind,
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    pub target: String,
    pub size_bytes: Option<u64>,
    pub span: Span,
}

/// A service's reference to a top-level config or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub source: String,
    pub target: Option<String>,
    pub mode: Option<i32>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// `None` when `disable: true` or `test: ["NONE"]`.
    pub test: Option<HealthTest>,
    pub interval_secs: Option<i64>,
    pub timeout_secs: Option<i64>,
    pub retries: Option<i64>,
    pub start_period_secs: Option<i64>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTest {
    /// `["CMD", args...]`: exec form.
    Exec(Vec<String>),
    /// `["CMD-SHELL", cmd]` or a plain string: run by `/bin/sh -c`.
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resources {
    pub limits_cpu: Option<String>,
    pub limits_memory: Option<String>,
    pub requests_cpu: Option<String>,
    pub requests_memory: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependsCondition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: DependsCondition,
    pub span: Span,
}

/// `x-kompox` on a service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XKompox {
    pub resources: Resources,
    /// Turn the healthcheck into a liveness probe too (off by default:
    /// DECISIONS 6).
    pub liveness: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Mapped,
    Ignored,
    Rejected,
}

/// One line of the conversion report: what happened to a compose key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyReport {
    /// Dotted path, e.g. `services.web.healthcheck`.
    pub key: String,
    pub status: KeyStatus,
    /// What it became, or why it was ignored/rejected.
    pub note: String,
    #[serde(skip)]
    pub span: Span,
}
