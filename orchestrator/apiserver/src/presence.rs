//! Which namespaces hold ResourceQuotas or LimitRanges, kept in memory from a store watch,
//! so the common create (in a namespace with neither) costs no store read for admission,
//! as Kubernetes' admission plugins read informer caches.
//!
//! Until its first list has landed the index knows nothing and says "maybe" everywhere;
//! a "maybe" costs only the read it saves, so it is never wrong to give. A quota or range
//! created through this server is recorded before its create answers; the watch brings in
//! the rest (another server on the same etcd) a moment later, the window Kubernetes'
//! caches have too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use slipway_store::{Error as StoreError, Event, ListOptions, Store};
use tokio_util::sync::CancellationToken;

/// The keys under one prefix (`/registry/core/resourcequotas/`), by namespace.
#[derive(Debug)]
pub struct Presence {
    prefix: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether a list has landed and its watch still runs.
    known: bool,
    keys: HashMap<String, HashSet<String>>,
    /// Keys recorded by this server while a list was on its way, which it may not hold.
    recorded: HashSet<String>,
}

impl Presence {
    /// An index of the keys under `prefix`, empty and unknowing until [`Presence::follow`].
    pub fn new(prefix: impl Into<String>) -> Arc<Self> {
        Arc::new(Presence {
            prefix: prefix.into(),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `namespace` may hold an object under the prefix: false only when the index
    /// knows it holds none.
    pub fn maybe_in(&self, namespace: &str) -> bool {
        let state = self.state();
        !state.known || state.keys.get(namespace).is_some_and(|k| !k.is_empty())
    }

    /// Records a key this server just wrote, before the watch brings it.
    pub fn insert(&self, key: &str) {
        let Some((ns, _)) = self.split(key) else {
            return;
        };
        let mut state = self.state();
        state
            .keys
            .entry(ns.to_owned())
            .or_default()
            .insert(key.to_owned());
        if !state.known {
            state.recorded.insert(key.to_owned());
        }
    }

    fn split<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str)> {
        key.strip_prefix(&self.prefix)?.split_once('/')
    }

    /// A list landed: what it holds, plus what this server recorded since it was asked for.
    fn listed(&self, listed: impl IntoIterator<Item = String>) {
        let mut state = self.state();
        let recorded = std::mem::take(&mut state.recorded);
        let mut keys: HashMap<String, HashSet<String>> = HashMap::new();
        for key in listed.into_iter().chain(recorded) {
            if let Some((ns, _)) = self.split(&key) {
                keys.entry(ns.to_owned()).or_default().insert(key.clone());
            }
        }
        state.keys = keys;
        state.known = true;
    }

    fn forget(&self) {
        let mut state = self.state();
        state.known = false;
        state.recorded.clear();
    }

    fn apply(&self, event: &Event) {
        let Some((ns, _)) = self.split(event.key()) else {
            return;
        };
        let mut state = self.state();
        let keys = &mut state.keys;
        match event {
            Event::Put { .. } => {
                keys.entry(ns.to_owned())
                    .or_default()
                    .insert(event.key().to_owned());
            }
            Event::Delete { .. } => {
                if let Some(set) = keys.get_mut(ns) {
                    set.remove(event.key());
                }
            }
        }
    }

    /// Lists the prefix, then follows its changes until `shutdown`; starts over (saying
    /// "maybe" meanwhile) when the watch breaks or falls behind compaction.
    pub async fn follow(self: Arc<Self>, store: Arc<dyn Store>, shutdown: CancellationToken) {
        loop {
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.list_and_watch(store.as_ref(), &shutdown) => result,
            };
            self.forget();
            if let Err(e) = result {
                tracing::warn!(prefix = %self.prefix, error = %e, "admission index lost its watch; listing again");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        }
    }

    async fn list_and_watch(
        &self,
        store: &dyn Store,
        shutdown: &CancellationToken,
    ) -> Result<(), StoreError> {
        let listed = store.list(&self.prefix, ListOptions::default()).await?;
        let mut watch = store.watch(&self.prefix, listed.revision).await?;
        self.listed(listed.kvs.into_iter().map(|kv| kv.key));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                event = watch.next() => match event {
                    Some(Ok(event)) => self.apply(&event),
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_store::KeyValue;

    fn put(key: &str) -> Event {
        Event::Put {
            kv: KeyValue {
                key: key.into(),
                value: Default::default(),
                create_revision: 1,
                mod_revision: 1,
                lease: None,
            },
            prev: None,
        }
    }

    #[test]
    fn says_maybe_until_it_knows_then_tracks_namespaces() {
        let index = Presence::new("/registry/core/resourcequotas/");
        assert!(index.maybe_in("team"), "unknowing means maybe");
        // Recorded while the list was on its way: kept when the list lands without it.
        index.insert("/registry/core/resourcequotas/early/q");
        index.listed(Vec::new());
        assert!(index.maybe_in("early"));
        assert!(!index.maybe_in("team"));
        index.insert("/registry/core/resourcequotas/team/q");
        assert!(index.maybe_in("team"));
        assert!(!index.maybe_in("other"));
        index.apply(&put("/registry/core/resourcequotas/other/q"));
        assert!(index.maybe_in("other"));
        let Event::Put { kv, .. } = put("/registry/core/resourcequotas/team/q") else {
            unreachable!()
        };
        index.apply(&Event::Delete {
            revision: 2,
            prev: kv,
        });
        assert!(!index.maybe_in("team"));
    }

    /// Another server's writes (here: straight to the store) arrive through the watch.
    #[tokio::test]
    async fn follows_writes_it_did_not_make() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            slipway_store_sqlite::SqliteStore::open(dir.path().join("s.db"), Default::default())
                .await
                .unwrap(),
        );
        let index = Presence::new("/registry/core/limitranges/");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&index).follow(Arc::clone(&store), shutdown.clone()));
        let settle = |want: bool| {
            let index = Arc::clone(&index);
            async move {
                for _ in 0..600 {
                    if index.maybe_in("team") == want {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                panic!("the index never said {want}");
            }
        };
        settle(false).await;
        let key = "/registry/core/limitranges/team/r";
        store.create(key, Default::default(), None).await.unwrap();
        settle(true).await;
        store.delete(key, None).await.unwrap();
        settle(false).await;
        shutdown.cancel();
        task.await.unwrap();
    }
}
