//! Users and their memberships in squads.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::SqliteConnection;

use crate::validate::validate_name;
use crate::{
    Db, Error, Membership, NewUser, Result, Role, User, audit, from_seconds, is_unique_violation,
};

/// The row id of a user, or `NotFound`.
pub(crate) async fn user_id(conn: &mut SqliteConnection, name: &str) -> Result<i64> {
    sqlx::query_scalar!("SELECT id FROM users WHERE name = ?", name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: "users",
            name: name.to_owned(),
        })
}

impl Db {
    /// Creates a user.
    pub async fn create_user(&self, actor: &str, user: &NewUser) -> Result<User> {
        validate_name("name", &user.name)?;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "INSERT INTO users (name, admin, created_at) VALUES (?, ?, ?)",
            user.name,
            user.admin,
            now.as_second(),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists {
                    kind: "users",
                    name: user.name.clone(),
                }
            } else {
                Error::Db(e)
            }
        })?;
        let detail = json!({ "admin": user.admin });
        let target = format!("users/{}", user.name);
        audit::record(&mut tx, now, actor, "user.create", &target, &detail).await?;
        tx.commit().await?;
        Ok(User {
            name: user.name.clone(),
            admin: user.admin,
            squads: Vec::new(),
            created_at: now,
        })
    }

    /// One user with their memberships.
    pub async fn user(&self, name: &str) -> Result<User> {
        self.users_where(Some(name))
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound {
                kind: "users",
                name: name.to_owned(),
            })
    }

    /// Every user with their memberships, by name.
    pub async fn users(&self) -> Result<Vec<User>> {
        self.users_where(None).await
    }

    async fn users_where(&self, name: Option<&str>) -> Result<Vec<User>> {
        let rows = sqlx::query!(
            r#"SELECT name, admin AS "admin: bool", created_at
             FROM users WHERE ?1 IS NULL OR name = ?1 ORDER BY name"#,
            name,
        )
        .fetch_all(&self.pool)
        .await?;
        let member_rows = sqlx::query!(
            "SELECT u.name AS user, s.name AS squad, m.role AS role
             FROM memberships m JOIN users u ON u.id = m.user_id JOIN squads s ON s.id = m.squad_id
             WHERE ?1 IS NULL OR u.name = ?1 ORDER BY s.name",
            name,
        )
        .fetch_all(&self.pool)
        .await?;
        let mut squads: BTreeMap<String, Vec<Membership>> = BTreeMap::new();
        for row in member_rows {
            // The schema's CHECK admits only the two roles.
            let role = Role::parse(&row.role).unwrap_or(Role::Member);
            squads.entry(row.user).or_default().push(Membership {
                squad: row.squad,
                role,
            });
        }
        Ok(rows
            .into_iter()
            .map(|row| User {
                squads: squads.remove(&row.name).unwrap_or_default(),
                admin: row.admin,
                created_at: from_seconds(row.created_at),
                name: row.name,
            })
            .collect())
    }

    /// Deletes a user; their memberships and tokens go with them.
    pub async fn delete_user(&self, actor: &str, name: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let id = user_id(&mut tx, name).await?;
        let tokens: i64 = sqlx::query_scalar!(
            "SELECT count(*) FROM tokens WHERE user_id = ? AND revoked_at IS NULL",
            id,
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM users WHERE id = ?", id)
            .execute(&mut *tx)
            .await?;
        let detail = json!({ "tokensRevoked": tokens });
        audit::record(
            &mut tx,
            now,
            actor,
            "user.delete",
            &format!("users/{name}"),
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
