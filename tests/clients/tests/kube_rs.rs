//! Unmodified kube-rs 5 clients against the API server over plain HTTP: typed CRUD and
//! patches, the scale subresource, raw watches, and the runtime's watcher and reflector.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::{reflector, watcher};
use kube::{Error, ResourceExt};
use serde_json::json;
use slipway_client_tests::Server;

/// Long enough for a loaded 2-core CI machine, short enough that a lost event fails the
/// test instead of hanging it.
const WAIT: Duration = Duration::from_secs(15);

fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    let owned = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(owned(labels)),
            ..ObjectMeta::default()
        },
        data: Some(owned(data)),
        ..ConfigMap::default()
    }
}

fn data(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

async fn next<T: Debug>(stream: &mut (impl Stream<Item = T> + Unpin)) -> T {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

/// The next watcher event that is not an error, with the errors skipped on the way.
async fn next_event<K: Debug>(
    stream: &mut (impl Stream<Item = watcher::Result<watcher::Event<K>>> + Unpin),
) -> (watcher::Event<K>, Vec<watcher::Error>) {
    let mut errors = Vec::new();
    loop {
        match next(stream).await {
            Ok(event) => return (event, errors),
            Err(e) => errors.push(e),
        }
    }
}

/// The next watcher event, which must not be an error.
async fn expect_event<K: Debug>(
    stream: &mut (impl Stream<Item = watcher::Result<watcher::Event<K>>> + Unpin),
) -> watcher::Event<K> {
    let (event, errors) = next_event(stream).await;
    assert!(errors.is_empty(), "unexpected watcher errors: {errors:?}");
    event
}

fn names(list: impl IntoIterator<Item = impl ResourceExt>) -> Vec<String> {
    let mut names: Vec<String> = list.into_iter().map(|o| o.name_any()).collect();
    names.sort();
    names
}

/// Expects `Init`, one `InitApply` per name (in any order), then `InitDone`.
async fn expect_initial_state(
    stream: &mut (impl Stream<Item = watcher::Result<watcher::Event<ConfigMap>>> + Unpin),
    expected: &[&str],
) {
    assert!(matches!(expect_event(stream).await, watcher::Event::Init));
    let mut seen = Vec::new();
    loop {
        match expect_event(stream).await {
            watcher::Event::InitApply(cm) => seen.push(cm),
            watcher::Event::InitDone => break,
            other => panic!("expected InitApply or InitDone, got {other:?}"),
        }
    }
    assert_eq!(names(seen), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_map_crud_and_patches() {
    let server = Server::start().await;
    let api = Api::<ConfigMap>::default_namespaced(server.client.clone());

    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let created = api
        .create(
            &PostParams::default(),
            &config_map("app", &[("tier", "web")], &[("a", "1")]),
        )
        .await
        .unwrap();
    assert!(created.uid().is_some());
    assert!(created.resource_version().is_some());
    assert!(created.creation_timestamp().is_some());

    let fetched = api.get("app").await.unwrap();
    assert_eq!(fetched.resource_version(), created.resource_version());
    assert_eq!(data(&fetched), data(&created));

    api.create(&PostParams::default(), &config_map("other", &[], &[]))
        .await
        .unwrap();
    let list = api
        .list(&ListParams::default().labels("tier=web"))
        .await
        .unwrap();
    assert_eq!(names(list.items), ["app"]);
    assert_eq!(
        names(api.list(&ListParams::default()).await.unwrap().items),
        ["app", "other"]
    );
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = page.metadata.continue_.clone().expect("a continue token");
    let rest = api
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert!(rest.metadata.continue_.is_none_or(|t| t.is_empty()));
    assert_eq!(
        names(page.items.into_iter().chain(rest.items)),
        ["app", "other"]
    );

    let mut changed = fetched.clone();
    changed.data = Some(BTreeMap::from([("a".to_owned(), "2".to_owned())]));
    let replaced = api
        .replace("app", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(data(&replaced)["a"], "2");
    assert_ne!(replaced.resource_version(), fetched.resource_version());

    // The first copy's resourceVersion is stale now: a lost update must be refused.
    match api.replace("app", &PostParams::default(), &fetched).await {
        Err(Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
        }
        other => panic!("expected a 409 Conflict, got {other:?}"),
    }

    let merged = api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "b": "3", "a": null } })),
        )
        .await
        .unwrap();
    assert_eq!(
        data(&merged),
        BTreeMap::from([("b".to_owned(), "3".to_owned())])
    );

    let json_patch = serde_json::from_value(json!([
        { "op": "test", "path": "/data/b", "value": "3" },
        { "op": "add", "path": "/data/c", "value": "4" },
    ]))
    .unwrap();
    let patched = api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Json::<()>(json_patch),
        )
        .await
        .unwrap();
    assert_eq!(data(&patched)["c"], "4");
    assert_eq!(data(&patched)["b"], "3");

    match api
        .create(&PostParams::default(), &config_map("app", &[], &[]))
        .await
    {
        Err(Error::Api(status)) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (409, "AlreadyExists")
            );
        }
        other => panic!("expected a 409 AlreadyExists, got {other:?}"),
    }

    // Without finalizers the object goes at once, answered with a Status.
    let deleted = api.delete("app", &DeleteParams::default()).await.unwrap();
    deleted.either(
        |cm| panic!("expected a Status for an immediate delete, got the object {cm:?}"),
        |status| {
            assert!(status.is_success(), "{status:?}");
            let details = status.details.expect("details name the deleted object");
            assert_eq!(details.name, "app");
            assert_eq!(details.kind, "configmaps");
            assert_eq!(Some(details.uid), created.uid());
        },
    );
    assert!(api.get_opt("app").await.unwrap().is_none());
    match api.get("app").await {
        Err(Error::Api(status)) => assert!(status.is_not_found(), "{status:?}"),
        other => panic!("expected a 404, got {other:?}"),
    }

    // A finalizer keeps it: the delete answers with the object, marked for deletion.
    let mut kept = config_map("kept", &[], &[]);
    kept.metadata.finalizers = Some(vec!["example.com/hold".to_owned()]);
    api.create(&PostParams::default(), &kept).await.unwrap();
    let deleted = api.delete("kept", &DeleteParams::default()).await.unwrap();
    deleted.either(
        |cm| {
            assert_eq!(cm.name_any(), "kept");
            assert!(cm.metadata.deletion_timestamp.is_some(), "{cm:?}");
        },
        |status| panic!("expected the object kept by its finalizer, got {status:?}"),
    );
    assert!(api.get_opt("kept").await.unwrap().is_some());
    api.patch(
        "kept",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    assert!(api.get_opt("kept").await.unwrap().is_none());
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [
                    { "name": "web", "image": "nginx:1.27" },
                    { "name": "sidecar", "image": "busybox:1.36" },
                ] },
            },
        },
    }))
    .unwrap()
}

fn images(d: &Deployment) -> Vec<(String, Option<String>)> {
    let spec = d.spec.as_ref().expect("spec");
    let pod = spec.template.spec.as_ref().expect("pod spec");
    pod.containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_strategic_patch_and_scale() {
    let server = Server::start().await;
    let api = Api::<Deployment>::default_namespaced(server.client.clone());
    api.create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();

    // Containers merge by name: the sidecar survives a patch that names only "web".
    let patch = json!({ "spec": { "template": { "spec": { "containers": [
        { "name": "web", "image": "nginx:1.28" },
    ] } } } });
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    assert_eq!(
        images(&patched),
        [
            ("web".to_owned(), Some("nginx:1.28".to_owned())),
            ("sidecar".to_owned(), Some("busybox:1.36".to_owned())),
        ]
    );

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(1));

    let scaled = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 4 } })),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(4));
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(4));
    assert_eq!(
        api.get("web").await.unwrap().spec.and_then(|s| s.replicas),
        Some(4)
    );
}

async fn watcher_sees_state_then_changes(config: watcher::Config) {
    let server = Server::start().await;
    let api = Api::<ConfigMap>::default_namespaced(server.client.clone());
    for name in ["one", "two"] {
        api.create(&PostParams::default(), &config_map(name, &[], &[]))
            .await
            .unwrap();
    }

    let mut events = watcher(api.clone(), config).boxed();
    expect_initial_state(&mut events, &["one", "two"]).await;

    api.create(
        &PostParams::default(),
        &config_map("three", &[], &[("k", "v")]),
    )
    .await
    .unwrap();
    match expect_event(&mut events).await {
        watcher::Event::Apply(cm) => {
            assert_eq!(cm.name_any(), "three");
            assert_eq!(data(&cm)["k"], "v");
        }
        other => panic!("expected Apply(three), got {other:?}"),
    }

    api.delete("one", &DeleteParams::default()).await.unwrap();
    match expect_event(&mut events).await {
        watcher::Event::Delete(cm) => assert_eq!(cm.name_any(), "one"),
        other => panic!("expected Delete(one), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_list_then_watch() {
    watcher_sees_state_then_changes(watcher::Config::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_streaming_list() {
    watcher_sees_state_then_changes(watcher::Config::default().streaming_lists()).await;
}

/// Writes `count` configmaps labelled `noise=true`: revisions the other tests' watches do
/// not select, so their resourceVersions fall behind a compaction.
async fn write_noise(api: &Api<ConfigMap>, prefix: &str, count: usize) {
    for i in 0..count {
        api.create(
            &PostParams::default(),
            &config_map(&format!("{prefix}-{i}"), &[("noise", "true")], &[]),
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_from_compacted_revision_is_expired() {
    let server = Server::start().await;
    let api = Api::<ConfigMap>::default_namespaced(server.client.clone());
    let first = api
        .create(&PostParams::default(), &config_map("first", &[], &[]))
        .await
        .unwrap();
    let old = first.resource_version().expect("a resourceVersion");
    write_noise(&api, "later", 3).await;
    let revision = server.store.revision().await.unwrap();
    server.store.compact(revision).await.unwrap();

    let mut stream = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match next(&mut stream).await {
        Ok(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected an ERROR event with 410 Expired, got {other:?}"),
    }

    // At the compacted revision itself the history is still there.
    let mut stream = api
        .watch(&WatchParams::default(), &revision.to_string())
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &config_map("after", &[], &[]))
        .await
        .unwrap();
    match next(&mut stream).await {
        Ok(WatchEvent::Added(cm)) => assert_eq!(cm.name_any(), "after"),
        other => panic!("expected ADDED(after), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_relists_after_expiry() {
    let server = Server::start().await;
    let api = Api::<ConfigMap>::default_namespaced(server.client.clone());
    api.create(
        &PostParams::default(),
        &config_map("a", &[("watched", "yes")], &[]),
    )
    .await
    .unwrap();

    // The watcher holds the list's resourceVersion: the selector filters the noise below
    // out, so nothing moves it past the compaction. Its watch starts from there whether it
    // opens after the compaction (the stream is lazy) or re-opens after the 1s timeout.
    let config = watcher::Config::default().labels("watched=yes").timeout(1);
    let mut events = watcher(api.clone(), config).boxed();
    expect_initial_state(&mut events, &["a"]).await;

    write_noise(&api, "noise", 3).await;
    let revision = server.store.revision().await.unwrap();
    server.store.compact(revision).await.unwrap();

    let (event, errors) = next_event(&mut events).await;
    assert!(
        matches!(
            errors.as_slice(),
            [watcher::Error::WatchError(status)] if status.code == 410
        ),
        "expected one 410 before the relist, got {errors:?}"
    );
    assert!(matches!(event, watcher::Event::Init), "{event:?}");
    let mut relisted = Vec::new();
    loop {
        match expect_event(&mut events).await {
            watcher::Event::InitApply(cm) => relisted.push(cm),
            watcher::Event::InitDone => break,
            other => panic!("expected InitApply or InitDone, got {other:?}"),
        }
    }
    assert_eq!(names(relisted), ["a"]);

    api.create(
        &PostParams::default(),
        &config_map("b", &[("watched", "yes")], &[]),
    )
    .await
    .unwrap();
    match expect_event(&mut events).await {
        watcher::Event::Apply(cm) => assert_eq!(cm.name_any(), "b"),
        other => panic!("expected Apply(b), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reflector_store_fills() {
    let server = Server::start().await;
    let api = Api::<ConfigMap>::default_namespaced(server.client.clone());
    for name in ["x", "y"] {
        api.create(&PostParams::default(), &config_map(name, &[], &[]))
            .await
            .unwrap();
    }

    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()));
    let driver = tokio::spawn(stream.for_each(|_| async {}));

    tokio::time::timeout(WAIT, reader.wait_until_ready())
        .await
        .expect("ready in time")
        .unwrap();
    assert_eq!(
        names(reader.state().iter().map(|cm| (**cm).clone())),
        ["x", "y"]
    );

    api.create(&PostParams::default(), &config_map("z", &[], &[]))
        .await
        .unwrap();
    api.delete("x", &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while names(reader.state().iter().map(|cm| (**cm).clone())) != ["y", "z"] {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the store follows the create and the delete");
    driver.abort();
}
