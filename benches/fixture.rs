//! Generated repositories for the benchmarks: N apps, each with three
//! services and one volume (the shape), in repository mode.

use kompox::source::FileTree;

pub fn repository(apps: usize) -> FileTree {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            ".kompox/config.yml".into(),
            b"version: 1\napps:\n  - apps/*/kompoxapp.yml\n".to_vec(),
        ),
        (
            ".kompox/kom/shared.yml".into(),
            b"apiVersion: ops.kompox.dev/v1alpha1
kind: Workspace
metadata: {name: bench, annotations: {ops.kompox.dev/id: /ws/bench}}
spec: {}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Provider
metadata: {name: aks1, annotations: {ops.kompox.dev/id: /ws/bench/prv/aks1}}
spec: {driver: aks}
---
apiVersion: ops.kompox.dev/v1alpha1
kind: Cluster
metadata: {name: prod, annotations: {ops.kompox.dev/id: /ws/bench/prv/aks1/cls/prod}}
spec: {ingress: {domain: apps.example.com}}
"
            .to_vec(),
        ),
    ];
    for i in 0..apps {
        let name = format!("app{i:04}");
        files.push((
            format!("apps/{name}/kompoxapp.yml"),
            format!(
                "apiVersion: ops.kompox.dev/v1alpha1
kind: App
metadata: {{name: {name}, annotations: {{ops.kompox.dev/id: /ws/bench/prv/aks1/cls/prod/app/{name}}}}}
spec:
  compose: file:compose.yml
  volumes: [{{name: data, size: 10Gi}}]
  ingress:
    rules: [{{name: web, port: 8080, hosts: [{name}.example.com]}}]
"
            )
            .into_bytes(),
        ));
        files.push((
            format!("apps/{name}/compose.yml"),
            format!(
                "services:
  web:
    image: ghcr.io/example/web:{i}
    ports: [\"8080:80\"]
    env_file: web.env
    environment:
      DB_HOST: db
      CACHE_HOST: cache
    volumes: [\"./data/web:/srv/data\"]
    depends_on:
      db: {{condition: service_healthy}}
  db:
    image: postgres:16
    environment: {{POSTGRES_DB: app}}
    volumes: [\"data/db:/var/lib/postgresql/data\"]
    healthcheck:
      test: [\"CMD-SHELL\", \"pg_isready\"]
      interval: 10s
  cache:
    image: redis:7
    command: redis-server --save ''
"
            )
            .into_bytes(),
        ));
        files.push((
            format!("apps/{name}/web.env"),
            format!("SECRET_KEY=k{i}\nMODE=prod\n").into_bytes(),
        ));
    }
    FileTree::from_files(files.iter().map(|(p, b)| (p.as_str(), b.clone())))
}
