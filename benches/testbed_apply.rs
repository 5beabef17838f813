//! On the testbed (a real control plane, tests/support/testbed.rs): the
//! first full apply of 100 and 1,000 example-shaped apps, then a no-op
//! plan — its time, its request count and its writes from the API
//! server's audit log — and the peak RSS of `kompoxops`.
//!
//! `cargo bench --bench testbed_apply` (figures in docs/performance.md).

#[path = "../tests/support/testbed.rs"]
mod testbed;

use std::path::Path;
use std::time::Instant;

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Example-shaped apps like the wiki (three services, env, a config, a
/// port and an ingress host; no volume: disks come with the driver issue).
fn repository(root: &Path, ws: &str, kubeconfig: &Path, n: usize) {
    write(
        root,
        ".kompox/config.yml",
        "version: 1\napps:\n  - apps/*/kompoxapp.yml\n",
    );
    write(
        root,
        ".kompox/kom/shared.yml",
        &format!(
            "apiVersion: ops.kompox.dev/v1alpha1
kind: Workspace
metadata: {{name: {ws}, annotations: {{ops.kompox.dev/id: /ws/{ws}}}}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Provider
metadata: {{name: k3s, annotations: {{ops.kompox.dev/id: /ws/{ws}/prv/k3s}}}}
spec: {{driver: k3s}}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Cluster
metadata: {{name: tb, annotations: {{ops.kompox.dev/id: /ws/{ws}/prv/k3s/cls/tb}}}}
spec: {{existing: true, kubeconfig: {{path: {}}}, ingress: {{domain: apps.example.test}}}}
",
            kubeconfig.display()
        ),
    );
    for i in 0..n {
        let name = format!("a{i:04}");
        write(
            root,
            &format!("apps/{name}/kompoxapp.yml"),
            &format!(
                "apiVersion: ops.kompox.dev/v1alpha1
kind: App
metadata: {{name: {name}, annotations: {{ops.kompox.dev/id: /ws/{ws}/prv/k3s/cls/tb/app/{name}}}}}
spec:
  compose: file:compose.yml
  ingress: {{rules: [{{name: web, port: 8080, hosts: [{name}.example.test]}}]}}
"
            ),
        );
        write(
            root,
            &format!("apps/{name}/compose.yml"),
            "services:
  web:
    image: nginx:1.27
    ports: [\"8080:80\"]
    environment: {MODE: prod}
    configs: [{source: site, target: /etc/nginx/conf.d/site.conf}]
  worker:
    image: ghcr.io/example/worker:1
    env_file: worker.env
  cache:
    image: redis:7
configs:
  site: {content: \"server { listen 80; }\"}
",
        );
        write(root, &format!("apps/{name}/worker.env"), "QUEUE=jobs\n");
    }
}

fn children_max_rss_mib() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    u.ru_maxrss as f64 / 1024.0
}

fn kompoxops(dir: &Path, args: &[&str]) -> (f64, i32) {
    let start = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kompoxops"))
        .args(args)
        .current_dir(dir)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kompoxops");
    if !out.status.success() && out.status.code() != Some(2) {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (
        start.elapsed().as_secs_f64(),
        out.status.code().unwrap_or(-1),
    )
}

fn main() {
    let tb = testbed::testbed();
    for n in [100usize, 1000] {
        let ws = tb.unique_name(&format!("bench{n}"));
        let dir = tempfile::tempdir().unwrap();
        repository(dir.path(), &ws, &tb.kubeconfig_path, n);

        let (t_apply, code) = kompoxops(dir.path(), &["apply", "--auto-approve", "--no-wait"]);
        assert_eq!(code, 0, "first apply failed");
        let rss_apply = children_max_rss_mib();

        let mark = tb.audit_mark();
        let (t_plan, code) = kompoxops(dir.path(), &["plan", "--detailed-exitcode"]);
        assert_eq!(code, 0, "the plan after apply must be empty");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let events: Vec<_> = tb
            .audit_events_since(mark)
            .into_iter()
            .filter(|e| {
                e["user"]["username"] == testbed::TEST_USER && e["stage"] == "ResponseComplete"
            })
            .collect();
        let writes = events
            .iter()
            .filter(|e| {
                matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete")
                )
            })
            .count();
        let lists = events.iter().filter(|e| e["verb"] == "list").count();
        println!(
            "testbed_apply: {n} apps: first apply {t_apply:.1} s; no-op plan {t_plan:.2} s, {} requests ({lists} lists, {writes} writes); peak RSS of kompoxops {rss_apply:.1} MiB",
            events.len()
        );
    }
}
