//! The shared Store conformance suite against the SQLite backend, on a temporary file and
//! a manual clock so lease cases never wait for real time.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use slipway_clock::ManualClock;
use slipway_store::Store;
use slipway_store::conformance::Backend;
use slipway_store_sqlite::{Options, SqliteStore};

struct Sqlite {
    store: Arc<SqliteStore>,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl Backend for Sqlite {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn advance(&self, by: Duration) -> BoxFuture<'_, ()> {
        self.clock.advance(by);
        Box::pin(async {})
    }
}

async fn sqlite() -> Sqlite {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let options = Options {
        clock: clock.shared(),
        ..Options::default()
    };
    let store = SqliteStore::open(dir.path().join("state.db"), options)
        .await
        .unwrap();
    Sqlite {
        store: Arc::new(store),
        clock,
        _dir: dir,
    }
}

slipway_store::conformance_tests!(sqlite);
