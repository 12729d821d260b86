//! The scheduler, run as it runs in `slipway server`, against a real API server and hollow
//! nodes whose kubelet reports bound pods Running: pods spread by default and pack under
//! the bin-packing profile, constraints (node selector, required affinity, taints,
//! cordons, extended resources) are kept, a pod that fits nowhere is reported as
//! Kubernetes reports it and is scheduled once a node that fits joins.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, Node, Pod, PodCondition};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use slipway_client_tests::{Server, eventually, eventually_gone};
use slipway_hollow::{HollowNodes, Options, Shape};

fn pod(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    if spec["containers"].is_null() {
        spec["containers"] = json!([{"name": "app", "image": "app:1"}]);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn requesting(cpu: &str) -> Value {
    json!({"containers": [{"name": "app", "image": "app:1",
        "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]})
}

async fn create(pods: &Api<Pod>, pod: &Pod) {
    pods.create(&PostParams::default(), pod).await.unwrap();
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone()
}

fn running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn condition(pod: &Pod, kind: &str) -> Option<PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .cloned()
}

/// Waits until every named pod is bound and Running, and says where each went.
async fn placed(pods: &Api<Pod>, names: &[&str]) -> BTreeMap<String, String> {
    eventually("the pods bound and running", async || {
        let mut placed = BTreeMap::new();
        for name in names {
            let pod = pods.get(name).await.unwrap();
            if !running(&pod) {
                return None;
            }
            placed.insert((*name).to_owned(), node_of(&pod)?);
        }
        Some(placed)
    })
    .await
}

fn counts(placed: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in placed.values() {
        *counts.entry(node.clone()).or_default() += 1;
    }
    counts
}

/// Nodes `n-0000` to `n-0002` of the default shape.
async fn three_nodes(server: &Server) -> HollowNodes {
    HollowNodes::uniform(
        server.client.clone(),
        "n",
        3,
        &Shape::default(),
        Options::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn least_allocated_spreads_pods_and_hollow_nodes_run_them() {
    let server = Server::start().await;
    let scheduler = server.run_scheduler();
    let nodes = three_nodes(&server).await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let names = ["a", "b", "c", "d", "e", "f"];
    for name in names {
        create(&pods, &pod(name, requesting("1"))).await;
    }
    let placed = placed(&pods, &names).await;
    assert_eq!(
        counts(&placed).values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{placed:?}"
    );

    // What the scheduler and the hollow kubelet wrote, as a real pair would.
    let a = pods.get("a").await.unwrap();
    assert_eq!(condition(&a, "PodScheduled").unwrap().status, "True");
    assert_eq!(condition(&a, "Ready").unwrap().status, "True");
    let status = a.status.clone().unwrap();
    assert!(status.pod_ip.unwrap().starts_with("127."));
    assert!(status.container_statuses.unwrap()[0].ready);
    let events: Api<Event> = Api::namespaced(server.client.clone(), "default");
    let scheduled = eventually("a Scheduled event", async || {
        events
            .list(&ListParams::default().fields("involvedObject.name=a"))
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Scheduled"))
    })
    .await;
    assert_eq!(
        scheduled.message.unwrap(),
        format!("Successfully assigned default/a to {}", placed["a"])
    );
    assert_eq!(
        scheduled.source.unwrap().component.as_deref(),
        Some("default-scheduler")
    );

    // A deleted pod terminates: the hollow kubelet finishes what the grace period began.
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    eventually_gone(&pods, "a").await;

    nodes.stop().await;
    scheduler.stop().await;
}

#[tokio::test]
async fn the_bin_packing_profile_packs_and_other_schedulers_pods_are_left_alone() {
    let server = Server::start().await;
    let scheduler = server.run_scheduler();
    let nodes = three_nodes(&server).await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let mut foreign = requesting("1");
    foreign["schedulerName"] = json!("someone-else");
    create(&pods, &pod("foreign", foreign)).await;
    let names = ["a", "b", "c", "d"];
    for name in names {
        let mut spec = requesting("1");
        spec["schedulerName"] = json!(slipway_scheduler::profile::BIN_PACKING);
        create(&pods, &pod(name, spec)).await;
    }
    let placed = placed(&pods, &names).await;
    assert_eq!(
        counts(&placed).values().copied().collect::<Vec<_>>(),
        [4],
        "{placed:?}"
    );
    // The scheduler saw the foreign pod first and took no notice of it.
    let foreign = pods.get("foreign").await.unwrap();
    assert_eq!(node_of(&foreign), None);
    assert_eq!(condition(&foreign, "PodScheduled"), None);

    nodes.stop().await;
    scheduler.stop().await;
}

#[tokio::test]
async fn selectors_affinity_taints_cordons_and_extended_resources_are_kept() {
    let server = Server::start().await;
    let scheduler = server.run_scheduler();
    let shape = Shape::default();
    let nodes = HollowNodes::start(
        server.client.clone(),
        [
            ("plain".to_owned(), shape.clone()),
            ("ssd".to_owned(), shape.clone().label("disk", "ssd")),
            (
                "tainted".to_owned(),
                shape.clone().taint("dedicated", "gpu", "NoSchedule"),
            ),
            ("cordoned".to_owned(), shape.clone()),
            (
                "gpu".to_owned(),
                shape.clone().resource("nvidia.com/gpu", "2"),
            ),
        ],
        Options::default(),
    )
    .await
    .unwrap();
    let node_api: Api<Node> = Api::all(server.client.clone());
    node_api
        .patch(
            "cordoned",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let named = |name: &str| {
        json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [name]}]}]}})
    };
    let cases = [
        ("selected", json!({"nodeSelector": {"disk": "ssd"}}), "ssd"),
        (
            "affine",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}]}]}}}}),
            "ssd",
        ),
        (
            "tolerant",
            json!({"affinity": {"nodeAffinity": named("tainted")},
                   "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
            "tainted",
        ),
        (
            "cordon-tolerant",
            json!({"affinity": {"nodeAffinity": named("cordoned")},
                   "tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
            "cordoned",
        ),
        (
            "gpu-user",
            json!({"containers": [{"name": "app", "image": "app:1",
                "resources": {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}}]}),
            "gpu",
        ),
    ];
    for (name, spec, _) in &cases {
        create(&pods, &pod(name, spec.clone())).await;
    }
    let names: Vec<&str> = cases.iter().map(|(name, _, _)| *name).collect();
    let placed = placed(&pods, &names).await;
    for (name, _, node) in &cases {
        assert_eq!(placed[*name], *node, "{name}");
    }

    // Only the cordoned node is named, and neither its cordon nor the other node's taint
    // is tolerated; the GPUs are all taken.
    create(
        &pods,
        &pod(
            "cordon-bound",
            json!({"affinity": {"nodeAffinity": named("cordoned")}}),
        ),
    )
    .await;
    create(
        &pods,
        &pod("gpu-hungry", json!({"containers": [{"name": "app", "image": "app:1",
            "resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}}]})),
    )
    .await;
    let cases = [
        (
            "cordon-bound",
            "0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, 3 node(s) didn't match Pod's node affinity/selector.",
        ),
        (
            "gpu-hungry",
            "0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, 3 Insufficient nvidia.com/gpu.",
        ),
    ];
    for (name, message) in cases {
        let reported = eventually("the pod reported unschedulable", async || {
            condition(&pods.get(name).await.unwrap(), "PodScheduled")
        })
        .await;
        assert_eq!(reported.message.as_deref(), Some(message), "{name}");
    }

    nodes.stop().await;
    scheduler.stop().await;
}

#[tokio::test]
async fn a_pod_that_fits_nowhere_is_reported_and_scheduled_when_a_node_joins() {
    let server = Server::start().await;
    let scheduler = server.run_scheduler();
    let nodes = HollowNodes::start(
        server.client.clone(),
        [
            ("small".to_owned(), Shape::new("1", "16Gi", 110)),
            (
                "tainted".to_owned(),
                Shape::new("4", "16Gi", 110).taint("k", "v", "NoSchedule"),
            ),
        ],
        Options::default(),
    )
    .await
    .unwrap();
    // A node with no kubelet behind it: never Ready.
    let silent: Node = serde_json::from_value(json!({"metadata": {"name": "silent"}})).unwrap();
    Api::<Node>::all(server.client.clone())
        .create(&PostParams::default(), &silent)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    create(&pods, &pod("big", requesting("2"))).await;

    let message = "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.";
    let reported = eventually("the pod reported unschedulable", async || {
        condition(&pods.get("big").await.unwrap(), "PodScheduled")
    })
    .await;
    assert_eq!(
        (
            reported.status.as_str(),
            reported.reason.as_deref(),
            reported.message.as_deref()
        ),
        ("False", Some("Unschedulable"), Some(message))
    );
    let events: Api<Event> = Api::namespaced(server.client.clone(), "default");
    let failed = eventually("a FailedScheduling event", async || {
        events
            .list(&ListParams::default().fields("involvedObject.name=big"))
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(failed.message.as_deref(), Some(message));

    // A node that fits joins; nothing else nudges the pod.
    nodes
        .join("roomy".to_owned(), Shape::new("4", "16Gi", 110))
        .await
        .unwrap();
    let placed = placed(&pods, &["big"]).await;
    assert_eq!(placed["big"], "roomy");
    let big = pods.get("big").await.unwrap();
    assert_eq!(condition(&big, "PodScheduled").unwrap().status, "True");
    assert!(
        big.metadata.deletion_timestamp.is_none(),
        "{}",
        big.name_any()
    );

    nodes.stop().await;
    scheduler.stop().await;
}
