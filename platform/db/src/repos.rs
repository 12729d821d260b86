//! Repositories a squad owns, with their webhook secret and GitHub credentials; previews
//! are made for their pull requests.

use serde_json::json;

use crate::squads::squad_id;
use crate::{
    Access, Db, Error, NewRepo, Repo, RepoSecrets, Result, audit, from_seconds, is_unique_violation,
};

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

fn invalid(field: &str, message: &str) -> Error {
    Error::Invalid {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

/// Checks a repository to register; nothing is written when it fails.
pub fn validate_new_repo(repo: &NewRepo) -> Result<()> {
    validate_repo_part("owner", &repo.owner)?;
    validate_repo_part("name", &repo.name)?;
    if repo.webhook_secret.trim().is_empty() {
        return Err(invalid("webhookSecret", "must not be empty"));
    }
    match &repo.access {
        Access::Token(token) if token.trim().is_empty() => {
            Err(invalid("access.token", "must not be empty"))
        }
        Access::Token(token) if token.chars().any(char::is_whitespace) => {
            Err(invalid("access.token", "must not contain whitespace"))
        }
        Access::App { app_id: 0, .. } => Err(invalid("access.app.appId", "must be positive")),
        Access::App { private_key, .. } if !private_key.contains("-----BEGIN") => Err(invalid(
            "access.app.privateKey",
            "is not a PEM private key (no -----BEGIN line)",
        )),
        _ => Ok(()),
    }
}

fn encode_access(access: &Access) -> Result<String> {
    serde_json::to_string(access).map_err(|e| Error::Db(sqlx::Error::Encode(Box::new(e))))
}

fn decode_access(text: &str) -> Result<Access> {
    serde_json::from_str(text).map_err(|e| Error::Db(sqlx::Error::Decode(Box::new(e))))
}

/// A repository row as the queries below read it.
struct RepoRow {
    id: i64,
    owner: String,
    name: String,
    squad: String,
    access: String,
    created_at: i64,
}

impl RepoRow {
    fn into_repo(self) -> Repo {
        // The kind is read from the stored JSON's one key, so a listing never parses secrets.
        let kind = if self.access.starts_with("{\"app\"") {
            "app"
        } else {
            "token"
        };
        Repo {
            id: self.id,
            owner: self.owner,
            name: self.name,
            squad: self.squad,
            access: kind.to_owned(),
            created_at: from_seconds(self.created_at),
        }
    }
}

impl Db {
    /// Gives a repository to a squad, with its webhook secret and credentials.
    pub async fn add_repo(&self, actor: &str, squad: &str, new: &NewRepo) -> Result<Repo> {
        validate_new_repo(new)?;
        let now = self.now();
        let access = encode_access(&new.access)?;
        let mut tx = self.pool.begin().await?;
        let sid = squad_id(&mut tx, squad).await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO repos (owner, name, squad_id, created_at, webhook_secret, access)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id AS \"id!\"",
            new.owner,
            new.name,
            sid,
            now.as_second(),
            new.webhook_secret,
            access,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists {
                    kind: "repos",
                    name: format!("{}/{}", new.owner, new.name),
                }
            } else {
                Error::Db(e)
            }
        })?;
        let target = format!("repos/{}/{}", new.owner, new.name);
        audit::record(
            &mut tx,
            now,
            actor,
            "repo.add",
            &target,
            &json!({ "squad": squad, "access": new.access.kind() }),
        )
        .await?;
        tx.commit().await?;
        Ok(Repo {
            id,
            owner: new.owner.clone(),
            name: new.name.clone(),
            squad: squad.to_owned(),
            access: new.access.kind().to_owned(),
            created_at: now,
        })
    }

    /// Every repository, by owner and name.
    pub async fn repos(&self) -> Result<Vec<Repo>> {
        let rows = sqlx::query_as!(
            RepoRow,
            "SELECT r.id AS id, r.owner AS owner, r.name AS name, s.name AS squad,
                    r.access AS access, r.created_at AS created_at
             FROM repos r JOIN squads s ON s.id = r.squad_id ORDER BY r.owner, r.name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(RepoRow::into_repo).collect())
    }

    /// One repository by `owner/name`, compared case-insensitively as GitHub does.
    pub async fn repo(&self, owner: &str, name: &str) -> Result<Repo> {
        sqlx::query_as!(
            RepoRow,
            "SELECT r.id AS id, r.owner AS owner, r.name AS name, s.name AS squad,
                    r.access AS access, r.created_at AS created_at
             FROM repos r JOIN squads s ON s.id = r.squad_id
             WHERE r.owner = ? COLLATE NOCASE AND r.name = ? COLLATE NOCASE",
            owner,
            name,
        )
        .fetch_optional(&self.pool)
        .await?
        .map(RepoRow::into_repo)
        .ok_or_else(|| Error::NotFound {
            kind: "repos",
            name: format!("{owner}/{name}"),
        })
    }

    /// A repository's webhook secret and credentials.
    pub async fn repo_secrets(&self, id: i64) -> Result<RepoSecrets> {
        let row = sqlx::query!("SELECT webhook_secret, access FROM repos WHERE id = ?", id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "repos",
                name: id.to_string(),
            })?;
        Ok(RepoSecrets {
            webhook_secret: row.webhook_secret,
            access: decode_access(&row.access)?,
        })
    }

    /// Takes `owner/name` away from its squad; refused while one of its previews is alive.
    pub async fn remove_repo(&self, actor: &str, owner: &str, name: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let live = sqlx::query_scalar!(
            "SELECT COUNT(*) FROM previews p JOIN repos r ON r.id = p.repo_id
             WHERE r.owner = ? AND r.name = ? AND p.phase != 'destroyed'",
            owner,
            name
        )
        .fetch_one(&mut *tx)
        .await?;
        if live > 0 {
            return Err(Error::Conflict(format!(
                "repos \"{owner}/{name}\" has {live} live preview(s); destroy them first"
            )));
        }
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
