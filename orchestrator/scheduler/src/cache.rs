//! The scheduler's picture of the cluster and the decision made against it, without IO:
//! every node, and what the pods on it take, including pods *assumed* onto a node whose
//! binding has not come back yet, as kube-scheduler's assume cache holds them, so pods
//! scheduled back to back do not all land on the same idle node. A failed binding is
//! forgotten; a pod seen bound confirms its assumption.
//!
//! A decision filters nodes, starting where the last one stopped, until it has found
//! enough feasible ones (all of them below 100 nodes, upstream's adaptive share above),
//! scores those, and takes the best; ties go by a hash of the pod, in lieu of upstream's
//! random pick.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Node;

use crate::diagnosis::Diagnosis;
use crate::filter::{self, NodeInfo, PodInfo, PodRequests, Requested};
use crate::profile::Profile;
use crate::score;

/// Below this many nodes every node is filtered (`minFeasibleNodesToFind`).
const MIN_FEASIBLE: usize = 100;

/// What a decision came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind the pod to this node.
    Bind(String),
    /// No node fits; the message says why, as Kubernetes says it.
    Unschedulable(String),
}

/// One node name's place: the node, while it exists, and what pods bound to it take
/// (which outlives the node, so a node that comes back finds its pods counted).
#[derive(Debug, Default)]
struct Slot {
    node: Option<NodeInfo>,
    requested: Requested,
}

#[derive(Debug)]
struct Placed {
    slot: usize,
    requests: PodRequests,
    assumed: bool,
}

/// The nodes and the pods placed on them.
#[derive(Debug, Default)]
pub struct Cache {
    slots: Vec<Slot>,
    by_name: HashMap<String, usize>,
    /// Pods placed on a node, bound or assumed, by uid.
    pods: HashMap<String, Placed>,
    live: usize,
    next_start: usize,
}

/// How many feasible nodes a decision looks for among `all` (`numFeasibleNodesToFind`
/// with the adaptive percentage: 50 % less 1 % per 125 nodes, at least 5 %).
pub fn feasible_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE {
        return all;
    }
    let percent = 50usize.saturating_sub(all / 125).max(5);
    (all * percent / 100).max(MIN_FEASIBLE)
}

impl Cache {
    fn slot(&mut self, name: &str) -> usize {
        if let Some(&index) = self.by_name.get(name) {
            return index;
        }
        self.slots.push(Slot::default());
        let index = self.slots.len() - 1;
        self.by_name.insert(name.to_owned(), index);
        index
    }

    /// Adds or updates a node; true when what the filters and scores see of it changed
    /// (a new node, or new labels, taints, readiness, cordon or allocatable), which is
    /// what can make a parked pod schedulable. A heartbeat alone changes nothing.
    pub fn set_node(&mut self, node: &Node) -> bool {
        let info = NodeInfo::new(node);
        let index = self.slot(&info.name);
        let slot = &mut self.slots[index];
        match &slot.node {
            Some(old) if *old == info => false,
            Some(_) => {
                slot.node = Some(info);
                true
            }
            None => {
                slot.node = Some(info);
                self.live += 1;
                true
            }
        }
    }

    /// Removes a node; its pods stay counted under its name.
    pub fn remove_node(&mut self, name: &str) {
        if let Some(&index) = self.by_name.get(name)
            && self.slots[index].node.take().is_some()
        {
            self.live -= 1;
        }
    }

    /// The names of the nodes known.
    pub fn node_names(&self) -> Vec<String> {
        self.by_name
            .iter()
            .filter(|(_, index)| self.slots[**index].node.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// How many nodes are known.
    pub fn node_count(&self) -> usize {
        self.live
    }

    /// Counts a pod seen bound to `node`, confirming it if it was assumed.
    pub fn observe_bound(&mut self, uid: &str, node: &str, requests: PodRequests) {
        self.place(uid, node, requests, false);
    }

    /// Stops counting a pod (deleted, finished); true when it took anything.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(placed) = self.pods.remove(uid) else {
            return false;
        };
        self.slots[placed.slot].requested.subtract(&placed.requests);
        true
    }

    /// The uids of the pods counted as bound (not merely assumed).
    pub fn bound_pods(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, placed)| !placed.assumed)
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// Counts a pod on `node` before its binding is confirmed.
    pub fn assume(&mut self, uid: &str, node: &str, requests: PodRequests) {
        self.place(uid, node, requests, true);
    }

    fn place(&mut self, uid: &str, node: &str, requests: PodRequests, assumed: bool) {
        self.remove_pod(uid);
        let slot = self.slot(node);
        self.slots[slot].requested.add(&requests);
        self.pods.insert(
            uid.to_owned(),
            Placed {
                slot,
                requests,
                assumed,
            },
        );
    }

    /// Undoes an assumption whose binding failed; true when there was one.
    pub fn forget(&mut self, uid: &str) -> bool {
        if self.pods.get(uid).is_some_and(|p| p.assumed) {
            return self.remove_pod(uid);
        }
        false
    }

    /// What a node's pods take, for tests and diagnostics.
    pub fn requested(&self, node: &str) -> Option<&Requested> {
        self.by_name.get(node).map(|i| &self.slots[*i].requested)
    }

    /// Decides where `pod` goes under `profile`; `tie` breaks ties among the best nodes.
    pub fn decide(&mut self, pod: &PodInfo, profile: &Profile, tie: u64) -> Decision {
        let slots = self.slots.len();
        let wanted = feasible_to_find(self.live);
        let mut feasible = Vec::with_capacity(wanted.min(slots));
        let mut diagnosis = Diagnosis::default();
        let mut visited = 0;
        for step in 0..slots {
            if feasible.len() >= wanted {
                break;
            }
            visited = step + 1;
            let index = (self.next_start + step) % slots;
            let slot = &self.slots[index];
            let Some(node) = &slot.node else {
                continue;
            };
            match filter::filter(pod, node, &slot.requested) {
                Ok(()) => feasible.push(index),
                Err(reasons) => diagnosis.reject(reasons),
            }
        }
        if slots > 0 {
            self.next_start = (self.next_start + visited) % slots;
        }
        let best = match feasible.as_slice() {
            [] => return Decision::Unschedulable(diagnosis.message(self.live)),
            [only] => *only,
            _ => {
                let candidates: Vec<(&NodeInfo, &Requested)> = feasible
                    .iter()
                    .filter_map(|i| {
                        let slot = &self.slots[*i];
                        slot.node.as_ref().map(|n| (n, &slot.requested))
                    })
                    .collect();
                let scores = score::total(profile.strategy, profile.balance, pod, &candidates);
                let top = scores.iter().copied().max().unwrap_or(0);
                let tied: Vec<usize> = feasible
                    .iter()
                    .zip(&scores)
                    .filter(|(_, s)| **s == top)
                    .map(|(i, _)| *i)
                    .collect();
                let pick = usize::try_from(tie % tied.len() as u64).unwrap_or(0);
                tied[pick]
            }
        };
        let name = self.slots[best]
            .node
            .as_ref()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        Decision::Bind(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::NO_NODES;
    use crate::profile::PROFILES;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};

    fn node(name: &str, cpu: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap()
    }

    fn pod(cpu: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "c", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]}}))
        .unwrap()
    }

    fn place(cache: &mut Cache, profile: usize, cpu: &str, uid: &str) -> Decision {
        let p = pod(cpu);
        let info = PodInfo::new(&p);
        let decision = cache.decide(&info, &PROFILES[profile], 0);
        if let Decision::Bind(node) = &decision {
            cache.assume(uid, node, PodRequests::new(&p));
        }
        decision
    }

    #[test]
    fn feasible_share_shrinks_with_the_cluster() {
        for (all, wanted) in [
            (0, 0),
            (3, 3),
            (99, 99),
            (100, 100),
            (1000, 420),
            (5000, 500),
            (20000, 1000),
        ] {
            assert_eq!(feasible_to_find(all), wanted, "{all}");
        }
    }

    #[test]
    fn no_nodes_is_said_so() {
        let mut cache = Cache::default();
        assert_eq!(
            place(&mut cache, 0, "1", "a"),
            Decision::Unschedulable(NO_NODES.to_owned())
        );
    }

    #[test]
    fn least_allocated_spreads_and_assumed_pods_count() {
        let mut cache = Cache::default();
        for name in ["n1", "n2", "n3"] {
            assert!(cache.set_node(&node(name, "4")));
        }
        let mut placed: Vec<String> = (0..3)
            .map(|i| match place(&mut cache, 0, "1", &format!("p{i}")) {
                Decision::Bind(node) => node,
                other => panic!("{other:?}"),
            })
            .collect();
        placed.sort();
        assert_eq!(placed, ["n1", "n2", "n3"]);
    }

    #[test]
    fn most_allocated_packs() {
        let mut cache = Cache::default();
        for name in ["n1", "n2", "n3"] {
            cache.set_node(&node(name, "4"));
        }
        let first = place(&mut cache, 1, "1", "p0");
        for i in 1..4 {
            assert_eq!(place(&mut cache, 1, "1", &format!("p{i}")), first);
        }
        // The first node is full; the next goes elsewhere, and then packs there.
        let fifth = place(&mut cache, 1, "1", "p4");
        assert_ne!(fifth, first);
        assert_eq!(place(&mut cache, 1, "1", "p5"), fifth);
    }

    #[test]
    fn forgetting_a_failed_binding_frees_its_node() {
        let mut cache = Cache::default();
        cache.set_node(&node("n1", "1"));
        assert_eq!(place(&mut cache, 0, "1", "a"), Decision::Bind("n1".into()));
        assert_eq!(
            place(&mut cache, 0, "1", "b"),
            Decision::Unschedulable("0/1 nodes are available: 1 Insufficient cpu.".into())
        );
        assert!(cache.forget("a"));
        assert!(!cache.forget("a"));
        assert_eq!(place(&mut cache, 0, "1", "b"), Decision::Bind("n1".into()));
        // A confirmed pod is not forgotten, and is counted once.
        cache.observe_bound("b", "n1", PodRequests::new(&pod("1")));
        assert!(!cache.forget("b"));
        assert_eq!(cache.requested("n1").unwrap().actual.milli_cpu, 1000);
        assert!(cache.remove_pod("b"));
        assert_eq!(cache.requested("n1").unwrap().actual.milli_cpu, 0);
    }

    #[test]
    fn only_scheduling_changes_of_a_node_count_as_changes() {
        let mut cache = Cache::default();
        let mut n: Value = serde_json::to_value(node("n1", "1")).unwrap();
        assert!(cache.set_node(&serde_json::from_value(n.clone()).unwrap()));
        n["status"]["conditions"][0]["lastHeartbeatTime"] = json!("2026-01-01T00:00:00Z");
        assert!(!cache.set_node(&serde_json::from_value(n.clone()).unwrap()));
        n["metadata"]["labels"] = json!({"zone": "a"});
        assert!(cache.set_node(&serde_json::from_value(n.clone()).unwrap()));
        cache.remove_node("n1");
        assert_eq!(cache.node_count(), 0);
        assert!(cache.set_node(&serde_json::from_value(n).unwrap()));
        assert_eq!(cache.node_names(), ["n1"]);
    }

    #[test]
    fn pods_on_a_removed_node_count_when_it_returns() {
        let mut cache = Cache::default();
        cache.observe_bound("a", "n1", PodRequests::new(&pod("1")));
        cache.set_node(&node("n1", "1"));
        assert_eq!(
            place(&mut cache, 0, "1", "b"),
            Decision::Unschedulable("0/1 nodes are available: 1 Insufficient cpu.".into())
        );
    }

    #[test]
    fn large_clusters_stop_filtering_once_enough_nodes_fit() {
        let mut cache = Cache::default();
        for i in 0..1000 {
            cache.set_node(&node(&format!("n{i:04}"), "4"));
        }
        // Successive decisions start where the last stopped, so they see different nodes.
        let first = place(&mut cache, 0, "100m", "a");
        let second = place(&mut cache, 0, "100m", "b");
        assert_ne!(first, second);
    }
}
