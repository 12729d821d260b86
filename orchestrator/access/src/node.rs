//! Node identities and the node authorizer: each agent authenticates as
//! `system:node:<name>` with a token derived from the cluster's join token, and may read
//! only the Secrets, ConfigMaps and claims of pods bound to its node, and change only its
//! own Node and those pods, as Kubernetes' Node authorizer and NodeRestriction admit.

use std::collections::HashMap;

use ring::hmac;
use slipway_model::k8s_openapi::api::core::v1::Pod;

use crate::bootstrap::NODES;
use crate::{AUTHENTICATED, Attributes, Authenticator, Authorizer, Decision, Target, User};

const PREFIX: &str = "sln_";
const USER_PREFIX: &str = "system:node:";
/// Hex digits of an HMAC-SHA256.
const MAC_LEN: usize = 64;

fn key(join_token: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, join_token.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token the agent of `node` presents: the node's name and an HMAC of it under the
/// join token. Whoever holds the join token can make one for any name, as whoever holds a
/// Kubernetes bootstrap token can ask for any node's certificate.
pub fn node_token(join_token: &str, node: &str) -> String {
    let mac = hmac::sign(&key(join_token), node.as_bytes());
    format!("{PREFIX}{}_{node}", hex(mac.as_ref()))
}

/// Resolves node tokens to `system:node:<name>` in `system:nodes`.
pub struct NodeTokens {
    key: hmac::Key,
}

impl NodeTokens {
    /// Node tokens derived from `join_token`.
    pub fn new(join_token: &str) -> Self {
        NodeTokens {
            key: key(join_token),
        }
    }
}

impl Authenticator for NodeTokens {
    fn authenticate(&self, token: &str) -> Option<User> {
        let rest = token.strip_prefix(PREFIX)?;
        let (mac, node) = (
            rest.get(..MAC_LEN)?,
            rest.get(MAC_LEN..)?.strip_prefix('_')?,
        );
        let valid_name = !node.is_empty()
            && node.len() <= 253
            && node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_name {
            return None;
        }
        let mac: Vec<u8> = (0..MAC_LEN / 2)
            .map(|i| u8::from_str_radix(mac.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        // `verify` compares in constant time.
        hmac::verify(&self.key, node.as_bytes(), &mac).ok()?;
        Some(User {
            name: format!("{USER_PREFIX}{node}"),
            groups: vec![NODES.to_owned(), AUTHENTICATED.to_owned()],
        })
    }
}

/// What a pod may make its node read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Secret,
    ConfigMap,
    Claim,
}

impl Kind {
    fn of(resource: &str) -> Option<Kind> {
        match resource {
            "secrets" => Some(Kind::Secret),
            "configmaps" => Some(Kind::ConfigMap),
            "persistentvolumeclaims" => Some(Kind::Claim),
            _ => None,
        }
    }
}

/// A bound pod: its node and what it refers to.
struct Bound {
    node: String,
    references: Vec<(Kind, String)>,
}

/// Which pods are bound to which node and what they refer to; fed from a watch of pods.
#[derive(Default)]
pub struct NodeGraph {
    /// Keyed by (namespace, name).
    pods: HashMap<(String, String), Bound>,
    /// (node, kind, namespace, name) → how many of the node's pods refer to it.
    references: HashMap<(String, Kind, String, String), usize>,
}

impl NodeGraph {
    /// Records a pod as it now is (bound or not).
    pub fn upsert(&mut self, pod: &Pod) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.remove(&namespace, &name);
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        let references = references(pod);
        for (kind, target) in &references {
            *self
                .references
                .entry((node.clone(), *kind, namespace.clone(), target.clone()))
                .or_default() += 1;
        }
        self.pods
            .insert((namespace, name), Bound { node, references });
    }

    /// Forgets a pod.
    pub fn remove(&mut self, namespace: &str, name: &str) {
        let Some(old) = self.pods.remove(&(namespace.to_owned(), name.to_owned())) else {
            return;
        };
        for (kind, target) in old.references {
            let key = (old.node.clone(), kind, namespace.to_owned(), target);
            if let Some(count) = self.references.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.references.remove(&key);
                }
            }
        }
    }

    fn node_of(&self, namespace: &str, name: &str) -> Option<&str> {
        self.pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|b| b.node.as_str())
    }

    fn refers(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool {
        self.references.contains_key(&(
            node.to_owned(),
            kind,
            namespace.to_owned(),
            name.to_owned(),
        ))
    }
}

/// Every Secret, ConfigMap and claim a pod names: volumes (projected ones too),
/// environment, and image pull secrets.
fn references(pod: &Pod) -> Vec<(Kind, String)> {
    let mut found = Vec::new();
    let Some(spec) = &pod.spec else {
        return found;
    };
    for secret in spec.image_pull_secrets.iter().flatten() {
        found.push((Kind::Secret, secret.name.clone()));
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            found.push((Kind::Secret, name));
        }
        if let Some(c) = &volume.config_map {
            found.push((Kind::ConfigMap, c.name.clone()));
        }
        if let Some(c) = &volume.persistent_volume_claim {
            found.push((Kind::Claim, c.claim_name.clone()));
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(s) = &source.secret {
                found.push((Kind::Secret, s.name.clone()));
            }
            if let Some(c) = &source.config_map {
                found.push((Kind::ConfigMap, c.name.clone()));
            }
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for container in containers {
        for from in container.env_from.iter().flatten() {
            if let Some(s) = &from.secret_ref {
                found.push((Kind::Secret, s.name.clone()));
            }
            if let Some(c) = &from.config_map_ref {
                found.push((Kind::ConfigMap, c.name.clone()));
            }
        }
        for var in container.env.iter().flatten() {
            let Some(from) = &var.value_from else {
                continue;
            };
            if let Some(s) = &from.secret_key_ref {
                found.push((Kind::Secret, s.name.clone()));
            }
            if let Some(c) = &from.config_map_key_ref {
                found.push((Kind::ConfigMap, c.name.clone()));
            }
        }
    }
    found
}

/// The node a user is the agent of, if it is one.
pub fn node_of_user(user: &User) -> Option<&str> {
    let node = user.name.strip_prefix(USER_PREFIX)?;
    user.groups.iter().any(|g| g == NODES).then_some(node)
}

impl Authorizer for NodeGraph {
    fn authorize(&self, user: &User, attributes: &Attributes) -> Decision {
        let Some(node) = node_of_user(user) else {
            return Decision::NoOpinion;
        };
        let Target::Resource {
            group,
            resource,
            subresource,
            namespace,
            name,
        } = &attributes.target
        else {
            return Decision::NoOpinion;
        };
        if !group.is_empty() {
            return Decision::NoOpinion;
        }
        let verb = attributes.verb.as_str();
        if let Some(kind) = Kind::of(resource) {
            if verb != "get" || name.is_empty() {
                return Decision::Deny(format!("node '{node}' can only get individual {resource}"));
            }
            return if self.refers(node, kind, namespace, name) {
                Decision::Allow
            } else {
                Decision::Deny(format!(
                    "no relationship found between node '{node}' and this object"
                ))
            };
        }
        let writes = matches!(verb, "update" | "patch" | "delete");
        match resource.as_str() {
            "nodes" if writes && name != node => {
                Decision::Deny(format!("node '{node}' cannot modify node '{name}'"))
            }
            "pods" if writes && !(subresource.is_empty() || subresource == "status") => {
                Decision::NoOpinion
            }
            "pods" if writes && self.node_of(namespace, name) != Some(node) => {
                Decision::Deny(format!("node '{node}' can only modify pods bound to it"))
            }
            _ => Decision::NoOpinion,
        }
    }
}
