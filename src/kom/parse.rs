//! KOM documents → typed objects, one file at a time (load stage, pure).
//!
//! Covers the envelope (reference §3.1), every kind's spec (§3.2–3.7) and
//! the extension fields of DECISIONS 14. Checks that need only the
//! document itself happen here; checks across documents (duplicates,
//! parents) are in `validate`.

use std::collections::BTreeMap;

use super::fields::{Cx, RULE_INVALID_FIELD, join_path};
use super::values;
use crate::diag::Diagnostic;
use crate::model::{
    App, AppIngress, AppPolicy, AppVolume, BoxSpec, Certificate, Cluster, ClusterIngress,
    ComposeRef, Defaults, IngressRule, Kind, KubeconfigRef, Meta, NetworkPolicy, NetworkPolicyPort,
    NetworkPolicyRule, Origin, Placement, Protection, ProtectionLevel, Provider, RefBase,
    ResourceId, SnapshotPolicy, VolumeType, Workspace, WorkspacePolicy, ZoneFailover,
};
use crate::yaml::{Limits, Node, Span, parse_documents};

pub const API_VERSION: &str = "ops.kompox.dev/v1alpha1";
pub const ID_ANNOTATION: &str = "ops.kompox.dev/id";

pub(crate) const RULE_INVALID_DOCUMENT: &str = "kom-invalid-document";
pub(crate) const RULE_INVALID_ID: &str = "kom-invalid-id";
pub(crate) const RULE_DEFAULTS: &str = "kom-defaults";

/// A persistent KOM object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Object {
    Workspace(Workspace),
    Provider(Provider),
    Cluster(Cluster),
    App(Box<App>),
    Box(BoxSpec),
}

impl Object {
    pub fn meta(&self) -> &Meta {
        match self {
            Object::Workspace(o) => &o.meta,
            Object::Provider(o) => &o.meta,
            Object::Cluster(o) => &o.meta,
            Object::App(o) => &o.meta,
            Object::Box(o) => &o.meta,
        }
    }
}

/// A document that passed its own checks.
#[derive(Debug, Clone)]
pub(crate) struct ParsedDoc {
    pub kind: Kind,
    pub object: Object,
    /// Span of the `ops.kompox.dev/id` value, for set-level errors.
    pub id_span: Span,
}

impl ParsedDoc {
    pub fn id(&self) -> &ResourceId {
        &self.object.meta().id
    }
}

/// A `Defaults` document, with the spans its paths need for later errors.
#[derive(Debug, Clone)]
pub(crate) struct DefaultsDoc {
    pub defaults: Defaults,
    pub kom_path_spans: Vec<Span>,
}

/// Everything one KOM file yielded.
#[derive(Debug, Default)]
pub(crate) struct FileDocs {
    pub docs: Vec<ParsedDoc>,
    pub defaults: Vec<DefaultsDoc>,
    /// Resource IDs of documents that had errors of their own (so that
    /// their children do not also report a missing parent).
    pub invalid_ids: Vec<ResourceId>,
    /// Every App Resource ID the file declares, valid or not.
    pub declared_apps: Vec<ResourceId>,
    pub diags: Vec<Diagnostic>,
}

/// Parses one KOM file. `ref_base` is given to every App in it.
pub(crate) fn parse_file(path: &str, text: &str, ref_base: &RefBase) -> FileDocs {
    let mut out = FileDocs::default();
    let docs = match parse_documents(text, &Limits::default()) {
        Ok(d) => d,
        Err(e) => {
            out.diags.push(
                Diagnostic::error(e.rule, format!("invalid YAML: {}", e.message)).at(path, e.span),
            );
            return out;
        }
    };
    for (i, node) in docs.iter().enumerate() {
        parse_document(path, text, i + 1, node, ref_base, &mut out);
    }
    out
}

fn parse_document(
    path: &str,
    text: &str,
    index: usize,
    doc: &Node,
    ref_base: &RefBase,
    out: &mut FileDocs,
) {
    if doc.is_null() {
        return;
    }
    let mut cx = Cx::new(path, format!("document {index}"));
    let Some(entries) = doc.as_map() else {
        cx.error(
            RULE_INVALID_DOCUMENT,
            doc.span,
            format!("document {index} is {}, not a mapping", doc.kind_name()),
        );
        out.diags.append(&mut cx.diags);
        return;
    };
    if entries.is_empty() {
        return;
    }
    // Both apiVersion and kind must be strings before a document can be
    // recognised as foreign, as in the original.
    let api = envelope_string(&mut cx, doc, "apiVersion", index);
    let kind = envelope_string(&mut cx, doc, "kind", index);
    let (Some((api, _)), Some((kind_name, kind_span))) = (api, kind) else {
        out.diags.append(&mut cx.diags);
        return;
    };
    if api != API_VERSION {
        return;
    }
    let kind = match kind_name.as_str() {
        "Defaults" => None,
        k => match Kind::from_kom_name(k) {
            Some(kind) => Some(kind),
            None => {
                cx.error_help(
                    RULE_INVALID_DOCUMENT,
                    kind_span,
                    format!("unknown kind `{k}` for apiVersion {API_VERSION}"),
                    "KOM kinds are Workspace, Provider, Cluster, App, Box and Defaults",
                );
                out.diags.append(&mut cx.diags);
                return;
            }
        },
    };
    cx.what = kind_name.clone();
    let top_level: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
    let origin = Origin {
        path: path.to_string(),
        index,
        span: kind_span,
    };
    let Some(kind) = kind else {
        cx.map(Some(doc), "", top_level);
        parse_defaults(&mut cx, doc, origin, out);
        out.diags.append(&mut cx.diags);
        return;
    };

    let errors_before = cx.error_count();
    let (meta, id_span) = parse_meta(&mut cx, doc, kind, origin, &kind_name);
    cx.map(Some(doc), "", top_level);
    let known: &[&str] = match kind {
        Kind::Workspace => &["settings", "policy"],
        Kind::Provider => &["driver", "settings"],
        Kind::Cluster => &[
            "existing",
            "ingress",
            "protection",
            "settings",
            "kubeconfig",
        ],
        Kind::App => &[
            "compose",
            "ingress",
            "volumes",
            "deployment",
            "networkPolicy",
            "resources",
            "settings",
            "snapshots",
            "policy",
        ],
        Kind::Box => &[
            "component",
            "image",
            "command",
            "args",
            "ingress",
            "networkPolicy",
        ],
    };
    // An absent spec reads like an empty one.
    let empty_map = Node {
        value: crate::yaml::Value::Map(Vec::new()),
        span: doc.span,
        tag: None,
    };
    let spec = cx.map(doc.get("spec"), "spec", known).unwrap_or(&empty_map);
    let meta = meta.unwrap_or_default();
    let object = match kind {
        Kind::Workspace => Object::Workspace(parse_workspace(&mut cx, spec, meta)),
        Kind::Provider => Object::Provider(Provider {
            driver: cx.string(spec, "driver", "spec").unwrap_or_default(),
            settings: cx.string_map(spec, "settings", "spec"),
            meta,
        }),
        Kind::Cluster => Object::Cluster(parse_cluster(&mut cx, spec, meta)),
        Kind::App => {
            let app = parse_app(&mut cx, text, spec, doc, meta, ref_base.clone());
            Object::App(Box::new(app))
        }
        Kind::Box => Object::Box(parse_box(&mut cx, spec, meta)),
    };
    let id = object.meta().id.clone();
    if kind == Kind::App && !id.is_empty() {
        out.declared_apps.push(id.clone());
    }
    if cx.error_count() > errors_before || id.is_empty() {
        if !id.is_empty() {
            out.invalid_ids.push(id);
        }
    } else {
        out.docs.push(ParsedDoc {
            kind,
            object,
            id_span,
        });
    }
    out.diags.append(&mut cx.diags);
}

fn envelope_string(cx: &mut Cx, doc: &Node, key: &str, index: usize) -> Option<(String, Span)> {
    match doc.get(key) {
        Some(n) if n.is_scalar() && !n.is_null() => {
            Some((n.scalar_text().unwrap_or_default(), n.span))
        }
        Some(n) => {
            cx.error(
                RULE_INVALID_DOCUMENT,
                n.span,
                format!("`{key}` of document {index} must be a string"),
            );
            None
        }
        None => {
            cx.error_help(
                RULE_INVALID_DOCUMENT,
                doc.span,
                format!("document {index} has no `{key}`"),
                format!(
                    "KOM documents start with `apiVersion: {API_VERSION}` and `kind:`; files in KOM paths must contain only YAML documents with both"
                ),
            );
            None
        }
    }
}

const META_KEYS: &[&str] = &["name", "labels", "annotations"];

/// `metadata`: name, labels, annotations and the Resource ID. Returns
/// `None` when the document cannot be identified.
fn parse_meta(
    cx: &mut Cx,
    doc: &Node,
    kind: Kind,
    origin: Origin,
    kind_name: &str,
) -> (Option<Meta>, Span) {
    let result = identify(cx, doc, kind, origin, kind_name);
    // Unknown metadata keys are reported once the document is identified,
    // so that the warning can name it.
    if let Some(md) = doc.get("metadata") {
        cx.warn_unknown(md, "metadata", META_KEYS);
    }
    result
}

fn identify(
    cx: &mut Cx,
    doc: &Node,
    kind: Kind,
    origin: Origin,
    kind_name: &str,
) -> (Option<Meta>, Span) {
    let Some(md) = cx.mapping(doc.get("metadata"), "metadata") else {
        if doc.get("metadata").is_none_or(Node::is_null) {
            cx.error(
                RULE_INVALID_DOCUMENT,
                origin.span,
                format!("{kind_name} has no `metadata`; `metadata.name` is required"),
            );
        }
        return (None, origin.span);
    };
    let name = cx.nonempty(md, "name", "metadata");
    let Some(name) = name else {
        cx.error(
            RULE_INVALID_DOCUMENT,
            md.span,
            format!("{kind_name} has no `metadata.name`"),
        );
        return (None, md.span);
    };
    cx.what = format!("{kind_name} \"{name}\"");
    let labels = cx.string_map(md, "labels", "metadata");
    let annotations = cx.string_map(md, "annotations", "metadata");
    let id_node = md
        .get("annotations")
        .and_then(|a| a.get(ID_ANNOTATION))
        .filter(|n| !n.is_null());
    let Some(id_node) = id_node else {
        cx.error_help(
            RULE_INVALID_ID,
            md.span,
            format!("{kind_name} \"{name}\" has no Resource ID"),
            format!(
                "add `metadata.annotations.\"{ID_ANNOTATION}\"`, e.g. \"{}\"",
                example_id(kind, &name)
            ),
        );
        return (None, md.span);
    };
    let id_text = annotations.get(ID_ANNOTATION).cloned().unwrap_or_default();
    let id: ResourceId = match id_text.parse() {
        Ok(id) => id,
        Err(e) => {
            cx.error_help(
                RULE_INVALID_ID,
                id_node.span,
                format!("invalid Resource ID \"{id_text}\": {e}"),
                format!(
                    "for this {kind_name} it looks like \"{}\"",
                    example_id(kind, &name)
                ),
            );
            return (None, id_node.span);
        }
    };
    cx.resource = Some(id.to_string());
    if id.kind() != Some(kind) {
        let short = id.kind().map(Kind::short).unwrap_or("?");
        cx.error_help(
            RULE_INVALID_ID,
            id_node.span,
            format!("Resource ID \"{id}\" names a `{short}`, but the document is a {kind_name}"),
            format!(
                "for this {kind_name} it looks like \"{}\"",
                example_id(kind, &name)
            ),
        );
        return (None, id_node.span);
    }
    if id.name() != name {
        cx.error(
            RULE_INVALID_ID,
            id_node.span,
            format!(
                "Resource ID \"{id}\" ends in name \"{}\", but metadata.name is \"{name}\"",
                id.name()
            ),
        );
        return (None, id_node.span);
    }
    // From here on diagnostics carry the Resource ID as their resource.
    cx.what = kind_name.to_string();
    (
        Some(Meta {
            id,
            name,
            labels,
            annotations,
            origin,
        }),
        id_node.span,
    )
}

fn example_id(kind: Kind, name: &str) -> String {
    let mut s = String::new();
    for depth in 1..kind.depth() {
        if let Some(k) = Kind::at_depth(depth) {
            s.push_str(&format!("/{}/<{}>", k.short(), k.kom_name().to_lowercase()));
        }
    }
    format!("{s}/{}/{name}", kind.short())
}

fn parse_defaults(cx: &mut Cx, doc: &Node, origin: Origin, out: &mut FileDocs) {
    let md = cx.map(doc.get("metadata"), "metadata", META_KEYS);
    // The original requires a name even here (reference §3.7).
    if md
        .and_then(|m| cx.nonempty(m, "name", "metadata"))
        .is_none()
    {
        cx.error(
            RULE_DEFAULTS,
            md.map_or(origin.span, |m| m.span),
            "Defaults has no `metadata.name` (it is required, as in the original Kompox)",
        );
        return;
    }
    let mut defaults = Defaults {
        origin,
        ..Defaults::default()
    };
    let mut spans = Vec::new();
    if let Some(spec) = cx.map(doc.get("spec"), "spec", &["komPath", "appId"]) {
        for (p, span) in cx.string_list(spec, "komPath", "spec") {
            defaults.kom_path.push(p);
            spans.push(span);
        }
        if let Some((id, span)) = cx.string_node(spec, "appId", "spec")
            && !id.is_empty()
        {
            match id.parse::<ResourceId>() {
                Ok(rid) => defaults.app_id = Some(rid),
                Err(e) => cx.error(
                    RULE_DEFAULTS,
                    span,
                    format!("invalid `spec.appId` \"{id}\": {e}"),
                ),
            }
        }
    }
    out.defaults.push(DefaultsDoc {
        defaults,
        kom_path_spans: spans,
    });
}

fn parse_workspace(cx: &mut Cx, spec: &Node, meta: Meta) -> Workspace {
    let mut policy = WorkspacePolicy::default();
    if let Some(p) = cx.map(
        spec.get("policy"),
        "spec.policy",
        &["allowAppRemoval", "suspend", "maxPruneShare"],
    ) {
        let path = "spec.policy";
        policy.allow_app_removal = cx.bool(p, "allowAppRemoval", path).unwrap_or(false);
        policy.suspend = cx.bool(p, "suspend", path).unwrap_or(false);
        if let Some((share, _)) = cx.float(p, "maxPruneShare", path) {
            if (0.0..=1.0).contains(&share) {
                policy.max_prune_share = share;
            } else if let Some(n) = p.get("maxPruneShare") {
                cx.invalid(
                    n,
                    "spec.policy.maxPruneShare",
                    format!("{share} is not between 0 and 1 (a share of the apps, e.g. 0.5)"),
                );
            }
        }
    }
    Workspace {
        settings: cx.string_map(spec, "settings", "spec"),
        policy,
        meta,
    }
}

fn parse_cluster(cx: &mut Cx, spec: &Node, meta: Meta) -> Cluster {
    let mut cluster = Cluster {
        existing: cx.bool(spec, "existing", "spec").unwrap_or(false),
        settings: cx.string_map(spec, "settings", "spec"),
        ..Cluster::default()
    };
    if let Some(ing) = cx.map(
        spec.get("ingress"),
        "spec.ingress",
        &[
            "namespace",
            "controller",
            "serviceAccount",
            "domain",
            "certResolver",
            "certEmail",
            "certificates",
        ],
    ) {
        let p = "spec.ingress";
        let d = ClusterIngress::default();
        let mut ingress = ClusterIngress {
            namespace: cx.nonempty(ing, "namespace", p).unwrap_or(d.namespace),
            controller: cx.nonempty(ing, "controller", p),
            service_account: cx
                .nonempty(ing, "serviceAccount", p)
                .unwrap_or(d.service_account),
            domain: cx.nonempty(ing, "domain", p),
            cert_resolver: cx.nonempty(ing, "certResolver", p),
            cert_email: cx.nonempty(ing, "certEmail", p),
            certificates: Vec::new(),
        };
        for (i, c) in cx.seq(ing, "certificates", p).iter().enumerate() {
            let cp = format!("{p}.certificates[{i}]");
            let Some(c) = cx.map(Some(c), &cp, &["name", "source"]) else {
                continue;
            };
            let name = cx.nonempty(c, "name", &cp);
            let source = cx.nonempty(c, "source", &cp);
            match (name, source) {
                (Some(name), Some(source)) => {
                    if !crate::model::is_dns_label(&name) {
                        cx.invalid(
                            c.get("name").unwrap_or(c),
                            &format!("{cp}.name"),
                            format!("\"{name}\" is not a DNS-1123 label (it names the secret tls-{name})"),
                        );
                    }
                    ingress.certificates.push(Certificate { name, source });
                }
                _ => cx.invalid(c, &cp, "a certificate needs both `name` and `source`"),
            }
        }
        cluster.ingress = ingress;
    }
    if let Some(pr) = cx.map(
        spec.get("protection"),
        "spec.protection",
        &["provisioning", "installation"],
    ) {
        cluster.protection = Protection {
            provisioning: protection_level(cx, pr, "provisioning"),
            installation: protection_level(cx, pr, "installation"),
        };
    }
    if let Some(kc) = cx.map(
        spec.get("kubeconfig"),
        "spec.kubeconfig",
        &["path", "context"],
    ) {
        let r = KubeconfigRef {
            path: cx.nonempty(kc, "path", "spec.kubeconfig"),
            context: cx.nonempty(kc, "context", "spec.kubeconfig"),
        };
        if let Some(p) = &r.path
            && p.contains("://")
        {
            cx.invalid(
                kc.get("path").unwrap_or(kc),
                "spec.kubeconfig.path",
                "must be a local file path, not a URL",
            );
        }
        if r.path.is_some() || r.context.is_some() {
            cluster.kubeconfig = Some(r);
        }
    }
    cluster.meta = meta;
    cluster
}

fn protection_level(cx: &mut Cx, map: &Node, key: &str) -> ProtectionLevel {
    let path = "spec.protection";
    match cx.string(map, key, path).as_deref() {
        None | Some("") | Some("none") => ProtectionLevel::None,
        Some("cannotDelete") => ProtectionLevel::CannotDelete,
        Some("readOnly") => ProtectionLevel::ReadOnly,
        Some(other) => {
            if let Some(n) = map.get(key) {
                cx.invalid(
                    n,
                    &join_path(path, key),
                    format!("\"{other}\" is not one of none, cannotDelete, readOnly"),
                );
            }
            ProtectionLevel::None
        }
    }
}

fn parse_app(
    cx: &mut Cx,
    text: &str,
    spec: &Node,
    doc: &Node,
    meta: Meta,
    ref_base: RefBase,
) -> App {
    let (compose, compose_span) = parse_compose(cx, text, spec, doc);
    let mut ingress = AppIngress::default();
    if let Some(ing) = cx.map(
        spec.get("ingress"),
        "spec.ingress",
        &["certResolver", "rules"],
    ) {
        ingress.cert_resolver = cx.nonempty(ing, "certResolver", "spec.ingress");
        ingress.rules = parse_ingress_rules(cx, ing);
    }
    App {
        compose,
        compose_span,
        ingress,
        volumes: parse_volumes(cx, spec),
        deployment: parse_deployment(cx, spec),
        network_policy: parse_network_policy(cx, spec, "spec.networkPolicy"),
        resources: cx.string_map(spec, "resources", "spec"),
        settings: cx.string_map(spec, "settings", "spec"),
        snapshots: parse_snapshots(cx, spec),
        policy: parse_app_policy(cx, spec),
        ref_base,
        meta,
    }
}

/// `spec.compose`: `file:<path>` or inline compose text. The path is only
/// recorded here; whether it may be read (RefBase, `..`) is the
/// converter's decision (reference §3.8).
fn parse_compose(cx: &mut Cx, text: &str, spec: &Node, doc: &Node) -> (ComposeRef, Span) {
    let empty = (
        ComposeRef::Inline {
            text: String::new(),
            line_offset: 0,
        },
        doc.span,
    );
    let Some(node) = cx.field(spec, "compose") else {
        let what = cx.what.clone();
        cx.warn(
            RULE_INVALID_FIELD,
            doc.get("spec").unwrap_or(doc).span,
            format!("{what} has no `spec.compose`; it cannot be deployed until it has one"),
        );
        return empty;
    };
    let Some(value) = node.as_str().filter(|_| node.is_scalar()) else {
        cx.error_help(
            RULE_INVALID_FIELD,
            node.span,
            "spec.compose must be a string (inline YAML text or file:<path>)",
            "write the compose file inline as a block string (`compose: |`) or refer to it with `compose: file:compose.yml`",
        );
        return empty;
    };
    if let Some(path) = value.trim().strip_prefix("file:") {
        let path = path.trim();
        if path.is_empty() {
            cx.invalid(
                node,
                "spec.compose",
                "`file:` needs a path, e.g. file:compose.yml",
            );
            return empty;
        }
        return (ComposeRef::File(path.to_string()), node.span);
    }
    // A block scalar's text starts on the line after its `|`/`>` header.
    let header = text
        .as_bytes()
        .get(node.span.start as usize)
        .copied()
        .unwrap_or(b' ');
    let line_offset = if matches!(header, b'|' | b'>') {
        node.span.line + 1
    } else {
        node.span.line
    };
    (
        ComposeRef::Inline {
            text: value.to_string(),
            line_offset,
        },
        node.span,
    )
}

fn parse_ingress_rules(cx: &mut Cx, ing: &Node) -> Vec<IngressRule> {
    let mut rules: Vec<IngressRule> = Vec::new();
    for (i, r) in cx.seq(ing, "rules", "spec.ingress").iter().enumerate() {
        let rp = format!("spec.ingress.rules[{i}]");
        let Some(r) = cx.map(Some(r), &rp, &["name", "port", "hosts"]) else {
            continue;
        };
        let name = cx.string(r, "name", &rp).unwrap_or_default();
        let name_node = r.get("name").unwrap_or(r);
        if !values::is_ingress_rule_name(&name) {
            cx.invalid(
                name_node,
                &format!("{rp}.name"),
                format!(
                    "\"{name}\" is not a valid ingress rule name (1 to 15 characters: a lowercase letter, then lowercase letters, digits or '-')"
                ),
            );
        } else if let Some(prev) = rules.iter().find(|p| p.name == name) {
            cx.invalid(
                name_node,
                &format!("{rp}.name"),
                format!(
                    "duplicate ingress rule name \"{name}\" (first used at line {})",
                    prev.span.line
                ),
            );
        }
        let port = match cx.int(r, "port", &rp) {
            Some((p, _)) if (1..=65535).contains(&p) => p as u16,
            Some((p, span)) => {
                cx.error(
                    RULE_INVALID_FIELD,
                    span,
                    format!("`{rp}.port`: {p} is not a port number (1 to 65535)"),
                );
                0
            }
            None => {
                if r.get("port").is_none_or(Node::is_null) {
                    cx.invalid(r, &format!("{rp}.port"), "is required");
                }
                0
            }
        };
        let hosts = cx
            .string_list(r, "hosts", &rp)
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        rules.push(IngressRule {
            name,
            port,
            hosts,
            span: r.span,
        });
    }
    rules
}

fn parse_volumes(cx: &mut Cx, spec: &Node) -> Vec<AppVolume> {
    let mut vols: Vec<AppVolume> = Vec::new();
    for (i, v) in cx.seq(spec, "volumes", "spec").iter().enumerate() {
        let vp = format!("spec.volumes[{i}]");
        let Some(v) = cx.map(Some(v), &vp, &["name", "size", "type", "options", "source"]) else {
            continue;
        };
        let name = cx.string(v, "name", &vp).unwrap_or_default();
        let name_node = v.get("name").unwrap_or(v);
        if !values::is_volume_name(&name) {
            cx.invalid(
                name_node,
                &format!("{vp}.name"),
                format!(
                    "\"{name}\" is not a valid volume name (a DNS-1123 label of 1 to 16 characters: lowercase letters, digits and '-')"
                ),
            );
        } else if let Some(prev) = vols.iter().find(|p| p.name == name) {
            cx.invalid(
                name_node,
                &format!("{vp}.name"),
                format!(
                    "duplicate volume name \"{name}\" (first used at line {})",
                    prev.span.line
                ),
            );
        }
        let size_bytes = match v.get("size").filter(|n| !n.is_null()) {
            None => {
                cx.invalid(v, &format!("{vp}.size"), "is required (e.g. size: 32Gi)");
                0
            }
            Some(n) => match n.as_str().filter(|_| n.is_scalar()) {
                Some(s) => match values::parse_quantity(s) {
                    Ok(b) => b,
                    Err(e) => {
                        cx.invalid(n, &format!("{vp}.size"), e);
                        0
                    }
                },
                None => {
                    cx.invalid(
                        n,
                        &format!("{vp}.size"),
                        format!(
                            "expected bytes or a quantity like 32Gi, found {}",
                            n.kind_name()
                        ),
                    );
                    0
                }
            },
        };
        let kind = match cx.string(v, "type", &vp).as_deref() {
            None | Some("") | Some("disk") => VolumeType::Disk,
            Some("files") => VolumeType::Files,
            Some(other) => {
                cx.invalid(
                    v.get("type").unwrap_or(v),
                    &format!("{vp}.type"),
                    format!("\"{other}\" is not a volume type (disk or files)"),
                );
                VolumeType::Disk
            }
        };
        let mut options = BTreeMap::new();
        if let Some(o) = cx.field(v, "options") {
            match o.as_map() {
                Some(entries) => {
                    for (k, val) in entries {
                        options.insert(k.scalar_text().unwrap_or_default(), val.to_json());
                    }
                }
                None => cx.invalid(o, &format!("{vp}.options"), "expected a mapping"),
            }
        }
        let source = cx.nonempty(v, "source", &vp);
        if let Some(src) = &source {
            let ok = match src.split_once(':') {
                Some(("snapshot" | "disk", n)) => values::is_disk_name(n),
                _ => false,
            };
            if !ok {
                cx.invalid(
                    v.get("source").unwrap_or(v),
                    &format!("{vp}.source"),
                    format!(
                        "\"{src}\" is not `snapshot:<name>` or `disk:<name>` (names: DNS-1123 labels of 1 to 24 characters)"
                    ),
                );
            }
        }
        vols.push(AppVolume {
            name,
            size_bytes,
            kind,
            options,
            source,
            span: v.span,
        });
    }
    vols
}

fn parse_deployment(cx: &mut Cx, spec: &Node) -> Placement {
    let p = "spec.deployment";
    let Some(d) = cx.map(
        spec.get("deployment"),
        p,
        &["pool", "pools", "zone", "zones", "selectors"],
    ) else {
        return Placement::default();
    };
    let strings = |cx: &mut Cx, key| {
        cx.string_list(d, key, p)
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>()
    };
    let placement = Placement {
        pool: cx.nonempty(d, "pool", p),
        pools: strings(cx, "pools"),
        zone: cx.nonempty(d, "zone", p),
        zones: strings(cx, "zones"),
    };
    if placement.pool.is_some() && !placement.pools.is_empty() {
        cx.invalid(
            d.get("pools").unwrap_or(d),
            p,
            "deployment.pool and deployment.pools cannot be specified together",
        );
    }
    if placement.zone.is_some() && !placement.zones.is_empty() {
        cx.invalid(
            d.get("zones").unwrap_or(d),
            p,
            "deployment.zone and deployment.zones cannot be specified together",
        );
    }
    if let Some(sel) = cx.field(d, "selectors")
        && sel.as_map().is_none_or(|m| !m.is_empty())
    {
        cx.invalid(
            sel,
            "spec.deployment.selectors",
            "deployment.selectors is reserved and not supported yet",
        );
    }
    placement
}

/// `networkPolicy.ingressRules` (reference §3.5), shared by App and Box.
pub(crate) fn parse_network_policy(cx: &mut Cx, spec: &Node, path: &str) -> NetworkPolicy {
    let mut np = NetworkPolicy::default();
    let Some(node) = cx.map(spec.get("networkPolicy"), path, &["ingressRules"]) else {
        return np;
    };
    for (i, r) in cx.seq(node, "ingressRules", path).iter().enumerate() {
        let rp = format!("{path}.ingressRules[{i}]");
        let Some(r) = cx.map(Some(r), &rp, &["from", "ports"]) else {
            continue;
        };
        let from_nodes = cx.seq(r, "from", &rp);
        let port_nodes = cx.seq(r, "ports", &rp);
        if from_nodes.is_empty() && port_nodes.is_empty() {
            cx.invalid(
                r,
                &rp,
                "the rule is empty (it must specify `from` or `ports`)",
            );
            continue;
        }
        if from_nodes.is_empty() {
            cx.invalid(r, &rp, "`from` is required when `ports` are set");
        }
        let mut rule = NetworkPolicyRule::default();
        for (j, f) in from_nodes.iter().enumerate() {
            let fp = format!("{rp}.from[{j}]");
            if let Some(peer) = parse_peer(cx, f, &fp) {
                rule.from.push(peer);
            }
        }
        for (j, pn) in port_nodes.iter().enumerate() {
            let pp = format!("{rp}.ports[{j}]");
            let Some(pn) = cx.map(Some(pn), &pp, &["protocol", "port"]) else {
                continue;
            };
            let protocol = match cx.nonempty(pn, "protocol", &pp) {
                None => "TCP".to_string(),
                Some(p) if matches!(p.as_str(), "TCP" | "UDP" | "SCTP") => p,
                Some(p) => {
                    cx.invalid(
                        pn.get("protocol").unwrap_or(pn),
                        &format!("{pp}.protocol"),
                        format!("\"{p}\" is not TCP, UDP or SCTP"),
                    );
                    continue;
                }
            };
            match cx.int(pn, "port", &pp) {
                Some((port, _)) if (1..=65535).contains(&port) => {
                    rule.ports.push(NetworkPolicyPort {
                        protocol,
                        port: port as u16,
                    })
                }
                Some((port, span)) => cx.error(
                    RULE_INVALID_FIELD,
                    span,
                    format!("`{pp}.port`: {port} is not between 1 and 65535"),
                ),
                None => {
                    if pn.get("port").is_none_or(Node::is_null) {
                        cx.invalid(pn, &format!("{pp}.port"), "is required (1 to 65535)");
                    }
                }
            }
        }
        np.ingress_rules.push(rule);
    }
    np
}

/// One `from` peer. Only `namespaceSelector` is supported; the selector is
/// kept as JSON, in the Kubernetes shape, with only the validated parts.
fn parse_peer(cx: &mut Cx, f: &Node, fp: &str) -> Option<serde_json::Value> {
    let f = cx.map(Some(f), fp, &["namespaceSelector"])?;
    let sp = format!("{fp}.namespaceSelector");
    let Some(sel) = cx.map(
        f.get("namespaceSelector"),
        &sp,
        &["matchLabels", "matchExpressions"],
    ) else {
        if f.get("namespaceSelector").is_none_or(Node::is_null) {
            cx.invalid(f, fp, "`namespaceSelector` is required");
        }
        return None;
    };
    let labels = cx.string_map(sel, "matchLabels", &sp);
    let mut exprs = Vec::new();
    for (k, e) in cx.seq(sel, "matchExpressions", &sp).iter().enumerate() {
        let ep = format!("{sp}.matchExpressions[{k}]");
        let Some(e) = cx.map(Some(e), &ep, &["key", "operator", "values"]) else {
            continue;
        };
        let key = cx.nonempty(e, "key", &ep);
        if key.is_none() {
            cx.invalid(e, &format!("{ep}.key"), "is required");
        }
        let op = cx.string(e, "operator", &ep).unwrap_or_default();
        let vals: Vec<String> = cx
            .string_list(e, "values", &ep)
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        let op_node = e.get("operator").unwrap_or(e);
        match op.as_str() {
            "In" | "NotIn" if vals.is_empty() => cx.invalid(
                op_node,
                &format!("{ep}.operator"),
                format!("operator {op} needs at least one value"),
            ),
            "Exists" | "DoesNotExist" if !vals.is_empty() => cx.invalid(
                op_node,
                &format!("{ep}.operator"),
                format!("operator {op} must have no values"),
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => cx.invalid(
                op_node,
                &format!("{ep}.operator"),
                format!("\"{op}\" is not one of In, NotIn, Exists, DoesNotExist"),
            ),
        }
        let mut obj = serde_json::Map::new();
        obj.insert("key".into(), key.unwrap_or_default().into());
        obj.insert("operator".into(), op.into());
        if !vals.is_empty() {
            obj.insert("values".into(), vals.into());
        }
        exprs.push(serde_json::Value::Object(obj));
    }
    if labels.is_empty() && exprs.is_empty() {
        cx.invalid(
            sel,
            &sp,
            "the selector is empty (it must have matchLabels or matchExpressions)",
        );
        return None;
    }
    let mut s = serde_json::Map::new();
    if !labels.is_empty() {
        s.insert(
            "matchLabels".into(),
            serde_json::Value::Object(
                labels
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect(),
            ),
        );
    }
    if !exprs.is_empty() {
        s.insert("matchExpressions".into(), exprs.into());
    }
    Some(serde_json::json!({ "namespaceSelector": s }))
}

fn parse_snapshots(cx: &mut Cx, spec: &Node) -> Option<SnapshotPolicy> {
    let p = "spec.snapshots";
    let s = cx.map(spec.get("snapshots"), p, &["schedule", "keep"])?;
    let schedule = match cx.string_node(s, "schedule", p) {
        Some((sched, span)) => {
            if let Err(e) = values::check_cron(&sched) {
                cx.error(
                    RULE_INVALID_FIELD,
                    span,
                    format!("`spec.snapshots.schedule`: {e}"),
                );
            }
            sched
        }
        None => {
            if s.get("schedule").is_none_or(Node::is_null) {
                cx.invalid(
                    s,
                    "spec.snapshots.schedule",
                    "is required (a cron schedule, e.g. \"0 3 * * *\")",
                );
            }
            String::new()
        }
    };
    let mut policy = SnapshotPolicy {
        schedule,
        keep_count: None,
        keep_max_age: None,
    };
    if let Some(keep) = cx.map(s.get("keep"), "spec.snapshots.keep", &["count", "maxAge"]) {
        let kp = "spec.snapshots.keep";
        match cx.int(keep, "count", kp) {
            Some((n, _)) if (1..=i64::from(u32::MAX)).contains(&n) => {
                policy.keep_count = Some(n as u32)
            }
            Some((n, span)) => cx.error(
                RULE_INVALID_FIELD,
                span,
                format!("`spec.snapshots.keep.count`: {n} must be at least 1"),
            ),
            None => {}
        }
        if let Some((age, span)) = cx.string_node(keep, "maxAge", kp) {
            match values::check_max_age(&age) {
                Ok(()) => policy.keep_max_age = Some(age),
                Err(e) => cx.error(
                    RULE_INVALID_FIELD,
                    span,
                    format!("`spec.snapshots.keep.maxAge`: {e}"),
                ),
            }
        }
    }
    Some(policy)
}

fn parse_app_policy(cx: &mut Cx, spec: &Node) -> AppPolicy {
    let p = "spec.policy";
    let Some(node) = cx.map(
        spec.get("policy"),
        p,
        &["allowDestroy", "suspend", "zoneFailover"],
    ) else {
        return AppPolicy::default();
    };
    let zone_failover = match cx.string(node, "zoneFailover", p).as_deref() {
        None | Some("") | Some("manual") => ZoneFailover::Manual,
        Some("auto") => ZoneFailover::Auto,
        Some(other) => {
            cx.invalid(
                node.get("zoneFailover").unwrap_or(node),
                "spec.policy.zoneFailover",
                format!("\"{other}\" is not manual or auto"),
            );
            ZoneFailover::Manual
        }
    };
    AppPolicy {
        allow_destroy: cx.bool(node, "allowDestroy", p).unwrap_or(false),
        suspend: cx.bool(node, "suspend", p).unwrap_or(false),
        zone_failover,
    }
}

/// Box rules (reference §3.6). `spec.networkPolicy` is validated like an
/// App's; the model has no place for it yet (boxes do not produce network
/// policies in this version).
fn parse_box(cx: &mut Cx, spec: &Node, meta: Meta) -> BoxSpec {
    let list = |cx: &mut Cx, key| {
        cx.string_list(spec, key, "spec")
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>()
    };
    let b = BoxSpec {
        component: cx.nonempty(spec, "component", "spec"),
        image: cx.nonempty(spec, "image", "spec"),
        command: list(cx, "command"),
        args: list(cx, "args"),
        meta,
    };
    parse_network_policy(cx, spec, "spec.networkPolicy");
    let name = b.meta.name.clone();
    let at = |key: &str| spec.get(key).map_or(b.meta.origin.span, |n| n.span);
    if name == "app" {
        cx.error(
            RULE_INVALID_FIELD,
            b.meta.origin.span,
            "Box name \"app\" is reserved (it is the App's own component)",
        );
    }
    if let Some(c) = &b.component
        && *c != name
    {
        cx.error(
            RULE_INVALID_FIELD,
            at("component"),
            format!("`spec.component` \"{c}\" must match metadata.name \"{name}\""),
        );
    }
    let standalone = b.image.is_some();
    if spec.get("ingress").is_some_and(|n| !n.is_null()) {
        let msg = if standalone {
            "a standalone Box (with spec.image) must not specify spec.ingress (reserved for future use)"
        } else {
            "a compose Box (without spec.image) must not specify spec.ingress"
        };
        cx.error(RULE_INVALID_FIELD, at("ingress"), msg);
    }
    if !standalone {
        for key in ["command", "args"] {
            if spec.get(key).is_some_and(|n| !n.is_null()) {
                cx.error(
                    RULE_INVALID_FIELD,
                    at(key),
                    format!("a compose Box (without spec.image) must not specify spec.{key}"),
                );
            }
        }
    }
    b
}
