//! The orchestrator's state store (DESIGN D3): an MVCC key-value interface with one global
//! revision that becomes every object's `resourceVersion`.
//!
//! Only the API server holds a [`Store`] (D2). Backends live in their own crates
//! (`slipway-store-sqlite`, `slipway-store-etcd`) and must all pass the one
//! [`conformance`] suite; [`faults::FaultyStore`] wraps any backend to inject failures.
//!
//! Semantics every backend keeps:
//! - every write (create, update, delete, lease expiry) gets a revision strictly greater
//!   than all before it, and a reader that saw a write's acknowledgement sees the write;
//! - a watch from revision `R` delivers every change under its prefix with a revision
//!   greater than `R`, exactly once and in revision order;
//! - after compaction at `C`, the state at `C` and later stays readable and older
//!   revisions answer [`Error::Compacted`].

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod faults;
mod key;

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use error::{BoxError, Error, Result};
pub use key::{prefix_end, validate_key, validate_prefix, validate_put};

/// A store revision: the global, strictly increasing version of the whole store.
pub type Revision = i64;

/// A lease: keys bound to it are deleted when it expires or is revoked.
pub type LeaseId = i64;

/// The largest value a backend accepts: 1.5 MiB, the object size Kubernetes allows.
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// The longest key a backend accepts.
pub const MAX_KEY_BYTES: usize = 1024;

/// One key with its current value and versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value, opaque to the store.
    pub value: Bytes,
    /// The revision that created this incarnation of the key.
    pub create_revision: Revision,
    /// The revision of the last write to the key: the object's `resourceVersion`.
    pub mod_revision: Revision,
    /// The lease the key is bound to, if any.
    pub lease: Option<LeaseId>,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The key was created (`prev` is `None`) or updated.
    Put {
        /// The new state; `kv.mod_revision` is the change's revision.
        kv: KeyValue,
        /// The state before the change.
        prev: Option<KeyValue>,
    },
    /// The key was deleted, explicitly or because its lease ended.
    Delete {
        /// The revision of the deletion.
        revision: Revision,
        /// The last state before deletion.
        prev: KeyValue,
    },
}

impl Event {
    /// The revision of this change.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key this change is about.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// What [`Store::list`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read the state at this revision; `None` reads the current state.
    pub revision: Option<Revision>,
    /// Return at most this many keys; `None` or `Some(0)` returns all, as in Kubernetes
    /// and etcd.
    pub limit: Option<usize>,
    /// Start after this key (exclusive), to continue a paged list.
    pub start_after: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// The revision the list was read at; later pages must ask for this one.
    pub revision: Revision,
    /// Whether keys after the last one returned remain.
    pub more: bool,
}

/// The result of a delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The revision of the deletion.
    pub revision: Revision,
    /// The state that was deleted.
    pub prev: KeyValue,
}

/// The changes under a prefix, in revision order. The stream ends after an error.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send + 'static>>;

/// An MVCC key-value store with a global revision.
///
/// Keys are printable ASCII without spaces (see [`validate_key`]); prefixes select the keys
/// that start with them. Values are at most [`MAX_VALUE_BYTES`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `key` if it does not exist. Fails with [`Error::AlreadyExists`] otherwise.
    async fn create(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<KeyValue>;

    /// Reads `key` now, or as it was at `revision`.
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>>;

    /// Reads the keys under `prefix`, in key order, one page at a time.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult>;

    /// Replaces `key`'s value if its `mod_revision` is still `expected`.
    ///
    /// Fails with [`Error::NotFound`] if the key is gone and [`Error::Conflict`], carrying
    /// the current state, if it changed.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue>;

    /// Deletes `key`, if `expected` is given only while its `mod_revision` is still that.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted>;

    /// Watches the keys under `prefix` for every change with a revision after `after`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The current revision of the whole store.
    async fn revision(&self) -> Result<Revision>;

    /// The newest revision that has been compacted away; reads before it fail.
    async fn compacted_revision(&self) -> Result<Revision>;

    /// Discards history older than `revision`, keeping the state at `revision` readable.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Grants a lease that expires `ttl` after its grant or last keep-alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Restarts a lease's time to live.
    async fn keep_alive(&self, lease: LeaseId) -> Result<()>;

    /// Ends a lease now, deleting every key bound to it.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;
}
