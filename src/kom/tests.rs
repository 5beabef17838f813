//! Tests of the KOM loader, on in-memory file trees.

use super::*;
use crate::model::{ComposeRef, ProtectionLevel, VolumeType, ZoneFailover};
use crate::source::FileTree;

const WS: &str = "/ws/acme";
const PRV: &str = "/ws/acme/prv/aks1";
const CLS: &str = "/ws/acme/prv/aks1/cls/prod";

fn tree(files: &[(&str, &str)]) -> FileTree {
    FileTree::from_files(files.iter().map(|(p, t)| (*p, t.as_bytes().to_vec())))
}

fn doc(kind: &str, id: &str, spec: &str) -> String {
    let name = id.rsplit('/').next().unwrap_or_default();
    let spec = if spec.is_empty() {
        String::new()
    } else {
        format!("spec:\n{}", indent(spec, 2))
    };
    format!(
        "apiVersion: ops.kompox.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  annotations:\n    ops.kompox.dev/id: {id}\n{spec}"
    )
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines().map(|l| format!("{pad}{l}\n")).collect::<String>()
}

fn shared() -> String {
    [
        doc("Workspace", WS, ""),
        doc("Provider", PRV, "driver: aks"),
        doc("Cluster", CLS, "existing: true"),
    ]
    .join("---\n")
}

fn app(name: &str, spec: &str) -> String {
    doc("App", &format!("{CLS}/app/{name}"), spec)
}

fn at(cwd: &str) -> ProjectEnv {
    ProjectEnv {
        cwd: cwd.into(),
        ..ProjectEnv::default()
    }
}

fn errors(r: Result<Project, Vec<Diagnostic>>) -> Vec<Diagnostic> {
    match r {
        Ok(p) => panic!(
            "expected errors, loaded {} apps; warnings {:?}",
            p.kom.apps.len(),
            p.warnings
        ),
        Err(d) => d.into_iter().filter(Diagnostic::is_error).collect(),
    }
}

fn loaded(r: Result<Project, Vec<Diagnostic>>) -> Project {
    match r {
        Ok(p) => p,
        Err(d) => panic!(
            "load failed:\n{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn id(s: &str) -> ResourceId {
    s.parse().unwrap()
}

const FULL_APP_SPEC: &str = r#"compose: file:compose.yml
ingress:
  certResolver: staging
  rules:
    - name: main
      port: 3000
      hosts: [git.example.com]
volumes:
  - name: data
    size: 32Gi
    type: disk
    options: {sku: Premium_ZRS, iops: 3000}
    source: snapshot:nightly-1
  - name: cache
    size: 1073741824
    type: files
deployment:
  pool: user
  zone: "1"
networkPolicy:
  ingressRules:
    - from:
        - namespaceSelector:
            matchLabels: {team: ops}
            matchExpressions:
              - {key: env, operator: In, values: [prod]}
      ports:
        - {port: 9090}
        - {protocol: UDP, port: 53}
resources:
  cpu: 2
settings:
  AZURE_RESOURCE_GROUP_NAME: rg1
  DEBUG: true
snapshots:
  schedule: "0 3 * * *"
  keep: {count: 7, maxAge: 30d}
policy:
  allowDestroy: true
  suspend: false
  zoneFailover: auto
"#;

fn full_repo() -> FileTree {
    let ws = doc(
        "Workspace",
        WS,
        "settings: {owner: me}\npolicy:\n  allowAppRemoval: true\n  maxPruneShare: 0.25",
    );
    let cls = doc(
        "Cluster",
        CLS,
        r#"existing: false
ingress:
  domain: apps.example.com
  certEmail: ops@example.com
  certificates:
    - {name: wild, source: "https://v.vault.azure.net/secrets/wild"}
protection:
  provisioning: cannotDelete
  installation: readOnly
kubeconfig:
  path: kubeconfig.yaml
  context: prod"#,
    );
    let prv = doc(
        "Provider",
        PRV,
        "driver: aks\nsettings: {AZURE_LOCATION: japaneast}",
    );
    tree(&[
        (
            ".kompox/config.yml",
            "version: 1\nstore:\n  type: local\napps:\n  - apps/*/kompoxapp.yml\n",
        ),
        (".kompox/kom/workspace.yml", &ws),
        (".kompox/kom/providers.yml", &prv),
        (".kompox/kom/clusters.yml", &cls),
        ("apps/gitea/kompoxapp.yml", &app("gitea", FULL_APP_SPEC)),
        ("apps/gitea/compose.yml", "services: {}\n"),
        (
            "apps/wiki/kompoxapp.yml",
            &app("wiki", "compose: |\n  services:\n    wiki: {image: wiki}\n"),
        ),
        ("README.md", "# not KOM\n"),
    ])
}

#[test]
fn valid_full_repository() {
    let p = loaded(load_project(&full_repo(), &at("")));
    assert_eq!(p.mode, Mode::Repository);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.kom.workspaces.len(), 1);
    assert_eq!(p.kom.providers.len(), 1);
    assert_eq!(p.kom.clusters.len(), 1);
    assert_eq!(p.kom.apps.len(), 2);
    assert_eq!(
        p.app_files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>(),
        ["apps/gitea/kompoxapp.yml", "apps/wiki/kompoxapp.yml"]
    );
    assert!(p.app_files.iter().all(AppFile::is_loaded));

    let ws = &p.kom.workspaces[0];
    assert!(ws.policy.allow_app_removal);
    assert_eq!(ws.policy.max_prune_share, 0.25);
    assert_eq!(ws.settings["owner"], "me");

    let prv = &p.kom.providers[0];
    assert_eq!(prv.driver, "aks");
    assert_eq!(prv.meta.origin.path, ".kompox/kom/providers.yml");
    assert_eq!(prv.meta.origin.index, 1);

    let c = &p.kom.clusters[0];
    assert_eq!(c.ingress.namespace, "traefik");
    assert_eq!(c.ingress.service_account, "ingress-service-account");
    assert_eq!(c.ingress.domain.as_deref(), Some("apps.example.com"));
    assert_eq!(c.ingress.certificates[0].name, "wild");
    assert_eq!(c.protection.provisioning, ProtectionLevel::CannotDelete);
    assert_eq!(c.protection.installation, ProtectionLevel::ReadOnly);
    let kc = c.kubeconfig.as_ref().unwrap();
    assert_eq!(kc.path.as_deref(), Some("kubeconfig.yaml"));
    assert_eq!(kc.context.as_deref(), Some("prod"));

    let gitea = p.kom.app(&id(&format!("{CLS}/app/gitea"))).unwrap();
    assert_eq!(gitea.ref_base, RefBase::Dir("apps/gitea".into()));
    assert_eq!(gitea.compose, ComposeRef::File("compose.yml".into()));
    assert_eq!(gitea.ingress.cert_resolver.as_deref(), Some("staging"));
    assert_eq!(gitea.ingress.rules[0].name, "main");
    assert_eq!(gitea.ingress.rules[0].port, 3000);
    assert_eq!(gitea.volumes[0].size_bytes, 32 << 30);
    assert_eq!(gitea.volumes[0].kind, VolumeType::Disk);
    assert_eq!(
        gitea.volumes[0].source.as_deref(),
        Some("snapshot:nightly-1")
    );
    assert_eq!(gitea.volumes[0].options["iops"], serde_json::json!(3000));
    assert_eq!(gitea.volumes[1].kind, VolumeType::Files);
    assert_eq!(gitea.volumes[1].size_bytes, 1 << 30);
    assert_eq!(gitea.deployment.pool.as_deref(), Some("user"));
    assert_eq!(gitea.deployment.zone.as_deref(), Some("1"));
    let rule = &gitea.network_policy.ingress_rules[0];
    assert_eq!(
        rule.from[0],
        serde_json::json!({"namespaceSelector": {
            "matchLabels": {"team": "ops"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]
        }})
    );
    assert_eq!(rule.ports[0].protocol, "TCP");
    assert_eq!(rule.ports[1].protocol, "UDP");
    assert_eq!(gitea.resources["cpu"], "2");
    assert_eq!(gitea.settings["DEBUG"], "true");
    let snaps = gitea.snapshots.as_ref().unwrap();
    assert_eq!(snaps.schedule, "0 3 * * *");
    assert_eq!(snaps.keep_count, Some(7));
    assert_eq!(snaps.keep_max_age.as_deref(), Some("30d"));
    assert!(gitea.policy.allow_destroy);
    assert_eq!(gitea.policy.zone_failover, ZoneFailover::Auto);

    let wiki = p.kom.app(&id(&format!("{CLS}/app/wiki"))).unwrap();
    match &wiki.compose {
        ComposeRef::Inline { text, line_offset } => {
            assert!(text.starts_with("services:\n"));
            // "compose: |" is on line 8 of the generated document.
            assert_eq!(*line_offset, 9);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn single_app_mode_in_an_app_directory() {
    let mut t = full_repo();
    t.add_file(
        "apps/gitea/kompoxapp.yml",
        format!(
            "{}---\napiVersion: ops.kompox.dev/v1alpha1\nkind: Defaults\nmetadata: {{name: d}}\nspec:\n  appId: {CLS}/app/gitea\n",
            app("gitea", "compose: file:compose.yml")
        )
        .into_bytes(),
    );
    let p = loaded(load_project(&t, &at("apps/gitea")));
    assert_eq!(p.mode, Mode::SingleApp);
    assert_eq!(p.kom.apps.len(), 1, "only this app file and the shared KOM");
    assert_eq!(p.kom.apps[0].ref_base, RefBase::Dir("apps/gitea".into()));
    assert_eq!(p.app_files.len(), 1);
    assert_eq!(p.app_files[0].path, "apps/gitea/kompoxapp.yml");
    let d = p.defaults.as_ref().unwrap();
    assert_eq!(d.app_id, Some(id(&format!("{CLS}/app/gitea"))));
    assert_eq!(d.origin.index, 2);
    assert_eq!(
        select_app(&p, None, None).unwrap(),
        id(&format!("{CLS}/app/gitea"))
    );
}

#[test]
fn root_without_apps_key_is_single_app_mode() {
    let t = tree(&[
        (".kompox/kom/shared.yml", &shared()),
        ("kompoxapp.yml", &app("web", "compose: file:compose.yml")),
    ]);
    let p = loaded(load_project(&t, &at("")));
    assert_eq!(p.mode, Mode::SingleApp);
    assert_eq!(p.kom.apps[0].ref_base, RefBase::Dir(String::new()));
    assert!(p.config.is_none());
}

#[test]
fn apps_from_kom_paths_have_no_ref_base() {
    let all = format!(
        "{}---\n{}",
        shared(),
        app("web", "compose: file:compose.yml")
    );
    let t = tree(&[(".kompox/kom/all.yml", &all)]);
    let p = loaded(load_project(&t, &at("")));
    assert_eq!(p.kom.apps[0].ref_base, RefBase::None);
    assert!(p.app_files.is_empty());
}

#[test]
fn repository_mode_one_broken_app_file_fails_only_that_app() {
    let mut t = full_repo();
    t.add_file(
        "apps/wiki/kompoxapp.yml",
        app(
            "wiki",
            "compose: file:c.yml\nvolumes:\n  - {name: data, size: lots}",
        )
        .into_bytes(),
    );
    let p = loaded(load_project(&t, &at("")));
    assert_eq!(p.kom.apps.len(), 1);
    assert_eq!(p.kom.apps[0].meta.name, "gitea");
    let wiki = &p.app_files[1];
    assert!(!wiki.is_loaded());
    assert_eq!(wiki.apps, [id(&format!("{CLS}/app/wiki"))]);
    assert_eq!(wiki.errors.len(), 1);
    let e = &wiki.errors[0];
    assert_eq!(e.rule, "kom-invalid-field");
    assert_eq!(e.file.as_deref(), Some("apps/wiki/kompoxapp.yml"));
    assert!(
        e.message.contains("`spec.volumes[0].size`"),
        "{}",
        e.message
    );
    assert_eq!(
        e.resource.as_deref(),
        Some(format!("{CLS}/app/wiki").as_str())
    );
    let sel = select_app(&p, Some(&format!("{CLS}/app/wiki")), None).unwrap_err();
    assert!(sel.help.unwrap().contains("apps/wiki/kompoxapp.yml"));
}

#[test]
fn repository_mode_shared_kom_error_fails_everything() {
    let mut t = full_repo();
    t.add_file(
        ".kompox/kom/clusters.yml",
        doc("Cluster", CLS, "existing: maybe").into_bytes(),
    );
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].file.as_deref(), Some(".kompox/kom/clusters.yml"));
}

#[test]
fn repository_mode_duplicate_across_app_files_fails_the_later_one() {
    let mut t = full_repo();
    t.add_file(
        "apps/zzz/kompoxapp.yml",
        app("wiki", "compose: file:c.yml").into_bytes(),
    );
    let p = loaded(load_project(&t, &at("")));
    let zzz = p
        .app_files
        .iter()
        .find(|f| f.path.starts_with("apps/zzz"))
        .unwrap();
    assert_eq!(zzz.errors[0].rule, "kom-duplicate-id");
    assert!(zzz.errors[0].message.contains("apps/wiki/kompoxapp.yml"));
    assert_eq!(p.kom.apps.len(), 2);
}

#[test]
fn repository_mode_root_app_file_is_warned_about() {
    let mut t = full_repo();
    t.add_file(
        "kompoxapp.yml",
        app("root", "compose: file:c.yml").into_bytes(),
    );
    let p = loaded(load_project(&t, &at("")));
    assert_eq!(p.kom.apps.len(), 2);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.file.as_deref() == Some("kompoxapp.yml"))
    );
}

#[test]
fn duplicate_resource_id_names_the_other_file() {
    let t = tree(&[
        (".kompox/kom/a.yml", &shared()),
        (
            ".kompox/kom/b.yml",
            &format!("# copy\n{}", doc("Provider", PRV, "driver: k3s")),
        ),
    ]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].rule, "kom-duplicate-id");
    assert_eq!(e[0].file.as_deref(), Some(".kompox/kom/b.yml"));
    assert_eq!(e[0].span.unwrap().line, 7);
    assert!(
        e[0].message.contains(".kompox/kom/a.yml (document 2)"),
        "{}",
        e[0].message
    );
    assert_eq!(e[0].resource.as_deref(), Some(PRV));
}

#[test]
fn missing_parent_is_an_error_and_nothing_loads() {
    let t = tree(&[
        (".kompox/kom/ws.yml", &doc("Workspace", WS, "")),
        (".kompox/kom/cls.yml", &doc("Cluster", CLS, "")),
        ("kompoxapp.yml", &app("web", "compose: file:c.yml")),
    ]);
    let e = errors(load_project(&t, &at("")));
    // The App's missing parent is the Cluster, which is itself rejected:
    // one error per problem.
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].rule, "kom-missing-parent");
    assert_eq!(e[0].message, format!("parent \"{PRV}\" does not exist"));
    assert_eq!(e[0].file.as_deref(), Some(".kompox/kom/cls.yml"));
    assert_eq!(e[0].resource.as_deref(), Some(CLS));
}

#[test]
fn bad_dns_names_are_rejected() {
    let bad_id = doc("Workspace", WS, "").replace("/ws/acme", "/ws/Acme_1");
    let t = tree(&[(".kompox/kom/ws.yml", &bad_id)]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e[0].rule, "kom-invalid-id");
    assert!(e[0].message.contains("DNS-1123"), "{}", e[0].message);
    assert_eq!(e[0].span.unwrap().line, 6);

    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        (
            "kompoxapp.yml",
            &app(
                "web",
                "compose: file:c.yml\nvolumes:\n  - {name: Data_1, size: 1Gi}\n  - {name: a-much-too-long-name, size: 1Gi}",
            ),
        ),
    ]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 2);
    assert!(
        e.iter()
            .all(|d| d.message.contains("not a valid volume name"))
    );
}

#[test]
fn resource_id_must_match_kind_and_name() {
    let wrong_kind = doc("Provider", WS, "");
    let wrong_name = doc("Workspace", WS, "").replace("name: acme", "name: other");
    let t = tree(&[
        (".kompox/kom/a.yml", &wrong_kind),
        (".kompox/kom/b.yml", &wrong_name),
    ]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 2);
    assert!(
        e[0].message
            .contains("names a `ws`, but the document is a Provider")
    );
    assert!(e[1].message.contains("metadata.name is \"other\""));
}

#[test]
fn foreign_api_versions_and_empty_documents_are_skipped() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\n---\n{}",
        shared()
    );
    let t = tree(&[(".kompox/kom/mixed.yml", &text)]);
    let p = loaded(load_project(&t, &at("")));
    assert!(p.warnings.is_empty());
    assert_eq!(p.kom.workspaces[0].meta.origin.index, 3);
}

#[test]
fn missing_api_version_or_unknown_kind_is_an_error() {
    let t = tree(&[
        (".kompox/kom/a.yml", "services:\n  web: {image: x}\n"),
        (
            ".kompox/kom/b.yml",
            "apiVersion: ops.kompox.dev/v1alpha1\nkind: Ingress\nmetadata: {name: x}\n",
        ),
    ]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].message.contains("no `apiVersion`"));
    assert!(e[1].message.contains("no `kind`"));
    assert!(e[2].message.contains("unknown kind `Ingress`"));
    assert_eq!(e[2].span.unwrap().line, 2);
}

#[test]
fn unknown_fields_are_warnings_with_file_and_line() {
    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        (
            "kompoxapp.yml",
            &app(
                "web",
                "compose: file:c.yml\nvolumse: []\ningress:\n  rulez: []",
            )
            .replace("  name: web\n", "  name: web\n  namespace: default\n"),
        ),
    ]);
    let p = loaded(load_project(&t, &at("")));
    assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
    let m = &p.warnings[0];
    assert_eq!(
        m.message,
        "unknown field `metadata.namespace` in App; it is ignored"
    );
    assert_eq!(m.span.unwrap().line, 5);
    assert_eq!(
        m.resource.as_deref(),
        Some(format!("{CLS}/app/web").as_str())
    );
    let w = &p.warnings[1];
    assert_eq!(w.rule, "kom-unknown-field");
    assert_eq!(w.file.as_deref(), Some("kompoxapp.yml"));
    assert_eq!(w.span.unwrap().line, 10);
    assert_eq!(
        w.message,
        "unknown field `spec.volumse` in App; it is ignored"
    );
    assert_eq!(w.help.as_deref(), Some("did you mean `spec.volumes`?"));
    assert_eq!(
        w.resource.as_deref(),
        Some(format!("{CLS}/app/web").as_str())
    );
    assert!(p.warnings[2].message.contains("`spec.ingress.rulez`"));
}

#[test]
fn type_errors_name_the_field_and_point_at_the_value() {
    let cls = doc("Cluster", CLS, "existing: maybe");
    let text = [doc("Workspace", WS, ""), doc("Provider", PRV, ""), cls].join("---\n");
    let t = tree(&[(".kompox/kom/clusters.yml", &text)]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 1);
    let d = &e[0];
    assert_eq!(
        d.message,
        "expected a boolean (true or false) for `spec.existing`, found a string"
    );
    let span = d.span.unwrap();
    assert_eq!((span.line, span.col), (22, 13));
    assert_eq!(&text[span.range()], "maybe");
    assert_eq!(d.resource.as_deref(), Some(CLS));
}

#[test]
fn defaults_twice_is_an_error() {
    let defaults =
        "apiVersion: ops.kompox.dev/v1alpha1\nkind: Defaults\nmetadata: {name: d}\nspec: {}\n";
    let text = format!("{defaults}---\n{defaults}");
    let t = tree(&[("kompoxapp.yml", &text)]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].rule, "kom-defaults");
    assert!(e[0].message.contains("at most one"));
    assert_eq!(e[0].span.unwrap().line, 7);
}

#[test]
fn defaults_need_a_name_and_a_valid_app_id() {
    let t = tree(&[(
        "kompoxapp.yml",
        "apiVersion: ops.kompox.dev/v1alpha1\nkind: Defaults\nmetadata: {}\n",
    )]);
    let e = errors(load_project(&t, &at("")));
    assert!(e[0].message.contains("metadata.name"));
    let t = tree(&[(
        "kompoxapp.yml",
        "apiVersion: ops.kompox.dev/v1alpha1\nkind: Defaults\nmetadata: {name: d}\nspec: {appId: app/x}\n",
    )]);
    let e = errors(load_project(&t, &at("")));
    assert!(
        e[0].message.contains("invalid `spec.appId`"),
        "{}",
        e[0].message
    );
}

#[test]
fn defaults_outside_the_app_file_are_ignored_with_a_warning() {
    let text = format!(
        "{}---\napiVersion: ops.kompox.dev/v1alpha1\nkind: Defaults\nmetadata: {{name: d}}\nspec: {{appId: /ws/x/prv/y/cls/z/app/q}}\n",
        shared()
    );
    let t = tree(&[(".kompox/kom/s.yml", &text)]);
    let p = loaded(load_project(&t, &at("")));
    assert!(p.defaults.is_none());
    assert_eq!(p.warnings[0].rule, "kom-defaults");
}

fn ws_named(name: &str) -> String {
    doc("Workspace", &format!("/ws/{name}"), "")
}

fn precedence_tree(with_defaults: bool, with_config: bool) -> FileTree {
    let mut files = vec![
        ("app/flag/a.yml".to_string(), ws_named("flag")),
        ("app/env/a.yml".to_string(), ws_named("env")),
        ("app/dflt/a.yml".to_string(), ws_named("defaults")),
        (".kompox/cfg/a.yml".to_string(), ws_named("config")),
        (".kompox/kom/a.yml".to_string(), ws_named("kom")),
    ];
    if with_defaults {
        files.push((
            "app/kompoxapp.yml".into(),
            "apiVersion: ops.kompox.dev/v1alpha1\nkind: Defaults\nmetadata: {name: d}\nspec:\n  komPath: [dflt]\n".into(),
        ));
    }
    if with_config {
        files.push((
            ".kompox/config.yml".into(),
            "version: 1\nkomPath: [cfg]\n".into(),
        ));
    }
    FileTree::from_files(files.into_iter().map(|(p, t)| (p, t.into_bytes())))
}

fn loaded_workspace(t: &FileTree, env: &ProjectEnv) -> String {
    let p = loaded(load_project(t, env));
    let names: Vec<&str> = p
        .kom
        .workspaces
        .iter()
        .map(|w| w.meta.name.as_str())
        .collect();
    names.join(",")
}

#[test]
fn kom_path_precedence_uses_only_the_first_non_empty_level() {
    let full = precedence_tree(true, true);
    let mut env = at("app");
    env.kom_path_flag = vec!["flag".into()];
    env.kom_path_env = vec!["env".into()];
    assert_eq!(loaded_workspace(&full, &env), "flag");
    env.kom_path_flag.clear();
    assert_eq!(loaded_workspace(&full, &env), "env");
    env.kom_path_env = vec![" ".into()];
    assert_eq!(loaded_workspace(&full, &env), "defaults");
    assert_eq!(
        loaded_workspace(&precedence_tree(false, true), &env),
        "config"
    );
    assert_eq!(
        loaded_workspace(&precedence_tree(false, false), &env),
        "kom"
    );
    // $KOMPOX_ROOT / $KOMPOX_DIR prefixes
    env.kom_path_flag = vec![
        "$KOMPOX_DIR/cfg".into(),
        "${KOMPOX_ROOT}/app/env/a.yml".into(),
    ];
    assert_eq!(loaded_workspace(&full, &env), "config,env");
}

#[test]
fn missing_default_kom_dir_is_fine_but_missing_named_paths_are_not() {
    let t = tree(&[("kompoxapp.yml", &app("web", "compose: file:c.yml"))]);
    // No parents at all: the App alone fails on its parent, not on paths.
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e[0].rule, "kom-missing-parent");

    let t = tree(&[(".kompox/config.yml", "komPath: [nope]\n")]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e[0].rule, "kom-path");
    assert_eq!(e[0].file.as_deref(), Some(".kompox/config.yml"));
    assert_eq!(e[0].span.unwrap().line, 1);
    assert!(e[0].message.contains("does not exist"));
}

#[test]
fn url_and_absolute_kom_paths_are_rejected() {
    let t = tree(&[(".kompox/kom/s.yml", &shared())]);
    let mut env = at("");
    env.kom_path_flag = vec!["https://example.com/kom.yml".into(), "/etc/kom".into()];
    let e = errors(load_project(&t, &env));
    assert_eq!(e.len(), 2);
    assert!(e.iter().any(|d| d.message.contains("is a URL")));
    assert!(e.iter().any(|d| d.message.contains("absolute path")));
    env.kom_path_flag = vec!["../outside".into()];
    let e = errors(load_project(&t, &env));
    assert!(
        e[0].message.contains("leaves the project root"),
        "{}",
        e[0].message
    );
}

#[test]
fn kom_files_must_be_yaml_and_are_deduplicated() {
    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        (".kompox/kom/notes.txt", "hello"),
        (".kompox/kom/node_modules/x.yml", "not: kom"),
        (".kompox/kom/build/x.yml", "not: kom"),
    ]);
    let mut env = at("");
    env.kom_path_flag = vec![".kompox/kom".into(), ".kompox/kom/s.yml".into()];
    let p = loaded(load_project(&t, &env));
    assert_eq!(p.kom.workspaces.len(), 1);
    env.kom_path_flag = vec![".kompox/kom/notes.txt".into()];
    let e = errors(load_project(&t, &env));
    assert!(e[0].message.contains("must end in .yml or .yaml"));
}

#[test]
fn symlinks_in_kom_dirs_are_followed_inside_the_root_only() {
    let mut t = tree(&[("shared/s.yml", &shared())]);
    t.add_symlink(".kompox/kom/s.yml", "../../shared/s.yml");
    t.add_symlink(".kompox/kom/again.yml", "../../shared/s.yml");
    let p = loaded(load_project(&t, &at("")));
    assert_eq!(p.kom.workspaces[0].meta.origin.path, "shared/s.yml");
    t.add_symlink(".kompox/kom/evil.yml", "/etc/passwd.yml");
    let e = errors(load_project(&t, &at("")));
    assert!(e[0].message.contains("symlink"), "{}", e[0].message);
}

#[test]
fn kom_limits_files_size_and_depth() {
    let limits = KomLimits {
        max_files: 2,
        max_file_bytes: 1000,
        max_total_bytes: 1500,
        max_depth: 2,
    };
    let mut files: Vec<(String, String)> = (0..3)
        .map(|i| (format!(".kompox/kom/w{i}.yml"), ws_named(&format!("w{i}"))))
        .collect();
    let t = FileTree::from_files(
        files
            .iter()
            .map(|(p, s)| (p.as_str(), s.clone().into_bytes())),
    );
    let e = errors(load_project_with_limits(&t, &at(""), &limits));
    assert_eq!(e[0].rule, "kom-limit");
    assert!(e[0].message.contains("more than 2 KOM files"));

    files.truncate(1);
    files.push((".kompox/kom/a/b/c/deep.yml".into(), ws_named("deep")));
    files.push((
        ".kompox/kom/big.yml".into(),
        format!("# {}\n", "x".repeat(1200)),
    ));
    let t = FileTree::from_files(
        files
            .iter()
            .map(|(p, s)| (p.as_str(), s.clone().into_bytes())),
    );
    let e = errors(load_project_with_limits(&t, &at(""), &limits));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e.iter()
            .any(|d| d.message.contains("more than 2 directories"))
    );
    assert!(
        e.iter()
            .any(|d| d.file.as_deref() == Some(".kompox/kom/big.yml")
                && d.message.contains("over the limit of 1000 bytes"))
    );
}

#[test]
fn kom_file_over_the_default_size_limit() {
    let mut t = tree(&[(".kompox/kom/s.yml", &shared())]);
    t.add_file(".kompox/kom/huge.yml", vec![b'#'; 2 * 1024 * 1024 + 1]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].rule, "kom-limit");
    assert_eq!(e[0].file.as_deref(), Some(".kompox/kom/huge.yml"));
}

#[test]
fn anchor_bombs_fail_fast_naming_the_file() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let items = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    let t = tree(&[(".kompox/kom/bomb.yml", &text)]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e[0].rule, "yaml-limit");
    assert_eq!(e[0].file.as_deref(), Some(".kompox/kom/bomb.yml"));
}

#[test]
fn non_utf8_kom_files_name_file_and_line() {
    let mut t = tree(&[(".kompox/kom/s.yml", &shared())]);
    t.add_file(".kompox/kom/bad.yml", b"a: 1\nb: caf\xe9\n".to_vec());
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].rule, "kom-encoding");
    assert_eq!(e[0].file.as_deref(), Some(".kompox/kom/bad.yml"));
    assert_eq!(e[0].span.unwrap().line, 2);
}

#[test]
fn compose_file_outside_the_app_dir_is_recorded_not_rejected() {
    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        (
            "apps/web/kompoxapp.yml",
            &app("web", "compose: file:../x/compose.yml"),
        ),
    ]);
    let p = loaded(load_project(&t, &at("apps/web")));
    assert_eq!(
        p.kom.apps[0].compose,
        ComposeRef::File("../x/compose.yml".into())
    );
}

#[test]
fn compose_must_be_a_string() {
    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        ("kompoxapp.yml", &app("web", "compose:\n  services: {}")),
    ]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(
        e[0].message,
        "spec.compose must be a string (inline YAML text or file:<path>)"
    );
    // the mapping under `compose:` (line 8)
    assert_eq!(e[0].span.unwrap().line, 9);
}

#[test]
fn app_without_compose_loads_with_a_warning() {
    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        ("kompoxapp.yml", &app("web", "")),
    ]);
    let p = loaded(load_project(&t, &at("")));
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].message.contains("has no `spec.compose`"));
}

fn app_errors(spec: &str) -> Vec<String> {
    let text = app("web", &format!("compose: file:c.yml\n{spec}"));
    let t = tree(&[(".kompox/kom/s.yml", &shared()), ("kompoxapp.yml", &text)]);
    errors(load_project(&t, &at("")))
        .into_iter()
        .map(|d| d.message)
        .collect()
}

#[test]
fn deployment_rules() {
    let e =
        app_errors("deployment: {pool: a, pools: [b], zone: '1', zones: ['2'], selectors: {x: y}}");
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].contains("deployment.pool and deployment.pools cannot be specified together"));
    assert!(e[1].contains("deployment.zone and deployment.zones cannot be specified together"));
    assert!(e[2].contains("deployment.selectors is reserved and not supported yet"));
}

#[test]
fn network_policy_rules() {
    let e = app_errors(
        r#"networkPolicy:
  ingressRules:
    - {}
    - ports: [{port: 80}]
    - from: [{namespaceSelector: {}}]
    - from: [{}]
    - from:
        - namespaceSelector:
            matchExpressions:
              - {key: a, operator: Exists, values: [x]}
              - {key: b, operator: In}
              - {key: c, operator: Maybe}
      ports: [{protocol: ICMP, port: 1}, {port: 70000}]"#,
    );
    let expect = [
        "the rule is empty",
        "`from` is required when `ports` are set",
        "the selector is empty",
        "`namespaceSelector` is required",
        "operator Exists must have no values",
        "operator In needs at least one value",
        "\"Maybe\" is not one of In, NotIn, Exists, DoesNotExist",
        "\"ICMP\" is not TCP, UDP or SCTP",
        "70000 is not between 1 and 65535",
    ];
    assert_eq!(e.len(), expect.len(), "{e:#?}");
    for (msg, want) in e.iter().zip(expect) {
        assert!(msg.contains(want), "{msg} !~ {want}");
    }
}

#[test]
fn ingress_and_volume_rules() {
    let e = app_errors(
        r#"ingress:
  rules:
    - {name: 1bad, port: 80}
    - {name: ok, port: 0}
    - {name: ok, port: 80}
volumes:
  - {name: d, size: 1.5}
  - {name: e, size: 1Gi, type: nfs}
  - {name: f, size: 1Gi, source: "backup:x"}
  - {name: g}
  - {name: h, size: 1Gi, source: "snapshot:Bad_Name"}"#,
    );
    let expect = [
        "not a valid ingress rule name",
        "0 is not a port number",
        "duplicate ingress rule name \"ok\"",
        "not a whole number of bytes",
        "\"nfs\" is not a volume type",
        "\"backup:x\" is not `snapshot:<name>` or `disk:<name>`",
        "`spec.volumes[3].size`: is required",
        "\"snapshot:Bad_Name\" is not",
    ];
    assert_eq!(e.len(), expect.len(), "{e:#?}");
    for (msg, want) in e.iter().zip(expect) {
        assert!(msg.contains(want), "{msg} !~ {want}");
    }
}

#[test]
fn extension_field_rules() {
    let e = app_errors(
        r#"snapshots:
  schedule: "0 3 * *"
  keep: {count: 0, maxAge: 7days}
policy:
  allowDestroy: "yes"
  zoneFailover: sometimes"#,
    );
    let expect = [
        "has 4 fields",
        "must be at least 1",
        "`7days` is not an age",
        "expected a boolean (true or false) for `spec.policy.allowDestroy`",
        "\"sometimes\" is not manual or auto",
    ];
    assert_eq!(e.len(), expect.len(), "{e:#?}");
    for (msg, want) in e.iter().zip(expect) {
        assert!(msg.contains(want), "{msg} !~ {want}");
    }
    let e = app_errors("snapshots: {keep: {count: 3}}");
    assert!(e[0].contains("spec.snapshots.schedule`: is required"));
}

#[test]
fn workspace_and_cluster_value_rules() {
    let text = [
        doc("Workspace", WS, "policy: {maxPruneShare: 1.5}"),
        doc("Provider", PRV, "driver: aks"),
        doc(
            "Cluster",
            CLS,
            "protection: {provisioning: locked}\nkubeconfig: {path: 'https://x/kc'}",
        ),
    ]
    .join("---\n");
    let t = tree(&[(".kompox/kom/s.yml", &text)]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].message.contains("1.5 is not between 0 and 1"));
    assert!(
        e[1].message
            .contains("\"locked\" is not one of none, cannotDelete, readOnly")
    );
    assert!(e[2].message.contains("not a URL"));
}

#[test]
fn box_rules() {
    let app_id = format!("{CLS}/app/web");
    let boxes = [
        doc("Box", &format!("{app_id}/box/app"), "image: ubuntu"),
        doc(
            "Box",
            &format!("{app_id}/box/ssh"),
            "component: other\nimage: ubuntu\ningress: {}",
        ),
        doc(
            "Box",
            &format!("{app_id}/box/cbox"),
            "command: [sh]\nargs: [-c]",
        ),
        doc(
            "Box",
            &format!("{app_id}/box/good"),
            "image: ubuntu\ncommand: [sleep]\nargs: [inf]",
        ),
    ]
    .join("---\n");
    let text = format!("{}---\n{boxes}", app("web", "compose: file:c.yml"));
    let t = tree(&[(".kompox/kom/s.yml", &shared()), ("kompoxapp.yml", &text)]);
    let e = errors(load_project(&t, &at("")));
    let msgs: Vec<&str> = e.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs.len(), 5, "{msgs:#?}");
    assert!(msgs[0].contains("\"app\" is reserved"));
    assert!(msgs[1].contains("must match metadata.name"));
    assert!(msgs[2].contains("must not specify spec.ingress"));
    assert!(msgs[3].contains("must not specify spec.command"));
    assert!(msgs[4].contains("must not specify spec.args"));

    let ok = format!(
        "{}---\n{}",
        app("web", "compose: file:c.yml"),
        doc(
            "Box",
            &format!("{app_id}/box/good"),
            "image: ubuntu\ncommand: [sleep]"
        )
    );
    let t = tree(&[(".kompox/kom/s.yml", &shared()), ("kompoxapp.yml", &ok)]);
    let p = loaded(load_project(&t, &at("")));
    assert_eq!(p.kom.boxes[0].image.as_deref(), Some("ubuntu"));
    assert_eq!(p.kom.boxes[0].command, ["sleep"]);
}

#[test]
fn config_unknown_keys_warn_and_bad_globs_fail() {
    let t = tree(&[
        (
            ".kompox/config.yml",
            "version: 1\nstore: {type: local}\nlogging: {level: info, retentionDays: 3}\nfoo: bar\n",
        ),
        (".kompox/kom/s.yml", &shared()),
    ]);
    let p = loaded(load_project(&t, &at("")));
    let cfg = p.config.as_ref().unwrap();
    assert_eq!(cfg.store_type.as_deref(), Some("local"));
    assert_eq!(cfg.logging.retention_days, Some(3));
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(p.warnings[0].file.as_deref(), Some(".kompox/config.yml"));
    assert_eq!(p.warnings[0].span.unwrap().line, 4);

    let t = tree(&[(".kompox/config.yml", "apps: ['apps/[x/kompoxapp.yml']\n")]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(e[0].rule, "kom-config");
}

#[test]
fn select_app_rules() {
    let mut t = full_repo();
    // a second App named "wiki" in another cluster
    let cls2 = "/ws/acme/prv/aks1/cls/dev";
    t.add_file(".kompox/kom/dev.yml", doc("Cluster", cls2, "").into_bytes());
    t.add_file(
        "apps/wiki2/kompoxapp.yml",
        doc("App", &format!("{cls2}/app/wiki"), "compose: file:c.yml").into_bytes(),
    );
    let p = loaded(load_project(&t, &at("")));
    let gitea = format!("{CLS}/app/gitea");
    assert_eq!(
        select_app(&p, Some(&gitea), Some("wiki")).unwrap(),
        id(&gitea)
    );
    assert_eq!(select_app(&p, None, Some("gitea")).unwrap(), id(&gitea));
    let e = select_app(&p, None, Some("wiki")).unwrap_err();
    assert!(
        e.message.contains("2 Apps are named \"wiki\""),
        "{}",
        e.message
    );
    let e = select_app(&p, None, Some("nope")).unwrap_err();
    assert!(e.message.contains("no App named \"nope\""));
    let e = select_app(&p, Some(CLS), None).unwrap_err();
    assert!(e.message.contains("is not an App Resource ID"));
    let e = select_app(&p, Some("/ws/acme/prv/aks1/cls/prod/app/zzz"), None).unwrap_err();
    assert!(e.message.contains("not found"));
    let e = select_app(&p, Some("bad"), None).unwrap_err();
    assert!(e.message.contains("invalid --app-id"));
    // repository mode has no implicit App
    let e = select_app(&p, None, None).unwrap_err();
    assert_eq!(e.message, "no App selected");

    // single-app mode: Defaults.appId, then the only App of the app file
    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        (
            "kompoxapp.yml",
            &format!("{}---\n{}", app("a", "compose: x"), app("b", "compose: x")),
        ),
    ]);
    let p = loaded(load_project(&t, &at("")));
    assert!(
        select_app(&p, None, None).is_err(),
        "two Apps: no implicit choice"
    );
    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        ("kompoxapp.yml", &app("a", "compose: x")),
    ]);
    let p = loaded(load_project(&t, &at("")));
    assert_eq!(
        select_app(&p, None, None).unwrap(),
        id(&format!("{CLS}/app/a"))
    );
    let with_defaults = format!(
        "{}---\napiVersion: ops.kompox.dev/v1alpha1\nkind: Defaults\nmetadata: {{name: d}}\nspec: {{appId: {CLS}/app/missing}}\n",
        app("a", "compose: x")
    );
    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        ("kompoxapp.yml", &with_defaults),
    ]);
    let p = loaded(load_project(&t, &at("")));
    let e = select_app(&p, None, None).unwrap_err();
    assert!(
        e.message.starts_with("Defaults.spec.appId: App"),
        "{}",
        e.message
    );
    assert_eq!(e.file.as_deref(), Some("kompoxapp.yml"));
}

#[test]
fn explicit_kom_app_and_missing_app_file() {
    let t = tree(&[
        (".kompox/kom/s.yml", &shared()),
        ("deploy/prod.yml", &app("web", "compose: file:compose.yml")),
    ]);
    let mut env = at("");
    env.kom_app = Some("deploy/prod.yml".into());
    let p = loaded(load_project(&t, &env));
    assert_eq!(p.kom.apps[0].ref_base, RefBase::Dir("deploy".into()));
    env.kom_app = Some("deploy/missing.yml".into());
    let p = loaded(load_project(&t, &env));
    assert!(p.kom.apps.is_empty());
    assert_eq!(p.warnings[0].rule, "kom-path");
}

#[test]
fn all_errors_of_a_load_are_reported_together() {
    let t = tree(&[
        (".kompox/kom/a.yml", &doc("Cluster", CLS, "existing: 3")),
        (".kompox/kom/b.yml", "key: [unclosed\n"),
        (
            "kompoxapp.yml",
            &app("web", "compose: file:c.yml\nvolumes: {}"),
        ),
    ]);
    let e = errors(load_project(&t, &at("")));
    let rules: Vec<&str> = e.iter().map(|d| d.rule).collect();
    assert_eq!(
        rules,
        ["kom-invalid-field", "yaml-syntax", "kom-invalid-field"],
        "{e:#?}"
    );
}

#[test]
fn app_globs_do_not_cross_directories_unless_double_star() {
    let mk = |glob: &str| {
        tree(&[
            (".kompox/config.yml", &format!("apps: ['{glob}']\n")),
            (".kompox/kom/s.yml", &shared()),
            ("apps/a/kompoxapp.yml", &app("a", "compose: file:c.yml")),
            (
                "apps/team/b/kompoxapp.yml",
                &app("b", "compose: file:c.yml"),
            ),
        ])
    };
    let p = loaded(load_project(&mk("apps/*/kompoxapp.yml"), &at("")));
    assert_eq!(p.app_files.len(), 1);
    let p = loaded(load_project(&mk("apps/**/kompoxapp.yml"), &at("")));
    assert_eq!(p.app_files.len(), 2);
    assert_eq!(p.kom.apps[1].ref_base, RefBase::Dir("apps/team/b".into()));
    let p = loaded(load_project(&mk("nothing/*.yml"), &at("")));
    assert!(p.app_files.is_empty());
    assert!(p.warnings[0].message.contains("matches no file"));
}

#[test]
fn diagnostics_render_with_file_line_rule_and_resource() {
    let text = [
        doc("Workspace", WS, ""),
        doc("Provider", PRV, ""),
        doc("Cluster", CLS, "existing: maybe"),
    ]
    .join("---\n");
    let t = tree(&[(".kompox/kom/clusters.yml", &text)]);
    let e = errors(load_project(&t, &at("")));
    assert_eq!(
        e[0].to_string(),
        format!(
            ".kompox/kom/clusters.yml:22:13: error[kom-invalid-field]: expected a boolean (true or false) for `spec.existing`, found a string (in {CLS})"
        )
    );
}
