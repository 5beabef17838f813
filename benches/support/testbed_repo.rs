//! An example-shaped repository on disk whose Cluster points at the
//! testbed, shared by the testbed benchmarks.

#![allow(dead_code)]

use std::path::Path;

pub fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Example-shaped apps like the wiki (three services, env, a config, a
/// port and an ingress host; no volume: disks come with the driver issue).
pub fn repository(root: &Path, ws: &str, kubeconfig: &Path, n: usize) {
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
