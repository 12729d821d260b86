//! The ResourceQuota controller, run as it runs in `slipway server`, against a real API
//! server: a quota made after its namespace filled up counts what was already there, and
//! follows deletions.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use slipway_client_tests::{Server, eventually};

async fn used(quotas: &Api<ResourceQuota>, name: &str) -> Vec<(String, String)> {
    let quota = quotas.get(name).await.unwrap();
    quota
        .status
        .and_then(|s| s.used)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

async fn until_used(quotas: &Api<ResourceQuota>, name: &str, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    eventually(&format!("counted {want:?}"), async || {
        (used(quotas, name).await == want).then_some(())
    })
    .await;
}

#[tokio::test]
async fn quotas_count_what_was_there_before_them() {
    let server = Server::start().await;
    let controllers = server.run_controllers();
    let configmaps: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    for name in ["a", "b", "c"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        configmaps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "web:1",
                                 "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m"}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let quotas: Api<ResourceQuota> = Api::namespaced(server.client.clone(), "default");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "team"},
        "spec": {"hard": {"configmaps": "10", "pods": "5", "requests.cpu": "2", "count/deployments.apps": "3"}}
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    until_used(
        &quotas,
        "team",
        &[
            ("configmaps", "3"),
            ("count/deployments.apps", "0"),
            ("pods", "1"),
            ("requests.cpu", "250m"),
        ],
    )
    .await;

    configmaps
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    until_used(
        &quotas,
        "team",
        &[
            ("configmaps", "2"),
            ("count/deployments.apps", "0"),
            ("pods", "0"),
            ("requests.cpu", "0"),
        ],
    )
    .await;

    controllers.stop().await;
}
