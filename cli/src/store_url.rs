//! Store URLs (`sqlite://PATH`, `etcd://HOST:PORT,...`): parsing, opening, and the
//! `slipway store status` command built on them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use slipway_store::{ListOptions, Store};
use slipway_store_etcd::EtcdStore;
use slipway_store_sqlite::{Options, SqliteStore};

use crate::exit::Failure;

/// Where the orchestrator's state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    /// An SQLite file, created if missing.
    Sqlite(PathBuf),
    /// An etcd cluster's client endpoints.
    Etcd(Vec<String>),
}

/// Why a store URL was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadStoreUrl(String);

impl fmt::Display for BadStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (expected sqlite://PATH or etcd://HOST:PORT[,HOST:PORT...])",
            self.0
        )
    }
}

impl std::error::Error for BadStoreUrl {}

impl FromStr for StoreUrl {
    type Err = BadStoreUrl;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(BadStoreUrl("sqlite:// needs a file path".to_owned()));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if let Some(hosts) = url.strip_prefix("etcd://") {
            let endpoints = hosts
                .split(',')
                .map(|host| {
                    let (name, port) = host.rsplit_once(':').ok_or_else(|| {
                        BadStoreUrl(format!("etcd endpoint {host:?} has no port"))
                    })?;
                    if name.is_empty() || port.parse::<u16>().is_err() {
                        return Err(BadStoreUrl(format!(
                            "etcd endpoint {host:?} is not HOST:PORT"
                        )));
                    }
                    Ok(format!("http://{host}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(StoreUrl::Etcd(endpoints));
        }
        Err(BadStoreUrl(format!("unknown store {url:?}")))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Etcd(endpoints) => {
                let hosts: Vec<_> = endpoints
                    .iter()
                    .map(|e| e.trim_start_matches("http://"))
                    .collect();
                write!(f, "etcd://{}", hosts.join(","))
            }
        }
    }
}

/// How often and how many times `close` looks for the store's other holders to let go.
const CLOSE_POLL: std::time::Duration = std::time::Duration::from_millis(20);
const CLOSE_POLLS: u32 = 100;

/// An open store, kept by its concrete type where closing it cleanly matters.
pub(crate) enum OpenStore {
    Sqlite(Arc<SqliteStore>),
    Etcd(Arc<EtcdStore>),
}

impl OpenStore {
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        match self {
            OpenStore::Sqlite(s) => s.clone(),
            OpenStore::Etcd(s) => s.clone(),
        }
    }

    /// Releases the store; for SQLite this waits until the file and its lock are free.
    /// The server's own store followers are awaited before this; per-request tasks (watch
    /// streams, in-process clients' requests) end on the same cancellation a moment later,
    /// so their last handles get a bounded wait.
    pub(crate) async fn close(self) {
        if let OpenStore::Sqlite(mut store) = self {
            for _ in 0..CLOSE_POLLS {
                match Arc::try_unwrap(store) {
                    Ok(alone) => return alone.close().await,
                    Err(shared) => store = shared,
                }
                tokio::time::sleep(CLOSE_POLL).await;
            }
            tracing::warn!("store still in use at shutdown; not waiting for it");
        }
    }
}

/// Opens the store at `url`.
pub(crate) async fn open(url: &StoreUrl) -> Result<OpenStore, Failure> {
    let doing = format!("opening store {url}");
    match url {
        StoreUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Failure::failed(format!("{doing}: cannot create {}: {e}", dir.display()))
                })?;
            }
            let store = SqliteStore::open(path, Options::default())
                .await
                .map_err(|e| Failure::from_store(&doing, e))?;
            Ok(OpenStore::Sqlite(Arc::new(store)))
        }
        StoreUrl::Etcd(endpoints) => {
            let store = EtcdStore::connect(endpoints, None)
                .await
                .map_err(|e| Failure::from_store(&doing, e))?;
            Ok(OpenStore::Etcd(Arc::new(store)))
        }
    }
}

/// `slipway store status`.
pub(crate) async fn status(url: &StoreUrl) -> Result<(), Failure> {
    let open = open(url).await?;
    let store = open.store();
    let read = |e| Failure::from_store(&format!("reading store {url}"), e);
    let revision = store.revision().await.map_err(read)?;
    let compacted = store.compacted_revision().await.map_err(read)?;
    let keys = store
        .list("", ListOptions::default())
        .await
        .map_err(read)?
        .kvs
        .len();
    say!("store      {url}");
    say!("revision   {revision}");
    say!("compacted  {compacted}");
    say!("keys       {keys}");
    drop(store);
    open.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        let ok = [
            (
                "sqlite:///var/lib/slipway/state.db",
                StoreUrl::Sqlite("/var/lib/slipway/state.db".into()),
            ),
            ("sqlite://state.db", StoreUrl::Sqlite("state.db".into())),
            (
                "etcd://127.0.0.1:2379",
                StoreUrl::Etcd(vec!["http://127.0.0.1:2379".into()]),
            ),
            (
                "etcd://127.0.0.1:2379,127.0.0.2:2379",
                StoreUrl::Etcd(vec![
                    "http://127.0.0.1:2379".into(),
                    "http://127.0.0.2:2379".into(),
                ]),
            ),
        ];
        for (text, url) in ok {
            assert_eq!(text.parse::<StoreUrl>(), Ok(url.clone()), "{text}");
            assert_eq!(url.to_string(), text);
        }
        let bad = [
            ("postgres://x", "unknown store"),
            ("sqlite://", "needs a file path"),
            ("etcd://127.0.0.1", "has no port"),
            ("etcd://127.0.0.1:http", "is not HOST:PORT"),
            ("etcd://:2379", "is not HOST:PORT"),
            ("etcd://a:1,", "has no port"),
        ];
        for (text, reason) in bad {
            let err = text.parse::<StoreUrl>().unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
            assert!(err.contains("expected sqlite://PATH"), "{text}: {err}");
        }
    }
}
