//! The Service proxy and gateway benchmark: short HTTP/1.1 GETs to a tiny server inside a
//! pod, through the node's Service proxy (a ClusterIP inside the client pod, the endpoint
//! on this node or on another node through its tunnel) and through the Ingress gateway,
//! each beside the floor DESIGN names: a direct connection inside the server pod's network
//! namespace, with the same connection handling and the same number of clients. Each way
//! runs on one kept-alive connection and with a new connection per request, and with many
//! kept-alive clients at once.
//!
//! Run as root with `cargo run --release -p slipway-net-bench [-- --quick]`; it needs `ip`
//! (iproute2). Pods are bare network namespaces (`slipway-netbench-<pid>-*`) with `lo` up
//! and a loopback address, as the agent makes them; the proxies, the tunnel and the gateway
//! are the real ones, in this process, with the clients and the server sharing its runtime.
//! The namespaces are removed at the end, on failure and on Ctrl-C too.

mod http;
mod load;
mod pods;
mod rig;

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context;
use slipway_bench_support::{Ratio, Row, print_table};
use tokio::signal::unix::{SignalKind, signal};

use crate::load::{Connection, Timed, at_once, one_at_a_time};
use crate::pods::Namespaces;
use crate::rig::Rig;

/// How much work the run does. Each part stops starting requests after `cap`, and the
/// whole run is cut at `total`.
#[derive(Clone, Copy)]
struct Sizes {
    /// Requests each way, one at a time on a kept-alive connection.
    kept_alive: usize,
    /// Requests each way, one at a time on a new connection each.
    new_connections: usize,
    /// Rounds the one-at-a-time requests are interleaved in.
    rounds: usize,
    /// Clients at once, each on its own kept-alive connection, and their requests in all.
    clients: usize,
    at_once: usize,
    cap: Duration,
    total: Duration,
}

const FULL: Sizes = Sizes {
    kept_alive: 20_000,
    new_connections: 5_000,
    rounds: 20,
    clients: 16,
    at_once: 20_000,
    cap: Duration::from_secs(60),
    total: Duration::from_secs(10 * 60),
};

const QUICK: Sizes = Sizes {
    kept_alive: 1_000,
    new_connections: 300,
    rounds: 5,
    clients: 16,
    at_once: 2_000,
    cap: Duration::from_secs(15),
    total: Duration::from_secs(2 * 60),
};

/// The client pod's and the server pod's addresses, as the agent would give them.
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 71, 0, 2);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 71, 0, 3);

/// The rows beside the floor, in the order the rig's targets are measured after it.
const WAYS: [&str; 3] = [
    "service proxy, same node",
    "service proxy, other node (tunnel)",
    "gateway (Ingress → service proxy)",
];

fn main() -> anyhow::Result<()> {
    // What the proxies and the gateway log (SLIPWAY_LOG, e.g. `slipway_net=debug`;
    // warnings by default) goes to stderr beside the progress lines.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let sizes = if std::env::args().skip(1).any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let rows = runtime.block_on(run(sizes))?;
    print_table(&rows, Ratio::Added);
    Ok(())
}

/// Makes the pods and measures, until done, the run's cap, or a signal; the pods go in
/// every case.
async fn run(sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    // Caught from here on, so an interrupt cannot leave namespaces behind.
    let mut interrupt = signal(SignalKind::interrupt()).context("catching SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("catching SIGTERM")?;
    let mut namespaces = Namespaces::new();
    let measured = async {
        eprintln!("making the pods' namespaces and starting the server, proxies and gateway ...");
        let client = namespaces.pod("client", CLIENT_IP).await?;
        let server = namespaces.pod("server", SERVER_IP).await?;
        let rig = Rig::start(&client, &server).await?;
        tokio::time::timeout(sizes.total, measure(&rig, sizes))
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "the run took longer than its cap of {:?}",
                    sizes.total
                ))
            })
    };
    tokio::select! {
        measured = measured => measured,
        _ = interrupt.recv() => Err(anyhow::anyhow!("interrupted")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated")),
    }
}

async fn measure(rig: &Rig, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let targets = [&rig.direct, &rig.same_node, &rig.cross_node, &rig.gateway];
    let mut rows = Vec::new();

    eprintln!("one at a time on a kept-alive connection ...");
    let kept = one_at_a_time(
        &targets,
        Connection::KeptAlive,
        sizes.kept_alive,
        sizes.rounds,
        sizes.cap,
    )
    .await?;
    rows.extend(beside_the_floor(&kept, "GET, kept-alive connection")?);

    eprintln!("one at a time on a new connection each ...");
    let new = one_at_a_time(
        &targets,
        Connection::New,
        sizes.new_connections,
        sizes.rounds,
        sizes.cap,
    )
    .await?;
    rows.extend(beside_the_floor(&new, "GET, new connection each")?);

    for (way, target) in WAYS.iter().zip(&targets[1..]) {
        eprintln!(
            "{} clients at once, {way}, and the floor just before ...",
            sizes.clients
        );
        let floor = at_once(&rig.direct, sizes.clients, sizes.at_once, sizes.cap).await?;
        let ours = at_once(target, sizes.clients, sizes.at_once, sizes.cap).await?;
        let operation = format!("GET, kept-alive connections × {}", ours.count());
        rows.push(Row::new(way, &operation, sizes.clients, ours, floor));
    }
    Ok(rows)
}

/// One row per way after the floor (the first), one client each.
fn beside_the_floor(timed: &[Timed], operation: &str) -> anyhow::Result<Vec<Row>> {
    let (floor, ways) = timed.split_first().context("no floor was measured")?;
    Ok(WAYS
        .iter()
        .zip(ways)
        .map(|(way, ours)| {
            let operation = format!("{operation} × {}", ours.count());
            Row::new(
                way,
                &operation,
                1,
                ours.clone().sample(),
                floor.clone().sample(),
            )
        })
        .collect())
}
