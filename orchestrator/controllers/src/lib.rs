//! The orchestrator's control loops, run inside `slipway server` as kube-rs clients of its
//! own API (D2): they read and write only through the API, exactly as an external
//! controller would: the garbage collector and the namespace, quota, deployment, replica
//! set, endpoints and node lifecycle controllers.

pub mod claim;
pub mod deployment;
pub mod discovery;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod leader;
pub mod namespace;
pub mod nodes;
pub mod quota;
pub mod reconciler;
pub mod replicaset;

use kube::Client;
use tokio_util::sync::CancellationToken;

/// Runs every controller while this server holds the `slipway-controllers` Lease, until
/// `shutdown` is cancelled: of several servers on one store, exactly one runs them.
///
/// # Errors
///
/// When the controllers cannot start: the served kinds could not be discovered.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), reconciler::Error> {
    let election = leader::Election::new("slipway-controllers", identity());
    let leading = client.clone();
    // Boxed: every controller's state lives in this one future.
    Box::pin(election.run(client, shutdown, move |term| run_all(leading.clone(), term))).await
}

/// This server's name in the Lease: host and process, unique among servers that share it.
fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "slipway".into());
    format!("{host}_{}", std::process::id())
}

/// Runs every controller until `shutdown` is cancelled.
///
/// # Errors
///
/// When the controllers cannot start: the served kinds could not be discovered.
pub async fn run_all(client: Client, shutdown: CancellationToken) -> Result<(), reconciler::Error> {
    let kinds = discovery::discover(&client).await?;
    tokio::join!(
        gc::run(client.clone(), kinds.clone(), shutdown.clone()),
        namespace::run(client.clone(), kinds.clone(), shutdown.clone()),
        quota::run(client.clone(), kinds, shutdown.clone()),
        deployment::run(client.clone(), shutdown.clone()),
        replicaset::run(client.clone(), shutdown.clone()),
        endpoints::run(client.clone(), shutdown.clone()),
        nodes::run(client, nodes::Timing::default(), shutdown),
    );
    Ok(())
}
