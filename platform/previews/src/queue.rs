//! The reconciler's work queue: preview ids, each due at a time, never handed to two
//! workers at once. Adding an id that is being worked on makes it due again once the
//! worker is done, so an event during a reconcile is never lost; adding one already queued
//! keeps the earlier time, so a burst of events makes one reconcile.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct State {
    due: HashMap<i64, Instant>,
    running: HashSet<i64>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    changed: Notify,
}

impl Queue {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `id` due at `at`, or earlier if it already is.
    pub(crate) fn add(&self, id: i64, at: Instant) {
        {
            let mut state = self.state();
            let due = state.due.entry(id).or_insert(at);
            if at < *due {
                *due = at;
            }
        }
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    /// Waits for an id that is due and not being worked on, and marks it running.
    pub(crate) async fn next(&self) -> i64 {
        loop {
            let notified = self.changed.notified();
            let wait_until = {
                let mut state = self.state();
                let now = Instant::now();
                let ready = state
                    .due
                    .iter()
                    .filter(|(id, _)| !state.running.contains(*id))
                    .min_by_key(|(_, at)| **at)
                    .map(|(id, at)| (*id, *at));
                match ready {
                    Some((id, at)) if at <= now => {
                        state.due.remove(&id);
                        state.running.insert(id);
                        return id;
                    }
                    Some((_, at)) => Some(at),
                    None => None,
                }
            };
            match wait_until {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `id` done: other workers may take it again.
    pub(crate) fn done(&self, id: i64) {
        self.state().running.remove(&id);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ids_come_due_in_order_and_never_twice_at_once() {
        let queue = Queue::default();
        let now = Instant::now();
        queue.add(1, now + Duration::from_secs(10));
        queue.add(2, now + Duration::from_secs(5));
        // A burst keeps the earliest time.
        queue.add(1, now + Duration::from_secs(1));
        queue.add(1, now + Duration::from_secs(30));
        assert_eq!(queue.next().await, 1);
        assert_eq!(Instant::now(), now + Duration::from_secs(1));
        // 1 is running: added again, it waits until done even though it is due.
        queue.add(1, now);
        assert_eq!(queue.next().await, 2);
        queue.done(2);
        let waiting = tokio::time::timeout(Duration::from_secs(60), queue.next()).await;
        assert!(waiting.is_err(), "1 must wait while it runs");
        queue.done(1);
        assert_eq!(queue.next().await, 1);
    }
}
