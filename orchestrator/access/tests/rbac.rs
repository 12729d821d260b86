//! RBAC decisions, escalation coverage, messages and request attributes, as tables.

use slipway_access::bootstrap::{self, CONTROLLERS, PLATFORM, SCHEDULER};
use slipway_access::rbac::{Policy, forbidden_message, uncovered};
use slipway_access::request::attributes;
use slipway_access::{Attributes, Target, User};
use slipway_model::k8s_openapi::api::rbac::v1::{
    ClusterRole, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use slipway_model::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.to_owned(),
        target: Target::Resource {
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: sub.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
        },
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        resource_names: (!names.is_empty()).then(|| strings(names)),
        ..PolicyRule::default()
    }
}

fn role_binding(
    ns: &str,
    name: &str,
    kind: &str,
    role: &str,
    subjects: &[(&str, &str)],
) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            namespace: Some(ns.to_owned()),
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: kind.to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(
            subjects
                .iter()
                .map(|(kind, name)| Subject {
                    kind: (*kind).to_owned(),
                    name: (*name).to_owned(),
                    ..Subject::default()
                })
                .collect(),
        ),
    }
}

/// The default roles, squad `payments` bound to `edit` in its namespace, and a Role in
/// `payments` that lets `ana` read one named Secret and the logs of pods.
fn policy() -> Policy {
    let reader = Role {
        metadata: ObjectMeta {
            namespace: Some("payments".to_owned()),
            name: Some("reader".to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(&["get"], &[""], &["secrets"], &["db"]),
            rule(&["get"], &[""], &["*/log"], &[]),
        ]),
    };
    Policy::new(
        bootstrap::cluster_roles(),
        [reader],
        bootstrap::cluster_role_bindings(),
        [
            role_binding(
                "payments",
                "squad-edit",
                "ClusterRole",
                "edit",
                &[("Group", "squad:payments")],
            ),
            role_binding("payments", "reader", "Role", "reader", &[("User", "ana")]),
            role_binding(
                "search",
                "missing",
                "Role",
                "no-such-role",
                &[("User", "ana")],
            ),
        ],
    )
}

#[test]
fn decisions_follow_bindings_scope_and_rules() {
    let policy = policy();
    let ana = user("ana", &["squad:payments", "system:authenticated"]);
    let bob = user("bob", &["squad:search", "system:authenticated"]);
    let admin = user("admin", &["system:masters", "system:authenticated"]);
    let cases = [
        (&ana, res("create", "", "pods", "", "payments", ""), true),
        (
            &ana,
            res("create", "apps", "deployments", "", "payments", ""),
            true,
        ),
        (
            &ana,
            res("update", "apps", "deployments", "scale", "payments", "web"),
            true,
        ),
        (
            &ana,
            res("deletecollection", "", "pods", "", "payments", ""),
            true,
        ),
        (
            &ana,
            res("create", "", "pods", "exec", "payments", "web-1"),
            true,
        ),
        (&ana, res("watch", "", "pods", "", "payments", ""), true),
        // edit is bound in payments only.
        (&ana, res("create", "", "pods", "", "search", ""), false),
        (&ana, res("list", "", "pods", "", "", ""), false),
        // edit holds no RBAC and no quotas.
        (
            &ana,
            res(
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                "",
                "payments",
                "",
            ),
            false,
        ),
        (
            &ana,
            res(
                "update",
                "",
                "resourcequotas",
                "",
                "payments",
                "squad-quota",
            ),
            false,
        ),
        // A Role's resourceNames and `*/log`.
        (&bob, res("get", "", "secrets", "", "payments", "db"), false),
        (
            &ana,
            res("get", "", "pods", "log", "payments", "web-1"),
            true,
        ),
        // A binding to a missing Role grants nothing.
        (&ana, res("get", "", "pods", "", "search", "x"), false),
        (&bob, res("get", "", "pods", "", "payments", "x"), false),
        // Every authenticated user: discovery and self reviews, not /metrics.
        (
            &bob,
            res(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                "",
            ),
            true,
        ),
        (
            &bob,
            Attributes {
                verb: "get".into(),
                target: Target::NonResource {
                    path: "/apis/apps/v1".into(),
                },
            },
            true,
        ),
        (
            &bob,
            Attributes {
                verb: "get".into(),
                target: Target::NonResource {
                    path: "/metrics".into(),
                },
            },
            false,
        ),
        (
            &admin,
            Attributes {
                verb: "get".into(),
                target: Target::NonResource {
                    path: "/metrics".into(),
                },
            },
            true,
        ),
        (
            &admin,
            res(
                "escalate",
                "rbac.authorization.k8s.io",
                "clusterroles",
                "",
                "",
                "x",
            ),
            true,
        ),
        // Components.
        (
            &user(SCHEDULER, &[]),
            res("create", "", "pods", "binding", "payments", "web-1"),
            true,
        ),
        (
            &user(SCHEDULER, &[]),
            res("get", "", "secrets", "", "payments", "db"),
            false,
        ),
        (
            &user(CONTROLLERS, &[]),
            res(
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                "",
                "payments",
                "",
            ),
            false,
        ),
        (
            &user(PLATFORM, &[]),
            res(
                "bind",
                "rbac.authorization.k8s.io",
                "clusterroles",
                "",
                "",
                "edit",
            ),
            true,
        ),
        (
            &user(PLATFORM, &[]),
            res(
                "bind",
                "rbac.authorization.k8s.io",
                "clusterroles",
                "",
                "",
                "cluster-admin",
            ),
            false,
        ),
        (
            &user(PLATFORM, &[]),
            res("list", "", "secrets", "", "payments", ""),
            false,
        ),
    ];
    for (who, attrs, want) in cases {
        assert_eq!(policy.allows(who, &attrs), want, "{} {attrs:?}", who.name);
    }
}

#[test]
fn the_denial_reads_as_kubernetes_writes_it() {
    let ana = user("ana", &[]);
    assert_eq!(
        forbidden_message(&ana, &res("create", "", "pods", "", "payments", "")),
        r#"pods is forbidden: User "ana" cannot create resource "pods" in API group "" in the namespace "payments""#
    );
    assert_eq!(
        forbidden_message(&ana, &res("get", "apps", "deployments", "scale", "", "web")),
        r#"deployments/scale.apps "web" is forbidden: User "ana" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#
    );
    assert_eq!(
        forbidden_message(
            &ana,
            &Attributes {
                verb: "get".into(),
                target: Target::NonResource {
                    path: "/metrics".into()
                }
            }
        ),
        r#"forbidden: User "ana" cannot get path "/metrics""#
    );
}

#[test]
fn only_what_is_held_can_be_granted() {
    let policy = policy();
    let ana = user("ana", &["squad:payments", "system:authenticated"]);
    let held = policy.rules_for(&ana, "payments");
    // Part of edit: covered.
    assert!(uncovered(&held, &[rule(&["get", "create"], &[""], &["pods"], &[])]).is_empty());
    assert!(uncovered(&held, &[rule(&["get"], &[""], &["secrets"], &["db"])]).is_empty());
    // cluster-admin's rules, RBAC itself, and wildcards ana does not hold: not covered.
    let admin = policy
        .role_rules(
            "",
            &RoleRef {
                api_group: String::new(),
                kind: "ClusterRole".into(),
                name: "cluster-admin".into(),
            },
        )
        .expect("cluster-admin");
    assert!(!uncovered(&held, &admin).is_empty());
    let missing = uncovered(
        &held,
        &[
            rule(&["*"], &[""], &["pods"], &[]),
            rule(&["get"], &["rbac.authorization.k8s.io"], &["roles"], &[]),
        ],
    );
    assert_eq!(missing.len(), 2, "{missing:?}");
    // In another namespace ana holds only the cluster-wide basics.
    let elsewhere = policy.rules_for(&ana, "search");
    assert!(!uncovered(&elsewhere, &[rule(&["get"], &[""], &["pods"], &[])]).is_empty());
    // A named rule covers only its names; a name-less rule covers any.
    let named = [rule(&["get"], &[""], &["secrets"], &["a"])];
    assert!(uncovered(&named, &[rule(&["get"], &[""], &["secrets"], &["a"])]).is_empty());
    assert!(!uncovered(&named, &[rule(&["get"], &[""], &["secrets"], &["b"])]).is_empty());
    assert!(!uncovered(&named, &[rule(&["get"], &[""], &["secrets"], &[])]).is_empty());
    // `*/scale` covers `deployments/scale`.
    let subs = [rule(&["get"], &["apps"], &["*/scale"], &[])];
    assert!(
        uncovered(
            &subs,
            &[rule(&["get"], &["apps"], &["deployments/scale"], &[])]
        )
        .is_empty()
    );
    let cluster: Vec<ClusterRole> = bootstrap::cluster_roles();
    assert!(
        cluster
            .iter()
            .any(|r| r.metadata.name.as_deref() == Some("view"))
    );
}

#[test]
fn requests_resolve_to_kubernetes_attributes() {
    let cases = [
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            None,
            res("list", "", "pods", "", "a", ""),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("watch=true&rv=1"),
            res("watch", "", "pods", "", "a", ""),
        ),
        (
            "GET",
            "/api/v1/pods",
            Some("limit=500"),
            res("list", "", "pods", "", "", ""),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/log",
            None,
            res("get", "", "pods", "log", "a", "p"),
        ),
        (
            "POST",
            "/api/v1/namespaces/a/pods/p/exec",
            None,
            res("create", "", "pods", "exec", "a", "p"),
        ),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/a/deployments",
            None,
            res("deletecollection", "apps", "deployments", "", "a", ""),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            None,
            res("patch", "apps", "deployments", "scale", "a", "d"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a",
            None,
            res("get", "", "namespaces", "", "", "a"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/a/finalize",
            None,
            res("update", "", "namespaces", "finalize", "", "a"),
        ),
        (
            "DELETE",
            "/api/v1/nodes/n1",
            None,
            res("delete", "", "nodes", "", "", "n1"),
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            None,
            res(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                "",
            ),
        ),
        (
            "GET",
            "/slipway/v1/squads",
            None,
            res("list", "platform.slipway.dev", "squads", "", "", ""),
        ),
        (
            "GET",
            "/slipway/v1/users/ana/tokens",
            None,
            res("list", "platform.slipway.dev", "users", "tokens", "", "ana"),
        ),
        (
            "DELETE",
            "/slipway/v1/users/ana/tokens/tok_1",
            None,
            res(
                "delete",
                "platform.slipway.dev",
                "users",
                "tokens",
                "",
                "ana",
            ),
        ),
        (
            "POST",
            "/slipway/v1/squads/payments/members",
            None,
            res(
                "create",
                "platform.slipway.dev",
                "squads",
                "members",
                "",
                "payments",
            ),
        ),
    ];
    for (method, path, query, want) in cases {
        assert_eq!(attributes(method, path, query), want, "{method} {path}");
    }
    for path in [
        "/api",
        "/apis",
        "/apis/apps/v1",
        "/openapi/v3",
        "/healthz",
        "/api//pods",
    ] {
        assert!(
            matches!(
                attributes("GET", path, None).target,
                Target::NonResource { .. }
            ),
            "{path}"
        );
    }
}
