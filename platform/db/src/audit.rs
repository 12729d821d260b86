//! The audit log: one row per change, written in the change's own transaction.

use serde_json::Value;
use sqlx::{Row, SqliteConnection};

use crate::{AuditEntry, Db, Result, from_seconds};

/// Appends an entry inside the caller's transaction.
pub(crate) async fn record(
    conn: &mut SqliteConnection,
    at: jiff::Timestamp,
    actor: &str,
    action: &str,
    target: &str,
    detail: &Value,
) -> Result<()> {
    sqlx::query("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(at.as_second())
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

impl Db {
    /// The newest `limit` entries, newest first.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let detail: String = row.try_get("detail")?;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: from_seconds(row.try_get("at")?),
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    // Rows are written from `Value`s; one that does not parse is shown as text.
                    detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
                })
            })
            .collect()
    }
}
