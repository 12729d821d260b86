//! The filters: whether a pod may run on a node at all, as kube-scheduler's default filter
//! plugins decide it, in their order (NodeUnschedulable, TaintToleration, NodeAffinity,
//! NodeResourcesFit), each rejection worded as the plugin words it. A node is judged from a
//! [`NodeInfo`] (what it is) and a [`Requested`] tally (what its pods, bound or assumed,
//! already take); a pod from its [`PodInfo`], computed once per scheduling attempt.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorTerm, Pod, Taint, Toleration};
use slipway_model::labels::{Operator, Requirement};

use crate::resources::{self, Resources};

/// The taint a node whose Ready condition is False carries while it is not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint a node whose Ready condition is Unknown carries while it is unreachable.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint that stands for `spec.unschedulable`: tolerating it tolerates a cordon.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// NodeUnschedulable's reason.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// NodeAffinity's reason, for the node selector and required node affinity alike.
pub const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";

/// What the scheduler needs to know about a node, read once per change of the node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node's labels.
    pub labels: BTreeMap<String, String>,
    /// Whether the node is cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// The node's taints, plus the condition taint its Ready condition implies.
    pub taints: Vec<Taint>,
    /// What the node offers pods.
    pub allocatable: Resources,
}

impl NodeInfo {
    /// Reads a node. A node whose Ready condition is not True is treated as carrying the
    /// NoSchedule taint Kubernetes' node lifecycle controller gives it (not-ready for False
    /// or no condition yet, unreachable for Unknown), unless it already carries that
    /// NoSchedule taint, so it is filtered with the same message and tolerated by the same
    /// tolerations. The NoExecute taint of the same key does not stand in for it: a pod
    /// tolerating its eviction for a while must still not be placed there.
    pub fn new(node: &Node) -> Self {
        let spec = node.spec.as_ref();
        let mut taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        let implied = match ready {
            Some("True") => None,
            Some("Unknown") => Some(UNREACHABLE),
            _ => Some(NOT_READY),
        };
        if let Some(key) = implied
            && !taints
                .iter()
                .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.to_owned(),
                effect: "NoSchedule".to_owned(),
                ..Taint::default()
            });
        }
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            taints,
            allocatable: resources::allocatable(node),
        }
    }
}

/// What a node's pods (bound or assumed) already take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    /// Their requests, as filters count them; `pods` is how many there are.
    pub actual: Resources,
    /// Their CPU with defaults for containers that request none, as scores count it.
    pub scored_milli_cpu: i64,
    /// Their memory with defaults for containers that request none, as scores count it.
    pub scored_memory: i64,
}

impl Requested {
    /// Counts a pod in.
    pub fn add(&mut self, pod: &PodRequests) {
        self.actual.add(&pod.actual);
        self.scored_milli_cpu = self.scored_milli_cpu.saturating_add(pod.scored_milli_cpu);
        self.scored_memory = self.scored_memory.saturating_add(pod.scored_memory);
    }

    /// Counts a pod out.
    pub fn subtract(&mut self, pod: &PodRequests) {
        self.actual.subtract(&pod.actual);
        self.scored_milli_cpu = self.scored_milli_cpu.saturating_sub(pod.scored_milli_cpu);
        self.scored_memory = self.scored_memory.saturating_sub(pod.scored_memory);
    }
}

/// What one pod takes from the node it runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// Its requests, `pods` = 1.
    pub actual: Resources,
    /// Its CPU with defaults for containers that request none.
    pub scored_milli_cpu: i64,
    /// Its memory with defaults for containers that request none.
    pub scored_memory: i64,
}

impl PodRequests {
    /// Reads a pod's requests.
    pub fn new(pod: &Pod) -> Self {
        let scored = resources::requests(pod, true);
        PodRequests {
            actual: resources::requests(pod, false),
            scored_milli_cpu: scored.milli_cpu,
            scored_memory: scored.memory,
        }
    }
}

/// One node selector term: all of its expressions on labels and its fields must hold.
#[derive(Debug, Clone)]
pub struct Term {
    labels: Vec<Requirement>,
    names: Vec<(bool, Vec<String>)>,
    /// A term with an expression Kubernetes would refuse, or none at all, matches nothing.
    valid: bool,
}

impl Term {
    fn new(term: &NodeSelectorTerm) -> Self {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        let mut valid = !(expressions.is_empty() && fields.is_empty());
        let mut labels = Vec::with_capacity(expressions.len());
        for e in expressions {
            let operator = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                "Gt" => Operator::GreaterThan,
                "Lt" => Operator::LessThan,
                _ => {
                    valid = false;
                    continue;
                }
            };
            match Requirement::new(&e.key, operator, e.values.clone().unwrap_or_default()) {
                Ok(requirement) => labels.push(requirement),
                Err(_) => valid = false,
            }
        }
        // Kubernetes selects by one field only, `metadata.name`, with In or NotIn.
        let mut names = Vec::with_capacity(fields.len());
        for f in fields {
            let values = f.values.clone().unwrap_or_default();
            match (f.key.as_str(), f.operator.as_str()) {
                ("metadata.name", "In") if values.len() == 1 => names.push((true, values)),
                ("metadata.name", "NotIn") if values.len() == 1 => names.push((false, values)),
                _ => valid = false,
            }
        }
        Term {
            labels,
            names,
            valid,
        }
    }

    fn matches(&self, node: &NodeInfo) -> bool {
        self.valid
            && self.labels.iter().all(|r| r.matches(&node.labels))
            && self
                .names
                .iter()
                .all(|(is_in, values)| values.contains(&node.name) == *is_in)
    }
}

/// What the scheduler needs to know about a pod, read once per scheduling attempt.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// What the pod takes.
    pub requests: PodRequests,
    node_selector: BTreeMap<String, String>,
    /// Required node affinity: one of these terms must match; `None` when there is none.
    required: Option<Vec<Term>>,
    /// Preferred node affinity: the weights of the terms a node matches add up.
    preferred: Vec<(i64, Term)>,
    tolerations: Vec<Toleration>,
}

impl PodInfo {
    /// Reads a pod.
    pub fn new(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref());
        let required = affinity
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|r| r.node_selector_terms.iter().map(Term::new).collect());
        // Zero weights and empty preferences carry no preference, as upstream skips them.
        let preferred = affinity
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|terms| {
                terms
                    .iter()
                    .filter(|t| t.weight != 0)
                    .map(|t| (i64::from(t.weight), Term::new(&t.preference)))
                    .filter(|(_, term)| term.valid)
                    .collect()
            })
            .unwrap_or_default();
        PodInfo {
            requests: PodRequests::new(pod),
            node_selector: spec
                .and_then(|s| s.node_selector.clone())
                .unwrap_or_default(),
            required,
            preferred,
            tolerations: spec.and_then(|s| s.tolerations.clone()).unwrap_or_default(),
        }
    }

    /// The sum of the weights of the preferred terms `node` matches.
    pub fn preferred_weight(&self, node: &NodeInfo) -> i64 {
        self.preferred
            .iter()
            .filter(|(_, term)| term.matches(node))
            .map(|(weight, _)| weight)
            .sum()
    }

    /// How many of `node`'s PreferNoSchedule taints the pod does not tolerate.
    pub fn intolerable_preferences(&self, node: &NodeInfo) -> i64 {
        let tolerations: Vec<&Toleration> = self
            .tolerations
            .iter()
            .filter(|t| matches!(t.effect.as_deref(), None | Some("" | "PreferNoSchedule")))
            .collect();
        let count = node
            .taints
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
            .count();
        i64::try_from(count).unwrap_or(i64::MAX)
    }
}

/// Whether `toleration` tolerates `taint`, as `Toleration.ToleratesTaint`: an empty effect
/// tolerates every effect, an empty key with `Exists` every key, `Exists` every value and
/// `Equal` (or no operator) the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref() {
        Some("Exists") => true,
        None | Some("" | "Equal") => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        Some(_) => false,
    }
}

/// Runs the filters in kube-scheduler's order and stops at the first that rejects the
/// node, as the framework does. `Err` holds that filter's reasons (resources may give
/// several), worded as upstream words them.
pub fn filter(pod: &PodInfo, node: &NodeInfo, requested: &Requested) -> Result<(), Vec<String>> {
    if node.unschedulable {
        let cordon = Taint {
            key: UNSCHEDULABLE.to_owned(),
            effect: "NoSchedule".to_owned(),
            ..Taint::default()
        };
        if !pod.tolerations.iter().any(|t| tolerates(t, &cordon)) {
            return Err(vec![REASON_UNSCHEDULABLE.to_owned()]);
        }
    }
    if let Some(taint) = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|taint| !pod.tolerations.iter().any(|t| tolerates(t, taint)))
    {
        return Err(vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        )]);
    }
    let selected = pod
        .node_selector
        .iter()
        .all(|(key, value)| node.labels.get(key) == Some(value));
    let affine = pod
        .required
        .as_ref()
        .is_none_or(|terms| terms.iter().any(|t| t.matches(node)));
    if !selected || !affine {
        return Err(vec![REASON_AFFINITY.to_owned()]);
    }
    let reasons = insufficient(&pod.requests.actual, &node.allocatable, &requested.actual);
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// NodeResourcesFit: the resources the node lacks for the pod, in upstream's order (pods,
/// cpu, memory, ephemeral storage, then scalars by name).
fn insufficient(wants: &Resources, offered: &Resources, used: &Resources) -> Vec<String> {
    let mut reasons = Vec::new();
    if used.pods.saturating_add(1) > offered.pods {
        reasons.push("Too many pods".to_owned());
    }
    let short = |want: i64, offer: i64, use_: i64| want > 0 && want > offer.saturating_sub(use_);
    if short(wants.milli_cpu, offered.milli_cpu, used.milli_cpu) {
        reasons.push("Insufficient cpu".to_owned());
    }
    if short(wants.memory, offered.memory, used.memory) {
        reasons.push("Insufficient memory".to_owned());
    }
    if short(
        wants.ephemeral_storage,
        offered.ephemeral_storage,
        used.ephemeral_storage,
    ) {
        reasons.push("Insufficient ephemeral-storage".to_owned());
    }
    for (name, want) in &wants.scalar {
        if short(*want, offered.scalar(name), used.scalar(name)) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{node, pod};
    use serde_json::{Value, json};

    fn check(pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        filter(pod, node, &Requested::default())
    }

    fn requesting(resources: Value) -> Value {
        json!({"containers": [{"name": "c", "image": "c", "resources": {"requests": resources}}]})
    }

    #[test]
    fn resources_fit_or_name_what_is_short() {
        let n = node(json!({"metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "2",
                                       "ephemeral-storage": "10Gi", "nvidia.com/gpu": "1"}}}));
        let used = Requested {
            actual: Resources {
                milli_cpu: 1500,
                memory: 512 << 20,
                pods: 1,
                ..Resources::default()
            },
            ..Requested::default()
        };
        let cases = [
            (json!({"cpu": "500m", "memory": "512Mi"}), vec![]),
            (json!({"cpu": "501m"}), vec!["Insufficient cpu"]),
            (
                json!({"cpu": "1", "memory": "1Gi"}),
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            (
                json!({"ephemeral-storage": "11Gi"}),
                vec!["Insufficient ephemeral-storage"],
            ),
            (json!({"nvidia.com/gpu": "1"}), vec![]),
            (
                json!({"nvidia.com/gpu": "2"}),
                vec!["Insufficient nvidia.com/gpu"],
            ),
            (
                json!({"example.com/fpga": "1"}),
                vec!["Insufficient example.com/fpga"],
            ),
        ];
        for (wants, reasons) in cases {
            let p = pod(requesting(wants.clone()));
            let expected: Result<(), Vec<String>> = if reasons.is_empty() {
                Ok(())
            } else {
                Err(reasons.iter().map(|r| (*r).to_owned()).collect())
            };
            assert_eq!(filter(&p, &n, &used), expected, "{wants}");
        }
        let full = Requested {
            actual: Resources {
                pods: 2,
                ..Resources::default()
            },
            ..Requested::default()
        };
        assert_eq!(
            filter(&pod(json!({})), &n, &full),
            Err(vec!["Too many pods".to_owned()])
        );
    }

    #[test]
    fn taints_need_tolerations() {
        let tainted = node(json!({"metadata": {"name": "n"},
            "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}));
        let untolerated = Err(vec![
            "node(s) had untolerated taint {dedicated: gpu}".to_owned(),
        ]);
        let cases = [
            (json!([]), false),
            (json!([{"key": "dedicated", "value": "gpu"}]), true),
            (
                json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
                true,
            ),
            (json!([{"key": "dedicated", "value": "cpu"}]), false),
            (json!([{"key": "dedicated", "operator": "Exists"}]), true),
            (json!([{"operator": "Exists"}]), true),
            (
                json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
                false,
            ),
        ];
        for (tolerations, fits) in cases {
            let got = check(&pod(json!({"tolerations": tolerations})), &tainted);
            assert_eq!(got.is_ok(), fits, "{tolerations}");
            if !fits {
                assert_eq!(got, untolerated);
            }
        }
        let soft = node(json!({"metadata": {"name": "n"},
            "spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}));
        assert_eq!(check(&pod(json!({})), &soft), Ok(()));
        assert_eq!(pod(json!({})).intolerable_preferences(&soft), 1);
        assert_eq!(
            pod(json!({"tolerations": [{"key": "k", "operator": "Exists"}]}))
                .intolerable_preferences(&soft),
            0
        );
    }

    #[test]
    fn nodes_not_ready_carry_their_condition_taint() {
        let cases = [
            (
                json!([{"type": "Ready", "status": "False"}]),
                Some(NOT_READY),
            ),
            (
                json!([{"type": "Ready", "status": "Unknown"}]),
                Some(UNREACHABLE),
            ),
            (
                json!([{"type": "MemoryPressure", "status": "False"}]),
                Some(NOT_READY),
            ),
            (json!([{"type": "Ready", "status": "True"}]), None),
        ];
        for (conditions, taint) in cases {
            let n = node(json!({"metadata": {"name": "n"}, "status": {"conditions": conditions}}));
            let expected = match taint {
                Some(key) => Err(vec![format!("node(s) had untolerated taint {{{key}: }}")]),
                None => Ok(()),
            };
            assert_eq!(check(&pod(json!({})), &n), expected, "{conditions}");
        }
        let not_ready = node(json!({"metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        let tolerant = pod(json!({"tolerations": [{"key": NOT_READY, "operator": "Exists"}]}));
        assert_eq!(check(&tolerant, &not_ready), Ok(()));
        // A node already given the NoSchedule taint is not tainted twice.
        let unreachable = node(json!({"metadata": {"name": "n"},
            "spec": {"taints": [{"key": UNREACHABLE, "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}));
        assert_eq!(unreachable.taints.len(), 1);
        // The NoExecute taint does not stand in for it: a pod tolerating eviction for a
        // while is still kept off the node.
        let evicting = node(json!({"metadata": {"name": "n"},
            "spec": {"taints": [{"key": UNREACHABLE, "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}));
        let lingering = pod(
            json!({"tolerations": [{"key": UNREACHABLE, "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 0}]}),
        );
        assert_eq!(
            check(&lingering, &evicting),
            Err(vec![format!(
                "node(s) had untolerated taint {{{UNREACHABLE}: }}"
            )])
        );
    }

    #[test]
    fn cordoned_nodes_take_only_pods_tolerating_the_cordon() {
        let cordoned = node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}));
        assert_eq!(
            check(&pod(json!({})), &cordoned),
            Err(vec![REASON_UNSCHEDULABLE.to_owned()])
        );
        let tolerant = pod(
            json!({"tolerations": [{"key": UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert_eq!(check(&tolerant, &cordoned), Ok(()));
    }

    #[test]
    fn node_selector_and_required_affinity_select_by_labels() {
        let n = node(json!({"metadata": {"name": "n1", "labels": {"zone": "a", "gen": "3"}}}));
        let cases = [
            (json!({"nodeSelector": {"zone": "a"}}), true),
            (json!({"nodeSelector": {"zone": "b"}}), false),
            (json!({"nodeSelector": {"disk": "ssd"}}), false),
            (
                affinity(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]),
                ),
                true,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]),
                ),
                false,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["2"]}]}]),
                ),
                true,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["2"]}]}]),
                ),
                false,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]),
                ),
                true,
            ),
            (
                affinity(json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}])),
                false,
            ),
            // Terms are ORed, expressions within a term ANDed.
            (
                affinity(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                                      {"key": "gen", "operator": "In", "values": ["3"]}]}])),
                true,
            ),
            (
                affinity(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                ),
                true,
            ),
            (
                affinity(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]),
                ),
                false,
            ),
            // An empty term matches nothing.
            (affinity(json!([{}])), false),
            (
                affinity(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "Bogus", "values": ["a"]}]}]),
                ),
                false,
            ),
        ];
        for (spec, fits) in cases {
            let got = check(&pod(spec.clone()), &n);
            let expected = if fits {
                Ok(())
            } else {
                Err(vec![REASON_AFFINITY.to_owned()])
            };
            assert_eq!(got, expected, "{spec}");
        }
    }

    fn affinity(terms: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn filters_run_in_order_and_stop_at_the_first_rejection() {
        let n = node(json!({"metadata": {"name": "n"},
            "spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "1", "pods": "10"}}}));
        let p = pod(json!({"nodeSelector": {"x": "y"},
            "containers": [{"name": "c", "image": "c", "resources": {"requests": {"cpu": "2"}}}]}));
        assert_eq!(check(&p, &n), Err(vec![REASON_UNSCHEDULABLE.to_owned()]));
    }

    #[test]
    fn preferred_weights_add_up_over_matching_terms() {
        let n = node(json!({"metadata": {"name": "n", "labels": {"zone": "a", "disk": "ssd"}}}));
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
            {"weight": 7, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}},
            {"weight": 50, "preference": {}}]}}}),
        );
        assert_eq!(p.preferred_weight(&n), 15);
    }
}
