//! The ClusterRoles and ClusterRoleBindings every cluster starts with: Kubernetes'
//! user-facing roles (`cluster-admin`, `admin`, `edit`, `view`), the discovery and
//! self-review rights of every authenticated user, and one least-privilege role per
//! slipway component.

use std::collections::BTreeMap;

use slipway_model::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use slipway_model::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::AUTHENTICATED;

/// The user the controllers act as.
pub const CONTROLLERS: &str = "system:kube-controller-manager";
/// The user the scheduler acts as.
pub const SCHEDULER: &str = "system:kube-scheduler";
/// The user the platform (squads, previews) acts as.
pub const PLATFORM: &str = "system:slipway-platform";
/// The group of every node agent (`system:node:<name>`).
pub const NODES: &str = "system:nodes";
/// The group of the cluster's administrators.
pub const MASTERS: &str = "system:masters";
/// The group of platform users made administrators.
pub const PLATFORM_ADMINS: &str = "slipway:admins";
/// The API group of the platform's own endpoints (`/slipway/v1/...`).
pub const PLATFORM_GROUP: &str = "platform.slipway.dev";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        verbs: owned(verbs),
        api_groups: Some(owned(groups)),
        resources: Some(owned(resources)),
        ..PolicyRule::default()
    }
}

fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        resource_names: Some(names.iter().map(|s| (*s).to_owned()).collect()),
        ..rule(verbs, groups, resources)
    }
}

fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        verbs: owned(verbs),
        non_resource_urls: Some(owned(urls)),
        ..PolicyRule::default()
    }
}

fn role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name),
        rules: Some(rules),
        ..ClusterRole::default()
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(BTreeMap::from([(
            "kubernetes.io/bootstrapping".to_owned(),
            "rbac-defaults".to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

/// What `view` may read: everything in a namespace but Secrets and RBAC.
fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "pods",
                "pods/log",
                "pods/status",
                "configmaps",
                "endpoints",
                "events",
                "limitranges",
                "resourcequotas",
                "resourcequotas/status",
                "namespaces",
                "namespaces/status",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "daemonsets",
            ],
        ),
        rule(READ, &["events.k8s.io"], &["events"]),
        rule(
            READ,
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status"],
        ),
        rule(READ, &["batch"], &["jobs", "cronjobs"]),
        // Live usage, as upstream's `system:aggregated-metrics-reader` adds to `view`.
        rule(READ, &["metrics.k8s.io"], &["pods", "nodes"]),
    ]
}

/// What `edit` adds to `view`: changing workloads, Secrets included, but not RBAC or quotas.
fn edit_rules() -> Vec<PolicyRule> {
    let mut rules = view_rules();
    rules.extend([
        rule(
            WRITE,
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "secrets",
                "serviceaccounts",
                "services",
            ],
        ),
        rule(
            &["get"],
            &[""],
            &["pods/attach", "pods/exec", "pods/portforward"],
        ),
        rule(READ, &[""], &["secrets"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "daemonsets",
            ],
        ),
        rule(WRITE, &["networking.k8s.io"], &["ingresses"]),
        rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
        rule(
            &["create", "patch", "update"],
            &["", "events.k8s.io"],
            &["events"],
        ),
    ]);
    rules
}

/// What `admin` adds to `edit`: the namespace's own Roles and RoleBindings.
fn admin_rules() -> Vec<PolicyRule> {
    let mut rules = edit_rules();
    rules.extend([
        // Not `*`: that would include `escalate` and `bind`, and with them anything.
        rule(READ, &[crate::rbac::GROUP], &["roles", "rolebindings"]),
        rule(WRITE, &[crate::rbac::GROUP], &["roles", "rolebindings"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
        ),
    ]);
    rules
}

/// Every default ClusterRole.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let all = &["*"];
    vec![
        role("cluster-admin", vec![rule(all, all, all), urls(all, all)]),
        role("admin", admin_rules()),
        role("edit", edit_rules()),
        role("view", view_rules()),
        role(
            "system:basic-user",
            vec![
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                // Everyone may read the squads and the users' names (the platform's
                // directory); changing them is the administrators'.
                rule(READ, &[PLATFORM_GROUP], &["squads"]),
            ],
        ),
        role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/openapi",
                    "/openapi/*",
                    "/version",
                    "/version/",
                    "/healthz",
                    "/livez",
                    "/readyz",
                ],
            )],
        ),
        role(
            CONTROLLERS,
            vec![
                // The garbage collector and the namespace controller read, patch (owner
                // references, finalizers) and delete objects of every kind, as
                // Kubernetes' own; they create only what they manage, and can never grant
                // anything (no `create` on RBAC, no `bind` or `escalate`).
                rule(
                    &[
                        "get",
                        "list",
                        "watch",
                        "patch",
                        "update",
                        "delete",
                        "deletecollection",
                    ],
                    all,
                    all,
                ),
                rule(
                    &["create"],
                    &["", "apps"],
                    &["pods", "replicasets", "endpoints", "events"],
                ),
                rule(
                    &["create", "patch", "update"],
                    &["events.k8s.io"],
                    &["events"],
                ),
                rule(
                    &["create", "patch", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
            ],
        ),
        role(
            SCHEDULER,
            vec![
                rule(READ, &[""], &["pods", "nodes", "namespaces"]),
                rule(&["create"], &[""], &["pods/binding", "bindings"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(READ, &["coordination.k8s.io"], &["leases"]),
                rule(
                    &["create", "patch", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
            ],
        ),
        role(
            "system:node",
            vec![
                // Secrets and ConfigMaps are not here: the node authorizer allows a node
                // only those of the pods bound to it.
                rule(
                    &["get", "list", "watch", "create", "update", "patch"],
                    &[""],
                    &["nodes", "nodes/status"],
                ),
                rule(
                    READ,
                    &[""],
                    &["pods", "services", "endpoints", "namespaces"],
                ),
                rule(&["delete"], &[""], &["pods"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(READ, &["networking.k8s.io"], &["ingresses"]),
                rule(
                    &["get", "list", "watch", "create", "update", "patch"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                // Its gateway reports requests for previews, which keeps them from going
                // to sleep and wakes those asleep.
                rule(&["create"], &[PLATFORM_GROUP], &["previews/touch"]),
            ],
        ),
        role(
            PLATFORM,
            vec![
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[""],
                    &["namespaces"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[""],
                    &["resourcequotas", "limitranges"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[crate::rbac::GROUP],
                    &["rolebindings"],
                ),
                // It binds squads to these roles without holding what they grant.
                named(
                    &["bind"],
                    &[crate::rbac::GROUP],
                    &["clusterroles"],
                    &["edit", "view", "admin"],
                ),
                // To tell an empty namespace from one in use before deleting a squad;
                // Secrets are left out, as listing them would read them.
                rule(&["list"], &[""], &["pods", "services", "configmaps"]),
                rule(&["list"], &["apps"], &["deployments", "replicasets"]),
                rule(&["list"], &["networking.k8s.io"], &["ingresses"]),
            ],
        ),
    ]
}

fn binding(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name),
        role_ref: RoleRef {
            api_group: crate::rbac::GROUP.to_owned(),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(subjects),
    }
}

fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        api_group: Some(crate::rbac::GROUP.to_owned()),
        kind: kind.to_owned(),
        name: name.to_owned(),
        namespace: None,
    }
}

/// Every default ClusterRoleBinding.
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            vec![subject("Group", MASTERS), subject("Group", PLATFORM_ADMINS)],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            vec![subject("Group", AUTHENTICATED)],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            vec![subject("Group", AUTHENTICATED)],
        ),
        binding(CONTROLLERS, CONTROLLERS, vec![subject("User", CONTROLLERS)]),
        binding(SCHEDULER, SCHEDULER, vec![subject("User", SCHEDULER)]),
        binding("system:node", "system:node", vec![subject("Group", NODES)]),
        binding(PLATFORM, PLATFORM, vec![subject("User", PLATFORM)]),
    ]
}
