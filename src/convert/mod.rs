//! Convert stage (pure): one App + its compose project → the Kubernetes
//! objects and disk intents that make up its desired state.
//!
//! Deterministic byte for byte: every list that came from a map is sorted,
//! names and labels are the reference's (so apps deployed by the original
//! Kompox can be adopted), and nothing reads the clock, the environment or
//! the filesystem — file contents come from the [`FileTree`] value.

mod files;
mod names;
mod network;
mod pod;
mod rbac;
mod volumes;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use crate::diag::Diagnostic;
use crate::hash::AppHashes;
use crate::model::compose::{ComposeProject, KeyReport};
use crate::model::{AppContext, ResourceId, VolumeType};
use crate::provider::VolumeClass;
use crate::source::FileTree;

pub use names::Names;
pub use volumes::disk_name_for;

/// Marker shown where a value is only known after apply (a new disk's id and
/// the PV/PVC names derived from it).
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// A Kubernetes object Kompox wants to exist.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Object {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// The full object as JSON (apiVersion, kind, metadata, spec/data).
    pub body: Json,
    /// True when the object holds values only known after apply; it cannot
    /// be sent to the API server until the disk exists.
    pub pending: bool,
}

impl Object {
    pub fn new(body: Json) -> Object {
        let s = |p: &str| body.pointer(p).and_then(Json::as_str).map(str::to_string);
        Object {
            api_version: s("/apiVersion").unwrap_or_default(),
            kind: s("/kind").unwrap_or_default(),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name").unwrap_or_default(),
            body,
            pending: false,
        }
    }

    /// `Kind namespace/name` (or `Kind name` for cluster-scoped objects).
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    pub fn is_secret(&self) -> bool {
        self.kind == "Secret" && self.api_version == "v1"
    }
}

/// The disk an app volume is bound to, as observed from the driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundDisk {
    pub name: String,
    /// The driver's volume handle (hashed into the PV/PVC names).
    pub handle: String,
    pub size_bytes: u64,
    pub zone: Option<String>,
}

/// Per app volume: the disk it should have.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskIntent {
    pub volume: String,
    pub size_bytes: u64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub options: BTreeMap<String, Json>,
    /// Zones the disk may be created in (the App's `deployment.zone(s)`;
    /// empty = the driver's choice).
    pub zones: Vec<String>,
    /// `snapshot:<name>` / `disk:<name>` to create it from.
    pub source: Option<String>,
    /// Deterministic name for a disk created declaratively (DECISIONS 11).
    pub planned_name: String,
    /// The assigned disk, when one exists.
    pub assigned: Option<BoundDisk>,
}

/// Everything the converter produces for one App.
#[derive(Debug, Clone, PartialEq)]
pub struct AppDesired {
    pub app_id: ResourceId,
    pub cluster_id: ResourceId,
    pub namespace: String,
    pub driver: String,
    pub hashes: AppHashes,
    /// In the reference's output order.
    pub objects: Vec<Object>,
    pub disks: Vec<DiskIntent>,
    pub warnings: Vec<Diagnostic>,
    pub report: Vec<KeyReport>,
}

impl AppDesired {
    /// True when every volume has an assigned disk, so the manifest is
    /// complete (the original emits no manifest otherwise).
    pub fn is_complete(&self) -> bool {
        self.objects.iter().all(|o| !o.pending)
    }

    /// The objects as a multi-document YAML manifest.
    pub fn manifest_yaml(&self) -> String {
        manifest_yaml(self.objects.iter())
    }
}

/// Renders objects as `---`-separated YAML documents.
pub fn manifest_yaml<'a>(objects: impl Iterator<Item = &'a Object>) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&crate::yaml::to_yaml_string(&o.body));
    }
    out
}

/// What the converter needs besides the model.
pub struct ConvertInput<'a> {
    pub ctx: AppContext<'a>,
    pub compose: &'a ComposeProject,
    /// The project files (env files, config and secret files).
    pub files: &'a FileTree,
    /// Directory that relative compose references resolve against (the
    /// compose file's directory), or `None` when the App may not read local
    /// files (RefBase empty).
    pub base_dir: Option<&'a str>,
    /// Boundary for local references: the app file's directory.
    pub boundary: &'a str,
    /// Interpolation variables (for `environment:` sourced configs/secrets).
    pub vars: &'a BTreeMap<String, String>,
    /// The assigned disk of each app volume, by volume name.
    pub disks: &'a BTreeMap<String, BoundDisk>,
    /// The driver's volume class of each app volume, by volume name.
    pub classes: &'a BTreeMap<String, VolumeClass>,
}

/// Converts one App. Errors are returned all at once; warnings travel with
/// the result.
pub fn convert_app(input: &ConvertInput<'_>) -> Result<AppDesired, Vec<Diagnostic>> {
    let names = Names::new(&input.ctx);
    let mut cx = Cx {
        input,
        names: &names,
        errors: Vec::new(),
        warnings: Vec::new(),
    };

    let volume_plan = volumes::plan_volumes(&mut cx);
    let file_objects = files::build(&mut cx);
    let ports = network::collect_ports(&mut cx);
    let pod = pod::build(&mut cx, &volume_plan, &file_objects);
    let services = network::services(&mut cx, &ports);
    let ingresses = network::ingresses(&mut cx, &ports);

    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }

    let mut objects = Vec::new();
    objects.push(names.namespace_object());
    objects.extend(rbac::objects(&names));
    objects.push(network::network_policy(&names, input.ctx));
    objects.extend(volume_plan.pvs);
    objects.extend(volume_plan.pvcs);
    objects.extend(file_objects.objects);
    objects.push(pod);
    objects.extend(services);
    objects.extend(ingresses);

    let mut warnings = cx.warnings;
    for v in &input.ctx.app.volumes {
        if !input.disks.contains_key(&v.name) {
            warnings.push(
                Diagnostic::warning(
                    "volume-assignment-missing",
                    format!("volume `{}` has no assigned disk; its PV/PVC are known after apply", v.name),
                )
                .at(input.ctx.app.meta.origin.path.clone(), v.span)
                .resource(input.ctx.app.meta.id.to_string())
                .help("`kompoxops plan` shows the disk to create; `kompoxops disk create --bootstrap` creates it"),
            );
        }
    }

    Ok(AppDesired {
        app_id: input.ctx.app.meta.id.clone(),
        cluster_id: input.ctx.cluster.meta.id.clone(),
        namespace: names.namespace.clone(),
        driver: input.ctx.provider.driver.clone(),
        hashes: names.hashes.clone(),
        objects,
        disks: volume_plan.intents,
        warnings,
        report: input.compose.report.clone(),
    })
}

/// Conversion context shared by the sub-modules.
struct Cx<'a, 'b> {
    input: &'b ConvertInput<'a>,
    names: &'b Names,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Cx<'_, '_> {
    /// The file compose spans point into.
    fn compose_file(&self) -> String {
        match &self.input.ctx.app.compose {
            crate::model::ComposeRef::File(f) => match self.input.base_dir {
                Some(d) if !d.is_empty() => format!("{}/{}", d, f.trim_start_matches("./")),
                _ => f.trim_start_matches("./").to_string(),
            },
            crate::model::ComposeRef::Inline { .. } => self.input.ctx.app.meta.origin.path.clone(),
        }
    }

    /// An error in the compose file.
    fn error(
        &mut self,
        rule: &'static str,
        span: crate::yaml::Span,
        msg: impl Into<String>,
        help: &str,
    ) {
        let file = self.compose_file();
        self.push_error(file, rule, span, msg, help);
    }

    fn warn(&mut self, rule: &'static str, span: crate::yaml::Span, msg: impl Into<String>) {
        self.warnings.push(
            Diagnostic::warning(rule, msg)
                .at(self.compose_file(), span)
                .resource(self.input.ctx.app.meta.id.to_string()),
        );
    }

    /// An error in the App's KOM document.
    fn kom_error(
        &mut self,
        rule: &'static str,
        span: crate::yaml::Span,
        msg: impl Into<String>,
        help: &str,
    ) {
        let file = self.input.ctx.app.meta.origin.path.clone();
        self.push_error(file, rule, span, msg, help);
    }

    fn push_error(
        &mut self,
        file: String,
        rule: &'static str,
        span: crate::yaml::Span,
        msg: impl Into<String>,
        help: &str,
    ) {
        let mut d = Diagnostic::error(rule, msg)
            .at(file, span)
            .resource(self.input.ctx.app.meta.id.to_string());
        if !help.is_empty() {
            d = d.help(help);
        }
        self.errors.push(d);
    }
}

pub(crate) fn volume_type_name(t: VolumeType) -> &'static str {
    match t {
        VolumeType::Disk => "disk",
        VolumeType::Files => "files",
    }
}
