//! Services: `SetDefaults_Service` (`pkg/apis/core/v1/defaults.go`), the IP family fields the
//! registry fills in for single-stack clusters, and the core of `ValidateService` /
//! `ValidateServiceUpdate` (`pkg/apis/core/validation/validation.go`). Allocating the
//! cluster IP and node ports is the registry's job, not admission's.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    ClientIPConfig, Service, ServicePort, ServiceSpec, SessionAffinityConfig,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use slipway_model::validation::{
    FieldError, is_dns1123_label, is_dns1123_subdomain, validate_labels,
};

use crate::Admit;
use crate::checks::{PORT_RANGE, is_valid_port_name, is_valid_port_num};

const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const AFFINITIES: [&str; 2] = ["ClientIP", "None"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
/// `DefaultClientIPServiceAffinitySeconds`: three hours.
const CLIENT_IP_TIMEOUT_SECONDS: i32 = 10800;

impl Admit for Service {
    fn set_defaults(&mut self, old: Option<&Self>) {
        let spec = self.spec.get_or_insert_with(ServiceSpec::default);
        let kind = spec.type_.get_or_insert_with(|| "ClusterIP".into()).clone();
        let affinity = spec.session_affinity.get_or_insert_with(|| "None".into());
        if affinity == "ClientIP" {
            let config = spec
                .session_affinity_config
                .get_or_insert_with(SessionAffinityConfig::default);
            let client_ip = config.client_ip.get_or_insert_with(ClientIPConfig::default);
            client_ip
                .timeout_seconds
                .get_or_insert(CLIENT_IP_TIMEOUT_SECONDS);
        }
        for port in spec.ports.iter_mut().flatten() {
            port_defaults(port);
        }
        if kind == "NodePort" || kind == "LoadBalancer" {
            spec.external_traffic_policy
                .get_or_insert_with(|| "Cluster".into());
        }
        if kind == "LoadBalancer" {
            spec.allocate_load_balancer_node_ports.get_or_insert(true);
        }
        if kind != "ExternalName" {
            spec.internal_traffic_policy
                .get_or_insert_with(|| "Cluster".into());
            spec.ip_family_policy
                .get_or_insert_with(|| "SingleStack".into());
            spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
        }
        // An update that omits the allocated IP keeps it, as upstream's registry does
        // (`patchAllocatedValues`), so `kubectl replace` of a fetched-then-edited manifest
        // without `clusterIP` is not a change of IP.
        if let Some(old) = old.and_then(|o| o.spec.as_ref())
            && spec.cluster_ip.as_deref().is_none_or(str::is_empty)
        {
            spec.cluster_ip.clone_from(&old.cluster_ip);
            if spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) {
                spec.cluster_ips.clone_from(&old.cluster_ips);
            }
        }
    }

    fn validate(&self, _input: &Value, old: Option<&Self>) -> Vec<FieldError> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut errs = validate_spec(&spec);
        if let Some(old) = old.and_then(|o| o.spec.as_ref()) {
            let before = old.cluster_ip.as_deref().unwrap_or_default();
            let after = spec.cluster_ip.as_deref().unwrap_or_default();
            if !before.is_empty() && before != after {
                errs.push(FieldError::invalid(
                    "spec.clusterIP",
                    after,
                    "field is immutable",
                ));
            }
        }
        errs
    }
}

fn port_defaults(port: &mut ServicePort) {
    port.protocol.get_or_insert_with(|| "TCP".into());
    let unset = match &port.target_port {
        None => true,
        Some(IntOrString::Int(n)) => *n == 0,
        Some(IntOrString::String(s)) => s.is_empty(),
    };
    if unset {
        port.target_port = Some(IntOrString::Int(port.port));
    }
}

fn validate_spec(spec: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let kind = spec.type_.as_deref().unwrap_or_default();
    if !TYPES.contains(&kind) {
        errs.push(FieldError::not_supported("spec.type", kind, &TYPES));
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !headless && kind != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if kind == "ExternalName" {
        match spec.external_name.as_deref().unwrap_or_default() {
            "" => errs.push(FieldError::required("spec.externalName", "")),
            name => {
                for msg in is_dns1123_subdomain(name.trim_end_matches('.')) {
                    errs.push(FieldError::invalid("spec.externalName", name, msg));
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        validate_port(port, &at, ports.len() > 1, &mut names, &mut errs);
        if kind == "ClusterIP" && port.node_port.is_some_and(|p| p != 0) {
            errs.push(FieldError::forbidden(
                format!("{at}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
        // `ValidateService` rejects two ports with the same number and protocol; upstream
        // prints the port struct, we print `<port>/<protocol>`.
        let protocol = port.protocol.as_deref().unwrap_or_default();
        if !keys.insert((port.port, protocol)) {
            errs.push(FieldError::duplicate(
                at,
                format!("{}/{protocol}", port.port),
            ));
        }
    }
    let affinity = spec.session_affinity.as_deref().unwrap_or_default();
    if !AFFINITIES.contains(&affinity) {
        errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            affinity,
            &AFFINITIES,
        ));
    }
    if let Some(selector) = spec.selector.as_ref() {
        errs.extend(validate_labels(selector, "spec.selector"));
    }
    errs
}

/// `validateServicePort`: a name (required when there are several ports), a port in range,
/// a known protocol and a valid target port.
fn validate_port<'p>(
    port: &'p ServicePort,
    at: &str,
    require_name: bool,
    names: &mut BTreeSet<&'p str>,
    errs: &mut Vec<FieldError>,
) {
    let name = port.name.as_deref().unwrap_or_default();
    let name_at = format!("{at}.name");
    if name.is_empty() {
        if require_name {
            errs.push(FieldError::required(name_at, ""));
        }
    } else {
        let name_errs = is_dns1123_label(name);
        if name_errs.is_empty() && !names.insert(name) {
            errs.push(FieldError::duplicate(name_at.as_str(), name));
        }
        for msg in name_errs {
            errs.push(FieldError::invalid(name_at.as_str(), name, msg));
        }
    }
    if !is_valid_port_num(port.port) {
        errs.push(FieldError::invalid(
            format!("{at}.port"),
            i64::from(port.port),
            PORT_RANGE,
        ));
    }
    match port.protocol.as_deref().unwrap_or_default() {
        "" => errs.push(FieldError::required(format!("{at}.protocol"), "")),
        p if !PROTOCOLS.contains(&p) => errs.push(FieldError::not_supported(
            format!("{at}.protocol"),
            p,
            &PROTOCOLS,
        )),
        _ => {}
    }
    let target_at = format!("{at}.targetPort");
    match &port.target_port {
        Some(IntOrString::Int(n)) if !is_valid_port_num(*n) => {
            errs.push(FieldError::invalid(target_at, i64::from(*n), PORT_RANGE));
        }
        Some(IntOrString::String(s)) => {
            for msg in is_valid_port_name(s) {
                errs.push(FieldError::invalid(target_at.as_str(), s.as_str(), msg));
            }
        }
        _ => {}
    }
}
