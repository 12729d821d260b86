//! The one conformance suite every [`Store`] backend must pass, unchanged.
//!
//! Like Kubernetes' shared storage tests, each case states one property of the contract in
//! the crate docs. A backend's `tests/conformance.rs` calls [`conformance_tests!`] with an
//! async constructor of its [`Backend`]; every case then runs as its own test on a fresh,
//! empty store.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, future};

use crate::{Error, Event, KeyValue, ListOptions, MAX_VALUE_BYTES, Revision, Store, WatchStream};

/// A backend under test: a fresh store and a way to let time pass for its leases.
pub trait Backend: Send + Sync + 'static {
    /// The store; every call returns a handle to the same store.
    fn store(&self) -> Arc<dyn Store>;

    /// Lets `by` pass for the store's leases: advances a manual clock, or sleeps for real.
    fn advance(&self, by: Duration) -> BoxFuture<'_, ()>;

    /// The lease TTL the lease cases use (etcd enforces a minimum of a few seconds).
    fn lease_ttl(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh backend from
/// `$new` (an async fn returning a [`Backend`]).
#[macro_export]
macro_rules! conformance_tests {
    ($new:path) => {
        $crate::conformance_tests!(@cases $new;
            revisions_strictly_increase,
            create_if_absent,
            concurrent_creates_one_winner,
            get_missing_is_none,
            update_compare_and_swap,
            concurrent_updates_lose_nothing,
            delete_compare_and_swap,
            get_at_old_revisions,
            list_at_old_revision,
            list_prefix_is_exact,
            list_paging_is_consistent_under_writes,
            future_revision_is_refused,
            watch_delivers_history_then_live_in_order,
            watch_joins_history_and_live_without_gaps,
            watch_filters_by_prefix,
            compaction_refuses_old_reads_and_watches,
            compaction_keeps_state_at_and_after_it,
            list_limit_zero_means_all,
            hundred_watchers_see_every_event,
            lease_expiry_deletes_keys,
            lease_keep_alive_and_revoke,
            unknown_lease_is_refused,
            large_values_round_trip,
            oversized_value_is_refused,
            invalid_keys_are_refused,
        );
    };
    (@cases $new:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $new().await;
                $crate::conformance::$case(&backend).await;
            }
        )*
    };
}

/// How long a case waits for something that should happen promptly before it fails
/// instead of hanging; a liveness bound, not a performance assertion.
const PATIENCE: Duration = Duration::from_secs(60);

fn val(s: impl Into<String>) -> Bytes {
    Bytes::from(s.into())
}

async fn next_event(stream: &mut WatchStream) -> Event {
    match tokio::time::timeout(PATIENCE, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended early"),
        Err(_) => panic!("no watch event within {PATIENCE:?}"),
    }
}

async fn collect_events(stream: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_event(stream).await);
    }
    out
}

/// Every write gets a revision above all earlier ones, and `revision()` reports the last.
pub async fn revisions_strictly_increase(b: &impl Backend) {
    let s = b.store();
    let start = s.revision().await.unwrap();
    let mut last = start;
    for i in 0..20 {
        let key = format!("/rev/k{}", i % 5);
        let rev = match s.get(&key, None).await.unwrap() {
            None => s.create(&key, val("v"), None).await.unwrap().mod_revision,
            Some(kv) if i % 3 == 0 => {
                s.delete(&key, Some(kv.mod_revision))
                    .await
                    .unwrap()
                    .revision
            }
            Some(kv) => {
                s.update(&key, val(format!("v{i}")), kv.mod_revision, None)
                    .await
                    .unwrap()
                    .mod_revision
            }
        };
        assert!(rev > last, "revision {rev} after {last}");
        last = rev;
    }
    assert_eq!(s.revision().await.unwrap(), last);
}

/// Create stores a new key with create and mod revision equal, and refuses an existing key
/// with `AlreadyExists` carrying its current state.
pub async fn create_if_absent(b: &impl Backend) {
    let s = b.store();
    let kv = s.create("/c/a", val("one"), None).await.unwrap();
    assert_eq!(kv.key, "/c/a");
    assert_eq!(kv.value, val("one"));
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(kv.lease, None);
    assert_eq!(s.get("/c/a", None).await.unwrap(), Some(kv.clone()));

    match s.create("/c/a", val("two"), None).await {
        Err(Error::AlreadyExists { key, current }) => {
            assert_eq!(key, "/c/a");
            assert_eq!(*current, kv);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        s.get("/c/a", None).await.unwrap().unwrap().value,
        val("one")
    );

    // A deleted key can be created again, as a new incarnation.
    s.delete("/c/a", None).await.unwrap();
    let again = s.create("/c/a", val("three"), None).await.unwrap();
    assert!(again.create_revision > kv.create_revision);
}

/// Of many concurrent creates of one key exactly one wins.
pub async fn concurrent_creates_one_winner(b: &impl Backend) {
    let s = b.store();
    let attempts = (0..16).map(|i| {
        let s = s.clone();
        async move { s.create("/race/key", val(format!("w{i}")), None).await }
    });
    let results = future::join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
        }
    }
    assert_eq!(
        s.get("/race/key", None).await.unwrap().as_ref(),
        Some(winners[0])
    );
}

/// Reading a key that never existed is not an error.
pub async fn get_missing_is_none(b: &impl Backend) {
    let s = b.store();
    assert_eq!(s.get("/missing/key", None).await.unwrap(), None);
}

/// Update succeeds only at the expected revision; otherwise `Conflict` carries the current
/// state, and a missing key is `NotFound`.
pub async fn update_compare_and_swap(b: &impl Backend) {
    let s = b.store();
    let v1 = s.create("/u/a", val("1"), None).await.unwrap();
    let v2 = s
        .update("/u/a", val("2"), v1.mod_revision, None)
        .await
        .unwrap();
    assert!(v2.mod_revision > v1.mod_revision);
    assert_eq!(v2.create_revision, v1.create_revision);
    assert_eq!(v2.value, val("2"));

    match s.update("/u/a", val("stale"), v1.mod_revision, None).await {
        Err(Error::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!(key, "/u/a");
            assert_eq!(expected, v1.mod_revision);
            assert_eq!(*current, v2);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get("/u/a", None).await.unwrap(), Some(v2));

    match s.update("/u/none", val("x"), 1, None).await {
        Err(Error::NotFound { key }) => assert_eq!(key, "/u/none"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Concurrent read-modify-write loops that retry on conflict lose no increment.
pub async fn concurrent_updates_lose_nothing(b: &impl Backend) {
    let s = b.store();
    s.create("/counter", val("0"), None).await.unwrap();
    let workers = (0..8).map(|_| {
        let s = s.clone();
        async move {
            for _ in 0..20 {
                loop {
                    let kv = s.get("/counter", None).await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    match s
                        .update("/counter", val((n + 1).to_string()), kv.mod_revision, None)
                        .await
                    {
                        Ok(_) => break,
                        Err(Error::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
    });
    future::join_all(workers).await;
    let kv = s.get("/counter", None).await.unwrap().unwrap();
    assert_eq!(kv.value, val("160"));
}

/// Delete with an expected revision is compare-and-swap; without one it is unconditional.
pub async fn delete_compare_and_swap(b: &impl Backend) {
    let s = b.store();
    let v1 = s.create("/d/a", val("1"), None).await.unwrap();
    let v2 = s
        .update("/d/a", val("2"), v1.mod_revision, None)
        .await
        .unwrap();
    match s.delete("/d/a", Some(v1.mod_revision)).await {
        Err(Error::Conflict { current, .. }) => assert_eq!(*current, v2),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let deleted = s.delete("/d/a", Some(v2.mod_revision)).await.unwrap();
    assert_eq!(deleted.prev, v2);
    assert!(deleted.revision > v2.mod_revision);
    assert_eq!(s.get("/d/a", None).await.unwrap(), None);
    assert!(matches!(
        s.delete("/d/a", None).await,
        Err(Error::NotFound { .. })
    ));

    s.create("/d/b", val("b"), None).await.unwrap();
    s.delete("/d/b", None).await.unwrap();
    assert_eq!(s.get("/d/b", None).await.unwrap(), None);
}

/// A key reads as it was at any revision since the last compaction.
pub async fn get_at_old_revisions(b: &impl Backend) {
    let s = b.store();
    let before = s.revision().await.unwrap();
    let v1 = s.create("/h/a", val("1"), None).await.unwrap();
    let v2 = s
        .update("/h/a", val("2"), v1.mod_revision, None)
        .await
        .unwrap();
    let del = s.delete("/h/a", None).await.unwrap();
    let v3 = s.create("/h/a", val("3"), None).await.unwrap();

    assert_eq!(s.get("/h/a", Some(before)).await.unwrap(), None);
    assert_eq!(
        s.get("/h/a", Some(v1.mod_revision)).await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(
        s.get("/h/a", Some(v2.mod_revision)).await.unwrap(),
        Some(v2)
    );
    assert_eq!(s.get("/h/a", Some(del.revision)).await.unwrap(), None);
    assert_eq!(
        s.get("/h/a", Some(v3.mod_revision)).await.unwrap(),
        Some(v3.clone())
    );
    assert_eq!(s.get("/h/a", None).await.unwrap(), Some(v3));
}

/// A list at an old revision shows exactly the keys that existed then, with their values.
pub async fn list_at_old_revision(b: &impl Backend) {
    let s = b.store();
    for i in 0..5 {
        s.create(&format!("/l/k{i}"), val(format!("a{i}")), None)
            .await
            .unwrap();
    }
    let snapshot = s.list("/l/", ListOptions::default()).await.unwrap();
    assert_eq!(snapshot.kvs.len(), 5);
    assert!(!snapshot.more);

    s.delete("/l/k0", None).await.unwrap();
    let k1 = s.get("/l/k1", None).await.unwrap().unwrap();
    s.update("/l/k1", val("changed"), k1.mod_revision, None)
        .await
        .unwrap();
    s.create("/l/k9", val("new"), None).await.unwrap();

    let old = s
        .list(
            "/l/",
            ListOptions {
                revision: Some(snapshot.revision),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(old.revision, snapshot.revision);
    assert_eq!(old.kvs, snapshot.kvs);

    let now = s.list("/l/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = now.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/l/k1", "/l/k2", "/l/k3", "/l/k4", "/l/k9"]);
    assert_eq!(now.kvs[0].value, val("changed"));
}

/// A prefix selects exactly the keys that start with it, in byte order.
pub async fn list_prefix_is_exact(b: &impl Backend) {
    let s = b.store();
    for key in ["/p/a", "/p/a/x", "/p/ab", "/p/b", "/p0", "/o", "/p/~"] {
        s.create(key, val(key), None).await.unwrap();
    }
    let keys = |r: crate::ListResult| r.kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>();
    let list = s.list("/p/a", ListOptions::default()).await.unwrap();
    assert_eq!(keys(list), ["/p/a", "/p/a/x", "/p/ab"]);
    let list = s.list("/p/", ListOptions::default()).await.unwrap();
    assert_eq!(keys(list), ["/p/a", "/p/a/x", "/p/ab", "/p/b", "/p/~"]);
    let list = s.list("/p/a/", ListOptions::default()).await.unwrap();
    assert_eq!(keys(list), ["/p/a/x"]);
    let all = s.list("", ListOptions::default()).await.unwrap();
    assert_eq!(all.kvs.len(), 7);
}

/// Paging with limit and `start_after` at the first page's revision returns exactly that
/// snapshot, however much others write between pages.
pub async fn list_paging_is_consistent_under_writes(b: &impl Backend) {
    let s = b.store();
    for i in 0..50 {
        s.create(&format!("/pg/k{i:02}"), val(format!("v{i}")), None)
            .await
            .unwrap();
    }
    let first = s
        .list(
            "/pg/",
            ListOptions {
                limit: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 7);
    assert!(first.more);
    let expected = s
        .list(
            "/pg/",
            ListOptions {
                revision: Some(first.revision),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(expected.kvs.len(), 50);

    let mut pages = first.kvs.clone();
    let mut more = first.more;
    let mut round = 0;
    while more {
        // Others write between pages: delete early and late keys, change values, add keys.
        s.delete(&format!("/pg/k{:02}", 49 - round), None)
            .await
            .unwrap();
        let key = format!("/pg/k{round:02}");
        let kv = s.get(&key, None).await.unwrap().unwrap();
        s.update(&key, val("changed"), kv.mod_revision, None)
            .await
            .unwrap();
        s.create(&format!("/pg/k{round:02}x"), val("new"), None)
            .await
            .unwrap();
        round += 1;

        let page = s
            .list(
                "/pg/",
                ListOptions {
                    revision: Some(first.revision),
                    limit: Some(7),
                    start_after: Some(pages.last().unwrap().key.clone()),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, first.revision);
        assert!(page.kvs.len() <= 7);
        more = page.more;
        pages.extend(page.kvs);
    }
    assert_eq!(pages, expected.kvs);
}

/// A limit of zero, like no limit, returns every key, as in Kubernetes and etcd.
pub async fn list_limit_zero_means_all(b: &impl Backend) {
    let s = b.store();
    for i in 0..5 {
        s.create(&format!("/lz/k{i}"), val("v"), None)
            .await
            .unwrap();
    }
    let page = |limit| ListOptions {
        limit: Some(limit),
        ..Default::default()
    };
    let zero = s.list("/lz/", page(0)).await.unwrap();
    assert_eq!(zero.kvs.len(), 5);
    assert!(!zero.more);
    for limit in [5, usize::MAX] {
        let all = s.list("/lz/", page(limit)).await.unwrap();
        assert_eq!(all.kvs, zero.kvs, "limit {limit}");
        assert!(!all.more, "limit {limit}");
    }
}

/// Reads at a revision that has not happened yet are refused.
pub async fn future_revision_is_refused(b: &impl Backend) {
    let s = b.store();
    s.create("/f/a", val("a"), None).await.unwrap();
    let now = s.revision().await.unwrap();
    let ahead = now + 1000;
    assert!(matches!(
        s.get("/f/a", Some(ahead)).await,
        Err(Error::FutureRevision { requested, .. }) if requested == ahead
    ));
    assert!(matches!(
        s.list(
            "/f/",
            ListOptions {
                revision: Some(ahead),
                ..Default::default()
            }
        )
        .await,
        Err(Error::FutureRevision { .. })
    ));
}

fn expected_events(ops: &[(Revision, Option<KeyValue>, Option<KeyValue>)]) -> Vec<Event> {
    ops.iter()
        .map(|(rev, prev, now)| match now {
            Some(kv) => Event::Put {
                kv: kv.clone(),
                prev: prev.clone(),
            },
            None => Event::Delete {
                revision: *rev,
                prev: prev.clone().unwrap(),
            },
        })
        .collect()
}

/// A watch from revision R replays every change after R, then delivers new changes live:
/// each exactly once, in revision order, deletes with the last state.
pub async fn watch_delivers_history_then_live_in_order(b: &impl Backend) {
    let s = b.store();
    let start = s.revision().await.unwrap();
    let mut ops = Vec::new();
    let mut current: BTreeMap<String, KeyValue> = BTreeMap::new();
    // A deterministic mix of creates, updates and deletes over a few keys.
    for i in 0..60u32 {
        let key = format!("/w/k{}", i % 7);
        let op = match current.get(&key).cloned() {
            None => {
                let kv = s.create(&key, val(format!("c{i}")), None).await.unwrap();
                (kv.mod_revision, None, Some(kv))
            }
            Some(prev) if i % 4 == 0 => {
                let d = s.delete(&key, Some(prev.mod_revision)).await.unwrap();
                (d.revision, Some(prev), None)
            }
            Some(prev) => {
                let kv = s
                    .update(&key, val(format!("u{i}")), prev.mod_revision, None)
                    .await
                    .unwrap();
                (kv.mod_revision, Some(prev), Some(kv))
            }
        };
        match &op.2 {
            Some(kv) => current.insert(key, kv.clone()),
            None => current.remove(&key),
        };
        ops.push(op);
    }
    let mut watch = s.watch("/w/", start).await.unwrap();
    let history = collect_events(&mut watch, ops.len()).await;
    assert_eq!(history, expected_events(&ops));

    // Live: changes after the watch started arrive too, after the history.
    let kv = s.create("/w/live", val("live"), None).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        Event::Put {
            kv: kv.clone(),
            prev: None
        }
    );
    let d = s.delete("/w/live", None).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        Event::Delete {
            revision: d.revision,
            prev: kv
        }
    );

    // A watch from a middle revision starts right after it.
    let mid = ops[29].0;
    let mut from_mid = s.watch("/w/", mid).await.unwrap();
    let first = next_event(&mut from_mid).await;
    assert_eq!(first.revision(), ops[30].0);
}

/// A watch started from an old revision while writers run sees every write once, in order,
/// with no gap where history meets live delivery.
pub async fn watch_joins_history_and_live_without_gaps(b: &impl Backend) {
    let s = b.store();
    let start = s.revision().await.unwrap();
    let (halfway, reached) = tokio::sync::oneshot::channel();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut revs = Vec::new();
            let mut halfway = Some(halfway);
            for i in 0..400 {
                let kv = s
                    .create(&format!("/j/k{i:03}"), val("x"), None)
                    .await
                    .unwrap();
                revs.push(kv.mod_revision);
                if i == 50
                    && let Some(halfway) = halfway.take()
                {
                    let _ = halfway.send(());
                }
            }
            revs
        })
    };
    // Start the watch while the writer is part-way through.
    tokio::time::timeout(PATIENCE, reached)
        .await
        .unwrap()
        .unwrap();
    let mut watch = s.watch("/j/", start).await.unwrap();
    let revs = tokio::time::timeout(PATIENCE, writer)
        .await
        .unwrap()
        .unwrap();
    let seen: Vec<Revision> = collect_events(&mut watch, revs.len())
        .await
        .iter()
        .map(Event::revision)
        .collect();
    assert_eq!(seen, revs);
}

/// A watch delivers only changes under its prefix.
pub async fn watch_filters_by_prefix(b: &impl Backend) {
    let s = b.store();
    let start = s.revision().await.unwrap();
    s.create("/wp/a/1", val("in"), None).await.unwrap();
    s.create("/wp/b/1", val("out"), None).await.unwrap();
    s.create("/wp/ab", val("out"), None).await.unwrap();
    s.create("/wp/a/2", val("in"), None).await.unwrap();
    let mut watch = s.watch("/wp/a/", start).await.unwrap();
    let keys: Vec<String> = collect_events(&mut watch, 2)
        .await
        .iter()
        .map(|e| e.key().to_owned())
        .collect();
    assert_eq!(keys, ["/wp/a/1", "/wp/a/2"]);
    let kv = s.create("/wp/a/3", val("in"), None).await.unwrap();
    s.create("/wp/z", val("out"), None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.key(), kv.key);
}

/// After compaction at C, reads and watches before C fail with `Compacted`.
pub async fn compaction_refuses_old_reads_and_watches(b: &impl Backend) {
    let s = b.store();
    let v1 = s.create("/cp/a", val("1"), None).await.unwrap();
    let v2 = s
        .update("/cp/a", val("2"), v1.mod_revision, None)
        .await
        .unwrap();
    let v3 = s
        .update("/cp/a", val("3"), v2.mod_revision, None)
        .await
        .unwrap();
    s.compact(v2.mod_revision).await.unwrap();
    assert!(s.compacted_revision().await.unwrap() >= v2.mod_revision);

    assert!(matches!(
        s.get("/cp/a", Some(v1.mod_revision)).await,
        Err(Error::Compacted { requested, .. }) if requested == v1.mod_revision
    ));
    assert!(matches!(
        s.list(
            "/cp/",
            ListOptions {
                revision: Some(v1.mod_revision),
                ..Default::default()
            }
        )
        .await,
        Err(Error::Compacted { .. })
    ));
    match s.watch("/cp/", v1.mod_revision - 1).await {
        Err(Error::Compacted { .. }) => {}
        Err(e) => panic!("expected Compacted, got {e:?}"),
        Ok(_) => panic!("expected Compacted, got a watch"),
    }
    // The state at the compaction revision itself stays readable and watchable from it.
    assert_eq!(
        s.get("/cp/a", Some(v2.mod_revision))
            .await
            .unwrap()
            .unwrap()
            .value,
        val("2")
    );
    let mut watch = s.watch("/cp/", v2.mod_revision).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        Event::Put {
            kv: v3,
            prev: Some(v2)
        }
    );
}

/// Compaction at C keeps the state at C and every later revision readable, including keys
/// changed or deleted after C, and never changes the current state.
pub async fn compaction_keeps_state_at_and_after_it(b: &impl Backend) {
    let s = b.store();
    for i in 0..20 {
        let key = format!("/ck/k{}", i % 6);
        match s.get(&key, None).await.unwrap() {
            None => s
                .create(&key, val(format!("{i}")), None)
                .await
                .map(drop)
                .unwrap(),
            Some(_) if i % 5 == 0 => s.delete(&key, None).await.map(drop).unwrap(),
            Some(kv) => s
                .update(&key, val(format!("{i}")), kv.mod_revision, None)
                .await
                .map(drop)
                .unwrap(),
        }
    }
    let at_c = s.list("/ck/", ListOptions::default()).await.unwrap();
    assert!(at_c.kvs.len() >= 2, "{:?}", at_c.kvs);
    let c = at_c.revision;

    // History after C: delete one key, change another, add one.
    s.delete(&at_c.kvs[0].key, None).await.unwrap();
    let changed = &at_c.kvs[1];
    s.update(&changed.key, val("after"), changed.mod_revision, None)
        .await
        .unwrap();
    s.create("/ck/new", val("new"), None).await.unwrap();
    let middle = s.list("/ck/", ListOptions::default()).await.unwrap();
    s.create("/ck/newer", val("newer"), None).await.unwrap();
    let now = s.list("/ck/", ListOptions::default()).await.unwrap();

    s.compact(c).await.unwrap();
    let read_at = |revision| ListOptions {
        revision: Some(revision),
        ..Default::default()
    };
    assert_eq!(s.list("/ck/", read_at(c)).await.unwrap().kvs, at_c.kvs);
    assert_eq!(
        s.list("/ck/", read_at(middle.revision)).await.unwrap().kvs,
        middle.kvs
    );
    assert_eq!(
        s.list("/ck/", ListOptions::default()).await.unwrap().kvs,
        now.kvs
    );
    for kv in &at_c.kvs {
        assert_eq!(s.get(&kv.key, Some(c)).await.unwrap().as_ref(), Some(kv));
    }
    assert_eq!(s.get(&at_c.kvs[0].key, None).await.unwrap(), None);

    // Compacting again, later, keeps the same promise.
    s.compact(middle.revision).await.unwrap();
    assert!(matches!(
        s.list("/ck/", read_at(c)).await,
        Err(Error::Compacted { .. })
    ));
    assert_eq!(
        s.list("/ck/", read_at(middle.revision)).await.unwrap().kvs,
        middle.kvs
    );
    assert_eq!(
        s.list("/ck/", ListOptions::default()).await.unwrap().kvs,
        now.kvs
    );
}

/// A hundred concurrent watchers each see every event, in order.
pub async fn hundred_watchers_see_every_event(b: &impl Backend) {
    let s = b.store();
    let start = s.revision().await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..100 {
        watches.push(s.watch("/hw/", start).await.unwrap());
    }
    let mut revs = Vec::new();
    for i in 0..30 {
        revs.push(
            s.create(&format!("/hw/k{i:02}"), val("x"), None)
                .await
                .unwrap()
                .mod_revision,
        );
    }
    let checks = watches.into_iter().map(|mut w| {
        let revs = revs.clone();
        async move {
            let seen: Vec<Revision> = collect_events(&mut w, revs.len())
                .await
                .iter()
                .map(Event::revision)
                .collect();
            assert_eq!(seen, revs);
        }
    });
    future::join_all(checks).await;
}

async fn wait_until_gone(s: &Arc<dyn Store>, watch: &mut WatchStream, keys: &[&str]) {
    let mut remaining: HashSet<&str> = keys.iter().copied().collect();
    while !remaining.is_empty() {
        match next_event(watch).await {
            Event::Delete { prev, .. } => {
                remaining.remove(prev.key.as_str());
            }
            Event::Put { kv, .. } => panic!("unexpected put of {}", kv.key),
        }
    }
    for key in keys {
        assert_eq!(s.get(key, None).await.unwrap(), None, "{key} still present");
    }
}

/// Keys bound to a lease vanish, as delete events, once the lease's TTL passes unrenewed;
/// keys without the lease stay.
pub async fn lease_expiry_deletes_keys(b: &impl Backend) {
    let s = b.store();
    let ttl = b.lease_ttl();
    let lease = s.grant_lease(ttl).await.unwrap();
    let a = s.create("/ls/a", val("a"), Some(lease)).await.unwrap();
    assert_eq!(a.lease, Some(lease));
    let b_kv = s.create("/ls/b", val("b"), None).await.unwrap();
    let c = s
        .update("/ls/b", val("b2"), b_kv.mod_revision, Some(lease))
        .await
        .unwrap();
    assert_eq!(c.lease, Some(lease));
    s.create("/ls/free", val("free"), None).await.unwrap();
    let mut watch = s.watch("/ls/", s.revision().await.unwrap()).await.unwrap();

    b.advance(ttl + Duration::from_secs(2)).await;
    wait_until_gone(&s, &mut watch, &["/ls/a", "/ls/b"]).await;
    assert!(s.get("/ls/free", None).await.unwrap().is_some());
    assert!(matches!(s.keep_alive(lease).await, Err(Error::LeaseNotFound(id)) if id == lease));
}

/// Keep-alive restarts a lease's TTL; revoking deletes its keys at once.
pub async fn lease_keep_alive_and_revoke(b: &impl Backend) {
    let s = b.store();
    let ttl = b.lease_ttl();
    let lease = s.grant_lease(ttl).await.unwrap();
    s.create("/lk/a", val("a"), Some(lease)).await.unwrap();
    let step = ttl.mul_f64(0.6);
    b.advance(step).await;
    s.keep_alive(lease).await.unwrap();
    b.advance(step).await;
    // 1.2 TTLs after the grant, but only 0.6 after the keep-alive: the lease must still be
    // alive, which a second keep-alive proves without racing the expiry task.
    s.keep_alive(lease)
        .await
        .expect("lease expired despite keep-alive");
    assert!(
        s.get("/lk/a", None).await.unwrap().is_some(),
        "expired despite keep-alive"
    );

    let other = s.grant_lease(ttl).await.unwrap();
    s.create("/lk/b", val("b"), Some(other)).await.unwrap();
    s.create("/lk/c", val("c"), Some(other)).await.unwrap();
    let mut watch = s.watch("/lk/", s.revision().await.unwrap()).await.unwrap();
    s.revoke_lease(other).await.unwrap();
    wait_until_gone(&s, &mut watch, &["/lk/b", "/lk/c"]).await;
    assert!(s.get("/lk/a", None).await.unwrap().is_some());
    assert!(matches!(
        s.revoke_lease(other).await,
        Err(Error::LeaseNotFound(_))
    ));
}

/// Binding a key to a lease that does not exist fails and writes nothing.
pub async fn unknown_lease_is_refused(b: &impl Backend) {
    let s = b.store();
    let bogus = 0x5eed_0000_0001;
    assert!(matches!(
        s.create("/ul/a", val("a"), Some(bogus)).await,
        Err(Error::LeaseNotFound(id)) if id == bogus
    ));
    assert_eq!(s.get("/ul/a", None).await.unwrap(), None);
    assert!(matches!(
        s.keep_alive(bogus).await,
        Err(Error::LeaseNotFound(_))
    ));
}

/// Values up to the limit are stored and returned intact by get, list and watch.
pub async fn large_values_round_trip(b: &impl Backend) {
    let s = b.store();
    let start = s.revision().await.unwrap();
    let big: Bytes = (0..MAX_VALUE_BYTES)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let kv = s.create("/big/a", big.clone(), None).await.unwrap();
    assert_eq!(s.get("/big/a", None).await.unwrap().unwrap().value, big);
    let list = s.list("/big/", ListOptions::default()).await.unwrap();
    assert_eq!(list.kvs, vec![kv.clone()]);
    let mut watch = s.watch("/big/", start).await.unwrap();
    assert_eq!(next_event(&mut watch).await, Event::Put { kv, prev: None });
}

/// A value over the limit is refused with `TooLarge` and nothing is written.
pub async fn oversized_value_is_refused(b: &impl Backend) {
    let s = b.store();
    let before = s.revision().await.unwrap();
    let too_big = Bytes::from(vec![7u8; MAX_VALUE_BYTES + 1]);
    assert!(matches!(
        s.create("/big/x", too_big.clone(), None).await,
        Err(Error::TooLarge { size, limit, .. }) if size == MAX_VALUE_BYTES + 1 && limit == MAX_VALUE_BYTES
    ));
    let kv = s.create("/big/y", val("small"), None).await.unwrap();
    assert!(matches!(
        s.update("/big/y", too_big, kv.mod_revision, None).await,
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(s.get("/big/x", None).await.unwrap(), None);
    assert_eq!(s.get("/big/y", None).await.unwrap(), Some(kv));
    assert_eq!(s.revision().await.unwrap(), before + 1);
}

/// Keys outside the key rules are refused by every operation.
pub async fn invalid_keys_are_refused(b: &impl Backend) {
    let s = b.store();
    for key in ["", "has space", "caf\u{e9}", "new\nline"] {
        assert!(
            matches!(
                s.create(key, val("x"), None).await,
                Err(Error::InvalidKey { .. })
            ),
            "create {key:?}"
        );
        assert!(
            matches!(s.get(key, None).await, Err(Error::InvalidKey { .. })),
            "get {key:?}"
        );
    }
    assert!(matches!(
        s.list("bad prefix", ListOptions::default()).await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        s.watch("bad prefix", 0).await,
        Err(Error::InvalidKey { .. })
    ));
}
