//! Ports, Services, Ingresses and the NetworkPolicy (reference §4.7–4.9).

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::{Cx, Names, Object};
use crate::model::AppContext;

/// A published port of the pod: host (Service) port → container port.
#[derive(Debug, Clone)]
pub struct PublishedPort {
    pub host: u16,
    pub container: u16,
    pub protocol: String,
    pub service: String,
}

/// Checks every port mapping and returns them sorted by host port.
pub fn collect_ports(cx: &mut Cx<'_, '_>) -> Vec<PublishedPort> {
    let mut by_host: BTreeMap<u16, PublishedPort> = BTreeMap::new();
    let mut container_owner: BTreeMap<(u16, String), String> = BTreeMap::new();
    for svc in &cx.input.compose.services {
        for p in &svc.ports {
            let Some(host) = p.published else {
                cx.error(
                    "compose-port",
                    p.span,
                    format!(
                        "ports must be 'host:container' style numeric; `{}` in service `{}` publishes no host port",
                        p.raw, svc.name
                    ),
                    "write \"8080:80\" (the host port becomes the Service port)",
                );
                continue;
            };
            let proto = p.protocol.to_ascii_uppercase();
            if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
                cx.error(
                    "compose-port",
                    p.span,
                    format!("unknown protocol `{}` in `{}`", p.protocol, p.raw),
                    "use tcp, udp or sctp",
                );
                continue;
            }
            if let Some(owner) = container_owner.get(&(p.target, proto.clone()))
                && owner != &svc.name
            {
                cx.error(
                    "compose-port-conflict",
                    p.span,
                    format!(
                        "container port {} is used by services `{owner}` and `{}`; all services share one pod network",
                        p.target, svc.name
                    ),
                    "give each service its own container port",
                );
                continue;
            }
            container_owner.insert((p.target, proto.clone()), svc.name.clone());
            if let Some(prev) = by_host.get(&host) {
                if prev.container != p.target || prev.service != svc.name {
                    cx.error(
                        "compose-port-conflict",
                        p.span,
                        format!(
                            "host port {host} is mapped twice (to {}:{} and {}:{})",
                            prev.service, prev.container, svc.name, p.target
                        ),
                        "each host port may map to one container port",
                    );
                }
                continue;
            }
            by_host.insert(
                host,
                PublishedPort {
                    host,
                    container: p.target,
                    protocol: proto,
                    service: svc.name.clone(),
                },
            );
        }
    }
    by_host.into_values().collect()
}

/// The ingress Service `<app>-app` and one headless Service per compose service.
pub fn services(cx: &mut Cx<'_, '_>, ports: &[PublishedPort]) -> Vec<Object> {
    let n = cx.names;
    let rules = &cx.input.ctx.app.ingress.rules;
    let mut out = Vec::new();
    let service_ports: Vec<Json> = if !rules.is_empty() {
        rules
            .iter()
            .filter_map(|r| {
                let p = ports.iter().find(|p| p.host == r.port)?;
                Some(json!({"name": r.name, "port": r.port, "targetPort": p.container, "protocol": p.protocol}))
            })
            .collect()
    } else {
        ports
            .iter()
            .map(|p| json!({"name": format!("p{}", p.host), "port": p.host, "targetPort": p.container, "protocol": p.protocol}))
            .collect()
    };
    if !service_ports.is_empty() {
        out.push(Object::new(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": n.meta(&n.workload, n.component_labels()),
            "spec": {"type": "ClusterIP", "selector": n.selector(), "ports": service_ports},
        })));
    }
    for svc in &cx.input.compose.services {
        if svc.name.starts_with(&format!("{}-app", n.app))
            || svc.name.starts_with(&format!("{}-box", n.app))
        {
            cx.error(
                "compose-service-name",
                svc.span,
                format!(
                    "service name `{}` collides with Kompox's own names (`{}-app*`, `{}-box*`)",
                    svc.name, n.app, n.app
                ),
                "rename the compose service",
            );
            continue;
        }
        let mut labels = n.component_labels();
        labels.insert("kompox.dev/compose-service-headless".into(), "true".into());
        out.push(Object::new(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": n.meta(&svc.name, labels),
            "spec": {"clusterIP": "None", "selector": n.selector()},
        })));
    }
    out
}

/// Traefik Ingresses: `-default` on the cluster domain, `-custom` for hosts.
pub fn ingresses(cx: &mut Cx<'_, '_>, ports: &[PublishedPort]) -> Vec<Object> {
    let n = cx.names;
    let app = cx.input.ctx.app;
    let cluster = cx.input.ctx.cluster;
    let rules = &app.ingress.rules;
    let domain = cluster
        .ingress
        .domain
        .as_deref()
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase());
    let mut seen_ports: BTreeMap<u16, &str> = BTreeMap::new();
    let mut by_container: BTreeMap<u16, &str> = BTreeMap::new();
    let mut seen_hosts: BTreeMap<String, &str> = BTreeMap::new();
    let mut ok = true;
    for r in rules {
        if let Some(prev) = seen_ports.insert(r.port, &r.name) {
            cx.kom_error(
                "ingress-rule",
                r.span,
                format!(
                    "ingress rules `{prev}` and `{}` use the same port {}",
                    r.name, r.port
                ),
                "give each rule its own port",
            );
            ok = false;
        }
        let Some(p) = ports.iter().find(|p| p.host == r.port) else {
            cx.kom_error(
                "ingress-rule",
                r.span,
                format!("ingress rule `{}` port {} is not a published (host) port of any compose service", r.name, r.port),
                "use the HOST side of a compose `ports:` entry",
            );
            ok = false;
            continue;
        };
        if let Some(prev) = by_container.insert(p.container, &r.name)
            && prev != r.name
        {
            cx.kom_error(
                "ingress-rule",
                r.span,
                format!(
                    "ingress rules `{prev}` and `{}` point at the same container port {}",
                    r.name, p.container
                ),
                "",
            );
            ok = false;
        }
        for h in &r.hosts {
            let host = h.to_ascii_lowercase();
            if let Some(d) = &domain
                && (host == *d || host.ends_with(&format!(".{d}")))
            {
                cx.kom_error(
                    "ingress-host",
                    r.span,
                    format!("host `{h}` is under the cluster domain `{d}`, which is reserved for default hosts"),
                    "use a host outside the cluster's ingress domain",
                );
                ok = false;
            }
            if let Some(prev) = seen_hosts.insert(host.clone(), &r.name) {
                cx.kom_error(
                    "ingress-host",
                    r.span,
                    format!("host `{h}` appears twice (rules `{prev}` and `{}`)", r.name),
                    "",
                );
                ok = false;
            }
        }
    }
    if !ok || rules.is_empty() {
        return Vec::new();
    }
    let mut annotations = BTreeMap::from([
        (
            "traefik.ingress.kubernetes.io/router.entrypoints".to_string(),
            "websecure".to_string(),
        ),
        (
            "traefik.ingress.kubernetes.io/router.tls".to_string(),
            "true".to_string(),
        ),
    ]);
    let rule_json = |host: &str, rule_name: &str| {
        json!({
            "host": host,
            "http": {"paths": [{
                "path": "/",
                "pathType": "Prefix",
                "backend": {"service": {"name": n.workload, "port": {"name": rule_name}}},
            }]},
        })
    };
    let mut out = Vec::new();
    if let Some(d) = &domain {
        let default_rules: Vec<Json> = rules
            .iter()
            .map(|r| {
                rule_json(
                    &format!("{}-{}-{}.{d}", n.app, n.hashes.app_id, r.port),
                    &r.name,
                )
            })
            .collect();
        out.push(Object::new(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": format!("{}-default", n.workload),
                "namespace": n.namespace,
                "labels": n.component_labels(),
                "annotations": annotations.clone(),
            },
            "spec": {"ingressClassName": "traefik", "rules": default_rules},
        })));
    }
    let custom: Vec<Json> = rules
        .iter()
        .flat_map(|r| r.hosts.iter().map(move |h| (h, &r.name)))
        .map(|(h, name)| rule_json(h, name))
        .collect();
    if !custom.is_empty() {
        if let Some(resolver) = app
            .ingress
            .cert_resolver
            .as_ref()
            .or(cluster.ingress.cert_resolver.as_ref())
            && !resolver.is_empty()
        {
            annotations.insert(
                "traefik.ingress.kubernetes.io/router.tls.certresolver".into(),
                resolver.clone(),
            );
        }
        out.push(Object::new(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": format!("{}-custom", n.workload),
                "namespace": n.namespace,
                "labels": n.component_labels(),
                "annotations": annotations,
            },
            "spec": {"ingressClassName": "traefik", "rules": custom},
        })));
    }
    out
}

/// Default-deny ingress except the app's own namespace, kube-system and the
/// ingress controller's namespace, plus the App's extra rules.
pub fn network_policy(n: &Names, ctx: AppContext<'_>) -> Object {
    let mut allowed: Vec<String> = Vec::new();
    for ns in [
        n.namespace.as_str(),
        "kube-system",
        n.ingress_namespace.as_str(),
    ] {
        if !allowed.iter().any(|a| a == ns) {
            allowed.push(ns.to_string());
        }
    }
    let mut ingress = vec![json!({
        "from": [{"namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name",
            "operator": "In",
            "values": allowed,
        }]}}],
    })];
    for rule in &ctx.app.network_policy.ingress_rules {
        let mut r = serde_json::Map::new();
        // Peers arrive as `{namespaceSelector: {...}}`; empty selectors are
        // skipped (reference §4.9).
        let from: Vec<Json> = rule
            .from
            .iter()
            .filter(|f| {
                f.get("namespaceSelector")
                    .and_then(Json::as_object)
                    .is_some_and(|o| !o.is_empty())
            })
            .cloned()
            .collect();
        if !from.is_empty() {
            r.insert("from".into(), Json::Array(from));
        }
        if !rule.ports.is_empty() {
            r.insert(
                "ports".into(),
                Json::Array(
                    rule.ports
                        .iter()
                        .map(|p| json!({"protocol": p.protocol, "port": p.port}))
                        .collect(),
                ),
            );
        }
        ingress.push(Json::Object(r));
    }
    Object::new(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": n.meta(&n.app, n.base_labels()),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": ingress},
    }))
}
