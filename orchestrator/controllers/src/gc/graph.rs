//! The garbage collector's view of the cluster: every object's owners and dependents by
//! uid, and what must happen to one object given that view. No IO, so every cascade rule is
//! tested on plain data.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The `orphan` finalizer: dependents lose their reference to the owner first.
pub const ORPHAN: &str = "orphan";
/// The `foregroundDeletion` finalizer: blocking dependents are deleted first.
pub const FOREGROUND: &str = "foregroundDeletion";

/// What the collector knows of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Index of its kind in the collector's list of served kinds.
    pub kind: usize,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// Its resourceVersion, the precondition of every change the collector makes.
    pub resource_version: String,
    /// `metadata.ownerReferences`.
    pub owners: Vec<OwnerReference>,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub terminating: bool,
}

/// One change the collector makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Drop `owner` from the dependent's ownerReferences (orphaning it).
    Unown { dependent: String, owner: String },
    /// Delete the object, its own dependents in the foreground or in the background.
    Delete { uid: String, foreground: bool },
    /// Remove a collector finalizer: the owner's dependents are dealt with.
    Release {
        uid: String,
        finalizer: &'static str,
    },
    /// The dependent names owners the graph does not hold: ask the API whether they are
    /// gone before acting, as the graph may only be behind.
    Verify {
        dependent: String,
        missing: Vec<OwnerReference>,
        all_missing: bool,
    },
}

/// Owners and dependents by uid.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// The object with `uid`, if the graph holds it.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// Uids of the objects of `kind`.
    pub fn uids_of_kind(&self, kind: usize) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.kind == kind)
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// Records an object as added or changed; returns the uids to reconcile: it, and its
    /// owners before and after (whose dependents changed).
    pub fn upsert(&mut self, uid: &str, node: Node) -> Vec<String> {
        let mut touched: Vec<String> = vec![uid.to_owned()];
        if let Some(old) = self.nodes.get(uid) {
            for owner in &old.owners {
                touched.push(owner.uid.clone());
            }
        }
        self.unlink(uid);
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.to_owned());
            touched.push(owner.uid.clone());
        }
        self.nodes.insert(uid.to_owned(), node);
        touched.sort();
        touched.dedup();
        touched
    }

    /// Forgets a deleted object; returns the uids to reconcile: its owners (a foreground
    /// owner may now be free) and its dependents (now perhaps without an owner).
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let mut touched = Vec::new();
        if let Some(old) = self.nodes.get(uid) {
            touched.extend(old.owners.iter().map(|o| o.uid.clone()));
        }
        self.unlink(uid);
        self.nodes.remove(uid);
        if let Some(deps) = self.dependents.get(uid) {
            touched.extend(deps.iter().cloned());
        }
        touched.sort();
        touched.dedup();
        touched
    }

    fn unlink(&mut self, uid: &str) {
        if let Some(old) = self.nodes.get(uid) {
            for owner in &old.owners {
                if let Some(set) = self.dependents.get_mut(&owner.uid) {
                    set.remove(uid);
                    if set.is_empty() {
                        self.dependents.remove(&owner.uid);
                    }
                }
            }
        }
    }

    /// The dependents the graph holds for `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<String> {
        let mut deps: Vec<String> = self
            .dependents
            .get(uid)
            .map(|d| {
                d.iter()
                    .filter(|d| self.nodes.contains_key(*d))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        deps.sort();
        deps
    }

    /// Whether the graph holds a live owner for `reference` of `dependent`: the uid is
    /// known and lives where an owner may (the dependent's namespace, or cluster scope).
    fn owner_present(&self, dependent: &Node, reference: &OwnerReference) -> bool {
        self.nodes.get(&reference.uid).is_some_and(|owner| {
            owner.namespace.is_none() || owner.namespace == dependent.namespace
        })
    }

    /// What must happen to the object `uid` now, as Kubernetes' garbage collector decides:
    /// - an owner being deleted with `orphan` loses its dependents' references, then the
    ///   finalizer;
    /// - an owner being deleted with `foregroundDeletion` has its dependents deleted (in the
    ///   foreground too) and keeps the finalizer while a dependent with
    ///   `blockOwnerDeletion` exists;
    /// - a dependent whose owners are all gone is deleted; one that lost only some of them
    ///   drops those references. Absence is verified against the API before either.
    pub fn plan(&self, uid: &str) -> Vec<Step> {
        let Some(node) = self.nodes.get(uid) else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        if node.terminating {
            let dependents = self.dependents_of(uid);
            if node.finalizers.iter().any(|f| f == ORPHAN) {
                if dependents.is_empty() {
                    steps.push(Step::Release {
                        uid: uid.to_owned(),
                        finalizer: ORPHAN,
                    });
                } else {
                    steps.extend(dependents.into_iter().map(|d| Step::Unown {
                        dependent: d,
                        owner: uid.to_owned(),
                    }));
                }
            } else if node.finalizers.iter().any(|f| f == FOREGROUND) {
                let mut blocking = false;
                for d in &dependents {
                    let dep = &self.nodes[d];
                    if !dep.terminating {
                        steps.push(Step::Delete {
                            uid: d.clone(),
                            foreground: true,
                        });
                    }
                    blocking |= dep
                        .owners
                        .iter()
                        .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
                }
                if !blocking {
                    steps.push(Step::Release {
                        uid: uid.to_owned(),
                        finalizer: FOREGROUND,
                    });
                }
            }
            return steps;
        }
        let missing: Vec<OwnerReference> = node
            .owners
            .iter()
            .filter(|o| !self.owner_present(node, o))
            .cloned()
            .collect();
        if !missing.is_empty() {
            steps.push(Step::Verify {
                dependent: uid.to_owned(),
                all_missing: missing.len() == node.owners.len(),
                missing,
            });
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("owner-{uid}"),
            uid: uid.into(),
            controller: None,
            block_owner_deletion: block.then_some(true),
        }
    }

    fn node(owners: Vec<OwnerReference>, finalizers: &[&str], terminating: bool) -> Node {
        Node {
            kind: 0,
            namespace: Some("default".into()),
            name: "n".into(),
            resource_version: "1".into(),
            owners,
            finalizers: finalizers.iter().map(|f| (*f).to_owned()).collect(),
            terminating,
        }
    }

    #[test]
    fn events_touch_owners_and_dependents() {
        let mut graph = Graph::default();
        assert_eq!(graph.upsert("o", node(vec![], &[], false)), ["o"]);
        assert_eq!(
            graph.upsert("d", node(vec![reference("o", false)], &[], false)),
            ["d", "o"]
        );
        assert_eq!(graph.dependents_of("o"), ["d"]);
        // Re-owned elsewhere: both the old and the new owner hear of it.
        assert_eq!(
            graph.upsert("d", node(vec![reference("p", false)], &[], false)),
            ["d", "o", "p"]
        );
        assert!(graph.dependents_of("o").is_empty());
        assert_eq!(graph.remove("p"), ["d"]);
        assert_eq!(graph.remove("d"), ["p"]);
    }

    #[test]
    fn a_dependent_without_owners_is_verified_then_deleted() {
        let mut graph = Graph::default();
        graph.upsert("o", node(vec![], &[], false));
        graph.upsert(
            "d",
            node(
                vec![reference("o", false), reference("gone", false)],
                &[],
                false,
            ),
        );
        assert_eq!(
            graph.plan("d"),
            [Step::Verify {
                dependent: "d".into(),
                missing: vec![reference("gone", false)],
                all_missing: false
            }]
        );
        graph.remove("o");
        assert!(matches!(
            &graph.plan("d")[0],
            Step::Verify {
                all_missing: true,
                ..
            }
        ));
        // A dependent already being deleted is left to finish.
        graph.upsert("d", node(vec![reference("gone", false)], &[], true));
        assert!(graph.plan("d").is_empty());
    }

    #[test]
    fn owners_in_another_namespace_do_not_count() {
        let mut graph = Graph::default();
        let mut elsewhere = node(vec![], &[], false);
        elsewhere.namespace = Some("other".into());
        graph.upsert("o", elsewhere);
        graph.upsert("d", node(vec![reference("o", false)], &[], false));
        assert!(matches!(
            &graph.plan("d")[0],
            Step::Verify {
                all_missing: true,
                ..
            }
        ));
        let mut cluster = node(vec![], &[], false);
        cluster.namespace = None;
        graph.upsert("o", cluster);
        assert!(graph.plan("d").is_empty());
    }

    #[test]
    fn orphan_unowns_then_releases() {
        let mut graph = Graph::default();
        graph.upsert("o", node(vec![], &[ORPHAN], true));
        graph.upsert("d", node(vec![reference("o", true)], &[], false));
        assert_eq!(
            graph.plan("o"),
            [Step::Unown {
                dependent: "d".into(),
                owner: "o".into()
            }]
        );
        graph.upsert("d", node(vec![], &[], false));
        assert_eq!(
            graph.plan("o"),
            [Step::Release {
                uid: "o".into(),
                finalizer: ORPHAN
            }]
        );
    }

    #[test]
    fn foreground_deletes_dependents_and_waits_only_for_blocking_ones() {
        let mut graph = Graph::default();
        graph.upsert("o", node(vec![], &[FOREGROUND], true));
        graph.upsert("blocking", node(vec![reference("o", true)], &[], false));
        graph.upsert("free", node(vec![reference("o", false)], &[], false));
        assert_eq!(
            graph.plan("o"),
            [
                Step::Delete {
                    uid: "blocking".into(),
                    foreground: true
                },
                Step::Delete {
                    uid: "free".into(),
                    foreground: true
                },
            ]
        );
        graph.upsert("blocking", node(vec![reference("o", true)], &["x"], true));
        assert_eq!(
            graph.plan("o"),
            [Step::Delete {
                uid: "free".into(),
                foreground: true
            }],
            "still blocked by a terminating dependent"
        );
        graph.remove("blocking");
        assert_eq!(
            graph.plan("o"),
            [
                Step::Delete {
                    uid: "free".into(),
                    foreground: true
                },
                Step::Release {
                    uid: "o".into(),
                    finalizer: FOREGROUND
                },
            ]
        );
    }
}
