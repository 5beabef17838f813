//! Finding KOM input in a file tree (load stage, pure given a `FileTree`):
//! `.kompox/config.yml`, the KOM path precedence of reference §3.9 and the
//! file limits, and the `apps:` globs of repository mode (DECISIONS 14).

use std::collections::BTreeSet;

use globset::GlobBuilder;

use super::ProjectEnv;
use super::fields::{Cx, RULE_INVALID_FIELD};
use crate::diag::Diagnostic;
use crate::source::{FileError, FileTree, join, parent_dir};
use crate::yaml::{Limits, Span, parse_documents};

pub(crate) const RULE_LIMIT: &str = "kom-limit";
pub(crate) const RULE_PATH: &str = "kom-path";
pub(crate) const RULE_CONFIG: &str = "kom-config";
pub(crate) const RULE_ENCODING: &str = "kom-encoding";

/// KOM discovery budgets (the original's, reference §3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KomLimits {
    pub max_files: usize,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
    /// Directory levels below a KOM path directory.
    pub max_depth: usize,
}

impl Default for KomLimits {
    fn default() -> Self {
        KomLimits {
            max_files: 5000,
            max_file_bytes: 2 * 1024 * 1024,
            max_total_bytes: 32 * 1024 * 1024,
            max_depth: 10,
        }
    }
}

/// Directory names skipped while scanning a KOM directory (the original's
/// list).
const IGNORED_COMPONENTS: &[&str] = &[
    ".git",
    ".github",
    "node_modules",
    "vendor",
    ".direnv",
    ".venv",
    "dist",
    "build",
];

/// `.kompox/config.yml`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KompoxConfig {
    pub version: Option<i64>,
    /// `store.type`: `local`, `rdb` or `custom` (interpreted by the CLI).
    pub store_type: Option<String>,
    /// KOM paths, relative to the Kompox directory (level 4).
    pub kom_path: Vec<String>,
    pub logging: LoggingConfig,
    /// App-file globs relative to the project root (repository mode).
    pub apps: Vec<String>,
    /// Spans of `kom_path` and `apps` entries, for messages.
    pub(crate) kom_path_spans: Vec<Span>,
    pub(crate) apps_spans: Vec<Span>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoggingConfig {
    pub dir: Option<String>,
    pub format: Option<String>,
    pub level: Option<String>,
    pub retention_days: Option<u32>,
}

/// Reads `<kompox_dir>/config.yml` if it exists. Unknown keys are warnings;
/// type errors are errors.
pub fn load_config(
    tree: &FileTree,
    kompox_dir: &str,
) -> Result<(Option<KompoxConfig>, Vec<Diagnostic>), Vec<Diagnostic>> {
    let path = join(kompox_dir, "config.yml");
    if !tree.exists(&path) {
        return Ok((None, Vec::new()));
    }
    let text = read_text(tree, &path, None).map_err(|d| vec![d])?;
    let docs = parse_documents(text, &Limits::default()).map_err(|e| {
        vec![Diagnostic::error(e.rule, format!("invalid YAML: {}", e.message)).at(&path, e.span)]
    })?;
    let mut cx = Cx::new(&path, "config.yml");
    let mut cfg = KompoxConfig::default();
    let Some(root) = docs.iter().find(|d| !d.is_null()) else {
        return Ok((Some(cfg), Vec::new()));
    };
    if docs.iter().filter(|d| !d.is_null()).count() > 1 {
        cx.error(
            RULE_CONFIG,
            root.span,
            "config.yml must hold a single YAML document",
        );
    }
    if let Some(root) = cx.map(
        Some(root),
        "",
        &["version", "store", "komPath", "logging", "apps"],
    ) {
        if let Some((v, span)) = cx.int(root, "version", "") {
            if v != 1 {
                cx.warn(
                    RULE_CONFIG,
                    span,
                    format!("config.yml version {v} is not known; reading it as version 1"),
                );
            }
            cfg.version = Some(v);
        }
        if let Some(store) = cx.map(root.get("store"), "store", &["type"]) {
            cfg.store_type = cx.nonempty(store, "type", "store");
        }
        for (p, span) in cx.string_list(root, "komPath", "") {
            cfg.kom_path.push(p);
            cfg.kom_path_spans.push(span);
        }
        for (p, span) in cx.string_list(root, "apps", "") {
            cfg.apps.push(p);
            cfg.apps_spans.push(span);
        }
        if let Some(lg) = cx.map(
            root.get("logging"),
            "logging",
            &["dir", "format", "level", "retentionDays"],
        ) {
            cfg.logging = LoggingConfig {
                dir: cx.nonempty(lg, "dir", "logging"),
                format: cx.nonempty(lg, "format", "logging"),
                level: cx.nonempty(lg, "level", "logging"),
                retention_days: match cx.int(lg, "retentionDays", "logging") {
                    Some((d, _)) if (0..=i64::from(u32::MAX)).contains(&d) => Some(d as u32),
                    Some((d, span)) => {
                        cx.error(
                            RULE_INVALID_FIELD,
                            span,
                            format!("`logging.retentionDays`: {d} is not a number of days"),
                        );
                        None
                    }
                    None => None,
                },
            };
        }
    }
    if cx.error_count() > 0 {
        return Err(cx.diags);
    }
    Ok((Some(cfg), cx.diags))
}

/// Reads a file as UTF-8, turning tree errors into diagnostics.
#[allow(clippy::result_large_err)]
pub(crate) fn read_text<'t>(
    tree: &'t FileTree,
    path: &str,
    limit: Option<u64>,
) -> Result<&'t str, Diagnostic> {
    if let (Some(limit), Some(size)) = (limit, tree.file_size(path))
        && size > limit
    {
        return Err(Diagnostic::error(
            RULE_LIMIT,
            format!("{path} is {size} bytes, over the limit of {limit} bytes for a KOM file"),
        )
        .in_file(path));
    }
    tree.read_text(path).map_err(|e| match e {
        FileError::NotUtf8 {
            line, byte_offset, ..
        } => Diagnostic::error(
            RULE_ENCODING,
            format!(
                "file is not valid UTF-8 (first invalid byte at offset {byte_offset}, line {line})"
            ),
        )
        .at(
            path,
            Span {
                line,
                col: 1,
                start: byte_offset as u32,
                end: byte_offset as u32,
            },
        )
        .help("KOM files must be UTF-8 text"),
        FileError::TooLarge { .. } => Diagnostic::error(RULE_LIMIT, e.to_string()).in_file(path),
        other => Diagnostic::error(RULE_PATH, other.to_string()).in_file(path),
    })
}

/// One KOM path as written, with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct PathEntry {
    pub value: String,
    pub file: Option<String>,
    pub span: Option<Span>,
}

/// The precedence level a set of KOM paths came from (reference §3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Flag,
    Env,
    Defaults,
    Config,
    Default,
}

impl Level {
    fn describe(self) -> &'static str {
        match self {
            Level::Flag => "--kom-path",
            Level::Env => "KOMPOX_KOM_PATH",
            Level::Defaults => "Defaults.spec.komPath",
            Level::Config => "komPath in config.yml",
            Level::Default => "the default KOM directory",
        }
    }
}

/// The KOM paths in force: only the first non-empty level is used.
pub(crate) struct KomPaths {
    pub level: Level,
    pub entries: Vec<PathEntry>,
    /// Directory relative paths are resolved against.
    pub base: String,
}

/// Chooses the KOM path level. `defaults` is the app file's
/// `Defaults.spec.komPath` (with its file and spans), when that level takes
/// part; `app_dir` is the base of levels 1 to 3.
pub(crate) fn choose_paths(
    env: &ProjectEnv,
    kompox_dir: &str,
    app_dir: &str,
    defaults: Option<(&str, &[String], &[Span])>,
    config: Option<&KompoxConfig>,
) -> KomPaths {
    let plain = |v: &[String]| -> Vec<PathEntry> {
        v.iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| PathEntry {
                value: s.to_string(),
                file: None,
                span: None,
            })
            .collect()
    };
    let flag = plain(&env.kom_path_flag);
    if !flag.is_empty() {
        return KomPaths {
            level: Level::Flag,
            entries: flag,
            base: app_dir.to_string(),
        };
    }
    let from_env = plain(&env.kom_path_env);
    if !from_env.is_empty() {
        return KomPaths {
            level: Level::Env,
            entries: from_env,
            base: app_dir.to_string(),
        };
    }
    if let Some((file, paths, spans)) = defaults
        && !paths.is_empty()
    {
        return KomPaths {
            level: Level::Defaults,
            entries: paths
                .iter()
                .zip(spans)
                .map(|(p, s)| PathEntry {
                    value: p.clone(),
                    file: Some(file.to_string()),
                    span: Some(*s),
                })
                .collect(),
            base: app_dir.to_string(),
        };
    }
    if let Some(cfg) = config
        && !cfg.kom_path.is_empty()
    {
        return KomPaths {
            level: Level::Config,
            entries: cfg
                .kom_path
                .iter()
                .zip(&cfg.kom_path_spans)
                .map(|(p, s)| PathEntry {
                    value: p.clone(),
                    file: Some(join(kompox_dir, "config.yml")),
                    span: Some(*s),
                })
                .collect(),
            base: kompox_dir.to_string(),
        };
    }
    KomPaths {
        level: Level::Default,
        entries: vec![PathEntry {
            value: "kom".into(),
            file: None,
            span: None,
        }],
        base: kompox_dir.to_string(),
    }
}

/// Splits a leading `$KOMPOX_ROOT` / `$KOMPOX_DIR` (or `${...}`) off a
/// path, returning the directory it stands for and the rest.
pub(crate) fn expand_vars<'p>(path: &'p str, kompox_dir: &str) -> Option<(String, &'p str)> {
    for (var, dir) in [("KOMPOX_ROOT", ""), ("KOMPOX_DIR", kompox_dir)] {
        for form in [format!("${{{var}}}"), format!("${var}")] {
            if let Some(rest) = path.strip_prefix(form.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return Some((dir.to_string(), rest.trim_start_matches('/')));
            }
        }
    }
    None
}

/// Resolves a path a user wrote (flag, env, config.yml, Defaults) inside
/// the tree: `$KOMPOX_ROOT`/`$KOMPOX_DIR` prefixes expanded, relative to
/// `base`, never leaving the project root (also through symlinks).
pub(crate) fn resolve_user_path(
    tree: &FileTree,
    base: &str,
    value: &str,
    kompox_dir: &str,
) -> Result<String, FileError> {
    let (base, rest) = match expand_vars(value, kompox_dir) {
        Some((dir, rest)) => (dir, rest),
        None => (base.to_string(), value),
    };
    tree.resolve(&base, rest, "")
}

/// The KOM files named by `paths`, de-duplicated by real path, minus
/// `exclude` (real paths of app files, which are loaded on their own).
pub(crate) fn collect_files(
    tree: &FileTree,
    paths: &KomPaths,
    kompox_dir: &str,
    exclude: &BTreeSet<String>,
    limits: &KomLimits,
) -> (Vec<String>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut total: u64 = 0;
    let source = paths.level.describe();
    let located = |d: Diagnostic, e: &PathEntry| match (&e.file, e.span) {
        (Some(f), Some(s)) => d.at(f, s),
        (Some(f), None) => d.in_file(f),
        _ => d,
    };
    for entry in &paths.entries {
        let value = entry.value.as_str();
        let resolved = resolve_user_path(tree, &paths.base, value, kompox_dir)
            .and_then(|p| tree.real_path(&p));
        let real = match resolved {
            Ok(r) => r,
            Err(e) => {
                let help = match e {
                    FileError::Absolute { .. } => Some(
                        "KOM paths are read from the project tree: write them relative, or as $KOMPOX_ROOT/<path> or $KOMPOX_DIR/<path>",
                    ),
                    FileError::Url { .. } => Some("KOM paths must be local files or directories"),
                    _ => None,
                };
                let mut d = Diagnostic::error(
                    RULE_PATH,
                    format!("KOM path `{value}` (from {source}): {e}"),
                );
                if let Some(h) = help {
                    d = d.help(h);
                }
                diags.push(located(d, entry));
                continue;
            }
        };
        if !tree.exists(&real) {
            if paths.level != Level::Default {
                diags.push(located(
                    Diagnostic::error(
                        RULE_PATH,
                        format!("KOM path `{value}` (from {source}) does not exist"),
                    ),
                    entry,
                ));
            }
            continue;
        }
        let mut candidates: Vec<String> = Vec::new();
        if tree.is_dir(&real) {
            for p in tree.list_under(&real) {
                let rel = if real.is_empty() {
                    p
                } else {
                    &p[real.len() + 1..]
                };
                let parts: Vec<&str> = rel.split('/').collect();
                let dirs = &parts[..parts.len() - 1];
                if dirs.iter().any(|c| IGNORED_COMPONENTS.contains(c)) {
                    continue;
                }
                let name = parts[parts.len() - 1];
                if !(name.ends_with(".yml") || name.ends_with(".yaml")) {
                    continue;
                }
                if dirs.len() > limits.max_depth {
                    diags.push(located(
                        Diagnostic::error(
                            RULE_LIMIT,
                            format!(
                                "`{p}` is more than {} directories below the KOM path `{value}`",
                                limits.max_depth
                            ),
                        ),
                        entry,
                    ));
                    continue;
                }
                match tree.real_path(p) {
                    // A symlink to a directory is not descended into.
                    Ok(r) if tree.is_dir(&r) => {}
                    Ok(r) if !tree.exists(&r) => diags.push(
                        Diagnostic::error(RULE_PATH, format!("`{p}` is a broken symlink"))
                            .in_file(p),
                    ),
                    Ok(r) => candidates.push(r),
                    Err(e) => diags.push(Diagnostic::error(RULE_PATH, e.to_string()).in_file(p)),
                }
            }
        } else {
            if !(real.ends_with(".yml") || real.ends_with(".yaml")) {
                diags.push(located(
                    Diagnostic::error(
                        RULE_PATH,
                        format!("KOM file `{value}` (from {source}) must end in .yml or .yaml"),
                    ),
                    entry,
                ));
                continue;
            }
            candidates.push(real);
        }
        for real in candidates {
            if exclude.contains(&real) || !seen.insert(real.clone()) {
                continue;
            }
            let size = tree.file_size(&real).unwrap_or(0);
            if size > limits.max_file_bytes {
                diags.push(
                    Diagnostic::error(
                        RULE_LIMIT,
                        format!(
                            "KOM file is {size} bytes, over the limit of {} bytes",
                            limits.max_file_bytes
                        ),
                    )
                    .in_file(&real),
                );
                continue;
            }
            if files.len() >= limits.max_files {
                diags.push(located(
                    Diagnostic::error(
                        RULE_LIMIT,
                        format!(
                            "more than {} KOM files (from {source}); point the KOM path at a smaller directory",
                            limits.max_files
                        ),
                    ),
                    entry,
                ));
                return (files, diags);
            }
            total += size;
            if total > limits.max_total_bytes {
                diags.push(located(
                    Diagnostic::error(
                        RULE_LIMIT,
                        format!(
                            "KOM files (from {source}) add up to more than {} bytes",
                            limits.max_total_bytes
                        ),
                    ),
                    entry,
                ));
                return (files, diags);
            }
            files.push(real);
        }
    }
    (files, diags)
}

/// App files matched by the `apps:` globs, sorted.
pub(crate) fn app_files(
    tree: &FileTree,
    cfg: &KompoxConfig,
    config_path: &str,
) -> Result<(Vec<String>, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut globs = Vec::new();
    for (pat, span) in cfg.apps.iter().zip(&cfg.apps_spans) {
        let pat_norm = pat.trim().trim_start_matches("./");
        match GlobBuilder::new(pat_norm).literal_separator(true).build() {
            Ok(g) => globs.push((pat, *span, g.compile_matcher())),
            Err(e) => errors.push(
                Diagnostic::error(RULE_CONFIG, format!("invalid glob in `apps`: {e}"))
                    .at(config_path, *span),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut matched = BTreeSet::new();
    for (pat, span, m) in &globs {
        let hits: Vec<&str> = tree.list_under("").filter(|p| m.is_match(p)).collect();
        if hits.is_empty() {
            warnings.push(
                Diagnostic::warning(
                    RULE_CONFIG,
                    format!("`apps` pattern `{pat}` matches no file"),
                )
                .at(config_path, *span),
            );
        }
        matched.extend(hits.into_iter().map(str::to_string));
    }
    Ok((matched.into_iter().collect(), warnings))
}

/// The directory of an app file: its Apps' RefBase.
pub(crate) fn app_dir(app_file: &str) -> String {
    parent_dir(app_file).to_string()
}
