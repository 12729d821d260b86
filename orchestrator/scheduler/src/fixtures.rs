//! Nodes and pods for the unit tests, written as the JSON a client would send, with a
//! ready node of 4 CPUs, 8 GiB and 110 pods unless the test says otherwise.

use serde_json::{Value, json};

use crate::filter::{NodeInfo, PodInfo};

pub(crate) fn node(value: Value) -> NodeInfo {
    let mut value = value;
    if value["status"]["conditions"].is_null() {
        value["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    }
    if value["status"]["allocatable"].is_null() {
        value["status"]["allocatable"] = json!({"cpu": "4", "memory": "8Gi", "pods": "110"});
    }
    NodeInfo::new(&serde_json::from_value(value).unwrap())
}

pub(crate) fn pod(spec: Value) -> PodInfo {
    let mut spec = spec;
    if spec["containers"].is_null() {
        spec["containers"] = json!([{"name": "c", "image": "c"}]);
    }
    PodInfo::new(&serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap())
}
