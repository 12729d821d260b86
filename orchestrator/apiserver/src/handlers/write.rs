//! Update and patch: the read-modify-write loop every change to an existing object goes
//! through, for the object itself and its status, scale and finalize parts.

use axum::http::StatusCode;
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use slipway_model::validation::FieldError;
use slipway_store::Error as StoreError;

use super::apply::Ownership;
use super::{Ctx, Part, json_kind, json_response, with_type, with_warnings};
use crate::allocator;
use crate::objects::{
    self, carry_system_fields, decode, encode, finalizers, is_terminating, meta_str, metadata_mut,
};
use crate::quota;
use crate::resources::ResourceType;
use crate::status::{ApiError, ApiResult};

impl Ctx {
    /// PUT: replaces the object (or one part of it) if the client's resourceVersion is still
    /// current; without one, against whatever is current.
    pub(super) async fn update(&self, body: Bytes, part: Part) -> ApiResult<Response> {
        let incoming = match part {
            Part::Scale => {
                self.check_json_body()?;
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
                })?
            }
            _ => self.decode_body(&body)?,
        };
        if let Some(name) = meta_str(&incoming, "name")
            && name != self.name()
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        let precondition = objects::resource_version(&incoming)?;
        self.write(part, precondition, Ownership::Update, |_current| {
            Ok(incoming.clone())
        })
        .await
    }

    /// PATCH: applies the patch to the current object and writes the result, retrying when
    /// another writer got there first.
    pub(super) async fn patch(&self, body: Bytes, part: Part) -> ApiResult<Response> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if content_type == "application/apply-patch+yaml" {
            return self.apply(&body, part).await;
        }
        let patch: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
        let resource = self.resource();
        let (api_version, kind) = match part {
            Part::Scale => ("autoscaling/v1".to_owned(), "Scale"),
            _ => (resource.api_version(), resource.kind),
        };
        let apply = move |current: &Value| -> ApiResult<Value> {
            let patched = match content_type.as_str() {
                "application/merge-patch+json" => slipway_patch::merge_patch(current, &patch)
                    .map_err(|e| patch_error(e.http_status(), e.to_string()))?,
                "application/json-patch+json" => slipway_patch::json_patch(current, &patch)
                    .map_err(|e| patch_error(e.http_status(), e.to_string()))?,
                "application/strategic-merge-patch+json" => {
                    slipway_patch::strategic_merge_for(&api_version, kind, current, &patch)
                        .map_err(|e| patch_error(e.http_status(), e.to_string()))?
                }
                other => {
                    return Err(ApiError::unsupported_media_type(format!(
                        "the body of the request was in an unsupported media type: {other:?}"
                    )));
                }
            };
            Ok(patched)
        };
        // A patch that sets resourceVersion is a precondition, checked against each attempt.
        self.write(part, None, Ownership::Update, |current| {
            let patched = apply(current)?;
            if let (Some(wanted), Some(now)) = (
                objects::resource_version(&patched)?,
                objects::resource_version(current)?,
            ) && wanted != now
            {
                return Err(ApiError::conflict(self.resource(), self.name()));
            }
            Ok(patched)
        })
        .await
    }

    /// The read-modify-write loop shared by update, patch and apply. `change` computes the
    /// new view (object, status, Scale) from the current one. A change that changes nothing
    /// writes nothing and keeps the resourceVersion, as in Kubernetes.
    pub(super) async fn write(
        &self,
        part: Part,
        precondition: Option<i64>,
        ownership: Ownership,
        change: impl Fn(&Value) -> ApiResult<Value>,
    ) -> ApiResult<Response> {
        let resource = self.resource();
        let name = self.name();
        let key = &self.key(name);
        let change = &change;
        self.until_landed(|| async move {
            // Its lease (an Event's time to live) carries over to what replaces it.
            let stored = self.get_kv().await?;
            let current = decode(&stored)?;
            let revision = objects::resource_version(&current)?.unwrap_or_default();
            if let Some(wanted) = precondition
                && wanted != revision
            {
                return Err(ApiError::conflict(resource, name));
            }
            let view = match part {
                Part::Scale => scale_view(&current),
                _ => current.clone(),
            };
            let mut changed = change(&view)?;
            if !changed.is_object() {
                return Err(ApiError::unprocessable(format!(
                    "the result must be a JSON object, not {}",
                    json_kind(&changed)
                )));
            }
            if part != Part::Scale {
                self.place_in_namespace(&mut changed)?;
            }
            let mut updated = merge_part(resource, part, &current, changed)?;
            if part == Part::Main {
                allocator::drop_type_dependent_fields(&current, &mut updated);
            }
            let meta = metadata_mut(&mut updated);
            meta.insert("name".into(), json!(name));
            meta.remove("resourceVersion");
            // Defaults first, so a spec that differs only by defaults is no change and
            // does not bump the generation.
            let (mut updated, warnings) = self.admit(updated, Some(&current), name)?;
            carry_system_fields(&current, &mut updated);
            if ownership == Ownership::Update {
                self.own_update(Some(&current), &mut updated, part)?;
            }
            objects::drop_empty_metadata(&mut updated);
            self.validate(&updated, name)?;
            if is_terminating(&current) && finalizers(&updated).len() > finalizers(&current).len() {
                return Err(ApiError::unprocessable(format!(
                    "{} \"{name}\" is being deleted: no new finalizers may be added",
                    resource.qualified_name()
                )));
            }
            // A pod in its grace period waits for its node to finish it (a delete with
            // grace 0); any other terminating object goes with its last finalizer.
            let graceful = updated["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .is_some_and(|g| g > 0);
            let done = is_terminating(&updated)
                && !graceful
                && finalizers(&updated).is_empty()
                && namespace_finalized(&updated);
            let mut unchanged = current.clone();
            metadata_mut(&mut unchanged).remove("resourceVersion");
            if !done && unchanged == updated {
                return Ok(Some(with_warnings(
                    self.respond_written(part, current),
                    &warnings,
                )));
            }
            if self.dry_run()? {
                // Nothing was written: the answer carries the version it was computed from.
                let mut updated = updated;
                objects::set_resource_version(&mut updated, revision);
                return Ok(Some(with_warnings(
                    self.respond_written(part, updated),
                    &warnings,
                )));
            }
            let store = self.state.store.as_ref();
            let (taken, dropped) = if resource.kind == "Service" && part == Part::Main && !done {
                allocator::reallocate(store, resource, &current, &mut updated).await?
            } else {
                Default::default()
            };
            let namespace = self
                .namespace()
                .filter(|ns| resource.namespaced() && self.state.quotas.maybe_in(ns));
            let (mut charge, freed) = match namespace {
                Some(ns) if !done => {
                    match quota::charge_update(store, resource, ns, name, &current, &updated).await
                    {
                        Ok(charged) => charged,
                        Err(e) => {
                            taken.release(store).await;
                            return Err(e);
                        }
                    }
                }
                _ => Default::default(),
            };
            let result = if done {
                self.state.store.delete(key, Some(revision)).await.map(|d| {
                    let mut last = updated.clone();
                    objects::set_resource_version(&mut last, d.revision);
                    last
                })
            } else {
                self.state
                    .store
                    .update(key, encode(&updated).into(), revision, stored.lease)
                    .await
                    .map(|kv| {
                        let mut object = updated.clone();
                        objects::set_resource_version(&mut object, kv.mod_revision);
                        object
                    })
            };
            if result.is_err() {
                charge.refund(store).await;
                taken.release(store).await;
            } else {
                dropped.release(store).await;
            }
            let written = match result {
                // Someone else wrote first: recompute from their version unless the client
                // pinned the version it expected.
                Err(StoreError::Conflict { .. }) if precondition.is_some() => {
                    return Err(ApiError::conflict(resource, name));
                }
                result => self.landed(result)?,
            };
            let Some(object) = written else {
                return Ok(None);
            };
            if let Some(ns) = namespace {
                quota::release_usage(store, ns, &freed).await;
            }
            if done {
                self.release_allocations(&updated).await;
            }
            Ok(Some(with_warnings(
                self.respond_written(part, object),
                &warnings,
            )))
        })
        .await
    }

    pub(super) fn respond_written(&self, part: Part, object: Value) -> Response {
        let resource = self.resource();
        match part {
            Part::Scale => json_response(StatusCode::OK, &scale_view(&object)),
            _ => json_response(StatusCode::OK, &with_type(resource, object)),
        }
    }
}

pub(super) fn patch_error(status: u16, message: String) -> ApiError {
    match status {
        400 => ApiError::bad_request(message),
        415 => ApiError::unsupported_media_type(message),
        _ => ApiError::unprocessable(message),
    }
}

/// Whether a namespace has no `spec.finalizers` left (other kinds have none).
fn namespace_finalized(object: &Value) -> bool {
    object["kind"] != "Namespace"
        || object["spec"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

/// Builds the object to store from the current one and the client's view of one part.
fn merge_part(
    resource: &ResourceType,
    part: Part,
    current: &Value,
    changed: Value,
) -> ApiResult<Value> {
    let mut updated = match part {
        Part::Main => {
            let mut updated = changed;
            if resource.has_status_subresource() {
                match current.get("status") {
                    Some(status) => updated["status"] = status.clone(),
                    None => {
                        if let Some(map) = updated.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            updated
        }
        Part::Status => {
            let mut updated = current.clone();
            match changed.get("status") {
                Some(status) => updated["status"] = status.clone(),
                None => {
                    if let Some(map) = updated.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            updated
        }
        Part::Scale => {
            let requested = &changed["spec"]["replicas"];
            let replicas = requested.as_i64().filter(|r| *r >= 0).ok_or_else(|| {
                ApiError::invalid(
                    resource,
                    meta_str(current, "name").unwrap_or_default(),
                    &[FieldError::invalid(
                        "spec.replicas",
                        requested.to_string(),
                        "must be greater than or equal to 0",
                    )],
                )
            })?;
            let mut updated = current.clone();
            updated["spec"]["replicas"] = json!(replicas);
            updated
        }
        Part::Finalize => {
            let mut updated = current.clone();
            updated["spec"]["finalizers"] = changed["spec"]["finalizers"].clone();
            updated
        }
    };
    // Metadata always comes from the client's object for main writes, from the current one
    // otherwise; the caller re-applies the fields the server owns.
    if part != Part::Main {
        updated["metadata"] = current["metadata"].clone();
    }
    Ok(updated)
}

/// The autoscaling/v1 Scale view of a Deployment or ReplicaSet.
pub(super) fn scale_view(object: &Value) -> Value {
    let selector = object["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": object["spec"]["replicas"].as_i64().unwrap_or(1) },
        "status": {
            "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_of_a_deployment() {
        let deploy = json!({"metadata": {"name": "web", "namespace": "a", "resourceVersion": "7"},
                            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
                            "status": {"replicas": 2}});
        let scale = scale_view(&deploy);
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"]["selector"], "app=web");
        assert_eq!(scale["metadata"]["resourceVersion"], "7");
    }
}
