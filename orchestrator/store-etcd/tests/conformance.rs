//! The shared store conformance suite, run against a real etcd per case.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use slipway_store::Store;
use slipway_store::conformance::Backend;
use slipway_store_etcd::EtcdStore;
use slipway_testkit::EtcdServer;

struct EtcdBackend {
    store: Arc<EtcdStore>,
    // Dropped after the store, so etcd dies with the case and not before its client.
    _server: EtcdServer,
}

impl Backend for EtcdBackend {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn advance(&self, by: Duration) -> BoxFuture<'_, ()> {
        // etcd's leases run on its own wall clock.
        Box::pin(tokio::time::sleep(by))
    }

    fn lease_ttl(&self) -> Duration {
        // etcd's floor is 2 s with default election settings; a little above it keeps the
        // lease cases short while a keep-alive still has a second of slack.
        Duration::from_secs(3)
    }
}

async fn new_backend() -> EtcdBackend {
    let server = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .expect("etcd start task")
        .expect("start etcd");
    let store = EtcdStore::connect(&[server.endpoint()], None)
        .await
        .expect("connect to etcd");
    EtcdBackend {
        store: Arc::new(store),
        _server: server,
    }
}

slipway_store::conformance_tests!(new_backend);
