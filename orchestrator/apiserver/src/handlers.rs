//! The resource verbs: get, list, create, update, patch, delete and deletecollection, plus
//! the status, scale, finalize, binding and log subresources. Every write goes through the
//! Store with a compare-and-swap on the revision the change was computed from.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use slipway_admission::{FieldValidation, Rejection};
use slipway_model::validation::{FieldError, validate_object_meta};
use slipway_store::{Error as StoreError, ListOptions};
use slipway_tables::IncludeObject;

use crate::ApiState;
use crate::allocator;
use crate::filter::Filter;
use crate::limits;
use crate::objects::{
    self, carry_system_fields, decode, encode, finalizers, is_terminating, meta_str, metadata_mut,
    stamp_new,
};
use crate::path::Target;
use crate::quota;
use crate::resources::{self, ResourceType};
use crate::status::{ApiError, ApiResult, from_store};
use crate::watch;

/// Bodies larger than this are refused with 413, as Kubernetes does at 3 MiB.
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How many times a computed write is retried after losing a race with another writer.
const MAX_RETRIES: usize = 16;

/// The query parameters of a request.
pub(crate) type Query = HashMap<String, String>;

/// Serves one request to a resource path.
pub(crate) async fn serve(
    state: Arc<ApiState>,
    method: Method,
    target: Target,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = Ctx {
        state,
        target,
        query,
        headers,
    };
    let sub = ctx.target.subresource.clone();
    let named = ctx.target.name.is_some();
    match (sub.as_deref(), named, &method) {
        (None, false, &Method::GET) if ctx.flag("watch") => watch::serve(&ctx).await,
        (None, false, &Method::GET) => {
            let list = ctx.list().await?;
            ctx.respond_read(list, true)
        }
        (None, false, &Method::POST) => ctx.create(body).await,
        (None, false, &Method::DELETE) => ctx.delete_collection().await,
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
        (Some("log"), true, &Method::GET) => Err(ApiError::unavailable(
            "container logs are not available yet: the node agent does not serve them",
        )),
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

/// One request, with what every verb needs.
pub(crate) struct Ctx {
    pub(crate) state: Arc<ApiState>,
    pub(crate) target: Target,
    pub(crate) query: Query,
    pub(crate) headers: HeaderMap,
}

impl Ctx {
    pub(crate) fn resource(&self) -> &'static ResourceType {
        self.target.resource
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1" | ""))
    }

    fn dry_run(&self) -> ApiResult<bool> {
        match self.param("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}; the only supported value is \"All\""
            ))),
        }
    }

    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    fn namespace(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    fn key(&self, name: &str) -> String {
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
    fn respond_read(&self, value: Value, is_list: bool) -> ApiResult<Response> {
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

    async fn get(&self) -> ApiResult<Value> {
        let name = self.name();
        let kv = self
            .state
            .store
            .get(&self.key(name), None)
            .await
            .map_err(|e| from_store(self.resource(), name, e))?
            .ok_or_else(|| ApiError::not_found(self.resource(), name))?;
        decode(&kv)
    }

    /// A list page, filtered; returns the `<Kind>List`.
    pub(crate) async fn list(&self) -> ApiResult<Value> {
        let resource = self.resource();
        let filter = self.filter()?;
        let limit = match self.param("limit") {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?,
            None => 0,
        };
        let prefix = objects::prefix(resource, self.namespace());
        let (mut revision, mut start_after) = match self.param("continue") {
            Some(token) => {
                let (revision, key) = decode_continue(token, &prefix)?;
                (Some(revision), Some(key))
            }
            None => (self.list_revision()?, None),
        };
        let mut items = Vec::new();
        let mut next = None;
        // Selectors apply after the store pages, so keep reading until the page is full.
        loop {
            let page = self
                .state
                .store
                .list(
                    &prefix,
                    ListOptions {
                        revision,
                        limit: (limit > 0).then_some(limit),
                        start_after: start_after.clone(),
                    },
                )
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if self.param("continue").is_some() => ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    ),
                    e => from_store(resource, "", e),
                })?;
            revision = Some(page.revision);
            for kv in &page.kvs {
                let object = decode(kv)?;
                if filter.matches(&object) {
                    items.push(with_type(resource, object));
                }
            }
            let last = page.kvs.last().map(|kv| kv.key.clone());
            if !page.more || last.is_none() {
                break;
            }
            if limit > 0 && items.len() >= limit {
                next = last;
                break;
            }
            start_after = last;
        }
        let revision = revision.unwrap_or_default();
        let mut metadata = json!({ "resourceVersion": revision.to_string() });
        if let Some(key) = next {
            metadata["continue"] = json!(encode_continue(revision, &key));
        }
        Ok(json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// The revision a list reads at: `resourceVersionMatch=Exact` pins it; otherwise the
    /// newest state satisfies "not older than".
    fn list_revision(&self) -> ApiResult<Option<i64>> {
        let rv = self.param("resourceVersion").filter(|rv| !rv.is_empty());
        match (self.param("resourceVersionMatch"), rv) {
            (Some("Exact"), Some(rv)) => objects::parse_resource_version(rv).map(Some),
            (Some("Exact"), None) => Err(ApiError::bad_request(
                "resourceVersionMatch=Exact requires a resourceVersion",
            )),
            (Some("NotOlderThan") | None, Some(rv)) => {
                objects::parse_resource_version(rv)?;
                Ok(None)
            }
            (None | Some("NotOlderThan"), None) => Ok(None),
            (Some(other), _) => Err(ApiError::bad_request(format!(
                "unsupported resourceVersionMatch: {other:?}"
            ))),
        }
    }

    async fn create(&self, body: Bytes) -> ApiResult<Response> {
        let object = self.decode_body(&body)?;
        self.create_object(object).await
    }

    /// Creates a decoded, path-checked object.
    async fn create_object(&self, mut object: Value) -> ApiResult<Response> {
        let resource = self.resource();
        let meta = metadata_mut(&mut object);
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => name.to_owned(),
            None => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let name = objects::generate_name(prefix);
                    meta.insert("name".into(), json!(name));
                    name
                }
                _ => {
                    return Err(ApiError::invalid(
                        resource,
                        "",
                        &[FieldError::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            },
        };
        stamp_new(&mut object, self.state.clock.now());
        // Admission first: its typed round trip guarantees the shape the steps after it
        // write into.
        let (mut object, warnings) = self.admit(object, None, &name)?;
        objects::drop_empty_metadata(&mut object);
        prepare_create(resource, &mut object);
        self.validate(&object, &name)?;
        self.check_namespace_open().await?;
        // LimitRange defaults come before the quota charge, so the charge counts them.
        if let Some(namespace) = self.namespace().filter(|_| resource.namespaced()) {
            let store = self.state.store.as_ref();
            limits::admit_pod(store, resource, namespace, &name, &mut object).await?;
        }
        if self.dry_run()? {
            let response = json_response(StatusCode::CREATED, &with_type(resource, object));
            return Ok(with_warnings(response, &warnings));
        }
        let store = self.state.store.as_ref();
        let mut charge = match self.namespace().filter(|_| resource.namespaced()) {
            Some(namespace) => quota::charge(store, resource, namespace, &name, &object).await?,
            None => quota::Charge::default(),
        };
        let reservations = if resource.kind == "Service" {
            match allocator::allocate(store, resource, &mut object).await {
                Ok(reservations) => reservations,
                Err(e) => {
                    charge.refund(store).await;
                    return Err(e);
                }
            }
        } else {
            allocator::Reservations::default()
        };
        let kv = match self
            .state
            .store
            .create(&self.key(&name), encode(&object).into(), None)
            .await
        {
            Ok(kv) => kv,
            Err(e) => {
                reservations.release(store).await;
                charge.refund(store).await;
                return Err(from_store(resource, &name, e));
            }
        };
        let object = decode(&kv)?;
        let response = json_response(StatusCode::CREATED, &with_type(resource, object));
        Ok(with_warnings(response, &warnings))
    }

    /// Refuses new objects in a namespace that does not exist or is being deleted.
    async fn check_namespace_open(&self) -> ApiResult<()> {
        let Some(ns) = self.namespace().filter(|_| self.resource().namespaced()) else {
            return Ok(());
        };
        let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
        let kv = self
            .state
            .store
            .get(&objects::key(namespaces, None, ns), None)
            .await
            .map_err(|e| from_store(namespaces, ns, e))?
            .ok_or_else(|| ApiError::not_found(namespaces, ns))?;
        if is_terminating(&decode(&kv)?) {
            return Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                self.resource().qualified_name(),
                self.name()
            )));
        }
        Ok(())
    }

    /// The request body as an object of this resource type, with apiVersion, kind and
    /// namespace checked against the path.
    fn decode_body(&self, body: &[u8]) -> ApiResult<Value> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // kubectl's typed generators (`create namespace|configmap|secret|deployment|service`)
        // send protobuf; everything else sends JSON.
        let object = if content_type.split(';').next().map(str::trim)
            == Some("application/vnd.kubernetes.protobuf")
        {
            slipway_protobuf::decode(body).map_err(|e| match e {
                slipway_protobuf::ProtobufError::UnsupportedKind { .. } => {
                    ApiError::unsupported_media_type(e.to_string())
                }
                e => ApiError::bad_request(format!("the protobuf request body is invalid: {e}")),
            })?
        } else {
            self.check_json_body()?;
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            })?
        };
        self.typed_object(object)
    }

    /// Checks a decoded body against the path: a JSON object of this resource's apiVersion
    /// and kind (filled in when missing) in the path's namespace.
    fn typed_object(&self, mut object: Value) -> ApiResult<Value> {
        let resource = self.resource();
        let Some(map) = object.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        let api_version = resource.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            None => {
                map.insert("apiVersion".into(), json!(api_version));
            }
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            None => {
                map.insert("kind".into(), json!(resource.kind));
            }
            Some(k) if k == resource.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    resource.kind
                )));
            }
        }
        self.place_in_namespace(&mut object)?;
        Ok(object)
    }

    fn check_json_body(&self) -> ApiResult<()> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json" | "" | "*/*" => Ok(()),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unsupported media type: {other}; send application/json"
            ))),
        }
    }

    /// Sets or checks the object's namespace against the path.
    fn place_in_namespace(&self, object: &mut Value) -> ApiResult<()> {
        let namespaced = self.resource().namespaced();
        let path_ns = self.namespace();
        let meta = metadata_mut(object);
        match (
            namespaced,
            meta.get("namespace").and_then(Value::as_str),
            path_ns,
        ) {
            (false, _, _) => {
                meta.remove("namespace");
            }
            (true, None | Some(""), Some(ns)) => {
                meta.insert("namespace".into(), json!(ns));
            }
            (true, Some(body_ns), Some(ns)) if body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (true, _, None) => {
                return Err(ApiError::bad_request(format!(
                    "{} must be created in a namespace: use /namespaces/{{namespace}}/{}",
                    self.resource().qualified_name(),
                    self.resource().plural
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// Gives back what a deleted object held: a Service's addresses, quota usage.
    async fn release_allocations(&self, last: &Value) {
        let store = self.state.store.as_ref();
        if self.resource().kind == "Service" {
            allocator::held_by(last).release(store).await;
        }
        if let Some(namespace) = self.namespace().filter(|_| self.resource().namespaced()) {
            quota::release_object(store, self.resource(), namespace, last).await;
        }
    }

    /// Defaulting, strict decoding and per-kind validation; returns the admitted object
    /// and the warnings to send back.
    fn admit(
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
            Ok(admitted) => Ok((admitted.object, admitted.warnings)),
            Err(Rejection::Invalid(errors)) => Err(ApiError::invalid(resource, name, &errors)),
            Err(rejection) => Err(ApiError::bad_request(rejection.to_string())),
        }
    }

    fn validate(&self, object: &Value, name: &str) -> ApiResult<()> {
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

    /// PUT: replaces the object (or one part of it) if the client's resourceVersion is still
    /// current; without one, against whatever is current.
    async fn update(&self, body: Bytes, part: Part) -> ApiResult<Response> {
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
        self.write(part, precondition, |_current| Ok(incoming.clone()))
            .await
    }

    /// PATCH: applies the patch to the current object and writes the result, retrying when
    /// another writer got there first.
    async fn patch(&self, body: Bytes, part: Part) -> ApiResult<Response> {
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
        self.write(part, None, |current| {
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

    /// Server-side apply, in its first form: creates the object from the applied
    /// configuration if it is missing, else merges the configuration into it as a strategic
    /// merge patch. Field ownership is not tracked yet, so fields a manager stops applying
    /// are kept rather than pruned, and no ownership conflict is reported.
    async fn apply(&self, body: &[u8], part: Part) -> ApiResult<Response> {
        let resource = self.resource();
        if part != Part::Main {
            return Err(ApiError::unsupported_media_type(
                "server-side apply to a subresource is not supported yet",
            ));
        }
        if self.param("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::unprocessable(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let applied: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the apply configuration is not valid JSON (YAML bodies are not supported yet): {e}"
            ))
        })?;
        for field in ["apiVersion", "kind"] {
            if applied
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(format!(
                    "the apply configuration must set {field}"
                )));
            }
        }
        if let Some(name) = meta_str(&applied, "name")
            && name != self.name()
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        let key = self.key(self.name());
        let exists = self
            .state
            .store
            .get(&key, None)
            .await
            .map_err(|e| from_store(resource, self.name(), e))?
            .is_some();
        let mut applied = self.typed_object(applied)?;
        if !exists {
            metadata_mut(&mut applied).insert("name".into(), json!(self.name()));
            return self.create_object(applied).await;
        }
        let api_version = resource.api_version();
        self.write(Part::Main, None, |current| {
            let merged = match slipway_patch::strategic_merge_for(
                &api_version,
                resource.kind,
                current,
                &applied,
            ) {
                Ok(merged) => merged,
                Err(e) if e.http_status() == 415 => {
                    slipway_patch::merge_patch(current, &applied)
                        .map_err(|e| patch_error(e.http_status(), e.to_string()))?
                }
                Err(e) => return Err(patch_error(e.http_status(), e.to_string())),
            };
            if let (Some(wanted), Some(now)) = (
                objects::resource_version(&applied)?,
                objects::resource_version(current)?,
            ) && wanted != now
            {
                return Err(ApiError::conflict(resource, self.name()));
            }
            Ok(merged)
        })
        .await
    }

    /// The read-modify-write loop shared by update and patch. `change` computes the new
    /// view (object, status, Scale) from the current one.
    async fn write(
        &self,
        part: Part,
        precondition: Option<i64>,
        change: impl Fn(&Value) -> ApiResult<Value>,
    ) -> ApiResult<Response> {
        let resource = self.resource();
        let name = self.name().to_owned();
        let key = self.key(&name);
        for _ in 0..MAX_RETRIES {
            let current = self.get().await?;
            let revision = objects::resource_version(&current)?.unwrap_or_default();
            if let Some(wanted) = precondition
                && wanted != revision
            {
                return Err(ApiError::conflict(resource, &name));
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
            let meta = metadata_mut(&mut updated);
            meta.insert("name".into(), json!(name));
            meta.remove("resourceVersion");
            // Defaults first, so a spec that differs only by defaults is no change and
            // does not bump the generation.
            let (mut updated, warnings) = self.admit(updated, Some(&current), &name)?;
            carry_system_fields(&current, &mut updated);
            objects::drop_empty_metadata(&mut updated);
            self.validate(&updated, &name)?;
            if is_terminating(&current) && finalizers(&updated).len() > finalizers(&current).len() {
                return Err(ApiError::unprocessable(format!(
                    "{} \"{name}\" is being deleted: no new finalizers may be added",
                    resource.qualified_name()
                )));
            }
            let done = is_terminating(&updated)
                && finalizers(&updated).is_empty()
                && namespace_finalized(&updated);
            if self.dry_run()? {
                // Nothing was written: the answer carries the version it was computed from.
                let mut updated = updated;
                objects::set_resource_version(&mut updated, revision);
                return Ok(with_warnings(
                    self.respond_written(part, updated),
                    &warnings,
                ));
            }
            let result = if done {
                self.state
                    .store
                    .delete(&key, Some(revision))
                    .await
                    .map(|d| {
                        let mut last = updated.clone();
                        objects::set_resource_version(&mut last, d.revision);
                        last
                    })
            } else {
                self.state
                    .store
                    .update(&key, encode(&updated).into(), revision, None)
                    .await
                    .map(|kv| {
                        let mut object = updated.clone();
                        objects::set_resource_version(&mut object, kv.mod_revision);
                        object
                    })
            };
            if done && result.is_ok() {
                self.release_allocations(&updated).await;
            }
            match result {
                Ok(object) => {
                    return Ok(with_warnings(self.respond_written(part, object), &warnings));
                }
                // Someone else wrote first: recompute from their version unless the client
                // pinned the version it expected.
                Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
                Err(e) => return Err(from_store(resource, &name, e)),
            }
        }
        Err(ApiError::conflict(resource, &name))
    }

    fn respond_written(&self, part: Part, object: Value) -> Response {
        let resource = self.resource();
        match part {
            Part::Scale => json_response(StatusCode::OK, &scale_view(&object)),
            _ => json_response(StatusCode::OK, &with_type(resource, object)),
        }
    }

    async fn delete(&self, body: Bytes) -> ApiResult<Response> {
        let resource = self.resource();
        let name = self.name().to_owned();
        let options = DeleteOptions::read(&self.query, &body)?;
        let key = self.key(&name);
        for _ in 0..MAX_RETRIES {
            let current = self.get().await?;
            options.check_preconditions(resource, &name, &current)?;
            let revision = objects::resource_version(&current)?.unwrap_or_default();
            let graceful = options.graceful(resource, &current);
            if graceful || !finalizers(&current).is_empty() || resource.kind == "Namespace" {
                // Deletion waits on finalizers (or a node's confirmation): mark it.
                if is_terminating(&current) {
                    return Ok(json_response(StatusCode::OK, &with_type(resource, current)));
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
                    return Ok(json_response(StatusCode::OK, &with_type(resource, marked)));
                }
                match self
                    .state
                    .store
                    .update(&key, encode(&marked).into(), revision, None)
                    .await
                {
                    Ok(kv) => {
                        objects::set_resource_version(&mut marked, kv.mod_revision);
                        return Ok(json_response(StatusCode::OK, &with_type(resource, marked)));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(from_store(resource, &name, e)),
                }
            }
            if options.dry_run {
                return Ok(deleted_response(resource, &name, current));
            }
            match self.state.store.delete(&key, Some(revision)).await {
                Ok(deleted) => {
                    self.release_allocations(&current).await;
                    let mut last = current;
                    objects::set_resource_version(&mut last, deleted.revision);
                    return Ok(deleted_response(resource, &name, last));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(from_store(resource, &name, e)),
            }
        }
        Err(ApiError::conflict(resource, &name))
    }

    /// DELETE on a collection: deletes every selected object, one by one.
    async fn delete_collection(&self) -> ApiResult<Response> {
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

    /// POST pods/{name}/binding: assigns an unscheduled pod to a node, once.
    async fn bind(&self, body: Bytes) -> ApiResult<Response> {
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
        let name = self.name().to_owned();
        let key = self.key(&name);
        for _ in 0..MAX_RETRIES {
            let mut pod = self.get().await?;
            if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict(resource, &name).with_message(format!(
                    "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{bound}\""
                )));
            }
            let revision = objects::resource_version(&pod)?.unwrap_or_default();
            pod["spec"]["nodeName"] = json!(node);
            match self
                .state
                .store
                .update(&key, encode(&pod).into(), revision, None)
                .await
            {
                Ok(_) => {
                    return Ok(json_response(
                        StatusCode::CREATED,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                    ));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(from_store(resource, &name, e)),
            }
        }
        Err(ApiError::conflict(resource, &name))
    }
}

fn patch_error(status: u16, message: String) -> ApiError {
    match status {
        400 => ApiError::bad_request(message),
        415 => ApiError::unsupported_media_type(message),
        _ => ApiError::unprocessable(message),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether a namespace has no `spec.finalizers` left (other kinds have none).
fn namespace_finalized(object: &Value) -> bool {
    object["kind"] != "Namespace"
        || object["spec"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

/// What the server sets on a new object of some kinds, as Kubernetes' create strategies do.
fn prepare_create(resource: &ResourceType, object: &mut Value) {
    match resource.kind {
        "Namespace" => {
            object["spec"]["finalizers"] = json!(["kubernetes"]);
            object["status"] = json!({ "phase": "Active" });
        }
        "Pod" => {
            object["status"] = json!({ "phase": "Pending" });
        }
        _ if resource.has_status_subresource() => {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        _ => {}
    }
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
fn scale_view(object: &Value) -> Value {
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
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
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
    let mut response = (code, Body::from(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A continue token: the revision the list started at and the last key returned. Opaque to
/// clients; hex keeps it URL-safe without another dependency.
fn encode_continue(revision: i64, key: &str) -> String {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{revision}.{hex}")
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::bad_request(format!("invalid continue token: {token:?}"));
    let (revision, hex) = token.split_once('.').ok_or_else(bad)?;
    let revision: i64 = revision.parse().map_err(|_| bad())?;
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    // A token from another list must not read outside this one.
    if !key.starts_with(prefix) {
        return Err(bad());
    }
    Ok((revision, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_stay_in_their_list() {
        let token = encode_continue(42, "/registry/core/pods/a/web");
        assert_eq!(
            decode_continue(&token, "/registry/core/pods/").unwrap(),
            (42, "/registry/core/pods/a/web".to_owned())
        );
        assert!(decode_continue(&token, "/registry/core/secrets/").is_err());
        for bad in ["", "x", "1.zz", "1.abc", "q.00"] {
            assert!(decode_continue(bad, "/").is_err(), "{bad}");
        }
    }

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
