//! Store watches over etcd watches: one etcd watch stream per store watch, with the
//! previous state of every key so creates, updates and deletes can be told apart.

use std::collections::VecDeque;

use etcd_client::{EventType, WatchOptions, WatchResponse};
use futures::stream;
use slipway_store::{Error, Event, Result, Revision, WatchStream};

use crate::EtcdStore;
use crate::error::{plain, unexpected};

/// Opens a watch of the keys under `prefix` for changes after `after`.
///
/// Returns only once etcd has created the watch, and fails with [`Error::Compacted`] when the
/// history from `after` on is gone, so callers learn it at once rather than from the stream.
pub(crate) async fn open(store: &EtcdStore, prefix: &str, after: Revision) -> Result<WatchStream> {
    let (key, end) = store.namespace.range(prefix);
    let start = after.saturating_add(1).max(1);
    let options = WatchOptions::new()
        .with_range(end)
        .with_start_revision(start)
        .with_prev_key();
    let mut inner = store
        .watch
        .clone()
        .watch(key, Some(options))
        .await
        .map_err(plain)?;
    let created = inner
        .message()
        .await
        .map_err(plain)?
        .ok_or_else(|| Error::Unavailable("etcd closed the watch before creating it".into()))?;
    if created.canceled() {
        return Err(store.canceled(&created, after));
    }
    // etcd creates a watch on compacted history and cancels it only later, from its
    // background catch-up; a read at the start revision fails on exactly the same condition
    // (start below the compacted revision), and fails now.
    let current = created.header().map_or(0, |h| h.revision());
    if start <= current {
        store.check_readable(start, after).await?;
    }
    let state = State {
        store: store.clone(),
        inner,
        pending: VecDeque::new(),
        last: after,
        done: false,
    };
    Ok(Box::pin(stream::unfold(state, next)))
}

struct State {
    store: EtcdStore,
    // Holds etcd-client's request sender too: dropping it would end the watch.
    inner: etcd_client::WatchStream,
    pending: VecDeque<Event>,
    /// The revision of the last change handed out, for errors about what comes after it.
    last: Revision,
    done: bool,
}

async fn next(mut state: State) -> Option<(Result<Event>, State)> {
    loop {
        if let Some(event) = state.pending.pop_front() {
            state.last = event.revision();
            return Some((Ok(event), state));
        }
        if state.done {
            return None;
        }
        let failure = match state.inner.message().await {
            Ok(Some(response)) if response.canceled() => {
                state.store.canceled(&response, state.last)
            }
            Ok(Some(response)) => match convert(&state.store, &response).await {
                Ok(events) => {
                    state.pending.extend(events);
                    continue;
                }
                Err(e) => e,
            },
            Ok(None) => Error::Unavailable("etcd ended the watch stream".into()),
            Err(e) => plain(e),
        };
        state.done = true;
        return Some((Err(failure), state));
    }
}

/// The store events of one etcd response, or the reason they cannot be given.
async fn convert(store: &EtcdStore, response: &WatchResponse) -> Result<Vec<Event>> {
    let mut events = Vec::with_capacity(response.events().len());
    for event in response.events() {
        let kv = event
            .kv()
            .ok_or_else(|| unexpected("etcd watch event without a key"))?;
        let revision = kv.mod_revision();
        let prev = event
            .prev_kv()
            .map(|p| store.namespace.kv(p.clone()))
            .transpose()?;
        events.push(match (event.event_type(), prev) {
            (EventType::Put, prev) if kv.version() == 1 || prev.is_some() => Event::Put {
                kv: store.namespace.kv(kv.clone())?,
                prev,
            },
            (EventType::Delete, Some(prev)) => Event::Delete { revision, prev },
            // etcd reads the previous state at revision - 1 while sending and leaves it out
            // when compaction got there first; an update would then pass for a create.
            _ => return Err(store.compacted_error(revision - 1).await),
        });
    }
    Ok(events)
}
