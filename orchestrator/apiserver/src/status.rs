//! Kubernetes `Status` errors: every failure a client sees is one of these, with the code,
//! reason and details that kubectl, kube-rs and the Python client branch on.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use slipway_model::validation::FieldError;

use crate::resources::ResourceType;

/// A failed request, answered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

/// What a handler returns when it fails.
pub type ApiResult<T> = Result<T, ApiError>;

fn details(resource: &ResourceType, name: &str) -> Value {
    let mut details = json!({ "name": name, "kind": resource.plural });
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    details
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// Replaces the message, keeping code, reason and details.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404: the named object does not exist.
    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified_name()),
        )
        .with_details(details(resource, name))
    }

    /// 404: no object `name` of the resource `plural` in `group`, for resources that are
    /// not stored (metrics-server's `podmetrics.metrics.k8s.io "ns/name" not found`).
    pub fn not_found_named(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{plural}.{group} \"{name}\" not found"),
        )
        .with_details(json!({ "name": name, "group": group, "kind": plural }))
    }

    /// 404: the path names nothing this server serves.
    pub fn no_such_path() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409: create found the name taken.
    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified_name()),
        )
        .with_details(details(resource, name))
    }

    /// 409: the object changed since the client read it.
    pub fn conflict(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                resource.qualified_name()
            ),
        )
        .with_details(details(resource, name))
    }

    /// 409: a server-side apply would change fields other managers own; one
    /// `FieldManagerConflict` cause per field, as kubectl lists them.
    pub fn apply_conflict(message: String, conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({ "reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": field })
            })
            .collect();
        Self::new(StatusCode::CONFLICT, "Conflict", message)
            .with_details(json!({ "causes": causes }))
    }

    /// 422: the object is invalid, with one cause per field error.
    pub fn invalid(resource: &ResourceType, name: &str, errors: &[FieldError]) -> Self {
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({ "reason": e.kind.reason(), "message": e.body(), "field": e.path }))
            .collect();
        let mut details = details(resource, name);
        details["kind"] = json!(resource.kind);
        details["causes"] = Value::Array(causes);
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: {}",
                resource.kind,
                slipway_model::validation::aggregate(errors)
            ),
        )
        .with_details(details)
    }

    /// 422 for a problem that is not one field's, such as a patch that cannot apply.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    /// 400: the request cannot be understood.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 401: no credential, or one nobody knows.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 403: the request is understood but refused.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 405: the verb is not supported on this path.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    /// 410: the resource version asked for is older than the history kept.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 413: the body is too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            message,
        )
    }

    /// 415: the body's content type is not accepted here.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    /// 500: something broke inside; the detail is logged, not shown.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// 429: the server is at its limit of requests in flight. client-go and kube-rs wait
    /// `Retry-After` seconds (from `details.retryAfterSeconds` and the header) and retry.
    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .with_details(json!({ "retryAfterSeconds": 1 }))
    }

    /// 503: a dependency is unavailable; the client may retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// The HTTP status code.
    pub fn code(&self) -> StatusCode {
        self.code
    }

    /// The reason, as in `Status.reason`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The message, as in `Status.message`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut response = (self.code, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self
            .details
            .as_ref()
            .and_then(|d| d["retryAfterSeconds"].as_u64())
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Maps a store failure to what the client should see; internal detail is logged once here.
pub fn from_store(resource: &ResourceType, name: &str, e: slipway_store::Error) -> ApiError {
    use slipway_store::Error as E;
    match e {
        E::AlreadyExists { .. } => ApiError::already_exists(resource, name),
        E::NotFound { .. } => ApiError::not_found(resource, name),
        E::Conflict { .. } => ApiError::conflict(resource, name),
        E::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        E::FutureRevision { requested, current } => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        ),
        E::TooLarge { .. } => ApiError::too_large("object is larger than the 1.5 MiB limit"),
        E::InvalidKey { .. } => ApiError::bad_request(format!("invalid name {name:?}")),
        E::Unavailable(source) => {
            tracing::warn!(error = %source, "store unavailable");
            ApiError::unavailable("the storage backend is unavailable; try again")
        }
        e => {
            tracing::error!(error = %e, "store failure");
            ApiError::internal("an internal error occurred in the storage backend")
        }
    }
}
