//! The store benchmark: creates, gets, a 10,000-key list and watch delivery to 100
//! watchers, for each backend beside its floor measured in the same run — raw sqlx
//! statements with the same pragmas on a file, raw etcd-client calls on the same etcd.
//!
//! Run with `cargo run --release -p slipway-store-bench [-- --quick]`; it starts its own
//! etcd on loopback and prints a Markdown table. For watch rows, ops/s counts deliveries
//! (writes × watchers) and latency runs from the start of the write to each arrival.

mod floor;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use slipway_bench_support::{Ratio, Row, Sample, concurrent, deliveries, print_table};
use slipway_store::{ListOptions, Store};
use slipway_store_etcd::EtcdStore;
use slipway_store_sqlite::{Durability, Options, SqliteStore};
use slipway_testkit::etcd::EtcdServer;

use crate::floor::{Floor, UNCAPPED};

/// How much work each measurement does; bounded so the whole run stops by itself.
#[derive(Clone, Copy)]
struct Sizes {
    creates: usize,
    gets: usize,
    list_keys: usize,
    lists: usize,
    watchers: usize,
    watched_writes: usize,
}

const FULL: Sizes = Sizes {
    creates: 4_000,
    gets: 40_000,
    list_keys: 10_000,
    lists: 10,
    watchers: 100,
    watched_writes: 300,
};

const QUICK: Sizes = Sizes {
    creates: 400,
    gets: 2_000,
    list_keys: 1_000,
    lists: 3,
    watchers: 10,
    watched_writes: 30,
};

/// The value written by every create: the size of a small Kubernetes object.
const VALUE_BYTES: usize = 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes = if std::env::args().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    let mut rows = Vec::new();

    for durability in [Durability::Full, Durability::Normal] {
        let dir = tempfile::tempdir()?;
        let name = match durability {
            Durability::Full => "sqlite (synchronous=FULL)",
            Durability::Normal => "sqlite (synchronous=NORMAL)",
        };
        let store = SqliteStore::open(
            dir.path().join("state.db"),
            Options {
                durability,
                ..Options::default()
            },
        )
        .await?;
        let floor = Floor::sqlite(&dir.path().join("floor.db"), durability).await?;
        rows.extend(run(name, Arc::new(store), &floor, sizes).await?);
    }

    let etcd = EtcdServer::start().context("starting etcd (apt-get install etcd-server)")?;
    let store = EtcdStore::connect(&[etcd.endpoint()], Some("/bench-store/".to_owned())).await?;
    let floor = Floor::etcd(&etcd.endpoint(), "/bench-floor").await?;
    rows.extend(run("etcd", Arc::new(store), &floor, sizes).await?);

    print_table(&rows, Ratio::Shown);
    Ok(())
}

async fn run(
    backend: &'static str,
    store: Arc<dyn Store>,
    floor: &Floor,
    sizes: Sizes,
) -> anyhow::Result<Vec<Row>> {
    eprintln!("measuring {backend} ...");
    let value = Bytes::from(vec![b'x'; VALUE_BYTES]);
    let mut rows = Vec::new();

    for clients in [1, 16] {
        let tag = format!("c{clients}");
        let s = store.clone();
        let v = value.clone();
        let ours = concurrent(clients, sizes.creates, UNCAPPED, move |i| {
            let s = s.clone();
            let v = v.clone();
            let key = format!("/create/{tag}/{i:08}");
            async move {
                s.create(&key, v, None)
                    .await
                    .map(drop)
                    .map_err(anyhow::Error::from)
            }
        })
        .await?;
        let floor_sample = floor
            .creates(clients, sizes.creates, &format!("c{clients}"), &value)
            .await?;
        rows.push(Row::new(backend, "create", clients, ours, floor_sample));
    }

    for clients in [1, 16] {
        let s = store.clone();
        let creates = sizes.creates;
        let ours = concurrent(clients, sizes.gets, UNCAPPED, move |i| {
            let s = s.clone();
            let key = format!("/create/c1/{:08}", i % creates);
            async move {
                let kv = s.get(&key, None).await?;
                anyhow::ensure!(kv.is_some(), "{key} missing");
                Ok(())
            }
        })
        .await?;
        let floor_sample = floor.gets(clients, sizes.gets, sizes.creates).await?;
        rows.push(Row::new(backend, "get", clients, ours, floor_sample));
    }

    // Lists of many keys: fill a prefix, then read it whole, one client at a time.
    let s = store.clone();
    let v = value.clone();
    concurrent(16, sizes.list_keys, UNCAPPED, move |i| {
        let s = s.clone();
        let v = v.clone();
        let key = format!("/list/{i:08}");
        async move {
            s.create(&key, v, None)
                .await
                .map(drop)
                .map_err(anyhow::Error::from)
        }
    })
    .await?;
    let s = store.clone();
    let list_keys = sizes.list_keys;
    let ours = concurrent(1, sizes.lists, UNCAPPED, move |_| {
        let s = s.clone();
        async move {
            let list = s.list("/list/", ListOptions::default()).await?;
            anyhow::ensure!(
                list.kvs.len() == list_keys,
                "listed {} keys",
                list.kvs.len()
            );
            Ok(())
        }
    })
    .await?;
    let floor_sample = floor.lists(sizes.lists, sizes.list_keys, &value).await?;
    rows.push(Row::new(
        backend,
        &format!("list {} keys", sizes.list_keys),
        1,
        ours,
        floor_sample,
    ));

    let ours = watch_delivery(&store, sizes).await?;
    let floor_sample = floor
        .watch_delivery(sizes.watchers, sizes.watched_writes, &value)
        .await?;
    rows.push(Row::new(
        backend,
        &format!("watch → {} watchers", sizes.watchers),
        1,
        ours,
        floor_sample,
    ));
    Ok(rows)
}

/// Latency from the start of a create to its arrival at each of many watchers.
async fn watch_delivery(store: &Arc<dyn Store>, sizes: Sizes) -> anyhow::Result<Sample> {
    let start = store.revision().await?;
    let mut watches = Vec::new();
    for _ in 0..sizes.watchers {
        watches.push(store.watch("/watched/", start).await?);
    }
    let writes = sizes.watched_writes;
    let receivers: Vec<_> = watches
        .into_iter()
        .map(|mut watch| {
            tokio::spawn(async move {
                let mut arrivals = Vec::with_capacity(writes);
                while arrivals.len() < writes {
                    match tokio::time::timeout(Duration::from_secs(60), watch.next()).await {
                        Ok(Some(Ok(_))) => arrivals.push(tokio::time::Instant::now()),
                        other => anyhow::bail!("watch stopped early: {other:?}"),
                    }
                }
                Ok(arrivals)
            })
        })
        .collect();
    let value = Bytes::from(vec![b'w'; VALUE_BYTES]);
    deliveries(receivers, writes, |i| {
        let store = store.clone();
        let value = value.clone();
        async move {
            store
                .create(&format!("/watched/{i:08}"), value, None)
                .await
                .map(drop)
                .map_err(anyhow::Error::from)
        }
    })
    .await
}
