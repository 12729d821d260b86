//! A fault injector for any [`Store`]: make chosen operations fail, or cut every watch, on
//! command, so callers' retry and re-list paths can be tested without breaking a real
//! backend (in the spirit of neon's simulated failures).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;

use crate::{
    Deleted, Error, KeyValue, LeaseId, ListOptions, ListResult, Result, Revision, Store,
    WatchStream,
};

/// Which operations a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ops {
    /// Every operation.
    All,
    /// Create, update, delete, compact and lease changes.
    Writes,
    /// Get, list, watch and revision reads.
    Reads,
}

/// The error an injected fault produces, recognisable in tests.
#[derive(Debug, thiserror::Error)]
#[error("injected fault")]
pub struct InjectedFault;

struct Control {
    /// Remaining failures to inject, per operation class.
    pending: Mutex<Vec<(Ops, u64)>>,
    /// While set, every operation fails, as during a network partition.
    partitioned: AtomicBool,
    /// Signalled to cut every open watch.
    severed: watch::Sender<u64>,
    injected: AtomicU64,
}

/// A [`Store`] that forwards to `inner` except where a fault has been injected.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    control: Arc<Control>,
}

impl FaultyStore {
    /// Wraps `inner`; no faults are injected until asked.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            control: Arc::new(Control {
                pending: Mutex::default(),
                partitioned: AtomicBool::default(),
                severed: watch::Sender::new(0),
                injected: AtomicU64::default(),
            }),
        }
    }

    /// Makes the next `count` operations of class `ops` fail with [`Error::Unavailable`].
    pub fn fail_next(&self, ops: Ops, count: u64) {
        self.control
            .pending
            .lock()
            .expect("fault lock")
            .push((ops, count));
    }

    /// Fails every operation until [`FaultyStore::heal`].
    pub fn partition(&self) {
        self.control.partitioned.store(true, Ordering::SeqCst);
    }

    /// Ends a partition.
    pub fn heal(&self) {
        self.control.partitioned.store(false, Ordering::SeqCst);
    }

    /// Ends every open watch with an [`Error::Unavailable`] item, as a dropped connection
    /// would.
    pub fn sever_watches(&self) {
        self.control.severed.send_modify(|n| *n += 1);
    }

    /// How many faults have been injected so far.
    pub fn injected(&self) -> u64 {
        self.control.injected.load(Ordering::SeqCst)
    }

    fn check(&self, class: Ops) -> Result<()> {
        if self.control.partitioned.load(Ordering::SeqCst) || self.take_pending(class) {
            self.control.injected.fetch_add(1, Ordering::SeqCst);
            return Err(Error::Unavailable(Box::new(InjectedFault)));
        }
        Ok(())
    }

    fn take_pending(&self, class: Ops) -> bool {
        let mut pending = self.control.pending.lock().expect("fault lock");
        let hit = pending
            .iter_mut()
            .find(|(ops, left)| *left > 0 && (*ops == Ops::All || *ops == class));
        match hit {
            Some((_, left)) => {
                *left -= 1;
                pending.retain(|(_, left)| *left > 0);
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn create(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<KeyValue> {
        self.check(Ops::Writes)?;
        self.inner.create(key, value, lease).await
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        self.check(Ops::Reads)?;
        self.inner.get(key, revision).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        self.check(Ops::Reads)?;
        self.inner.list(prefix, options).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue> {
        self.check(Ops::Writes)?;
        self.inner.update(key, value, expected, lease).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        self.check(Ops::Writes)?;
        self.inner.delete(key, expected).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.check(Ops::Reads)?;
        let inner = self.inner.watch(prefix, after).await?;
        let control = self.control.clone();
        let severed = control.severed.subscribe();
        let stream = futures::stream::unfold(Some((inner, severed, control)), |state| async move {
            let (mut inner, mut severed, control) = state?;
            tokio::select! {
                item = inner.next() => match item {
                    Some(Ok(event)) => Some((Ok(event), Some((inner, severed, control)))),
                    Some(Err(e)) => Some((Err(e), None)),
                    None => None,
                },
                _ = severed.changed() => {
                    control.injected.fetch_add(1, Ordering::SeqCst);
                    Some((Err(Error::Unavailable(Box::new(InjectedFault))), None))
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn revision(&self) -> Result<Revision> {
        self.check(Ops::Reads)?;
        self.inner.revision().await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.check(Ops::Reads)?;
        self.inner.compacted_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.check(Ops::Writes)?;
        self.inner.compact(revision).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        self.check(Ops::Writes)?;
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.check(Ops::Writes)?;
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.check(Ops::Writes)?;
        self.inner.revoke_lease(lease).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;
    use std::collections::BTreeMap;

    /// The smallest real store: enough to see that faults pass through or not.
    #[derive(Default)]
    struct MapStore {
        kvs: Mutex<BTreeMap<String, KeyValue>>,
        events: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Result<Event>>>>,
    }

    #[async_trait]
    impl Store for MapStore {
        async fn create(
            &self,
            key: &str,
            value: Bytes,
            lease: Option<LeaseId>,
        ) -> Result<KeyValue> {
            let mut kvs = self.kvs.lock().unwrap();
            let rev = kvs.len() as Revision + 1;
            let kv = KeyValue {
                key: key.to_owned(),
                value,
                create_revision: rev,
                mod_revision: rev,
                lease,
            };
            kvs.insert(key.to_owned(), kv.clone());
            for tx in self.events.lock().unwrap().iter() {
                let _ = tx.send(Ok(Event::Put {
                    kv: kv.clone(),
                    prev: None,
                }));
            }
            Ok(kv)
        }
        async fn get(&self, key: &str, _: Option<Revision>) -> Result<Option<KeyValue>> {
            Ok(self.kvs.lock().unwrap().get(key).cloned())
        }
        async fn list(&self, _: &str, _: ListOptions) -> Result<ListResult> {
            let kvs = self.kvs.lock().unwrap();
            Ok(ListResult {
                kvs: kvs.values().cloned().collect(),
                revision: kvs.len() as Revision,
                more: false,
            })
        }
        async fn update(
            &self,
            key: &str,
            _: Bytes,
            _: Revision,
            _: Option<LeaseId>,
        ) -> Result<KeyValue> {
            Err(Error::NotFound {
                key: key.to_owned(),
            })
        }
        async fn delete(&self, key: &str, _: Option<Revision>) -> Result<Deleted> {
            Err(Error::NotFound {
                key: key.to_owned(),
            })
        }
        async fn watch(&self, _: &str, _: Revision) -> Result<WatchStream> {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            self.events.lock().unwrap().push(tx);
            Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })))
        }
        async fn revision(&self) -> Result<Revision> {
            Ok(self.kvs.lock().unwrap().len() as Revision)
        }
        async fn compacted_revision(&self) -> Result<Revision> {
            Ok(0)
        }
        async fn compact(&self, _: Revision) -> Result<()> {
            Ok(())
        }
        async fn grant_lease(&self, _: Duration) -> Result<LeaseId> {
            Ok(1)
        }
        async fn keep_alive(&self, _: LeaseId) -> Result<()> {
            Ok(())
        }
        async fn revoke_lease(&self, _: LeaseId) -> Result<()> {
            Ok(())
        }
    }

    fn faulty() -> FaultyStore {
        FaultyStore::new(Arc::new(MapStore::default()))
    }

    fn is_injected(r: &Result<impl std::fmt::Debug>) -> bool {
        matches!(r, Err(Error::Unavailable(e)) if e.is::<InjectedFault>())
    }

    #[tokio::test]
    async fn fail_next_hits_only_its_class_and_count() {
        let s = faulty();
        s.fail_next(Ops::Writes, 2);
        assert!(s.get("/a", None).await.is_ok());
        assert!(is_injected(&s.create("/a", Bytes::new(), None).await));
        assert!(is_injected(&s.create("/a", Bytes::new(), None).await));
        assert!(s.create("/a", Bytes::new(), None).await.is_ok());
        assert_eq!(s.injected(), 2);

        s.fail_next(Ops::Reads, 1);
        assert!(s.create("/b", Bytes::new(), None).await.is_ok());
        assert!(is_injected(&s.get("/b", None).await));
        assert!(s.get("/b", None).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn partition_fails_everything_until_healed() {
        let s = faulty();
        s.partition();
        assert!(is_injected(&s.revision().await));
        assert!(is_injected(&s.create("/a", Bytes::new(), None).await));
        assert!(is_injected(&s.list("/", ListOptions::default()).await));
        s.heal();
        assert!(s.create("/a", Bytes::new(), None).await.is_ok());
        assert_eq!(s.injected(), 3);
    }

    #[tokio::test]
    async fn severed_watch_ends_with_unavailable() {
        let s = faulty();
        let mut w = s.watch("/", 0).await.unwrap();
        s.create("/a", Bytes::new(), None).await.unwrap();
        assert!(matches!(w.next().await, Some(Ok(Event::Put { .. }))));
        s.sever_watches();
        assert!(is_injected(&w.next().await.unwrap()));
        assert!(w.next().await.is_none());
        // Watches opened after the cut work.
        let mut w2 = s.watch("/", 0).await.unwrap();
        s.create("/b", Bytes::new(), None).await.unwrap();
        assert!(matches!(w2.next().await, Some(Ok(Event::Put { .. }))));
    }
}
