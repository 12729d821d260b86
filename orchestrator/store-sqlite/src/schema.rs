//! The on-disk layout and its migrations, versioned by SQLite's `user_version`.
//!
//! `log` is the revision log in kine's style: one row per change, the row id being the
//! global revision, a delete recorded as a tombstone row. `kv` points each live key at its
//! newest row so current reads are one index lookup. `meta` holds the revision counters,
//! `lease` the leases.

use sqlx::SqliteConnection;

/// Each entry migrates from version `index` to `index + 1`; never edit one that shipped.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE log (
    rev        INTEGER PRIMARY KEY,
    key        TEXT    NOT NULL,
    deleted    INTEGER NOT NULL,
    value      BLOB    NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev   INTEGER NOT NULL,
    lease      INTEGER NOT NULL
);
CREATE INDEX log_key_rev ON log (key, rev);
CREATE TABLE kv (
    key   TEXT    PRIMARY KEY,
    rev   INTEGER NOT NULL,
    lease INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
CREATE TABLE lease (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ttl_ms     INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX lease_expires ON lease (expires_ms);
"#];

/// Brings the database to the newest schema, each step in its own transaction.
pub(crate) async fn migrate(conn: &mut SqliteConnection) -> sqlx::Result<()> {
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(sqlx::Error::Protocol(format!(
            "store schema version {version} is newer than this slipway understands ({known})"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        // A formatted integer cannot inject anything.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            index + 1
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
