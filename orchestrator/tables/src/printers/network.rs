//! Service, Endpoints and Ingress rows: addresses, ports and hosts.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde_json::Value;

use crate::access::{created, int_at, list_at, name, opt_str_at, or, str_at, string_map_at};
use crate::selector::format_labels;
use crate::time::age_since;

/// How many addresses or hosts a cell lists before summarising the rest.
const LIST_LIMIT: usize = 3;

pub(super) fn service(object: &Value, now: SystemTime) -> Vec<Value> {
    let service_type = or(str_at(object, &["spec", "type"]), "ClusterIP");
    let ports: Vec<_> = list_at(object, &["spec", "ports"])
        .iter()
        .map(port_text)
        .collect();
    vec![
        name(object).into(),
        service_type.into(),
        cluster_ip(object).into(),
        external_ip(object, service_type).into(),
        or(&ports.join(","), "<none>").into(),
        age_since(created(object), now).into(),
        format_labels(&string_map_at(object, &["spec", "selector"])).into(),
    ]
}

pub(super) fn endpoints(object: &Value, now: SystemTime) -> Vec<Value> {
    vec![
        name(object).into(),
        endpoints_text(list_at(object, &["subsets"])).into(),
        age_since(created(object), now).into(),
    ]
}

pub(super) fn ingress(object: &Value, now: SystemTime) -> Vec<Value> {
    let class = opt_str_at(object, &["spec", "ingressClassName"]).unwrap_or("<none>");
    let ports = if list_at(object, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(object).into(),
        class.into(),
        hosts_text(list_at(object, &["spec", "rules"])).into(),
        load_balancer_addresses(object).join(",").into(),
        ports.into(),
        age_since(created(object), now).into(),
    ]
}

/// `clusterIP` wins over `clusterIPs`, as in the v1 to internal conversion.
fn cluster_ip(object: &Value) -> &str {
    let single = str_at(object, &["spec", "clusterIP"]);
    let first = list_at(object, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str);
    or(or(single, first.unwrap_or("")), "<none>")
}

fn external_ip(object: &Value, service_type: &str) -> String {
    let external: Vec<_> = list_at(object, &["spec", "externalIPs"])
        .iter()
        .map(|ip| ip.as_str().unwrap_or(""))
        .collect();
    match service_type {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut addresses = load_balancer_addresses(object);
            if !external.is_empty() {
                addresses.extend(external);
                addresses.join(",")
            } else if addresses.is_empty() {
                "<pending>".to_owned()
            } else {
                addresses.join(",")
            }
        }
        "ExternalName" => str_at(object, &["spec", "externalName"]).to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// The distinct load-balancer ingress points (IP, else hostname), sorted.
fn load_balancer_addresses(object: &Value) -> Vec<&str> {
    let unique: BTreeSet<&str> = list_at(object, &["status", "loadBalancer", "ingress"])
        .iter()
        .map(|point| or(str_at(point, &["ip"]), str_at(point, &["hostname"])))
        .filter(|address| !address.is_empty())
        .collect();
    unique.into_iter().collect()
}

/// `80/TCP`, or `80:30080/TCP` when a node port is allocated.
fn port_text(port: &Value) -> String {
    let protocol = or(str_at(port, &["protocol"]), "TCP");
    let number = int_at(port, &["port"]);
    match int_at(port, &["nodePort"]) {
        node_port if node_port > 0 => format!("{number}:{node_port}/{protocol}"),
        _ => format!("{number}/{protocol}"),
    }
}

/// Up to three `ip:port` endpoints, then `+ N more...`; `<none>` without subsets.
fn endpoints_text(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut shown = Vec::new();
    let mut total: usize = 0;
    let mut more = false;
    for subset in subsets {
        let addresses = list_at(subset, &["addresses"]);
        let ports = list_at(subset, &["ports"]);
        // A headless service may publish addresses without ports.
        let port_numbers: Vec<Option<i64>> = if ports.is_empty() {
            vec![None]
        } else {
            ports.iter().map(|p| Some(int_at(p, &["port"]))).collect()
        };
        for port in port_numbers {
            total = total.saturating_add(addresses.len());
            for address in addresses {
                if shown.len() == LIST_LIMIT {
                    more = true;
                    break;
                }
                let ip = str_at(address, &["ip"]);
                shown.push(match port {
                    None => ip.to_owned(),
                    Some(port) if ip.contains(':') => format!("[{ip}]:{port}"),
                    Some(port) => format!("{ip}:{port}"),
                });
            }
        }
    }
    let text = shown.join(",");
    if more {
        format!("{text} + {} more...", total - LIST_LIMIT)
    } else {
        text
    }
}

/// Up to three rule hosts, `*` when no rule names one; the `+ N more...` count is of
/// rules, hosts or not, as upstream counts it.
fn hosts_text(rules: &[Value]) -> String {
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == LIST_LIMIT {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_owned();
    }
    let text = hosts.join(",");
    if more {
        format!("{text} + {} more...", rules.len() - LIST_LIMIT)
    } else {
        text
    }
}
