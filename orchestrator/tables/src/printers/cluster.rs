//! Namespace, Node, Event and Lease rows.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde_json::Value;

use crate::access::{
    bool_at, created, list_at, name, object_at, opt_int_at, opt_str_at, or, str_at, string_map_at,
};
use crate::time::{ZERO_TIME, age_since, elapsed_text, parse_rfc3339};

const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const LEGACY_NODE_ROLE_LABEL: &str = "kubernetes.io/role";

pub(super) fn namespace(object: &Value, now: SystemTime) -> Vec<Value> {
    vec![
        name(object).into(),
        or(str_at(object, &["status", "phase"]), "Active").into(),
        age_since(created(object), now).into(),
    ]
}

pub(super) fn node(object: &Value, now: SystemTime) -> Vec<Value> {
    let info =
        |field: &str| or(str_at(object, &["status", "nodeInfo", field]), "<unknown>").to_owned();
    vec![
        name(object).into(),
        node_status(object).into(),
        node_roles(object).into(),
        age_since(created(object), now).into(),
        str_at(object, &["status", "nodeInfo", "kubeletVersion"]).into(),
        node_address(object, "InternalIP").into(),
        node_address(object, "ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

pub(super) fn event(object: &Value, now: SystemTime) -> Vec<Value> {
    let since = |path: &[&str]| {
        opt_str_at(object, path)
            .and_then(parse_rfc3339)
            .filter(|instant| *instant != ZERO_TIME)
            .map(|instant| elapsed_text(instant, now))
    };
    // core/v1 events written through events.k8s.io carry eventTime and series instead.
    let first_seen = since(&["firstTimestamp"])
        .unwrap_or_else(|| since(&["eventTime"]).unwrap_or_else(|| "<unknown>".to_owned()));
    let mut last_seen = since(&["lastTimestamp"]).unwrap_or_else(|| first_seen.clone());
    let mut count = opt_int_at(object, &["count"]).unwrap_or(0);
    if object_at(object, &["series"]).is_some() {
        last_seen =
            since(&["series", "lastObservedTime"]).unwrap_or_else(|| "<unknown>".to_owned());
        count = opt_int_at(object, &["series", "count"]).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }

    let kind = str_at(object, &["involvedObject", "kind"]).to_lowercase();
    let target = match str_at(object, &["involvedObject", "name"]) {
        "" => kind,
        involved => format!("{kind}/{involved}"),
    };
    let component = or(
        str_at(object, &["source", "component"]),
        str_at(object, &["reportingComponent"]),
    );
    let instance = or(
        str_at(object, &["source", "host"]),
        str_at(object, &["reportingInstance"]),
    );
    let source = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };

    vec![
        last_seen.into(),
        str_at(object, &["type"]).into(),
        str_at(object, &["reason"]).into(),
        target.into(),
        str_at(object, &["involvedObject", "fieldPath"]).into(),
        source.into(),
        str_at(object, &["message"]).trim().into(),
        first_seen.into(),
        count.into(),
        name(object).into(),
    ]
}

pub(super) fn lease(object: &Value, now: SystemTime) -> Vec<Value> {
    vec![
        name(object).into(),
        str_at(object, &["spec", "holderIdentity"]).into(),
        age_since(created(object), now).into(),
    ]
}

/// `Ready` or `NotReady` from the last Ready condition (`Unknown` without one), plus
/// `SchedulingDisabled` for a cordoned node.
fn node_status(object: &Value) -> String {
    let ready = list_at(object, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }
    .to_owned();
    if bool_at(object, &["spec", "unschedulable"]) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// Roles from `node-role.kubernetes.io/<role>` label keys and the legacy
/// `kubernetes.io/role=<role>` label, sorted and de-duplicated.
fn node_roles(object: &Value) -> String {
    let roles: BTreeSet<&str> = string_map_at(object, &["metadata", "labels"])
        .into_iter()
        .filter_map(|(key, value)| match key.strip_prefix(NODE_ROLE_PREFIX) {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None => (key == LEGACY_NODE_ROLE_LABEL && !value.is_empty()).then_some(value),
        })
        .collect();
    let roles: Vec<_> = roles.into_iter().collect();
    or(&roles.join(","), "<none>").to_owned()
}

fn node_address<'a>(object: &'a Value, address_type: &str) -> &'a str {
    list_at(object, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == address_type)
        .map_or("<none>", |a| str_at(a, &["address"]))
}
