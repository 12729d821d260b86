//! Authorization of every request: the attributes a request asks for, decided by a chain
//! as kube-apiserver's (`system:masters`, the node authorizer, the platform's directory,
//! RBAC), over Roles, bindings and pods kept in memory from store watches. Also the checks
//! RBAC writes must pass so nobody grants what they do not hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde_json::Value;
use slipway_access::bootstrap::MASTERS;
use slipway_access::node::NodeGraph;
use slipway_access::rbac::{self, Policy};
use slipway_access::{Attributes, Authorizer, Decision, Target, User};
use slipway_model::k8s_openapi::api::core::v1::Pod;
use slipway_model::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
};
use slipway_store::{Error as StoreError, Event, ListOptions, Store};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::objects;
use crate::resources;
use crate::status::{ApiError, ApiResult};

/// The four RBAC resources, in the order [`Rbac`] keeps them.
const RBAC_PLURALS: [&str; 4] = [
    "clusterroles",
    "roles",
    "clusterrolebindings",
    "rolebindings",
];

/// The stored RBAC objects by key, one map per resource, decoded once.
#[derive(Default)]
struct Rbac {
    cluster_roles: HashMap<String, ClusterRole>,
    roles: HashMap<String, Role>,
    cluster_bindings: HashMap<String, ClusterRoleBinding>,
    bindings: HashMap<String, RoleBinding>,
}

impl Rbac {
    fn clear(&mut self, index: usize) {
        match index {
            0 => self.cluster_roles.clear(),
            1 => self.roles.clear(),
            2 => self.cluster_bindings.clear(),
            _ => self.bindings.clear(),
        }
    }

    fn apply(&mut self, index: usize, event: &Event) {
        let key = event.key().to_owned();
        let value = match event {
            Event::Put { kv, .. } => Some(&kv.value),
            Event::Delete { .. } => None,
        };
        fn set<T: serde::de::DeserializeOwned>(
            map: &mut HashMap<String, T>,
            key: String,
            value: Option<&bytes::Bytes>,
        ) {
            match value.map(|v| serde_json::from_slice::<T>(v)) {
                Some(Ok(object)) => {
                    map.insert(key, object);
                }
                Some(Err(e)) => {
                    tracing::error!(%key, error = %e, "a stored RBAC object does not decode; it grants nothing");
                    map.remove(&key);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        match index {
            0 => set(&mut self.cluster_roles, key, value),
            1 => set(&mut self.roles, key, value),
            2 => set(&mut self.cluster_bindings, key, value),
            _ => set(&mut self.bindings, key, value),
        }
    }

    fn policy(&self) -> Policy {
        Policy::new(
            self.cluster_roles.values().cloned(),
            self.roles.values().cloned(),
            self.cluster_bindings.values().cloned(),
            self.bindings.values().cloned(),
        )
    }
}

/// What decides requests, and the caches it decides from.
pub struct Authorization {
    policy: RwLock<Arc<Policy>>,
    nodes: RwLock<NodeGraph>,
    /// Authorizers asked after the node authorizer and before RBAC (the platform's).
    extra: Vec<Arc<dyn Authorizer>>,
    /// How many of the watches (four RBAC resources, pods) have listed.
    listed: watch::Sender<usize>,
}

impl Authorization {
    /// Authorization with `extra` authorizers asked before RBAC; it knows nothing until
    /// [`Authorization::follow`] has listed (see [`Authorization::ready`]).
    pub fn new(extra: Vec<Arc<dyn Authorizer>>) -> Arc<Self> {
        Arc::new(Authorization {
            policy: RwLock::new(Arc::new(Policy::default())),
            nodes: RwLock::new(NodeGraph::default()),
            extra,
            listed: watch::Sender::new(0),
        })
    }

    /// The RBAC policy as last seen.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until every watch has listed once, so a decision sees the stored policy.
    pub async fn ready(&self) {
        let mut listed = self.listed.subscribe();
        let _ = listed.wait_for(|n| *n > RBAC_PLURALS.len()).await;
    }

    /// The decision for `user` doing `attributes`: `Deny` with an authorizer's reason, or
    /// `NoOpinion` when nothing allowed it (RBAC has no reasons to give).
    pub fn decide(&self, user: &User, attributes: &Attributes) -> Decision {
        if user.groups.iter().any(|g| g == MASTERS) {
            return Decision::Allow;
        }
        let node = self
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .authorize(user, attributes);
        let decided = std::iter::once(node)
            .chain(self.extra.iter().map(|a| a.authorize(user, attributes)))
            .find(|d| *d != Decision::NoOpinion);
        match decided {
            Some(decision) => decision,
            None if self.policy().allows(user, attributes) => Decision::Allow,
            None => Decision::NoOpinion,
        }
    }

    /// Refuses an RBAC write that would grant what `user` does not hold, unless they may
    /// `escalate` (roles) or `bind` (bindings), as Kubernetes' RBAC storage does.
    pub fn check_grant(&self, user: &User, kind: &str, object: &Value) -> ApiResult<()> {
        if user.groups.iter().any(|g| g == MASTERS) {
            return Ok(());
        }
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let special = |verb: &str, resource: &str, name: &str| Attributes {
            verb: verb.to_owned(),
            target: Target::Resource {
                group: rbac::GROUP.to_owned(),
                resource: resource.to_owned(),
                subresource: String::new(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            },
        };
        let policy = self.policy();
        let (plural, wanted) = match kind {
            "Role" | "ClusterRole" => {
                let plural = if kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                if self.decide(user, &special("escalate", plural, name)) == Decision::Allow {
                    return Ok(());
                }
                let rules: Vec<PolicyRule> =
                    serde_json::from_value(object["rules"].clone()).unwrap_or_default();
                (plural, rules)
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let plural = if kind == "RoleBinding" {
                    "rolebindings"
                } else {
                    "clusterrolebindings"
                };
                let role: RoleRef = serde_json::from_value(object["roleRef"].clone())
                    .map_err(|e| ApiError::bad_request(format!("roleRef: {e}")))?;
                let role_plural = if role.kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                if self.decide(user, &special("bind", role_plural, &role.name)) == Decision::Allow {
                    return Ok(());
                }
                let Some(rules) = policy.role_rules(namespace, &role) else {
                    return Err(ApiError::forbidden(format!(
                        "{plural}.{} {name:?} is forbidden: {role_plural}.{} {:?} not found, and user {:?} may not bind it",
                        rbac::GROUP,
                        rbac::GROUP,
                        role.name,
                        user.name
                    )));
                };
                (plural, rules)
            }
            _ => return Ok(()),
        };
        let missing = rbac::uncovered(&policy.rules_for(user, namespace), &wanted);
        if missing.is_empty() {
            return Ok(());
        }
        let listed: Vec<String> = missing.iter().map(describe_rule).collect();
        Err(ApiError::forbidden(format!(
            "{plural}.{} {name:?} is forbidden: user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
            rbac::GROUP,
            user.name,
            user.groups,
            listed.join("\n")
        )))
    }

    /// Lists and then follows the RBAC objects and pods until `shutdown`, starting over
    /// when a watch breaks; the tasks doing it are returned to be awaited.
    pub fn follow(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        let rbac = Arc::new(Mutex::new(Rbac::default()));
        for (index, plural) in RBAC_PLURALS.into_iter().enumerate() {
            let resource = resources::find(rbac::GROUP, "v1", plural).expect("RBAC is served");
            let this = Arc::clone(self);
            let rbac = Arc::clone(&rbac);
            let apply = move |reset: bool, events: &[Event]| {
                let mut objects = rbac.lock().unwrap_or_else(PoisonError::into_inner);
                if reset {
                    objects.clear(index);
                }
                for event in events {
                    objects.apply(index, event);
                }
                let policy = Arc::new(objects.policy());
                *this.policy.write().unwrap_or_else(PoisonError::into_inner) = policy;
            };
            tasks.push(tokio::spawn(follow_prefix(
                Arc::clone(&store),
                objects::prefix(resource, None),
                apply,
                Arc::clone(self),
                shutdown.clone(),
            )));
        }
        let pods = resources::find("", "v1", "pods").expect("pods are served");
        let prefix = objects::prefix(pods, None);
        let this = Arc::clone(self);
        let pods_prefix = prefix.clone();
        let apply = move |reset: bool, events: &[Event]| {
            let mut graph = this.nodes.write().unwrap_or_else(PoisonError::into_inner);
            if reset {
                *graph = NodeGraph::default();
            }
            for event in events {
                match event {
                    Event::Put { kv, .. } => match serde_json::from_slice::<Pod>(&kv.value) {
                        Ok(pod) => graph.upsert(&pod),
                        Err(e) => {
                            tracing::error!(key = %kv.key, error = %e, "a stored pod does not decode");
                        }
                    },
                    Event::Delete { .. } => {
                        let rest = event.key().strip_prefix(&pods_prefix).unwrap_or_default();
                        if let Some((namespace, name)) = rest.split_once('/') {
                            graph.remove(namespace, name);
                        }
                    }
                }
            }
        };
        tasks.push(tokio::spawn(follow_prefix(
            store,
            prefix,
            apply,
            Arc::clone(self),
            shutdown,
        )));
        tasks
    }
}

/// A rule as Kubernetes prints one in an escalation refusal.
fn describe_rule(rule: &PolicyRule) -> String {
    let list = |v: &Option<Vec<String>>| {
        v.as_deref()
            .unwrap_or_default()
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut parts = Vec::new();
    if rule.non_resource_urls.is_some() {
        parts.push(format!(
            "NonResourceURLs:[{}]",
            list(&rule.non_resource_urls)
        ));
    } else {
        parts.push(format!("APIGroups:[{}]", list(&rule.api_groups)));
        parts.push(format!("Resources:[{}]", list(&rule.resources)));
        if rule.resource_names.is_some() {
            parts.push(format!("ResourceNames:[{}]", list(&rule.resource_names)));
        }
    }
    parts.push(format!("Verbs:[{}]", list(&Some(rule.verbs.clone()))));
    format!("{{{}}}", parts.join(", "))
}

/// Lists `prefix` (handing `apply` the objects as puts that replace all it knew), counts itself listed once, then
/// hands over each batch of changes as it arrives; lists again after a broken watch.
async fn follow_prefix(
    store: Arc<dyn Store>,
    prefix: String,
    apply: impl Fn(bool, &[Event]),
    authorization: Arc<Authorization>,
    shutdown: CancellationToken,
) {
    let mut counted = false;
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = list_and_watch(store.as_ref(), &prefix, &apply, &authorization, &mut counted) => result,
        };
        if let Err(e) = result {
            tracing::warn!(%prefix, error = %e, "authorization lost its watch; listing again");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn list_and_watch(
    store: &dyn Store,
    prefix: &str,
    apply: &impl Fn(bool, &[Event]),
    authorization: &Authorization,
    counted: &mut bool,
) -> Result<(), StoreError> {
    let listed = store.list(prefix, ListOptions::default()).await?;
    let mut watch = store.watch(prefix, listed.revision).await?;
    // A new list replaces everything: what is gone is deleted, what is there is put.
    let puts: Vec<Event> = listed
        .kvs
        .into_iter()
        .map(|kv| Event::Put { kv, prev: None })
        .collect();
    apply(true, &puts);
    if !*counted {
        *counted = true;
        authorization.listed.send_modify(|n| *n += 1);
    }
    loop {
        let Some(first) = watch.next().await else {
            return Ok(());
        };
        // Whatever else has already arrived joins this batch: one rebuild for a burst.
        let mut batch = vec![first?];
        while let Some(Some(next)) = watch.next().now_or_never() {
            batch.push(next?);
        }
        apply(false, &batch);
    }
}

/// Writes the default ClusterRoles and ClusterRoleBindings: creates those missing and
/// brings back to their defaults those changed, unless annotated
/// `rbac.authorization.kubernetes.io/autoupdate: "false"`, as kube-apiserver reconciles
/// its bootstrap policy at every start.
pub async fn bootstrap_policy(state: &crate::ApiState) -> Result<(), StoreError> {
    let roles = slipway_access::bootstrap::cluster_roles()
        .into_iter()
        .map(|r| ("clusterroles", "ClusterRole", serde_json::to_value(r)));
    let bindings = slipway_access::bootstrap::cluster_role_bindings()
        .into_iter()
        .map(|b| {
            (
                "clusterrolebindings",
                "ClusterRoleBinding",
                serde_json::to_value(b),
            )
        });
    for (plural, kind, object) in roles.chain(bindings) {
        let mut object = object.map_err(|e| StoreError::Internal(e.into()))?;
        object["apiVersion"] = Value::from(format!("{}/v1", rbac::GROUP));
        object["kind"] = Value::from(kind);
        let resource = resources::find(rbac::GROUP, "v1", plural).expect("RBAC is served");
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let key = objects::key(resource, None, &name);
        loop {
            let Some(current) = state.store.get(&key, None).await? else {
                let mut new = object.clone();
                objects::stamp_new(&mut new, state.clock.now());
                match state
                    .store
                    .create(&key, objects::encode(&new).into(), None)
                    .await
                {
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => break,
                    Err(e) => return Err(e),
                }
            };
            let stored: Value = serde_json::from_slice(&current.value)
                .map_err(|e| StoreError::Internal(e.into()))?;
            let pinned = stored["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"]
                == "false";
            let same = ["rules", "roleRef", "subjects"]
                .iter()
                .all(|field| stored[field] == object[field]);
            if pinned || same {
                break;
            }
            let mut updated = stored.clone();
            for field in ["rules", "roleRef", "subjects"] {
                if !object[field].is_null() {
                    updated[field] = object[field].clone();
                }
            }
            match state
                .store
                .update(
                    &key,
                    objects::encode(&updated).into(),
                    current.mod_revision,
                    None,
                )
                .await
            {
                Ok(_) => break,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
