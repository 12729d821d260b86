//! Create: decoding and checking a body against its path, admission, LimitRange, quota,
//! address allocation, then a create-if-absent in the store.

use axum::http::StatusCode;
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use slipway_model::validation::FieldError;

use super::apply::Ownership;
use super::{Ctx, Part, json_response, with_type, with_warnings};
use crate::allocator;
use crate::limits;
use crate::objects::{self, decode, encode, is_terminating, metadata_mut, stamp_new};
use crate::quota;
use crate::resources::{self, ResourceType};
use crate::status::{ApiError, ApiResult, from_store};

impl Ctx {
    pub(super) async fn create(&self, body: Bytes) -> ApiResult<Response> {
        let object = self.decode_body(&body)?;
        self.create_object(object, Ownership::Update).await
    }

    /// Creates a decoded, path-checked object.
    pub(super) async fn create_object(
        &self,
        mut object: Value,
        ownership: Ownership,
    ) -> ApiResult<Response> {
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
        if ownership == Ownership::Update {
            self.own_update(None, &mut object, Part::Main)?;
        }
        self.validate(&object, &name)?;
        self.check_namespace_open().await?;
        // LimitRange defaults come before the quota charge, so the charge counts them.
        if let Some(namespace) = self
            .namespace()
            .filter(|ns| resource.namespaced() && self.state.limit_ranges.maybe_in(ns))
        {
            let store = self.state.store.as_ref();
            limits::admit_pod(store, resource, namespace, &name, &mut object).await?;
        }
        if self.dry_run()? {
            let response = json_response(StatusCode::CREATED, &with_type(resource, object));
            return Ok(with_warnings(response, &warnings));
        }
        let store = self.state.store.as_ref();
        let mut charge = match self
            .namespace()
            .filter(|ns| resource.namespaced() && self.state.quotas.maybe_in(ns))
        {
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
        // Events expire, as Kubernetes' --event-ttl makes them: bound to a shared lease.
        let lease = if resource.kind == "Event" {
            match self.state.event_lease().await {
                Ok(lease) => Some(lease),
                Err(e) => {
                    reservations.release(store).await;
                    charge.refund(store).await;
                    return Err(from_store(resource, &name, e));
                }
            }
        } else {
            None
        };
        let kv = match self
            .state
            .store
            .create(&self.key(&name), encode(&object).into(), lease)
            .await
        {
            Ok(kv) => kv,
            Err(e) => {
                reservations.release(store).await;
                charge.refund(store).await;
                return Err(from_store(resource, &name, e));
            }
        };
        // Admission of what comes next reads these from memory: record them before answering.
        match resource.kind {
            "ResourceQuota" => self.state.quotas.insert(&kv.key),
            "LimitRange" => self.state.limit_ranges.insert(&kv.key),
            _ => {}
        }
        // What was stored is what was encoded: answer with it rather than decode it again.
        objects::set_resource_version(&mut object, kv.mod_revision);
        let response = json_response(StatusCode::CREATED, &with_type(resource, object));
        Ok(with_warnings(response, &warnings))
    }

    /// Refuses new objects in a namespace that does not exist or is being deleted.
    pub(super) async fn check_namespace_open(&self) -> ApiResult<()> {
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
    pub(super) fn decode_body(&self, body: &[u8]) -> ApiResult<Value> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let media = content_type.split(';').next().map(str::trim);
        // kubectl's typed generators (`create namespace|configmap|secret|deployment|service`)
        // send protobuf; curl users and some tools send YAML; everything else sends JSON.
        let object = if media == Some("application/vnd.kubernetes.protobuf") {
            slipway_protobuf::decode(body).map_err(|e| match e {
                slipway_protobuf::ProtobufError::UnsupportedKind { .. } => {
                    ApiError::unsupported_media_type(e.to_string())
                }
                e => ApiError::bad_request(format!("the protobuf request body is invalid: {e}")),
            })?
        } else if media == Some("application/yaml") {
            parse_yaml(body)?
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
    pub(super) fn typed_object(&self, mut object: Value) -> ApiResult<Value> {
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

    pub(super) fn check_json_body(&self) -> ApiResult<()> {
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
    pub(super) fn place_in_namespace(&self, object: &mut Value) -> ApiResult<()> {
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
        // A kubelet registers its node with capacity and conditions in one create, which
        // Kubernetes' node strategy keeps.
        "Node" => {}
        _ if resource.has_status_subresource() => {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        _ => {}
    }
}

/// A YAML body as JSON. YAML is a superset of JSON, so this also reads JSON sent as YAML;
/// the parser bounds nesting and alias expansion, so no body can exhaust the server.
pub(super) fn parse_yaml(body: &[u8]) -> ApiResult<Value> {
    serde_yaml_ng::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
}
