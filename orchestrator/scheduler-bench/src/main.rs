//! The scheduler benchmark, on hollow nodes (Node objects served by a kubelet that runs
//! no containers, as Kubernetes' kubemark): scheduler throughput for a batch of pending
//! pods beside the bare binding rate measured in the same run (a loop binding another
//! batch round-robin through `pods/binding` with the scheduler's concurrency and no
//! filtering or scoring: the ceiling the API allows), and the time a Deployment takes to
//! become fully available.
//!
//! Run with `cargo run --release -p slipway-scheduler-bench [-- --quick]`. The API server
//! runs in this process over SQLite with `slipway server`'s defaults, and every client
//! (scheduler, controllers, hollow kubelet, this driver) reaches it in-process, as the
//! server's own controllers do. Pods are created before a measurement starts; creating
//! them is not what is measured. Heartbeats are slowed so they do not weigh on the figures.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use slipway_apiserver::{ApiState, bootstrap, router};
use slipway_bench_support::{Figure, concurrent, print_figures};
use slipway_clock::SystemClock;
use slipway_hollow::{HollowNodes, Options, Shape};
use slipway_scheduler::scheduler::BINDS_IN_FLIGHT;
use slipway_store::Store;
use slipway_store_sqlite::SqliteStore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How much work the run does. Every wait is bounded by `cap`, the whole run by `total`.
#[derive(Clone, Copy)]
struct Sizes {
    nodes: usize,
    pods: usize,
    replicas: usize,
    cap: Duration,
    total: Duration,
}

const FULL: Sizes = Sizes {
    nodes: 1_000,
    pods: 10_000,
    replicas: 1_000,
    cap: Duration::from_secs(300),
    total: Duration::from_secs(30 * 60),
};

const QUICK: Sizes = Sizes {
    nodes: 100,
    pods: 1_000,
    replicas: 100,
    cap: Duration::from_secs(60),
    total: Duration::from_secs(10 * 60),
};

/// How long to wait for the Deployment controller to show any sign of life (a
/// ReplicaSet) before reporting that there is none.
const DEPLOYMENT_CONTROLLER_PROBE: Duration = Duration::from_secs(30);

/// Namespaces of their own keep each measurement's pods apart.
const FLOOR_NS: &str = "bench-floor";
const SCHEDULED_NS: &str = "bench-scheduled";
const DEPLOYMENT_NS: &str = "bench-deployment";

/// What the floor's pods name as their scheduler, so the scheduler leaves them alone.
const NOBODY: &str = "bench-floor";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // What the scheduler and controllers log (RUST_LOG, warnings by default) goes to stderr,
    // beside the progress lines.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let sizes = if std::env::args().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    let figures = tokio::time::timeout(sizes.total, run(sizes))
        .await
        .with_context(|| format!("the run took longer than its cap of {:?}", sizes.total))??;
    print_figures(&figures);
    Ok(())
}

fn pod(name: &str, scheduler: Option<&str>) -> serde_json::Value {
    let mut spec = json!({"containers": [{"name": "app", "image": "app:1",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]});
    if let Some(scheduler) = scheduler {
        spec["schedulerName"] = json!(scheduler);
    }
    json!({"metadata": {"name": name, "labels": {"app": "bench"}}, "spec": spec})
}

async fn run(sizes: Sizes) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("state.db"), Default::default()).await?);
    let shutdown = CancellationToken::new();
    let state = Arc::new(ApiState::new(
        store,
        SystemClock::shared(),
        shutdown.clone(),
    ));
    bootstrap(&state).await?;
    // Bindings are counted at the API's door, so both measurements are timed the same
    // way and observing them costs nothing (a watch would cost the API as much as the
    // scheduler's own).
    let bound = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&bound);
    let app = router(state).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let counter = Arc::clone(&counter);
            async move {
                let binding =
                    request.method() == Method::POST && request.uri().path().ends_with("/binding");
                let response = next.run(request).await;
                if binding && response.status() == StatusCode::CREATED {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                response
            }
        },
    ));
    let client = Client::new(app, "default");
    for namespace in [FLOOR_NS, SCHEDULED_NS, DEPLOYMENT_NS] {
        let object: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &object)
            .await?;
    }

    eprintln!("registering {} hollow nodes ...", sizes.nodes);
    let options = Options {
        // Within the node lifecycle controller's 40 s grace, or every node turns Unknown and
        // unreachable once the controllers start; 50 renewals a second for 1,000 nodes.
        lease_renewal: Duration::from_secs(20),
        status_report: Duration::from_secs(600),
        ..Options::default()
    };
    let shape = Shape::new("32", "256Gi", 110);
    let hollow =
        HollowNodes::uniform(client.clone(), "hollow", sizes.nodes, &shape, options).await?;
    let nodes = hollow.names();

    eprintln!("creating {} pods for each measurement ...", sizes.pods);
    create_pods(&client, FLOOR_NS, sizes.pods, Some(NOBODY)).await?;
    create_pods(&client, SCHEDULED_NS, sizes.pods, None).await?;

    eprintln!("binding round-robin ...");
    let began = Instant::now();
    let floor = bare_binding(&client, &nodes, sizes).await?;
    let floor_elapsed = began.elapsed();
    anyhow::ensure!(
        floor.count() == sizes.pods && bound.load(Ordering::Relaxed) == sizes.pods,
        "the bare binding loop bound {} of {} pods within {:?}",
        floor.count(),
        sizes.pods,
        sizes.cap
    );
    let floor_rate = sizes.pods as f64 / floor_elapsed.as_secs_f64();
    // The hollow kubelet starts what was bound before the next measurement begins.
    wait_for(
        &client,
        FLOOR_NS,
        "status.phase=Running",
        sizes.pods,
        sizes.cap,
    )
    .await?;

    eprintln!("scheduling ...");
    bound.store(0, Ordering::Relaxed);
    let stop = CancellationToken::new();
    let began = Instant::now();
    let scheduler = tokio::spawn(slipway_scheduler::run(client.clone(), stop.clone()));
    let mut first = None;
    loop {
        let count = bound.load(Ordering::Relaxed);
        if count > 0 {
            first.get_or_insert_with(|| began.elapsed());
        }
        if count >= sizes.pods {
            break;
        }
        anyhow::ensure!(
            began.elapsed() < sizes.cap,
            "the scheduler bound {count} of {} pods within {:?}",
            sizes.pods,
            sizes.cap
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = began.elapsed();
    let throughput = sizes.pods as f64 / elapsed.as_secs_f64();
    let first = first.unwrap_or(elapsed);
    let steady = (sizes.pods - 1) as f64 / (elapsed - first).as_secs_f64();
    wait_for(
        &client,
        SCHEDULED_NS,
        "status.phase=Running",
        sizes.pods,
        sizes.cap,
    )
    .await?;

    eprintln!("rolling out a {}-replica Deployment ...", sizes.replicas);
    let controllers = tokio::spawn(slipway_controllers::run_all(client.clone(), stop.clone()));
    let rollout = deployment(&client, sizes)
        .await
        .context("rolling out the Deployment")?;

    stop.cancel();
    scheduler.await?.context("the scheduler failed")?;
    controllers.await?.context("the controllers failed")?;
    hollow.stop().await;
    shutdown.cancel();

    Ok(vec![
        Figure {
            row: format!(
                "scheduler throughput, {} pods on {} hollow nodes",
                sizes.pods, sizes.nodes
            ),
            figure: format!(
                "{throughput:.0} pods/s ({:.1} s from start; {steady:.0} pods/s after the first binding at {:.1} s)",
                elapsed.as_secs_f64(),
                first.as_secs_f64()
            ),
            floor: format!(
                "{floor_rate:.0} pods/s bare binding ({:.1} s, {BINDS_IN_FLIGHT} in flight)",
                floor_elapsed.as_secs_f64()
            ),
        },
        Figure {
            row: format!(
                "{}-replica Deployment fully available on {} hollow nodes",
                sizes.replicas, sizes.nodes
            ),
            figure: rollout,
            floor: "—".to_owned(),
        },
    ])
}

async fn create_pods(
    client: &Client,
    namespace: &str,
    count: usize,
    scheduler: Option<&'static str>,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    // Set-up, not measured: the cap is generous and the count is checked.
    let made = concurrent(32, count, Duration::from_secs(600), move |i| {
        let pods = pods.clone();
        async move {
            let object: Pod = serde_json::from_value(pod(&format!("p-{i:05}"), scheduler))?;
            pods.create(&PostParams::default(), &object).await?;
            Ok::<_, anyhow::Error>(())
        }
    })
    .await?;
    anyhow::ensure!(
        made.count() == count,
        "created {} of {count} pods",
        made.count()
    );
    Ok(())
}

/// The floor: binds the floor's pods round-robin, with the scheduler's concurrency.
async fn bare_binding(
    client: &Client,
    nodes: &[String],
    sizes: Sizes,
) -> anyhow::Result<slipway_bench_support::Sample> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), FLOOR_NS);
    let nodes: Arc<[String]> = nodes.into();
    concurrent(BINDS_IN_FLIGHT, sizes.pods, sizes.cap, move |i| {
        let pods = pods.clone();
        let nodes = Arc::clone(&nodes);
        async move {
            let name = format!("p-{i:05}");
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": FLOOR_NS},
                "target": {"apiVersion": "v1", "kind": "Node", "name": nodes[i % nodes.len()]},
            });
            pods.create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await?;
            Ok::<_, anyhow::Error>(())
        }
    })
    .await
}

/// Waits until `target` pods of `namespace` match `fields`, watching rather than polling.
async fn wait_for(
    client: &Client,
    namespace: &str,
    fields: &str,
    target: usize,
    cap: Duration,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut events =
        std::pin::pin!(watcher(pods, watcher::Config::default().fields(fields)).default_backoff());
    let mut matching = HashSet::new();
    let deadline = Instant::now() + cap;
    while matching.len() < target {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .with_context(|| {
                format!(
                    "{} of {target} pods in {namespace} matched {fields} within {cap:?}",
                    matching.len()
                )
            })?
            .context("the watch ended")?;
        match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                matching.insert(p.name_any());
            }
            Ok(watcher::Event::Delete(p)) => {
                matching.remove(&p.name_any());
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(e) => eprintln!("watch error, retrying: {e}"),
        }
    }
    Ok(())
}

/// Rolls out a Deployment and reports how long it took to become fully available, or why
/// there is no figure.
async fn deployment(client: &Client, sizes: Sizes) -> anyhow::Result<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), DEPLOYMENT_NS);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), DEPLOYMENT_NS);
    let template = pod("unused", None);
    let object: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": sizes.replicas, "selector": {"matchLabels": {"app": "bench"}},
                 "template": {"metadata": {"labels": {"app": "bench"}}, "spec": template["spec"]}},
    }))?;
    let began = Instant::now();
    while busy_is_none(deployments.create(&PostParams::default(), &object).await)
        .context("creating the Deployment")?
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wanted = i32::try_from(sizes.replicas)?;
    let mut seen_a_replica_set = false;
    let mut available = 0;
    loop {
        // A busy API answers 429 to this driver as to any client; it just looks again.
        if let Some(deployment) = busy_is_none(deployments.get_status("web").await)? {
            available = deployment
                .status
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
        }
        if available >= wanted {
            return Ok(format!("{:.1} s", began.elapsed().as_secs_f64()));
        }
        if !seen_a_replica_set {
            if let Some(listed) = busy_is_none(sets.list(&ListParams::default()).await)? {
                seen_a_replica_set = !listed.items.is_empty();
            }
            if !seen_a_replica_set && began.elapsed() > DEPLOYMENT_CONTROLLER_PROBE {
                return Ok("n/a (no deployment controller)".to_owned());
            }
        }
        if began.elapsed() > sizes.cap {
            return Ok(format!(
                "not within {:?} ({available} of {wanted} available)",
                sizes.cap
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A read's result with the API's 429 (too busy now) turned into `None`.
fn busy_is_none<T>(result: Result<T, kube::Error>) -> anyhow::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(kube::Error::Api(status)) if status.code == 429 => Ok(None),
        Err(e) => Err(e.into()),
    }
}
