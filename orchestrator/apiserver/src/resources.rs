//! The resource types the API server serves: one table that routing, discovery, storage
//! keys and status messages all read, so a resource is added in exactly one place.

/// How a resource is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Lives in a namespace (`/namespaces/{ns}/...`).
    Namespaced,
    /// Lives at cluster level.
    Cluster,
}

/// A subresource of a resource type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subresource {
    /// Its path segment, e.g. `status`.
    pub name: &'static str,
    /// The kind it answers with, as (group, version, kind).
    pub kind: (&'static str, &'static str, &'static str),
    /// Verbs it supports.
    pub verbs: &'static [&'static str],
}

/// One resource type of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind, e.g. `Pod`.
    pub kind: &'static str,
    /// Plural resource name used in paths, e.g. `pods`.
    pub plural: &'static str,
    /// Singular resource name, e.g. `pod`.
    pub singular: &'static str,
    /// Short names kubectl accepts, e.g. `po`.
    pub short_names: &'static [&'static str],
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
    /// Verbs on the resource itself.
    pub verbs: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
}

impl ResourceType {
    /// `v1` or `group/version`, as in an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`, as Kubernetes names a resource in messages.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether objects live in namespaces.
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The subresource called `name`, if this type has it.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether `.status` is written only through the status subresource.
    pub fn has_status_subresource(&self) -> bool {
        self.subresource("status").is_some()
    }

    /// Whether `verb` is allowed on the resource itself.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Upstream offers no `deletecollection` on namespaces.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
/// Live figures are only read, as metrics-server serves them.
const METRICS_VERBS: &[&str] = &["get", "list"];
/// Upgraded streams: `get` for a WebSocket, `create` for SPDY's POST, as upstream lists them.
const CONNECT_VERBS: &[&str] = &["create", "get"];

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        kind: (group, version, kind),
        verbs: STATUS_VERBS,
    }
}

const fn scale() -> Subresource {
    Subresource {
        name: "scale",
        kind: ("autoscaling", "v1", "Scale"),
        verbs: STATUS_VERBS,
    }
}

/// A resource with every verb and no subresource.
const fn plain(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    scope: Scope,
) -> ResourceType {
    ResourceType {
        group,
        version,
        kind,
        plural,
        singular,
        short_names,
        scope,
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
    }
}

/// Live figures of `metrics.k8s.io`, read-only as metrics-server serves them. Not stored:
/// `usage` gathers them from the node agents when asked.
const fn metrics(kind: &'static str, plural: &'static str, scope: Scope) -> ResourceType {
    ResourceType {
        verbs: METRICS_VERBS,
        ..plain("metrics.k8s.io", "v1beta1", kind, plural, "", &[], scope)
    }
}

use Scope::{Cluster, Namespaced};

/// Every resource type served, in discovery order (groups in preference order).
pub static RESOURCES: &[ResourceType] = &[
    ResourceType {
        subresources: &[
            status("", "v1", "Namespace"),
            Subresource {
                name: "finalize",
                kind: ("", "v1", "Namespace"),
                verbs: &["update"],
            },
        ],
        verbs: NAMESPACE_VERBS,
        ..plain(
            "",
            "v1",
            "Namespace",
            "namespaces",
            "namespace",
            &["ns"],
            Cluster,
        )
    },
    ResourceType {
        categories: &["all"],
        subresources: &[
            status("", "v1", "Pod"),
            Subresource {
                name: "binding",
                kind: ("", "v1", "Binding"),
                verbs: &["create"],
            },
            Subresource {
                name: "log",
                kind: ("", "v1", "Pod"),
                verbs: &["get"],
            },
            Subresource {
                name: "exec",
                kind: ("", "v1", "PodExecOptions"),
                verbs: CONNECT_VERBS,
            },
            Subresource {
                name: "attach",
                kind: ("", "v1", "PodAttachOptions"),
                verbs: CONNECT_VERBS,
            },
            Subresource {
                name: "portforward",
                kind: ("", "v1", "PodPortForwardOptions"),
                verbs: CONNECT_VERBS,
            },
        ],
        ..plain("", "v1", "Pod", "pods", "pod", &["po"], Namespaced)
    },
    ResourceType {
        categories: &["all"],
        subresources: &[status("", "v1", "Service")],
        ..plain(
            "",
            "v1",
            "Service",
            "services",
            "service",
            &["svc"],
            Namespaced,
        )
    },
    plain(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        &["ep"],
        Namespaced,
    ),
    plain(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        &["cm"],
        Namespaced,
    ),
    plain("", "v1", "Secret", "secrets", "secret", &[], Namespaced),
    ResourceType {
        subresources: &[status("", "v1", "ResourceQuota")],
        ..plain(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            "resourcequota",
            &["quota"],
            Namespaced,
        )
    },
    plain(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        "limitrange",
        &["limits"],
        Namespaced,
    ),
    ResourceType {
        subresources: &[status("", "v1", "Node")],
        ..plain("", "v1", "Node", "nodes", "node", &["no"], Cluster)
    },
    plain("", "v1", "Event", "events", "event", &["ev"], Namespaced),
    plain(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        &["sa"],
        Namespaced,
    ),
    ResourceType {
        categories: &["all"],
        subresources: &[scale(), status("apps", "v1", "Deployment")],
        ..plain(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            "deployment",
            &["deploy"],
            Namespaced,
        )
    },
    ResourceType {
        categories: &["all"],
        subresources: &[scale(), status("apps", "v1", "ReplicaSet")],
        ..plain(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            "replicaset",
            &["rs"],
            Namespaced,
        )
    },
    plain(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        &[],
        Namespaced,
    ),
    ResourceType {
        subresources: &[status("networking.k8s.io", "v1", "Ingress")],
        ..plain(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            "ingress",
            &["ing"],
            Namespaced,
        )
    },
    plain(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        &[],
        Namespaced,
    ),
    plain(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        &[],
        Namespaced,
    ),
    plain(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        &[],
        Cluster,
    ),
    plain(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        &[],
        Cluster,
    ),
    metrics("NodeMetrics", "nodes", Cluster),
    metrics("PodMetrics", "pods", Namespaced),
];

/// The resource type at `group`/`version` called `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource type of objects with this `apiVersion` and `kind`.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The API groups served, in preference order, each with its versions.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => groups.push((r.group, vec![r.version])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_resource_is_unique_and_reachable() {
        let mut seen = HashSet::new();
        for r in RESOURCES {
            assert!(seen.insert((r.group, r.version, r.plural)), "{r:?} twice");
            assert_eq!(find(r.group, r.version, r.plural), Some(r));
            assert_eq!(find_kind(&r.api_version(), r.kind), Some(r));
        }
        assert_eq!(find("apps", "v1", "pods"), None);
        assert_eq!(find("", "v1", "deployments"), None);
    }

    #[test]
    fn names_as_kubernetes_prints_them() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.qualified_name(), "deployments.apps");
        assert!(deploy.subresource("scale").is_some());
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.api_version(), "v1");
        assert_eq!(pods.qualified_name(), "pods");
        assert!(pods.has_status_subresource());
        assert!(
            !find("", "v1", "configmaps")
                .unwrap()
                .has_status_subresource()
        );
    }

    #[test]
    fn groups_in_preference_order() {
        let groups = groups();
        assert_eq!(groups[0], ("apps", vec!["v1"]));
        assert!(
            groups
                .iter()
                .any(|(g, _)| *g == "rbac.authorization.k8s.io")
        );
        assert!(!groups.iter().any(|(g, _)| g.is_empty()));
    }
}
