//! The tenancy service: every change to squads, users and tokens goes to the database first
//! and then, for squads, to the cluster; the [`Directory`] is reloaded after each write.

use std::sync::Arc;

use kube::Client;
use slipway_platform_db::{
    AuditEntry, CreatedToken, Db, Hard, NewSquad, NewUser, Role, Squad, TokenInfo, User,
    validate_new_squad,
};

use crate::cluster;
use crate::{Directory, Error, Result};

/// Squads, users and tokens: the database, the directory built from it and the cluster.
pub struct Tenancy {
    db: Db,
    directory: Arc<Directory>,
    client: Client,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("db", &self.db)
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl Tenancy {
    /// Starts over `db` and `directory` (loaded from it, and already the API server's
    /// authenticator and authorizer) and re-applies every squad to the cluster, so that a
    /// crash between a database write and its API calls is repaired. A squad that fails to
    /// apply is logged and left for the next start or change, not fatal.
    pub async fn start(db: Db, directory: Arc<Directory>, client: Client) -> Result<Tenancy> {
        let tenancy = Tenancy {
            db,
            directory,
            client,
        };
        for squad in tenancy.db.squads().await? {
            if let Err(e) = tenancy.apply_squad(&squad).await {
                tracing::warn!(squad = %squad.name, error = %e, "reconciling a squad at start");
            }
        }
        Ok(tenancy)
    }

    /// The directory: the API server's authenticator and platform authorizer.
    pub fn directory(&self) -> Arc<Directory> {
        Arc::clone(&self.directory)
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    async fn apply_squad(&self, squad: &Squad) -> Result<()> {
        for namespace in &squad.namespaces {
            cluster::apply_namespace(&self.client, squad, namespace).await?;
        }
        Ok(())
    }

    /// Re-applies one squad's namespaces and their objects.
    pub async fn reconcile_squad(&self, name: &str) -> Result<()> {
        let squad = self.db.squad(name).await?;
        self.apply_squad(&squad).await
    }

    /// Creates a squad: refused if one of its namespaces exists and is not labelled for it.
    pub async fn create_squad(&self, actor: &str, new: &NewSquad) -> Result<Squad> {
        // Cheap checks first, so bad input never reaches the cluster.
        validate_new_squad(new)?;
        for namespace in new.all_namespaces() {
            match cluster::namespace_owner(&self.client, &namespace).await? {
                None => {}
                Some(Some(owner)) if owner == new.name => {}
                Some(_) => {
                    return Err(Error::NamespaceTaken {
                        namespace,
                        squad: new.name.clone(),
                    });
                }
            }
        }
        let squad = self.db.create_squad(actor, new).await?;
        self.apply_squad(&squad).await?;
        Ok(squad)
    }

    /// One squad.
    pub async fn squad(&self, name: &str) -> Result<Squad> {
        Ok(self.db.squad(name).await?)
    }

    /// Every squad.
    pub async fn squads(&self) -> Result<Vec<Squad>> {
        Ok(self.db.squads().await?)
    }

    /// Replaces a squad's quota in every one of its namespaces.
    pub async fn set_quota(&self, actor: &str, name: &str, hard: &Hard) -> Result<Squad> {
        let squad = self.db.set_quota(actor, name, hard).await?;
        for namespace in &squad.namespaces {
            cluster::apply_quota(&self.client, &squad, namespace).await?;
        }
        Ok(squad)
    }

    /// Deletes a squad and its namespaces; refused while a namespace holds work, unless
    /// `force`.
    pub async fn delete_squad(&self, actor: &str, name: &str, force: bool) -> Result<()> {
        let squad = self.db.squad(name).await?;
        if !force {
            let mut found = Vec::new();
            for namespace in &squad.namespaces {
                for object in cluster::contents(&self.client, namespace).await? {
                    found.push(format!("{namespace}: {object}"));
                }
            }
            if !found.is_empty() {
                return Err(Error::NotEmpty {
                    squad: name.to_owned(),
                    found,
                });
            }
        }
        self.db.delete_squad(actor, name).await?;
        self.directory.reload(&self.db).await?;
        for namespace in &squad.namespaces {
            cluster::delete_tenant_namespace(&self.client, name, namespace).await?;
        }
        Ok(())
    }

    /// Puts a user in a squad, or changes their role there.
    pub async fn set_member(&self, actor: &str, squad: &str, user: &str, role: Role) -> Result<()> {
        self.db.set_member(actor, squad, user, role).await?;
        self.directory.reload(&self.db).await?;
        Ok(())
    }

    /// Takes a user out of a squad.
    pub async fn remove_member(&self, actor: &str, squad: &str, user: &str) -> Result<()> {
        self.db.remove_member(actor, squad, user).await?;
        self.directory.reload(&self.db).await?;
        Ok(())
    }

    /// Creates a user.
    pub async fn create_user(&self, actor: &str, new: &NewUser) -> Result<User> {
        let user = self.db.create_user(actor, new).await?;
        self.directory.reload(&self.db).await?;
        Ok(user)
    }

    /// One user.
    pub async fn user(&self, name: &str) -> Result<User> {
        Ok(self.db.user(name).await?)
    }

    /// Every user.
    pub async fn users(&self) -> Result<Vec<User>> {
        Ok(self.db.users().await?)
    }

    /// Deletes a user with their memberships and tokens.
    pub async fn delete_user(&self, actor: &str, name: &str) -> Result<()> {
        self.db.delete_user(actor, name).await?;
        self.directory.reload(&self.db).await?;
        Ok(())
    }

    /// Creates a token; its secret is in the answer and nowhere else.
    pub async fn create_token(
        &self,
        actor: &str,
        user: &str,
        description: Option<&str>,
        expires_in_seconds: Option<u64>,
    ) -> Result<CreatedToken> {
        let token = self
            .db
            .create_token(actor, user, description, expires_in_seconds)
            .await?;
        self.directory.reload(&self.db).await?;
        Ok(token)
    }

    /// A user's tokens, without secrets.
    pub async fn tokens(&self, user: &str) -> Result<Vec<TokenInfo>> {
        Ok(self.db.tokens(user).await?)
    }

    /// Revokes a token; it fails its next authentication.
    pub async fn revoke_token(&self, actor: &str, user: &str, id: &str) -> Result<TokenInfo> {
        let token = self.db.revoke_token(actor, user, id).await?;
        self.directory.reload(&self.db).await?;
        Ok(token)
    }

    /// The newest audit entries, newest first.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        Ok(self.db.audit(limit).await?)
    }
}
