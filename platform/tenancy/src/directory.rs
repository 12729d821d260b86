//! The platform's identities in memory: token hashes to users and users to their squads,
//! loaded from the database at start and reloaded after every write. It answers the API
//! server's authentication without IO, and the few authorization questions RBAC cannot
//! express (a user's own tokens, an owner's squad members).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use slipway_access::{
    AUTHENTICATED, Attributes, Authenticator, Authorizer, Decision, Target, User, constant_time_eq,
};
use slipway_clock::SharedClock;
use slipway_platform_db::{Db, Membership, Role, TOKEN_PREFIX, sha256_hex};

/// The API group of the platform's resources, as the authorizer sees them.
pub const API_GROUP: &str = "platform.slipway.dev";

/// The group of platform admins.
pub const ADMINS_GROUP: &str = "slipway:admins";

/// Whether `user` administers the whole platform: a platform admin or a cluster master.
pub fn is_admin(user: &User) -> bool {
    user.groups
        .iter()
        .any(|g| g == ADMINS_GROUP || g == slipway_access::bootstrap::MASTERS)
}

/// The group of a squad's members (DESIGN D8).
pub fn squad_group(squad: &str) -> String {
    format!("squad:{squad}")
}

struct TokenEntry {
    sha256: String,
    user: String,
    expires_at: Option<SystemTime>,
}

struct UserEntry {
    admin: bool,
    squads: Vec<Membership>,
}

#[derive(Default)]
struct Snapshot {
    /// By the hex SHA-256 of the secret.
    tokens: HashMap<String, TokenEntry>,
    users: HashMap<String, UserEntry>,
}

/// Users, their squads and their live tokens, as of the last load.
pub struct Directory {
    clock: SharedClock,
    snapshot: RwLock<Arc<Snapshot>>,
    // Reloads read and swap in one order, so an older read never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: the snapshot holds token hashes, which stay out of logs too.
        let snapshot = self.current();
        f.debug_struct("Directory")
            .field("users", &snapshot.users.len())
            .field("tokens", &snapshot.tokens.len())
            .finish()
    }
}

impl Directory {
    /// Loads every user and live token from `db`; expiry is judged by `db`'s clock.
    pub async fn load(db: &Db) -> Result<Directory, slipway_platform_db::Error> {
        let directory = Directory {
            clock: db.clock().clone(),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            reloading: tokio::sync::Mutex::new(()),
        };
        directory.reload(db).await?;
        Ok(directory)
    }

    /// Reads everything again; called after every write to users, memberships or tokens.
    pub async fn reload(&self, db: &Db) -> Result<(), slipway_platform_db::Error> {
        let _one_at_a_time = self.reloading.lock().await;
        let users = db.users().await?;
        let credentials = db.credentials().await?;
        let snapshot = Snapshot {
            tokens: credentials
                .into_iter()
                .map(|c| {
                    let entry = TokenEntry {
                        sha256: c.sha256.clone(),
                        user: c.user,
                        expires_at: c.expires_at.map(SystemTime::from),
                    };
                    (c.sha256, entry)
                })
                .collect(),
            users: users
                .into_iter()
                .map(|u| {
                    let entry = UserEntry {
                        admin: u.admin,
                        squads: u.squads,
                    };
                    (u.name, entry)
                })
                .collect(),
        };
        *self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snapshot);
        Ok(())
    }

    fn current(&self) -> Arc<Snapshot> {
        Arc::clone(
            &self
                .snapshot
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The groups of a platform user, or `None` if there is no such user.
    pub fn groups(&self, user: &str) -> Option<Vec<String>> {
        let snapshot = self.current();
        let entry = snapshot.users.get(user)?;
        Some(groups_of(entry))
    }
}

fn groups_of(entry: &UserEntry) -> Vec<String> {
    let mut groups: Vec<String> = entry.squads.iter().map(|m| squad_group(&m.squad)).collect();
    if entry.admin {
        groups.push(ADMINS_GROUP.to_owned());
    }
    groups.push(AUTHENTICATED.to_owned());
    groups
}

fn is_member(entry: &UserEntry, squad: &str) -> bool {
    entry.squads.iter().any(|m| m.squad == squad)
}

fn is_owner(entry: &UserEntry, squad: &str) -> bool {
    entry
        .squads
        .iter()
        .any(|m| m.squad == squad && m.role == Role::Owner)
}

impl Authenticator for Directory {
    fn authenticate(&self, token: &str) -> Option<User> {
        // Other authenticators' tokens are not hashed at all.
        if !token.starts_with(TOKEN_PREFIX) {
            return None;
        }
        let hash = sha256_hex(token);
        let snapshot = self.current();
        let entry = snapshot.tokens.get(&hash)?;
        if !constant_time_eq(entry.sha256.as_bytes(), hash.as_bytes()) {
            return None;
        }
        if entry.expires_at.is_some_and(|at| self.clock.now() >= at) {
            return None;
        }
        let user = snapshot.users.get(&entry.user)?;
        Some(User {
            name: entry.user.clone(),
            groups: groups_of(user),
        })
    }
}

impl Authorizer for Directory {
    fn authorize(&self, user: &User, attributes: &Attributes) -> Decision {
        let Target::Resource {
            group,
            resource,
            subresource,
            name,
            ..
        } = &attributes.target
        else {
            return Decision::NoOpinion;
        };
        if group != API_GROUP {
            return Decision::NoOpinion;
        }
        let snapshot = self.current();
        // Only platform users get these grants; a system identity with the same name does not.
        let Some(entry) = snapshot.users.get(&user.name) else {
            return Decision::NoOpinion;
        };
        let verb = attributes.verb.as_str();
        let allowed = match (resource.as_str(), subresource.as_str()) {
            ("users", "tokens") => {
                *name == user.name && matches!(verb, "get" | "list" | "create" | "delete")
            }
            ("users", "") => *name == user.name && verb == "get",
            ("squads", "members") => {
                matches!(verb, "create" | "delete" | "list") && is_owner(entry, name)
            }
            // Members see their squad's repositories; owners register and remove them.
            ("squads", "repos") => match verb {
                "get" | "list" => is_member(entry, name),
                "create" | "delete" => is_owner(entry, name),
                _ => false,
            },
            // Members see, extend, wake and destroy their squad's previews.
            ("squads", "previews") => {
                matches!(verb, "get" | "list" | "create" | "delete") && is_member(entry, name)
            }
            // Everyone may list previews; the answer holds only their squads'.
            ("previews", "") => verb == "list",
            _ => false,
        };
        if allowed {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}
