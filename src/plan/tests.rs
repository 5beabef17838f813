//! Golden tests of whole plans (text, markdown and JSON) for hand-made live
//! states, and the properties every plan must keep.

use proptest::prelude::*;
use serde_json::json;

use super::fixtures::*;
use super::*;
use crate::live::{INVENTORY_NAME, LiveDisk, LiveObject, inventory_object};
use crate::report::{self, Header, LiveDescription};

fn header(live: LiveDescription) -> Header {
    Header {
        revision: Some("3f9c2e1a7d5b4c3e2f1a0b9c8d7e6f5a4b3c2d1e".into()),
        workspace: WS.into(),
        live,
    }
}

fn cluster() -> Header {
    header(LiveDescription::Cluster(CLS.into()))
}

fn opts() -> PlanOptions {
    PlanOptions {
        workspaces: vec![WS.into()],
        ..PlanOptions::default()
    }
}

/// Snapshots the three renderings of a plan.
fn golden(name: &str, plan: &Plan, header: &Header) {
    insta::assert_snapshot!(format!("{name}.text"), report::text(plan, header, false));
    insta::assert_snapshot!(format!("{name}.md"), report::markdown(plan, header));
    insta::assert_snapshot!(format!("{name}.json"), report::json(plan, header));
}

fn wiki() -> TestApp {
    TestApp::new(
        "wiki",
        "services:\n  wiki:\n    image: requarks/wiki:2\n    ports:\n      - \"8080:3000\"\n    volumes:\n      - data:/wiki/data\n",
    )
    .volume("data", 8 << 30, &[])
    .bound("data", "data-w1", Some("2"))
}

fn change<'a>(plan: &'a Plan, kind: &str, name: &str) -> &'a Change {
    plan.apps
        .iter()
        .flat_map(|a| &a.changes)
        .find(|c| c.target.kind_label() == kind && c.target.name_label().ends_with(name))
        .unwrap_or_else(|| panic!("no change for {kind} {name}"))
}

// ---- golden cases ---------------------------------------------------------

#[test]
fn golden_no_changes() {
    let g = TestApp::gitea();
    let w = wiki();
    let (gd, wd) = (g.desired(), w.desired());
    let live = live_of(&[&gd, &wd]);
    let plan = plan(&desired_of(vec![g.load(), w.load()]), &live, &opts());
    assert!(!plan.has_changes());
    golden("no_changes", &plan, &cluster());
}

#[test]
fn golden_image_change_is_disruptive() {
    let g = TestApp::gitea();
    let old = TestApp::new(
        "gitea",
        &GITEA_COMPOSE.replace("gitea/gitea:1.22", "gitea/gitea:1.21"),
    )
    .file("gitea.env", GITEA_ENV)
    .volume("data", 32 << 30, &[("sku", "Premium_ZRS")])
    .bound("data", "data-1", Some("1"));
    let live = live_of(&[&old.desired()]);
    let plan = plan(&desired_of(vec![g.load()]), &live, &opts());
    let c = change(&plan, "Deployment", "gitea-app");
    assert_eq!((c.action, c.risk), (Action::Update, Risk::Disruptive));
    assert_eq!(
        c.reasons,
        vec!["pod restarts: spec.template.spec.containers[gitea].image".to_string()]
    );
    assert_eq!(plan.summary.counts.pod_restarts, 1);
    golden("image_change", &plan, &cluster());
}

#[test]
fn golden_removed_service_is_pruned() {
    // Live: the app as applied when it still had a `redis` service.
    let with_redis = format!("{GITEA_COMPOSE}  redis:\n    image: redis:7\n");
    let old = TestApp::new("gitea", &with_redis)
        .file("gitea.env", GITEA_ENV)
        .volume("data", 32 << 30, &[("sku", "Premium_ZRS")])
        .bound("data", "data-1", Some("1"));
    let live = live_of(&[&old.desired()]);
    let g = TestApp::gitea();
    let plan = plan(&desired_of(vec![g.load()]), &live, &opts());
    let svc = change(&plan, "Service", "/redis");
    assert_eq!((svc.action, svc.risk), (Action::Prune, Risk::Safe));
    // The container left the pod template too: kompoxops owned it, so it
    // shows as removed.
    let dep = change(&plan, "Deployment", "gitea-app");
    assert_eq!(dep.risk, Risk::Disruptive);
    assert!(
        dep.diff
            .as_deref()
            .unwrap_or("")
            .contains("-        name: redis"),
        "{:?}",
        dep.diff
    );
    golden("removed_service", &plan, &cluster());
}

#[test]
fn golden_removed_app_prunes_stateless_objects_only() {
    let g = TestApp::gitea();
    let w = wiki();
    let (gd, wd) = (g.desired(), w.desired());
    let live = live_of(&[&gd, &wd]);
    // wiki left Git; gitea is unchanged.
    let plan = plan(&desired_of(vec![g.load()]), &live, &opts());
    let app = plan.apps.iter().find(|a| a.app_name == "wiki").unwrap();
    assert_eq!(app.status, AppStatus::Removed);
    for c in app.changes.iter().filter(|c| c.is_change()) {
        assert_eq!(
            (c.action, c.risk),
            (Action::Prune, Risk::Disruptive),
            "{c:?}"
        );
        assert!(!matches!(
            c.target.kind_label(),
            "PersistentVolume" | "PersistentVolumeClaim" | "Namespace"
        ));
    }
    let ns = change(&plan, "Namespace", &wd.namespace);
    assert_eq!(ns.action, Action::NoOp);
    assert_eq!(
        ns.reasons,
        vec!["kept: holds a PersistentVolumeClaim".to_string()]
    );
    assert!(
        app.changes
            .iter()
            .all(|c| !matches!(c.target, Target::Disk { .. }))
    );
    golden("removed_app", &plan, &cluster());
}

#[test]
fn golden_volume_without_disk_creates_and_assigns() {
    let g = TestApp::gitea().unbound();
    let plan = plan(&desired_of(vec![g.load()]), &Live::empty(), &opts());
    let disk = &plan.apps[0].changes[0];
    assert!(matches!(&disk.target, Target::Disk { volume, .. } if volume == "data"));
    assert_eq!(
        (disk.action, disk.risk, disk.known_after_apply),
        (Action::Create, Risk::Safe, true)
    );
    assert!(disk.details.contains(&"assign".to_string()));
    let pv = change(&plan, "PersistentVolume", KNOWN_AFTER_APPLY);
    assert!(pv.known_after_apply);
    golden(
        "volume_without_disk",
        &plan,
        &header(LiveDescription::Offline),
    );
}

#[test]
fn golden_load_failure_prunes_nothing() {
    let with_redis = format!("{GITEA_COMPOSE}  redis:\n    image: redis:7\n");
    let old = TestApp::new("gitea", &with_redis)
        .file("gitea.env", GITEA_ENV)
        .volume("data", 32 << 30, &[("sku", "Premium_ZRS")])
        .bound("data", "data-1", Some("1"));
    let w = wiki();
    let live = live_of(&[&old.desired(), &w.desired()]);
    let broken = TestApp::new("broken", "services:\n  x:\n    image: [oops\n");
    let mut desired = desired_of(vec![TestApp::gitea().load(), broken.load()]);
    desired
        .failed_files
        .push(failed_file("apps/other/kompoxapp.yml"));
    let plan = plan(&desired, &live, &opts());
    assert!(
        plan.apps
            .iter()
            .flat_map(|a| &a.changes)
            .all(|c| c.action != Action::Prune)
    );
    assert_eq!(plan.notes.len(), 1);
    assert!(
        plan.notes[0].starts_with("no pruning: app file apps/other/kompoxapp.yml failed to load"),
        "{:?}",
        plan.notes
    );
    assert!(matches!(
        plan.apps
            .iter()
            .find(|a| a.app_name == "broken")
            .unwrap()
            .status,
        AppStatus::Failed(_)
    ));
    golden("load_failure", &plan, &cluster());
}

#[test]
fn golden_server_defaults_make_no_diff() {
    let g = TestApp::gitea();
    let gd = g.desired();
    let mut live = Live::from_json(include_str!("testdata/gitea-deployment-live.json")).unwrap();
    let from_file: Vec<_> = live.objects.iter().map(LiveObject::key).collect();
    live.objects.extend(
        server_objects(&gd)
            .into_iter()
            .filter(|o| !from_file.contains(&o.key())),
    );
    live.disks = live_of(&[&gd]).disks;
    let plan = plan(&desired_of(vec![g.load()]), &live, &opts());
    assert!(
        !plan.has_changes(),
        "{}",
        report::text(&plan, &cluster(), false)
    );
    golden(
        "server_defaults",
        &plan,
        &header(LiveDescription::File("live.json".into())),
    );
}

// ---- rules ---------------------------------------------------------------

#[test]
fn determinism_same_inputs_same_bytes() {
    let run = || {
        let g = TestApp::gitea();
        let old = TestApp::new("gitea", &GITEA_COMPOSE.replace("1.22", "1.21"))
            .file("gitea.env", "GITEA__security__SECRET_KEY=old\n")
            .volume("data", 32 << 30, &[("sku", "Premium_ZRS")])
            .bound("data", "data-1", Some("1"));
        let w = wiki();
        let live = live_of(&[&old.desired(), &w.desired()]);
        let p = plan(
            &desired_of(vec![
                g.load(),
                TestApp::new("n", "services:\n  a:\n    image: a\n").load(),
            ]),
            &live,
            &opts(),
        );
        let h = cluster();
        (
            report::text(&p, &h, true),
            report::markdown(&p, &h),
            report::json(&p, &h),
        )
    };
    assert_eq!(run(), run());
}

#[test]
fn secret_values_never_rendered() {
    let g = TestApp::gitea();
    let old = TestApp::new("gitea", GITEA_COMPOSE)
        .file("gitea.env", "GITEA__security__SECRET_KEY=old-value-xyz\n")
        .volume("data", 32 << 30, &[("sku", "Premium_ZRS")])
        .bound("data", "data-1", Some("1"));
    let mut live = live_of(&[&old.desired()]);
    // Also a client-side-apply annotation carrying the value in clear.
    let secret = find_mut(&mut live, "Secret", "gitea-app-gitea-base");
    secret.edit_body(|b| {
        b["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
            json!("{\"stringData\":{\"GITEA__security__SECRET_KEY\":\"old-value-xyz\"}}")
    });
    let plan = plan(&desired_of(vec![g.load()]), &live, &opts());
    let c = change(&plan, "Secret", "gitea-app-gitea-base");
    assert_eq!(c.action, Action::Update);
    let h = cluster();
    for out in [
        report::text(&plan, &h, false),
        report::markdown(&plan, &h),
        report::json(&plan, &h),
    ] {
        for secret in [
            "hunter2-very-secret",
            "old-value-xyz",
            "aHVudGVyMi12ZXJ5LXNlY3JldA",
            "b2xkLXZhbHVlLXh5eg",
        ] {
            assert!(!out.contains(secret), "secret {secret} leaked:\n{out}");
        }
        assert!(out.contains("(sensitive: sha256 "));
    }
}

#[test]
fn adoption_changing_the_pod_template_is_disruptive() {
    let g = TestApp::gitea();
    let old = TestApp::new("gitea", &GITEA_COMPOSE.replace("1.22", "1.21"))
        .file("gitea.env", GITEA_ENV)
        .volume("data", 32 << 30, &[("sku", "Premium_ZRS")])
        .bound("data", "data-1", Some("1"));
    let mut live = live_of(&[&old.desired()]);
    let dep = find_mut(&mut live, "Deployment", "gitea-app");
    dep.edit_body(|b| {
        b["metadata"]["managedFields"] = json!([
            {"manager": "kubectl-client-side-apply", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}},
        ])
    });
    let plan = plan(&desired_of(vec![g.load()]), &live, &opts());
    let c = change(&plan, "Deployment", "gitea-app");
    assert_eq!(c.risk, Risk::Disruptive);
    assert_eq!(c.reasons[0], "adoption");
}

#[test]
fn selector_change_replaces_the_deployment() {
    let g = TestApp::gitea();
    let gd = g.desired();
    let mut live = live_of(&[&gd]);
    let dep = find_mut(&mut live, "Deployment", "gitea-app");
    dep.edit_body(|b| b["spec"]["selector"]["matchLabels"]["app"] = json!("old"));
    let plan = plan(&desired_of(vec![g.load()]), &live, &opts());
    let c = change(&plan, "Deployment", "gitea-app");
    assert_eq!((c.action, c.risk), (Action::Replace, Risk::Disruptive));
}

#[test]
fn pv_and_pvc_are_never_replaced() {
    let g = TestApp::gitea();
    let gd = g.desired();
    let mut live = live_of(&[&gd]);
    let pv_name = gd
        .objects
        .iter()
        .find(|o| o.kind == "PersistentVolume")
        .unwrap()
        .name
        .clone();
    find_mut(&mut live, "PersistentVolume", &pv_name)
        .edit_body(|b| b["spec"]["storageClassName"] = json!("default"));
    find_mut(&mut live, "PersistentVolumeClaim", &pv_name)
        .edit_body(|b| b["spec"]["resources"]["requests"]["storage"] = json!("16Gi"));
    let plan = plan(&desired_of(vec![g.load()]), &live, &opts());
    let pv = change(&plan, "PersistentVolume", &pv_name);
    assert_eq!((pv.action, pv.risk), (Action::Update, Risk::Disruptive));
    assert_eq!(pv.reasons, vec!["immutable: needs a person".to_string()]);
    let pvc = change(&plan, "PersistentVolumeClaim", &pv_name);
    assert_eq!((pvc.action, pvc.risk), (Action::Update, Risk::Safe));
    assert_eq!(
        pvc.reasons,
        vec!["volume expansion: 16Gi → 32Gi".to_string()]
    );
}

#[test]
fn a_field_we_stopped_setting_shows_as_removed() {
    let g = TestApp::gitea();
    let old = TestApp::new(
        "gitea",
        &GITEA_COMPOSE.replace(
            "POSTGRES_DB: gitea",
            "POSTGRES_DB: gitea\n      OLD_FLAG: \"1\"",
        ),
    )
    .file("gitea.env", GITEA_ENV)
    .volume("data", 32 << 30, &[("sku", "Premium_ZRS")])
    .bound("data", "data-1", Some("1"));
    let live = live_of(&[&old.desired()]);
    let p = plan(&desired_of(vec![g.load()]), &live, &opts());
    let c = change(&p, "Deployment", "gitea-app");
    assert!(
        c.fields
            .iter()
            .any(|f| f == "spec.template.spec.containers[postgres].env[OLD_FLAG]"),
        "{:?}",
        c.fields
    );
    // Without managedFields the removal cannot be seen; nothing else shows.
    let mut live = live_of(&[&old.desired()]);
    for o in &mut live.objects {
        o.edit_body(|b| {
            b["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("managedFields");
        });
    }
    let plan2 = plan(&desired_of(vec![g.load()]), &live, &opts());
    assert!(
        !plan2.has_changes(),
        "{}",
        report::text(&plan2, &cluster(), false)
    );
}

#[test]
fn too_many_removed_apps_prune_nothing() {
    let apps: Vec<TestApp> = ["a1", "a2", "a3"]
        .iter()
        .map(|n| TestApp::new(n, "services:\n  web:\n    image: nginx\n"))
        .collect();
    let desireds: Vec<AppDesired> = apps.iter().map(TestApp::desired).collect();
    let live = live_of(&desireds.iter().collect::<Vec<_>>());
    // Two of three apps left Git.
    let p = plan(&desired_of(vec![apps[0].load()]), &live, &opts());
    assert!(
        p.apps
            .iter()
            .flat_map(|a| &a.changes)
            .all(|c| c.action != Action::Prune)
    );
    assert_eq!(p.summary.apps_removed, 2);
    assert!(
        p.notes[0].contains("2 of 3 apps would be removed"),
        "{:?}",
        p.notes
    );
    // One of three is within the share: pruned, its Namespace too (no claim).
    let p = plan(
        &desired_of(vec![apps[0].load(), apps[1].load()]),
        &live,
        &opts(),
    );
    let removed = p
        .apps
        .iter()
        .find(|a| a.status == AppStatus::Removed)
        .unwrap();
    assert!(
        removed
            .changes
            .iter()
            .any(|c| c.action == Action::Prune && c.target.kind_label() == "Namespace")
    );
    assert!(p.notes.is_empty());
}

#[test]
fn inventories_of_other_workspaces_are_left_alone() {
    let a = TestApp::new("a1", "services:\n  web:\n    image: nginx\n");
    let b = TestApp::new("b1", "services:\n  web:\n    image: nginx\n");
    let live = live_of(&[&a.desired(), &b.desired()]);
    let mut o = opts();
    o.workspaces = vec!["other".into()];
    let p = plan(&desired_of(vec![a.load()]), &live, &o);
    assert_eq!(p.apps.len(), 1);
    assert!(!p.has_changes());
}

#[test]
fn disk_states() {
    let g = TestApp::gitea().unbound();
    let gd = g.desired();
    let planned = gd.disks[0].planned_name.clone();
    let mk = |name: &str, assigned: bool| LiveDisk {
        name: name.into(),
        volume: "data".into(),
        app_id_hash: gd.hashes.app_id.clone(),
        assigned,
        size: 32 << 30,
        zone: None,
        options: Default::default(),
        handle: format!("h-{name}"),
        created_at: None,
        updated_at: None,
    };
    // Created by a run that stopped before assigning it: assign only.
    let live = Live {
        disks: vec![mk(&planned, false)],
        ..Live::empty()
    };
    let p = plan(&desired_of(vec![g.load()]), &live, &opts());
    let c = &p.apps[0].changes[0];
    assert_eq!(
        (c.action, c.details.clone()),
        (Action::Update, vec!["assign".to_string()])
    );
    // Assigned in live but not bound by the caller: a warning.
    let live = Live {
        disks: vec![mk("data-x", true)],
        ..Live::empty()
    };
    let p = plan(&desired_of(vec![g.load()]), &live, &opts());
    assert_eq!(p.apps[0].changes[0].action, Action::NoOp);
    assert!(p.apps[0].warnings[0].contains("data-x"));
    // Two assigned disks: the app fails to plan.
    let live = Live {
        disks: vec![mk("data-x", true), mk("data-y", true)],
        ..Live::empty()
    };
    let p = plan(&desired_of(vec![g.load()]), &live, &opts());
    assert!(
        matches!(&p.apps[0].status, AppStatus::Failed(e) if e[0].rule == "disk-multiple-assigned")
    );
    assert!(p.apps[0].changes.is_empty());
}

#[test]
fn inventory_lists_applied_objects_sorted_and_is_never_a_change() {
    let gd = TestApp::gitea().desired();
    let inv = inventory_object(&gd);
    assert_eq!(inv.name, INVENTORY_NAME);
    let lines: Vec<&str> = inv.body["data"]["objects"]
        .as_str()
        .unwrap()
        .lines()
        .collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert_eq!(lines.len(), gd.objects.len());
    assert!(lines.contains(&"apps/v1/Deployment/k4x-4dm8ag-gitea-1rgd8k/gitea-app"));
    let live = live_of(&[&gd]);
    let parsed = live.inventories();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].as_ref().unwrap().entries.len(), lines.len());
    let p = plan(&desired_of(vec![TestApp::gitea().load()]), &live, &opts());
    assert!(
        p.apps[0]
            .changes
            .iter()
            .all(|c| c.target.name_label() != format!("{}/{INVENTORY_NAME}", gd.namespace))
    );
}

#[test]
fn colour_only_when_asked() {
    let g = TestApp::gitea().unbound();
    let p = plan(&desired_of(vec![g.load()]), &Live::empty(), &opts());
    let h = header(LiveDescription::Offline);
    assert!(report::text(&p, &h, true).contains("\x1b["));
    assert!(!report::text(&p, &h, false).contains('\x1b'));
    assert!(!report::markdown(&p, &h).contains('\x1b'));
}

// ---- property: the desired state planned against itself is empty --------

fn compose_strategy() -> impl Strategy<Value = String> {
    let service = (
        prop::sample::select(vec![
            "nginx:1.27",
            "redis:7",
            "postgres:16",
            "ghcr.io/acme/app:v1.2.3",
        ]),
        prop::collection::btree_map("[A-Z][A-Z0-9_]{0,6}", "[a-z0-9:/.-]{0,12}", 0..4),
        // Offsets: each service gets its own port range (one pod network).
        prop::collection::btree_set(0u16..900, 0..3),
    );
    prop::collection::vec(service, 1..4).prop_map(|services| {
        let mut out = String::from("services:\n");
        let mut host = 10000u32;
        for (i, (image, env, ports)) in services.into_iter().enumerate() {
            out.push_str(&format!("  svc{i}:\n    image: {image}\n"));
            if !env.is_empty() {
                out.push_str("    environment:\n");
                for (k, v) in env {
                    out.push_str(&format!("      {k}: \"{v}\"\n"));
                }
            }
            if !ports.is_empty() {
                out.push_str("    ports:\n");
                for p in ports {
                    host += 1;
                    let container = 1024 + 1000 * i as u32 + u32::from(p);
                    out.push_str(&format!("      - \"{host}:{container}\"\n"));
                }
            }
            out.push_str(&format!("    volumes:\n      - data/s{i}:/data\n"));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn desired_against_itself_is_empty(compose in compose_strategy(), decorated in any::<bool>()) {
        let app = TestApp::new("prop", &compose)
            .volume("data", 1 << 30, &[])
            .bound("data", "data-p1", None);
        let d = app.desired();
        let live = if decorated {
            live_of(&[&d])
        } else {
            let mut live = Live::empty();
            live.objects = d.objects.iter().chain(std::iter::once(&inventory_object(&d))).map(LiveObject::from_object).collect();
            live.disks = live_of(&[&d]).disks;
            live
        };
        let p = plan(&desired_of(vec![app.load()]), &live, &opts());
        prop_assert!(!p.has_changes(), "{}", report::text(&p, &cluster(), false));
        prop_assert!(p.apps[0].changes.iter().all(|c| c.action == Action::NoOp && c.reasons.is_empty()));
        prop_assert!(p.notes.is_empty());
    }
}

#[test]
fn deployment_shows_a_pending_claim_name() {
    // Live: applied with disk data-1; desired: converted without the disk.
    let live = live_of(&[&TestApp::gitea().desired()]);
    let g = TestApp::gitea().unbound();
    let p = plan(&desired_of(vec![g.load()]), &live, &opts());
    let dep = change(&p, "Deployment", "gitea-app");
    assert_eq!(
        (dep.action, dep.risk, dep.known_after_apply),
        (Action::Update, Risk::Disruptive, true)
    );
    assert!(
        dep.diff.as_deref().unwrap_or("").contains(&format!(
            "claimName: k4x-4dm8ag-data-1rgd8k-{KNOWN_AFTER_APPLY}"
        )),
        "{:?}",
        dep.diff
    );
    // The live disk is assigned: the plan says so instead of creating one.
    assert!(p.apps[0].warnings[0].contains("`data-1`"));
    assert!(
        p.apps[0]
            .changes
            .iter()
            .all(|c| !matches!(c.target, Target::Disk { .. }) || c.action == Action::NoOp)
    );
    // The old PV/PVC left the desired set: kept, never pruned.
    let kept: Vec<&Change> = p.apps[0]
        .changes
        .iter()
        .filter(|c| c.reasons.iter().any(|r| r.starts_with("kept:")))
        .collect();
    assert_eq!(kept.len(), 2);
}
