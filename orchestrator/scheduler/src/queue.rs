//! The scheduling queue, without IO, as kube-scheduler's: pending pods wait in an active
//! queue in arrival order; a pod that fits nowhere is parked as unschedulable and stays
//! parked until something that could make it fit happens (a node added or changed in a
//! way that matters, a bound pod deleted, the pod itself edited) or a slow flush (60 s)
//! comes round, so nothing is retried in a hot loop. A pod moved back waits out its backoff
//! (1 s doubling per attempt up to 10 s) from its last attempt, so a storm of events
//! cannot spin it either. A pod being bound is in flight until the watch shows it bound
//! or gone.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

/// How long a pod stays parked with nothing happening before it is tried again.
pub const PARKED_AT_MOST: Duration = Duration::from_secs(60);
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The backoff after `attempts` failed attempts: 1 s, 2 s, 4 s, 8 s, then 10 s.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(4);
    (INITIAL_BACKOFF * (1 << doublings)).min(MAX_BACKOFF)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    BackingOff(Instant),
    Parked(Instant),
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    state: State,
    attempts: u32,
    last_attempt: Option<Instant>,
}

/// The pending pods this scheduler owns, by uid.
#[derive(Debug, Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: VecDeque<String>,
    backing_off: BinaryHeap<Reverse<(Instant, String)>>,
}

impl Queue {
    /// Adds a pending pod, or takes a newer version of one. A parked pod whose spec or
    /// labels changed is tried again: the change may be what it lacked.
    pub fn upsert(&mut self, uid: &str, pod: Arc<Pod>, now: Instant) {
        let Some(entry) = self.entries.get_mut(uid) else {
            self.entries.insert(
                uid.to_owned(),
                Entry {
                    pod,
                    state: State::Active,
                    attempts: 0,
                    last_attempt: None,
                },
            );
            self.active.push_back(uid.to_owned());
            return;
        };
        let edited = entry.pod.spec != pod.spec || entry.pod.metadata.labels != pod.metadata.labels;
        entry.pod = pod;
        if edited && matches!(entry.state, State::Parked(_)) {
            self.wake(uid, now);
        }
    }

    /// Drops a pod that was bound or deleted.
    pub fn remove(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// Whether the pod is queued in any state.
    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// The uids queued.
    pub fn uids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// How many pods are queued in any state.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The next pod to try, now in flight.
    pub fn pop(&mut self, now: Instant) -> Option<(String, Arc<Pod>)> {
        while let Some(Reverse((at, _))) = self.backing_off.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, uid))) = self.backing_off.pop() else {
                break;
            };
            if let Some(entry) = self.entries.get_mut(&uid)
                && entry.state == State::BackingOff(at)
            {
                entry.state = State::Active;
                self.active.push_back(uid);
            }
        }
        while let Some(uid) = self.active.pop_front() {
            let Some(entry) = self.entries.get_mut(&uid) else {
                continue;
            };
            if entry.state != State::Active {
                continue;
            }
            entry.state = State::InFlight;
            entry.attempts += 1;
            entry.last_attempt = Some(now);
            return Some((uid, Arc::clone(&entry.pod)));
        }
        None
    }

    /// Parks a pod that fits nowhere.
    pub fn park(&mut self, uid: &str, now: Instant) {
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.state = State::Parked(now);
        }
    }

    /// Tries a pod again after its backoff (its binding failed).
    pub fn retry(&mut self, uid: &str, now: Instant) {
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.state = State::Parked(now);
            self.wake(uid, now);
        }
    }

    /// Something changed that may make parked pods fit: every one is tried again, each
    /// after its backoff.
    pub fn wake_all(&mut self, now: Instant) {
        let parked: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Parked(_)))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in parked {
            self.wake(&uid, now);
        }
    }

    /// Tries again the pods parked for [`PARKED_AT_MOST`] or longer.
    pub fn flush(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e.state, State::Parked(at) if now.saturating_duration_since(at) >= PARKED_AT_MOST)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            self.wake(&uid, now);
        }
    }

    fn wake(&mut self, uid: &str, now: Instant) {
        let Some(entry) = self.entries.get_mut(uid) else {
            return;
        };
        if !matches!(entry.state, State::Parked(_)) {
            return;
        }
        let ready = entry
            .last_attempt
            .map_or(now, |last| last + backoff(entry.attempts));
        if ready <= now {
            entry.state = State::Active;
            self.active.push_back(uid.to_owned());
        } else {
            entry.state = State::BackingOff(ready);
            self.backing_off.push(Reverse((ready, uid.to_owned())));
        }
    }

    /// When the earliest backoff ends, if any pod is backing off.
    pub fn next_ready(&self) -> Option<Instant> {
        self.backing_off.peek().map(|Reverse((at, _))| *at)
    }

    /// How many pods are parked as unschedulable.
    pub fn parked(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.state, State::Parked(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "p", "labels": labels},
                "spec": {"containers": [{"name": "c", "image": "c"}]}}))
            .unwrap(),
        )
    }

    fn popped(queue: &mut Queue, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| queue.pop(now).map(|(uid, _)| uid)).collect()
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let seconds: Vec<u64> = (1..=6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn pods_come_out_in_arrival_order_once() {
        let now = Instant::now();
        let mut queue = Queue::default();
        for uid in ["a", "b", "c"] {
            queue.upsert(uid, pod(json!({})), now);
        }
        queue.upsert("a", pod(json!({"v": "2"})), now);
        assert_eq!(popped(&mut queue, now), ["a", "b", "c"]);
        // In flight: a newer version does not queue it twice.
        queue.upsert("b", pod(json!({"v": "3"})), now);
        assert!(queue.pop(now).is_none());
        queue.remove("b");
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn parked_pods_wait_for_a_change_then_their_backoff() {
        let start = Instant::now();
        let mut queue = Queue::default();
        queue.upsert("a", pod(json!({})), start);
        assert_eq!(popped(&mut queue, start), ["a"]);
        queue.park("a", start);
        assert_eq!(queue.parked(), 1);
        // Nothing happened: nothing to do, however long we look, until the flush.
        assert!(queue.pop(start + Duration::from_secs(30)).is_none());
        assert_eq!(queue.next_ready(), None);
        // A change wakes it, but only after its 1 s backoff from the attempt.
        queue.wake_all(start + Duration::from_millis(100));
        assert!(queue.pop(start + Duration::from_millis(500)).is_none());
        assert_eq!(queue.next_ready(), Some(start + Duration::from_secs(1)));
        assert_eq!(popped(&mut queue, start + Duration::from_secs(1)), ["a"]);
        // The second attempt's backoff is 2 s.
        let second = start + Duration::from_secs(1);
        queue.park("a", second);
        queue.wake_all(second);
        assert_eq!(queue.next_ready(), Some(second + Duration::from_secs(2)));
    }

    #[test]
    fn the_flush_takes_only_pods_parked_long_enough() {
        let start = Instant::now();
        let mut queue = Queue::default();
        for uid in ["old", "new"] {
            queue.upsert(uid, pod(json!({})), start);
        }
        popped(&mut queue, start);
        queue.park("old", start);
        queue.park("new", start + Duration::from_secs(30));
        let later = start + PARKED_AT_MOST;
        queue.flush(later);
        assert_eq!(popped(&mut queue, later), ["old"]);
        assert_eq!(queue.parked(), 1);
    }

    #[test]
    fn an_edited_parked_pod_is_tried_again_but_a_status_change_is_not() {
        let start = Instant::now();
        let mut queue = Queue::default();
        queue.upsert("a", pod(json!({})), start);
        popped(&mut queue, start);
        queue.park("a", start);
        let mut status_only = (*pod(json!({}))).clone();
        status_only.status = Some(Default::default());
        queue.upsert("a", Arc::new(status_only), start);
        assert_eq!(queue.parked(), 1);
        queue.upsert(
            "a",
            pod(json!({"tier": "gpu"})),
            start + Duration::from_secs(2),
        );
        assert_eq!(popped(&mut queue, start + Duration::from_secs(2)), ["a"]);
    }

    #[test]
    fn a_failed_binding_is_retried_after_its_backoff() {
        let start = Instant::now();
        let mut queue = Queue::default();
        queue.upsert("a", pod(json!({})), start);
        popped(&mut queue, start);
        queue.retry("a", start);
        assert!(queue.pop(start).is_none());
        assert_eq!(popped(&mut queue, start + Duration::from_secs(1)), ["a"]);
    }
}
