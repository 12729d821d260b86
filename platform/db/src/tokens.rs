//! API tokens: a random secret shown once, stored only as its SHA-256.

use std::fmt;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::users::user_id;
use crate::{Credential, Db, Error, Result, TokenInfo, audit, from_seconds};

/// What every secret starts with, so a leaked one is recognisable (and authenticators can
/// skip tokens that are not theirs).
pub const TOKEN_PREFIX: &str = "slw_";

/// A token's secret: `slw_` and 64 lower-case hex digits. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for handing to its user once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A token just created: its record and, this once, its secret.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    /// The token's record.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret; it cannot be read again.
    pub token: Secret,
}

/// The lower-case hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn random_hex(len: usize) -> Result<String> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Db(sqlx::Error::Io(std::io::Error::other(e.to_string()))))?;
    Ok(hex(&bytes))
}

/// A token's row as `sqlx::query_as!` reads it; both token queries select these columns.
struct TokenRow {
    id: String,
    user: String,
    description: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<TokenRow> for TokenInfo {
    fn from(row: TokenRow) -> TokenInfo {
        TokenInfo {
            id: row.id,
            user: row.user,
            description: row.description,
            created_at: from_seconds(row.created_at),
            expires_at: row.expires_at.map(from_seconds),
            revoked_at: row.revoked_at.map(from_seconds),
        }
    }
}

impl Db {
    /// Creates a token for `user`, expiring `expires_in_seconds` from now if given.
    pub async fn create_token(
        &self,
        actor: &str,
        user: &str,
        description: Option<&str>,
        expires_in_seconds: Option<u64>,
    ) -> Result<CreatedToken> {
        let now = self.now();
        let expires_at = match expires_in_seconds {
            None => None,
            Some(0) => {
                return Err(Error::Invalid {
                    field: "expiresInSeconds".to_owned(),
                    message: "must be greater than 0".to_owned(),
                });
            }
            Some(seconds) => Some(
                i64::try_from(seconds)
                    .ok()
                    .and_then(|s| now.as_second().checked_add(s))
                    .and_then(|s| jiff::Timestamp::from_second(s).ok())
                    .ok_or_else(|| Error::Invalid {
                        field: "expiresInSeconds".to_owned(),
                        message: format!("{seconds} is too large"),
                    })?,
            ),
        };
        let secret = Secret(format!("{TOKEN_PREFIX}{}", random_hex(32)?));
        let id = format!("tok_{}", random_hex(6)?);
        let mut tx = self.pool.begin().await?;
        let uid = user_id(&mut tx, user).await?;
        sqlx::query!(
            "INSERT INTO tokens (id, user_id, description, secret_sha256, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
            id,
            uid,
            description,
            sha256_hex(secret.expose()),
            now.as_second(),
            expires_at.map(|t| t.as_second()),
        )
        .execute(&mut *tx)
        .await?;
        let detail = json!({ "id": id, "description": description, "expiresAt": expires_at });
        let target = format!("users/{user}/tokens/{id}");
        audit::record(&mut tx, now, actor, "token.create", &target, &detail).await?;
        tx.commit().await?;
        Ok(CreatedToken {
            info: TokenInfo {
                id,
                user: user.to_owned(),
                description: description.map(str::to_owned),
                created_at: now,
                expires_at,
                revoked_at: None,
            },
            token: secret,
        })
    }

    /// A user's tokens, revoked ones included, oldest first; never their secrets.
    pub async fn tokens(&self, user: &str) -> Result<Vec<TokenInfo>> {
        let mut conn = self.pool.acquire().await?;
        user_id(&mut conn, user).await?;
        // The same columns as in `revoke_token`: the macros need a literal, not a `concat!`.
        let rows = sqlx::query_as!(
            TokenRow,
            // `id!`: SQLite lets a TEXT PRIMARY KEY hold NULL, so sqlx infers `Option`; the
            // code never writes one.
            r#"SELECT t.id AS "id!", u.name AS user, t.description AS description,
                t.created_at AS created_at, t.expires_at AS expires_at, t.revoked_at AS revoked_at
             FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE u.name = ? ORDER BY t.rowid"#,
            user,
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(TokenInfo::from).collect())
    }

    /// Revokes a token of `user`; revoking twice keeps the first time.
    pub async fn revoke_token(&self, actor: &str, user: &str, id: &str) -> Result<TokenInfo> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let uid = user_id(&mut tx, user).await?;
        let changed = sqlx::query!(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? AND user_id = ?",
            now.as_second(),
            id,
            uid,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(Error::NotFound {
                kind: "tokens",
                name: id.to_owned(),
            });
        }
        let target = format!("users/{user}/tokens/{id}");
        audit::record(&mut tx, now, actor, "token.revoke", &target, &json!({})).await?;
        // The same columns as in `tokens` (and `id!` for the same reason).
        let row = sqlx::query_as!(
            TokenRow,
            r#"SELECT t.id AS "id!", u.name AS user, t.description AS description,
                t.created_at AS created_at, t.expires_at AS expires_at, t.revoked_at AS revoked_at
             FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.id = ?"#,
            id,
        )
        .fetch_one(&mut *tx)
        .await?;
        let token = TokenInfo::from(row);
        tx.commit().await?;
        Ok(token)
    }

    /// Every token not revoked, with its hash: what an authenticator loads.
    pub async fn credentials(&self) -> Result<Vec<Credential>> {
        let rows = sqlx::query!(
            // `id!`: see `tokens`.
            r#"SELECT t.id AS "id!", u.name AS user, t.secret_sha256 AS sha256,
                t.expires_at AS expires_at
             FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.revoked_at IS NULL"#,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Credential {
                id: row.id,
                user: row.user,
                sha256: row.sha256,
                expires_at: row.expires_at.map(from_seconds),
            })
            .collect())
    }
}
