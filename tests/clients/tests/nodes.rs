//! The node lifecycle controller against a real API server, with its waits shortened: a
//! node that stops renewing its Lease turns Unknown and unreachable, its pods are evicted,
//! and a renewal lifts the taint.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use slipway_client_tests::{Server, eventually, eventually_gone};
use slipway_controllers::nodes::{self, Timing, UNREACHABLE};
use tokio_util::sync::CancellationToken;

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

fn unreachable(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.key == UNREACHABLE && t.effect == "NoExecute")
        })
}

#[tokio::test]
async fn silent_nodes_become_unreachable_and_lose_their_pods() {
    let server = Server::start().await;
    let nodes_api: Api<Node> = Api::all(server.client.clone());
    let leases: Api<Lease> = Api::namespaced(server.client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    nodes_api
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "n1"},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": now()}
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "web:1"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let stop = CancellationToken::new();
    let timing = Timing {
        grace: Duration::from_secs(1),
        eviction: Duration::from_secs(1),
    };
    let task = tokio::spawn(nodes::run(server.client.clone(), timing, stop.clone()));

    eventually("the silent node unreachable and Unknown", async || {
        let node = nodes_api.get("n1").await.unwrap();
        let ready = node
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (unreachable(&node)
            && ready.status == "Unknown"
            && ready.reason.as_deref() == Some("NodeStatusUnknown"))
        .then_some(())
    })
    .await;
    eventually_gone(&pods, "p").await;

    // Heard from again: the taint goes.
    leases
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"renewTime": now()}})),
        )
        .await
        .unwrap();
    eventually("the taint lifted", async || {
        (!unreachable(&nodes_api.get("n1").await.unwrap())).then_some(())
    })
    .await;

    stop.cancel();
    task.await.unwrap();
}
