//! Decoding of log rows into the store's types, and the reads that serve get, list and
//! watch catch-up.

use bytes::Bytes;
use slipway_store::{Event, KeyValue, LeaseId, Revision};
use sqlx::SqliteConnection;

/// A key's state as stored: (key, value, create_rev, mod_rev, lease).
type KvRow = (String, Vec<u8>, i64, i64, i64);

pub(crate) fn kv_from_row((key, value, create_revision, mod_revision, lease): KvRow) -> KeyValue {
    KeyValue {
        key,
        value: Bytes::from(value),
        create_revision,
        mod_revision,
        lease: lease_from_column(lease),
    }
}

pub(crate) fn lease_from_column(lease: i64) -> Option<LeaseId> {
    (lease != 0).then_some(lease)
}

pub(crate) fn lease_to_column(lease: Option<LeaseId>) -> i64 {
    lease.unwrap_or(0)
}

/// The upper bound of a prefix range: one past every printable ASCII key.
pub(crate) fn range_end(prefix: &str) -> String {
    slipway_store::prefix_end(prefix).unwrap_or_else(|| "\u{7f}".to_owned())
}

/// The current state of `key`.
pub(crate) async fn current(
    conn: &mut SqliteConnection,
    key: &str,
) -> sqlx::Result<Option<KeyValue>> {
    let row: Option<KvRow> = sqlx::query_as(
        "SELECT l.key, l.value, l.create_rev, l.rev, l.lease \
         FROM kv JOIN log l ON l.rev = kv.rev WHERE kv.key = ?1",
    )
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(kv_from_row))
}

/// `key` as it was at `revision`: its newest row at or before it, unless that is a delete.
pub(crate) async fn at_revision(
    conn: &mut SqliteConnection,
    key: &str,
    revision: Revision,
) -> sqlx::Result<Option<KeyValue>> {
    let row: Option<(String, Vec<u8>, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT key, value, create_rev, rev, lease, deleted FROM log \
         WHERE key = ?1 AND rev <= ?2 ORDER BY rev DESC LIMIT 1",
    )
    .bind(key)
    .bind(revision)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(key, value, create, rev, lease, deleted)| {
        (deleted == 0).then(|| kv_from_row((key, value, create, rev, lease)))
    }))
}

/// Which page of a prefix to read.
pub(crate) struct Page<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) after: &'a str,
    pub(crate) limit: Option<usize>,
}

impl Page<'_> {
    /// The page size, if any: zero means no limit.
    fn limit(&self) -> Option<usize> {
        self.limit.filter(|&n| n > 0)
    }

    /// One more than asked, to learn whether more remain; -1 is SQLite's "no limit".
    fn sql_limit(&self) -> i64 {
        self.limit()
            .and_then(|n| i64::try_from(n).ok())
            .and_then(|n| n.checked_add(1))
            .unwrap_or(-1)
    }
}

/// Live keys of a page now; returns the keys and whether more remain.
pub(crate) async fn list_current(
    conn: &mut SqliteConnection,
    page: &Page<'_>,
) -> sqlx::Result<(Vec<KeyValue>, bool)> {
    let rows: Vec<KvRow> = sqlx::query_as(
        "SELECT l.key, l.value, l.create_rev, l.rev, l.lease \
         FROM kv JOIN log l ON l.rev = kv.rev \
         WHERE kv.key >= ?1 AND kv.key > ?2 AND kv.key < ?3 ORDER BY kv.key LIMIT ?4",
    )
    .bind(page.prefix)
    .bind(page.after)
    .bind(range_end(page.prefix))
    .bind(page.sql_limit())
    .fetch_all(conn)
    .await?;
    Ok(trim(
        rows.into_iter().map(kv_from_row).collect(),
        page.limit(),
    ))
}

/// Live keys of a page as they were at `revision`.
pub(crate) async fn list_at(
    conn: &mut SqliteConnection,
    page: &Page<'_>,
    revision: Revision,
) -> sqlx::Result<(Vec<KeyValue>, bool)> {
    let rows: Vec<KvRow> = sqlx::query_as(
        // Walks `log_key_rev` in key order and keeps each key's newest row at the revision,
        // so LIMIT stops the walk early instead of sorting the whole prefix's history.
        "SELECT l.key, l.value, l.create_rev, l.rev, l.lease FROM log l \
         WHERE l.key >= ?1 AND l.key > ?2 AND l.key < ?3 AND l.deleted = 0 \
           AND l.rev = (SELECT MAX(m.rev) FROM log m WHERE m.key = l.key AND m.rev <= ?4) \
         ORDER BY l.key LIMIT ?5",
    )
    .bind(page.prefix)
    .bind(page.after)
    .bind(range_end(page.prefix))
    .bind(revision)
    .bind(page.sql_limit())
    .fetch_all(conn)
    .await?;
    Ok(trim(
        rows.into_iter().map(kv_from_row).collect(),
        page.limit(),
    ))
}

fn trim(mut kvs: Vec<KeyValue>, limit: Option<usize>) -> (Vec<KeyValue>, bool) {
    match limit {
        Some(n) if kvs.len() > n => {
            kvs.truncate(n);
            (kvs, true)
        }
        _ => (kvs, false),
    }
}

/// A change row joined with the row it replaced.
type ChangeRow = (
    i64,
    String,
    i64,
    Vec<u8>,
    i64,
    i64,
    Option<i64>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<i64>,
);

/// Up to `limit` changes under a prefix after `after`, in revision order.
pub(crate) async fn changes_after(
    conn: &mut SqliteConnection,
    prefix: &str,
    after: Revision,
    limit: i64,
) -> sqlx::Result<Vec<Event>> {
    let rows: Vec<ChangeRow> = sqlx::query_as(
        "SELECT l.rev, l.key, l.deleted, l.value, l.create_rev, l.lease, \
                p.rev, p.value, p.create_rev, p.lease \
         FROM log l LEFT JOIN log p ON p.rev = l.prev_rev \
         WHERE l.rev > ?1 AND l.key >= ?2 AND l.key < ?3 ORDER BY l.rev LIMIT ?4",
    )
    .bind(after)
    .bind(prefix)
    .bind(range_end(prefix))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(change_from_row).collect()
}

fn change_from_row(row: ChangeRow) -> sqlx::Result<Event> {
    let (rev, key, deleted, value, create, lease, p_rev, p_value, p_create, p_lease) = row;
    let prev = match (p_rev, p_value, p_create, p_lease) {
        (Some(rev), Some(value), Some(create), Some(lease)) => {
            Some(kv_from_row((key.clone(), value, create, rev, lease)))
        }
        _ => None,
    };
    if deleted == 0 {
        return Ok(Event::Put {
            kv: kv_from_row((key, value, create, rev, lease)),
            prev,
        });
    }
    // Compaction keeps the newest row at or before the compacted revision, so a tombstone
    // after it always finds the state it deleted.
    let prev = prev.ok_or_else(|| {
        sqlx::Error::Protocol(format!(
            "tombstone at revision {rev} lost the state it deleted"
        ))
    })?;
    Ok(Event::Delete {
        revision: rev,
        prev,
    })
}

/// The store's revision counters as committed: (revision, compacted).
pub(crate) async fn counters(conn: &mut SqliteConnection) -> sqlx::Result<(Revision, Revision)> {
    sqlx::query_as(
        "SELECT (SELECT value FROM meta WHERE name = 'revision'), \
                (SELECT value FROM meta WHERE name = 'compacted')",
    )
    .fetch_one(conn)
    .await
}
