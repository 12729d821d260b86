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
/// None today; the signature leaves room for a controller that cannot start.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), reconciler::Error> {
    let election = leader::Election::new("slipway-controllers", leader::identity());
    let leading = client.clone();
    // Boxed: every controller's state lives in this one future.
    Box::pin(election.run(client, shutdown, move |term| run_all(leading.clone(), term))).await
}

/// Runs every controller until `shutdown` is cancelled.
///
/// # Errors
///
/// None today; discovery is retried until it answers or `shutdown` comes.
pub async fn run_all(client: Client, shutdown: CancellationToken) -> Result<(), reconciler::Error> {
    // Retried: a server still starting, or one shedding load with 429s, answers later.
    let mut failures = 0;
    let kinds = loop {
        match discovery::discover(&client).await {
            Ok(kinds) => break kinds,
            Err(e) => {
                tracing::warn!(error = %e, "discovering the served kinds failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(reconciler::retry_after(failures)) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
                failures += 1;
            }
        }
    };
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
