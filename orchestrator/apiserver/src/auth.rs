//! Authentication: every request but the public health and version probes must carry a
//! bearer token that an [`Authenticator`] resolves to a user; anything else gets 401.
//! Tokens are compared in constant time and never logged.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Paths anyone may read, as Kubernetes' `system:public-info-viewer` allows.
const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

pub use slipway_access::{Authenticator, User};
use slipway_access::{AUTHENTICATED, constant_time_eq};

/// A fixed set of tokens, such as the admin token made at first start.
pub struct StaticTokens {
    tokens: Vec<(String, User)>,
}

impl StaticTokens {
    /// Tokens and the users they stand for.
    pub fn new(tokens: Vec<(String, User)>) -> Self {
        StaticTokens { tokens }
    }

    /// The admin token: user `admin` in `system:masters`.
    pub fn admin(token: String) -> Self {
        Self::new(vec![(
            token,
            User {
                name: "admin".to_owned(),
                groups: vec![
                    "system:masters".to_owned(),
                    AUTHENTICATED.to_owned(),
                ],
            },
        )])
    }

    /// The admin token, and the join token node agents use: user `system:node` in
    /// `system:nodes`.
    pub fn cluster(admin: String, join: String) -> Self {
        let mut tokens = Self::admin(admin).tokens;
        tokens.push((
            join,
            User {
                name: "system:node".to_owned(),
                groups: vec!["system:nodes".to_owned(), AUTHENTICATED.to_owned()],
            },
        ));
        Self::new(tokens)
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
    fn join_tokens_are_nodes() {
        let auth = StaticTokens::cluster("admin-token".to_owned(), "join-token".to_owned());
        let node = auth.authenticate("join-token").expect("node");
        assert_eq!(node.name, "system:node");
        assert!(node.groups.contains(&"system:nodes".to_owned()));
        assert_eq!(
            auth.authenticate("admin-token").map(|u| u.name),
            Some("admin".into())
        );
        assert!(auth.authenticate("other").is_none());
    }

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
