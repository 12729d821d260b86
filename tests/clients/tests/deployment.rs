//! The Deployment controller with the rest of the control plane on hollow nodes: a
//! recreate starts no new pod while an old one still stops, a rollout that cannot progress says so
//! after its deadline, and history past `revisionHistoryLimit` is pruned.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use slipway_client_tests::{Server, eventually};

fn deployment(name: &str, replicas: i32, strategy: Value, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "strategy": strategy,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}}
    }))
    .unwrap()
}

async fn set_image(deployments: &Api<Deployment>, name: &str, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
    deployments
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
}

/// Waits until the Deployment's latest spec is fully rolled out.
async fn complete(deployments: &Api<Deployment>, name: &str) -> Deployment {
    eventually(&format!("{name} rolled out"), async || {
        let d = deployments.get(name).await.unwrap();
        let want = d.spec.as_ref()?.replicas?;
        let status = d.status.clone()?;
        let progressing = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing")?;
        (status.observed_generation == d.metadata.generation
            && status.updated_replicas == Some(want)
            && status.replicas == Some(want)
            && status.available_replicas == Some(want)
            && progressing.reason.as_deref() == Some("NewReplicaSetAvailable"))
        .then_some(d)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let server = Server::start().await;
    let cluster = server.run_cluster(2).await;
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");

    let d = deployment("db", 3, json!({"type": "Recreate"}), "db:1");
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    complete(&deployments, "db").await;
    // One old pod is slow to stop: a finalizer holds it while it terminates.
    let held = pods
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items[0]
        .name_any();
    let hold = json!({"metadata": {"finalizers": ["example.com/hold"]}});
    pods.patch(&held, &PatchParams::default(), &Patch::Merge(hold))
        .await
        .unwrap();
    set_image(&deployments, "db", "db:2").await;

    eventually(
        "the old set scaled to nothing and its pods stopping",
        async || {
            let old = sets
                .list(&ListParams::default().labels("app=db"))
                .await
                .unwrap()
                .items;
            let [old] = old.as_slice() else { return None };
            let pod = pods.get(&held).await.unwrap();
            (old.spec.as_ref()?.replicas == Some(0)
                && old.status.as_ref()?.replicas == 0
                && pod.metadata.deletion_timestamp.is_some())
            .then_some(())
        },
    )
    .await;
    // Give a controller that does not wait every chance to start the new pods early.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let listed = sets
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1, "a new set while an old pod still runs");

    // Once it is gone, the new pods start: the pod's deletion wakes the controller.
    let release = json!({"metadata": {"finalizers": null}});
    pods.patch(&held, &PatchParams::default(), &Patch::Merge(release))
        .await
        .unwrap();
    let done = complete(&deployments, "db").await;
    assert_eq!(done.annotations()["deployment.kubernetes.io/revision"], "2");
    let running = pods
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items;
    assert_eq!(running.len(), 3);
    assert!(
        running
            .iter()
            .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("db:2"))
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rollout_exceeds_its_deadline_and_old_history_is_pruned() {
    let server = Server::start().await;
    let cluster = server.run_cluster(2).await;
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");

    let mut d = deployment("web", 2, json!({"type": "RollingUpdate"}), "web:1");
    let spec = d.spec.as_mut().unwrap();
    spec.revision_history_limit = Some(1);
    spec.progress_deadline_seconds = Some(2);
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    complete(&deployments, "web").await;
    set_image(&deployments, "web", "web:2").await;
    complete(&deployments, "web").await;
    set_image(&deployments, "web", "web:3").await;
    complete(&deployments, "web").await;
    let revisions = eventually("history pruned to one old set", async || {
        let mut revisions: Vec<String> = sets
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .iter()
            .map(|rs| rs.annotations()["deployment.kubernetes.io/revision"].clone())
            .collect();
        revisions.sort();
        (revisions.len() == 2).then_some(revisions)
    })
    .await;
    assert_eq!(revisions, ["2", "3"]);

    // Pods that fit no node: the rollout stops and, past its deadline, says so. The old
    // pods keep serving: maxUnavailable 25% of 2 rounds down to none.
    let stuck =
        json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "none-has-this"}}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(stuck))
        .await
        .unwrap();
    let progressing = eventually("the deadline exceeded", async || {
        let status = deployments.get("web").await.unwrap().status?;
        status.conditions?.into_iter().find(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    })
    .await;
    assert_eq!(progressing.status, "False");
    let message = progressing.message.unwrap();
    assert!(
        message.starts_with("ReplicaSet \"web-")
            && message.ends_with("\" has timed out progressing."),
        "{message}"
    );
    let status = deployments.get("web").await.unwrap().status.unwrap();
    assert_eq!(
        status.available_replicas,
        Some(2),
        "the old pods still serve"
    );
    cluster.stop().await;
}
