//! The platform API's HTTP plumbing, shared by every `/slipway/v1/` router: errors as
//! Kubernetes `Status` answers, the caller, path and query extractors whose rejections are
//! `Status` answers too, and JSON bodies.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use slipway_access::User;
use slipway_platform_db::Error as DbError;

/// A failure as a Kubernetes `Status`.
#[derive(Debug)]
pub struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{field}: {message}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        (
            self.code,
            [(header::CONTENT_TYPE, "application/json")],
            status.to_string(),
        )
            .into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        let message = e.to_string();
        match e {
            DbError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "NotFound", message),
            DbError::AlreadyExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "AlreadyExists", message)
            }
            DbError::Invalid { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
            }
            DbError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "Conflict", message),
            DbError::Db(_) => {
                // Logged here, where it is handled; the caller gets no internals.
                tracing::error!(error = %message, "platform database");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the platform database failed",
                )
            }
        }
    }
}

pub type Answer = Result<Response, ApiError>;

/// The authenticated caller, from the request extensions.
pub struct Caller(pub User);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<User>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"))
    }
}

/// Path parameters, with rejections as `Status`.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Params(t))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Query parameters, with rejections as `Status`.
pub struct Args<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Args<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Args(t))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// A JSON body; an empty one reads as `{}`, so bodies whose fields are all optional may be
/// left out.
pub fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid: {e}")))
}

pub fn json<T: Serialize>(code: StatusCode, value: &T) -> Answer {
    let body = serde_json::to_string(value).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("encoding the answer: {e}"),
        )
    })?;
    Ok((code, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}
