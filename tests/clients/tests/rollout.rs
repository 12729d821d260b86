//! `kubectl rollout` against a real Deployment: the controllers, the scheduler and hollow
//! nodes run beside the API server in-process, and the real kubectl drives a rollout, its
//! history, an undo, a pause and resume and a restart, and reads them back as a user would.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::ListParams;
use slipway_client_tests::{Kubectl, Server, eventually};

fn manifest(image: &str, cause: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubernetes.io/change-cause: {cause}
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
"
    )
}

async fn rolled_out(kubectl: &Kubectl) {
    let out = kubectl
        .ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        out.trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{out}"
    );
}

async fn image(deployments: &Api<Deployment>) -> String {
    let d = deployments.get("web").await.unwrap();
    d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rolls_out_undoes_pauses_resumes_and_restarts() {
    let server = Server::start().await;
    let cluster = server.run_cluster(3).await;
    let kubectl = Kubectl::new(&server);
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");

    let v1 = kubectl.file("v1.yaml", &manifest("web:1", "v1"));
    kubectl.ok(&["apply", "-f", &v1]).await;
    rolled_out(&kubectl).await;
    let v2 = kubectl.file("v2.yaml", &manifest("web:2", "v2"));
    kubectl.ok(&["apply", "-f", &v2]).await;
    rolled_out(&kubectl).await;

    // History lists both revisions with their change causes.
    let history = kubectl.ok(&["rollout", "history", "deployment/web"]).await;
    let rows: Vec<Vec<&str>> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .filter(|r: &Vec<&str>| !r.is_empty())
        .collect();
    assert_eq!(rows, [vec!["1", "v1"], vec!["2", "v2"]], "{history}");
    let one = kubectl
        .ok(&["rollout", "history", "deployment/web", "--revision=1"])
        .await;
    assert!(
        one.lines()
            .any(|l| l.trim().starts_with("Image:") && l.trim().ends_with("web:1")),
        "{one}"
    );

    // Undo goes back to revision 1's template, which becomes revision 3.
    let undone = kubectl.ok(&["rollout", "undo", "deployment/web"]).await;
    assert!(
        undone.contains("deployment.apps/web rolled back"),
        "{undone}"
    );
    rolled_out(&kubectl).await;
    assert_eq!(image(&deployments).await, "web:1");
    let history = kubectl.ok(&["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    assert_eq!(
        sets.list(&ListParams::default()).await.unwrap().items.len(),
        2,
        "the old set was reused"
    );

    // Paused, a template change rolls nothing out; resumed, it does.
    kubectl.ok(&["rollout", "pause", "deployment/web"]).await;
    kubectl
        .ok(&["set", "image", "deployment/web", "web=web:3"])
        .await;
    let paused = eventually("the pause observed", async || {
        let d = deployments.get("web").await.unwrap();
        let status = d.status?;
        let progressing = status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing")?;
        (status.observed_generation == d.metadata.generation
            && progressing.reason.as_deref() == Some("DeploymentPaused"))
        .then_some(progressing)
    })
    .await;
    assert_eq!(paused.status, "Unknown");
    assert_eq!(
        sets.list(&ListParams::default()).await.unwrap().items.len(),
        2,
        "no new set while paused"
    );
    let (ok, _, stderr) = kubectl.run(&["rollout", "undo", "deployment/web"]).await;
    assert!(
        !ok && stderr.contains("you cannot rollback a paused deployment"),
        "{stderr}"
    );
    kubectl.ok(&["rollout", "resume", "deployment/web"]).await;
    rolled_out(&kubectl).await;

    // A restart rolls the same image out again, to fresh pods.
    let restarted = kubectl.ok(&["rollout", "restart", "deployment/web"]).await;
    assert!(
        restarted.contains("deployment.apps/web restarted"),
        "{restarted}"
    );
    rolled_out(&kubectl).await;
    let d = deployments.get("web").await.unwrap();
    assert_eq!(image(&deployments).await, "web:3");
    assert!(
        d.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()
            .contains_key("kubectl.kubernetes.io/restartedAt")
    );
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "5"
    );

    // describe tells the same story.
    let described = kubectl.ok(&["describe", "deployment", "web"]).await;
    for expected in [
        "3 desired | 3 updated | 3 total | 3 available | 0 unavailable",
        "NewReplicaSetAvailable",
        "MinimumReplicasAvailable",
        "ScalingReplicaSet",
        "Scaled up replica set web-",
    ] {
        assert!(
            described.contains(expected),
            "no {expected:?} in {described}"
        );
    }
    cluster.stop().await;
}
