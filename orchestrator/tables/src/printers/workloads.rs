//! Deployment and ReplicaSet rows: replica counts, the pod template's containers and the
//! selector.

use std::time::SystemTime;

use serde_json::Value;

use super::containers_and_images;
use crate::access::{at, created, int_at, list_at, name, opt_int_at};
use crate::selector::label_selector;
use crate::time::age_since;

/// apps/v1 defaults `spec.replicas` to one.
const DEFAULT_REPLICAS: i64 = 1;

pub(super) fn deployment(object: &Value, now: SystemTime) -> Vec<Value> {
    let desired = opt_int_at(object, &["spec", "replicas"]).unwrap_or(DEFAULT_REPLICAS);
    let ready = int_at(object, &["status", "readyReplicas"]);
    let (containers, images) =
        containers_and_images(list_at(object, &["spec", "template", "spec", "containers"]));
    // Deployments print a bad selector as `<invalid>` and an empty one as nothing.
    let selector = label_selector(at(object, &["spec", "selector"]))
        .unwrap_or_else(|_| "<invalid>".to_owned());
    vec![
        name(object).into(),
        format!("{ready}/{desired}").into(),
        int_at(object, &["status", "updatedReplicas"]).into(),
        int_at(object, &["status", "availableReplicas"]).into(),
        age_since(created(object), now).into(),
        containers.into(),
        images.into(),
        selector.into(),
    ]
}

pub(super) fn replica_set(object: &Value, now: SystemTime) -> Vec<Value> {
    let (containers, images) =
        containers_and_images(list_at(object, &["spec", "template", "spec", "containers"]));
    // ReplicaSets go through `metav1.FormatLabelSelector`: `<error>` and `<none>`.
    let selector = match label_selector(at(object, &["spec", "selector"])) {
        Ok(text) if text.is_empty() => "<none>".to_owned(),
        Ok(text) => text,
        Err(_) => "<error>".to_owned(),
    };
    vec![
        name(object).into(),
        opt_int_at(object, &["spec", "replicas"])
            .unwrap_or(DEFAULT_REPLICAS)
            .into(),
        int_at(object, &["status", "replicas"]).into(),
        int_at(object, &["status", "readyReplicas"]).into(),
        age_since(created(object), now).into(),
        containers.into(),
        images.into(),
        selector.into(),
    ]
}
