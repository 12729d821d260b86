//! The embedded SQLite backend of the orchestrator [`Store`] (DESIGN D3): a kine-style
//! revision log in WAL mode, written by one task in one process.
//!
//! - One writer task owns the only write connection; it batches concurrent requests into
//!   one transaction, so revisions follow commit order and one fsync serves the batch.
//! - Reads use a pool of read-only connections; each historical read runs in one read
//!   transaction together with the revision counters it checks against.
//! - Watches replay the log, then follow the writer's broadcast (see [`watch`]).
//! - A lock file next to the database keeps a second process out, with a clear error.
//!
//! [`watch`]: crate#watches

mod leases;
mod rows;
mod schema;
mod watch;
mod writer;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use slipway_clock::{SharedClock, SystemClock};
use slipway_store::{
    Deleted, Error, Event, KeyValue, LeaseId, ListOptions, ListResult, Result, Revision, Store,
    WatchStream, validate_key, validate_prefix, validate_put,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::rows::{Page, at_revision, counters, current, list_at, list_current};
use crate::watch::{internal, unavailable};
use crate::writer::{Op, Outcome, Request, Writer};

/// Live events kept for watchers; one that falls further behind re-reads the log.
const BROADCAST_CAPACITY: usize = 1024;

/// Write requests queued before callers wait for room.
const WRITE_QUEUE: usize = 4096;

/// How hard a commit is made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is fsynced before it is acknowledged: survives power loss.
    #[default]
    Full,
    /// Commits survive a crash of the process but the last ones may be lost on power loss
    /// (SQLite's `synchronous=NORMAL` in WAL mode).
    Normal,
}

/// How to open a store.
#[derive(Clone, Debug)]
pub struct Options {
    /// The clock leases expire by.
    pub clock: SharedClock,
    /// How hard commits are made durable.
    pub durability: Durability,
    /// Read-only connections serving gets, lists and watch catch-up.
    pub read_connections: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: SystemClock::shared(),
            durability: Durability::Full,
            read_connections: 4,
        }
    }
}

/// State shared by the store handle and its background tasks.
pub(crate) struct Shared {
    pub(crate) clock: SharedClock,
    pub(crate) cancel: CancellationToken,
    /// The newest committed revision, published after each commit.
    pub(crate) revision: AtomicI64,
    pub(crate) compacted: AtomicI64,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) leases_changed: Notify,
}

/// A [`Store`] in one SQLite file.
pub struct SqliteStore {
    shared: Arc<Shared>,
    reads: SqlitePool,
    writer: mpsc::Sender<Request>,
    /// The writer (which hands back the lock when it ends) and the lease expiry task.
    tasks: Option<(JoinHandle<File>, JoinHandle<()>)>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    ///
    /// Fails with [`Error::Locked`] while another process has it open.
    pub async fn open(path: impl AsRef<Path>, options: Options) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let lock = lock_file(&path)?;
        let synchronous = match options.durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        };
        let connect = SqliteConnectOptions::from_str("sqlite://")
            .map_err(internal)?
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(10));

        let mut conn = connect
            .clone()
            .create_if_missing(true)
            .connect()
            .await
            .map_err(|e| open_error(&path, e))?;
        schema::migrate(&mut conn)
            .await
            .map_err(|e| open_error(&path, e))?;
        let (revision, compacted) = counters(&mut conn)
            .await
            .map_err(|e| open_error(&path, e))?;

        let reads = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .min_connections(1)
            .connect_with(connect.read_only(true))
            .await
            .map_err(|e| open_error(&path, e))?;

        let shared = Arc::new(Shared {
            clock: options.clock,
            cancel: CancellationToken::new(),
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            events: broadcast::channel(BROADCAST_CAPACITY).0,
            leases_changed: Notify::new(),
        });
        let (writer, requests) = mpsc::channel(WRITE_QUEUE);
        let writer_task = {
            let writer = Writer::new(conn, shared.clone(), revision, compacted);
            tokio::spawn(async move {
                writer.run(requests).await;
                // The lock outlives the writer's connection, so another process never opens
                // the database under a live writer. `close` keeps it until the readers are
                // closed too; without `close` it goes when the writer ends.
                lock
            })
        };
        let lease_task = tokio::spawn(leases::run(
            shared.clone(),
            reads.clone(),
            writer.downgrade(),
        ));
        Ok(SqliteStore {
            shared,
            reads,
            writer,
            tasks: Some((writer_task, lease_task)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the background tasks and waits until every connection is closed, then
    /// releases the lock, so the store can be opened again at once.
    pub async fn close(mut self) {
        self.shared.cancel.cancel();
        let Some((writer, leases)) = self.tasks.take() else {
            return;
        };
        if let Err(e) = leases.await {
            tracing::warn!(error = %e, "the lease task ended abnormally");
        }
        let lock = writer.await;
        self.reads.close().await;
        match lock {
            Ok(lock) => drop(lock),
            Err(e) => tracing::warn!(error = %e, "the writer task ended abnormally"),
        }
    }

    async fn write(&self, op: Op) -> Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Request { op, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Checks a read at `revision` against the counters of the same snapshot.
    fn check_revision(revision: Revision, current: Revision, compacted: Revision) -> Result<()> {
        if revision > current {
            return Err(Error::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision < compacted {
            return Err(Error::Compacted {
                requested: revision,
                compacted,
            });
        }
        Ok(())
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

fn closed() -> Error {
    Error::Unavailable("the store is closed".into())
}

fn open_error(path: &Path, e: sqlx::Error) -> Error {
    Error::Internal(format!("opening store {}: {e}", path.display()).into())
}

fn lock_file(path: &Path) -> Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            Error::Internal(format!("opening {}: {e}", Path::new(&lock_path).display()).into())
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked {
            path: path.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(Error::Internal(
            format!("locking {}: {e}", Path::new(&lock_path).display()).into(),
        )),
    }
}

fn unexpected(outcome: &str) -> Error {
    Error::Internal(format!("store writer answered with an unexpected {outcome}").into())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<KeyValue> {
        validate_put(key, &value)?;
        match self
            .write(Op::Create {
                key: key.to_owned(),
                value,
                lease,
            })
            .await?
        {
            Outcome::Kv(kv) => Ok(kv),
            _ => Err(unexpected("outcome for create")),
        }
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let Some(revision) = revision else {
            let mut conn = self.reads.acquire().await.map_err(unavailable)?;
            return current(&mut conn, key).await.map_err(internal);
        };
        let mut snapshot = self.reads.begin().await.map_err(unavailable)?;
        let (now, compacted) = counters(&mut snapshot).await.map_err(internal)?;
        Self::check_revision(revision, now, compacted)?;
        at_revision(&mut snapshot, key, revision)
            .await
            .map_err(internal)
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        validate_prefix(prefix)?;
        if let Some(after) = &options.start_after {
            validate_key(after)?;
        }
        let mut snapshot = self.reads.begin().await.map_err(unavailable)?;
        let (now, compacted) = counters(&mut snapshot).await.map_err(internal)?;
        let revision = options.revision.unwrap_or(now);
        Self::check_revision(revision, now, compacted)?;
        let page = Page {
            prefix,
            after: options.start_after.as_deref().unwrap_or(""),
            limit: options.limit,
        };
        let (kvs, more) = if revision == now {
            list_current(&mut snapshot, &page).await
        } else {
            list_at(&mut snapshot, &page, revision).await
        }
        .map_err(internal)?;
        Ok(ListResult {
            kvs,
            revision,
            more,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue> {
        validate_put(key, &value)?;
        match self
            .write(Op::Update {
                key: key.to_owned(),
                value,
                expected,
                lease,
            })
            .await?
        {
            Outcome::Kv(kv) => Ok(kv),
            _ => Err(unexpected("outcome for update")),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        validate_key(key)?;
        match self
            .write(Op::Delete {
                key: key.to_owned(),
                expected,
            })
            .await?
        {
            Outcome::Deleted(deleted) => Ok(deleted),
            _ => Err(unexpected("outcome for delete")),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if after < compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted,
            });
        }
        Ok(watch::spawn(
            self.shared.clone(),
            self.reads.clone(),
            prefix.to_owned(),
            after,
        ))
    }

    async fn revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::SeqCst))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.compacted.load(Ordering::SeqCst))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.write(Op::Compact { revision }).await.map(drop)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        match self.write(Op::GrantLease { ttl }).await? {
            Outcome::Lease(id) => Ok(id),
            _ => Err(unexpected("outcome for a lease grant")),
        }
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.write(Op::KeepAlive { lease }).await.map(drop)
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.write(Op::RevokeLease { lease }).await.map(drop)
    }
}
