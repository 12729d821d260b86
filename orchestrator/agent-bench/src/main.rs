//! The node agent benchmark, on one private containerd: the time from a pod's create call
//! to the watch event that shows it `Ready=True`, one pod at a time and a batch created at
//! once, beside `ctr run -d` of the same image in the same two shapes (the floor); then
//! what each running pod costs in memory: this process's RSS growth (it holds the API
//! server, the agent and the watch), and the PSS of each pod's containerd shim and logger.
//! Optionally the same one-at-a-time run with pods left for the scheduler, the controllers
//! running too. With the batch running, `metrics.k8s.io`'s pod list (which reads every
//! container's usage through the agent's summary) beside a plain list of the same pods.
//!
//! Run as root with `cargo run --release -p slipway-agent-bench [-- --quick]`; it needs
//! Debian's containerd (containerd, runc, ctr). The API server runs in this process over
//! SQLite with `slipway up`'s defaults and every client reaches it in-process, as in
//! `slipway up`. Pods are busybox `sleep 3600` with `spec.nodeName` set, so no scheduler is
//! involved unless a row says so. The first pod and the first `ctr run` are warm-ups and
//! are not counted. Everything started is stopped, and every pod and container removed, at
//! the end, on failure too.

mod floor;
mod memory;
mod rig;
mod seen;

use std::time::Duration;

use anyhow::Context;
use futures::future::join_all;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use slipway_bench_support::{Figure, Ratio, Row, Sample, print_figures, print_table};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::memory::{Helpers, MIB};
use crate::rig::{IMAGE, Rig};
use crate::seen::Watch;

/// How much work the run does. Every wait is bounded by `cap`, the whole run by `total`.
#[derive(Clone, Copy)]
struct Sizes {
    one_by_one: usize,
    batch: usize,
    cap: Duration,
    total: Duration,
}

const FULL: Sizes = Sizes {
    one_by_one: 20,
    batch: 50,
    cap: Duration::from_secs(60),
    total: Duration::from_secs(10 * 60),
};

const QUICK: Sizes = Sizes {
    one_by_one: 5,
    batch: 10,
    cap: Duration::from_secs(30),
    total: Duration::from_secs(2 * 60),
};

/// The namespace of the bench's pods.
const NS: &str = "bench";
/// How long the batch's pods run before memory is read, so their status writes and the
/// loggers' first files are done.
const SETTLE: Duration = Duration::from_secs(2);
/// How long the scheduler and the controllers may take to stop.
const STOP_CAP: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    // containerd's shim runs this binary as each container's logger, as the agent runs
    // `slipway`, with the container's output on fds 3 and 4: nothing may open a file
    // before that is checked.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(invocation) = slipway_logs::logger_invocation(&args, std::env::vars_os()) {
        return invocation
            .and_then(slipway_logs::run_logger)
            .context("logger");
    }
    // What the agent logs (SLIPWAY_LOG, e.g. `slipway_agent=debug`; warnings by default)
    // goes to stderr with timestamps, beside the progress lines.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let sizes = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (rows, figures) = runtime.block_on(bench(sizes))?;
    print_table(&rows, Ratio::Shown);
    println!();
    print_figures(&figures);
    Ok(())
}

/// Starts the rig, measures within the run's cap, and stops the rig whatever happened.
async fn bench(sizes: Sizes) -> anyhow::Result<(Vec<Row>, Vec<Figure>)> {
    eprintln!("starting containerd, the API server and the agent ...");
    let rig = Rig::start().await?;
    let measured = tokio::time::timeout(sizes.total, measure(&rig, sizes))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the run took longer than its cap of {:?}",
                sizes.total
            ))
        });
    eprintln!("stopping the agent, removing every pod and container, stopping containerd ...");
    match (measured, rig.stop().await) {
        (Ok(measured), Ok(())) => Ok(measured),
        (Ok(_), Err(e)) => Err(e.context("cleaning up after the run")),
        (Err(e), stopped) => {
            if let Err(also) = stopped {
                eprintln!("cleaning up failed too: {also:#}");
            }
            Err(e)
        }
    }
}

/// Latencies of one measurement and the wall time they count against: the whole batch,
/// or the sum of the timed spans for one at a time (so ops/s is 1 / mean there).
#[derive(Clone)]
struct Timed {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Timed {
    fn one_by_one(latencies: Vec<Duration>) -> Self {
        let elapsed = latencies.iter().sum();
        Timed { latencies, elapsed }
    }

    fn sample(self) -> Sample {
        Sample::new(self.latencies, self.elapsed)
    }
}

/// Memory with a batch running.
struct Memory {
    helpers: Helpers,
    /// This process's RSS before the batch and with it running, in bytes.
    rss: (u64, u64),
    /// containerd's RSS before the batch and with it running, in bytes.
    containerd: (u64, u64),
}

impl Memory {
    /// Reads what does not depend on the batch, before it starts.
    fn before(rig: &Rig) -> anyhow::Result<Memory> {
        let containerd = containerd_rss(rig)?;
        Ok(Memory {
            helpers: Helpers::default(),
            rss: (memory::rss("self")?, 0),
            containerd: (containerd, 0),
        })
    }

    /// Completes the reading with the batch running.
    fn with_batch(mut self, rig: &Rig) -> anyhow::Result<Memory> {
        let logger = std::env::current_exe().context("finding this binary, the logger")?;
        self.helpers = memory::helpers(&rig.socket, &logger)?;
        self.rss.1 = memory::rss("self")?;
        self.containerd.1 = containerd_rss(rig)?;
        Ok(self)
    }
}

fn containerd_rss(rig: &Rig) -> anyhow::Result<u64> {
    let pid = rig.containerd_pid().context("containerd is not running")?;
    memory::rss(&pid.to_string())
}

async fn measure(rig: &Rig, sizes: Sizes) -> anyhow::Result<(Vec<Row>, Vec<Figure>)> {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(rig.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .context("creating the bench's namespace")?;
    let pods: Api<Pod> = Api::namespaced(rig.client.clone(), NS);
    let watch = Watch::start(pods.clone(), sizes.cap).await?;
    let node = Some(rig.node.as_str());

    eprintln!("floor: ctr run, one at a time ...");
    let warm = ctr_one_by_one(rig, "floor-warm", 1, sizes.cap).await?;
    eprintln!("  warm-up ctr run: {:?} (not counted)", warm.latencies[0]);
    let floor_one = ctr_one_by_one(rig, "floor-one", sizes.one_by_one, sizes.cap).await?;
    eprintln!("floor: {} ctr runs at once ...", sizes.batch);
    let (floor_batch, floor_memory) = ctr_batch(rig, sizes).await?;

    anyhow::ensure!(!rig.agent_failed(), "the agent stopped early");
    eprintln!("agent: one pod at a time ...");
    let warm = pods_one_by_one(&pods, &watch, "warm", node, 1, sizes.cap).await?;
    eprintln!(
        "  warm-up pod: {:?} (the agent's first; not counted)",
        warm.latencies[0]
    );
    let ours_one = pods_one_by_one(&pods, &watch, "one", node, sizes.one_by_one, sizes.cap).await?;
    eprintln!("agent: {} pods at once ...", sizes.batch);
    let (ours_batch, ours_memory, usage) = pods_batch(rig, &pods, &watch, sizes).await?;

    eprintln!("agent with the scheduler and the controllers: one pod at a time ...");
    let scheduled = through_the_scheduler(rig, &pods, &watch, sizes).await?;

    let n = sizes.one_by_one;
    let b = sizes.batch;
    let rows = vec![
        Row::new(
            "slipway agent",
            &format!("pod created → Ready (watch), 1 at a time × {n}"),
            1,
            ours_one.sample(),
            floor_one.clone().sample(),
        ),
        Row::new(
            "slipway agent",
            &format!("pod created → Ready (watch), {b} created at once"),
            b,
            ours_batch.sample(),
            floor_batch.sample(),
        ),
        Row::new(
            "metrics.k8s.io",
            &format!("PodMetrics list of {b} running pods, 1 at a time × {n}"),
            1,
            usage.metrics.sample(),
            usage.list.sample(),
        ),
        Row::new(
            "agent + scheduler + controllers",
            &format!("unbound pod created → Ready (watch), 1 at a time × {n}"),
            1,
            scheduled.sample(),
            floor_one.sample(),
        ),
    ];
    Ok((rows, memory_figures(b, &ours_memory, &floor_memory)))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

fn memory_figures(pods: usize, ours: &Memory, floor: &Memory) -> Vec<Figure> {
    let per_pod = |bytes: u64| format!("{:.2} MiB", mib(bytes) / pods as f64);
    let growth = ours.rss.1 as f64 - ours.rss.0 as f64;
    let h = ours.helpers;
    let f = floor.helpers;
    vec![
        Figure {
            row: format!(
                "bench process RSS growth per running pod, {pods} pods (API server, agent and watch in one process)"
            ),
            figure: format!(
                "{:.2} MiB ({:.1} → {:.1} MiB)",
                growth / MIB / pods as f64,
                mib(ours.rss.0),
                mib(ours.rss.1)
            ),
            floor: "—".to_owned(),
        },
        Figure {
            row: format!(
                "containerd-shim-runc-v2 PSS per pod ({} shims for {pods} pods)",
                h.shims
            ),
            figure: per_pod(h.shim_pss),
            floor: format!(
                "{} per `ctr run` container ({} shims)",
                per_pod(f.shim_pss),
                f.shims
            ),
        },
        Figure {
            row: format!(
                "container logger PSS per pod ({} loggers, this binary as `slipway` would be)",
                h.loggers
            ),
            figure: per_pod(h.logger_pss),
            floor: format!("{} (`ctr run -d` starts none)", per_pod(f.logger_pss)),
        },
        Figure {
            row: "per-pod helper processes, shim + logger PSS".to_owned(),
            figure: per_pod(h.shim_pss + h.logger_pss),
            floor: per_pod(f.shim_pss + f.logger_pss),
        },
        Figure {
            row: format!("containerd RSS with {pods} pods running (before them)"),
            figure: format!(
                "{:.1} MiB ({:.1} MiB)",
                mib(ours.containerd.1),
                mib(ours.containerd.0)
            ),
            floor: format!(
                "{:.1} MiB ({:.1} MiB) with `ctr run` containers",
                mib(floor.containerd.1),
                mib(floor.containerd.0)
            ),
        },
    ]
}

/// `ctr run`s one container at a time, removing each before the next.
async fn ctr_one_by_one(
    rig: &Rig,
    prefix: &str,
    count: usize,
    cap: Duration,
) -> anyhow::Result<Timed> {
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let deadline = Instant::now() + cap;
        let id = format!("{prefix}-{i:02}");
        latencies.push(floor::ctr_run(rig, &id, deadline).await?);
        floor::remove(rig, &id, deadline).await?;
    }
    Ok(Timed::one_by_one(latencies))
}

/// Spawns `ctr run` for the whole batch at once, reads memory with them running, then
/// removes them.
async fn ctr_batch(rig: &Rig, sizes: Sizes) -> anyhow::Result<(Timed, Memory)> {
    let ids: Vec<String> = (0..sizes.batch)
        .map(|i| format!("floor-batch-{i:02}"))
        .collect();
    let before = Memory::before(rig)?;
    let deadline = Instant::now() + sizes.cap;
    let began = Instant::now();
    let runs = join_all(ids.iter().map(|id| floor::ctr_run(rig, id, deadline))).await;
    let elapsed = began.elapsed();
    let latencies = runs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    tokio::time::sleep(SETTLE).await;
    let memory = before.with_batch(rig)?;
    let deadline = Instant::now() + sizes.cap;
    for removed in join_all(ids.iter().map(|id| floor::remove(rig, id, deadline))).await {
        removed?;
    }
    Ok((Timed { latencies, elapsed }, memory))
}

/// A busybox pod that sleeps, bound to `node` or left for the scheduler. `sleep` ignores
/// SIGTERM, so a deletion takes the grace period; one second keeps it short.
fn pod(name: &str, node: Option<&str>) -> anyhow::Result<Pod> {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "sleep", "image": IMAGE, "command": ["sleep", "3600"]}],
    });
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": spec}),
    )?)
}

/// Creates a pod and returns when its create call began.
async fn create(pods: &Api<Pod>, name: &str, node: Option<&str>) -> anyhow::Result<Instant> {
    let object = pod(name, node)?;
    let began = Instant::now();
    pods.create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    Ok(began)
}

async fn delete(pods: &Api<Pod>, name: &str) -> anyhow::Result<()> {
    pods.delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting pod {name}"))?;
    Ok(())
}

/// Creates one pod at a time, each timed from its create call to its Ready watch event,
/// and deleted (and gone from the API) before the next.
async fn pods_one_by_one(
    pods: &Api<Pod>,
    watch: &Watch,
    prefix: &str,
    node: Option<&str>,
    count: usize,
    cap: Duration,
) -> anyhow::Result<Timed> {
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let deadline = Instant::now() + cap;
        let name = format!("{prefix}-{i:02}");
        let created = create(pods, &name, node).await?;
        latencies.push(watch.ready(&name, deadline).await? - created);
        delete(pods, &name).await?;
        watch.gone(&name, deadline).await?;
    }
    Ok(Timed::one_by_one(latencies))
}

/// Creates the whole batch at once, one task per pod, each timed from its create call to
/// its Ready watch event; reads memory with them running, then deletes them.
/// Reads of the running batch: its live usage, and (the floor) the pods themselves.
struct UsageReads {
    metrics: Timed,
    list: Timed,
}

/// Times `sizes.one_by_one` PodMetrics lists of the bench's namespace and as many pod
/// lists, once every pod of the batch has figures (a rate needs two readings).
async fn usage_reads(
    rig: &Rig,
    pods: &Api<Pod>,
    batch: usize,
    sizes: Sizes,
) -> anyhow::Result<UsageReads> {
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods");
    let read = || async {
        let request = http::Request::get(&path).body(Vec::new())?;
        let answer: serde_json::Value = rig.client.request(request).await?;
        anyhow::Ok(answer["items"].as_array().map_or(0, Vec::len))
    };
    let deadline = Instant::now() + sizes.cap;
    while read().await? < batch {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the batch's pods never all had usage figures"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut metrics = Vec::with_capacity(sizes.one_by_one);
    let mut list = Vec::with_capacity(sizes.one_by_one);
    for _ in 0..sizes.one_by_one {
        let began = Instant::now();
        read().await?;
        metrics.push(began.elapsed());
        let began = Instant::now();
        pods.list(&kube::api::ListParams::default()).await?;
        list.push(began.elapsed());
    }
    Ok(UsageReads {
        metrics: Timed::one_by_one(metrics),
        list: Timed::one_by_one(list),
    })
}

async fn pods_batch(
    rig: &Rig,
    pods: &Api<Pod>,
    watch: &Watch,
    sizes: Sizes,
) -> anyhow::Result<(Timed, Memory, UsageReads)> {
    let names: Vec<String> = (0..sizes.batch).map(|i| format!("batch-{i:02}")).collect();
    let before = Memory::before(rig)?;
    let deadline = Instant::now() + sizes.cap;
    let began = Instant::now();
    let creating: Vec<_> = names
        .iter()
        .map(|name| {
            let pods = pods.clone();
            let name = name.clone();
            let node = rig.node.clone();
            tokio::spawn(async move { create(&pods, &name, Some(&node)).await })
        })
        .collect();
    let mut latencies = Vec::with_capacity(names.len());
    let mut last = began;
    for (name, created) in names.iter().zip(creating) {
        let created = created.await??;
        let ready = watch.ready(name, deadline).await?;
        latencies.push(ready - created);
        last = last.max(ready);
    }
    tokio::time::sleep(SETTLE).await;
    let memory = before.with_batch(rig)?;
    let usage = usage_reads(rig, pods, names.len(), sizes).await?;
    for deleted in join_all(names.iter().map(|name| delete(pods, name))).await {
        deleted?;
    }
    let deadline = Instant::now() + sizes.cap;
    for name in &names {
        watch.gone(name, deadline).await?;
    }
    Ok((
        Timed {
            latencies,
            elapsed: last - began,
        },
        memory,
        usage,
    ))
}

/// One pod at a time again, unbound, with the scheduler and the controllers running as
/// `slipway up` runs them; the first pod is a warm-up.
async fn through_the_scheduler(
    rig: &Rig,
    pods: &Api<Pod>,
    watch: &Watch,
    sizes: Sizes,
) -> anyhow::Result<Timed> {
    let stop = CancellationToken::new();
    // They stop on an early return too.
    let _stopping = stop.clone().drop_guard();
    let scheduler = tokio::spawn(slipway_scheduler::run(rig.client.clone(), stop.clone()));
    let controllers = tokio::spawn(slipway_controllers::run(rig.client.clone(), stop.clone()));
    let warm = pods_one_by_one(pods, watch, "scheduled-warm", None, 1, sizes.cap).await?;
    eprintln!(
        "  warm-up pod: {:?} (the scheduler's first; not counted)",
        warm.latencies[0]
    );
    let timed =
        pods_one_by_one(pods, watch, "scheduled", None, sizes.one_by_one, sizes.cap).await?;
    stop.cancel();
    for (what, task) in [("scheduler", scheduler), ("controllers", controllers)] {
        tokio::time::timeout(STOP_CAP, task)
            .await
            .with_context(|| format!("the {what} did not stop within {STOP_CAP:?}"))?
            .with_context(|| format!("the {what} panicked"))?
            .with_context(|| format!("the {what} failed"))?;
    }
    Ok(timed)
}
