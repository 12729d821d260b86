//! Which printer handles which kind, and the cells each printer computes.
//!
//! The apiserver always converts with `Wide: true`, so every row carries the cells of the
//! priority-1 columns too; kubectl drops them unless asked for `-o wide`.
//!
//! Fields that the API's defaulting always fills (replicas, Service type, port protocol,
//! Namespace phase, Secret type) read with that default, so an object stored without it
//! prints as Kubernetes would print the defaulted object.

mod cluster;
mod config;
mod network;
mod pod;
mod rbac;
mod workloads;

use std::time::SystemTime;

use serde_json::Value;

use crate::access::{created, name, str_at};
use crate::columns::{self, ColumnDefinition};
use crate::time::{ZERO_TIME, format_rfc3339_utc, parse_rfc3339};

/// A table printer: one per kind upstream prints specially, plus the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Printer {
    Pod,
    Deployment,
    ReplicaSet,
    Service,
    Endpoints,
    Ingress,
    Namespace,
    Node,
    Event,
    Lease,
    ConfigMap,
    Secret,
    ServiceAccount,
    ResourceQuota,
    RoleBinding,
    ClusterRoleBinding,
    Default,
}

impl Printer {
    /// The printer for an API group (`""` for core) and kind.
    pub(crate) fn for_kind(group: &str, kind: &str) -> Self {
        match (group, kind) {
            ("", "Pod") => Self::Pod,
            ("", "Service") => Self::Service,
            ("", "Endpoints") => Self::Endpoints,
            ("", "Namespace") => Self::Namespace,
            ("", "Node") => Self::Node,
            ("", "Event") => Self::Event,
            ("", "ConfigMap") => Self::ConfigMap,
            ("", "Secret") => Self::Secret,
            ("", "ServiceAccount") => Self::ServiceAccount,
            ("", "ResourceQuota") => Self::ResourceQuota,
            ("apps", "Deployment") => Self::Deployment,
            ("apps", "ReplicaSet") => Self::ReplicaSet,
            ("networking.k8s.io", "Ingress") => Self::Ingress,
            ("coordination.k8s.io", "Lease") => Self::Lease,
            ("rbac.authorization.k8s.io", "RoleBinding") => Self::RoleBinding,
            ("rbac.authorization.k8s.io", "ClusterRoleBinding") => Self::ClusterRoleBinding,
            _ => Self::Default,
        }
    }

    pub(crate) fn columns(self) -> &'static [ColumnDefinition] {
        match self {
            Self::Pod => columns::POD,
            Self::Deployment => columns::DEPLOYMENT,
            Self::ReplicaSet => columns::REPLICA_SET,
            Self::Service => columns::SERVICE,
            Self::Endpoints => columns::ENDPOINTS,
            Self::Ingress => columns::INGRESS,
            Self::Namespace => columns::NAMESPACE,
            Self::Node => columns::NODE,
            Self::Event => columns::EVENT,
            Self::Lease => columns::LEASE,
            Self::ConfigMap => columns::CONFIG_MAP,
            Self::Secret => columns::SECRET,
            Self::ServiceAccount => columns::SERVICE_ACCOUNT,
            Self::ResourceQuota => columns::RESOURCE_QUOTA,
            Self::RoleBinding => columns::ROLE_BINDING,
            Self::ClusterRoleBinding => columns::CLUSTER_ROLE_BINDING,
            Self::Default => columns::DEFAULT,
        }
    }

    /// One cell per column of [`Printer::columns`], in order.
    pub(crate) fn cells(self, object: &Value, now: SystemTime) -> Vec<Value> {
        match self {
            Self::Pod => pod::cells(object, now),
            Self::Deployment => workloads::deployment(object, now),
            Self::ReplicaSet => workloads::replica_set(object, now),
            Self::Service => network::service(object, now),
            Self::Endpoints => network::endpoints(object, now),
            Self::Ingress => network::ingress(object, now),
            Self::Namespace => cluster::namespace(object, now),
            Self::Node => cluster::node(object, now),
            Self::Event => cluster::event(object, now),
            Self::Lease => cluster::lease(object, now),
            Self::ConfigMap => config::config_map(object, now),
            Self::Secret => config::secret(object, now),
            Self::ServiceAccount => config::service_account(object, now),
            Self::ResourceQuota => config::resource_quota(object, now),
            Self::RoleBinding | Self::ClusterRoleBinding => rbac::binding(object, now),
            Self::Default => default_cells(object),
        }
    }

    /// The row's `conditions`, which only pods have (a finished pod is "Completed").
    pub(crate) fn row_conditions(self, object: &Value) -> Option<Value> {
        match self {
            Self::Pod => pod::row_conditions(object),
            _ => None,
        }
    }
}

/// Name and creation time in UTC; a missing time is Go's zero time, printed as such.
fn default_cells(object: &Value) -> Vec<Value> {
    let created_at = created(object).and_then(parse_rfc3339).unwrap_or(ZERO_TIME);
    vec![name(object).into(), format_rfc3339_utc(created_at).into()]
}

/// `layoutContainerCells`: container names and images, each comma-joined.
fn containers_and_images(containers: &[Value]) -> (String, String) {
    let names: Vec<_> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<_> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}
