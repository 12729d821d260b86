//! The orchestrator's control loops, run inside `slipway server` as kube-rs clients of its
//! own API (D2): they read and write only through the API, exactly as an external
//! controller would. Today: the garbage collector.

pub mod gc;
pub mod reconciler;

use kube::Client;
use tokio_util::sync::CancellationToken;

/// Runs every controller until `shutdown` is cancelled.
///
/// # Errors
///
/// When a controller cannot start (discovery of the served resources failed).
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), reconciler::Error> {
    gc::run(client, shutdown).await
}
