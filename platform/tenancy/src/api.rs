//! The platform's JSON API under `/slipway/v1/`. The API server authenticates and
//! authorizes every request before it gets here and leaves the caller as a
//! [`slipway_access::User`] request extension; a request without one is answered 401.
//! Every error is a Kubernetes `Status`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use serde::{Deserialize, Serialize};
use serde_json::json;
use slipway_platform_db::{NewSquad, NewUser, Quota, Role};

use crate::http::{Answer, ApiError, Args, Caller, Params, body, json};
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

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let message = e.to_string();
        match e {
            Error::Db(e) => e.into(),
            Error::NamespaceTaken { .. } | Error::NotEmpty { .. } => {
                ApiError::new(StatusCode::CONFLICT, "Conflict", message)
            }
            // The API busy or its store unavailable is passed on as such: the caller may
            // try again, as with any Kubernetes call.
            Error::Cluster(kube::Error::Api(status))
                if status.code == 429 || status.code == 503 =>
            {
                tracing::warn!(error = %message, "platform cluster call, to be tried again");
                let code =
                    StatusCode::from_u16(status.code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let reason = if status.code == 429 {
                    "TooManyRequests"
                } else {
                    "ServiceUnavailable"
                };
                ApiError::new(code, reason, message)
            }
            Error::Cluster(_) => {
                tracing::error!(error = %message, "platform cluster call");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
            }
        }
    }
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

#[cfg(test)]
mod error_tests {
    use super::*;
    use axum::response::IntoResponse as _;

    fn cluster(code: u16) -> StatusCode {
        let status = kube::core::Status::failure("no", "No").with_code(code);
        ApiError::from(Error::Cluster(kube::Error::Api(status.boxed())))
            .into_response()
            .status()
    }

    #[test]
    fn a_busy_or_unavailable_cluster_is_passed_on_and_the_rest_is_internal() {
        assert_eq!(cluster(503), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(cluster(429), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(cluster(500), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(cluster(403), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
