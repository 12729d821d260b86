//! The ReplicaSet controller, run as it runs in `slipway server`, against a real API
//! server: pods follow `spec.replicas`, orphans are adopted, lost pods replaced, and the
//! garbage collector takes the pods when the set goes.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use slipway_client_tests::{Server, eventually};

async fn pods_of(pods: &Api<Pod>, uid: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.owner_references()
                    .iter()
                    .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .collect()
}

#[tokio::test]
async fn replica_sets_keep_their_pods() {
    let server = Server::start().await;
    let controllers = server.run_controllers();
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");

    // An orphan that matches is adopted rather than doubled.
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "web:1"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let set: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}
    }))
    .unwrap();
    let set = sets.create(&PostParams::default(), &set).await.unwrap();
    let uid = set.uid().unwrap();
    let owned = eventually("three pods", async || {
        let owned = pods_of(&pods, &uid).await;
        (owned.len() == 3).then_some(owned)
    })
    .await;
    assert!(
        owned.iter().any(|p| p.name_any() == "orphan"),
        "the orphan was adopted"
    );
    assert!(
        owned
            .iter()
            .filter(|p| p.name_any().starts_with("web-"))
            .count()
            == 2
    );
    eventually("status reports three replicas", async || {
        let status = sets.get("web").await.unwrap().status?;
        (status.replicas == 3 && status.observed_generation == Some(1)).then_some(())
    })
    .await;

    // The set says what it did, as `kubectl describe` shows.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(server.client.clone(), "default");
    let created = events
        .list(
            &ListParams::default().fields("involvedObject.kind=ReplicaSet,involvedObject.name=web"),
        )
        .await
        .unwrap()
        .items;
    let messages: Vec<String> = created.iter().filter_map(|e| e.message.clone()).collect();
    assert_eq!(
        created
            .iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .count(),
        2,
        "{messages:?}"
    );
    assert!(
        messages.iter().all(|m| m.starts_with("Created pod: web-")),
        "{messages:?}"
    );

    // A lost pod is replaced.
    pods.delete(&owned[0].name_any(), &DeleteParams::default())
        .await
        .unwrap();
    eventually("a replacement", async || {
        let now = pods_of(&pods, &uid).await;
        (now.len() == 3 && now.iter().all(|p| p.name_any() != owned[0].name_any())).then_some(())
    })
    .await;

    // An orphan that turns up later is adopted at once, and the surplus deleted.
    let mut late = orphan.clone();
    late.metadata.name = Some("late".into());
    pods.create(&PostParams::default(), &late).await.unwrap();
    eventually(
        "three pods again after adopting the late orphan",
        async || {
            let all = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .items;
            let live: Vec<_> = all
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            (live.len() == 3 && live.iter().all(|p| p.owner_references().len() == 1)).then_some(())
        },
    )
    .await;

    // Scaling down deletes.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("one pod", async || {
        (pods_of(&pods, &uid).await.len() == 1).then_some(())
    })
    .await;

    // Deleting the set lets the garbage collector take its pods.
    sets.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("no pods", async || {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;

    controllers.stop().await;
}
