//! Compose configs/secrets → ConfigMaps/Secrets, and env files → the
//! `-base` Secret of each service (reference §4.5, §4.6).

use std::collections::BTreeMap;

use serde_json::json;

use super::{Cx, Object};
use crate::compose::envfile::{merge_env, parse_env_file};
use crate::hash::content_hash;
use crate::model::compose::{FileObjectDef, FileObjectSource};
use crate::model::is_dns_label;

/// Largest config or secret file, as in the reference.
const MAX_FILE_BYTES: usize = 1024 * 1024;

/// A generated ConfigMap or Secret holding one file.
#[derive(Debug, Clone)]
pub struct FileObject {
    pub object_name: String,
    pub key: String,
}

#[derive(Debug, Default)]
pub struct FileObjects {
    pub objects: Vec<Object>,
    pub configs: BTreeMap<String, FileObject>,
    pub secrets: BTreeMap<String, FileObject>,
    /// Service name → its `-base` env Secret.
    pub env_secrets: BTreeMap<String, String>,
    /// Object name → content hash, for the pod template's rollout hash.
    pub hashes: BTreeMap<String, String>,
}

pub fn build(cx: &mut Cx<'_, '_>) -> FileObjects {
    let mut out = FileObjects::default();
    let compose = cx.input.compose;
    for (is_secret, defs) in [(false, &compose.configs), (true, &compose.secrets)] {
        for def in defs.values() {
            let Some((key, data)) = file_object_content(cx, def, is_secret) else {
                continue;
            };
            let prefix = if is_secret { "sec" } else { "cfg" };
            let name = format!("{}--{prefix}-{}", cx.names.workload, def.name);
            let hash = content_hash([(key.as_str(), data.as_slice())]);
            let mut meta = cx.names.meta(&name, cx.names.component_labels());
            meta["annotations"] = json!({"kompox.dev/compose-content-hash": hash});
            let object = if is_secret {
                Object::new(json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": meta,
                    "type": "Opaque",
                    "data": {key.clone(): b64(&data)},
                }))
            } else {
                let text = String::from_utf8(data).unwrap_or_default();
                Object::new(json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": meta,
                    "data": {key.clone(): text},
                }))
            };
            out.hashes.insert(name.clone(), hash);
            out.objects.push(object);
            let fo = FileObject {
                object_name: name,
                key,
            };
            if is_secret {
                out.secrets.insert(def.name.clone(), fo);
            } else {
                out.configs.insert(def.name.clone(), fo);
            }
        }
    }
    // Reference order: configs, then secrets, then env Secrets.
    out.objects.sort_by_key(|o| o.kind != "ConfigMap");
    for svc in &compose.services {
        if svc.env_files.is_empty() {
            continue;
        }
        let mut parsed = Vec::new();
        for ef in &svc.env_files {
            let Some(base) = cx.input.base_dir else {
                cx.error(
                    "refbase",
                    ef.span,
                    format!("env_file `{}` not allowed: this App is not defined in an app file (RefBase is empty)", ef.path),
                    "define the App in the app's kompoxapp.yml, or use `environment:`",
                );
                continue;
            };
            let path = match cx.input.files.resolve(base, &ef.path, cx.input.boundary) {
                Ok(p) => p,
                Err(e) => {
                    cx.error(
                        "env-file-path",
                        ef.span,
                        format!("env_file `{}`: {e}", ef.path),
                        "use a relative path inside the app directory",
                    );
                    continue;
                }
            };
            let bytes = match cx.input.files.read(&path) {
                Ok(b) => b,
                Err(crate::source::FileError::NotFound { .. }) if !ef.required => continue,
                Err(e) => {
                    cx.error(
                        "env-file-path",
                        ef.span,
                        format!("env_file `{}`: {e}", ef.path),
                        "create the file or mark it `required: false`",
                    );
                    continue;
                }
            };
            match parse_env_file(&path, bytes) {
                Ok(pairs) => parsed.push(pairs),
                Err(d) => cx
                    .errors
                    .push(d.resource(cx.input.ctx.app.meta.id.to_string())),
            }
        }
        let merged = match merge_env(parsed) {
            Ok(m) => m,
            Err(d) => {
                cx.errors.push(d.resource(format!("service {}", svc.name)));
                continue;
            }
        };
        let name = format!("{}-{}-base", cx.names.workload, svc.name);
        let hash = content_hash(merged.iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
        let mut meta = cx.names.meta(&name, cx.names.component_labels());
        meta["annotations"] = json!({"kompox.dev/compose-content-hash": hash});
        let data: BTreeMap<&String, String> =
            merged.iter().map(|(k, v)| (k, b64(v.as_bytes()))).collect();
        out.objects.push(Object::new(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "data": data,
        })));
        out.hashes.insert(name.clone(), hash);
        out.env_secrets.insert(svc.name.clone(), name);
    }
    out
}

/// Reads a config/secret definition: `(key, bytes)`, or `None` for external
/// ones (passthrough) and on error (recorded).
fn file_object_content(
    cx: &mut Cx<'_, '_>,
    def: &FileObjectDef,
    is_secret: bool,
) -> Option<(String, Vec<u8>)> {
    let what = if is_secret { "secret" } else { "config" };
    if !is_dns_label(&def.name) {
        cx.error(
            "compose-file-object",
            def.span,
            format!("{what} name `{}` is not a DNS-1123 label", def.name),
            "use lowercase letters, digits and '-' (it becomes part of an object name)",
        );
        return None;
    }
    let (key, data) = match &def.source {
        FileObjectSource::External => return None,
        FileObjectSource::Content(c) => (def.name.clone(), c.as_bytes().to_vec()),
        FileObjectSource::Environment(var) => match cx.input.vars.get(var) {
            Some(v) => (def.name.clone(), v.as_bytes().to_vec()),
            None => {
                cx.error(
                    "compose-file-object",
                    def.span,
                    format!(
                        "{what} `{}` takes its content from variable `{var}`, which is not set",
                        def.name
                    ),
                    "set it in the .env beside the compose file or in the App's spec.settings",
                );
                return None;
            }
        },
        FileObjectSource::File(rel) => {
            let Some(base) = cx.input.base_dir else {
                cx.error(
                    "refbase",
                    def.span,
                    format!("{what} file `{rel}` not allowed: this App is not defined in an app file (RefBase is empty)"),
                    "define the App in the app's kompoxapp.yml, or use `content:`",
                );
                return None;
            };
            let path = match cx.input.files.resolve(base, rel, cx.input.boundary) {
                Ok(p) => p,
                Err(e) => {
                    cx.error(
                        "compose-file-object",
                        def.span,
                        format!("{what} `{}` file `{rel}`: {e}", def.name),
                        "use a relative path inside the app directory",
                    );
                    return None;
                }
            };
            let bytes = match cx.input.files.read(&path) {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    cx.error(
                        "compose-file-object",
                        def.span,
                        format!("{what} `{}` file `{rel}`: {e}", def.name),
                        "",
                    );
                    return None;
                }
            };
            let key = path.rsplit('/').next().unwrap_or(&path).to_string();
            (key, bytes)
        }
    };
    if data.len() > MAX_FILE_BYTES {
        cx.error(
            "compose-file-object",
            def.span,
            format!(
                "{what} `{}` is {} bytes, over the 1 MiB limit",
                def.name,
                data.len()
            ),
            "ConfigMaps and Secrets hold at most 1 MiB",
        );
        return None;
    }
    if !is_secret {
        let text_ok = std::str::from_utf8(&data).is_ok()
            && !data.starts_with(b"\xEF\xBB\xBF")
            && !data.contains(&0);
        if !text_ok {
            cx.error(
                "compose-file-object",
                def.span,
                format!(
                    "config `{}` must be UTF-8 text without a BOM or NUL bytes",
                    def.name
                ),
                "use a compose secret for binary files",
            );
            return None;
        }
    }
    Some((key, data))
}

/// Standard base64 with padding (Kubernetes `data` encoding).
pub fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}
