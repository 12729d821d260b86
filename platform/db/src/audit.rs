//! The audit log: one row per change, written in the change's own transaction.

use serde_json::Value;
use sqlx::SqliteConnection;

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
    sqlx::query!(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        at.as_second(),
        actor,
        action,
        target,
        detail.to_string(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

impl Db {
    /// The newest `limit` entries, newest first.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query!(
            "SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?",
            i64::from(limit),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| AuditEntry {
                id: row.id,
                at: from_seconds(row.at),
                actor: row.actor,
                action: row.action,
                target: row.target,
                // Rows are written from `Value`s; one that does not parse is shown as text.
                detail: serde_json::from_str(&row.detail).unwrap_or(Value::String(row.detail)),
            })
            .collect())
    }
}
