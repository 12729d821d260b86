//! The namespace controller, run as it runs in `slipway server`, against a real API server:
//! deleting a namespace empties it, reports what holds it up, then removes it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use slipway_client_tests::{Server, eventually, eventually_gone};

#[tokio::test]
async fn deleting_a_namespace_empties_it_then_removes_it() {
    let server = Server::start().await;
    let controllers = server.run_controllers();
    let namespaces: Api<Namespace> = Api::all(server.client.clone());
    let team = Namespace {
        metadata: ObjectMeta {
            name: Some("team".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &team)
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(server.client.clone(), "team");
    for i in 0..50 {
        let finalizers = (i == 0).then(|| vec!["example.com/hold".to_owned()]);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("c{i}")),
                finalizers,
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        configmaps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), "team");
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();

    // Everything goes but the held object, and the conditions say what holds the namespace.
    let message = eventually("reported the finalizer holding the namespace", async || {
        let ns = namespaces.get("team").await.unwrap();
        let conditions = ns.status?.conditions?;
        conditions
            .iter()
            .find(|c| c.type_ == "NamespaceFinalizersRemaining" && c.status == "True")
            .and_then(|c| c.message.clone())
    })
    .await;
    assert_eq!(
        message,
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    let left = configmaps.list(&Default::default()).await.unwrap();
    assert_eq!(left.items.len(), 1, "only the held configmap is left");
    assert!(
        deployments
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        namespaces
            .get("team")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Terminating")
    );

    configmaps
        .patch(
            "c0",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually_gone(&namespaces, "team").await;

    controllers.stop().await;
}
