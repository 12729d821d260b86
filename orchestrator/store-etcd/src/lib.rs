//! The orchestrator's [`Store`] over etcd (DESIGN D3), for HA control planes: several API
//! servers share a 3- or 5-member etcd cluster.
//!
//! Everything maps onto etcd's own machinery: store revisions are etcd revisions,
//! compare-and-swap is an etcd transaction comparing `mod_revision` (or `create_revision == 0`
//! for create-if-absent) that reads the current state in its failure branch, so a
//! [`Error::Conflict`] carries the state that made it fail; watches are etcd watches with
//! previous values; leases are etcd leases.
//!
//! Each write is one etcd transaction and each read one range request; explaining a failure
//! (with the compacted or the current revision) may take one more request. Dropping a call's
//! future therefore leaves nothing half-done on the client side.
//!
//! etcd does not report its compacted revision. [`Store::compacted_revision`] remembers the
//! highest one this store has compacted or been told about, and asks etcd only when a read
//! at that revision fails: a watch from revision 1 is then refused with the exact compacted
//! revision. Another client's compaction is therefore learned lazily, on the next call, at
//! the cost of a short extra exchange.

mod error;
mod namespace;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    KvClient, LeaseClient, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient,
    WatchOptions, WatchResponse,
};
use slipway_store::{
    Deleted, Error, KeyValue, LeaseId, ListOptions, ListResult, Result, Revision, Store,
    WatchStream, validate_key, validate_prefix, validate_put,
};

use crate::error::{Kind, kind, plain, unexpected};
use crate::namespace::{Namespace, PROBE_KEY};

/// How long a connection attempt to one endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request may wait for etcd's first answer. It bounds requests to an etcd that
/// cannot answer; it does not limit a watch's lifetime, only its creation. Physical
/// compaction of a large history is the slowest legitimate request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// HTTP/2 pings that notice a dead connection under an idle watch.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response accepted. gRPC's default of 4 MiB is less than one list page or one
/// watch response can hold when values approach [`slipway_store::MAX_VALUE_BYTES`]; Kubernetes' API server
/// lifts it the same way.
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// A [`Store`] backed by an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    namespace: Namespace,
    /// The highest compacted revision seen, shared by clones and watches.
    compacted: Arc<AtomicI64>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("namespace", &self.namespace)
            .field("compacted", &self.compacted)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`http://host:port`) and checks that it answers.
    ///
    /// With a `namespace` (which must end with `/`), every key is stored under it, so several
    /// clusters can share one etcd; keys come back without it.
    pub async fn connect(endpoints: &[String], namespace: Option<String>) -> Result<EtcdStore> {
        let namespace = Namespace::new(namespace.unwrap_or_default())?;
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(plain)?;
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            lease: client.lease_client(),
            namespace,
            compacted: Arc::new(AtomicI64::new(0)),
        };
        // The client connects lazily; one read makes an unreachable etcd fail here.
        store.revision().await?;
        Ok(store)
    }

    /// A store error for an etcd error, with the revision or lease the request was about.
    async fn error(
        &self,
        err: etcd_client::Error,
        requested: Option<Revision>,
        lease: Option<LeaseId>,
    ) -> Error {
        match (kind(&err), requested, lease) {
            (Kind::Compacted, Some(requested), _) => self.compacted_error(requested).await,
            (Kind::FutureRevision, Some(requested), _) => match self.revision().await {
                Ok(current) => Error::FutureRevision { requested, current },
                Err(e) => e,
            },
            (Kind::LeaseNotFound, _, Some(lease)) => Error::LeaseNotFound(lease),
            _ => plain(err),
        }
    }

    async fn compacted_error(&self, requested: Revision) -> Error {
        match self.compacted_revision().await {
            Ok(compacted) => Error::Compacted {
                requested,
                compacted,
            },
            Err(e) => e,
        }
    }

    /// The error for a watch etcd canceled; `last` is the last revision it delivered.
    fn canceled(&self, response: &WatchResponse, last: Revision) -> Error {
        let compacted = response.compact_revision();
        if compacted > 0 {
            self.compacted.fetch_max(compacted, Ordering::Relaxed);
            return Error::Compacted {
                requested: last,
                compacted,
            };
        }
        // A cancel etcd did not ask for (lost leader, shutdown): a new watch may work.
        Error::Unavailable(format!("etcd canceled the watch: {}", response.cancel_reason()).into())
    }

    /// Fails with [`Error::Compacted`] (about `requested`) when `revision` is compacted.
    async fn check_readable(&self, revision: Revision, requested: Revision) -> Result<()> {
        let options = GetOptions::new().with_revision(revision).with_count_only();
        match self.kv.clone().get(PROBE_KEY, Some(options)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e, Some(requested), None).await),
        }
    }

    /// Asks etcd for its compacted revision, known to be above `known`.
    async fn discover_compacted(&self, known: Revision) -> Result<Revision> {
        // A watch on a revision below the compacted one is canceled with the compacted
        // revision, right after `created` and before any event.
        let options = WatchOptions::new().with_start_revision(1);
        let mut watch = self
            .watch
            .clone()
            .watch(PROBE_KEY, Some(options))
            .await
            .map_err(plain)?;
        while let Some(response) = watch.message().await.map_err(plain)? {
            if response.canceled() {
                let compacted = response.compact_revision();
                if compacted > known {
                    self.compacted.fetch_max(compacted, Ordering::Relaxed);
                    return Ok(compacted);
                }
                return Err(unexpected(format!(
                    "etcd canceled the compaction probe: {}",
                    response.cancel_reason()
                )));
            }
        }
        Err(Error::Unavailable("etcd ended the compaction probe".into()))
    }

    async fn txn(&self, txn: Txn, lease: Option<LeaseId>) -> Result<TxnResponse> {
        match self.kv.clone().txn(txn).await {
            Ok(response) => Ok(response),
            Err(e) => Err(self.error(e, None, lease).await),
        }
    }

    /// The state a failed transaction read in its `or_else` branch, if the key exists.
    fn current(&self, response: &TxnResponse) -> Result<Option<KeyValue>> {
        match response.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(mut get)) => get
                .take_kvs()
                .into_iter()
                .next()
                .map(|kv| self.namespace.kv(kv))
                .transpose(),
            _ => Err(unexpected("etcd transaction failed without its read")),
        }
    }
}

fn header_revision(response: &TxnResponse) -> Result<Revision> {
    response
        .header()
        .map(|h| h.revision())
        .ok_or_else(|| unexpected("etcd response without a header"))
}

fn put_options(lease: Option<LeaseId>) -> PutOptions {
    // etcd's lease 0 means no lease.
    PutOptions::new().with_lease(lease.unwrap_or(0))
}

#[async_trait]
impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<KeyValue> {
        validate_put(key, &value)?;
        let full = self.namespace.key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                full.clone(),
                value.clone(),
                Some(put_options(lease)),
            )])
            .or_else([TxnOp::get(full, None)]);
        let response = self.txn(txn, lease).await?;
        if !response.succeeded() {
            let current = self
                .current(&response)?
                .ok_or_else(|| unexpected("create's compare failed on a missing key"))?;
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
                current: Box::new(current),
            });
        }
        // A transaction's writes all get the revision in its header.
        let revision = header_revision(&response)?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
            lease,
        })
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let options = GetOptions::new().with_revision(revision.unwrap_or(0));
        let mut response = match self
            .kv
            .clone()
            .get(self.namespace.key(key), Some(options))
            .await
        {
            Ok(response) => response,
            Err(e) => return Err(self.error(e, revision, None).await),
        };
        response
            .take_kvs()
            .into_iter()
            .next()
            .map(|kv| self.namespace.kv(kv))
            .transpose()
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        validate_prefix(prefix)?;
        let (mut start, end) = self.namespace.range(prefix);
        if let Some(after) = &options.start_after {
            validate_key(after)?;
            // The first key after `after` in byte order is `after` followed by "\0".
            let mut next = self.namespace.key(after);
            next.push(0);
            start = start.max(next);
        }
        let mut get = GetOptions::new()
            .with_range(end)
            .with_revision(options.revision.unwrap_or(0));
        if let Some(limit) = options.limit.filter(|&n| n > 0) {
            get = get.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let mut response = match self.kv.clone().get(start, Some(get)).await {
            Ok(response) => response,
            Err(e) => return Err(self.error(e, options.revision, None).await),
        };
        let header = response.header().map(|h| h.revision());
        let revision = match options.revision {
            Some(revision) => revision,
            None => header.ok_or_else(|| unexpected("etcd response without a header"))?,
        };
        let more = response.more();
        let kvs = response
            .take_kvs()
            .into_iter()
            .map(|kv| self.namespace.kv(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListResult {
            kvs,
            revision,
            more,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue> {
        validate_put(key, &value)?;
        let full = self.namespace.key(key);
        let txn = Txn::new()
            .when([
                // A missing key has mod_revision 0, so existence is checked on its own.
                Compare::create_revision(full.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(full.clone(), CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(
                full.clone(),
                value.clone(),
                Some(put_options(lease).with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let response = self.txn(txn, lease).await?;
        if !response.succeeded() {
            return Err(match self.current(&response)? {
                Some(current) => Error::Conflict {
                    key: key.to_owned(),
                    expected,
                    current: Box::new(current),
                },
                None => Error::NotFound {
                    key: key.to_owned(),
                },
            });
        }
        let revision = header_revision(&response)?;
        let create_revision = match response.op_responses().into_iter().next() {
            Some(TxnOpResponse::Put(put)) => put.prev_key().map(|prev| prev.create_revision()),
            _ => None,
        }
        .ok_or_else(|| unexpected("etcd update without the previous state"))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: revision,
            lease,
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        validate_key(key)?;
        let full = self.namespace.key(key);
        let mut when = vec![Compare::create_revision(
            full.clone(),
            CompareOp::Greater,
            0,
        )];
        if let Some(expected) = expected {
            when.push(Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected,
            ));
        }
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::delete(
                full.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let response = self.txn(txn, None).await?;
        if !response.succeeded() {
            return Err(match (self.current(&response)?, expected) {
                (Some(current), Some(expected)) => Error::Conflict {
                    key: key.to_owned(),
                    expected,
                    current: Box::new(current),
                },
                (None, _) => Error::NotFound {
                    key: key.to_owned(),
                },
                (Some(_), None) => return Err(unexpected("unconditional delete's compare failed")),
            });
        }
        let revision = header_revision(&response)?;
        let prev = match response.op_responses().into_iter().next() {
            Some(TxnOpResponse::Delete(mut delete)) => delete.take_prev_kvs().into_iter().next(),
            _ => None,
        }
        .ok_or_else(|| unexpected("etcd delete without the previous state"))?;
        Ok(Deleted {
            revision,
            prev: self.namespace.kv(prev)?,
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        watch::open(self, prefix, after).await
    }

    async fn revision(&self) -> Result<Revision> {
        let options = GetOptions::new().with_count_only();
        let response = self
            .kv
            .clone()
            .get(PROBE_KEY, Some(options))
            .await
            .map_err(plain)?;
        response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| unexpected("etcd response without a header"))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let known = self.compacted.load(Ordering::Relaxed);
        // A read succeeds at the compacted revision and fails below it, so a read at the
        // known one tells whether compaction has gone further. etcd's revisions start at 1.
        let options = GetOptions::new()
            .with_revision(known.max(1))
            .with_count_only();
        match self.kv.clone().get(PROBE_KEY, Some(options)).await {
            Ok(_) => Ok(known),
            Err(e) if kind(&e) == Kind::Compacted => self.discover_compacted(known).await,
            Err(e) => Err(plain(e)),
        }
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let options = CompactionOptions::new().with_physical();
        match self.kv.clone().compact(revision, Some(options)).await {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::Relaxed);
                Ok(())
            }
            // History before `revision` is already gone, which is what was asked.
            Err(e) if kind(&e) == Kind::Compacted => Ok(()),
            Err(e) => Err(self.error(e, Some(revision), None).await),
        }
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        // etcd counts TTLs in whole seconds; rounding up never expires a lease early.
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let seconds = i64::try_from(seconds.max(1)).unwrap_or(i64::MAX);
        let response = self
            .lease
            .clone()
            .grant(seconds, None)
            .await
            .map_err(plain)?;
        if !response.error().is_empty() {
            return Err(unexpected(format!(
                "etcd refused the lease: {}",
                response.error()
            )));
        }
        Ok(response.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        // etcd-client sends one keep-alive on a new stream and reads its answer; the stream
        // closes when the returned handles drop.
        match self.lease.clone().keep_alive(lease).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e, None, Some(lease)).await),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        match self.lease.clone().revoke(lease).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e, None, Some(lease)).await),
        }
    }
}
