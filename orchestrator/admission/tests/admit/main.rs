//! Tests of `admit` through its public API, one module per concern; one binary keeps the link
//! time of the k8s-openapi types down.

mod defaults;
mod props;
mod unknown;
mod validation;

use serde_json::{Value, json};
use slipway_admission::{Admitted, FieldValidation, Rejection, admit};

/// A minimal valid pod.
fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    })
}

/// A minimal valid deployment whose selector matches its template.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
            }
        }
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    })
}

fn admit_ok(api_version: &str, kind: &str, object: Value) -> Admitted {
    match admit(api_version, kind, object, None, FieldValidation::Strict) {
        Ok(admitted) => admitted,
        Err(rejection) => panic!("{kind} rejected: {rejection}"),
    }
}

/// The `path: message` lines of a 422, or the rejection's text otherwise.
fn errors(api_version: &str, kind: &str, object: Value, old: Option<&Value>) -> Vec<String> {
    match admit(api_version, kind, object, old, FieldValidation::Strict) {
        Ok(_) => Vec::new(),
        Err(Rejection::Invalid(errs)) => errs.iter().map(ToString::to_string).collect(),
        Err(other) => vec![other.to_string()],
    }
}

/// Sets the value at a JSON pointer, creating objects on the way; an index one past the end
/// of an array appends.
fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut node = object;
    for part in pointer.trim_start_matches('/').split('/') {
        node = match (part.parse::<usize>(), node) {
            (Ok(i), Value::Array(items)) => {
                if i == items.len() {
                    items.push(Value::Null);
                }
                &mut items[i]
            }
            (_, node) => &mut node[part],
        };
    }
    *node = value;
}
