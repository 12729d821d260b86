//! Repositories a squad owns; previews are made for their pull requests.

use serde_json::json;

use crate::squads::squad_id;
use crate::{Db, Error, Repo, Result, audit, from_seconds, is_unique_violation};

fn validate_repo_part(field: &str, value: &str) -> Result<()> {
    // GitHub's rules for owners and repository names, loosely: what a URL path segment holds.
    let ok = !value.is_empty()
        && value.len() <= 100
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && value != "."
        && value != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: field.to_owned(),
            message: format!("{value:?} is not a GitHub name"),
        })
    }
}

impl Db {
    /// Gives `owner/name` to a squad.
    pub async fn add_repo(
        &self,
        actor: &str,
        owner: &str,
        name: &str,
        squad: &str,
    ) -> Result<Repo> {
        validate_repo_part("owner", owner)?;
        validate_repo_part("name", name)?;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let sid = squad_id(&mut tx, squad).await?;
        sqlx::query!(
            "INSERT INTO repos (owner, name, squad_id, created_at) VALUES (?, ?, ?, ?)",
            owner,
            name,
            sid,
            now.as_second(),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists {
                    kind: "repos",
                    name: format!("{owner}/{name}"),
                }
            } else {
                Error::Db(e)
            }
        })?;
        let target = format!("repos/{owner}/{name}");
        audit::record(
            &mut tx,
            now,
            actor,
            "repo.add",
            &target,
            &json!({ "squad": squad }),
        )
        .await?;
        tx.commit().await?;
        Ok(Repo {
            owner: owner.to_owned(),
            name: name.to_owned(),
            squad: squad.to_owned(),
            created_at: now,
        })
    }

    /// Every repository, by owner and name.
    pub async fn repos(&self) -> Result<Vec<Repo>> {
        let rows = sqlx::query!(
            "SELECT r.owner AS owner, r.name AS name, s.name AS squad, r.created_at AS created_at
             FROM repos r JOIN squads s ON s.id = r.squad_id ORDER BY r.owner, r.name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Repo {
                owner: row.owner,
                name: row.name,
                squad: row.squad,
                created_at: from_seconds(row.created_at),
            })
            .collect())
    }

    /// Takes `owner/name` away from its squad.
    pub async fn remove_repo(&self, actor: &str, owner: &str, name: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query!(
            "DELETE FROM repos WHERE owner = ? AND name = ?",
            owner,
            name
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            return Err(Error::NotFound {
                kind: "repos",
                name: format!("{owner}/{name}"),
            });
        }
        let target = format!("repos/{owner}/{name}");
        audit::record(&mut tx, now, actor, "repo.remove", &target, &json!({})).await?;
        tx.commit().await?;
        Ok(())
    }
}
