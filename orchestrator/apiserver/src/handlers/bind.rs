//! The pods/binding subresource: a scheduler assigns a pod to a node, once, and the pod's
//! `PodScheduled` condition turns True, as kube-apiserver's `BindingREST` does it.

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use slipway_model::validation::FieldError;

use super::{Ctx, json_response};
use crate::objects::{self, encode};
use crate::resources;
use crate::status::{ApiError, ApiResult};

impl Ctx {
    /// POST pods/{name}/binding: assigns an unscheduled pod to a node, once.
    pub(super) async fn bind(&self, body: Bytes) -> ApiResult<Response> {
        self.check_json_body()?;
        let binding: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        let node = binding["target"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    resources::find("", "v1", "pods").expect("pods are served"),
                    self.name(),
                    &[FieldError::required("target.name", "")],
                )
            })?
            .to_owned();
        let resource = self.resource();
        let name = self.name();
        let key = &self.key(name);
        let node = &node;
        self.until_landed(|| async move {
            let mut pod = self.get().await?;
            if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict(resource, name).with_message(format!(
                    "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{bound}\""
                )));
            }
            if !pod["metadata"]["deletionTimestamp"].is_null() {
                return Err(ApiError::conflict(resource, name).with_message(format!(
                    "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is being deleted, cannot be assigned to a host"
                )));
            }
            let revision = objects::resource_version(&pod)?.unwrap_or_default();
            pod["spec"]["nodeName"] = json!(node);
            mark_scheduled(&mut pod, &objects::timestamp(self.state.clock.now()));
            let written = self.landed(
                self.state
                    .store
                    .update(key, encode(&pod).into(), revision, None)
                    .await,
            )?;
            Ok(written.map(|_| {
                json_response(
                    StatusCode::CREATED,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                )
            }))
        })
        .await
    }
}

/// Sets the pod's `PodScheduled` condition True (`UpdatePodCondition`): its transition
/// time moves only when its status changes, and an earlier reason and message go.
fn mark_scheduled(pod: &mut Value, now: &str) {
    let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let status = &mut pod["status"];
    if !status.is_object() {
        *status = json!({});
    }
    let conditions = &mut status["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|c| c["type"] == "PodScheduled") {
        Some(existing) if existing["status"] == "True" => {}
        Some(existing) => *existing = scheduled,
        None => list.push(scheduled),
    }
}
