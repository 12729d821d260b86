//! The node agent's usage summary (`/stats/summary`), a subset of kubelet's
//! `stats/v1alpha1` Summary with its JSON names, which the API server reads to serve
//! `metrics.k8s.io`.

use serde::{Deserialize, Serialize};

/// What one node and its pods use now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The whole node.
    pub node: NodeStats,
    /// Every pod with a running container.
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

/// A node's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// The Node's name.
    pub node_name: String,
    /// When the node booted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// Which pod figures are of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReference {
    /// The pod's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its uid.
    #[serde(default)]
    pub uid: String,
}

/// A pod's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// The pod.
    pub pod_ref: PodReference,
    /// When the agent took the pod on (its status' `startTime`, RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Its running containers.
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
    /// Its containers' CPU together: the rate only when every container has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Its containers' memory together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// A container's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// The container's name in the pod.
    pub name: String,
    /// When this run of it started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// CPU use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// When it was read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The rate, in billionths of a core, over the window before `time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    /// CPU time used since start, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
    /// How long the rate was measured over, in seconds (not in kubelet's summary, where
    /// metrics-server measures the rate itself; metrics.k8s.io reports it as `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<f64>,
}

/// Memory use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// When it was read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// What cannot be reclaimed under pressure: usage less inactive file cache, what the
    /// OOM killer and `kubectl top` go by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    /// All memory charged, page cache included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_are_kubelet_s_and_absent_figures_are_left_out() {
        let summary = Summary {
            node: NodeStats {
                node_name: "n1".into(),
                start_time: Some("2026-01-01T00:00:00Z".into()),
                cpu: Some(CpuStats {
                    time: Some("2026-01-01T01:00:00Z".into()),
                    usage_nano_cores: None,
                    usage_core_nano_seconds: Some(678),
                    window_seconds: None,
                }),
                memory: None,
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "p".into(),
                    namespace: "ns".into(),
                    uid: "u".into(),
                },
                start_time: None,
                containers: vec![ContainerStats {
                    name: "c".into(),
                    start_time: None,
                    cpu: None,
                    memory: Some(MemoryStats {
                        time: None,
                        working_set_bytes: Some(1),
                        usage_bytes: Some(2),
                    }),
                }],
                cpu: None,
                memory: None,
            }],
        };
        let written = serde_json::to_value(&summary).expect("serialize");
        assert_eq!(
            written,
            json!({
                "node": {"nodeName": "n1", "startTime": "2026-01-01T00:00:00Z",
                         "cpu": {"time": "2026-01-01T01:00:00Z", "usageCoreNanoSeconds": 678}},
                "pods": [{"podRef": {"name": "p", "namespace": "ns", "uid": "u"},
                          "containers": [{"name": "c",
                                          "memory": {"workingSetBytes": 1, "usageBytes": 2}}]}],
            })
        );
        let read: Summary = serde_json::from_value(written).expect("deserialize");
        assert_eq!(read, summary);
    }

    #[test]
    fn a_kubelet_summary_reads_with_its_other_fields_ignored() {
        let kubelet = json!({
            "node": {"nodeName": "n1", "systemContainers": [], "startTime": "2026-01-01T00:00:00Z",
                     "cpu": {"time": "2026-01-01T01:00:00Z", "usageNanoCores": 5,
                             "usageCoreNanoSeconds": 6},
                     "memory": {"time": "2026-01-01T01:00:00Z", "availableBytes": 9,
                                "workingSetBytes": 7, "usageBytes": 8, "rssBytes": 3},
                     "network": {}, "fs": {}},
            "pods": [{"podRef": {"name": "p", "namespace": "ns", "uid": "u"},
                      "startTime": "2026-01-01T00:30:00Z",
                      "containers": [{"name": "c", "startTime": "2026-01-01T00:30:01Z",
                                      "cpu": {"usageNanoCores": 1}, "logs": {}}],
                      "cpu": {"usageNanoCores": 1}, "volume": []}]
        });
        let read: Summary = serde_json::from_value(kubelet).expect("deserialize");
        assert_eq!(read.node.memory.and_then(|m| m.working_set_bytes), Some(7));
        assert_eq!(
            read.pods[0].containers[0].start_time.as_deref(),
            Some("2026-01-01T00:30:01Z")
        );
        assert_eq!(
            read.pods[0].cpu.as_ref().and_then(|c| c.usage_nano_cores),
            Some(1)
        );
    }
}
