//! Lease expiry: a task that sleeps on the store's clock until the next lease deadline and
//! then asks the writer to end every expired lease, deleting its keys.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use crate::Shared;
use crate::writer::{Op, Request};

/// How long to wait before retrying after the store failed to answer.
const RETRY: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>, reads: SqlitePool, writer: mpsc::WeakSender<Request>) {
    let cancel = shared.cancel.clone();
    loop {
        let next: Option<i64> = match sqlx::query_scalar("SELECT MIN(expires_ms) FROM lease")
            .fetch_one(&reads)
            .await
        {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "reading lease deadlines failed");
                Some(crate::writer::millis(shared.clock.now()) + RETRY.as_millis() as i64)
            }
        };
        let sleep = async {
            match next {
                Some(ms) => {
                    let deadline =
                        UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                    shared.clock.sleep_until(deadline).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = shared.leases_changed.notified() => continue,
            () = sleep => {}
        }
        let Some(writer) = writer.upgrade() else {
            return;
        };
        let (reply, answer) = oneshot::channel();
        if writer
            .send(Request {
                op: Op::ExpireLeases,
                reply,
            })
            .await
            .is_err()
        {
            return;
        }
        drop(writer);
        match answer.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "expiring leases failed");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
            Err(_) => return,
        }
    }
}
