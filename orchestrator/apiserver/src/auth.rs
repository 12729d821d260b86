//! Authentication: every request but the public health and version probes must carry a
//! bearer token that an [`Authenticator`] resolves to a user; anything else gets 401.
//! Tokens are compared in constant time and never logged.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Paths anyone may read, as Kubernetes' `system:public-info-viewer` allows.
pub(crate) const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

use slipway_access::{AUTHENTICATED, Attributes, Decision, Target, constant_time_eq};
pub use slipway_access::{Authenticator, User};

use crate::ApiState;

/// A fixed set of tokens, such as the admin token made at first start.
pub struct StaticTokens {
    tokens: Vec<(String, User)>,
}

impl StaticTokens {
    /// Tokens and the users they stand for.
    pub fn new(tokens: Vec<(String, User)>) -> Self {
        StaticTokens { tokens }
    }

    /// The admin token: [`admin`]'s.
    pub fn admin(token: String) -> Self {
        Self::new(vec![(token, admin())])
    }
}

/// The administrator the admin token stands for: user `admin` in `system:masters`.
pub fn admin() -> User {
    User {
        name: "admin".to_owned(),
        groups: vec!["system:masters".to_owned(), AUTHENTICATED.to_owned()],
    }
}

impl Authenticator for StaticTokens {
    fn authenticate(&self, token: &str) -> Option<User> {
        // Every entry is compared, so the time taken does not tell which one matched.
        let mut found = None;
        for (known, user) in &self.tokens {
            if constant_time_eq(known.as_bytes(), token.as_bytes()) {
                found = Some(user.clone());
            }
        }
        found
    }
}

/// `router` with every non-public path behind `authenticator`; the resolved [`User`] is
/// put in the request's extensions.
pub fn authenticated(router: Router, authenticator: Arc<dyn Authenticator>) -> Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let authenticator = authenticator.clone();
        async move { check(authenticator.as_ref(), request, next).await }
    }))
}

async fn check(authenticator: &dyn Authenticator, mut request: Request, next: Next) -> Response {
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token.and_then(|t| authenticator.authenticate(t)) {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None => unauthorized(),
    }
}

/// `router` serving every request as `user`: how in-process components (controllers,
/// scheduler, platform) reach the API with their own least-privilege identity.
pub fn acting_as(router: Router, user: User) -> Router {
    router.layer(middleware::from_fn(
        move |mut request: Request, next: Next| {
            request.extensions_mut().insert(user.clone());
            next.run(request)
        },
    ))
}

/// Decides every request of an authenticated user, when the state authorizes: 403 with
/// Kubernetes' message on a denial, 401 if no user came with the request.
pub(crate) async fn authorize(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(authorization) = &state.authorization else {
        return next.run(request).await;
    };
    let Some(user) = request.extensions().get::<User>() else {
        if PUBLIC_PATHS.contains(&request.uri().path()) {
            return next.run(request).await;
        }
        return unauthorized();
    };
    let attributes = slipway_access::request::attributes(
        request.method().as_str(),
        request.uri().path(),
        request.uri().query(),
    );
    // The message is written only for a denial, off the path of allowed requests.
    let message = || slipway_access::rbac::forbidden_message(user, &attributes);
    match authorization.decide(user, &attributes) {
        Decision::Allow => next.run(request).await,
        Decision::Deny(reason) => forbidden(&attributes, format!("{}: {reason}", message())),
        // What nobody allowed is denied.
        Decision::NoOpinion => forbidden(&attributes, message()),
    }
}

/// A 403 `Status` whose details name the resource, as kube-apiserver's.
fn forbidden(attributes: &Attributes, message: String) -> Response {
    let details = match &attributes.target {
        Target::Resource {
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let kind = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            json!({ "name": name, "group": group, "kind": kind })
        }
        Target::NonResource { .. } => json!({}),
    };
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    });
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn unauthorized() -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    });
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_resolve_only_exactly() {
        let auth = StaticTokens::admin("s3cret-token".to_owned());
        assert_eq!(auth.authenticate("s3cret-token").unwrap().name, "admin");
        for wrong in [
            "",
            "s3cret-toke",
            "s3cret-token ",
            "S3cret-token",
            "s3cret-tokenx",
        ] {
            assert!(auth.authenticate(wrong).is_none(), "{wrong:?}");
        }
    }
}
