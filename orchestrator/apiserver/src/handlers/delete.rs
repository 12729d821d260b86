//! Delete and deletecollection: finalizers and graceful pod deletion mark the object,
//! everything else removes it.

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Ctx, Query, json_response, with_type};
use crate::objects::{self, encode, finalizers, is_terminating, meta_str, metadata_mut};
use crate::path::Target;
use crate::resources::ResourceType;
use crate::status::{ApiError, ApiResult};

impl Ctx {
    pub(super) async fn delete(&self, body: Bytes) -> ApiResult<Response> {
        let resource = self.resource();
        let name = self.name();
        let options = &DeleteOptions::read(&self.query, &body)?;
        let key = &self.key(name);
        self.until_landed(|| async move {
            let current = self.get().await?;
            options.check_preconditions(resource, name, &current)?;
            let revision = objects::resource_version(&current)?.unwrap_or_default();
            let graceful = options.graceful(resource, &current);
            if graceful || !finalizers(&current).is_empty() || resource.kind == "Namespace" {
                // Deletion waits on finalizers (or a node's confirmation): mark it.
                if is_terminating(&current) {
                    return Ok(Some(json_response(
                        StatusCode::OK,
                        &with_type(resource, current),
                    )));
                }
                let mut marked = current.clone();
                let now = objects::timestamp(self.state.clock.now());
                let meta = metadata_mut(&mut marked);
                meta.insert("deletionTimestamp".into(), json!(now));
                meta.insert(
                    "deletionGracePeriodSeconds".into(),
                    json!(options.grace_seconds(&current)),
                );
                meta.remove("resourceVersion");
                if resource.kind == "Namespace" {
                    marked["status"]["phase"] = json!("Terminating");
                }
                if options.dry_run {
                    return Ok(Some(json_response(
                        StatusCode::OK,
                        &with_type(resource, marked),
                    )));
                }
                let written = self.landed(
                    self.state
                        .store
                        .update(key, encode(&marked).into(), revision, None)
                        .await,
                )?;
                return Ok(written.map(|kv| {
                    objects::set_resource_version(&mut marked, kv.mod_revision);
                    json_response(StatusCode::OK, &with_type(resource, marked))
                }));
            }
            if options.dry_run {
                return Ok(Some(deleted_response(resource, name, current)));
            }
            let Some(deleted) = self.landed(self.state.store.delete(key, Some(revision)).await)?
            else {
                return Ok(None);
            };
            self.release_allocations(&current).await;
            let mut last = current;
            objects::set_resource_version(&mut last, deleted.revision);
            Ok(Some(deleted_response(resource, name, last)))
        })
        .await
    }

    /// DELETE on a collection: deletes every selected object, one by one.
    pub(super) async fn delete_collection(&self) -> ApiResult<Response> {
        let resource = self.resource();
        if !resource.allows("deletecollection") {
            return Err(ApiError::method_not_allowed(format!(
                "deletecollection is not supported on {}",
                resource.qualified_name()
            )));
        }
        let list = self.list().await?;
        let mut deleted = Vec::new();
        for item in list["items"].as_array().into_iter().flatten() {
            let Some(name) = meta_str(item, "name") else {
                continue;
            };
            let namespace = meta_str(item, "namespace").map(str::to_owned);
            let one = Ctx {
                state: self.state.clone(),
                target: Target {
                    resource,
                    namespace,
                    name: Some(name.to_owned()),
                    subresource: None,
                },
                query: self.query.clone(),
                headers: self.headers.clone(),
            };
            match one.delete(Bytes::new()).await {
                Ok(_) => deleted.push(item.clone()),
                Err(e) if e.code() == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "kind": format!("{}List", resource.kind),
                "apiVersion": resource.api_version(),
                "metadata": {},
                "items": deleted,
            }),
        ))
    }
}

/// Options of a delete, from its body or query.
struct DeleteOptions {
    grace_period: Option<i64>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

impl DeleteOptions {
    fn read(query: &Query, body: &[u8]) -> ApiResult<DeleteOptions> {
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        let grace_period = match (
            body["gracePeriodSeconds"].as_i64(),
            query.get("gracePeriodSeconds"),
        ) {
            (Some(g), _) => Some(g),
            (None, Some(g)) => Some(g.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid gracePeriodSeconds: {g:?}"))
            })?),
            (None, None) => None,
        };
        let policy = body["propagationPolicy"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| query.get("propagationPolicy").cloned());
        if let Some(policy) = &policy
            && !["Background", "Foreground", "Orphan"].contains(&policy.as_str())
        {
            return Err(ApiError::unprocessable(format!(
                "DeleteOptions.propagationPolicy: Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        let dry_run = match (body["dryRun"].as_array(), query.get("dryRun")) {
            (Some(list), _) => list.iter().any(|v| v == "All"),
            (None, Some(v)) => v == "All",
            (None, None) => false,
        };
        Ok(DeleteOptions {
            grace_period,
            uid: body["preconditions"]["uid"].as_str().map(str::to_owned),
            resource_version: body["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_owned),
            dry_run,
        })
    }

    fn check_preconditions(
        &self,
        resource: &ResourceType,
        name: &str,
        current: &Value,
    ) -> ApiResult<()> {
        if let Some(uid) = &self.uid
            && meta_str(current, "uid") != Some(uid.as_str())
        {
            return Err(ApiError::conflict(resource, name).with_message(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(current, "uid").unwrap_or_default()
            )));
        }
        if let Some(rv) = &self.resource_version
            && meta_str(current, "resourceVersion") != Some(rv.as_str())
        {
            return Err(ApiError::conflict(resource, name).with_message(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(current, "resourceVersion").unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Pods on a node stop gracefully: the agent confirms with a zero-grace delete.
    fn graceful(&self, resource: &ResourceType, current: &Value) -> bool {
        resource.kind == "Pod"
            && current["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            && self.grace_seconds(current) > 0
    }

    fn grace_seconds(&self, current: &Value) -> i64 {
        self.grace_period
            .or_else(|| current["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(if current["kind"] == "Pod" { 30 } else { 0 })
            .max(0)
    }
}

/// Kinds whose completed delete answers with the deleted object, as upstream's stores with
/// `ReturnDeletedObject` do; the others answer with a `Status`.
const RETURN_DELETED_OBJECT: &[&str] = &["Pod", "Service", "ResourceQuota", "ServiceAccount"];

/// What a completed delete answers.
fn deleted_response(resource: &ResourceType, name: &str, last: Value) -> Response {
    if RETURN_DELETED_OBJECT.contains(&resource.kind) {
        return json_response(StatusCode::OK, &with_type(resource, last));
    }
    let mut details = json!({ "name": name, "kind": resource.plural });
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    if let Some(uid) = meta_str(&last, "uid") {
        details["uid"] = json!(uid);
    }
    json_response(
        StatusCode::OK,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
    )
}
