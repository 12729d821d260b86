//! The floors: the same work done with the bare client libraries on the same kind of
//! storage, so our overhead is measured rather than guessed.
//!
//! SQLite has no watch of its own: its watch floor is the commit latency of a single
//! client, since no watcher can see a write before it commits.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{Client, GetOptions, WatchOptions};
use futures::StreamExt;
use slipway_bench_support::{Sample, concurrent, deliveries};
use slipway_store_sqlite::Durability;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// No time cap: the store's runs are bounded by their counts alone.
pub(crate) const UNCAPPED: Duration = Duration::MAX;

pub(crate) enum Floor {
    Sqlite(SqlitePool),
    Etcd { client: Box<Client>, prefix: String },
}

impl Floor {
    /// A bare table on a file with the pragmas our backend uses.
    pub(crate) async fn sqlite(path: &Path, durability: Durability) -> anyhow::Result<Floor> {
        let synchronous = match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        };
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        sqlx::raw_sql("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
            .execute(&pool)
            .await?;
        Ok(Floor::Sqlite(pool))
    }

    /// Bare etcd-client calls under `prefix` of the same etcd.
    pub(crate) async fn etcd(endpoint: &str, prefix: &str) -> anyhow::Result<Floor> {
        let client = Client::connect([endpoint], None).await?;
        Ok(Floor::Etcd {
            client: Box::new(client),
            prefix: prefix.to_owned(),
        })
    }

    pub(crate) async fn creates(
        &self,
        clients: usize,
        total: usize,
        tag: &str,
        value: &Bytes,
    ) -> anyhow::Result<Sample> {
        let value = value.clone();
        let tag = tag.to_owned();
        match self {
            Floor::Sqlite(pool) => {
                let pool = pool.clone();
                concurrent(clients, total, UNCAPPED, move |i| {
                    let pool = pool.clone();
                    let value = value.clone();
                    let key = format!("/create/{tag}/{i:08}");
                    async move {
                        sqlx::query("INSERT INTO t (k, v) VALUES (?1, ?2)")
                            .bind(key)
                            .bind(value.as_ref())
                            .execute(&pool)
                            .await?;
                        Ok(())
                    }
                })
                .await
            }
            Floor::Etcd { client, prefix } => {
                let client = Arc::new(Client::clone(client));
                let prefix = prefix.clone();
                concurrent(clients, total, UNCAPPED, move |i| {
                    let mut kv = client.kv_client();
                    let value = value.clone();
                    let key = format!("{prefix}/create/{tag}/{i:08}");
                    async move {
                        kv.put(key, value.to_vec(), None).await?;
                        Ok(())
                    }
                })
                .await
            }
        }
    }

    pub(crate) async fn gets(
        &self,
        clients: usize,
        total: usize,
        keys: usize,
    ) -> anyhow::Result<Sample> {
        match self {
            Floor::Sqlite(pool) => {
                let pool = pool.clone();
                concurrent(clients, total, UNCAPPED, move |i| {
                    let pool = pool.clone();
                    let key = format!("/create/c1/{:08}", i % keys);
                    async move {
                        let v: Option<Vec<u8>> = sqlx::query_scalar("SELECT v FROM t WHERE k = ?1")
                            .bind(&key)
                            .fetch_optional(&pool)
                            .await?;
                        anyhow::ensure!(v.is_some(), "{key} missing");
                        Ok(())
                    }
                })
                .await
            }
            Floor::Etcd { client, prefix } => {
                let client = Arc::new(Client::clone(client));
                let prefix = prefix.clone();
                concurrent(clients, total, UNCAPPED, move |i| {
                    let mut kv = client.kv_client();
                    let key = format!("{prefix}/create/c1/{:08}", i % keys);
                    async move {
                        let got = kv.get(key.clone(), None).await?;
                        anyhow::ensure!(!got.kvs().is_empty(), "{key} missing");
                        Ok(())
                    }
                })
                .await
            }
        }
    }

    pub(crate) async fn lists(
        &self,
        lists: usize,
        keys: usize,
        value: &Bytes,
    ) -> anyhow::Result<Sample> {
        let value = value.clone();
        match self {
            Floor::Sqlite(pool) => {
                let fill = pool.clone();
                concurrent(16, keys, UNCAPPED, move |i| {
                    let pool = fill.clone();
                    let value = value.clone();
                    async move {
                        sqlx::query("INSERT INTO t (k, v) VALUES (?1, ?2)")
                            .bind(format!("/list/{i:08}"))
                            .bind(value.as_ref())
                            .execute(&pool)
                            .await?;
                        anyhow::Ok(())
                    }
                })
                .await?;
                let pool = pool.clone();
                concurrent(1, lists, UNCAPPED, move |_| {
                    let pool = pool.clone();
                    async move {
                        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
                            "SELECT k, v FROM t WHERE k >= '/list/' AND k < '/list0' ORDER BY k",
                        )
                        .fetch_all(&pool)
                        .await?;
                        anyhow::ensure!(rows.len() == keys, "listed {}", rows.len());
                        Ok(())
                    }
                })
                .await
            }
            Floor::Etcd { client, prefix } => {
                let client = Arc::new(Client::clone(client));
                let fill = client.clone();
                let fill_prefix = prefix.clone();
                concurrent(16, keys, UNCAPPED, move |i| {
                    let mut kv = fill.kv_client();
                    let value = value.clone();
                    let key = format!("{fill_prefix}/list/{i:08}");
                    async move {
                        kv.put(key, value.to_vec(), None).await?;
                        anyhow::Ok(())
                    }
                })
                .await?;
                let prefix = format!("{prefix}/list/");
                concurrent(1, lists, UNCAPPED, move |_| {
                    // Lifted as in our backend: 10,000 values exceed gRPC's 4 MiB default.
                    let mut kv = client.kv_client().max_decoding_message_size(usize::MAX);
                    let prefix = prefix.clone();
                    async move {
                        let got = kv
                            .get(prefix, Some(GetOptions::new().with_prefix()))
                            .await?;
                        anyhow::ensure!(got.kvs().len() == keys, "listed {}", got.kvs().len());
                        Ok(())
                    }
                })
                .await
            }
        }
    }

    pub(crate) async fn watch_delivery(
        &self,
        watchers: usize,
        writes: usize,
        value: &Bytes,
    ) -> anyhow::Result<Sample> {
        let (client, prefix) = match self {
            Floor::Sqlite(_) => return self.creates(1, writes, "watch-floor", value).await,
            Floor::Etcd { client, prefix } => (client, format!("{prefix}/watched/")),
        };
        let mut receivers = Vec::new();
        for _ in 0..watchers {
            let mut watch_client = client.watch_client();
            let mut stream = watch_client
                .watch(prefix.clone(), Some(WatchOptions::new().with_prefix()))
                .await?;
            receivers.push(tokio::spawn(async move {
                let mut arrivals = Vec::with_capacity(writes);
                while arrivals.len() < writes {
                    match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
                        Ok(Some(Ok(response))) => {
                            let now = tokio::time::Instant::now();
                            arrivals.extend(response.events().iter().map(|_| now));
                        }
                        other => anyhow::bail!("etcd watch stopped early: {other:?}"),
                    }
                }
                Ok(arrivals)
            }));
        }
        deliveries(receivers, writes, |i| {
            let mut kv = client.kv_client();
            let key = format!("{prefix}{i:08}");
            let value = value.to_vec();
            async move {
                kv.put(key, value, None).await?;
                Ok(())
            }
        })
        .await
    }
}
