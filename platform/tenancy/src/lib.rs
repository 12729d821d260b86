//! Squads, users and tokens as a service and an HTTP API (DESIGN D8).
//!
//! - [`Directory`]: the platform's users and token hashes in memory; the API server's
//!   [`slipway_access::Authenticator`] for `slw_` tokens and an
//!   [`slipway_access::Authorizer`] for what RBAC cannot say (a user's own tokens, a squad
//!   owner's members).
//! - [`Tenancy`]: every change, to the database first and then to the cluster.
//! - [`router`]: the JSON API under `/slipway/v1/`, for a caller the API server has already
//!   authenticated and authorized.
//!
//! A token's secret is never stored, logged or put in an error: only its SHA-256 is kept.

mod api;
mod cluster;
mod directory;
pub mod http;
mod service;

pub use api::router;
pub use cluster::{
    FIELD_MANAGER, LIMITS_NAME, QUOTA_NAME, ROLE_BINDING_NAME, SQUAD_LABEL, apply_tenant_namespace,
    delete_tenant_namespace,
};
pub use directory::{ADMINS_GROUP, API_GROUP, Directory, is_admin, squad_group};
pub use service::Tenancy;

/// What can go wrong in the tenancy service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or failed.
    #[error(transparent)]
    Db(#[from] slipway_platform_db::Error),
    /// A namespace the squad asks for exists and belongs to something else.
    #[error("namespace {namespace:?} exists and is not labelled {SQUAD_LABEL}={squad}")]
    NamespaceTaken {
        /// The namespace.
        namespace: String,
        /// The squad that asked for it.
        squad: String,
    },
    /// A squad to delete still has work in its namespaces.
    #[error("squad {squad:?} is not empty ({}); delete with force=true to remove it anyway", found.join(", "))]
    NotEmpty {
        /// The squad.
        squad: String,
        /// What was found, as `namespace: plural/name`.
        found: Vec<String>,
    },
    /// The API server refused or failed.
    #[error("cluster: {0}")]
    Cluster(#[from] kube::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
