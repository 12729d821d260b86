//! Who a request is from and what they may do: the [`User`] a credential stands for, the
//! one [`Authenticator`] trait every credential goes through, and Kubernetes' RBAC
//! evaluated over a snapshot of roles and bindings. No IO: callers feed it objects.

use std::sync::Arc;

pub mod bootstrap;
pub mod node;
pub mod rbac;
pub mod request;

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The groups the user is in.
    pub groups: Vec<String>,
}

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";

/// Resolves bearer tokens to users; the one door every credential goes through.
pub trait Authenticator: Send + Sync + 'static {
    /// The user a token belongs to, or `None` for an unknown, expired or revoked token.
    fn authenticate(&self, token: &str) -> Option<User>;
}

/// Authenticators asked in order; the first that knows the token answers.
pub struct Chain(pub Vec<Arc<dyn Authenticator>>);

impl Authenticator for Chain {
    fn authenticate(&self, token: &str) -> Option<User> {
        self.0.iter().find_map(|a| a.authenticate(token))
    }
}

/// What a request asks to do, as Kubernetes' authorizers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// The verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or a special verb such as `bind`, `escalate` or `impersonate`;
    /// for a non-resource request, the lower-case HTTP method.
    pub verb: String,
    /// What the verb applies to.
    pub target: Target,
}

/// The object of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An API resource; empty strings mean "none", as in Kubernetes.
    Resource {
        /// The API group (`""` for the core group).
        group: String,
        /// The resource (plural, lower case), such as `pods`.
        resource: String,
        /// The subresource, such as `log` or `scale`.
        subresource: String,
        /// The namespace (empty for cluster-scoped resources and all-namespace requests).
        namespace: String,
        /// The object's name (empty for collections).
        name: String,
    },
    /// A path outside the resource API, such as `/healthz` or `/openapi/v3`.
    NonResource {
        /// The request path.
        path: String,
    },
}

/// An authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; later authorizers are not asked.
    Allow,
    /// Denied with a reason; later authorizers are not asked.
    Deny(String),
    /// This authorizer has nothing to say; the next one is asked.
    NoOpinion,
}

/// Decides whether a user may do what a request asks.
pub trait Authorizer: Send + Sync + 'static {
    /// The decision for `user` doing `attributes`.
    fn authorize(&self, user: &User, attributes: &Attributes) -> Decision;
}

/// Compares without stopping at the first difference, so the time taken does not tell
/// how much of a secret matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}
