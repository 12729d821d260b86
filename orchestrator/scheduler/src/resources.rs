//! What pods request and nodes offer, in the units kube-scheduler compares them in:
//! millicores of CPU, bytes of memory and ephemeral storage, a count of pods, and whole
//! units of scalar resources (extended resources such as `nvidia.com/gpu`, hugepages).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use slipway_model::quantity::ParsedQuantity;

/// The CPU a container without a CPU request counts as when nodes are scored (not when
/// they are filtered), as kube-scheduler's `DefaultMilliCPURequest`.
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// The memory a container without a memory request counts as when nodes are scored,
/// as kube-scheduler's `DefaultMemoryRequest` (200 MiB).
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pods: the number a node allows, or the number a tally holds.
    pub pods: i64,
    /// Scalar resources by name, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

/// Whether kube-scheduler counts `name` as a scalar resource: an extended resource (a
/// domain-prefixed name outside `kubernetes.io/`, not a quota's `requests.` name) or
/// hugepages.
pub fn is_scalar(name: &str) -> bool {
    let extended = name.split_once('/').is_some_and(|(domain, _)| {
        domain != "kubernetes.io" && !domain.ends_with(".kubernetes.io")
    }) && !name.starts_with("requests.");
    extended || name.starts_with("hugepages-")
}

impl Resources {
    /// The sum of a resource list; values that do not parse (admission refuses them) count
    /// as nothing.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut out = Resources::default();
        for (name, quantity) in list {
            let Ok(parsed) = ParsedQuantity::try_from(quantity) else {
                continue;
            };
            match name.as_str() {
                "cpu" => out.milli_cpu = out.milli_cpu.saturating_add(parsed.as_milli()),
                "memory" => out.memory = out.memory.saturating_add(parsed.as_value()),
                "ephemeral-storage" => {
                    out.ephemeral_storage = out.ephemeral_storage.saturating_add(parsed.as_value());
                }
                "pods" => out.pods = out.pods.saturating_add(parsed.as_value()),
                other if is_scalar(other) => {
                    let slot = out.scalar.entry(other.to_owned()).or_default();
                    *slot = slot.saturating_add(parsed.as_value());
                }
                _ => {}
            }
        }
        out
    }

    /// Adds `other` to this amount.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
        for (name, value) in &other.scalar {
            let slot = self.scalar.entry(name.clone()).or_default();
            *slot = slot.saturating_add(*value);
        }
    }

    /// Takes `other` away from this amount, dropping scalars that reach zero.
    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        self.pods = self.pods.saturating_sub(other.pods);
        for (name, value) in &other.scalar {
            if let Some(slot) = self.scalar.get_mut(name) {
                *slot = slot.saturating_sub(*value);
                if *slot == 0 {
                    self.scalar.remove(name);
                }
            }
        }
    }

    /// Raises each resource to at least `other`'s amount.
    fn raise_to(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, value) in &other.scalar {
            let slot = self.scalar.entry(name.clone()).or_default();
            *slot = (*slot).max(*value);
        }
    }

    /// A scalar resource's amount, zero when absent.
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or(0)
    }
}

/// What a node offers pods: its allocatable resources, or its capacity when it reports no
/// allocatable.
pub fn allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()))
        .map(Resources::from_list)
        .unwrap_or_default()
}

/// What a pod requests, as kube-scheduler's `PodRequests` computes it: its containers'
/// requests summed, sidecars (init containers that restart always) added, every other init
/// container's peak (with the sidecars started before it) taken if larger, plus the pod's
/// overhead; and one pod. With `scoring`, a container that requests no CPU or memory counts
/// the defaults ([`DEFAULT_MILLI_CPU`], [`DEFAULT_MEMORY`]), as scores count them.
pub fn requests(pod: &Pod, scoring: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources {
            pods: 1,
            ..Resources::default()
        };
    };
    let of = |container: &Container| {
        let list = container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref());
        let mut amount = list.map(Resources::from_list).unwrap_or_default();
        if scoring {
            if !list.is_some_and(|l| l.contains_key("cpu")) {
                amount.milli_cpu = DEFAULT_MILLI_CPU;
            }
            if !list.is_some_and(|l| l.contains_key("memory")) {
                amount.memory = DEFAULT_MEMORY;
            }
        }
        amount
    };
    let mut total = Resources::default();
    for container in &spec.containers {
        total.add(&of(container));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let amount = of(container);
        if container.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&amount);
            init_peak.raise_to(&sidecars);
        } else {
            let mut with_sidecars = amount;
            with_sidecars.add(&sidecars);
            init_peak.raise_to(&with_sidecars);
        }
    }
    total.add(&sidecars);
    total.raise_to(&init_peak);
    if let Some(overhead) = spec.overhead.as_ref() {
        total.add(&Resources::from_list(overhead));
    }
    total.pods = 1;
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn scalar_resources_are_extended_or_hugepages() {
        for (name, scalar) in [
            ("nvidia.com/gpu", true),
            ("example.com/foo", true),
            ("hugepages-2Mi", true),
            ("cpu", false),
            ("memory", false),
            ("kubernetes.io/something", false),
            ("node.kubernetes.io/x", false),
            ("requests.nvidia.com/gpu", false),
        ] {
            assert_eq!(is_scalar(name), scalar, "{name}");
        }
    }

    #[test]
    fn requests_sum_containers_and_peak_over_init_containers() {
        let cases = [
            (
                "two containers add up",
                json!({"containers": [
                    {"name": "a", "image": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
                    {"name": "b", "image": "b", "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "2"}}}]}),
                (
                    1250,
                    1 << 30,
                    BTreeMap::from([("nvidia.com/gpu".to_owned(), 2)]),
                ),
            ),
            (
                "a larger init container wins",
                json!({"initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"cpu": "2"}}}],
                       "containers": [{"name": "a", "image": "a", "resources": {"requests": {"cpu": "500m", "memory": "10"}}}]}),
                (2000, 10, BTreeMap::new()),
            ),
            (
                "sidecars add to the containers and to later init containers",
                json!({"initContainers": [
                    {"name": "s", "image": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                    {"name": "i", "image": "i", "resources": {"requests": {"cpu": "1"}}}],
                       "containers": [{"name": "a", "image": "a", "resources": {"requests": {"cpu": "200m"}}}]}),
                (1100, 0, BTreeMap::new()),
            ),
            (
                "overhead is added",
                json!({"overhead": {"cpu": "50m"},
                       "containers": [{"name": "a", "image": "a", "resources": {"requests": {"cpu": "100m"}}}]}),
                (150, 0, BTreeMap::new()),
            ),
        ];
        for (what, spec, (cpu, memory, scalar)) in cases {
            let got = requests(&pod(spec), false);
            assert_eq!(
                (got.milli_cpu, got.memory, got.scalar, got.pods),
                (cpu, memory, scalar, 1),
                "{what}"
            );
        }
    }

    #[test]
    fn scoring_counts_defaults_for_missing_requests_only() {
        let p = pod(json!({"containers": [
            {"name": "a", "image": "a"},
            {"name": "b", "image": "b", "resources": {"requests": {"cpu": "0", "memory": "1Mi"}}}]}));
        let scored = requests(&p, true);
        assert_eq!(scored.milli_cpu, DEFAULT_MILLI_CPU);
        assert_eq!(scored.memory, DEFAULT_MEMORY + (1 << 20));
        let filtered = requests(&p, false);
        assert_eq!((filtered.milli_cpu, filtered.memory), (0, 1 << 20));
    }

    #[test]
    fn nodes_offer_allocatable_else_capacity() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "allocatable": {"cpu": "3500m", "memory": "7Gi", "pods": "110", "nvidia.com/gpu": "1"}}}))
        .unwrap();
        let offered = allocatable(&node);
        assert_eq!(
            (
                offered.milli_cpu,
                offered.memory,
                offered.pods,
                offered.scalar("nvidia.com/gpu")
            ),
            (3500, 7 << 30, 110, 1)
        );
        let bare: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "2"}}}))
        .unwrap();
        assert_eq!(allocatable(&bare).milli_cpu, 2000);
    }

    #[test]
    fn subtracting_undoes_adding() {
        let mut tally = Resources::default();
        let one = Resources {
            milli_cpu: 100,
            memory: 5,
            pods: 1,
            scalar: BTreeMap::from([("nvidia.com/gpu".to_owned(), 1)]),
            ..Resources::default()
        };
        tally.add(&one);
        tally.add(&one);
        tally.subtract(&one);
        tally.subtract(&one);
        assert_eq!(tally, Resources::default());
    }
}
