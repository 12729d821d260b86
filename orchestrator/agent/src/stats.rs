//! Live CPU and memory use of the node and of every running container, served as kubelet's
//! Summary (`GET /stats/summary`, the subset in [`slipway_model::summary`]) for the API
//! server's `metrics.k8s.io`.
//!
//! Workers tell [`Stats`] which container ids run for which pod and container as they
//! start, adopt and lose them, so nothing is derived from labels here. CPU figures are
//! cumulative, and `usageNanoCores` is a rate, so the last readings of each container and
//! of the node are kept; a sampler ([`sample`]) reads everything every 10 s so that the
//! first summary asked for already has a rate.

pub(crate) mod host;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use slipway_model::summary::{
    ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats, Summary,
};
use slipway_runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::Context;

/// How often the sampler reads, as often as the kubelet's cAdvisor housekeeping.
const SAMPLE_PERIOD: Duration = Duration::from_secs(10);
/// The shortest time a rate is measured over: closer readings make a noisy rate.
const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Runtime reads in flight at once for one summary.
const READS_IN_FLIGHT: usize = 8;

/// Why there is no summary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The runtime failed to read a container that runs.
    #[error(transparent)]
    Runtime(#[from] slipway_runtime::Error),
    /// The host's figures could not be read.
    #[error(transparent)]
    Host(#[from] host::Error),
}

/// The pod a running container belongs to.
#[derive(Debug)]
pub(crate) struct Pod {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    /// When the agent took the pod on (its status' `startTime`).
    pub(crate) started: SystemTime,
}

/// A running container, as its worker knows it.
#[derive(Debug)]
struct Running {
    id: String,
    pod: Arc<Pod>,
    container: String,
    started: SystemTime,
}

/// A cumulative CPU reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    cpu_nanos: u64,
    at: SystemTime,
}

/// CPU use between two readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rate {
    nano_cores: u64,
    window: Duration,
}

/// The rate from `earlier` to `later`, if they are at least [`MIN_WINDOW`] apart and the
/// counter did not go back.
fn rate(earlier: Sample, later: Sample) -> Option<Rate> {
    let window = later.at.duration_since(earlier.at).ok()?;
    if window < MIN_WINDOW {
        return None;
    }
    let used = later.cpu_nanos.checked_sub(earlier.cpu_nanos)?;
    let nano_cores = u128::from(used) * 1_000_000_000 / window.as_nanos();
    Some(Rate {
        nano_cores: u64::try_from(nano_cores).unwrap_or(u64::MAX),
        window,
    })
}

/// The last two readings kept at least [`MIN_WINDOW`] apart, so that a fresh reading just
/// after the last one still has an earlier one to measure a rate against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Readings {
    newer: Sample,
    older: Option<Sample>,
}

impl Readings {
    fn new(first: Sample) -> Self {
        Readings {
            newer: first,
            older: None,
        }
    }

    /// Takes a fresh reading and gives the rate up to it, if an earlier reading is far
    /// enough back. A reading too close to the last, or older than it (the sampler and a
    /// request read at once and record in either order), is measured against the one
    /// before and not kept; one later in time but lower in CPU (the container restarted
    /// under the same id) starts over.
    fn record(&mut self, fresh: Sample) -> Option<Rate> {
        if let Some(rate) = rate(self.newer, fresh) {
            *self = Readings {
                newer: fresh,
                older: Some(self.newer),
            };
            return Some(rate);
        }
        if fresh.at >= self.newer.at && fresh.cpu_nanos < self.newer.cpu_nanos {
            *self = Readings::new(fresh);
            return None;
        }
        self.older.and_then(|older| rate(older, fresh))
    }
}

/// Records `fresh` in `readings`, the first if there are none yet, and gives its rate.
fn record(readings: &mut Option<Readings>, fresh: Sample) -> Option<Rate> {
    match readings {
        Some(readings) => readings.record(fresh),
        None => {
            *readings = Some(Readings::new(fresh));
            None
        }
    }
}

/// A lock's data even if a panic poisoned it: every change here leaves it whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The earlier readings of the node and of each running container, by container id.
#[derive(Debug, Default)]
struct History {
    node: Option<Readings>,
    containers: HashMap<String, Readings>,
}

/// Which containers run for which pods, and their earlier readings.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    running: Mutex<HashMap<String, Arc<Running>>>,
    history: Mutex<History>,
}

/// One container's fresh figures.
struct ContainerReading {
    running: Arc<Running>,
    stats: slipway_runtime::Stats,
    rate: Option<Rate>,
}

/// The node's fresh figures.
struct NodeReading {
    cpu: host::Cpu,
    memory: host::Memory,
    at: SystemTime,
    rate: Option<Rate>,
}

impl Stats {
    /// Container `id` runs as `container` of `pod` since `started`.
    pub(crate) fn started(&self, id: &str, pod: &Arc<Pod>, container: &str, started: SystemTime) {
        let running = Arc::new(Running {
            id: id.to_owned(),
            pod: Arc::clone(pod),
            container: container.to_owned(),
            started,
        });
        lock(&self.running).insert(id.to_owned(), running);
    }

    /// Container `id` no longer runs.
    pub(crate) fn ended(&self, id: &str) {
        lock(&self.running).remove(id);
    }

    /// Reads the node and every running container now, records the readings and forgets
    /// those of containers no longer running. A container the runtime no longer has
    /// (it just exited) is left out.
    async fn read(
        &self,
        runtime: &dyn Runtime,
    ) -> Result<(NodeReading, Vec<ContainerReading>), Error> {
        let running: Vec<Arc<Running>> = lock(&self.running).values().cloned().collect();
        let mut reads = futures::stream::iter(running)
            .map(|running| async move {
                let stats = runtime.stats(&running.id).await;
                (running, stats)
            })
            .buffer_unordered(READS_IN_FLIGHT);
        let mut fresh = Vec::new();
        let mut failed = None;
        while let Some((running, stats)) = reads.next().await {
            match stats {
                Ok(stats) => fresh.push((running, stats)),
                Err(slipway_runtime::Error::NotFound(_)) => {}
                // One container the runtime cannot read is left out, as kubelet does, rather
                // than hide every other pod of the node.
                Err(e) => {
                    tracing::warn!(container = %running.id, error = %e, "reading a container's usage failed");
                    failed = Some(e);
                }
            }
        }
        if let (true, Some(e)) = (fresh.is_empty(), failed) {
            return Err(e.into());
        }
        let cpu = host::cpu()?;
        let memory = host::memory()?;
        let at = SystemTime::now();
        let mut history = lock(&self.history);
        let node = NodeReading {
            rate: record(
                &mut history.node,
                Sample {
                    cpu_nanos: cpu.busy_nanos,
                    at,
                },
            ),
            cpu,
            memory,
            at,
        };
        let mut containers = Vec::with_capacity(fresh.len());
        for (running, stats) in fresh {
            let sample = Sample {
                cpu_nanos: stats.cpu_nanos,
                at: stats.at,
            };
            let rate = match history.containers.get_mut(&running.id) {
                Some(readings) => readings.record(sample),
                None => {
                    history
                        .containers
                        .insert(running.id.clone(), Readings::new(sample));
                    None
                }
            };
            containers.push(ContainerReading {
                running,
                stats,
                rate,
            });
        }
        // Readings of containers that ended go; another read's fresh ones stay.
        let running = lock(&self.running);
        history.containers.retain(|id, _| running.contains_key(id));
        Ok((node, containers))
    }

    /// The summary of the node called `node_name` and its pods, read now.
    pub(crate) async fn summary(
        &self,
        node_name: &str,
        runtime: &dyn Runtime,
    ) -> Result<Summary, Error> {
        let (node, containers) = self.read(runtime).await?;
        Ok(summarize(node_name, &node, &containers))
    }
}

/// Reads everything every [`SAMPLE_PERIOD`] until `stop`, so rates are ready when asked.
pub(crate) async fn sample(ctx: Arc<Context>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(SAMPLE_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(e) = ctx.stats.read(ctx.runtime.as_ref()).await {
            tracing::debug!(error = %e, "sampling usage failed; the next sample tries again");
        }
    }
}

/// RFC 3339 in whole seconds, as the kubelet writes its times.
fn timestamp(at: SystemTime) -> Option<String> {
    let at = jiff::Timestamp::try_from(at).ok()?;
    Some(
        jiff::Timestamp::from_second(at.as_second())
            .ok()?
            .to_string(),
    )
}

fn cpu_stats(at: SystemTime, cpu_nanos: u64, rate: Option<Rate>) -> CpuStats {
    CpuStats {
        time: timestamp(at),
        usage_nano_cores: rate.map(|r| r.nano_cores),
        usage_core_nano_seconds: Some(cpu_nanos),
        window_seconds: rate.map(|r| r.window.as_secs_f64()),
    }
}

fn memory_stats(at: SystemTime, working_set_bytes: u64, usage_bytes: u64) -> MemoryStats {
    MemoryStats {
        time: timestamp(at),
        working_set_bytes: Some(working_set_bytes),
        usage_bytes: Some(usage_bytes),
    }
}

/// The Summary of fresh readings: pods in namespace and name order, each with its
/// containers in name order and their sums.
fn summarize(node_name: &str, node: &NodeReading, containers: &[ContainerReading]) -> Summary {
    let mut pods: BTreeMap<(&str, &str, &str), (&Pod, Vec<&ContainerReading>)> = BTreeMap::new();
    for reading in containers {
        let pod = reading.running.pod.as_ref();
        pods.entry((&pod.namespace, &pod.name, &pod.uid))
            .or_insert_with(|| (pod, Vec::new()))
            .1
            .push(reading);
    }
    let pods = pods
        .into_values()
        .map(|(pod, mut readings)| {
            readings.sort_by(|a, b| a.running.container.cmp(&b.running.container));
            pod_stats(pod, &readings)
        })
        .collect();
    Summary {
        node: NodeStats {
            node_name: node_name.to_owned(),
            start_time: timestamp(node.cpu.boot_time),
            cpu: Some(cpu_stats(node.at, node.cpu.busy_nanos, node.rate)),
            memory: Some(memory_stats(
                node.at,
                node.memory.working_set_bytes,
                node.memory.usage_bytes,
            )),
        },
        pods,
    }
}

/// `pod`'s figures from its containers'. The pod's rate is the sum of its containers' when
/// each has one, over the longest of their windows.
fn pod_stats(pod: &Pod, readings: &[&ContainerReading]) -> PodStats {
    let mut at = SystemTime::UNIX_EPOCH;
    let (mut cpu_nanos, mut working_set, mut usage) = (0u64, 0u64, 0u64);
    let mut rate = Some(Rate {
        nano_cores: 0,
        window: Duration::ZERO,
    });
    let mut containers = Vec::with_capacity(readings.len());
    for reading in readings {
        let stats = &reading.stats;
        at = at.max(stats.at);
        cpu_nanos = cpu_nanos.saturating_add(stats.cpu_nanos);
        working_set = working_set.saturating_add(stats.memory_working_set_bytes);
        usage = usage.saturating_add(stats.memory_usage_bytes);
        rate = rate.zip(reading.rate).map(|(sum, one)| Rate {
            nano_cores: sum.nano_cores.saturating_add(one.nano_cores),
            window: sum.window.max(one.window),
        });
        containers.push(ContainerStats {
            name: reading.running.container.clone(),
            start_time: timestamp(reading.running.started),
            cpu: Some(cpu_stats(stats.at, stats.cpu_nanos, reading.rate)),
            memory: Some(memory_stats(
                stats.at,
                stats.memory_working_set_bytes,
                stats.memory_usage_bytes,
            )),
        });
    }
    PodStats {
        pod_ref: PodReference {
            name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            uid: pod.uid.clone(),
        },
        start_time: timestamp(pod.started),
        containers,
        cpu: Some(cpu_stats(at, cpu_nanos, rate)),
        memory: Some(memory_stats(at, working_set, usage)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: SystemTime = SystemTime::UNIX_EPOCH;

    fn at(millis: u64) -> SystemTime {
        EPOCH + Duration::from_millis(millis)
    }

    fn sample(millis: u64, cpu_nanos: u64) -> Sample {
        Sample {
            cpu_nanos,
            at: at(millis),
        }
    }

    #[test]
    fn a_rate_needs_a_second_between_readings_and_a_counter_that_grew() {
        let table = [
            // Half a core for 10 s.
            (
                sample(0, 0),
                sample(10_000, 5_000_000_000),
                Some(500_000_000),
            ),
            // Two cores for exactly the shortest window.
            (
                sample(5_000, 1),
                sample(6_000, 2_000_000_001),
                Some(2_000_000_000),
            ),
            (sample(0, 7), sample(4_000, 7), Some(0)),
            (sample(0, 0), sample(999, 1_000_000), None),
            (sample(10_000, 5), sample(0, 10), None),
            (sample(0, 10), sample(10_000, 5), None),
        ];
        for (earlier, later, nano_cores) in table {
            assert_eq!(
                rate(earlier, later).map(|r| r.nano_cores),
                nano_cores,
                "{earlier:?} to {later:?}"
            );
        }
        assert_eq!(
            rate(sample(0, 0), sample(2_500, 0)).map(|r| r.window),
            Some(Duration::from_millis(2_500))
        );
    }

    #[test]
    fn readings_measure_against_the_last_one_far_enough_back() {
        let mut readings = None;
        assert_eq!(
            record(&mut readings, sample(0, 0)),
            None,
            "the first reading has nothing to go by"
        );
        assert_eq!(
            record(&mut readings, sample(500, 100_000_000)),
            None,
            "too close to the first, and nothing before it"
        );
        let rate = record(&mut readings, sample(10_000, 1_000_000_000));
        assert_eq!(rate.map(|r| r.nano_cores), Some(100_000_000));
        // Just after the last reading: measured against the one before, not kept.
        let rate = record(&mut readings, sample(10_200, 1_020_000_000));
        assert_eq!(
            rate,
            Some(Rate {
                nano_cores: 100_000_000,
                window: Duration::from_millis(10_200)
            })
        );
        // Older than the last (two reads recorded out of order): measured against the one
        // before, and nothing kept or lost.
        let rate = record(&mut readings, sample(9_500, 950_000_000));
        assert_eq!(rate.map(|r| r.nano_cores), Some(100_000_000));
        let rate = record(&mut readings, sample(20_000, 2_000_000_000));
        assert_eq!(
            rate.map(|r| (r.nano_cores, r.window)),
            Some((100_000_000, Duration::from_secs(10))),
            "measured from the kept reading at 10 s"
        );
        // A counter that went back (a new cgroup, say) starts over.
        assert_eq!(record(&mut readings, sample(30_000, 5)), None);
        assert_eq!(record(&mut readings, sample(30_500, 6)), None);
        assert_eq!(
            record(&mut readings, sample(32_000, 2_000_000_005)).map(|r| r.nano_cores),
            Some(1_000_000_000)
        );
    }

    fn reading(
        pod: &Arc<Pod>,
        container: &str,
        cpu_nanos: u64,
        rate: Option<u64>,
    ) -> ContainerReading {
        ContainerReading {
            running: Arc::new(Running {
                id: format!("{}-{container}", pod.uid),
                pod: Arc::clone(pod),
                container: container.to_owned(),
                started: at(1_000),
            }),
            stats: slipway_runtime::Stats {
                cpu_nanos,
                memory_usage_bytes: 3_000,
                memory_working_set_bytes: 2_000,
                at: at(60_000),
            },
            rate: rate.map(|nano_cores| Rate {
                nano_cores,
                window: Duration::from_secs(10),
            }),
        }
    }

    #[test]
    fn pods_sum_their_containers_and_lack_a_rate_while_one_does() {
        let pod = |name: &str| {
            Arc::new(Pod {
                namespace: "ns".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
                started: EPOCH,
            })
        };
        let (web, db) = (pod("web"), pod("db"));
        let node = NodeReading {
            cpu: host::Cpu {
                busy_nanos: 9,
                boot_time: EPOCH,
            },
            memory: host::Memory {
                working_set_bytes: 1,
                usage_bytes: 2,
            },
            at: at(60_000),
            rate: None,
        };
        let summary = summarize(
            "n1",
            &node,
            &[
                reading(&web, "sidecar", 5, Some(10)),
                reading(&db, "db", 1, None),
                reading(&web, "app", 7, Some(20)),
                reading(&db, "metrics", 2, Some(30)),
            ],
        );
        let written = serde_json::to_value(&summary).expect("serialize");
        let cpu = |nanos: u64, rate: Option<u64>| {
            let mut cpu = serde_json::json!({"time": "1970-01-01T00:01:00Z",
                                             "usageCoreNanoSeconds": nanos});
            if let Some(rate) = rate {
                cpu["usageNanoCores"] = rate.into();
                cpu["windowSeconds"] = 10.0.into();
            }
            cpu
        };
        let memory = |n: u64| {
            serde_json::json!({"time": "1970-01-01T00:01:00Z",
                               "workingSetBytes": 2_000 * n, "usageBytes": 3_000 * n})
        };
        let container = |name: &str, nanos: u64, rate: Option<u64>| {
            serde_json::json!({"name": name, "startTime": "1970-01-01T00:00:01Z",
                               "cpu": cpu(nanos, rate), "memory": memory(1)})
        };
        assert_eq!(
            written,
            serde_json::json!({
                "node": {"nodeName": "n1", "startTime": "1970-01-01T00:00:00Z",
                         "cpu": {"time": "1970-01-01T00:01:00Z", "usageCoreNanoSeconds": 9},
                         "memory": {"time": "1970-01-01T00:01:00Z",
                                    "workingSetBytes": 1, "usageBytes": 2}},
                "pods": [
                    {"podRef": {"name": "db", "namespace": "ns", "uid": "uid-db"},
                     "startTime": "1970-01-01T00:00:00Z",
                     "containers": [container("db", 1, None), container("metrics", 2, Some(30))],
                     "cpu": cpu(3, None), "memory": memory(2)},
                    {"podRef": {"name": "web", "namespace": "ns", "uid": "uid-web"},
                     "startTime": "1970-01-01T00:00:00Z",
                     "containers": [container("app", 7, Some(20)), container("sidecar", 5, Some(10))],
                     "cpu": cpu(12, Some(30)), "memory": memory(2)},
                ],
            })
        );
    }
}
