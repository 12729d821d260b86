//! The API server benchmark: create, get, a list of 10,000 ConfigMaps and watch delivery
//! over HTTP, at 1, 10 and 100 concurrent clients, for SQLite and etcd, each figure beside
//! its floor measured in the same run: the same work on a fresh bare `Store` of the same
//! backend type, so the table shows what the HTTP, JSON and admission layer costs.
//!
//! With `--authz` it measures instead what authorization adds to a get, with 100
//! ClusterRoles and 1,000 RoleBindings, beside the same get with authorization off.
//!
//! Run with `cargo run --release -p slipway-apiserver-bench [-- --quick]`; it serves the
//! API in-process on a loopback port over plain HTTP, starts its own etcd on loopback and
//! prints a Markdown table. For watch rows, clients is the number of watchers of one
//! sequential writer, ops/s counts deliveries (writes × watchers) and latency runs from
//! the start of a create to its arrival at each watcher.

mod api;
mod authz;
mod target;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use slipway_apiserver::{ApiState, bootstrap, router, serve};
use slipway_bench_support::{
    Ratio, Row, Sample, concurrent, deliveries, print_figures, print_table,
};
use slipway_clock::SystemClock;
use slipway_store::Store;
use slipway_store_etcd::EtcdStore;
use slipway_store_sqlite::{Durability, Options, SqliteStore};
use slipway_testkit::etcd::EtcdServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::target::{PAGE, Target};

/// How much work each measurement does. Every loop is bounded by a count and by `cap`,
/// and the whole run by `total`, so the benchmark stops by itself.
#[derive(Clone, Copy)]
struct Sizes {
    creates: usize,
    gets: usize,
    list_objects: usize,
    lists: usize,
    watched_writes: usize,
    cap: Duration,
    total: Duration,
}

const FULL: Sizes = Sizes {
    creates: 3_000,
    gets: 30_000,
    list_objects: 10_000,
    lists: 10,
    watched_writes: 200,
    cap: Duration::from_secs(15),
    total: Duration::from_secs(15 * 60),
};

const QUICK: Sizes = Sizes {
    creates: 300,
    gets: 2_000,
    list_objects: 1_000,
    lists: 3,
    watched_writes: 20,
    cap: Duration::from_secs(5),
    total: Duration::from_secs(5 * 60),
};

const CLIENTS: [usize; 3] = [1, 10, 100];

/// Namespaces of their own keep each measurement's objects out of the others' lists and
/// watches.
const CREATES_NS: &str = "default";
const LIST_NS: &str = "bench-list";
const WATCH_NS: &str = "bench-watch";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes = if std::env::args().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    if std::env::args().any(|a| a == "--authz") {
        let (rows, figures) = tokio::time::timeout(sizes.total, authz::rows(sizes.gets, sizes.cap))
            .await
            .with_context(|| format!("the run took longer than its cap of {:?}", sizes.total))??;
        print_table(&rows, Ratio::Added);
        println!();
        print_figures(&figures);
        return Ok(());
    }
    let rows = tokio::time::timeout(sizes.total, run(sizes))
        .await
        .with_context(|| format!("the run took longer than its cap of {:?}", sizes.total))??;
    print_table(&rows, Ratio::Omitted);
    Ok(())
}

async fn run(sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();

    let dir = tempfile::tempdir()?;
    let options = Options {
        durability: Durability::Full,
        ..Options::default()
    };
    let ours = SqliteStore::open(dir.path().join("api.db"), options.clone()).await?;
    let floor = SqliteStore::open(dir.path().join("floor.db"), options).await?;
    rows.extend(backend("sqlite", Arc::new(ours), Arc::new(floor), sizes).await?);

    let etcd = EtcdServer::start().context("starting etcd (apt-get install etcd-server)")?;
    let ours = EtcdStore::connect(&[etcd.endpoint()], Some("/bench/".to_owned())).await?;
    let floor = EtcdStore::connect(&[etcd.endpoint()], Some("/bench-floor/".to_owned())).await?;
    rows.extend(backend("etcd", Arc::new(ours), Arc::new(floor), sizes).await?);
    Ok(rows)
}

/// The API server in this process on a loopback port.
struct Server {
    api: Arc<Api>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(store: Arc<dyn Store>) -> anyhow::Result<Server> {
        let shutdown = CancellationToken::new();
        // The constructor, as the binary uses it: the store metered for `/metrics`.
        let state = Arc::new(ApiState::new(
            store,
            SystemClock::shared(),
            shutdown.clone(),
        ));
        bootstrap(&state).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let api = Arc::new(Api::new(listener.local_addr()?));
        let task = tokio::spawn(serve(listener, router(state), shutdown.clone()));
        Ok(Server {
            api,
            shutdown,
            task,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        // Pooled keep-alive connections close with the client, letting shutdown finish.
        drop(self.api);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .context("the API server did not stop")???;
        Ok(())
    }
}

async fn backend(
    name: &'static str,
    store: Arc<dyn Store>,
    floor: Arc<dyn Store>,
    sizes: Sizes,
) -> anyhow::Result<Vec<Row>> {
    eprintln!("measuring {name} ...");
    let server = Server::start(store).await?;
    let sides = [Target::Api(server.api.clone()), Target::Bare(floor)];
    let mut rows = Vec::new();
    let row = |operation: &str, clients: usize, [ours, floor]: [Sample; 2]| {
        Row::new(name, operation, clients, ours, floor)
    };

    // Gets read what the single-client creates wrote; a capped run may have written fewer.
    let mut written = [0; 2];
    for clients in CLIENTS {
        let samples = each(&sides, |target, _| async move {
            concurrent(clients, sizes.creates, sizes.cap, move |i| {
                let target = target.clone();
                async move {
                    target
                        .create(CREATES_NS, &format!("c{clients}-{i:06}"))
                        .await
                }
            })
            .await
        })
        .await?;
        if clients == 1 {
            written = [samples[0].count(), samples[1].count()];
        }
        rows.push(row("create", clients, samples));
    }

    for clients in CLIENTS {
        let samples = each(&sides, |target, side| async move {
            let written = written[side].max(1);
            concurrent(clients, sizes.gets, sizes.cap, move |i| {
                let target = target.clone();
                async move {
                    target
                        .get(CREATES_NS, &format!("c1-{:06}", i % written))
                        .await
                }
            })
            .await
        })
        .await?;
        rows.push(row("get", clients, samples));
    }

    let objects = sizes.list_objects;
    for (operation, page) in [("full", None), ("limit=500 pages", Some(PAGE))] {
        let samples = each(&sides, |target, _| async move {
            if page.is_none() {
                fill(&target, objects).await?;
            }
            concurrent(1, sizes.lists, sizes.cap, move |_| {
                let target = target.clone();
                async move {
                    let seen = target.list(LIST_NS, page).await?;
                    anyhow::ensure!(seen.is_none_or(|n| n == objects), "listed {seen:?}");
                    Ok(())
                }
            })
            .await
        })
        .await?;
        rows.push(row(&format!("list {objects} ({operation})"), 1, samples));
    }

    sides[0].namespace(WATCH_NS).await?;
    for watchers in CLIENTS {
        let writes = sizes.watched_writes;
        let samples = each(&sides, |target, _| async move {
            let revision = target.revision(WATCH_NS).await?;
            let mut receivers = Vec::with_capacity(watchers);
            for _ in 0..watchers {
                receivers.push(target.watch(WATCH_NS, revision, writes).await?);
            }
            deliveries(receivers, writes, |i| {
                let target = target.clone();
                async move {
                    target
                        .create(WATCH_NS, &format!("w{watchers}-{i:06}"))
                        .await
                }
            })
            .await
        })
        .await?;
        rows.push(row("watch, 1 writer", watchers, samples));
    }

    drop(sides);
    server.stop().await?;
    Ok(rows)
}

/// Measures the API server, then the floor, with the same closure; `side` is 0 or 1.
async fn each<F, Fut>(sides: &[Target; 2], measure: F) -> anyhow::Result<[Sample; 2]>
where
    F: Fn(Target, usize) -> Fut,
    Fut: Future<Output = anyhow::Result<Sample>>,
{
    let ours = measure(sides[0].clone(), 0).await?;
    let floor = measure(sides[1].clone(), 1).await?;
    Ok([ours, floor])
}

/// Fills the list namespace with `objects` ConfigMaps and checks a paged list sees them all.
async fn fill(target: &Target, objects: usize) -> anyhow::Result<()> {
    target.namespace(LIST_NS).await?;
    let filler = target.clone();
    // The cap is generous: this is set-up, and the count check below catches a short fill.
    concurrent(32, objects, Duration::from_secs(120), move |i| {
        let target = filler.clone();
        async move { target.create(LIST_NS, &format!("l-{i:06}")).await }
    })
    .await?;
    let seen = target.list(LIST_NS, Some(PAGE)).await?;
    anyhow::ensure!(seen == Some(objects), "filled {objects}, listed {seen:?}");
    Ok(())
}
