//! `/slipway/v1/demo/pulls`: administrators list, open, push to and close the demo
//! repository's pull requests. Each change answers the signed delivery GitHub would send,
//! for the caller to deliver to the platform's webhook endpoint as GitHub would.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::json;
use slipway_access::User;
use slipway_tenancy::http::{Answer, ApiError, Caller, Params, json};

use crate::Error;
use crate::github::{Delivery, DemoGitHub, PullState, REPO};

/// The routes over `demo`.
pub fn router(demo: Arc<DemoGitHub>) -> Router {
    Router::new()
        .route("/slipway/v1/demo/pulls", get(list).post(open))
        .route("/slipway/v1/demo/pulls/{number}/push", post(push))
        .route("/slipway/v1/demo/pulls/{number}/close", post(close))
        .with_state(demo)
}

fn admin_only(user: &User) -> Result<(), ApiError> {
    if slipway_tenancy::is_admin(user) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "user {:?} cannot change the demo's pull requests: only administrators can",
            user.name
        ),
    ))
}

async fn list(State(demo): State<Arc<DemoGitHub>>, Caller(user): Caller) -> Answer {
    admin_only(&user)?;
    json(
        StatusCode::OK,
        &json!({ "repo": REPO, "items": demo.pulls() }),
    )
}

async fn open(State(demo): State<Arc<DemoGitHub>>, Caller(user): Caller) -> Answer {
    admin_only(&user)?;
    answer(StatusCode::CREATED, demo.open())
}

async fn push(
    State(demo): State<Arc<DemoGitHub>>,
    Caller(user): Caller,
    Params(number): Params<u64>,
) -> Answer {
    admin_only(&user)?;
    answer(StatusCode::OK, demo.push(number))
}

async fn close(
    State(demo): State<Arc<DemoGitHub>>,
    Caller(user): Caller,
    Params(number): Params<u64>,
) -> Answer {
    admin_only(&user)?;
    answer(StatusCode::OK, demo.close(number))
}

fn answer(code: StatusCode, change: Result<(PullState, Delivery), Error>) -> Answer {
    match change {
        Ok((pull, delivery)) => json(
            code,
            &json!({ "repo": REPO, "pull": pull, "delivery": delivery }),
        ),
        Err(e @ Error::NoSuchPull(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            e.to_string(),
        )),
        Err(e @ Error::Closed(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            e.to_string(),
        )),
        Err(e) => {
            tracing::error!("the demo's GitHub: {e}");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    fn as_user(router: Router, groups: &[&str]) -> Router {
        let user = User {
            name: "someone".to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        router.layer(axum::Extension(user))
    }

    async fn call(router: &Router, method: &str, path: &str) -> (StatusCode, serde_json::Value) {
        let response = router
            .clone()
            .oneshot(
                http::Request::builder()
                    .method(method)
                    .uri(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn an_administrator_opens_pushes_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let demo = DemoGitHub::start(dir.path(), "http://127.0.0.1:9")
            .await
            .unwrap();
        let router = as_user(router(demo), &["system:masters"]);
        let (status, body) = call(&router, "POST", "/slipway/v1/demo/pulls").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["pull"]["number"], 1);
        assert_eq!(body["delivery"]["event"], "pull_request");
        let (status, body) = call(&router, "POST", "/slipway/v1/demo/pulls/1/push").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = call(&router, "POST", "/slipway/v1/demo/pulls/1/close").await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = call(&router, "POST", "/slipway/v1/demo/pulls/1/close").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("closed"),
            "{body}"
        );
        let (status, body) = call(&router, "POST", "/slipway/v1/demo/pulls/7/push").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = call(&router, "POST", "/slipway/v1/demo/pulls/x/push").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (_, body) = call(&router, "GET", "/slipway/v1/demo/pulls").await;
        assert_eq!(body["items"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn anyone_else_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let demo = DemoGitHub::start(dir.path(), "http://127.0.0.1:9")
            .await
            .unwrap();
        let router = as_user(
            router(Arc::clone(&demo)),
            &["squad:demo", "system:authenticated"],
        );
        let (status, body) = call(&router, "POST", "/slipway/v1/demo/pulls").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(demo.pulls().is_empty());
    }
}
