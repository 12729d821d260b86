//! The one reconciler shape every controller follows: an idempotent, level-triggered
//! `reconcile(key, ctx) -> Action`, and one error policy that retries with backoff.

use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object or something it depends on changes.
    AwaitChange,
    /// Look again after this long, whatever happens (a wait the API does not signal).
    RequeueAfter(Duration),
}

/// Why a reconcile failed; it is retried by [`retry_after`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error or could not be reached.
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    /// Discovery of the served resources failed.
    #[error("discovering the served resources failed: {0}")]
    Discovery(String),
}

/// The error policy: retry after 100 ms, doubling per consecutive failure up to 30 s, so a
/// struggling API server is not hammered and a passing blip costs little.
pub fn retry_after(failures: u32) -> Duration {
    let millis = 100u64.saturating_mul(1 << failures.min(9));
    Duration::from_millis(millis.min(30_000))
}

/// Drives a kube-runtime controller's result stream until it ends or `shutdown` is
/// cancelled. Failures were already reported by the error policy, so results are only
/// traced. Stopping drops the controller mid-flight, which leaves nothing half done: every
/// reconcile is idempotent and each write is one atomic request. (kube's own graceful
/// shutdown waits for its cache to fill first, which never happens if the server stops
/// that early.)
pub async fn drive<T: Debug, E: std::fmt::Display>(
    name: &str,
    results: impl Stream<Item = Result<T, E>>,
    shutdown: &CancellationToken,
) {
    let results = results.for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(controller = name, error = %e, "reconcile failed");
        }
    });
    tokio::select! {
        () = results => {}
        () = shutdown.cancelled() => {}
    }
}

/// A write's outcome with a lost race (409) or a vanished object (404) counted as settled:
/// the change that beat it arrives as an event and is reconciled again. `Some` carries what
/// a write that landed returned.
///
/// # Errors
///
/// Any other failure, for the error policy to retry.
pub fn settled<T>(result: Result<T, kube::Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        assert_eq!(retry_after(0), Duration::from_millis(100));
        assert_eq!(retry_after(3), Duration::from_millis(800));
        assert_eq!(retry_after(9), Duration::from_millis(30_000));
        assert_eq!(retry_after(u32::MAX), Duration::from_millis(30_000));
    }
}
