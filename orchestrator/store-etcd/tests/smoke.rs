//! etcd-specific behaviour beyond the shared conformance suite: namespaces, the exact
//! revisions in errors, compaction learned from another client, and a vanishing etcd.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use slipway_store::{Error, Event, ListOptions, Store};
use slipway_store_etcd::EtcdStore;
use slipway_testkit::{EtcdServer, free_port};

async fn start() -> EtcdServer {
    tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap()
        .unwrap()
}

async fn connect(server: &EtcdServer, namespace: Option<&str>) -> EtcdStore {
    EtcdStore::connect(&[server.endpoint()], namespace.map(str::to_owned))
        .await
        .unwrap()
}

fn val(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

#[tokio::test]
async fn namespaces_keep_clusters_apart() {
    let server = start().await;
    let a = connect(&server, Some("/cluster-a/")).await;
    let b = connect(&server, Some("/cluster-b/")).await;
    let start = a.revision().await.unwrap();

    let in_a = a.create("/k", val("a"), None).await.unwrap();
    let in_b = b.create("/k", val("b"), None).await.unwrap();
    assert_eq!(in_a.key, "/k");
    assert_eq!(a.get("/k", None).await.unwrap(), Some(in_a.clone()));
    assert_eq!(b.get("/k", None).await.unwrap(), Some(in_b));
    let listed = a.list("", ListOptions::default()).await.unwrap();
    assert_eq!(listed.kvs, vec![in_a.clone()]);

    let mut watch = a.watch("", start).await.unwrap();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(
        first,
        Event::Put {
            kv: in_a,
            prev: None
        }
    );
    let later = a.create("/z", val("a"), None).await.unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap().key(), later.key);

    assert!(matches!(
        EtcdStore::connect(&[server.endpoint()], Some("/no-slash".to_owned())).await,
        Err(Error::InvalidKey { .. })
    ));
}

#[tokio::test]
async fn errors_carry_exact_revisions() {
    let server = start().await;
    let s = connect(&server, None).await;
    let other = connect(&server, None).await;
    let v1 = s.create("/e/a", val("1"), None).await.unwrap();
    let v2 = s
        .update("/e/a", val("2"), v1.mod_revision, None)
        .await
        .unwrap();
    let v3 = s
        .update("/e/a", val("3"), v2.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), 0);

    s.compact(v2.mod_revision).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), v2.mod_revision);
    match s.get("/e/a", Some(v1.mod_revision)).await {
        Err(Error::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!((requested, compacted), (v1.mod_revision, v2.mod_revision));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    match s.watch("/e/", v1.mod_revision - 1).await {
        Err(Error::Compacted { compacted, .. }) => assert_eq!(compacted, v2.mod_revision),
        Err(e) => panic!("expected Compacted, got {e:?}"),
        Ok(_) => panic!("expected Compacted, got a watch"),
    }
    // Compacting what is already gone changes nothing and is not an error.
    s.compact(v1.mod_revision).await.unwrap();

    // Another client's compaction is learned on the next call.
    other.compact(v3.mod_revision).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), v3.mod_revision);

    let now = s.revision().await.unwrap();
    match s.get("/e/a", Some(now + 5)).await {
        Err(Error::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (now + 5, now));
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    assert!(matches!(
        s.compact(now + 5).await,
        Err(Error::FutureRevision { .. })
    ));
}

#[tokio::test]
async fn list_edges() {
    let server = start().await;
    let s = connect(&server, None).await;
    for key in ["/le/a", "/le/b", "/le/c"] {
        s.create(key, val(key), None).await.unwrap();
    }
    let keys =
        |r: slipway_store::ListResult| r.kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>();

    let after_all = ListOptions {
        start_after: Some("/le/c".to_owned()),
        ..Default::default()
    };
    let after_all = s.list("/le/", after_all).await.unwrap();
    assert!(after_all.kvs.is_empty() && !after_all.more);
    // A start before the prefix does not widen the list.
    let before = ListOptions {
        start_after: Some("/a".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        keys(s.list("/le/", before).await.unwrap()),
        ["/le/a", "/le/b", "/le/c"]
    );
    let page = ListOptions {
        limit: Some(2),
        start_after: Some("/le/a".to_owned()),
        ..Default::default()
    };
    let page = s.list("/le/", page).await.unwrap();
    assert!(!page.more);
    assert_eq!(keys(page), ["/le/b", "/le/c"]);
}

#[tokio::test]
async fn a_held_watch_lives_and_a_dead_etcd_ends_it_with_an_error() {
    let server = start().await;
    let s = connect(&server, None).await;
    let mut watch = s.watch("/dw/", s.revision().await.unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kv = s.create("/dw/a", val("a"), None).await.unwrap();
    assert_eq!(
        watch.next().await.unwrap().unwrap(),
        Event::Put { kv, prev: None }
    );

    drop(server);
    let ended = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .unwrap();
    assert!(
        matches!(ended, Some(Err(Error::Unavailable(_)))),
        "{ended:?}"
    );
    assert!(watch.next().await.is_none());
    let failed = tokio::time::timeout(Duration::from_secs(90), s.get("/dw/a", None))
        .await
        .unwrap();
    assert!(matches!(failed, Err(Error::Unavailable(_))), "{failed:?}");
}

#[tokio::test]
async fn unreachable_etcd_is_unavailable() {
    let endpoint = format!("http://127.0.0.1:{}", free_port().unwrap());
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(90),
        EtcdStore::connect(&[endpoint], None),
    )
    .await
    .expect("connect gave up within its timeouts");
    eprintln!("unreachable etcd reported after {:?}", started.elapsed());
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
}
