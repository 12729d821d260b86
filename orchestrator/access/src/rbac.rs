//! Kubernetes' RBAC over a snapshot of Roles, ClusterRoles and their bindings: which rules
//! apply to a user where, whether they allow a request, and whether one set of rules
//! covers another (the escalation check).

use std::collections::HashMap;
use std::sync::Arc;

use slipway_model::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use crate::{Attributes, Authorizer, Decision, Target, User};

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// Roles and bindings, indexed by subject so a decision looks only at what names the user
/// or one of their groups.
#[derive(Default)]
pub struct Policy {
    cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
    /// Keyed by namespace, then name.
    roles: HashMap<String, HashMap<String, Arc<[PolicyRule]>>>,
    by_user: HashMap<String, Vec<Grant>>,
    by_group: HashMap<String, Vec<Grant>>,
}

/// One binding of a role to a subject; `namespace` is empty for a ClusterRoleBinding.
#[derive(Clone, Debug)]
struct Grant {
    namespace: String,
    role: RoleRef,
}

impl Policy {
    /// A policy of exactly these objects.
    pub fn new(
        cluster_roles: impl IntoIterator<Item = ClusterRole>,
        roles: impl IntoIterator<Item = Role>,
        cluster_bindings: impl IntoIterator<Item = ClusterRoleBinding>,
        bindings: impl IntoIterator<Item = RoleBinding>,
    ) -> Self {
        let mut policy = Policy::default();
        for role in cluster_roles {
            let name = role.metadata.name.unwrap_or_default();
            let rules = role.rules.unwrap_or_default();
            policy.cluster_roles.insert(name, rules.into());
        }
        for role in roles {
            let namespace = role.metadata.namespace.unwrap_or_default();
            let name = role.metadata.name.unwrap_or_default();
            let rules = role.rules.unwrap_or_default();
            policy
                .roles
                .entry(namespace)
                .or_default()
                .insert(name, rules.into());
        }
        for binding in cluster_bindings {
            // A ClusterRoleBinding can only refer to a ClusterRole.
            if binding.role_ref.kind == "ClusterRole" {
                policy.index(String::new(), binding.role_ref, binding.subjects);
            }
        }
        for binding in bindings {
            let namespace = binding.metadata.namespace.unwrap_or_default();
            policy.index(namespace, binding.role_ref, binding.subjects);
        }
        policy
    }

    fn index(&mut self, namespace: String, role: RoleRef, subjects: Option<Vec<Subject>>) {
        for subject in subjects.unwrap_or_default() {
            let grant = Grant {
                namespace: namespace.clone(),
                role: role.clone(),
            };
            match subject.kind.as_str() {
                "User" => self.by_user.entry(subject.name).or_default().push(grant),
                "Group" => self.by_group.entry(subject.name).or_default().push(grant),
                "ServiceAccount" => {
                    let namespace = subject.namespace.unwrap_or_else(|| namespace.clone());
                    let user = format!("system:serviceaccount:{namespace}:{}", subject.name);
                    self.by_user.entry(user).or_default().push(grant);
                }
                _ => {}
            }
        }
    }

    /// The rules of a role reference as seen from a binding in `namespace`, if the role
    /// exists.
    fn lookup(&self, namespace: &str, role: &RoleRef) -> Option<&Arc<[PolicyRule]>> {
        match role.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role.name),
            "Role" => self.roles.get(namespace).and_then(|r| r.get(&role.name)),
            _ => None,
        }
    }

    /// The same, with a missing role granting nothing.
    fn rules_of(&self, namespace: &str, role: &RoleRef) -> &[PolicyRule] {
        self.lookup(namespace, role).map_or(&[], |r| r)
    }

    /// Every grant naming `user` or one of its groups that applies in `namespace` (cluster
    /// bindings apply everywhere; an empty namespace sees only cluster bindings).
    fn grants<'a>(&'a self, user: &'a User, namespace: &'a str) -> impl Iterator<Item = &'a Grant> {
        let by_user = self.by_user.get(&user.name).into_iter().flatten();
        let by_group = user
            .groups
            .iter()
            .filter_map(|g| self.by_group.get(g))
            .flatten();
        by_user
            .chain(by_group)
            .filter(move |g| g.namespace.is_empty() || g.namespace == namespace)
    }

    /// Whether RBAC lets `user` do `attributes`.
    pub fn allows(&self, user: &User, attributes: &Attributes) -> bool {
        let namespace = match &attributes.target {
            Target::Resource { namespace, .. } => namespace.as_str(),
            Target::NonResource { .. } => "",
        };
        self.grants(user, namespace).any(|grant| {
            self.rules_of(&grant.namespace, &grant.role)
                .iter()
                .any(|rule| rule_allows(rule, attributes))
        })
    }

    /// The rules `user` holds in `namespace` (with the cluster-wide ones), as
    /// SelfSubjectRulesReview reports and the escalation check compares.
    pub fn rules_for(&self, user: &User, namespace: &str) -> Vec<PolicyRule> {
        self.grants(user, namespace)
            .flat_map(|grant| self.rules_of(&grant.namespace, &grant.role).iter().cloned())
            .collect()
    }

    /// The rules a binding's role reference grants from `namespace`, or `None` if the role
    /// does not exist.
    pub fn role_rules(&self, namespace: &str, role: &RoleRef) -> Option<Vec<PolicyRule>> {
        self.lookup(namespace, role).map(|rules| rules.to_vec())
    }
}

impl Authorizer for Policy {
    fn authorize(&self, user: &User, attributes: &Attributes) -> Decision {
        if self.allows(user, attributes) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

fn has(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == wanted)
}

fn has_or_all(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == "*" || v == wanted)
}

/// Whether one rule allows a request, as Kubernetes' `RuleAllows`.
pub fn rule_allows(rule: &PolicyRule, attributes: &Attributes) -> bool {
    if !has_or_all(&rule.verbs, &attributes.verb) {
        return false;
    }
    match &attributes.target {
        Target::Resource {
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let groups = rule.api_groups.as_deref().unwrap_or_default();
            let resources = rule.resources.as_deref().unwrap_or_default();
            has_or_all(groups, group)
                && resource_matches(resources, resource, subresource)
                && rule
                    .resource_names
                    .as_deref()
                    .is_none_or(|names| names.is_empty() || has(names, name))
        }
        Target::NonResource { path } => rule
            .non_resource_urls
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|url| url_matches(url, path)),
    }
}

fn resource_matches(rule_resources: &[String], resource: &str, subresource: &str) -> bool {
    rule_resources.iter().any(|r| {
        if r == "*" {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        // `pods/log`, or `*/log` for that subresource of anything.
        let (rule_resource, rule_sub) = r.split_once('/').unwrap_or((r, ""));
        rule_sub == subresource && (rule_resource == resource || rule_resource == "*")
    })
}

fn url_matches(rule_url: &str, path: &str) -> bool {
    match rule_url.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => rule_url == path,
    }
}

/// The parts of `servant` that `owner` does not cover, each as a rule of one verb, one
/// group, one resource and at most one name (or one verb and one URL): empty when the
/// holder of `owner` may grant `servant` without escalating, as Kubernetes' `Covers`.
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|atom| !owner.iter().any(|o| rule_covers(o, atom)))
        .collect()
}

/// A rule split into rules that each name one verb, group, resource and name, or one verb
/// and one URL.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut atoms = Vec::new();
    let one = |v: &String| Some(vec![v.clone()]);
    for verb in &rule.verbs {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let names = rule.resource_names.as_deref().unwrap_or_default();
                if names.is_empty() {
                    atoms.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        ..PolicyRule::default()
                    });
                }
                for name in names {
                    atoms.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        ..PolicyRule::default()
                    });
                }
            }
        }
        for url in rule.non_resource_urls.iter().flatten() {
            atoms.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(url),
                ..PolicyRule::default()
            });
        }
    }
    atoms
}

fn covers_all(owner: &[String], servant: &[String]) -> bool {
    has(owner, "*") || servant.iter().all(|s| has(owner, s))
}

/// Whether `owner` covers the single-valued rule `atom`.
fn rule_covers(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    let owner_groups = owner.api_groups.as_deref().unwrap_or_default();
    let owner_resources = owner.resources.as_deref().unwrap_or_default();
    let owner_names = owner.resource_names.as_deref().unwrap_or_default();
    let owner_urls = owner.non_resource_urls.as_deref().unwrap_or_default();
    let atom_groups = atom.api_groups.as_deref().unwrap_or_default();
    let atom_resources = atom.resources.as_deref().unwrap_or_default();
    let atom_names = atom.resource_names.as_deref().unwrap_or_default();
    let atom_urls = atom.non_resource_urls.as_deref().unwrap_or_default();

    let verbs = covers_all(&owner.verbs, &atom.verbs);
    let groups = covers_all(owner_groups, atom_groups);
    let resources = has(owner_resources, "*")
        || atom_resources.iter().all(|r| {
            has(owner_resources, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(owner_resources, &format!("*/{sub}")))
        });
    let names =
        owner_names.is_empty() || (!atom_names.is_empty() && covers_all(owner_names, atom_names));
    let urls = atom_urls
        .iter()
        .all(|u| owner_urls.iter().any(|o| o == "*" || url_matches(o, u)));
    verbs && groups && resources && names && urls
}

/// Kubernetes' text for a denied request: `pods is forbidden: User "ana" cannot create
/// resource "pods" in API group "" in the namespace "payments"`.
pub fn forbidden_message(user: &User, attributes: &Attributes) -> String {
    let verb = &attributes.verb;
    let who = &user.name;
    match &attributes.target {
        Target::NonResource { path } => {
            format!("forbidden: User {who:?} cannot {verb} path {path:?}")
        }
        Target::Resource {
            group,
            resource,
            subresource,
            namespace,
            name,
        } => {
            let resource = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let qualified = if group.is_empty() {
                resource.clone()
            } else {
                format!("{resource}.{group}")
            };
            let subject = if name.is_empty() {
                qualified
            } else {
                format!("{qualified} {name:?}")
            };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_owned()
            } else {
                format!("in the namespace {namespace:?}")
            };
            format!(
                "{subject} is forbidden: User {who:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}"
            )
        }
    }
}
