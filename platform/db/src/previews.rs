//! Webhook deliveries and previews: a delivery is stored, deduplicated, and wakes its pull
//! request's preview in one transaction; the reconciler reads previews and writes their
//! status; users extend and destroy them.

use jiff::Timestamp;
use serde_json::json;
use sqlx::SqliteConnection;

use crate::{
    Applied, Command, Db, Delivery, Error, NewDelivery, Phase, Preview, PreviewStatus, Recorded,
    Result, audit, from_seconds, is_unique_violation,
};

/// A preview row as the queries below read it.
struct PreviewRow {
    id: i64,
    repo_id: i64,
    owner: String,
    name: String,
    squad: String,
    pr: i64,
    namespace: String,
    generation: i64,
    extended_until: Option<i64>,
    destroy_requested: i64,
    phase: String,
    message: String,
    config_error: i64,
    head_sha: String,
    head_ref: String,
    title: String,
    author: String,
    pr_url: String,
    fork: i64,
    approved_sha: Option<String>,
    pinned: i64,
    deployed_sha: Option<String>,
    deployed_at: Option<i64>,
    expires_at: Option<i64>,
    warned_at: Option<i64>,
    url: Option<String>,
    comment_id: Option<i64>,
    deployment_id: Option<i64>,
    deployment_sha: Option<String>,
    applied: String,
    slept_at: Option<i64>,
    last_request_at: Option<i64>,
    observed: i64,
    created_at: i64,
    updated_at: i64,
}

fn to_u64(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

fn to_i64(value: Option<u64>) -> Option<i64> {
    value.and_then(|v| i64::try_from(v).ok())
}

impl PreviewRow {
    fn into_preview(self) -> Preview {
        Preview {
            id: self.id,
            repo_id: self.repo_id,
            repo: format!("{}/{}", self.owner, self.name),
            squad: self.squad,
            pr: u64::try_from(self.pr).unwrap_or(0),
            namespace: self.namespace,
            generation: self.generation,
            extended_until: self.extended_until.map(from_seconds),
            destroy_requested: self.destroy_requested != 0,
            last_request_at: self.last_request_at.map(from_seconds),
            status: PreviewStatus {
                phase: Phase::parse(&self.phase),
                message: self.message,
                config_error: self.config_error != 0,
                head_sha: self.head_sha,
                head_ref: self.head_ref,
                title: self.title,
                author: self.author,
                pr_url: self.pr_url,
                fork: self.fork != 0,
                approved_sha: self.approved_sha,
                pinned: self.pinned != 0,
                deployed_sha: self.deployed_sha,
                deployed_at: self.deployed_at.map(from_seconds),
                expires_at: self.expires_at.map(from_seconds),
                warned_at: self.warned_at.map(from_seconds),
                url: self.url,
                comment_id: to_u64(self.comment_id),
                deployment_id: to_u64(self.deployment_id),
                deployment_sha: self.deployment_sha,
                // Written only from `Vec<Applied>`; an unreadable value reads as nothing
                // applied rather than failing every listing.
                applied: serde_json::from_str::<Vec<Applied>>(&self.applied).unwrap_or_default(),
                slept_at: self.slept_at.map(from_seconds),
                observed: self.observed,
            },
            created_at: from_seconds(self.created_at),
            updated_at: from_seconds(self.updated_at),
        }
    }
}

/// Creates the preview of `(repo, pr)` or bumps its generation; answers its id. A new one
/// takes the first of `namespaces` that is free.
async fn wake(
    conn: &mut SqliteConnection,
    repo_id: i64,
    pr: i64,
    namespaces: &[String; 2],
    revives: bool,
    now: i64,
) -> Result<i64> {
    let existing = sqlx::query_scalar!(
        "UPDATE previews SET generation = generation + 1,
             destroy_requested = CASE WHEN ? THEN 0 ELSE destroy_requested END
         WHERE repo_id = ? AND pr = ? RETURNING id AS \"id!\"",
        revives,
        repo_id,
        pr,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    for namespace in namespaces {
        let inserted = sqlx::query_scalar!(
            "INSERT INTO previews (repo_id, pr, namespace, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?) RETURNING id AS \"id!\"",
            repo_id,
            pr,
            namespace,
            now,
            now,
        )
        .fetch_one(&mut *conn)
        .await;
        match inserted {
            Ok(id) => return Ok(id),
            Err(e) if is_unique_violation(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(format!(
        "namespaces {} and {} are both taken by other previews",
        namespaces[0], namespaces[1]
    )))
}

impl Db {
    /// Stores a delivery, unless one with its hook and delivery id is stored already, and
    /// wakes the preview it is about, in one transaction: once this returns, the delivery
    /// survives a crash and the reconciler will see it.
    pub async fn record_delivery(&self, delivery: &NewDelivery) -> Result<Recorded> {
        let mut recorded = self
            .record_deliveries(std::slice::from_ref(delivery))
            .await?;
        Ok(recorded.pop().unwrap_or(Recorded::Duplicate))
    }

    /// [`Db::record_delivery`] for several deliveries in one transaction, answering each in
    /// order: one commit (one sync to disk) for a burst of concurrent deliveries.
    pub async fn record_deliveries(&self, deliveries: &[NewDelivery]) -> Result<Vec<Recorded>> {
        let now = self.now().as_second();
        let mut tx = self.pool.begin().await?;
        let mut recorded = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let pr = delivery.pr.and_then(|pr| i64::try_from(pr).ok());
            let inserted = sqlx::query!(
                "INSERT INTO deliveries (hook, delivery, event, action, repo_id, pr, head_sha,
                     sender, comment, received_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                delivery.hook,
                delivery.delivery,
                delivery.event,
                delivery.action,
                delivery.repo_id,
                pr,
                delivery.head_sha,
                delivery.sender,
                delivery.comment,
                now,
            )
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                // A failed statement leaves the transaction's other statements alone.
                Err(e) if is_unique_violation(&e) => {
                    recorded.push(Recorded::Duplicate);
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let preview = match (delivery.repo_id, pr) {
                (Some(repo_id), Some(pr)) => Some(
                    wake(
                        &mut tx,
                        repo_id,
                        pr,
                        &delivery.namespaces,
                        delivery.revives,
                        now,
                    )
                    .await?,
                ),
                _ => None,
            };
            recorded.push(Recorded::Stored { preview });
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// Creates the preview of an open pull request found without a delivery (the periodic
    /// re-check), or bumps its generation; answers its id.
    pub async fn wake_preview(
        &self,
        repo_id: i64,
        pr: u64,
        namespaces: &[String; 2],
    ) -> Result<i64> {
        let now = self.now().as_second();
        let pr = i64::try_from(pr).map_err(|_| Error::Invalid {
            field: "pr".to_owned(),
            message: "out of range".to_owned(),
        })?;
        let mut tx = self.pool.begin().await?;
        let id = wake(&mut tx, repo_id, pr, namespaces, false, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The previews with row id `id` and namespace `namespace`, each filter only if given,
    /// by repository and pull request: one query serves every lookup.
    async fn preview_rows(&self, id: Option<i64>, namespace: Option<&str>) -> Result<Vec<Preview>> {
        let rows = sqlx::query_as!(
            PreviewRow,
            "SELECT p.id AS id, p.repo_id AS repo_id, r.owner AS owner, r.name AS name,
                    s.name AS squad, p.pr AS pr, p.namespace AS namespace,
                    p.generation AS generation, p.extended_until AS extended_until,
                    p.destroy_requested AS destroy_requested, p.phase AS phase,
                    p.message AS message, p.config_error AS config_error, p.head_sha AS head_sha, p.head_ref AS head_ref,
                    p.title AS title, p.author AS author, p.pr_url AS pr_url,
                    p.fork AS fork, p.approved_sha AS approved_sha, p.pinned AS pinned,
                    p.deployed_sha AS deployed_sha, p.deployed_at AS deployed_at,
                    p.expires_at AS expires_at, p.warned_at AS warned_at, p.url AS url,
                    p.comment_id AS comment_id, p.deployment_id AS deployment_id,
                    p.deployment_sha AS deployment_sha, p.applied AS applied,
                    p.slept_at AS slept_at, p.last_request_at AS last_request_at,
                    p.observed AS observed,
                    p.created_at AS created_at, p.updated_at AS updated_at
             FROM previews p JOIN repos r ON r.id = p.repo_id JOIN squads s ON s.id = r.squad_id
             WHERE (?1 IS NULL OR p.id = ?1) AND (?2 IS NULL OR p.namespace = ?2)
             ORDER BY r.owner, r.name, p.pr",
            id,
            namespace,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(PreviewRow::into_preview).collect())
    }

    /// One preview.
    pub async fn preview(&self, id: i64) -> Result<Preview> {
        self.preview_rows(Some(id), None)
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound {
                kind: "previews",
                name: id.to_string(),
            })
    }

    /// One preview by its namespace.
    pub async fn preview_by_namespace(&self, namespace: &str) -> Result<Preview> {
        self.preview_rows(None, Some(namespace))
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound {
                kind: "previews",
                name: namespace.to_owned(),
            })
    }

    /// Every preview, destroyed ones included, by repository and pull request.
    pub async fn previews(&self) -> Result<Vec<Preview>> {
        self.preview_rows(None, None).await
    }

    /// Writes the reconciler's side of a preview.
    pub async fn set_preview_status(&self, id: i64, status: &PreviewStatus) -> Result<()> {
        let now = self.now().as_second();
        let applied = serde_json::to_string(&status.applied)
            .map_err(|e| Error::Db(sqlx::Error::Encode(Box::new(e))))?;
        let phase = status.phase.as_str();
        let deployed_at = status.deployed_at.map(Timestamp::as_second);
        let expires_at = status.expires_at.map(Timestamp::as_second);
        let warned_at = status.warned_at.map(Timestamp::as_second);
        let slept_at = status.slept_at.map(Timestamp::as_second);
        let comment_id = to_i64(status.comment_id);
        let deployment_id = to_i64(status.deployment_id);
        sqlx::query!(
            "UPDATE previews SET phase = ?, message = ?, config_error = ?, head_sha = ?,
                 head_ref = ?,
                 title = ?, author = ?, pr_url = ?, fork = ?,
                 approved_sha = ?, pinned = ?, deployed_sha = ?, deployed_at = ?,
                 expires_at = ?, warned_at = ?, url = ?, comment_id = ?, deployment_id = ?,
                 deployment_sha = ?, applied = ?, slept_at = ?, observed = ?,
                 updated_at = ?
             WHERE id = ?",
            phase,
            status.message,
            status.config_error,
            status.head_sha,
            status.head_ref,
            status.title,
            status.author,
            status.pr_url,
            status.fork,
            status.approved_sha,
            status.pinned,
            status.deployed_sha,
            deployed_at,
            expires_at,
            warned_at,
            status.url,
            comment_id,
            deployment_id,
            status.deployment_sha,
            applied,
            slept_at,
            status.observed,
            now,
            id,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a request for the preview in `namespace` through a gateway; a sleeping one is
    /// woken (its generation bumped). Answers its id, or `None` for a namespace that is no
    /// preview.
    pub async fn touch_preview(&self, namespace: &str) -> Result<Option<i64>> {
        let now = self.now().as_second();
        Ok(sqlx::query_scalar!(
            "UPDATE previews SET last_request_at = ?,
                 generation = generation + CASE WHEN phase = 'sleeping' THEN 1 ELSE 0 END
             WHERE namespace = ? RETURNING id AS \"id!\"",
            now,
            namespace,
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Takes one of the squad's preview slots for a preview, if the squad has one free:
    /// the count and the claim are one statement, so two previews never take the last
    /// slot together. Answers whether the preview holds a slot now.
    pub async fn claim_slot(&self, id: i64, max: u32) -> Result<bool> {
        let max = i64::from(max);
        let now = self.now().as_second();
        let claimed = sqlx::query!(
            "UPDATE previews SET phase = 'deploying', updated_at = ?
             WHERE id = ? AND (
                 phase IN ('deploying', 'ready', 'failed', 'sleeping')
                 OR (SELECT COUNT(*) FROM previews o
                     JOIN repos orp ON orp.id = o.repo_id
                     WHERE orp.squad_id = (SELECT r.squad_id FROM previews p
                                           JOIN repos r ON r.id = p.repo_id WHERE p.id = ?)
                       AND o.phase IN ('deploying', 'ready', 'failed', 'sleeping')) < ?)",
            now,
            id,
            id,
            max,
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }

    /// The comment deliveries of a pull request not yet acted on, oldest first.
    pub async fn pending_commands(&self, repo_id: i64, pr: u64) -> Result<Vec<Command>> {
        let pr = i64::try_from(pr).unwrap_or(i64::MAX);
        let rows = sqlx::query!(
            "SELECT id, sender, comment FROM deliveries
             WHERE repo_id = ? AND pr = ? AND processed_at IS NULL AND comment IS NOT NULL
             ORDER BY id",
            repo_id,
            pr,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Command {
                id: row.id,
                sender: row.sender.unwrap_or_default(),
                comment: row.comment.unwrap_or_default(),
            })
            .collect())
    }

    /// Marks every delivery of a pull request up to `last` (a delivery row id) as acted on.
    pub async fn mark_processed(&self, repo_id: i64, pr: u64, last: i64) -> Result<()> {
        let pr = i64::try_from(pr).unwrap_or(i64::MAX);
        let now = self.now().as_second();
        sqlx::query!(
            "UPDATE deliveries SET processed_at = ?
             WHERE repo_id = ? AND pr = ? AND id <= ? AND processed_at IS NULL",
            now,
            repo_id,
            pr,
            last,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` deliveries for repository `repo_id`, newest first.
    pub async fn deliveries(&self, repo_id: i64, limit: u32) -> Result<Vec<Delivery>> {
        let rows = sqlx::query!(
            "SELECT delivery, event, action, pr, head_sha, sender, received_at, processed_at
             FROM deliveries WHERE repo_id = ? ORDER BY id DESC LIMIT ?",
            repo_id,
            limit,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Delivery {
                delivery: row.delivery,
                event: row.event,
                action: row.action,
                pr: row.pr.and_then(|pr| u64::try_from(pr).ok()),
                sha: row.head_sha,
                sender: row.sender,
                received_at: from_seconds(row.received_at),
                processed_at: row.processed_at.map(from_seconds),
            })
            .collect())
    }

    /// Forgets deliveries received before `before` that nothing waits on any more; a
    /// redelivery of one that old would be deduplicated by nothing, but GitHub only
    /// redelivers on request, and the re-check finds what a lost one would have said.
    pub async fn prune_deliveries(&self, before: Timestamp) -> Result<u64> {
        let before = before.as_second();
        let done = sqlx::query!(
            "DELETE FROM deliveries WHERE received_at < ?
                 AND (processed_at IS NOT NULL OR repo_id IS NULL OR pr IS NULL)",
            before,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The newest delivery row id, for [`Db::mark_processed`].
    pub async fn last_delivery(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar!("SELECT COALESCE(MAX(id), 0) AS \"id!: i64\" FROM deliveries")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Whether GitHub login `login` is a member (or owner) of `squad`; platform user names
    /// are GitHub logins, compared case-insensitively as GitHub does.
    pub async fn is_member(&self, squad: &str, login: &str) -> Result<bool> {
        let found = sqlx::query_scalar!(
            "SELECT COUNT(*) FROM memberships m
             JOIN users u ON u.id = m.user_id JOIN squads s ON s.id = m.squad_id
             WHERE s.name = ? AND u.name = ? COLLATE NOCASE",
            squad,
            login,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(found > 0)
    }

    /// Keeps a preview at least until `until` (the caller bounds it by the squad's maximum).
    pub async fn extend_preview(&self, actor: &str, id: i64, until: Timestamp) -> Result<()> {
        self.want(
            actor,
            id,
            "preview.extend",
            json!({ "until": until.to_string() }),
            |tx| {
                Box::pin(async move {
                    let until = until.as_second();
                    sqlx::query!(
                        "UPDATE previews SET extended_until = ?, generation = generation + 1
                     WHERE id = ?",
                        until,
                        id
                    )
                    .execute(tx)
                    .await
                })
            },
        )
        .await
    }

    /// Asks for a preview to be destroyed; a later push or reopen brings it back.
    pub async fn request_destroy(&self, actor: &str, id: i64) -> Result<()> {
        self.want(actor, id, "preview.destroy", json!({}), |tx| {
            Box::pin(async move {
                sqlx::query!(
                    "UPDATE previews SET destroy_requested = 1, generation = generation + 1
                     WHERE id = ?",
                    id
                )
                .execute(tx)
                .await
            })
        })
        .await
    }

    /// Runs a user's change to a preview's wanted side with its audit entry.
    async fn want<F>(
        &self,
        actor: &str,
        id: i64,
        action: &str,
        detail: serde_json::Value,
        change: F,
    ) -> Result<()>
    where
        F: for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = std::result::Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>,
                    > + Send
                    + 'c,
            >,
        >,
    {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let namespace = sqlx::query_scalar!("SELECT namespace FROM previews WHERE id = ?", id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "previews",
                name: id.to_string(),
            })?;
        change(&mut tx).await?;
        audit::record(
            &mut tx,
            now,
            actor,
            action,
            &format!("previews/{namespace}"),
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
