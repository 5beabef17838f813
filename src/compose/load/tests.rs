use super::*;

fn load(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load_compose(text, "compose.yml", &BTreeMap::new(), 0)
}

#[test]
fn short_port_forms() {
    let p = parse_port_short("8080:80").unwrap();
    assert_eq!(
        (p.published, p.target, p.protocol.as_str()),
        (Some(8080), 80, "tcp")
    );
    let p = parse_port_short("127.0.0.1:53:53/udp").unwrap();
    assert_eq!(
        (p.host_ip.as_deref(), p.published, p.protocol.as_str()),
        (Some("127.0.0.1"), Some(53), "udp")
    );
    assert_eq!(parse_port_short("80").unwrap().published, None);
    assert!(
        parse_port_short("8000-8010:8000-8010")
            .unwrap_err()
            .contains("ranges")
    );
    assert!(parse_port_short("http:80").is_err());
}

#[test]
fn shell_split_handles_quotes() {
    assert_eq!(
        shell_split("sh -c 'echo hi there'").unwrap(),
        vec!["sh", "-c", "echo hi there"]
    );
    assert_eq!(
        shell_split(r#"a "b \"c\"" d\ e"#).unwrap(),
        vec!["a", "b \"c\"", "d e"]
    );
    assert!(shell_split("'open").is_none());
}

#[test]
fn unknown_service_key_is_an_error_naming_it() {
    let errs = load("services:\n  web:\n    image: nginx\n    imagee: x\n").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].message.contains("services.web.imagee"),
        "{}",
        errs[0].message
    );
    assert_eq!(errs[0].span.unwrap().line, 4);
}

#[test]
fn ignored_keys_warn_and_appear_in_the_report() {
    let l = load("services:\n  web:\n    image: nginx\n    restart: always\n").unwrap();
    assert!(
        l.warnings
            .iter()
            .any(|w| w.message.contains("services.web.restart"))
    );
    let r = l
        .project
        .report
        .iter()
        .find(|r| r.key == "services.web.restart")
        .unwrap();
    assert_eq!(r.status, KeyStatus::Ignored);
}

#[test]
fn reset_removes_a_merged_key() {
    let text = "x-base: &base\n  image: nginx\n  ports: [\"80:80\"]\nservices:\n  web:\n    <<: *base\n    ports: !reset []\n";
    let l = load(text).unwrap();
    assert!(l.project.services[0].ports.is_empty());
    assert_eq!(l.project.services[0].image.as_deref(), Some("nginx"));
}

#[test]
fn environment_list_and_map_forms() {
    let l = load("services:\n  a:\n    image: x\n    environment: [A=1, B]\n  b:\n    image: x\n    environment: {C: 2, D: null, E: true}\n").unwrap();
    let a = &l.project.services[0].environment;
    assert_eq!(a.get("A"), Some(&Some("1".into())));
    assert_eq!(a.get("B"), Some(&None));
    let b = &l.project.services[1].environment;
    assert_eq!(b.get("C"), Some(&Some("2".into())));
    assert_eq!(b.get("D"), Some(&None));
    assert_eq!(b.get("E"), Some(&Some("true".into())));
}

#[test]
fn interpolation_uses_given_vars_only() {
    let vars = BTreeMap::from([("TAG".to_string(), "1.2".to_string())]);
    let l = load_compose(
        "services:\n  a:\n    image: \"app:${TAG}\"\n    user: ${NOPE:-1000}\n",
        "c.yml",
        &vars,
        0,
    )
    .unwrap();
    assert_eq!(l.project.services[0].image.as_deref(), Some("app:1.2"));
    assert_eq!(l.project.services[0].user.as_deref(), Some("1000"));
}

#[test]
fn inline_compose_line_offset_shifts_errors() {
    let errs = load_compose(
        "services:\n  web:\n    bogus: 1\n",
        "kompoxapp.yml",
        &BTreeMap::new(),
        10,
    )
    .unwrap_err();
    assert!(errs.iter().any(|e| e.span.unwrap().line == 13));
}

#[test]
fn service_without_image_is_rejected() {
    let errs = load("services:\n  web:\n    build: .\n").unwrap_err();
    assert!(errs.iter().any(|e| e.rule == "compose-image-required"));
}

#[test]
fn profiles_skip_the_service_with_a_warning() {
    let l =
        load("services:\n  web:\n    image: x\n  debug:\n    image: y\n    profiles: [debug]\n")
            .unwrap();
    assert_eq!(l.project.services.len(), 1);
    assert!(l.warnings.iter().any(|w| w.rule == "compose-profile"));
}

#[test]
fn healthcheck_forms() {
    let l = load("services:\n  db:\n    image: pg\n    healthcheck:\n      test: [\"CMD-SHELL\", \"pg_isready -U app\"]\n      interval: 10s\n      retries: 5\n      start_period: 30s\n").unwrap();
    let hc = l.project.services[0].healthcheck.clone().unwrap();
    assert_eq!(hc.test, Some(HealthTest::Shell("pg_isready -U app".into())));
    assert_eq!(
        (hc.interval_secs, hc.retries, hc.start_period_secs),
        (Some(10), Some(5), Some(30))
    );
}

#[test]
fn deploy_resources_and_legacy_limits() {
    let l = load("services:\n  a:\n    image: x\n    deploy:\n      resources:\n        limits: {cpus: '0.5', memory: 512M}\n        reservations: {memory: 128m}\n  b:\n    image: x\n    cpus: 2\n    mem_limit: 1g\n").unwrap();
    let a = &l.project.services[0].resources;
    assert_eq!(a.limits_cpu.as_deref(), Some("500m"));
    assert_eq!(a.limits_memory.as_deref(), Some("512Mi"));
    assert_eq!(a.requests_memory.as_deref(), Some("128Mi"));
    let b = &l.project.services[1].resources;
    assert_eq!(b.limits_cpu.as_deref(), Some("2"));
    assert_eq!(b.limits_memory.as_deref(), Some("1Gi"));
}

#[test]
fn file_modes_are_octal_with_leading_zero() {
    assert_eq!(parse_mode("0440"), Some(0o440));
    assert_eq!(parse_mode("0o600"), Some(0o600));
    assert_eq!(parse_mode("288"), Some(288));
}

#[test]
fn two_documents_are_rejected() {
    let errs = load("services: {}\n---\nservices: {}\n").unwrap_err();
    assert_eq!(errs[0].rule, "compose-document");
}

#[test]
fn unset_variables_warn_but_load() {
    let l = load("services:\n  a:\n    image: \"app:${TAG}\"\n").unwrap();
    assert_eq!(l.project.services[0].image.as_deref(), Some("app:"));
    assert!(
        l.warnings
            .iter()
            .any(|w| w.rule == "compose-variable-unset"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn long_syntax_keys_are_never_dropped_silently() {
    let errs = load("services:\n  a:\n    image: x\n    volumes:\n      - {type: volume, source: data, target: /d, bogus: 1}\n").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.message.contains("services.a.volumes.bogus")),
        "{errs:?}"
    );
    let l = load("services:\n  a:\n    image: x\n    secrets: [{source: s, uid: '1000'}]\nsecrets:\n  s: {content: x}\n").unwrap();
    assert!(
        l.warnings
            .iter()
            .any(|w| w.message.contains("services.a.secrets.uid")),
        "{:?}",
        l.warnings
    );
    let errs =
        load("services:\n  a:\n    image: x\n    env_file: [{path: a.env, requird: false}]\n")
            .unwrap_err();
    assert!(
        errs.iter().any(|e| e.message.contains("requird")),
        "{errs:?}"
    );
    let l = load("services:\n  a:\n    image: x\n    depends_on: {b: {condition: service_started, restart: true}}\n  b:\n    image: y\n").unwrap();
    assert!(
        l.warnings
            .iter()
            .any(|w| w.message.contains("services.a.depends_on.b.restart")),
        "{:?}",
        l.warnings
    );
}
