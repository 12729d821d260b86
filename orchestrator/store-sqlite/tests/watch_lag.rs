//! A watcher that stops reading while thousands of writes commit falls behind the live
//! broadcast; it must then catch up from the log and still see every change once, in order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use slipway_store::{Event, Store};
use slipway_store_sqlite::{Options, SqliteStore};

/// Far more than the broadcast (1024) and a watcher's buffer (256) hold together.
const WRITES: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_watcher_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path().join("state.db"), Options::default())
            .await
            .unwrap(),
    );
    let start = store.revision().await.unwrap();
    let mut watch = store.watch("/lag/", start).await.unwrap();

    let writers = (0..8).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in (w..WRITES).step_by(8) {
                store
                    .create(&format!("/lag/k{i:05}"), Bytes::from_static(b"v"), None)
                    .await
                    .unwrap();
            }
        })
    });
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(store.revision().await.unwrap(), start + WRITES as i64);

    let mut seen = Vec::with_capacity(WRITES);
    while seen.len() < WRITES {
        let event = tokio::time::timeout(Duration::from_secs(60), watch.next())
            .await
            .expect("watch stalled")
            .expect("watch ended")
            .expect("watch failed");
        assert!(matches!(event, Event::Put { prev: None, .. }));
        seen.push(event.revision());
    }
    let expected: Vec<i64> = (start + 1..=start + WRITES as i64).collect();
    assert_eq!(seen, expected);
}
