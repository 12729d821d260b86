//! The resource verbs: get, list, create, update, patch, delete and deletecollection, plus
//! the status, scale, finalize, binding and log subresources, and the upgraded exec, attach
//! and portforward ones ([`connect`]). Every write goes through the
//! Store with a compare-and-swap on the revision the change was computed from.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use slipway_admission::{FieldValidation, Rejection};
use slipway_model::validation::validate_object_meta;
use slipway_store::{Error as StoreError, KeyValue};
use slipway_tables::IncludeObject;

use crate::ApiState;
use crate::allocator;
use crate::filter::Filter;
use crate::objects::{self, decode};
use crate::path::Target;
use crate::quota;
use crate::resources::ResourceType;
use crate::status::{ApiError, ApiResult, from_store};
use crate::watch;

mod apply;
mod bind;
mod connect;
mod create;
mod delete;
mod log;
mod read;
mod write;

pub(crate) use connect::{connect, is_connect};
pub(crate) use log::{agent_address, encode_query};
use write::scale_view;

/// Bodies larger than this are refused with 413, as Kubernetes does at 3 MiB.
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How many times a computed write is retried after losing a race with another writer.
const MAX_RETRIES: usize = 16;

/// The query parameters of a request.
pub(crate) type Query = HashMap<String, String>;

/// A request to a resource path, all but its body.
pub(crate) struct Incoming {
    pub(crate) method: Method,
    pub(crate) target: Target,
    pub(crate) query: Query,
    pub(crate) headers: HeaderMap,
    /// Who sent it, when the request was authenticated.
    pub(crate) user: Option<slipway_access::User>,
}

/// Serves one request to a resource path.
pub(crate) async fn serve(
    state: Arc<ApiState>,
    request: Incoming,
    body: Bytes,
) -> ApiResult<Response> {
    let Incoming {
        method,
        target,
        query,
        headers,
        user,
    } = request;
    let ctx = Ctx {
        state,
        target,
        query,
        headers,
        user,
    };
    let sub = ctx.target.subresource.clone();
    let named = ctx.target.name.is_some();
    match (sub.as_deref(), named, &method) {
        (None, false, &Method::GET) if ctx.flag("watch") => watch::serve(&ctx).await,
        (None, false, &Method::GET)
            if ctx.table_format()?.is_none() && ctx.filter()?.is_everything() =>
        {
            Ok(json_bytes_response(
                StatusCode::OK,
                ctx.list_served().await?,
            ))
        }
        (None, false, &Method::GET) => {
            let list = ctx.list().await?;
            ctx.respond_read(list, true)
        }
        (None, false, &Method::POST) => ctx.create(body).await,
        (None, false, &Method::DELETE) => ctx.delete_collection().await,
        (None, true, &Method::GET) if ctx.table_format()?.is_none() => ctx.get_served().await,
        (None, true, &Method::GET) => {
            let object = ctx.get().await?;
            ctx.respond_read(object, false)
        }
        (None, true, &Method::PUT) => ctx.update(body, Part::Main).await,
        (None, true, &Method::PATCH) => ctx.patch(body, Part::Main).await,
        (None, true, &Method::DELETE) => ctx.delete(body).await,
        (Some("status"), true, &Method::GET) => {
            ctx.get().await.map(|o| json_response(StatusCode::OK, &o))
        }
        (Some("status"), true, &Method::PUT) => ctx.update(body, Part::Status).await,
        (Some("status"), true, &Method::PATCH) => ctx.patch(body, Part::Status).await,
        (Some("scale"), true, &Method::GET) => {
            let object = ctx.get().await?;
            Ok(json_response(StatusCode::OK, &scale_view(&object)))
        }
        (Some("scale"), true, &Method::PUT) => ctx.update(body, Part::Scale).await,
        (Some("scale"), true, &Method::PATCH) => ctx.patch(body, Part::Scale).await,
        (Some("finalize"), true, &Method::PUT) => ctx.update(body, Part::Finalize).await,
        (Some("binding"), true, &Method::POST) => ctx.bind(body).await,
        (Some("log"), true, &Method::GET) => ctx.log().await,
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {method}"
        ))),
    }
}

/// Which part of an object a write changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The object through its main endpoint: status is kept when a status subresource exists.
    Main,
    /// Only `.status`.
    Status,
    /// Only `spec.replicas`, through an autoscaling/v1 Scale.
    Scale,
    /// Only a namespace's `spec.finalizers`.
    Finalize,
}

/// A boolean query value as Kubernetes reads it: everything but `false` and `0`, in any
/// case, is true.
pub(crate) fn is_true(value: &str) -> bool {
    !value.eq_ignore_ascii_case("false") && value != "0"
}

/// Containers that ask to run privileged, in a pod or a pod template, as kube-apiserver
/// refuses them without `--allow-privileged`.
fn privileged_containers(object: &Value) -> Vec<slipway_model::validation::FieldError> {
    let (spec, prefix) = if object["kind"] == "Pod" {
        (&object["spec"], "spec")
    } else {
        (&object["spec"]["template"]["spec"], "spec.template.spec")
    };
    let mut refused = Vec::new();
    for field in ["initContainers", "containers"] {
        for (i, container) in spec[field].as_array().into_iter().flatten().enumerate() {
            if container["securityContext"]["privileged"] == json!(true) {
                refused.push(slipway_model::validation::FieldError::forbidden(
                    format!("{prefix}.{field}[{i}].securityContext.privileged"),
                    "disallowed by cluster policy",
                ));
            }
        }
    }
    refused
}

/// One request, with what every verb needs.
pub(crate) struct Ctx {
    pub(crate) state: Arc<ApiState>,
    pub(crate) target: Target,
    pub(crate) query: Query,
    pub(crate) headers: HeaderMap,
    pub(crate) user: Option<slipway_access::User>,
}

impl Ctx {
    pub(crate) fn resource(&self) -> &'static ResourceType {
        self.target.resource
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A boolean query parameter the way Kubernetes reads one: only absence, `false` and
    /// `0` (in any case) are false, so Python's `watch=True` asks for a watch.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.param(name).is_some_and(is_true)
    }

    pub(super) fn dry_run(&self) -> ApiResult<bool> {
        match self.param("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}; the only supported value is \"All\""
            ))),
        }
    }

    pub(super) fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    pub(super) fn namespace(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    pub(super) fn key(&self, name: &str) -> String {
        objects::key(self.resource(), self.namespace(), name)
    }

    /// How rows should carry their objects if the client asked for a Table, else `None`.
    pub(crate) fn table_format(&self) -> ApiResult<Option<IncludeObject>> {
        let accept = self
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // The first media type kubectl lists that we can serve wins; a Table is served when
        // asked for before plain JSON.
        for media in accept.split(',') {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            if params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io") {
                if params.contains(&"v=v1") || params.contains(&"v=v1beta1") {
                    return IncludeObject::from_query(self.param("includeObject"))
                        .map(Some)
                        .map_err(|e| ApiError::bad_request(e.to_string()));
                }
                continue;
            }
            if matches!(params[0], "application/json" | "*/*") {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// A read's answer: the object or list as JSON, or as a Table when asked for one.
    pub(super) fn respond_read(&self, value: Value, is_list: bool) -> ApiResult<Response> {
        let Some(include) = self.table_format()? else {
            return Ok(json_response(StatusCode::OK, &value));
        };
        let resource = self.resource();
        let now = self.state.clock.now();
        let table = if is_list {
            let items = value["items"].as_array().cloned().unwrap_or_default();
            slipway_tables::table(
                resource.group,
                resource.kind,
                &items,
                value["metadata"].clone(),
                include,
                now,
            )
        } else {
            slipway_tables::table(
                resource.group,
                resource.kind,
                &[value],
                Value::Null,
                include,
                now,
            )
        };
        Ok(json_response(StatusCode::OK, &table))
    }

    pub(crate) fn filter(&self) -> ApiResult<Filter> {
        Filter::from_query(
            self.resource(),
            self.param("labelSelector"),
            self.param("fieldSelector"),
        )
    }

    /// The stored object the path names, or 404.
    pub(super) async fn get_kv(&self) -> ApiResult<KeyValue> {
        let name = self.name();
        self.state
            .store
            .get(&self.key(name), None)
            .await
            .map_err(|e| from_store(self.resource(), name, e))?
            .ok_or_else(|| ApiError::not_found(self.resource(), name))
    }

    pub(super) async fn get(&self) -> ApiResult<Value> {
        decode(&self.get_kv().await?)
    }

    /// GET of one object as JSON, served from the stored bytes without a parse: the
    /// busiest read there is (every controller and kubectl get).
    async fn get_served(&self) -> ApiResult<Response> {
        let kv = self.get_kv().await?;
        match objects::served_json(&kv) {
            Some(bytes) => Ok(json_bytes_response(StatusCode::OK, bytes)),
            None => Ok(json_response(StatusCode::OK, &decode(&kv)?)),
        }
    }

    /// Gives back what a deleted object held: a Service's addresses, quota usage.
    pub(super) async fn release_allocations(&self, last: &Value) {
        let store = self.state.store.as_ref();
        if self.resource().kind == "Service" {
            allocator::held_by(last).release(store).await;
        }
        if let Some(namespace) = self
            .namespace()
            .filter(|ns| self.resource().namespaced() && self.state.quotas.maybe_in(ns))
        {
            quota::release_object(store, self.resource(), namespace, last).await;
        }
    }

    /// Defaulting, strict decoding and per-kind validation; returns the admitted object
    /// and the warnings to send back.
    pub(super) fn admit(
        &self,
        object: Value,
        old: Option<&Value>,
        name: &str,
    ) -> ApiResult<(Value, Vec<String>)> {
        let resource = self.resource();
        let validation = FieldValidation::from_query(self.param("fieldValidation"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let api_version = resource.api_version();
        match slipway_admission::admit(&api_version, resource.kind, object, old, validation) {
            Ok(admitted) => {
                // What only the garbage collector changes (owners, finalizers) grants
                // nothing new, so only a change to what a role or binding grants is checked.
                let grants_changed = old.is_none_or(|old| {
                    ["rules", "roleRef", "subjects"]
                        .iter()
                        .any(|field| old[field] != admitted.object[field])
                });
                if let (Some(authorization), Some(user), true) =
                    (&self.state.authorization, &self.user, grants_changed)
                {
                    authorization.check_grant(user, resource.kind, &admitted.object)?;
                }
                let refused = if self.state.allow_privileged {
                    Vec::new()
                } else {
                    privileged_containers(&admitted.object)
                };
                if refused.is_empty() {
                    Ok((admitted.object, admitted.warnings))
                } else {
                    Err(ApiError::invalid(resource, name, &refused))
                }
            }
            Err(Rejection::Invalid(errors)) => Err(ApiError::invalid(resource, name, &errors)),
            Err(rejection) => Err(ApiError::bad_request(rejection.to_string())),
        }
    }

    /// Repeats a read-modify-write attempt until it lands. Each attempt reads the object,
    /// computes its change and writes with a compare-and-swap on the revision it read; an
    /// attempt that lost the race to another writer answers `None` and is computed again
    /// from the newer version.
    pub(super) async fn until_landed<T, Fut>(
        &self,
        mut attempt: impl FnMut() -> Fut,
    ) -> ApiResult<T>
    where
        Fut: Future<Output = ApiResult<Option<T>>>,
    {
        for _ in 0..MAX_RETRIES {
            if let Some(done) = attempt().await? {
                return Ok(done);
            }
        }
        Err(ApiError::conflict(self.resource(), self.name()))
    }

    /// A compare-and-swap's outcome for [`Ctx::until_landed`]: a revision conflict is a
    /// lost race (`None`), any other store error is the request's error.
    pub(super) fn landed<T>(&self, result: Result<T, StoreError>) -> ApiResult<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(from_store(self.resource(), self.name(), e)),
        }
    }

    pub(super) fn validate(&self, object: &Value, name: &str) -> ApiResult<()> {
        let resource = self.resource();
        let meta = serde_json::from_value(object.get("metadata").cloned().unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("invalid metadata: {e}")))?;
        let errors = validate_object_meta(resource.kind, &meta, resource.namespaced());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(resource, name, &errors))
        }
    }
}

pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Ensures an object names its own apiVersion and kind, as stored objects always do.
pub(crate) fn with_type(resource: &ResourceType, mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| json!(resource.api_version()));
        map.entry("kind").or_insert_with(|| json!(resource.kind));
    }
    object
}

/// Adds a `Warning` header per warning, as Kubernetes sends them (code 299, agent `-`).
pub(super) fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = header::HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// A JSON response.
pub(crate) fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).expect("a JSON value always serializes");
    json_bytes_response(code, body)
}

/// A response of bytes that are already JSON.
fn json_bytes_response(code: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (code, Body::from(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
