//! ConfigMap, Secret, ServiceAccount and ResourceQuota rows.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde_json::Value;

use crate::access::{at, created, list_at, map_len, name, or, str_at};
use crate::time::age_since;

pub(super) fn config_map(object: &Value, now: SystemTime) -> Vec<Value> {
    let entries = map_len(object, &["data"]).saturating_add(map_len(object, &["binaryData"]));
    vec![
        name(object).into(),
        entries.into(),
        age_since(created(object), now).into(),
    ]
}

pub(super) fn secret(object: &Value, now: SystemTime) -> Vec<Value> {
    // The API folds write-only stringData into data, so count both, once per key.
    let keys: BTreeSet<&String> = ["data", "stringData"]
        .iter()
        .filter_map(|field| at(object, &[field]).and_then(Value::as_object))
        .flat_map(serde_json::Map::keys)
        .collect();
    vec![
        name(object).into(),
        or(str_at(object, &["type"]), "Opaque").into(),
        keys.len().into(),
        age_since(created(object), now).into(),
    ]
}

pub(super) fn service_account(object: &Value, now: SystemTime) -> Vec<Value> {
    vec![
        name(object).into(),
        list_at(object, &["secrets"]).len().into(),
        age_since(created(object), now).into(),
    ]
}

/// `resource: used/hard` for each hard limit, sorted by resource name; `limits.*`
/// resources go to the LIMIT cell, all others to REQUEST.
pub(super) fn resource_quota(object: &Value, now: SystemTime) -> Vec<Value> {
    let hard = at(object, &["status", "hard"]).and_then(Value::as_object);
    let mut resources: Vec<_> = hard.into_iter().flatten().collect();
    resources.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for (resource, hard_quantity) in resources {
        let used =
            at(object, &["status", "used", resource]).map_or_else(|| "0".to_owned(), quantity);
        let text = format!("{resource}: {used}/{}", quantity(hard_quantity));
        if resource.starts_with("limits.") {
            limits.push(text);
        } else {
            requests.push(text);
        }
    }
    vec![
        name(object).into(),
        age_since(created(object), now).into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
    ]
}

/// A quantity as stored: a string such as `500m`, or a bare JSON number.
fn quantity(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => "0".to_owned(),
    }
}
