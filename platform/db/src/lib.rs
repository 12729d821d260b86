//! The platform database (DESIGN D6): users, squads and their namespaces, memberships, API
//! tokens, repositories, webhook deliveries, previews and the audit log, in one SQLite file
//! through sqlx.
//!
//! Every mutating function takes the name of the actor and writes its [`AuditEntry`] in the
//! same transaction as the change, so the log never misses a change nor records one that
//! did not happen. Time comes from the [`SharedClock`] given to [`Db::open`] (DESIGN D9).
//!
//! A token's secret is never stored: only its SHA-256 is, and the secret is handed back once,
//! by [`Db::create_token`], inside a [`Secret`] whose `Debug` hides it.

mod audit;
mod model;
mod previews;
mod repos;
mod squads;
mod tokens;
mod users;
mod validate;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use slipway_clock::SharedClock;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use model::{
    Access, Applied, AuditEntry, Command, CpuMemory, Credential, Delivery, Hard, Limits, Member,
    Membership, NewDelivery, NewRepo, NewSquad, NewUser, Phase, Preview, PreviewPolicy,
    PreviewStatus, Quota, Recorded, Repo, RepoSecrets, Role, Squad, TokenInfo, User,
};
pub use repos::validate_new_repo;
pub use tokens::{CreatedToken, Secret, TOKEN_PREFIX, sha256_hex};
pub use validate::{validate_hard, validate_name, validate_new_squad};

/// What can go wrong with the platform database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named record does not exist.
    #[error("{kind} \"{name}\" not found")]
    NotFound {
        /// What kind of record (`squads`, `users`, `tokens`, `repos`).
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A record with that name exists already.
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists {
        /// What kind of record.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A value was refused; nothing was written.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a JSON path of the request (`quota.hard[pods]`).
        field: String,
        /// Why.
        message: String,
    },
    /// The change contradicts the state (a namespace owned by another squad).
    #[error("{0}")]
    Conflict(String),
    /// SQLite or sqlx failed.
    #[error("platform database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The platform database: a pool over one SQLite file in WAL mode with foreign keys on.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
    clock: SharedClock,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>, clock: SharedClock) -> Result<Db> {
        owner_only(path.as_ref()).map_err(|e| Error::Db(sqlx::Error::Io(e)))?;
        let connect = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| Error::Db(sqlx::Error::Migrate(Box::new(e))))?;
        Ok(Db { pool, clock })
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The clock the database stamps rows with.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Now, in whole seconds: rows keep seconds, so a value read back equals the one returned.
    fn now(&self) -> Timestamp {
        let now = Timestamp::try_from(self.clock.now()).unwrap_or(Timestamp::UNIX_EPOCH);
        from_seconds(now.as_second())
    }
}

/// Creates the database file readable by its owner only, or makes an existing one so: it
/// holds webhook secrets and GitHub credentials. SQLite gives its `-wal` and `-shm` files
/// the database file's mode.
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// A stored time (Unix seconds) as a timestamp; out-of-range values (never written by this
/// crate) read as the epoch rather than failing a whole listing.
fn from_seconds(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Whether a database error is a unique-constraint violation.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod tests;
