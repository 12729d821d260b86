//! The orchestrator's control loops, run inside `slipway server` as kube-rs clients of its
//! own API (D2): they read and write only through the API, exactly as an external
//! controller would. Today: the garbage collector and the namespace, quota, replica set and
//! endpoints controllers.

pub mod discovery;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod namespace;
pub mod quota;
pub mod reconciler;
pub mod replicaset;

use kube::Client;
use tokio_util::sync::CancellationToken;

/// Runs every controller until `shutdown` is cancelled.
///
/// # Errors
///
/// When the controllers cannot start: the served kinds could not be discovered.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), reconciler::Error> {
    let kinds = discovery::discover(&client).await?;
    tokio::join!(
        gc::run(client.clone(), kinds.clone(), shutdown.clone()),
        namespace::run(client.clone(), kinds.clone(), shutdown.clone()),
        quota::run(client.clone(), kinds, shutdown.clone()),
        replicaset::run(client.clone(), shutdown.clone()),
        endpoints::run(client, shutdown),
    );
    Ok(())
}
