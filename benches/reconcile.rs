//! The controller (`kompoxops reconcile`) on the testbed:
//! - push → applied with a webhook, one app, p50 and p90 over 10 pushes
//!   (a real Git server: `git http-backend` on 127.0.0.1);
//! - peak RSS of the controller process (VmHWM) idle (no apps), and after
//!   its first pass over 100 and 1,000 example-shaped apps;
//! - the time from start until 1,000 apps are Ready (every Deployment
//!   Available on the kwok nodes).
//!
//! `cargo bench --bench reconcile` (figures in docs/performance.md).

#[path = "../tests/support/testbed.rs"]
mod testbed;

#[path = "../tests/support/git_server.rs"]
mod git_server;

#[path = "support/testbed_repo.rs"]
mod testbed_repo;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn controller(dir: &Path, args: &[&str], log: &Path) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_kompoxops"))
            .arg("reconcile")
            .args(args)
            .current_dir(dir)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn vm_hwm_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap()
        .to_string();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

fn ready(port: u16) -> bool {
    reqwest::blocking::get(format!("http://127.0.0.1:{port}/readyz"))
        .is_ok_and(|r| r.status().as_u16() == 200)
}

fn namespace(tb: &testbed::Testbed, prefix: &str) -> String {
    let ns = tb.unique_name(prefix);
    tb.post_json(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .unwrap();
    ns
}

/// The namespace of app `name` of workspace `ws` in the bench repository.
fn app_namespace(ws: &str, name: &str) -> String {
    let h = kompox::hash::AppHashes::new(ws, "k3s", "tb", name);
    format!("k4x-{}-{name}-{}", h.provider, h.app_id)
}

/// Available Deployments in the given namespaces (one list request).
fn available(tb: &testbed::Testbed, namespaces: &std::collections::HashSet<String>) -> usize {
    let list = tb
        .get_json("/apis/apps/v1/deployments?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dkompox")
        .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["metadata"]["namespace"]
                .as_str()
                .is_some_and(|n| namespaces.contains(n))
                && d["status"]["availableReplicas"] == 1
        })
        .count()
}

fn rss_and_ready(tb: &testbed::Testbed, n: usize) {
    let ws = tb.unique_name(&format!("rc{n}"));
    let dir = tempfile::tempdir().unwrap();
    testbed_repo::repository(dir.path(), &ws, &tb.kubeconfig_path, n);
    let ctl = namespace(tb, &format!("rc{n}-ctl"));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path().join("controller.log");
    let start = Instant::now();
    let c = controller(
        dir.path(),
        &[
            "--lease-namespace",
            &ctl,
            "--listen",
            &listen,
            "--interval",
            "10m",
            "--concurrency",
            "8",
        ],
        &log,
    );
    // Ready = its first pass (every App applied, rollouts waited for) done.
    while !ready(port) {
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "no first pass: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let first_pass = start.elapsed();
    let mut all_ready = None;
    if n > 0 {
        let namespaces: std::collections::HashSet<String> = (0..n)
            .map(|i| app_namespace(&ws, &format!("a{i:04}")))
            .collect();
        while available(tb, &namespaces) < n {
            std::thread::sleep(Duration::from_millis(500));
            assert!(start.elapsed() < Duration::from_secs(1800));
        }
        all_ready = Some(start.elapsed());
    }
    // One more (drift) pass over everything, then read the high-water mark.
    std::thread::sleep(Duration::from_secs(2));
    let rss = vm_hwm_mib(c.0.id());
    println!(
        "reconcile: {n} apps: first pass {:.1} s{}; controller peak RSS (VmHWM) {rss:.1} MiB",
        first_pass.as_secs_f64(),
        all_ready
            .map(|t| format!(", all Deployments Available after {:.1} s", t.as_secs_f64()))
            .unwrap_or_default()
    );
}

fn push_to_applied(tb: &testbed::Testbed) {
    use hmac::{Hmac, Mac};
    let ws = tb.unique_name("rcpush");
    let dir = tempfile::tempdir().unwrap();
    testbed_repo::repository(dir.path(), &ws, &tb.kubeconfig_path, 1);
    let server = git_server::GitServer::start();
    let bare = server.create_repo("ops");
    let work = git_server::Workdir::new(&bare);
    for sub in [".kompox", "apps"] {
        let status = Command::new("cp")
            .args(["-r"])
            .arg(dir.path().join(sub))
            .arg(work.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    work.commit("first");
    work.push("main");
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("token");
    std::fs::write(&token, &server.token).unwrap();
    let secret = b"bench-secret";
    let secret_file = secrets.path().join("hook");
    std::fs::write(&secret_file, secret).unwrap();
    let ctl = namespace(tb, "rcpush-ctl");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let cache = secrets.path().join("cache");
    let url = server.url("ops");
    let _c = controller(
        dir.path(),
        &[
            "--repo",
            &url,
            "--git-username",
            &server.username,
            "--git-token-file",
            token.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--webhook-secret-file",
            secret_file.to_str().unwrap(),
            "--lease-namespace",
            &ctl,
            "--listen",
            &listen,
            "--interval",
            "1h",
        ],
        &secrets.path().join("log"),
    );
    while !ready(port) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ns = app_namespace(&ws, "a0000");
    let client = reqwest::blocking::Client::new();
    let mut times = Vec::new();
    let mut previous = "MODE: prod".to_string();
    for i in 0..10 {
        let compose = work.path().join("apps/a0000/compose.yml");
        let text = std::fs::read_to_string(&compose).unwrap();
        let value = format!("MODE: push{i}");
        assert!(text.contains(&previous));
        std::fs::write(&compose, text.replace(&previous, &value)).unwrap();
        previous = value;
        let commit = work.commit(&format!("push {i}"));
        work.push("main");
        let body = json!({"ref": "refs/heads/main", "after": commit,
            "repository": {"full_name": "acme/ops"}})
        .to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(body.as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let sent = Instant::now();
        let status = client
            .post(format!("http://{listen}/webhook"))
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", format!("bench-{i}"))
            .header("X-Hub-Signature-256", format!("sha256={sig}"))
            .body(body)
            .send()
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 202);
        loop {
            let d = tb
                .get_json(&format!("/apis/apps/v1/namespaces/{ns}/deployments"))
                .unwrap();
            if d.to_string().contains(&format!("\"push{i}\"")) {
                break;
            }
            assert!(sent.elapsed() < Duration::from_secs(120));
            std::thread::sleep(Duration::from_millis(20));
        }
        times.push(sent.elapsed());
    }
    times.sort();
    println!(
        "reconcile: push → applied (webhook, 1 app, 10 pushes): p50 {:.2} s, p90 {:.2} s, max {:.2} s",
        times[4].as_secs_f64(),
        times[8].as_secs_f64(),
        times[9].as_secs_f64()
    );
}

fn main() {
    let tb = testbed::testbed();
    push_to_applied(tb);
    for n in [0usize, 100, 1000] {
        rss_and_ready(tb, n);
    }
}
