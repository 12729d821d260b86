//! The single writer: every change goes through one task owning one connection, which
//! assigns revisions in commit order and batches concurrent requests into one transaction
//! (group commit), so a durable fsync is shared by everyone waiting.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use slipway_store::{Deleted, Error, Event, KeyValue, LeaseId, Result, Revision};
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use crate::Shared;
use crate::rows::{current, lease_to_column};

/// Most requests folded into one transaction; bounds how long one commit holds the others.
const MAX_BATCH: usize = 256;

/// A change asked of the writer.
pub(crate) enum Op {
    Create {
        key: String,
        value: Bytes,
        lease: Option<LeaseId>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
    GrantLease {
        ttl: Duration,
    },
    KeepAlive {
        lease: LeaseId,
    },
    RevokeLease {
        lease: LeaseId,
    },
    ExpireLeases,
}

/// What a change produced.
pub(crate) enum Outcome {
    Kv(KeyValue),
    Deleted(Deleted),
    Lease(LeaseId),
    Done,
}

pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Outcome>>,
}

/// Errors that end a whole batch: the transaction is rolled back.
type BatchError = sqlx::Error;

pub(crate) struct Writer {
    conn: SqliteConnection,
    shared: Arc<Shared>,
    revision: Revision,
    compacted: Revision,
    /// Set when a batch changed a lease deadline; the expiry task is told after commit,
    /// so it never reads the deadlines before they are visible.
    leases_changed: bool,
}

impl Writer {
    pub(crate) fn new(
        conn: SqliteConnection,
        shared: Arc<Shared>,
        revision: Revision,
        compacted: Revision,
    ) -> Self {
        Writer {
            conn,
            shared,
            revision,
            compacted,
            leases_changed: false,
        }
    }

    /// Serves requests until every sender is gone or the store shuts down.
    pub(crate) async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let cancel = self.shared.cancel.clone();
        loop {
            let first = tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => request,
                    None => break,
                },
                () = cancel.cancelled() => break,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch).await;
        }
        // Closing checkpoints the WAL into the main file, so a clean stop leaves one file.
        if let Err(e) = sqlx::Connection::close(self.conn).await {
            tracing::warn!(error = %e, "closing the store's writer connection failed");
        }
    }

    async fn commit_batch(&mut self, batch: Vec<Request>) {
        let (revision, compacted) = (self.revision, self.compacted);
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let applied = async {
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut self.conn)
                .await?;
            for request in &batch {
                results.push(self.apply(&request.op, &mut events).await?);
            }
            if self.revision != revision || self.compacted != compacted {
                sqlx::query(
                    "UPDATE meta SET value = CASE name WHEN 'revision' THEN ?1 ELSE ?2 END",
                )
                .bind(self.revision)
                .bind(self.compacted)
                .execute(&mut self.conn)
                .await?;
            }
            sqlx::raw_sql("COMMIT").execute(&mut self.conn).await?;
            Ok::<(), BatchError>(())
        }
        .await;

        if let Err(e) = applied {
            // The batch is lost as a whole; nothing of it was acknowledged or published.
            if let Err(rollback) = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await {
                tracing::debug!(error = %rollback, "rollback after a failed batch");
            }
            self.revision = revision;
            self.compacted = compacted;
            self.leases_changed = false;
            tracing::error!(error = %e, requests = batch.len(), "store write failed");
            let message = e.to_string();
            for request in batch {
                let _ = request
                    .reply
                    .send(Err(Error::Unavailable(message.clone().into())));
            }
            return;
        }

        if std::mem::take(&mut self.leases_changed) {
            self.shared.leases_changed.notify_one();
        }
        self.shared.revision.store(self.revision, Ordering::SeqCst);
        self.shared
            .compacted
            .store(self.compacted, Ordering::SeqCst);
        for event in events {
            // No receivers is fine: nobody is watching.
            let _ = self.shared.events.send(event);
        }
        for (request, result) in batch.into_iter().zip(results) {
            let _ = request.reply.send(result);
        }
    }

    /// Applies one change inside the open transaction. The outer error aborts the batch;
    /// the inner one is this request's own answer.
    async fn apply(
        &mut self,
        op: &Op,
        events: &mut Vec<Event>,
    ) -> Result<Result<Outcome>, BatchError> {
        let now = millis(self.shared.clock.now());
        Ok(match op {
            Op::Create { key, value, lease } => {
                if let Some(existing) = current(&mut self.conn, key).await? {
                    return Ok(Err(Error::AlreadyExists {
                        key: key.clone(),
                        current: Box::new(existing),
                    }));
                }
                if let Some(lease) = lease
                    && !self.lease_alive(*lease, now).await?
                {
                    return Ok(Err(Error::LeaseNotFound(*lease)));
                }
                let kv = self.put(key, value, None, *lease).await?;
                events.push(Event::Put {
                    kv: kv.clone(),
                    prev: None,
                });
                Ok(Outcome::Kv(kv))
            }
            Op::Update {
                key,
                value,
                expected,
                lease,
            } => {
                let Some(prev) = current(&mut self.conn, key).await? else {
                    return Ok(Err(Error::NotFound { key: key.clone() }));
                };
                if prev.mod_revision != *expected {
                    return Ok(Err(Error::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: Box::new(prev),
                    }));
                }
                if let Some(lease) = lease
                    && !self.lease_alive(*lease, now).await?
                {
                    return Ok(Err(Error::LeaseNotFound(*lease)));
                }
                let kv = self.put(key, value, Some(&prev), *lease).await?;
                events.push(Event::Put {
                    kv: kv.clone(),
                    prev: Some(prev),
                });
                Ok(Outcome::Kv(kv))
            }
            Op::Delete { key, expected } => {
                let Some(prev) = current(&mut self.conn, key).await? else {
                    return Ok(Err(Error::NotFound { key: key.clone() }));
                };
                if let Some(expected) = expected
                    && prev.mod_revision != *expected
                {
                    return Ok(Err(Error::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: Box::new(prev),
                    }));
                }
                let deleted = self.remove(prev, events).await?;
                Ok(Outcome::Deleted(deleted))
            }
            Op::Compact { revision } => {
                if *revision > self.revision {
                    return Ok(Err(Error::FutureRevision {
                        requested: *revision,
                        current: self.revision,
                    }));
                }
                if *revision > self.compacted {
                    self.compact(*revision).await?;
                }
                Ok(Outcome::Done)
            }
            Op::GrantLease { ttl } => {
                let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO lease (ttl_ms, expires_ms) VALUES (?1, ?2) RETURNING id",
                )
                .bind(ttl_ms)
                .bind(now.saturating_add(ttl_ms))
                .fetch_one(&mut self.conn)
                .await?;
                self.leases_changed = true;
                Ok(Outcome::Lease(id))
            }
            Op::KeepAlive { lease } => {
                if !self.lease_alive(*lease, now).await? {
                    return Ok(Err(Error::LeaseNotFound(*lease)));
                }
                sqlx::query("UPDATE lease SET expires_ms = ?2 + ttl_ms WHERE id = ?1")
                    .bind(lease)
                    .bind(now)
                    .execute(&mut self.conn)
                    .await?;
                self.leases_changed = true;
                Ok(Outcome::Done)
            }
            Op::RevokeLease { lease } => {
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM lease WHERE id = ?1")
                    .bind(lease)
                    .fetch_optional(&mut self.conn)
                    .await?;
                if exists.is_none() {
                    return Ok(Err(Error::LeaseNotFound(*lease)));
                }
                self.end_lease(*lease, events).await?;
                Ok(Outcome::Done)
            }
            Op::ExpireLeases => {
                let expired: Vec<i64> =
                    sqlx::query_scalar("SELECT id FROM lease WHERE expires_ms <= ?1 ORDER BY id")
                        .bind(now)
                        .fetch_all(&mut self.conn)
                        .await?;
                for lease in expired {
                    self.end_lease(lease, events).await?;
                }
                Ok(Outcome::Done)
            }
        })
    }

    async fn lease_alive(&mut self, lease: LeaseId, now: i64) -> sqlx::Result<bool> {
        let expires: Option<i64> = sqlx::query_scalar("SELECT expires_ms FROM lease WHERE id = ?1")
            .bind(lease)
            .fetch_optional(&mut self.conn)
            .await?;
        Ok(expires.is_some_and(|at| at > now))
    }

    async fn put(
        &mut self,
        key: &str,
        value: &Bytes,
        prev: Option<&KeyValue>,
        lease: Option<LeaseId>,
    ) -> sqlx::Result<KeyValue> {
        let rev = self.revision + 1;
        let create_revision = prev.map_or(rev, |p| p.create_revision);
        sqlx::query(
            "INSERT INTO log (rev, key, deleted, value, create_rev, prev_rev, lease) \
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)",
        )
        .bind(rev)
        .bind(key)
        .bind(value.as_ref())
        .bind(create_revision)
        .bind(prev.map_or(0, |p| p.mod_revision))
        .bind(lease_to_column(lease))
        .execute(&mut self.conn)
        .await?;
        sqlx::query("INSERT INTO kv (key, rev, lease) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET rev = ?2, lease = ?3")
            .bind(key)
            .bind(rev)
            .bind(lease_to_column(lease))
            .execute(&mut self.conn)
            .await?;
        self.revision = rev;
        Ok(KeyValue {
            key: key.to_owned(),
            value: value.clone(),
            create_revision,
            mod_revision: rev,
            lease,
        })
    }

    async fn remove(&mut self, prev: KeyValue, events: &mut Vec<Event>) -> sqlx::Result<Deleted> {
        let rev = self.revision + 1;
        sqlx::query(
            "INSERT INTO log (rev, key, deleted, value, create_rev, prev_rev, lease) \
             VALUES (?1, ?2, 1, x'', ?3, ?4, 0)",
        )
        .bind(rev)
        .bind(&prev.key)
        .bind(prev.create_revision)
        .bind(prev.mod_revision)
        .execute(&mut self.conn)
        .await?;
        sqlx::query("DELETE FROM kv WHERE key = ?1")
            .bind(&prev.key)
            .execute(&mut self.conn)
            .await?;
        self.revision = rev;
        events.push(Event::Delete {
            revision: rev,
            prev: prev.clone(),
        });
        Ok(Deleted {
            revision: rev,
            prev,
        })
    }

    /// Deletes every key bound to `lease`, in key order, then the lease.
    async fn end_lease(&mut self, lease: LeaseId, events: &mut Vec<Event>) -> sqlx::Result<()> {
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT key FROM kv WHERE lease = ?1 AND lease != 0 ORDER BY key")
                .bind(lease)
                .fetch_all(&mut self.conn)
                .await?;
        for key in keys {
            if let Some(prev) = current(&mut self.conn, &key).await? {
                self.remove(prev, events).await?;
            }
        }
        sqlx::query("DELETE FROM lease WHERE id = ?1")
            .bind(lease)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Drops history before `revision` but keeps, for every key, its newest row at or
    /// before it, so the state at `revision` stays readable; tombstones at or before it go,
    /// since nothing can read them any more.
    ///
    /// Earlier compactions already removed everything superseded up to their revision, so
    /// only rows written since the last one can supersede more: the rows they replaced
    /// (their `prev_rev`) and the tombstones among them go.
    async fn compact(&mut self, revision: Revision) -> sqlx::Result<()> {
        sqlx::query(
            "DELETE FROM log WHERE rev IN \
               (SELECT prev_rev FROM log WHERE rev > ?1 AND rev <= ?2 AND prev_rev != 0) \
             OR (deleted = 1 AND rev > ?1 AND rev <= ?2)",
        )
        .bind(self.compacted)
        .bind(revision)
        .execute(&mut self.conn)
        .await?;
        self.compacted = revision;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch; times before it count as the epoch.
pub(crate) fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
