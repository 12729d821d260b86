//! A task's CPU and memory use from containerd's `tasks.Metrics`, whose answer carries the
//! cgroup's statistics as a protobuf `Any`: `io.containerd.cgroups.v1.Metrics` on cgroup
//! v1 hosts, `io.containerd.cgroups.v2.Metrics` on cgroup v2 ones.
//!
//! containerd-client does not generate those messages, so the few fields read are declared
//! here by hand, with the tags of containerd/cgroups' `stats/v1/metrics.proto` and
//! `cgroup2/stats/metrics.proto`; prost skips every other field.

use containerd_client::services::v1::MetricsRequest;
use slipway_runtime::{Error, Result, Stats};

use crate::grpc::{Conn, to_system_time};

/// The cgroup v1 statistics' type.
const V1_METRICS: &str = "io.containerd.cgroups.v1.Metrics";
/// The cgroup v2 statistics' type.
const V2_METRICS: &str = "io.containerd.cgroups.v2.Metrics";

/// `io.containerd.cgroups.v1.Metrics`, the parts read.
#[derive(Clone, PartialEq, prost::Message)]
struct V1Metrics {
    #[prost(message, optional, tag = "3")]
    cpu: Option<V1Cpu>,
    #[prost(message, optional, tag = "4")]
    memory: Option<V1Memory>,
}

/// `io.containerd.cgroups.v1.CPUStat`.
#[derive(Clone, PartialEq, prost::Message)]
struct V1Cpu {
    #[prost(message, optional, tag = "1")]
    usage: Option<V1CpuUsage>,
}

/// `io.containerd.cgroups.v1.CPUUsage`.
#[derive(Clone, PartialEq, prost::Message)]
struct V1CpuUsage {
    /// Nanoseconds (`cpuacct.usage`).
    #[prost(uint64, tag = "1")]
    total: u64,
}

/// `io.containerd.cgroups.v1.MemoryStat`.
#[derive(Clone, PartialEq, prost::Message)]
struct V1Memory {
    /// Inactive file cache of the cgroup and its children, as cAdvisor reads it on v1.
    #[prost(uint64, tag = "30")]
    total_inactive_file: u64,
    #[prost(message, optional, tag = "33")]
    usage: Option<V1MemoryEntry>,
}

/// `io.containerd.cgroups.v1.MemoryEntry`.
#[derive(Clone, PartialEq, prost::Message)]
struct V1MemoryEntry {
    /// Bytes (`memory.usage_in_bytes`).
    #[prost(uint64, tag = "2")]
    usage: u64,
}

/// `io.containerd.cgroups.v2.Metrics`, the parts read.
#[derive(Clone, PartialEq, prost::Message)]
struct V2Metrics {
    #[prost(message, optional, tag = "2")]
    cpu: Option<V2Cpu>,
    #[prost(message, optional, tag = "4")]
    memory: Option<V2Memory>,
}

/// `io.containerd.cgroups.v2.CPUStat`.
#[derive(Clone, PartialEq, prost::Message)]
struct V2Cpu {
    /// Microseconds (`cpu.stat`'s `usage_usec`).
    #[prost(uint64, tag = "1")]
    usage_usec: u64,
}

/// `io.containerd.cgroups.v2.MemoryStat`.
#[derive(Clone, PartialEq, prost::Message)]
struct V2Memory {
    #[prost(uint64, tag = "13")]
    inactive_file: u64,
    /// Bytes (`memory.current`).
    #[prost(uint64, tag = "32")]
    usage: u64,
}

/// What a cgroup's statistics say, before the reading's time is added.
#[derive(Debug, PartialEq, Eq)]
struct Usage {
    cpu_nanos: u64,
    memory_usage_bytes: u64,
    memory_inactive_file_bytes: u64,
}

/// The running task of container `id`'s use. containerd answers for tasks it can read
/// statistics of and leaves the rest out, so an empty answer is [`Error::NotFound`].
pub(crate) async fn stats(conn: &Conn, id: &str) -> Result<Stats> {
    // containerd refuses such ids, so no task has one; and the filter below stays valid.
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(Error::NotFound(format!("container {id:?}")));
    }
    let call = conn.call("tasks.Metrics");
    let metrics = call
        .run(conn.tasks().metrics(call.req(MetricsRequest {
            filters: vec![format!("id=={id}")],
        })))
        .await?
        .metrics;
    let metric = metrics
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| Error::NotFound(format!("no running task of {id}")))?;
    let data = metric
        .data
        .ok_or_else(|| Error::Other(format!("tasks.Metrics: no statistics for {id}")))?;
    let usage = decode(&data.type_url, &data.value)?;
    Ok(Stats {
        cpu_nanos: usage.cpu_nanos,
        memory_usage_bytes: usage.memory_usage_bytes,
        // As cAdvisor: usage less inactive file cache, never below zero.
        memory_working_set_bytes: usage
            .memory_usage_bytes
            .saturating_sub(usage.memory_inactive_file_bytes),
        at: to_system_time(metric.timestamp.as_ref()),
    })
}

/// Reads cgroup statistics by their type, whether or not its URL has a host part
/// (`type.googleapis.com/…`).
fn decode(type_url: &str, value: &[u8]) -> Result<Usage> {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let malformed =
        |e: prost::DecodeError| Error::Other(format!("tasks.Metrics: reading {name}: {e}"));
    match name {
        V1_METRICS => {
            let metrics = <V1Metrics as prost::Message>::decode(value).map_err(malformed)?;
            let memory = metrics.memory.unwrap_or_default();
            Ok(Usage {
                cpu_nanos: metrics
                    .cpu
                    .and_then(|c| c.usage)
                    .map_or(0, |usage| usage.total),
                memory_usage_bytes: memory.usage.map_or(0, |entry| entry.usage),
                memory_inactive_file_bytes: memory.total_inactive_file,
            })
        }
        V2_METRICS => {
            let metrics = <V2Metrics as prost::Message>::decode(value).map_err(malformed)?;
            let memory = metrics.memory.unwrap_or_default();
            Ok(Usage {
                cpu_nanos: metrics
                    .cpu
                    .map_or(0, |cpu| cpu.usage_usec.saturating_mul(1000)),
                memory_usage_bytes: memory.usage,
                memory_inactive_file_bytes: memory.inactive_file,
            })
        }
        other => Err(Error::Other(format!(
            "tasks.Metrics: statistics of unknown type {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn cgroup_v1_statistics_are_read_by_their_tags() {
        let encoded = V1Metrics {
            cpu: Some(V1Cpu {
                usage: Some(V1CpuUsage { total: 1_500 }),
            }),
            memory: Some(V1Memory {
                total_inactive_file: 300,
                usage: Some(V1MemoryEntry { usage: 1_000 }),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            decode(V1_METRICS, &encoded).expect("v1"),
            Usage {
                cpu_nanos: 1_500,
                memory_usage_bytes: 1_000,
                memory_inactive_file_bytes: 300
            }
        );
    }

    #[test]
    fn cgroup_v2_cpu_time_is_in_microseconds() {
        let encoded = V2Metrics {
            cpu: Some(V2Cpu { usage_usec: 7 }),
            memory: Some(V2Memory {
                inactive_file: 10,
                usage: 4_096,
            }),
        }
        .encode_to_vec();
        assert_eq!(
            decode(&format!("type.googleapis.com/{V2_METRICS}"), &encoded).expect("v2"),
            Usage {
                cpu_nanos: 7_000,
                memory_usage_bytes: 4_096,
                memory_inactive_file_bytes: 10
            }
        );
    }

    #[test]
    fn other_types_and_bad_bytes_are_errors() {
        assert!(matches!(
            decode("io.containerd.cgroups.v3.Metrics", &[]),
            Err(Error::Other(m)) if m.contains("unknown type")
        ));
        assert!(matches!(
            decode(V1_METRICS, &[0xff, 0xff]),
            Err(Error::Other(_))
        ));
    }
}
