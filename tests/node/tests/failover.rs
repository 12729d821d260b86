//! Two agents share a Deployment's pods behind one Service, and when one agent stops, its
//! pods are replaced on the other and the Service keeps answering from there.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;
use slipway_client_tests::{Server, eventually};
use slipway_node_tests::{IMAGE, Node};

/// Failing over waits for the node lifecycle controller's 40 s grace first.
const FAILOVER: Duration = Duration::from_secs(120);

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}}, "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                // Leave an unreachable node at once rather than after the default 5 min.
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 0}],
                "containers": [{
                    "name": "httpd", "image": IMAGE,
                    "command": ["sh", "-c", "mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 8080 -h /www"],
                    "ports": [{"containerPort": 8080}],
                    "resources": {"requests": {"cpu": "100m", "memory": "16Mi"}},
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
                }]
            }
        }}
    }))
    .expect("a deployment")
}

/// The nodes of the Service's ready endpoints, once there are four.
async fn ready_on(endpoints: &Api<Endpoints>) -> Option<Vec<String>> {
    let e = endpoints.get_opt("api").await.ok()??;
    let nodes: Vec<String> = e
        .subsets?
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| a.node_name.clone())
        .collect();
    (nodes.len() == 4).then_some(nodes)
}

/// A client pod on `node` that asks the Service `tries` times and prints each answer.
fn client(name: &str, node: &str, tries: u32) -> Pod {
    let script = format!(
        "for i in $(seq 1 {tries}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 api 80 | tail -n 1; done; echo done; sleep 3600"
    );
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "client", "image": IMAGE, "command": ["sh", "-c", script]}]}
    }))
    .expect("a pod")
}

async fn answers(pods: &Api<Pod>, name: &str) -> Vec<String> {
    let log = eventually(&format!("{name} to finish"), async || {
        let log = pods.logs(name, &LogParams::default()).await.ok()?;
        log.contains("done").then_some(log)
    })
    .await;
    log.lines()
        .filter(|l| l.starts_with("hello from"))
        .map(str::to_owned)
        .collect()
}

/// Pods and node taints, for a failure message.
async fn cluster_state(server: &Server) -> String {
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(server.client.clone());
    let mut state = String::new();
    for pod in pods
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let spec = pod.spec.unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        state.push_str(&format!(
            "\npod {} node={:?} phase={:?} deleting={} ip={:?}",
            pod.metadata.name.unwrap_or_default(),
            spec.node_name,
            status.phase,
            pod.metadata.deletion_timestamp.is_some(),
            status.pod_ip,
        ));
    }
    for node in nodes
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        state.push_str(&format!(
            "\nnode {} taints={:?}",
            node.metadata.name.unwrap_or_default(),
            node.spec
                .and_then(|s| s.taints)
                .unwrap_or_default()
                .iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect::<Vec<_>>(),
        ));
    }
    state
}

#[tokio::test(flavor = "multi_thread")]
async fn two_agents_share_the_pods_and_a_stopped_agents_pods_are_replaced() {
    let server = Server::start().await;
    let controllers = server.run_controllers();
    let scheduler = server.run_scheduler();
    let a = Node::start(&server, "share-a").await;
    let mut b = Node::start(&server, "share-b").await;
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(server.client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(server.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("a service");
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("create the service");
    deployments
        .create(&PostParams::default(), &deployment())
        .await
        .expect("create the deployment");

    let nodes = eventually("four ready endpoints", async || ready_on(&endpoints).await).await;
    let spread: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
    assert_eq!(
        spread,
        BTreeSet::from(["share-a", "share-b"]),
        "both nodes run pods: {nodes:?}"
    );
    pods.create(&PostParams::default(), &client("before", "share-a", 8))
        .await
        .expect("create a client");
    let before: BTreeSet<String> = answers(&pods, "before").await.into_iter().collect();
    assert!(
        before.len() >= 2,
        "requests from one pod are spread over several: {before:?}"
    );

    b.stop_agent().await;
    let deadline = tokio::time::Instant::now() + FAILOVER;
    loop {
        if let Some(nodes) = ready_on(&endpoints).await
            && nodes.iter().all(|n| n == "share-a")
        {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "the stopped node's pods were never replaced: {}",
                cluster_state(&server).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    pods.create(&PostParams::default(), &client("after", "share-a", 4))
        .await
        .expect("create a client");
    let after = answers(&pods, "after").await;
    assert_eq!(
        after.len(),
        4,
        "every request after the failover is answered: {after:?}"
    );

    a.stop().await;
    b.stop().await;
    scheduler.stop().await;
    controllers.stop().await;
}
