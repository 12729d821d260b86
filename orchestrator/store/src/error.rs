//! The store's typed errors, shared by every backend so callers can branch on them.

use crate::{KeyValue, LeaseId, Revision};

/// A boxed error from a backend's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Create found the key already there.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
        /// Its current state.
        current: Box<KeyValue>,
    },
    /// The key does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A compare-and-swap found a different revision than expected.
    #[error(
        "key {key:?} was modified: expected revision {expected}, found {}",
        current.mod_revision
    )]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The current state, with its revision.
        current: Box<KeyValue>,
    },
    /// The revision asked for has been compacted away.
    #[error("revision {requested} has been compacted; the oldest readable revision is {compacted}")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compacted revision: reads at it and later work.
        compacted: Revision,
    },
    /// The revision asked for has not happened yet.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The value is larger than [`crate::MAX_VALUE_BYTES`].
    #[error("value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The key.
        key: String,
        /// The value's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The key or prefix is not acceptable.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The lease does not exist or has expired.
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// Another process holds the store.
    #[error("store {path} is in use by another process")]
    Locked {
        /// The store's path.
        path: String,
    },
    /// The backend cannot be reached or is shutting down; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The backend failed in a way a retry will not fix.
    #[error("store internal error: {0}")]
    Internal(#[source] BoxError),
}

impl Error {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// A short, stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::AlreadyExists { .. } => "already_exists",
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Compacted { .. } => "compacted",
            Error::FutureRevision { .. } => "future_revision",
            Error::TooLarge { .. } => "too_large",
            Error::InvalidKey { .. } => "invalid_key",
            Error::LeaseNotFound(_) => "lease_not_found",
            Error::Locked { .. } => "locked",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}
