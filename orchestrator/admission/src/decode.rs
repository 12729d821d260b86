//! The typed round trip: JSON into the k8s-openapi struct and back. Whatever the input has
//! that the round trip lacks is an unknown field; a decode failure is traced to the field
//! that caused it, because serde_json's errors from a `Value` carry no position.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Rejection;

/// Decodes `object` into `K`, naming the offending field on failure.
pub(crate) fn decode<K: DeserializeOwned>(object: &Value) -> Result<K, Rejection> {
    match serde_json::from_value::<K>(object.clone()) {
        Ok(typed) => Ok(typed),
        Err(error) => {
            let error = error.to_string();
            let path = locate::<K>(object, &error);
            let message = if path.is_empty() {
                format!("cannot decode the object: {error}")
            } else {
                format!("cannot decode field \"{path}\": {error}")
            };
            Err(Rejection::Malformed { path, message })
        }
    }
}

pub(crate) fn to_value<K: Serialize>(typed: &K) -> Result<Value, Rejection> {
    serde_json::to_value(typed).map_err(|e| Rejection::Malformed {
        path: String::new(),
        message: format!("cannot encode the object: {e}"),
    })
}

/// One step of a path into a JSON document.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn node_mut<'v>(root: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    steps.iter().try_fold(root, |node, step| match step {
        Step::Key(key) => node.get_mut(key.as_str()),
        Step::Index(i) => node.get_mut(*i),
    })
}

/// Finds the deepest field whose removal makes the decode error go away (or change). At each
/// level the children are halved rather than tried one by one, so a large ConfigMap with one
/// bad value costs a few dozen decodes, not one per key. When no child is to blame, the node
/// itself is (a missing required field, or an array where an object belongs).
fn locate<K: DeserializeOwned>(root: &Value, error: &str) -> String {
    let same_error = |candidate: Value| {
        serde_json::from_value::<K>(candidate).is_err_and(|e| e.to_string() == error)
    };
    // Removes the given children of the node at `steps`; array positions are original indices.
    let without = |steps: &[Step], children: &[Step]| {
        let mut copy = root.clone();
        match node_mut(&mut copy, steps) {
            Some(Value::Object(map)) => {
                for child in children {
                    if let Step::Key(key) = child {
                        map.remove(key);
                    }
                }
            }
            Some(Value::Array(items)) => {
                let mut index = 0;
                items.retain(|_| {
                    let keep = !children
                        .iter()
                        .any(|c| matches!(c, Step::Index(i) if *i == index));
                    index += 1;
                    keep
                });
            }
            _ => {}
        }
        copy
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut node = root;
    loop {
        let mut candidates: Vec<Step> = match node {
            Value::Object(map) => map.keys().cloned().map(Step::Key).collect(),
            Value::Array(items) => (0..items.len()).map(Step::Index).collect(),
            _ => return render(&steps),
        };
        while candidates.len() > 1 {
            let rest = candidates.split_off(candidates.len() / 2);
            if same_error(without(&steps, &candidates)) {
                candidates = rest;
            }
        }
        let Some(child) = candidates.pop() else {
            return render(&steps);
        };
        if same_error(without(&steps, std::slice::from_ref(&child))) {
            return render(&steps);
        }
        node = match (&child, node) {
            (Step::Key(key), Value::Object(map)) => &map[key.as_str()],
            (Step::Index(i), Value::Array(items)) => &items[*i],
            _ => return render(&steps),
        };
        steps.push(child);
    }
}

/// Every path present in `input` but absent from `round_trip`, in document order. A null in
/// the input counts as absent, since Kubernetes' decoder treats it so; an unknown object is
/// reported once, not field by field.
pub(crate) fn unknown_fields(input: &Value, round_trip: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut steps = Vec::new();
    walk(input, round_trip, &mut steps, &mut found);
    found
}

fn walk(input: &Value, output: &Value, steps: &mut Vec<Step>, found: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(inside), Value::Object(outside)) => {
            for (key, value) in inside {
                if value.is_null() {
                    continue;
                }
                steps.push(Step::Key(key.clone()));
                match outside.get(key).filter(|v| !v.is_null()) {
                    Some(kept) => walk(value, kept, steps, found),
                    None => found.push(render(steps)),
                }
                steps.pop();
            }
        }
        (Value::Array(inside), Value::Array(outside)) => {
            for (i, (value, kept)) in inside.iter().zip(outside).enumerate() {
                steps.push(Step::Index(i));
                walk(value, kept, steps, found);
                steps.pop();
            }
        }
        _ => {}
    }
}
