//! The platform's JSON API under `/slipway/v1/`. The API server authenticates and
//! authorizes every request before it gets here and leaves the caller as a
//! [`slipway_access::User`] request extension; a request without one is answered 401.
//! Every error is a Kubernetes `Status`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use slipway_access::User;
use slipway_platform_db::{Error as DbError, NewSquad, NewUser, Quota, Role};

use crate::{Error, Tenancy};

/// The routes of the platform API over `tenancy`.
pub fn router(tenancy: Arc<Tenancy>) -> Router {
    Router::new()
        .route("/slipway/v1/squads", get(list_squads).post(create_squad))
        .route(
            "/slipway/v1/squads/{name}",
            get(get_squad).delete(delete_squad),
        )
        .route("/slipway/v1/squads/{name}/quota", put(set_quota))
        .route(
            "/slipway/v1/squads/{name}/members",
            axum::routing::post(add_member),
        )
        .route(
            "/slipway/v1/squads/{name}/members/{user}",
            delete(remove_member),
        )
        .route("/slipway/v1/users", get(list_users).post(create_user))
        .route(
            "/slipway/v1/users/{name}",
            get(get_user).delete(delete_user),
        )
        .route(
            "/slipway/v1/users/{name}/tokens",
            get(list_tokens).post(create_token),
        )
        .route("/slipway/v1/users/{name}/tokens/{id}", delete(revoke_token))
        .route("/slipway/v1/audit", get(audit))
        .with_state(tenancy)
}

/// A failure as a Kubernetes `Status`.
#[derive(Debug)]
struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
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

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let message = e.to_string();
        match e {
            Error::Db(DbError::NotFound { .. }) => {
                ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
            }
            Error::Db(DbError::AlreadyExists { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "AlreadyExists", message)
            }
            Error::Db(DbError::Invalid { .. }) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
            }
            Error::Db(DbError::Conflict(_))
            | Error::NamespaceTaken { .. }
            | Error::NotEmpty { .. } => ApiError::new(StatusCode::CONFLICT, "Conflict", message),
            Error::Db(DbError::Db(_)) => {
                // Logged here, where it is handled; the caller gets no internals.
                tracing::error!(error = %message, "platform database");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the platform database failed",
                )
            }
            Error::Cluster(_) => {
                tracing::error!(error = %message, "platform cluster call");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
            }
        }
    }
}

type Answer = Result<Response, ApiError>;

/// The authenticated caller, from the request extensions.
struct Caller(User);

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
struct Params<T>(T);

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
struct Args<T>(T);

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
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid: {e}")))
}

fn json<T: Serialize>(code: StatusCode, value: &T) -> Answer {
    let body = serde_json::to_string(value).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("encoding the answer: {e}"),
        )
    })?;
    Ok((code, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn items<T: Serialize>(items: &[T]) -> Answer {
    json(StatusCode::OK, &json!({ "items": items }))
}

fn success() -> Answer {
    json(
        StatusCode::OK,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 200,
        }),
    )
}

type Tenants = State<Arc<Tenancy>>;

async fn list_squads(_: Caller, State(t): Tenants) -> Answer {
    items(&t.squads().await?)
}

async fn create_squad(Caller(user): Caller, State(t): Tenants, bytes: Bytes) -> Answer {
    let new: NewSquad = body(&bytes)?;
    json(
        StatusCode::CREATED,
        &t.create_squad(&user.name, &new).await?,
    )
}

async fn get_squad(_: Caller, State(t): Tenants, Params(name): Params<String>) -> Answer {
    json(StatusCode::OK, &t.squad(&name).await?)
}

#[derive(Deserialize)]
struct DeleteArgs {
    #[serde(default)]
    force: bool,
}

async fn delete_squad(
    Caller(user): Caller,
    State(t): Tenants,
    Params(name): Params<String>,
    Args(args): Args<DeleteArgs>,
) -> Answer {
    t.delete_squad(&user.name, &name, args.force).await?;
    success()
}

async fn set_quota(
    Caller(user): Caller,
    State(t): Tenants,
    Params(name): Params<String>,
    bytes: Bytes,
) -> Answer {
    let quota: Quota = body(&bytes)?;
    json(
        StatusCode::OK,
        &t.set_quota(&user.name, &name, &quota.hard).await?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    user: String,
    #[serde(default)]
    role: Option<String>,
}

async fn add_member(
    Caller(caller): Caller,
    State(t): Tenants,
    Params(squad): Params<String>,
    bytes: Bytes,
) -> Answer {
    let member: MemberBody = body(&bytes)?;
    let role = match member.role.as_deref() {
        None | Some("member") => Role::Member,
        Some("owner") => Role::Owner,
        Some(other) => {
            return Err(ApiError::invalid(
                "role",
                format!("{other:?} is not one of \"member\", \"owner\""),
            ));
        }
    };
    t.set_member(&caller.name, &squad, &member.user, role)
        .await?;
    json(StatusCode::CREATED, &t.squad(&squad).await?)
}

async fn remove_member(
    Caller(caller): Caller,
    State(t): Tenants,
    Params((squad, user)): Params<(String, String)>,
) -> Answer {
    t.remove_member(&caller.name, &squad, &user).await?;
    success()
}

async fn list_users(_: Caller, State(t): Tenants) -> Answer {
    items(&t.users().await?)
}

async fn create_user(Caller(caller): Caller, State(t): Tenants, bytes: Bytes) -> Answer {
    let new: NewUser = body(&bytes)?;
    json(
        StatusCode::CREATED,
        &t.create_user(&caller.name, &new).await?,
    )
}

async fn get_user(_: Caller, State(t): Tenants, Params(name): Params<String>) -> Answer {
    json(StatusCode::OK, &t.user(&name).await?)
}

async fn delete_user(
    Caller(caller): Caller,
    State(t): Tenants,
    Params(name): Params<String>,
) -> Answer {
    t.delete_user(&caller.name, &name).await?;
    success()
}

async fn list_tokens(_: Caller, State(t): Tenants, Params(name): Params<String>) -> Answer {
    items(&t.tokens(&name).await?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenBody {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    expires_in_seconds: Option<u64>,
}

async fn create_token(
    Caller(caller): Caller,
    State(t): Tenants,
    Params(name): Params<String>,
    bytes: Bytes,
) -> Answer {
    let request: TokenBody = body(&bytes)?;
    let created = t
        .create_token(
            &caller.name,
            &name,
            request.description.as_deref(),
            request.expires_in_seconds,
        )
        .await?;
    json(StatusCode::CREATED, &created)
}

async fn revoke_token(
    Caller(caller): Caller,
    State(t): Tenants,
    Params((name, id)): Params<(String, String)>,
) -> Answer {
    json(
        StatusCode::OK,
        &t.revoke_token(&caller.name, &name, &id).await?,
    )
}

#[derive(Deserialize)]
struct AuditArgs {
    #[serde(default)]
    limit: Option<u32>,
}

async fn audit(_: Caller, State(t): Tenants, Args(args): Args<AuditArgs>) -> Answer {
    // A bounded page: the log only grows.
    let limit = args.limit.unwrap_or(100).min(1000);
    items(&t.audit(limit).await?)
}
