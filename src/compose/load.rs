//! Compose text → [`ComposeProject`] (load stage, pure).
//!
//! Reads one compose document: merge keys, `!reset`/`!override`,
//! interpolation from the variables given (never the process environment),
//! then a typed walk that records what happened to every key.

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::model::compose::*;
use crate::model::is_dns_label;
use crate::yaml::{self, Node, Span, Value};

use super::interpolate::interpolate_tree;
use super::keys;
use super::units::{parse_duration_secs, parse_memory_bytes};

/// What the compose loader returns: the project and its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub project: ComposeProject,
    pub warnings: Vec<Diagnostic>,
}

/// Loads a compose document. `file` is the path used in diagnostics;
/// `line_offset` shifts line numbers when the text is inline in a KOM file.
pub fn load_compose(
    text: &str,
    file: &str,
    vars: &BTreeMap<String, String>,
    line_offset: u32,
) -> Result<Loaded, Vec<Diagnostic>> {
    let shift = |mut d: Diagnostic| {
        if let Some(sp) = d.span.as_mut() {
            sp.line += line_offset;
        }
        d
    };
    let limits = yaml::Limits::default();
    let mut docs = yaml::parse_documents(text, &limits).map_err(|e| {
        vec![shift(
            Diagnostic::error(e.rule, format!("invalid compose YAML: {}", e.message))
                .at(file, e.span),
        )]
    })?;
    docs.retain(|d| !d.is_null());
    if docs.len() != 1 {
        return Err(vec![shift(
            Diagnostic::error(
                "compose-document",
                format!(
                    "a compose file holds exactly one YAML document, found {}",
                    docs.len()
                ),
            )
            .in_file(file),
        )]);
    }
    let mut root = docs.remove(0);
    if root.as_map().is_none() {
        return Err(vec![shift(
            Diagnostic::error(
                "compose-document",
                format!("a compose file is a mapping, found {}", root.kind_name()),
            )
            .at(file, root.span),
        )]);
    }
    apply_reset_override(&mut root);
    let (errors, interpolation_warnings): (Vec<_>, Vec<_>) =
        interpolate_tree(&mut root, vars, file)
            .into_iter()
            .partition(Diagnostic::is_error);
    if !errors.is_empty() {
        return Err(errors.into_iter().map(shift).collect());
    }
    let mut w = Walker {
        file,
        errors: Vec::new(),
        warnings: interpolation_warnings,
        report: Vec::new(),
    };
    let project = w.project(&root);
    if !w.errors.is_empty() {
        return Err(w.errors.into_iter().map(shift).collect());
    }
    let mut project = project;
    project.report = w.report;
    for r in project.report.iter_mut() {
        r.span.line += line_offset;
    }
    Ok(Loaded {
        project,
        warnings: w.warnings.into_iter().map(shift).collect(),
    })
}

/// `!reset` removes a key (its value falls back to the default); `!override`
/// takes the value as written. With one compose file (KOM names exactly one)
/// `<<` merges are the only source of inherited values, so this is enough.
fn apply_reset_override(node: &mut Node) {
    match &mut node.value {
        Value::Map(entries) => {
            entries.retain(|(_, v)| v.tag.as_deref() != Some("reset"));
            for (_, v) in entries.iter_mut() {
                if v.tag.as_deref() == Some("override") {
                    v.tag = None;
                }
                apply_reset_override(v);
            }
        }
        Value::Seq(items) => {
            items.retain(|v| v.tag.as_deref() != Some("reset"));
            for v in items.iter_mut() {
                apply_reset_override(v);
            }
        }
        Value::Scalar { .. } => {}
    }
}

struct Walker<'a> {
    file: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    report: Vec<KeyReport>,
}

impl Walker<'_> {
    fn err(&mut self, rule: &'static str, span: Span, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(rule, msg).at(self.file, span)
    }

    fn push_err(
        &mut self,
        rule: &'static str,
        span: Span,
        msg: impl Into<String>,
        help: Option<&str>,
    ) {
        let mut d = self.err(rule, span, msg);
        if let Some(h) = help {
            d = d.help(h);
        }
        self.errors.push(d);
    }

    fn expect_type(&mut self, node: &Node, key: &str, what: &str) {
        self.push_err(
            "compose-type",
            node.span,
            format!("`{key}` must be {what}, found {}", node.kind_name()),
            None,
        );
    }

    fn record(&mut self, key: String, status: KeyStatus, note: &str, span: Span) {
        match status {
            KeyStatus::Ignored => self.warnings.push(
                Diagnostic::warning("compose-ignored-key", format!("`{key}` is ignored: {note}"))
                    .at(self.file, span),
            ),
            KeyStatus::Rejected => self.errors.push(
                Diagnostic::error(
                    "compose-unsupported-key",
                    format!("`{key}` is not supported: {note}"),
                )
                .at(self.file, span),
            ),
            KeyStatus::Mapped => {}
        }
        self.report.push(KeyReport {
            key,
            status,
            note: note.to_string(),
            span,
        });
    }

    /// Checks the keys of a long-syntax mapping: `known` are read by the
    /// caller, `ignored` are reported with their note, anything else is an
    /// unknown-key error — no key is dropped silently.
    fn check_keys(&mut self, node: &Node, path: &str, known: &[&str], ignored: &[(&str, &str)]) {
        for (k, _) in node.as_map().unwrap_or_default() {
            let name = k.scalar_text().unwrap_or_default();
            if known.contains(&name.as_str()) || name.starts_with("x-") {
                continue;
            }
            match ignored.iter().find(|(i, _)| *i == name) {
                Some((_, note)) => {
                    self.record(format!("{path}.{name}"), KeyStatus::Ignored, note, k.span)
                }
                None => self.push_err(
                    "compose-unknown-key",
                    k.span,
                    format!("unknown compose key `{path}.{name}`"),
                    Some(&format!("`{path}` takes {}", known.join(", "))),
                ),
            }
        }
    }

    fn project(&mut self, root: &Node) -> ComposeProject {
        let mut project = ComposeProject {
            normalized: root.to_json(),
            ..Default::default()
        };
        for (k, v) in root.as_map().unwrap_or_default() {
            let key = k.scalar_text().unwrap_or_default();
            match keys::top_level_key(&key) {
                Some((status, note)) => self.record(key.clone(), status, note, k.span),
                None => {
                    self.push_err(
                        "compose-unknown-key",
                        k.span,
                        format!("unknown top-level compose key `{key}`"),
                        Some("valid keys are services, configs, secrets, volumes, networks, name and x-* extensions"),
                    );
                    continue;
                }
            }
            match key.as_str() {
                "services" => self.services(v, &mut project),
                "configs" => project.configs = self.file_objects(v, "configs"),
                "secrets" => project.secrets = self.file_objects(v, "secrets"),
                "volumes" => {
                    if let Some(map) = v.as_map() {
                        for (name, _) in map {
                            project
                                .volumes
                                .insert(name.scalar_text().unwrap_or_default(), name.span);
                        }
                    } else if !v.is_null() {
                        self.expect_type(v, "volumes", "a mapping");
                    }
                }
                _ => {}
            }
        }
        project
    }

    fn services(&mut self, node: &Node, project: &mut ComposeProject) {
        let Some(map) = node.as_map() else {
            if !node.is_null() {
                self.expect_type(node, "services", "a mapping");
            }
            return;
        };
        for (k, v) in map {
            let name = k.scalar_text().unwrap_or_default();
            if !is_dns_label(&name) {
                self.push_err(
                    "compose-service-name",
                    k.span,
                    format!("service name `{name}` is not a DNS-1123 label"),
                    Some("use lowercase letters, digits and '-' (it becomes a container and Service name)"),
                );
                continue;
            }
            if v.as_map().is_none() {
                self.expect_type(v, &format!("services.{name}"), "a mapping");
                continue;
            }
            if let Some(p) = v.get("profiles")
                && p.as_seq().is_some_and(|s| !s.is_empty())
            {
                self.record(
                    format!("services.{name}.profiles"),
                    KeyStatus::Mapped,
                    "service has profiles: not deployed",
                    p.span,
                );
                self.warnings.push(
                    Diagnostic::warning(
                        "compose-profile",
                        format!("service `{name}` has profiles and is not deployed (Kompox activates no profile)"),
                    )
                    .at(self.file, k.span),
                );
                continue;
            }
            let svc = self.service(&name, k.span, v);
            project.services.push(svc);
        }
        project.services.sort_by(|a, b| a.name.cmp(&b.name));
    }

    fn service(&mut self, name: &str, span: Span, node: &Node) -> Service {
        let mut svc = Service {
            name: name.to_string(),
            span,
            ..Default::default()
        };
        for (k, v) in node.as_map().unwrap_or_default() {
            let key = k.scalar_text().unwrap_or_default();
            let path = format!("services.{name}.{key}");
            match keys::service_key(&key) {
                Some((status, note)) => self.record(path.clone(), status, note, k.span),
                None => {
                    self.push_err(
                        "compose-unknown-key",
                        k.span,
                        format!("unknown compose key `{path}`"),
                        Some("check the spelling against the compose specification"),
                    );
                    continue;
                }
            }
            match key.as_str() {
                "image" => svc.image = self.string(v, &path),
                "command" => svc.command = self.command(v, &path),
                "entrypoint" => svc.entrypoint = self.command(v, &path),
                "environment" => svc.environment = self.environment(v, &path),
                "env_file" => svc.env_files = self.env_files(v, &path),
                "ports" => svc.ports = self.ports(v, &path),
                "volumes" => self.volumes(v, &path, &mut svc),
                "configs" => svc.configs = self.file_refs(v, &path),
                "secrets" => svc.secrets = self.file_refs(v, &path),
                "healthcheck" => svc.healthcheck = self.healthcheck(v, &path),
                "user" => svc.user = self.string(v, &path),
                "working_dir" => svc.working_dir = self.string(v, &path),
                "cap_add" => svc.cap_add = self.string_list(v, &path),
                "cap_drop" => svc.cap_drop = self.string_list(v, &path),
                "privileged" => svc.privileged = self.boolean(v, &path),
                "read_only" => svc.read_only = self.boolean(v, &path),
                "tmpfs" => self.tmpfs(v, &path, &mut svc),
                "extra_hosts" => svc.extra_hosts = self.extra_hosts(v, &path),
                "stop_grace_period" => svc.stop_grace_period_secs = self.duration(v, &path),
                "deploy" => self.deploy(v, &path, &mut svc),
                "cpus" => svc.resources.limits_cpu = self.cpus(v, &path),
                "mem_limit" => svc.resources.limits_memory = self.memory(v, &path),
                "mem_reservation" => svc.resources.requests_memory = self.memory(v, &path),
                "depends_on" => svc.depends_on = self.depends_on(v, &path),
                "labels" => svc.labels = self.string_map(v, &path),
                "annotations" => svc.annotations = self.string_map(v, &path),
                "stdin_open" => svc.stdin_open = self.boolean(v, &path),
                "tty" => svc.tty = self.boolean(v, &path),
                "pull_policy" => svc.pull_policy = self.pull_policy(v, &path),
                "x-kompox" => svc.x_kompox = self.x_kompox(v, &path),
                _ => {}
            }
        }
        if svc.image.is_none() {
            self.push_err(
                "compose-image-required",
                span,
                format!("service `{name}` has no `image`"),
                Some("Kompox deploys images; build the image in CI and set `image:`"),
            );
        }
        svc
    }

    fn string(&mut self, v: &Node, key: &str) -> Option<String> {
        if v.is_null() {
            return None;
        }
        match &v.value {
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.expect_type(v, key, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, v: &Node, key: &str) -> bool {
        match v.as_bool() {
            Some(b) => b,
            None => {
                if !v.is_null() {
                    self.expect_type(v, key, "a boolean (true or false)");
                }
                false
            }
        }
    }

    fn string_list(&mut self, v: &Node, key: &str) -> Vec<String> {
        if v.is_null() {
            return Vec::new();
        }
        match v.as_seq() {
            Some(items) => items
                .iter()
                .filter_map(|i| match &i.value {
                    Value::Scalar { text, .. } => Some(text.clone()),
                    _ => {
                        self.expect_type(i, key, "a list of strings");
                        None
                    }
                })
                .collect(),
            None => {
                self.expect_type(v, key, "a list of strings");
                Vec::new()
            }
        }
    }

    /// `command`/`entrypoint`: a list is taken as is; a string is split like
    /// a shell would (compose-go's behaviour), without running a shell.
    fn command(&mut self, v: &Node, key: &str) -> Option<Vec<String>> {
        if v.is_null() {
            return None;
        }
        match &v.value {
            Value::Scalar { text, .. } => match shell_split(text) {
                Some(words) => Some(words),
                None => {
                    self.push_err(
                        "compose-command",
                        v.span,
                        format!("`{key}` has an unterminated quote"),
                        None,
                    );
                    None
                }
            },
            Value::Seq(_) => Some(self.string_list(v, key)),
            Value::Map(_) => {
                self.expect_type(v, key, "a string or a list of strings");
                None
            }
        }
    }

    fn string_map(&mut self, v: &Node, key: &str) -> BTreeMap<String, String> {
        self.key_values(v, key)
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    }

    /// A `KEY=VALUE` list or a mapping (environment, labels, annotations).
    fn key_values(&mut self, v: &Node, key: &str) -> BTreeMap<String, Option<String>> {
        let mut out = BTreeMap::new();
        match &v.value {
            Value::Map(entries) => {
                for (k, val) in entries {
                    let name = k.scalar_text().unwrap_or_default();
                    let value = if val.is_null() {
                        None
                    } else if let Value::Scalar { text, .. } = &val.value {
                        Some(text.clone())
                    } else {
                        self.expect_type(
                            val,
                            &format!("{key}.{name}"),
                            "a string, number or boolean",
                        );
                        None
                    };
                    out.insert(name, value);
                }
            }
            Value::Seq(items) => {
                for item in items {
                    let Some(text) = item.as_str() else {
                        self.expect_type(item, key, "a list of KEY=VALUE strings");
                        continue;
                    };
                    match text.split_once('=') {
                        Some((k, val)) => out.insert(k.to_string(), Some(val.to_string())),
                        None => out.insert(text.to_string(), None),
                    };
                }
            }
            _ if v.is_null() => {}
            _ => self.expect_type(v, key, "a mapping or a list of KEY=VALUE strings"),
        }
        out
    }

    fn environment(&mut self, v: &Node, key: &str) -> BTreeMap<String, Option<String>> {
        let env = self.key_values(v, key);
        for name in env.keys() {
            if name.is_empty() || name.contains(char::is_whitespace) {
                self.push_err(
                    "compose-environment",
                    v.span,
                    format!("`{key}` has an invalid variable name `{name}`"),
                    None,
                );
            }
        }
        env
    }

    fn env_files(&mut self, v: &Node, key: &str) -> Vec<EnvFileRef> {
        let one = |w: &mut Self, n: &Node| -> Option<EnvFileRef> {
            match &n.value {
                Value::Scalar { text, .. } => Some(EnvFileRef {
                    path: text.clone(),
                    required: true,
                    span: n.span,
                }),
                Value::Map(_) => {
                    w.check_keys(n, key, &["path", "required", "format"], &[]);
                    let Some(path) = n.get("path").and_then(Node::as_str) else {
                        w.push_err(
                            "compose-env-file",
                            n.span,
                            format!("`{key}` entry needs a `path`"),
                            None,
                        );
                        return None;
                    };
                    let required = match n.get("required") {
                        None => true,
                        Some(r) => w.boolean(r, &format!("{key}.required")),
                    };
                    if let Some(f) = n.get("format").and_then(Node::as_str)
                        && f != "raw"
                    {
                        w.push_err(
                            "compose-env-file",
                            n.span,
                            format!("`{key}.format` `{f}` is not supported (only the default format and `raw`)"),
                            None,
                        );
                    }
                    Some(EnvFileRef {
                        path: path.to_string(),
                        required,
                        span: n.span,
                    })
                }
                _ => {
                    w.expect_type(n, key, "a path or a list of paths");
                    None
                }
            }
        };
        match &v.value {
            Value::Seq(items) => items.iter().filter_map(|i| one(self, i)).collect(),
            _ if v.is_null() => Vec::new(),
            _ => one(self, v).into_iter().collect(),
        }
    }

    fn ports(&mut self, v: &Node, key: &str) -> Vec<PortMapping> {
        let Some(items) = v.as_seq() else {
            if !v.is_null() {
                self.expect_type(v, key, "a list");
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match &item.value {
                Value::Scalar { text, .. } => match parse_port_short(text) {
                    Ok(p) => out.push(PortMapping {
                        span: item.span,
                        raw: text.clone(),
                        ..p
                    }),
                    Err(msg) => self.push_err(
                        "compose-port",
                        item.span,
                        format!("port `{text}` in `{key}`: {msg}"),
                        Some("write ports as \"HOST:CONTAINER\" with numbers, e.g. \"8080:80\""),
                    ),
                },
                Value::Map(_) => {
                    let target = item.get("target").and_then(Node::as_i64);
                    let published = item.get("published").and_then(|p| match &p.value {
                        Value::Scalar { text, .. } => text.parse::<u16>().ok(),
                        _ => None,
                    });
                    let Some(target) = target
                        .and_then(|t| u16::try_from(t).ok())
                        .filter(|t| *t > 0)
                    else {
                        self.push_err(
                            "compose-port",
                            item.span,
                            format!("`{key}` entry needs a numeric `target` port"),
                            None,
                        );
                        continue;
                    };
                    self.check_keys(
                        item,
                        key,
                        &["target", "published", "protocol", "host_ip"],
                        &[
                            ("mode", "all ports go through the pod's Service"),
                            ("name", "Service port names come from KOM ingress rules"),
                            ("app_protocol", "not mapped"),
                        ],
                    );
                    out.push(PortMapping {
                        published,
                        target,
                        protocol: item
                            .get("protocol")
                            .and_then(Node::as_str)
                            .unwrap_or("tcp")
                            .to_ascii_lowercase(),
                        host_ip: item
                            .get("host_ip")
                            .and_then(Node::as_str)
                            .map(str::to_string),
                        raw: format!(
                            "{}:{target}",
                            published.map(|p| p.to_string()).unwrap_or_default()
                        ),
                        span: item.span,
                    });
                }
                _ => self.expect_type(item, key, "a port string or mapping"),
            }
        }
        out
    }

    fn volumes(&mut self, v: &Node, key: &str, svc: &mut Service) {
        let Some(items) = v.as_seq() else {
            if !v.is_null() {
                self.expect_type(v, key, "a list");
            }
            return;
        };
        for item in items {
            match &item.value {
                Value::Scalar { text, .. } => {
                    let parts: Vec<&str> = split_volume_short(text);
                    let (source, target, mode) = match parts.as_slice() {
                        [t] => (None, t.to_string(), None),
                        [s, t] => (Some(s.to_string()), t.to_string(), None),
                        [s, t, m] => (Some(s.to_string()), t.to_string(), Some(*m)),
                        _ => {
                            self.push_err(
                                "compose-volume",
                                item.span,
                                format!("volume `{text}` has too many `:` parts"),
                                None,
                            );
                            continue;
                        }
                    };
                    let kind = match &source {
                        Some(s)
                            if s.starts_with('.') || s.starts_with('/') || s.starts_with('~') =>
                        {
                            MountKind::Bind
                        }
                        _ => MountKind::Volume,
                    };
                    let read_only = mode.is_some_and(|m| m.split(',').any(|o| o == "ro"));
                    svc.volumes.push(VolumeMount {
                        kind,
                        source,
                        target,
                        read_only,
                        span: item.span,
                    });
                }
                Value::Map(_) => {
                    self.check_keys(
                        item,
                        key,
                        &["type", "source", "target", "read_only", "tmpfs"],
                        &[
                            ("bind", "bind options do not apply to sub-path mounts"),
                            ("volume", "volume options do not apply to the App's disks"),
                            ("consistency", "not mapped"),
                            ("image", "image volumes are not mapped"),
                        ],
                    );
                    let kind = match item.get("type").and_then(Node::as_str) {
                        Some("bind") => MountKind::Bind,
                        Some("volume") | None => MountKind::Volume,
                        Some("tmpfs") => MountKind::Tmpfs,
                        Some(other) => MountKind::Other(other.to_string()),
                    };
                    let Some(target) = item.get("target").and_then(Node::as_str) else {
                        self.push_err(
                            "compose-volume",
                            item.span,
                            format!("`{key}` entry needs a `target`"),
                            None,
                        );
                        continue;
                    };
                    if kind == MountKind::Tmpfs {
                        let size = item
                            .get("tmpfs")
                            .and_then(|t| t.get("size"))
                            .and_then(|s| s.scalar_text())
                            .and_then(|s| parse_memory_bytes(&s));
                        svc.tmpfs.push(TmpfsMount {
                            target: target.to_string(),
                            size_bytes: size,
                            span: item.span,
                        });
                        continue;
                    }
                    svc.volumes.push(VolumeMount {
                        kind,
                        source: item
                            .get("source")
                            .and_then(Node::as_str)
                            .map(str::to_string),
                        target: target.to_string(),
                        read_only: item
                            .get("read_only")
                            .and_then(Node::as_bool)
                            .unwrap_or(false),
                        span: item.span,
                    });
                }
                _ => self.expect_type(item, key, "a volume string or mapping"),
            }
        }
    }

    fn tmpfs(&mut self, v: &Node, key: &str, svc: &mut Service) {
        let entries: Vec<&Node> = match &v.value {
            Value::Seq(items) => items.iter().collect(),
            Value::Scalar { .. } if !v.is_null() => vec![v],
            _ => {
                if !v.is_null() {
                    self.expect_type(v, key, "a path or a list of paths");
                }
                return;
            }
        };
        for e in entries {
            let Some(text) = e.as_str() else {
                self.expect_type(e, key, "a path");
                continue;
            };
            let (target, opts) = text.split_once(':').unwrap_or((text, ""));
            let size = opts
                .split(',')
                .find_map(|o| o.strip_prefix("size="))
                .and_then(parse_memory_bytes);
            svc.tmpfs.push(TmpfsMount {
                target: target.to_string(),
                size_bytes: size,
                span: e.span,
            });
        }
    }

    fn file_refs(&mut self, v: &Node, key: &str) -> Vec<FileRef> {
        let Some(items) = v.as_seq() else {
            if !v.is_null() {
                self.expect_type(v, key, "a list");
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match &item.value {
                Value::Scalar { text, .. } => out.push(FileRef {
                    source: text.clone(),
                    target: None,
                    mode: None,
                    span: item.span,
                }),
                Value::Map(_) => {
                    self.check_keys(
                        item,
                        key,
                        &["source", "target", "mode"],
                        &[
                            ("uid", "files are mounted with the pod's user"),
                            ("gid", "files are mounted with the pod's group"),
                        ],
                    );
                    let Some(source) = item.get("source").and_then(Node::as_str) else {
                        self.push_err(
                            "compose-file-ref",
                            item.span,
                            format!("`{key}` entry needs a `source`"),
                            None,
                        );
                        continue;
                    };
                    let mode = item
                        .get("mode")
                        .and_then(|m| m.scalar_text())
                        .and_then(|m| parse_mode(&m));
                    out.push(FileRef {
                        source: source.to_string(),
                        target: item
                            .get("target")
                            .and_then(Node::as_str)
                            .map(str::to_string),
                        mode,
                        span: item.span,
                    });
                }
                _ => self.expect_type(item, key, "a name or a mapping"),
            }
        }
        out
    }

    fn file_objects(&mut self, v: &Node, key: &str) -> BTreeMap<String, FileObjectDef> {
        let mut out = BTreeMap::new();
        let Some(map) = v.as_map() else {
            if !v.is_null() {
                self.expect_type(v, key, "a mapping");
            }
            return out;
        };
        for (k, def) in map {
            let name = k.scalar_text().unwrap_or_default();
            let source =
                if def.is_null() || def.get("external").and_then(Node::as_bool) == Some(true) {
                    FileObjectSource::External
                } else if let Some(f) = def.get("file").and_then(Node::as_str) {
                    FileObjectSource::File(f.to_string())
                } else if let Some(c) = def.get("content").and_then(|c| c.scalar_text()) {
                    FileObjectSource::Content(c)
                } else if let Some(e) = def.get("environment").and_then(Node::as_str) {
                    FileObjectSource::Environment(e.to_string())
                } else {
                    FileObjectSource::External
                };
            for (dk, _) in def.as_map().unwrap_or_default() {
                let dk = dk.scalar_text().unwrap_or_default();
                if !matches!(
                    dk.as_str(),
                    "file"
                        | "content"
                        | "environment"
                        | "external"
                        | "name"
                        | "labels"
                        | "template_driver"
                        | "driver"
                        | "driver_opts"
                ) && !dk.starts_with("x-")
                {
                    self.push_err(
                        "compose-unknown-key",
                        def.span,
                        format!("unknown key `{key}.{name}.{dk}`"),
                        None,
                    );
                }
            }
            out.insert(
                name.clone(),
                FileObjectDef {
                    name,
                    source,
                    span: k.span,
                },
            );
        }
        out
    }

    fn healthcheck(&mut self, v: &Node, key: &str) -> Option<Healthcheck> {
        if v.as_map().is_none() {
            if !v.is_null() {
                self.expect_type(v, key, "a mapping");
            }
            return None;
        }
        let mut hc = Healthcheck {
            span: v.span,
            ..Default::default()
        };
        let disabled = v.get("disable").and_then(Node::as_bool) == Some(true);
        if let Some(t) = v.get("test") {
            hc.test = match &t.value {
                Value::Scalar { text, .. } => Some(HealthTest::Shell(text.clone())),
                Value::Seq(_) => {
                    let words = self.string_list(t, &format!("{key}.test"));
                    match words.split_first() {
                        Some((first, rest)) if first == "CMD" => {
                            Some(HealthTest::Exec(rest.to_vec()))
                        }
                        Some((first, rest)) if first == "CMD-SHELL" => {
                            Some(HealthTest::Shell(rest.join(" ")))
                        }
                        Some((first, _)) if first == "NONE" => None,
                        _ => {
                            self.push_err(
                                "compose-healthcheck",
                                t.span,
                                format!("`{key}.test` must start with \"CMD\", \"CMD-SHELL\" or \"NONE\""),
                                None,
                            );
                            None
                        }
                    }
                }
                _ => {
                    self.expect_type(t, &format!("{key}.test"), "a string or a list");
                    None
                }
            };
        }
        if disabled {
            hc.test = None;
        }
        hc.interval_secs = v
            .get("interval")
            .and_then(|d| self.duration(d, &format!("{key}.interval")));
        hc.timeout_secs = v
            .get("timeout")
            .and_then(|d| self.duration(d, &format!("{key}.timeout")));
        hc.start_period_secs = v
            .get("start_period")
            .and_then(|d| self.duration(d, &format!("{key}.start_period")));
        hc.retries = v.get("retries").and_then(Node::as_i64);
        for (hk, _) in v.as_map().unwrap_or_default() {
            let hk = hk.scalar_text().unwrap_or_default();
            if hk == "start_interval" {
                self.warnings.push(
                    Diagnostic::warning(
                        "compose-ignored-key",
                        format!("`{key}.start_interval` is ignored: probes have one period"),
                    )
                    .at(self.file, v.span),
                );
            } else if !matches!(
                hk.as_str(),
                "test" | "interval" | "timeout" | "retries" | "start_period" | "disable"
            ) {
                self.push_err(
                    "compose-unknown-key",
                    v.span,
                    format!("unknown key `{key}.{hk}`"),
                    None,
                );
            }
        }
        Some(hc)
    }

    fn duration(&mut self, v: &Node, key: &str) -> Option<i64> {
        let text = v.scalar_text()?;
        match parse_duration_secs(&text) {
            Some(s) => Some(s),
            None => {
                self.push_err(
                    "compose-duration",
                    v.span,
                    format!("`{key}` is not a duration: `{text}`"),
                    Some("use a compose duration such as 10s, 1m30s or 2h"),
                );
                None
            }
        }
    }

    fn cpus(&mut self, v: &Node, key: &str) -> Option<String> {
        let text = v.scalar_text()?;
        match text.parse::<f64>() {
            Ok(c) if c > 0.0 => Some(cpu_quantity(c)),
            _ => {
                self.push_err(
                    "compose-resources",
                    v.span,
                    format!("`{key}` is not a CPU count: `{text}`"),
                    Some("use a number such as 0.5 or 2"),
                );
                None
            }
        }
    }

    fn memory(&mut self, v: &Node, key: &str) -> Option<String> {
        let text = v.scalar_text()?;
        match parse_memory_bytes(&text) {
            Some(b) if b > 0 => Some(memory_quantity(b)),
            _ => {
                self.push_err(
                    "compose-resources",
                    v.span,
                    format!("`{key}` is not a memory size: `{text}`"),
                    Some("use a size such as 512m or 2g"),
                );
                None
            }
        }
    }

    fn deploy(&mut self, v: &Node, key: &str, svc: &mut Service) {
        let Some(map) = v.as_map() else {
            if !v.is_null() {
                self.expect_type(v, key, "a mapping");
            }
            return;
        };
        for (dk, dv) in map {
            let name = dk.scalar_text().unwrap_or_default();
            let path = format!("{key}.{name}");
            match name.as_str() {
                "resources" => {
                    for (section, target) in [("limits", true), ("reservations", false)] {
                        let Some(sec) = dv.get(section) else { continue };
                        if let Some(c) = sec.get("cpus") {
                            let q = self.cpus(c, &format!("{path}.{section}.cpus"));
                            if target {
                                svc.resources.limits_cpu = q
                            } else {
                                svc.resources.requests_cpu = q
                            }
                        }
                        if let Some(m) = sec.get("memory") {
                            let q = self.memory(m, &format!("{path}.{section}.memory"));
                            if target {
                                svc.resources.limits_memory = q
                            } else {
                                svc.resources.requests_memory = q
                            }
                        }
                        for (rk, rv) in sec.as_map().unwrap_or_default() {
                            let rk = rk.scalar_text().unwrap_or_default();
                            if !matches!(rk.as_str(), "cpus" | "memory") {
                                self.record(
                                    format!("{path}.{section}.{rk}"),
                                    KeyStatus::Ignored,
                                    "only cpus and memory are mapped",
                                    rv.span,
                                );
                            }
                        }
                    }
                }
                "replicas" => {
                    if dv.as_i64().is_some_and(|r| r != 1) {
                        self.record(
                            path,
                            KeyStatus::Ignored,
                            "Kompox runs exactly one replica (RWO disks)",
                            dk.span,
                        );
                    }
                }
                _ => self.record(
                    path,
                    KeyStatus::Ignored,
                    "only deploy.resources is mapped",
                    dk.span,
                ),
            }
        }
    }

    fn depends_on(&mut self, v: &Node, key: &str) -> Vec<Dependency> {
        let mut out = Vec::new();
        match &v.value {
            Value::Seq(items) => {
                for i in items {
                    if let Some(s) = i.as_str() {
                        out.push(Dependency {
                            service: s.to_string(),
                            condition: DependsCondition::Started,
                            span: i.span,
                        });
                    } else {
                        self.expect_type(i, key, "a list of service names");
                    }
                }
            }
            Value::Map(entries) => {
                for (k, d) in entries {
                    let dep_key = format!("{key}.{}", k.scalar_text().unwrap_or_default());
                    self.check_keys(
                        d,
                        &dep_key,
                        &["condition", "required"],
                        &[("restart", "the pod's containers restart on their own")],
                    );
                    let cond = match d.get("condition").and_then(Node::as_str) {
                        None | Some("service_started") => DependsCondition::Started,
                        Some("service_healthy") => DependsCondition::Healthy,
                        Some("service_completed_successfully") => {
                            DependsCondition::CompletedSuccessfully
                        }
                        Some(other) => {
                            self.push_err("compose-depends-on", d.span, format!("unknown depends_on condition `{other}`"), Some("use service_started, service_healthy or service_completed_successfully"));
                            continue;
                        }
                    };
                    out.push(Dependency {
                        service: k.scalar_text().unwrap_or_default(),
                        condition: cond,
                        span: k.span,
                    });
                }
            }
            _ if v.is_null() => {}
            _ => self.expect_type(v, key, "a list or a mapping"),
        }
        out
    }

    fn extra_hosts(&mut self, v: &Node, key: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |w: &mut Self, host: &str, ip: &str, span: Span| {
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || ip.parse::<std::net::IpAddr>().is_err() {
                w.push_err(
                    "compose-extra-hosts",
                    span,
                    format!("`{key}` entry `{host}` needs an IP address, got `{ip}`"),
                    Some("write HOST:IP or HOST=IP"),
                );
            } else {
                out.push((host.to_string(), ip.to_string()));
            }
        };
        match &v.value {
            Value::Seq(items) => {
                for i in items {
                    let Some(text) = i.as_str() else {
                        self.expect_type(i, key, "a list of HOST:IP strings");
                        continue;
                    };
                    let (h, ip) = text
                        .split_once('=')
                        .or_else(|| text.split_once(':'))
                        .unwrap_or((text, ""));
                    push(self, h, ip, i.span);
                }
            }
            Value::Map(entries) => {
                for (k, val) in entries {
                    let host = k.scalar_text().unwrap_or_default();
                    let ips: Vec<String> = match &val.value {
                        Value::Seq(_) => self.string_list(val, key),
                        _ => val.scalar_text().into_iter().collect(),
                    };
                    for ip in ips {
                        push(self, &host, &ip, k.span);
                    }
                }
            }
            _ if v.is_null() => {}
            _ => self.expect_type(v, key, "a list or a mapping"),
        }
        out
    }

    fn pull_policy(&mut self, v: &Node, key: &str) -> Option<String> {
        let text = v.as_str()?;
        match text {
            "always" => Some("Always".into()),
            "never" => Some("Never".into()),
            "missing" | "if_not_present" => Some("IfNotPresent".into()),
            "build" => None,
            _ => {
                self.push_err(
                    "compose-pull-policy",
                    v.span,
                    format!("`{key}` `{text}` is not a pull policy"),
                    Some("use always, never, missing or if_not_present"),
                );
                None
            }
        }
    }

    fn x_kompox(&mut self, v: &Node, key: &str) -> XKompox {
        let mut x = XKompox::default();
        let Some(map) = v.as_map() else {
            if !v.is_null() {
                self.expect_type(v, key, "a mapping");
            }
            return x;
        };
        for (k, val) in map {
            let name = k.scalar_text().unwrap_or_default();
            let path = format!("{key}.{name}");
            match name.as_str() {
                "resources" | "limits" => {
                    let limits = name == "limits";
                    for (rk, rv) in val.as_map().unwrap_or_default() {
                        let rk = rk.scalar_text().unwrap_or_default();
                        let q = rv.scalar_text().filter(|q| is_quantity(q));
                        if q.is_none() {
                            self.push_err(
                                "compose-resources",
                                rv.span,
                                format!("`{path}.{rk}` is not a Kubernetes quantity"),
                                Some("use e.g. 500m for CPU or 256Mi for memory"),
                            );
                            continue;
                        }
                        match (rk.as_str(), limits) {
                            ("cpu", false) => x.resources.requests_cpu = q,
                            ("memory", false) => x.resources.requests_memory = q,
                            ("cpu", true) => x.resources.limits_cpu = q,
                            ("memory", true) => x.resources.limits_memory = q,
                            _ => self.push_err(
                                "compose-unknown-key",
                                rv.span,
                                format!("unknown key `{path}.{rk}` (cpu or memory)"),
                                None,
                            ),
                        }
                    }
                }
                "liveness" => x.liveness = self.boolean(val, &path),
                _ => self.push_err(
                    "compose-unknown-key",
                    k.span,
                    format!("unknown key `{path}`"),
                    Some("x-kompox takes resources, limits and liveness"),
                ),
            }
        }
        x
    }
}

/// Splits a volume short form on `:` but keeps Windows-style drive letters
/// out of scope: Kompox runs Linux pods only.
fn split_volume_short(text: &str) -> Vec<&str> {
    text.split(':').collect()
}

/// Parses `[IP:][HOST:]CONTAINER[/PROTO]`.
fn parse_port_short(text: &str) -> Result<PortMapping, String> {
    let (body, protocol) = match text.rsplit_once('/') {
        Some((b, p)) => (b, p.to_ascii_lowercase()),
        None => (text, "tcp".to_string()),
    };
    let parts: Vec<&str> = if body.starts_with('[') {
        // [::1]:8080:80
        let end = body.find(']').ok_or("unterminated IPv6 address")?;
        let rest: Vec<&str> = body[end + 1..].trim_start_matches(':').split(':').collect();
        let mut v = vec![&body[1..end]];
        v.extend(rest);
        v
    } else {
        body.split(':').collect()
    };
    let num = |s: &str| -> Result<u16, String> {
        if s.contains('-') {
            return Err("port ranges are not supported".into());
        }
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{s}` is not a port number"))
    };
    let (host_ip, published, target) = match parts.as_slice() {
        [c] => (None, None, num(c)?),
        [h, c] => (None, Some(num(h)?), num(c)?),
        [ip, h, c] => (
            Some(ip.to_string()),
            if h.is_empty() { None } else { Some(num(h)?) },
            num(c)?,
        ),
        _ => return Err("too many `:` parts".into()),
    };
    Ok(PortMapping {
        published,
        target,
        protocol,
        host_ip,
        raw: text.to_string(),
        span: Span::default(),
    })
}

/// POSIX-shell-like word splitting (quotes and backslashes), no expansion.
pub(crate) fn shell_split(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        ch => cur.push(ch),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            ch @ ('"' | '\\' | '$' | '`') => cur.push(ch),
                            '\n' => {}
                            ch => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                        },
                        ch => cur.push(ch),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next()
                    && ch != '\n'
                {
                    cur.push(ch);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

/// Compose file modes are octal when written with a leading zero.
fn parse_mode(text: &str) -> Option<i32> {
    if let Some(o) = text.strip_prefix("0o") {
        i32::from_str_radix(o, 8).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        i32::from_str_radix(&text[1..], 8).ok()
    } else {
        text.parse().ok()
    }
}

/// CPU count → canonical quantity (`0.5` → `500m`, `2` → `2`).
fn cpu_quantity(c: f64) -> String {
    let milli = (c * 1000.0).round() as i64;
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Bytes → the binary-suffixed quantity the API server keeps.
pub(crate) fn memory_quantity(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "Ti"),
        (1 << 30, "Gi"),
        (1 << 20, "Mi"),
        (1 << 10, "Ki"),
    ];
    for (size, suffix) in UNITS {
        if bytes.is_multiple_of(size) {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A loose check that a string is a Kubernetes quantity.
fn is_quantity(q: &str) -> bool {
    let num_end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(num_end);
    !num.is_empty()
        && num.parse::<f64>().is_ok()
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
        )
}

#[cfg(test)]
mod tests;
