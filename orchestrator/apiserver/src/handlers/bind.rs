//! The pods/binding subresource: a scheduler assigns a pod to a node, once.

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
            let revision = objects::resource_version(&pod)?.unwrap_or_default();
            pod["spec"]["nodeName"] = json!(node);
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
