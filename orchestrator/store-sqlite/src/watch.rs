//! Watches served from the committed log in revision order: each watcher first replays
//! the log after its start revision, then follows the writer's live broadcast, and falls
//! back to the log whenever it lags behind the broadcast.

use std::sync::Arc;

use futures::StreamExt;
use slipway_store::{Error, Event, Result, Revision, WatchStream};
use sqlx::SqlitePool;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::Shared;
use crate::rows::{changes_after, counters, range_end};

/// Log rows read per catch-up query.
const CATCH_UP_CHUNK: i64 = 512;

/// Events buffered per watcher before it falls back to reading the log.
const WATCHER_BUFFER: usize = 256;

pub(crate) fn spawn(
    shared: Arc<Shared>,
    reads: SqlitePool,
    prefix: String,
    after: Revision,
) -> WatchStream {
    let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
    tokio::spawn(async move {
        let cancel = shared.cancel.clone();
        tokio::select! {
            () = follow(&shared, &reads, &prefix, after, &tx) => {}
            () = cancel.cancelled() => {
                // A consumer that stopped reading must not keep this task alive.
                let _ = tx.try_send(Err(Error::Unavailable("the store is shutting down".into())));
            }
            () = tx.closed() => {}
        }
    });
    Box::pin(
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .fuse(),
    )
}

/// Delivers changes until the receiver goes away or an error ends the watch.
async fn follow(
    shared: &Shared,
    reads: &SqlitePool,
    prefix: &str,
    mut last: Revision,
    tx: &mpsc::Sender<Result<Event>>,
) {
    let end = range_end(prefix);
    loop {
        // Subscribe before reading the log: whatever commits after the read is then
        // certain to arrive through the broadcast.
        let mut live = shared.events.subscribe();
        match catch_up(reads, prefix, last, tx).await {
            Ok(Some(caught_up)) => last = caught_up,
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
        loop {
            match live.recv().await {
                Ok(event) => {
                    let revision = event.revision();
                    if revision <= last {
                        continue;
                    }
                    last = revision;
                    let key = event.key();
                    if key >= prefix && key < end.as_str() && tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                // Fell behind the broadcast: the log still has everything.
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

/// Replays the log after `last`; returns the revision it is complete up to, or `None` when
/// the receiver has gone.
async fn catch_up(
    reads: &SqlitePool,
    prefix: &str,
    mut last: Revision,
    tx: &mpsc::Sender<Result<Event>>,
) -> Result<Option<Revision>> {
    loop {
        let mut snapshot = reads.begin().await.map_err(unavailable)?;
        let (revision, compacted) = counters(&mut snapshot).await.map_err(unavailable)?;
        if last < compacted {
            return Err(Error::Compacted {
                requested: last,
                compacted,
            });
        }
        let changes = changes_after(&mut snapshot, prefix, last, CATCH_UP_CHUNK)
            .await
            .map_err(internal)?;
        drop(snapshot);
        let complete = (changes.len() as i64) < CATCH_UP_CHUNK;
        for event in changes {
            last = event.revision();
            if tx.send(Ok(event)).await.is_err() {
                return Ok(None);
            }
        }
        if complete {
            return Ok(Some(last.max(revision)));
        }
    }
}

pub(crate) fn unavailable(e: sqlx::Error) -> Error {
    Error::Unavailable(Box::new(e))
}

pub(crate) fn internal(e: sqlx::Error) -> Error {
    Error::Internal(Box::new(e))
}
