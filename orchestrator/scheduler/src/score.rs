//! The scores: how good each feasible node is for a pod, 0–100 per plugin as
//! kube-scheduler's score plugins compute them (NodeResourcesFit with LeastAllocated or
//! MostAllocated, NodeResourcesBalancedAllocation, NodeAffinity's preferred terms,
//! TaintToleration's PreferNoSchedule count), summed with upstream's default plugin weights.

use crate::filter::{NodeInfo, PodInfo, Requested};

/// The highest score a plugin gives (`framework.MaxNodeScore`).
pub const MAX: i64 = 100;

/// Weights of the plugins in the sum, kube-scheduler's defaults.
const FIT_WEIGHT: i64 = 1;
const BALANCED_WEIGHT: i64 = 1;
const AFFINITY_WEIGHT: i64 = 2;
const TAINT_WEIGHT: i64 = 3;

/// How NodeResourcesFit scores the resources left on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Favour nodes with the most left: spreads pods (the default).
    LeastAllocated,
    /// Favour nodes with the least left: packs pods onto few nodes.
    MostAllocated,
}

/// LeastAllocated for one resource: the share left once the pod is placed.
pub fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX / capacity
}

/// MostAllocated for one resource: the share taken once the pod is placed (pods counted
/// with default requests may overshoot; that counts as full).
pub fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 {
        return 0;
    }
    requested.min(capacity) * MAX / capacity
}

/// NodeResourcesFit's score: `strategy` over CPU and memory, weight 1 each, counting
/// containers without requests at the defaults. Resources the node has none of are left
/// out.
pub fn fit(strategy: Strategy, pod: &PodInfo, node: &NodeInfo, requested: &Requested) -> i64 {
    let pairs = [
        (
            requested
                .scored_milli_cpu
                .saturating_add(pod.requests.scored_milli_cpu),
            node.allocatable.milli_cpu,
        ),
        (
            requested
                .scored_memory
                .saturating_add(pod.requests.scored_memory),
            node.allocatable.memory,
        ),
    ];
    let (mut score, mut weights) = (0, 0);
    for (requested, capacity) in pairs {
        if capacity == 0 {
            continue;
        }
        score += match strategy {
            Strategy::LeastAllocated => least_requested(requested, capacity),
            Strategy::MostAllocated => most_requested(requested, capacity),
        };
        weights += 1;
    }
    if weights == 0 { 0 } else { score / weights }
}

/// NodeResourcesBalancedAllocation's score: 100 × (1 − the standard deviation of the CPU
/// and memory fractions the node would have taken), so nodes whose resources are used
/// evenly win. `None` for a pod that requests neither, as upstream skips those (else every
/// best-effort pod would pile onto one node).
pub fn balanced(pod: &PodInfo, node: &NodeInfo, requested: &Requested) -> Option<i64> {
    let wants = &pod.requests.actual;
    if wants.milli_cpu == 0 && wants.memory == 0 {
        return None;
    }
    let used = &requested.actual;
    let fraction = |requested: i64, capacity: i64| {
        (capacity != 0).then(|| (requested as f64 / capacity as f64).min(1.0))
    };
    let cpu = fraction(
        used.milli_cpu.saturating_add(wants.milli_cpu),
        node.allocatable.milli_cpu,
    );
    let memory = fraction(
        used.memory.saturating_add(wants.memory),
        node.allocatable.memory,
    );
    // With two resources the standard deviation is half their difference; with one or
    // none there is nothing to balance.
    let deviation = match (cpu, memory) {
        (Some(a), Some(b)) => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    Some(((1.0 - deviation) * MAX as f64) as i64)
}

/// Scales raw scores to 0–100 by the largest (`DefaultNormalizeScore`); `reverse` turns
/// them around, so fewer is better. All zero stays zero, or all 100 when reversed.
pub fn normalize(scores: &mut [i64], reverse: bool) {
    let top = scores.iter().copied().max().unwrap_or(0);
    for score in scores.iter_mut() {
        if top == 0 {
            *score = if reverse { MAX } else { 0 };
            continue;
        }
        let scaled = MAX * *score / top;
        *score = if reverse { MAX - scaled } else { scaled };
    }
}

/// The weighted total of every score plugin for each feasible node, in `nodes`' order.
pub fn total(
    strategy: Strategy,
    with_balance: bool,
    pod: &PodInfo,
    nodes: &[(&NodeInfo, &Requested)],
) -> Vec<i64> {
    let mut affinity: Vec<i64> = nodes
        .iter()
        .map(|(node, _)| pod.preferred_weight(node))
        .collect();
    normalize(&mut affinity, false);
    let mut taints: Vec<i64> = nodes
        .iter()
        .map(|(node, _)| pod.intolerable_preferences(node))
        .collect();
    normalize(&mut taints, true);
    nodes
        .iter()
        .zip(affinity.iter().zip(&taints))
        .map(|((node, requested), (affinity, taints))| {
            let balance = if with_balance {
                balanced(pod, node, requested).unwrap_or(0)
            } else {
                0
            };
            FIT_WEIGHT * fit(strategy, pod, node, requested)
                + BALANCED_WEIGHT * balance
                + AFFINITY_WEIGHT * affinity
                + TAINT_WEIGHT * taints
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{node, pod};
    use crate::resources::Resources;
    use serde_json::json;

    #[test]
    fn least_and_most_requested_per_resource() {
        // (requested, capacity, least, most), as upstream's tables compute them.
        let cases = [
            (0, 4000, 100, 0),
            (1000, 4000, 75, 25),
            (3000, 4000, 25, 75),
            (4000, 4000, 0, 100),
            (5000, 4000, 0, 100),
            (1, 3, 66, 33),
            (10, 0, 0, 0),
        ];
        for (requested, capacity, least, most) in cases {
            assert_eq!(
                least_requested(requested, capacity),
                least,
                "{requested}/{capacity}"
            );
            assert_eq!(
                most_requested(requested, capacity),
                most,
                "{requested}/{capacity}"
            );
        }
    }

    fn requesting(cpu: &str, memory: &str) -> PodInfo {
        pod(json!({"containers": [{"name": "c", "image": "c",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}))
    }

    fn used(milli_cpu: i64, memory: i64) -> Requested {
        Requested {
            actual: Resources {
                milli_cpu,
                memory,
                ..Resources::default()
            },
            scored_milli_cpu: milli_cpu,
            scored_memory: memory,
        }
    }

    #[test]
    fn fit_averages_cpu_and_memory() {
        let n = node(json!({"metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "4", "memory": "10000", "pods": "10"}}}));
        let p = requesting("1", "2000");
        let idle = used(0, 0);
        // cpu: 3000 left of 4000 = 75; memory: 8000 left of 10000 = 80.
        assert_eq!(fit(Strategy::LeastAllocated, &p, &n, &idle), (75 + 80) / 2);
        assert_eq!(fit(Strategy::MostAllocated, &p, &n, &idle), (25 + 20) / 2);
        let busy = used(2000, 6000);
        assert_eq!(fit(Strategy::LeastAllocated, &p, &n, &busy), (25 + 20) / 2);
        assert_eq!(fit(Strategy::MostAllocated, &p, &n, &busy), (75 + 80) / 2);
        // A pod without requests counts 100m and 200Mi.
        let empty = pod(json!({}));
        let roomy = node(json!({"metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "1", "memory": "2000Mi", "pods": "10"}}}));
        assert_eq!(
            fit(Strategy::LeastAllocated, &empty, &roomy, &idle),
            (90 + 90) / 2
        );
    }

    #[test]
    fn balance_favours_even_use() {
        let n = node(json!({"metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "4", "memory": "4000", "pods": "10"}}}));
        // cpu 50 %, memory 50 %: perfectly balanced.
        assert_eq!(
            balanced(&requesting("2", "2000"), &n, &used(0, 0)),
            Some(100)
        );
        // cpu 75 %, memory 25 %: deviation 0.25.
        assert_eq!(
            balanced(&requesting("3", "1000"), &n, &used(0, 0)),
            Some(75)
        );
        // Over capacity counts as full.
        assert_eq!(balanced(&requesting("8", "0"), &n, &used(0, 0)), Some(50));
        assert_eq!(balanced(&pod(json!({})), &n, &used(0, 0)), None);
    }

    #[test]
    fn normalizing_scales_by_the_largest() {
        let mut scores = [0, 5, 10];
        normalize(&mut scores, false);
        assert_eq!(scores, [0, 50, 100]);
        let mut counts = [0, 1, 2];
        normalize(&mut counts, true);
        assert_eq!(counts, [100, 50, 0]);
        let mut zeros = [0, 0];
        normalize(&mut zeros, true);
        assert_eq!(zeros, [100, 100]);
        let mut zeros = [0, 0];
        normalize(&mut zeros, false);
        assert_eq!(zeros, [0, 0]);
    }

    #[test]
    fn totals_weigh_preferences_and_soft_taints() {
        let a = node(json!({"metadata": {"name": "a", "labels": {"zone": "a"}}}));
        let b = node(json!({"metadata": {"name": "b", "labels": {"zone": "b"}},
            "spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}));
        let idle = used(0, 0);
        let plain = pod(json!({}));
        let both = [(&a, &idle), (&b, &idle)];
        // Same fit; b loses TaintToleration's 3 × 100.
        let scores = total(Strategy::LeastAllocated, true, &plain, &both);
        assert_eq!(scores[0] - scores[1], 300);
        let prefers_b = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 3, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}]}},
            "tolerations": [{"key": "k", "operator": "Exists"}]}),
        );
        let scores = total(Strategy::LeastAllocated, true, &prefers_b, &both);
        assert_eq!(scores[1] - scores[0], 200);
    }
}
