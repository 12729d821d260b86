//! The Endpoints controller, run as it runs in `slipway server`, against a real API server:
//! a Service's endpoints follow its pods' addresses and readiness, and go with the Service.

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use slipway_client_tests::{Server, eventually, eventually_gone};

/// What a node agent would report for a pod: its IP and readiness.
async fn report(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {"phase": "Running", "podIP": ip,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

#[tokio::test]
async fn endpoints_follow_pods_and_their_service() {
    let server = Server::start().await;
    let controllers = server.run_controllers();
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(server.client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(server.client.clone(), "default");
    for name in ["a", "b"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "web:1",
                     "ports": [{"name": "http", "containerPort": 8080}]}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    report(&pods, "a", "10.1.0.1", true).await;
    report(&pods, "b", "10.1.0.2", false).await;

    let listed = |ready: &'static [&'static str], not_ready: &'static [&'static str]| {
        let endpoints = endpoints.clone();
        async move || {
            let subset = endpoints
                .get_opt("web")
                .await
                .unwrap()?
                .subsets?
                .into_iter()
                .next()?;
            let ips = |list: Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
                list.unwrap_or_default()
                    .into_iter()
                    .map(|a| a.ip)
                    .collect::<Vec<_>>()
            };
            let port = subset.ports.as_ref()?.first()?.port;
            (port == 8080
                && ips(subset.addresses) == ready
                && ips(subset.not_ready_addresses) == not_ready)
                .then_some(())
        }
    };
    eventually(
        "one ready and one unready address",
        listed(&["10.1.0.1"], &["10.1.0.2"]),
    )
    .await;
    report(&pods, "b", "10.1.0.2", true).await;
    eventually(
        "both addresses ready",
        listed(&["10.1.0.1", "10.1.0.2"], &[]),
    )
    .await;
    pods.delete(
        "a",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    eventually(
        "the deleted pod gone from the endpoints",
        listed(&["10.1.0.2"], &[]),
    )
    .await;

    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually_gone(&endpoints, "web").await;

    controllers.stop().await;
}
