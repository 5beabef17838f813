//! The Helm chart `charts/kompox`: linted and rendered with the real helm
//! (built from the Go module proxy, tests/support/helm.rs), the rendered
//! objects checked for what an operator checks (replicas and the writer
//! flag, non-root read-only pods, probes, Secret mounts, RBAC without
//! wildcards), and the chart's RBAC proven on the testbed: its
//! ServiceAccount's token alone runs a real `kompoxops` against an app that
//! makes every kind Kompox writes, and is refused what it must not do.

#[path = "support/helm.rs"]
mod helm;

#[path = "support/testbed.rs"]
mod testbed;

#[path = "common/repo.rs"]
mod repo;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use repo::{Repo, write};
use serde_json::{Value, json};
use testbed::{Testbed, testbed};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/kompox");
/// Never dialled: the tests render, they do not run the reconciler's Git
/// source.
const REPO_URL: &str = "https://127.0.0.1/kompox/apps.git";
const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Rendering

/// `helm template <release> charts/kompox --namespace <ns> --set …`, each
/// document as JSON (empty documents dropped). Panics when helm fails.
fn render(release: &str, namespace: &str, sets: &[&str]) -> Vec<Value> {
    let out = template(release, namespace, sets);
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        helm::text(&out)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = kompox::yaml::parse_documents(&text, &kompox::yaml::Limits::default())
        .unwrap_or_else(|e| panic!("helm's output is not YAML: {e}\n{text}"));
    docs.iter()
        .map(|d| d.to_json())
        .filter(|v| !v.is_null())
        .collect()
}

fn template(release: &str, namespace: &str, sets: &[&str]) -> Output {
    let mut args = vec!["template", release, CHART, "--namespace", namespace];
    for s in sets {
        args.extend(["--set", s]);
    }
    helm::run(&args)
}

/// The default render plus a repository (required on install).
fn render_with(sets: &[&str]) -> Vec<Value> {
    let repo = format!("git.repo={REPO_URL}");
    let mut all = vec![repo.as_str()];
    all.extend(sets);
    render("kompox", "kompox-system", &all)
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objs, kind);
    assert_eq!(found.len(), 1, "one {kind} expected, got {}", found.len());
    found[0]
}

fn container(deploy: &Value) -> &Value {
    let cs = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1, "one container");
    &cs[0]
}

fn args(deploy: &Value) -> Vec<String> {
    container(deploy)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Lint and render

#[test]
fn helm_lint_passes_plain_strict_and_with_every_option() {
    let chart = CHART;
    let cases: &[&[&str]] = &[
        &["lint", chart],
        &["lint", "--strict", chart],
        &[
            "lint",
            "--strict",
            chart,
            "--set",
            "leaderElection.enabled=true",
        ],
        &[
            "lint",
            "--strict",
            chart,
            "--set",
            "git.repo=git@example.com:ops/apps.git,git.auth.ssh.existingSecret=git-ssh",
            "--set",
            "webhook.secret.existingSecret=hook,webhook.ingress.enabled=true,webhook.ingress.host=kompox.example.com",
            "--set",
            "metrics.serviceMonitor.enabled=true,leaderElection.enabled=true",
            "--set",
            "workloadIdentity.azure.clientId=00000000-0000-0000-0000-000000000000",
            "--set",
            "providerCredentials.existingSecret=oci-key",
        ],
    ];
    for args in cases {
        let out = helm::run(args);
        let text = helm::text(&out);
        assert!(out.status.success(), "helm {}:\n{text}", args.join(" "));
        assert!(text.contains("0 chart(s) failed"), "{text}");
        assert!(!text.contains("[WARNING]"), "{text}");
    }
}

#[test]
fn install_without_a_repository_is_refused_with_the_value_to_set() {
    let out = template("kompox", "kompox-system", &[]);
    assert!(!out.status.success(), "rendered without git.repo");
    assert!(helm::text(&out).contains("git.repo is required"));
    let out = template(
        "kompox",
        "kompox-system",
        &[
            &format!("git.repo={REPO_URL}"),
            "git.auth.token.existingSecret=a",
            "git.auth.ssh.existingSecret=b",
        ],
    );
    assert!(!out.status.success(), "token and SSH key at once");
    assert!(
        helm::text(&out).contains("not both"),
        "{}",
        helm::text(&out)
    );
    let out = template(
        "kompox",
        "kompox-system",
        &[
            &format!("git.repo={REPO_URL}"),
            "webhook.ingress.enabled=true",
        ],
    );
    assert!(!out.status.success(), "an exposed webhook without a secret");
}

#[test]
fn default_render_is_one_replica_with_recreate_and_no_leader_election() {
    let objs = render_with(&[]);
    let kinds: BTreeSet<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]),
        "no Ingress or ServiceMonitor unless asked for"
    );
    let d = one(&objs, "Deployment");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let a = args(d);
    assert_eq!(a[0], "reconcile");
    assert!(!a.contains(&"--leader-elect".to_string()), "{a:?}");
    for want in [
        &format!("--repo={REPO_URL}"),
        "--branch=main",
        "--interval=1m",
        "--listen=0.0.0.0:8080",
        "--lease-namespace=$(KOMPOX_LEASE_NAMESPACE)",
        "--cache-dir=/var/cache/kompox",
        "--log-format=json",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
    }
    // No credential flags without Secrets.
    assert!(
        !a.iter()
            .any(|x| x.starts_with("--git-") || x.contains("secret"))
    );
    // The lease namespace is the pod's own (downward API).
    let env = container(d)["env"].as_array().unwrap();
    let lease = env
        .iter()
        .find(|e| e["name"] == "KOMPOX_LEASE_NAMESPACE")
        .unwrap();
    assert_eq!(
        lease["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    // The Lease holder identity is the pod's name.
    let pod_name = env.iter().find(|e| e["name"] == "POD_NAME").unwrap();
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // The cache is an emptyDir at --cache-dir.
    let pod = &d["spec"]["template"]["spec"];
    let cache = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "cache")
        .unwrap();
    assert!(cache["emptyDir"].is_object());
    assert!(
        container(d)["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "cache" && m["mountPath"] == "/var/cache/kompox")
    );
    assert_eq!(pod["serviceAccountName"], "kompox");
    let svc = one(&objs, "Service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
}

#[test]
fn leader_election_renders_two_replicas_with_leader_elect() {
    let objs = render_with(&["leaderElection.enabled=true"]);
    let d = one(&objs, "Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let a = args(d);
    assert_eq!(
        a.iter().filter(|x| *x == "--leader-elect").count(),
        1,
        "{a:?}"
    );
    let objs = render_with(&[
        "leaderElection.enabled=true",
        "leaderElection.leaseDuration=20s",
        "git.driftInterval=5m",
    ]);
    let a = args(one(&objs, "Deployment"));
    assert_eq!(flag_value(&a, "--lease-duration"), Some("20s"));
    assert_eq!(flag_value(&a, "--drift-interval"), Some("5m"));
    let out = template(
        "kompox",
        "kompox-system",
        &[
            &format!("git.repo={REPO_URL}"),
            "leaderElection.enabled=true",
            "leaderElection.replicas=1",
        ],
    );
    assert!(!out.status.success(), "leader election with one replica");
}

#[test]
fn pods_run_as_non_root_with_a_read_only_root_and_no_capabilities() {
    for sets in [&[][..], &["leaderElection.enabled=true"][..]] {
        let objs = render_with(sets);
        let d = one(&objs, "Deployment");
        let pod = &d["spec"]["template"]["spec"];
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true);
        assert_eq!(psc["runAsUser"], 65532);
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
        let sc = &container(d)["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
        assert!(sc["capabilities"]["add"].is_null());
        assert!(sc["privileged"].is_null() || sc["privileged"] == false);
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        // Nothing from the host.
        for v in pod["volumes"].as_array().unwrap() {
            assert!(
                v["emptyDir"].is_object() || v["projected"].is_object() || v["secret"].is_object(),
                "unexpected volume {v}"
            );
        }
        assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());
        // Requests and limits are set.
        let r = &container(d)["resources"];
        for k in ["cpu", "memory"] {
            assert!(r["requests"][k].is_string(), "requests.{k}");
            assert!(r["limits"][k].is_string(), "limits.{k}");
        }
    }
}

#[test]
fn probes_are_on_healthz_and_readyz_of_the_http_port() {
    let objs = render_with(&[]);
    let c = container(one(&objs, "Deployment"));
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
}

/// The `(secret, key) -> file` projections of the credentials volume.
fn projections(d: &Value) -> BTreeMap<String, (String, String)> {
    let pod = &d["spec"]["template"]["spec"];
    let vol = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "credentials")
        .expect("a credentials volume");
    let mut out = BTreeMap::new();
    for s in vol["projected"]["sources"].as_array().unwrap() {
        let secret = &s["secret"];
        for item in secret["items"].as_array().unwrap() {
            out.insert(
                format!("/etc/kompox/secrets/{}", item["path"].as_str().unwrap()),
                (
                    secret["name"].as_str().unwrap().to_string(),
                    item["key"].as_str().unwrap().to_string(),
                ),
            );
        }
    }
    out
}

fn flag_value<'a>(a: &'a [String], flag: &str) -> Option<&'a str> {
    a.iter()
        .find_map(|x| x.strip_prefix(flag)?.strip_prefix('='))
}

#[test]
fn pull_request_comments_take_the_forge_token_from_a_secret_file() {
    let objs = render_with(&[
        "webhook.secret.existingSecret=hook",
        "pullRequests.token.existingSecret=forge",
        "pullRequests.forgeUrl=https://gitea.example.com",
    ]);
    let d = one(&objs, "Deployment");
    let a = args(d);
    let p = projections(d);
    let token = flag_value(&a, "--forge-token-file").expect("--forge-token-file");
    assert_eq!(p[token], ("forge".to_string(), "token".to_string()));
    assert_eq!(
        flag_value(&a, "--forge-url"),
        Some("https://gitea.example.com")
    );
    // Off unless a token Secret is named.
    let d = one(
        &render_with(&["webhook.secret.existingSecret=hook"]),
        "Deployment",
    )
    .clone();
    assert!(flag_value(&args(&d), "--forge-token-file").is_none());
}

#[test]
fn credentials_are_files_from_the_named_secrets() {
    // HTTPS token + webhook secret.
    let objs = render_with(&[
        "git.auth.token.existingSecret=git-creds",
        "git.auth.token.key=pat",
        "git.auth.username=x-access-token",
        "webhook.secret.existingSecret=hook",
    ]);
    let d = one(&objs, "Deployment");
    let a = args(d);
    let p = projections(d);
    let token = flag_value(&a, "--git-token-file").expect("--git-token-file");
    assert_eq!(p[token], ("git-creds".to_string(), "pat".to_string()));
    let hook = flag_value(&a, "--webhook-secret-file").expect("--webhook-secret-file");
    assert_eq!(p[hook], ("hook".to_string(), "secret".to_string()));
    assert_eq!(flag_value(&a, "--git-username"), Some("x-access-token"));
    assert!(flag_value(&a, "--git-ssh-key-file").is_none());
    let mount = container(d)["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "credentials")
        .unwrap();
    assert_eq!(mount["mountPath"], "/etc/kompox/secrets");
    assert_eq!(mount["readOnly"], true);
    let vol = d["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "credentials")
        .unwrap();
    assert_eq!(vol["projected"]["defaultMode"], 0o440);
    // No secret material in the environment: only references.
    for e in container(d)["env"].as_array().unwrap() {
        assert!(e["valueFrom"]["secretKeyRef"].is_null(), "{e}");
    }

    // SSH key + known_hosts from one Secret.
    let objs = render_with(&[
        "git.auth.ssh.existingSecret=git-ssh",
        "git.repo=ssh://git@127.0.0.1/ops/apps.git",
    ]);
    let d = one(&objs, "Deployment");
    let a = args(d);
    let p = projections(d);
    let key = flag_value(&a, "--git-ssh-key-file").expect("--git-ssh-key-file");
    let hosts = flag_value(&a, "--git-known-hosts-file").expect("--git-known-hosts-file");
    assert_eq!(
        p[key],
        ("git-ssh".to_string(), "ssh-privatekey".to_string())
    );
    assert_eq!(p[hosts], ("git-ssh".to_string(), "known_hosts".to_string()));
    assert!(flag_value(&a, "--git-token-file").is_none());
    assert_eq!(p.len(), 2, "only the named keys are projected: {p:?}");
}

#[test]
fn workload_identity_annotations_for_aks_eks_and_gke() {
    let objs = render_with(&[
        "workloadIdentity.azure.clientId=11111111-2222-3333-4444-555555555555",
        "workloadIdentity.aws.roleArn=arn:aws:iam::123456789012:role/kompox",
        "workloadIdentity.gcp.serviceAccount=kompox@proj.iam.gserviceaccount.com",
    ]);
    let sa = one(&objs, "ServiceAccount");
    let ann = &sa["metadata"]["annotations"];
    assert_eq!(
        ann["azure.workload.identity/client-id"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(
        ann["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/kompox"
    );
    assert_eq!(
        ann["iam.gke.io/gcp-service-account"],
        "kompox@proj.iam.gserviceaccount.com"
    );
    let d = one(&objs, "Deployment");
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    // None of it by default.
    let objs = render_with(&[]);
    assert!(
        one(&objs, "ServiceAccount")["metadata"]["annotations"].is_null(),
        "no annotations by default"
    );
    let labels = &one(&objs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    assert!(labels["azure.workload.identity/use"].is_null());
}

#[test]
fn optional_ingress_exposes_only_the_webhook_path_and_the_service_monitor_scrapes_metrics() {
    let objs = render_with(&[
        "webhook.secret.existingSecret=hook",
        "webhook.ingress.enabled=true",
        "webhook.ingress.host=kompox.example.com",
        "metrics.serviceMonitor.enabled=true",
    ]);
    let ing = one(&objs, "Ingress");
    let paths = ing["spec"]["rules"][0]["http"]["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 1);
    assert_eq!(paths[0]["path"], "/webhook");
    assert_eq!(paths[0]["backend"]["service"]["port"]["name"], "http");
    assert_eq!(ing["spec"]["rules"][0]["host"], "kompox.example.com");
    let sm = one(&objs, "ServiceMonitor");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
}

/// Every rule of every Role and ClusterRole of a render.
fn rules(objs: &[Value]) -> Vec<&Value> {
    objs.iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        .flat_map(|o| o["rules"].as_array().unwrap().iter())
        .collect()
}

#[test]
fn rbac_has_no_wildcards_and_grants_writes_only_on_the_kinds_kompox_writes() {
    let objs = render_with(&["leaderElection.enabled=true"]);
    for r in rules(&objs) {
        for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
            assert!(
                !strs(&r[field]).iter().any(|s| s.contains('*')),
                "wildcard in {field}: {r}"
            );
        }
        assert!(r["nonResourceURLs"].is_null(), "{r}");
        for v in strs(&r["verbs"]) {
            assert!(
                !["escalate", "bind", "impersonate", "deletecollection"].contains(&v.as_str()),
                "{v} granted: {r}"
            );
        }
    }
    // group/resource -> verbs, over all roles.
    let mut grants: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in rules(&objs) {
        for g in strs(&r["apiGroups"]) {
            for res in strs(&r["resources"]) {
                grants
                    .entry((g.clone(), res))
                    .or_default()
                    .extend(strs(&r["verbs"]));
            }
        }
    }
    // Every kind the converter emits can be observed and applied...
    let written: BTreeSet<(String, String)> = kompox::cluster::KINDS
        .iter()
        .map(|k| (k.group.to_string(), k.plural.to_string()))
        .collect();
    for k in &written {
        let v = grants.get(k).unwrap_or_else(|| panic!("{k:?} not granted"));
        for verb in ["list", "create", "patch"] {
            assert!(v.contains(verb), "{k:?} lacks {verb}: {v:?}");
        }
    }
    // ...and nothing else is written, but Events and the Lease (release
    // namespace), a Deployment's scale (stopping an app for a snapshot)
    // and what the app-access Role hands on (exec, ephemeral containers).
    let write_verbs = ["create", "patch", "update", "delete"];
    let extra: BTreeSet<String> = grants
        .iter()
        .filter(|(k, v)| {
            !written.contains(*k) && v.iter().any(|x| write_verbs.contains(&x.as_str()))
        })
        .map(|((g, r), _)| format!("{g}/{r}"))
        .collect();
    assert_eq!(
        extra,
        BTreeSet::from([
            "/events".to_string(),
            "/pods/attach".to_string(),
            "/pods/ephemeralcontainers".to_string(),
            "/pods/exec".to_string(),
            "/pods/portforward".to_string(),
            "apps/deployments/scale".to_string(),
            "coordination.k8s.io/leases".to_string(),
        ])
    );
    // Volumes and claims are never deleted (invariant 1), not even by a bug.
    for res in ["persistentvolumes", "persistentvolumeclaims"] {
        let v = &grants[&(String::new(), res.to_string())];
        assert!(!v.contains("delete"), "{res}: {v:?}");
    }
    // The Lease and the Events: in the release namespace only.
    let role = one(&objs, "Role");
    assert_eq!(role["metadata"]["namespace"], "kompox-system");
    for c in of_kind(&objs, "ClusterRole") {
        for r in c["rules"].as_array().unwrap() {
            let res = strs(&r["resources"]);
            assert!(!res.contains(&"leases".to_string()), "{r}");
            let writes = strs(&r["verbs"])
                .iter()
                .any(|v| write_verbs.contains(&v.as_str()));
            assert!(!(res.contains(&"events".to_string()) && writes), "{r}");
        }
    }
    // Bindings name the chart's ServiceAccount.
    for b in of_kind(&objs, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(&objs, "RoleBinding"))
    {
        assert_eq!(b["subjects"][0]["kind"], "ServiceAccount");
        assert_eq!(b["subjects"][0]["name"], "kompox");
        assert_eq!(b["subjects"][0]["namespace"], "kompox-system");
    }
}

// ---------------------------------------------------------------------------
// On the testbed

/// `(api prefix, plural, namespaced)` of the kinds the chart renders.
fn resource_of(o: &Value) -> (String, &'static str, bool) {
    let av = o["apiVersion"].as_str().unwrap();
    let prefix = if av.contains('/') {
        format!("/apis/{av}")
    } else {
        format!("/api/{av}")
    };
    let (plural, namespaced) = match o["kind"].as_str().unwrap() {
        "ServiceAccount" => ("serviceaccounts", true),
        "Service" => ("services", true),
        "Deployment" => ("deployments", true),
        "Ingress" => ("ingresses", true),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "ValidatingAdmissionPolicy" => ("validatingadmissionpolicies", false),
        "ValidatingAdmissionPolicyBinding" => ("validatingadmissionpolicybindings", false),
        k => panic!("no path for kind {k}"),
    };
    (prefix, plural, namespaced)
}

fn object_path(o: &Value) -> String {
    let (prefix, plural, namespaced) = resource_of(o);
    let name = o["metadata"]["name"].as_str().unwrap();
    if namespaced {
        let ns = o["metadata"]["namespace"].as_str().unwrap();
        format!("{prefix}/namespaces/{ns}/{plural}/{name}")
    } else {
        format!("{prefix}/{plural}/{name}")
    }
}

/// The chart installed on the testbed the way `helm install` would put its
/// ServiceAccount, RBAC and admission policy there, plus a token of that
/// ServiceAccount (TokenRequest API) and a kubeconfig with only that token.
struct Installed {
    namespace: String,
    service_account: String,
    token: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    client: reqwest::blocking::Client,
}

impl Installed {
    fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }

    /// A request as the ServiceAccount: `(status, body)`.
    fn request(
        &self,
        tb: &Testbed,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, String) {
        let mut rb = self.client.request(method, tb.url(path));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    }
}

/// Whether the ServiceAccount may `verb` `resource` (`pods` or
/// `pods/exec`; in `namespace`), as the API server's authorizer says
/// (SelfSubjectAccessReview).
fn can(tb: &Testbed, inst: &Installed, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let (code, body) = inst.request(
        tb,
        reqwest::Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(&json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "verb": verb, "group": group, "resource": resource,
                "subresource": subresource, "namespace": ns}}
        })),
    );
    assert_eq!(code, 201, "SelfSubjectAccessReview: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["status"]["allowed"] == true
}

fn install(tb: &Testbed, prefix: &str) -> Installed {
    let ns = tb.unique_name(prefix);
    tb.post_json(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .unwrap();
    let objs = render("kompox", &ns, &[&format!("git.repo={REPO_URL}")]);
    let mut sa = None;
    for o in &objs {
        let kind = o["kind"].as_str().unwrap();
        if !matches!(
            kind,
            "ServiceAccount"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "Role"
                | "RoleBinding"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
        ) {
            continue;
        }
        if kind == "ServiceAccount" {
            sa = Some(o["metadata"]["name"].as_str().unwrap().to_string());
        }
        tb.apply(&object_path(o), "helm", o)
            .unwrap_or_else(|e| panic!("installing {kind}: {e}"));
    }
    let sa = sa.expect("the chart renders a ServiceAccount");
    let tr = tb
        .post_json(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"),
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 3600}}),
        )
        .unwrap();
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_text(tb, &token, &sa)).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&tb.ca_pem).unwrap())
        .no_proxy()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let inst = Installed {
        namespace: ns,
        service_account: sa,
        token,
        kubeconfig,
        _dir: dir,
        client,
    };
    // RBAC and admission policies reach the API server's caches through
    // informers: wait until both are in force. The guard is probed with a
    // dry run, so nothing is written if it is not active yet.
    tb.wait_for("the chart's RBAC in force", WAIT, || {
        // One permission from each binding: the writer and app-access
        // ClusterRoles, the release-namespace Role.
        (can(tb, &inst, "list", "", "secrets", "")
            && can(tb, &inst, "create", "", "pods/exec", "")
            && can(
                tb,
                &inst,
                "create",
                "coordination.k8s.io",
                "leases",
                &inst.namespace,
            ))
        .then_some(())
    });
    tb.wait_for("the chart's admission policy in force", WAIT, || {
        let (code, _) = inst.request(
            tb,
            reqwest::Method::POST,
            "/api/v1/namespaces/default/configmaps?dryRun=All",
            Some(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "guard-probe"}})),
        );
        (code == 403).then_some(())
    });
    inst
}

/// A kubeconfig for the testbed's 127.0.0.1 URL and CA with only `token`.
fn kubeconfig_text(tb: &Testbed, token: &str, user: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(&tb.ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: {}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: testbed
  context:
    cluster: testbed
    user: {user}
current-context: testbed
",
        tb.server_url
    )
}

/// Points the repository's Cluster at another kubeconfig.
fn use_kubeconfig(repo: &Repo, tb: &Testbed, kubeconfig: &Path) {
    let path = repo.dir.path().join(".kompox/kom/shared.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let from = format!("kubeconfig: {{path: {}}}", tb.kubeconfig_path.display());
    assert!(text.contains(&from), "{text}");
    let to = format!("kubeconfig: {{path: {}}}", kubeconfig.display());
    std::fs::write(&path, text.replace(&from, &to)).unwrap();
}

/// One reconcile of the repository by the controller as the chart runs
/// it (`kompoxops reconcile --once`, the Lease, status ConfigMap and Events
/// in the release namespace), with the Cluster's kubeconfig holding only
/// the chart's ServiceAccount token. The revision source is the repository
/// directory (`--dir`): the Git source is tested in tests/git_source.rs.
fn reconcile_once_as_the_controller(repo: &Repo, release_namespace: &str) -> Output {
    repo.run(&[
        "reconcile",
        "--once",
        "--lease-namespace",
        release_namespace,
        "--timeout",
        "120",
    ])
}

/// Compose for an app that makes every kind Kompox writes: Namespace,
/// ServiceAccount, Role, RoleBinding, NetworkPolicy, ConfigMap, Secret,
/// PersistentVolume, PersistentVolumeClaim, Deployment, Service, Ingress.
const EVERY_KIND: &str = "services:
  web:
    image: nginx:1.27
    ports: [\"8080:80\"]
    configs: [motd]
    secrets: [token]
    volumes: [\"data/www:/usr/share/nginx/html\"]
configs:
  motd:
    content: \"hello\\n\"
secrets:
  token:
    file: ./token.txt
";

const EVERY_KIND_SPEC: &str = "  volumes: [{name: data, size: 1Gi}]
  ingress:
    rules:
      - {name: web, port: 8080, hosts: [web.chart.test]}
";

/// Audit events of requests made as `user` since `mark`.
fn requests_of(tb: &Testbed, mark: u64, user: &str) -> Vec<Value> {
    tb.audit_events_since(mark)
        .into_iter()
        .filter(|e| e["user"]["username"] == user)
        .collect()
}

fn succeeded(e: &Value) -> bool {
    e["responseStatus"]["code"]
        .as_u64()
        .is_some_and(|c| (200..300).contains(&c))
}

/// `verb resource[/subresource] namespace` of the successful requests.
fn done(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| succeeded(e))
        .map(|e| {
            let r = &e["objectRef"];
            let sub = r["subresource"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            format!(
                "{} {}{sub} {}",
                e["verb"].as_str().unwrap_or("?"),
                r["resource"].as_str().unwrap_or("?"),
                r["namespace"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn refused(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 401 || e["responseStatus"]["code"] == 403)
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect()
}

#[test]
fn the_service_account_token_alone_reconciles_an_app_with_every_kind_kompox_writes() {
    let tb = testbed();
    let inst = install(tb, "kompox-rbac");
    let repo = Repo::new(tb, "chart");
    repo.with_node_dirs(&[
        "node-a1", "node-a2", "node-b1", "node-b2", "node-c1", "node-c2",
    ]);
    repo.app("web", EVERY_KIND_SPEC, EVERY_KIND);
    write(repo.dir.path(), "apps/web/token.txt", "s3cr3t\n");
    use_kubeconfig(&repo, tb, &inst.kubeconfig);
    let ns = repo.namespace("web");
    let user = inst.username();
    let rel = inst.namespace.as_str();

    // The controller's pass: disks, every kind, the Lease, status, Events.
    let mark = tb.audit_mark();
    let out = reconcile_once_as_the_controller(&repo, rel);
    let text = helm::text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "reconcile --once as the chart's ServiceAccount:\n{text}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let events = requests_of(tb, mark, &user);
    assert_eq!(refused(&events), Vec::<String>::new(), "refused requests");
    let admin_writes = requests_of(tb, mark, testbed::TEST_USER)
        .into_iter()
        .filter(|e| {
            matches!(
                e["verb"].as_str(),
                Some("create" | "patch" | "update" | "delete")
            )
        })
        .filter(|e| e["objectRef"]["namespace"] == ns.as_str())
        .count();
    assert_eq!(admin_writes, 0, "the admin token was used");
    let done1 = done(&events);
    // Every kind Kompox writes, applied by the ServiceAccount.
    let applied: BTreeSet<String> = events
        .iter()
        .filter(|e| e["verb"] == "patch" && succeeded(e))
        .filter_map(|e| e["objectRef"]["resource"].as_str().map(str::to_string))
        .collect();
    let every: BTreeSet<String> = kompox::cluster::KINDS
        .iter()
        .map(|k| k.plural.to_string())
        .collect();
    assert!(
        applied.is_superset(&every),
        "kinds applied by the ServiceAccount: {applied:?}, missing {:?}",
        every.difference(&applied).collect::<Vec<_>>()
    );
    // Its Lease, status and Events, in the release namespace.
    for want in [
        format!("create leases {rel}"),
        format!("patch configmaps {rel}"),
        format!("create events {rel}"),
    ] {
        assert!(done1.contains(&want), "{want} not in {done1:#?}");
    }
    let status = tb
        .get_json(&format!(
            "/api/v1/namespaces/{rel}/configmaps/kompox-status"
        ))
        .unwrap();
    assert!(
        status["data"].as_object().is_some_and(|d| !d.is_empty()),
        "{status}"
    );
    let role = tb
        .get_json(&format!(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/web-access"
        ))
        .unwrap();
    assert!(!role["rules"].as_array().unwrap().is_empty());

    // The CLI with the same token: a consistent snapshot stops the app
    // (the scale subresource, its pods) and starts it again; then the plan
    // is empty.
    let mark = tb.audit_mark();
    let out = repo.run(&[
        "--app-name",
        "web",
        "snapshot",
        "create",
        "-V",
        "data",
        "--consistent",
        "--timeout",
        "120",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", helm::text(&out));
    std::thread::sleep(Duration::from_millis(500));
    let events = requests_of(tb, mark, &user);
    assert_eq!(refused(&events), Vec::<String>::new(), "refused requests");
    let done2 = done(&events);
    assert!(
        done2.contains(&format!("patch deployments/scale {ns}")),
        "{done2:#?}"
    );
    let out = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", helm::text(&out));
}

#[test]
fn the_service_account_is_refused_cluster_rbac_escalation_volume_deletes_and_foreign_namespaces() {
    let tb = testbed();
    let inst = install(tb, "kompox-deny");
    let post = reqwest::Method::POST;
    let del = reqwest::Method::DELETE;
    // A namespace Kompox owns (labelled as it labels its own) with a claim,
    // and one it does not.
    let owned = tb.unique_name("k4x-owned");
    let foreign = tb.unique_name("foreign");
    for (name, labels) in [
        (&owned, json!({"app.kubernetes.io/managed-by": "kompox"})),
        (&foreign, json!({})),
    ] {
        tb.post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels}}),
        )
        .unwrap();
    }
    let kompox_labels = json!({"app.kubernetes.io/managed-by": "kompox"});
    tb.post_json(
        &format!("/api/v1/namespaces/{owned}/persistentvolumeclaims"),
        &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "labels": kompox_labels},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                         "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .unwrap();

    let forbidden = |what: &str, method: reqwest::Method, path: &str, body: Option<&Value>| {
        let (code, text) = inst.request(tb, method, path, body);
        assert_eq!(code, 403, "{what}: expected 403, got {code}: {text}");
        text
    };

    // Cluster-wide RBAC: not at all.
    forbidden(
        "create a ClusterRole",
        post.clone(),
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        Some(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": {"name": format!("{owned}-x")}, "rules": []}),
        ),
    );
    forbidden(
        "bind cluster-admin cluster-wide",
        post.clone(),
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        Some(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": format!("{owned}-x")},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                     "subjects": [{"kind": "ServiceAccount", "name": inst.service_account, "namespace": inst.namespace}]}),
        ),
    );
    // In its own namespace, Roles only with permissions it holds: no
    // escalate, no bind.
    let text = forbidden(
        "a Role with more than it holds",
        post.clone(),
        &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{owned}/roles"),
        Some(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                     "metadata": {"name": "more", "labels": kompox_labels},
                     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete"]}]}),
        ),
    );
    assert!(text.contains("not currently held"), "{text}");
    let text = forbidden(
        "bind cluster-admin in a namespace",
        post.clone(),
        &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{owned}/rolebindings"),
        Some(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": {"name": "admin", "labels": kompox_labels},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                     "subjects": [{"kind": "ServiceAccount", "name": inst.service_account, "namespace": inst.namespace}]}),
        ),
    );
    assert!(text.contains("not currently held"), "{text}");
    // Pods are the controllers' job, not Kompox's.
    forbidden(
        "create a Pod",
        post.clone(),
        &format!("/api/v1/namespaces/{owned}/pods"),
        Some(
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": kompox_labels},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        ),
    );
    // Volumes are never deleted (RBAC), even Kompox's own.
    forbidden(
        "delete a claim",
        del.clone(),
        &format!("/api/v1/namespaces/{owned}/persistentvolumeclaims/data"),
        None,
    );
    assert!(!can(tb, &inst, "delete", "", "persistentvolumes", ""));
    // The guard: no writes outside Kompox's namespaces, though RBAC alone
    // would allow them.
    assert!(can(tb, &inst, "create", "", "configmaps", "kube-system"));
    let text = forbidden(
        "a ConfigMap in kube-system",
        post.clone(),
        "/api/v1/namespaces/kube-system/configmaps",
        Some(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "x", "labels": kompox_labels}})),
    );
    assert!(text.contains("outside them"), "{text}");
    forbidden(
        "a Secret in a foreign namespace",
        post.clone(),
        &format!("/api/v1/namespaces/{foreign}/secrets"),
        Some(&json!({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": "x", "labels": kompox_labels}})),
    );
    forbidden(
        "delete a namespace Kompox does not own",
        del.clone(),
        &format!("/api/v1/namespaces/{foreign}"),
        None,
    );
    assert!(
        tb.get_opt(&format!("/api/v1/namespaces/{foreign}"))
            .unwrap()
            .is_some()
    );
    forbidden(
        "an unlabelled Namespace",
        post.clone(),
        "/api/v1/namespaces",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": format!("{foreign}-new")}})),
    );
    // A Lease: only in the release namespace.
    let lease = |ns: &str| {
        inst.request(
            tb,
            post.clone(),
            &format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"),
            Some(
                &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": "kompox-writer"}}),
            ),
        )
    };
    assert_eq!(lease(&owned).0, 403);
    let (code, text) = lease(&inst.namespace);
    assert_eq!(code, 201, "the Lease in the release namespace: {text}");
    // And what it does own stays writable: a status ConfigMap in the
    // release namespace, a labelled object in its own namespace.
    let (code, text) = inst.request(
        tb,
        post.clone(),
        &format!("/api/v1/namespaces/{}/configmaps", inst.namespace),
        Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kompox-status"}})),
    );
    assert_eq!(code, 201, "status ConfigMap: {text}");
    let (code, text) = inst.request(
        tb,
        post.clone(),
        &format!("/api/v1/namespaces/{owned}/configmaps"),
        Some(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "x", "labels": kompox_labels}})),
    );
    assert_eq!(code, 201, "a ConfigMap in its own namespace: {text}");
    let _ = &inst.token;
}

#[test]
fn every_rendered_object_is_accepted_by_the_api_server() {
    let tb = testbed();
    let ns = tb.unique_name("kompox-dry");
    tb.post_json(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .unwrap();
    let mut checked = BTreeSet::new();
    for sets in [
        &[][..],
        &[
            "leaderElection.enabled=true",
            "git.auth.token.existingSecret=git",
            "git.auth.username=x-access-token",
            "webhook.secret.existingSecret=hook",
            "webhook.ingress.enabled=true",
            "webhook.ingress.host=kompox.example.com",
            "workloadIdentity.azure.clientId=abc",
            "workloadIdentity.aws.roleArn=arn:aws:iam::1:role/k",
            "workloadIdentity.gcp.serviceAccount=k@p.iam.gserviceaccount.com",
            "providerCredentials.existingSecret=prov",
        ][..],
        &["git.auth.ssh.existingSecret=ssh"][..],
    ] {
        let mut all = vec![format!("git.repo={REPO_URL}")];
        all.extend(sets.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        for o in render("kompox", &ns, &all) {
            let path = object_path(&o);
            let r = tb
                .client()
                .patch(tb.url(&path))
                .query(&[
                    ("fieldManager", "helm"),
                    ("force", "true"),
                    ("dryRun", "All"),
                ])
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/apply-patch+yaml",
                )
                .body(o.to_string())
                .send()
                .unwrap();
            let status = r.status();
            let body = r.text().unwrap_or_default();
            assert!(status.is_success(), "{path} rejected ({status}): {body}");
            checked.insert(o["kind"].as_str().unwrap().to_string());
        }
    }
    assert!(
        checked.contains("Deployment") && checked.contains("Ingress"),
        "{checked:?}"
    );
}
