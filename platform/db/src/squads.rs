//! Squads: their namespaces, quotas, LimitRange defaults, preview budgets and members.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::SqliteConnection;

use crate::users::user_id;
use crate::validate::{validate_hard, validate_new_squad};
use crate::{
    Db, Error, Hard, Limits, Member, NewSquad, PreviewPolicy, Quota, Result, Role, Squad, audit,
    from_seconds, is_unique_violation,
};

/// The row id of a squad, or `NotFound`.
pub(crate) async fn squad_id(conn: &mut SqliteConnection, name: &str) -> Result<i64> {
    sqlx::query_scalar!("SELECT id FROM squads WHERE name = ?", name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: "squads",
            name: name.to_owned(),
        })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Db(sqlx::Error::Encode(Box::new(e))))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Db(sqlx::Error::Decode(Box::new(e))))
}

impl Db {
    /// Creates a squad with its namespaces, after [`validate_new_squad`].
    pub async fn create_squad(&self, actor: &str, squad: &NewSquad) -> Result<Squad> {
        validate_new_squad(squad)?;
        let quota = squad.quota.clone().unwrap_or_else(Quota::squad_default);
        let limits = squad.limits.clone().unwrap_or_default();
        let previews = squad.previews.clone().unwrap_or_default();
        let namespaces = squad.all_namespaces();
        let now = self.now();

        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar!(
            "INSERT INTO squads (name, quota, limits, preview_max, preview_quota,
                preview_ttl_seconds, preview_max_ttl_seconds, allow_pinning, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            squad.name,
            to_json(&quota.hard)?,
            to_json(&limits)?,
            i64::from(previews.max),
            to_json(&previews.quota.hard)?,
            // Both fit: validation bounds the maximum and the TTL by it.
            i64::try_from(previews.ttl_seconds).unwrap_or(i64::MAX),
            i64::try_from(previews.max_ttl_seconds).unwrap_or(i64::MAX),
            previews.allow_pinning,
            now.as_second(),
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists {
                    kind: "squads",
                    name: squad.name.clone(),
                }
            } else {
                Error::Db(e)
            }
        })?;
        for namespace in &namespaces {
            sqlx::query!(
                "INSERT INTO squad_namespaces (squad_id, namespace) VALUES (?, ?)",
                id,
                namespace,
            )
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict(format!(
                        "namespace {namespace:?} already belongs to another squad"
                    ))
                } else {
                    Error::Db(e)
                }
            })?;
        }
        let detail = json!({
            "namespaces": namespaces,
            "quota": quota.hard,
            "limits": limits,
            "previews": previews,
        });
        let target = format!("squads/{}", squad.name);
        audit::record(&mut tx, now, actor, "squad.create", &target, &detail).await?;
        tx.commit().await?;
        Ok(Squad {
            name: squad.name.clone(),
            namespaces,
            quota,
            limits,
            previews,
            members: Vec::new(),
            created_at: now,
        })
    }

    /// One squad.
    pub async fn squad(&self, name: &str) -> Result<Squad> {
        self.squads_where(Some(name))
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound {
                kind: "squads",
                name: name.to_owned(),
            })
    }

    /// Every squad, by name.
    pub async fn squads(&self) -> Result<Vec<Squad>> {
        self.squads_where(None).await
    }

    async fn squads_where(&self, name: Option<&str>) -> Result<Vec<Squad>> {
        let rows = sqlx::query_as!(
            SquadRow,
            r#"SELECT id, name, quota, limits, preview_max, preview_quota, preview_ttl_seconds,
                preview_max_ttl_seconds, allow_pinning AS "allow_pinning: bool", created_at
             FROM squads WHERE ?1 IS NULL OR name = ?1 ORDER BY name"#,
            name,
        )
        .fetch_all(&self.pool)
        .await?;
        let namespace_rows = sqlx::query!(
            "SELECT n.squad_id AS squad_id, n.namespace AS namespace
             FROM squad_namespaces n JOIN squads s ON s.id = n.squad_id
             WHERE ?1 IS NULL OR s.name = ?1 ORDER BY n.id",
            name,
        )
        .fetch_all(&self.pool)
        .await?;
        let member_rows = sqlx::query!(
            "SELECT m.squad_id AS squad_id, u.name AS user, m.role AS role
             FROM memberships m JOIN users u ON u.id = m.user_id JOIN squads s ON s.id = m.squad_id
             WHERE ?1 IS NULL OR s.name = ?1 ORDER BY u.name",
            name,
        )
        .fetch_all(&self.pool)
        .await?;
        let mut namespaces: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for row in namespace_rows {
            namespaces
                .entry(row.squad_id)
                .or_default()
                .push(row.namespace);
        }
        let mut members: BTreeMap<i64, Vec<Member>> = BTreeMap::new();
        for row in member_rows {
            members.entry(row.squad_id).or_default().push(Member {
                user: row.user,
                // The schema's CHECK admits only the two roles.
                role: Role::parse(&row.role).unwrap_or(Role::Member),
            });
        }
        rows.into_iter()
            .map(|row| squad_from_row(row, &mut namespaces, &mut members))
            .collect()
    }

    /// Replaces a squad's quota; returns the squad as it now is.
    pub async fn set_quota(&self, actor: &str, name: &str, hard: &Hard) -> Result<Squad> {
        validate_hard("hard", hard)?;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let id = squad_id(&mut tx, name).await?;
        sqlx::query!(
            "UPDATE squads SET quota = ? WHERE id = ?",
            to_json(hard)?,
            id
        )
        .execute(&mut *tx)
        .await?;
        let detail = json!({ "hard": hard });
        audit::record(
            &mut tx,
            now,
            actor,
            "squad.quota",
            &format!("squads/{name}"),
            &detail,
        )
        .await?;
        tx.commit().await?;
        self.squad(name).await
    }

    /// Deletes a squad with its namespaces' rows, memberships and repos.
    pub async fn delete_squad(&self, actor: &str, name: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let id = squad_id(&mut tx, name).await?;
        sqlx::query!("DELETE FROM squads WHERE id = ?", id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            now,
            actor,
            "squad.delete",
            &format!("squads/{name}"),
            &json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts a user in a squad with `role`, or changes their role there.
    pub async fn set_member(&self, actor: &str, squad: &str, user: &str, role: Role) -> Result<()> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let squad_id = squad_id(&mut tx, squad).await?;
        let user_id = user_id(&mut tx, user).await?;
        sqlx::query!(
            "INSERT INTO memberships (user_id, squad_id, role) VALUES (?, ?, ?)
             ON CONFLICT (user_id, squad_id) DO UPDATE SET role = excluded.role",
            user_id,
            squad_id,
            role.as_str(),
        )
        .execute(&mut *tx)
        .await?;
        let detail = json!({ "user": user, "role": role });
        let target = format!("squads/{squad}/members/{user}");
        audit::record(&mut tx, now, actor, "squad.member.set", &target, &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a user out of a squad.
    pub async fn remove_member(&self, actor: &str, squad: &str, user: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let squad_id = squad_id(&mut tx, squad).await?;
        let user_id = user_id(&mut tx, user).await?;
        let removed = sqlx::query!(
            "DELETE FROM memberships WHERE user_id = ? AND squad_id = ?",
            user_id,
            squad_id,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            return Err(Error::NotFound {
                kind: "members",
                name: format!("{squad}/{user}"),
            });
        }
        let target = format!("squads/{squad}/members/{user}");
        audit::record(
            &mut tx,
            now,
            actor,
            "squad.member.remove",
            &target,
            &json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A squad's row as `sqlx::query_as!` reads it in `squads_where`.
struct SquadRow {
    id: i64,
    name: String,
    quota: String,
    limits: String,
    preview_max: i64,
    preview_quota: String,
    preview_ttl_seconds: i64,
    preview_max_ttl_seconds: i64,
    allow_pinning: bool,
    created_at: i64,
}

fn squad_from_row(
    row: SquadRow,
    namespaces: &mut BTreeMap<i64, Vec<String>>,
    members: &mut BTreeMap<i64, Vec<Member>>,
) -> Result<Squad> {
    Ok(Squad {
        namespaces: namespaces.remove(&row.id).unwrap_or_default(),
        quota: Quota {
            hard: from_json(&row.quota)?,
        },
        limits: from_json::<Limits>(&row.limits)?,
        previews: PreviewPolicy {
            // Written from a u32 and u64s, so these never fall back.
            max: u32::try_from(row.preview_max).unwrap_or(0),
            quota: Quota {
                hard: from_json(&row.preview_quota)?,
            },
            ttl_seconds: u64::try_from(row.preview_ttl_seconds).unwrap_or(0),
            max_ttl_seconds: u64::try_from(row.preview_max_ttl_seconds).unwrap_or(0),
            allow_pinning: row.allow_pinning,
        },
        members: members.remove(&row.id).unwrap_or_default(),
        created_at: from_seconds(row.created_at),
        name: row.name,
    })
}
