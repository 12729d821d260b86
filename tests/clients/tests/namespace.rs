//! The namespace controller, run as it runs in `slipway server`, against a real API server:
//! deleting a namespace of 200 objects empties it, reports what holds it up, then removes
//! it and leaves nothing behind.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
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
    // 200 objects in all: 180 ConfigMaps, 12 Secrets, 4 Services and a Deployment whose
    // ReplicaSet and 2 pods the controllers make.
    for i in 0..180 {
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
    let secrets: Api<Secret> = Api::namespaced(server.client.clone(), "team");
    for i in 0..12 {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("s{i}")}, "stringData": {"key": "value"}
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    let services: Api<Service> = Api::namespaced(server.client.clone(), "team");
    for i in 0..4 {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": format!("svc{i}")},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
        }))
        .unwrap();
        services
            .create(&PostParams::default(), &service)
            .await
            .unwrap();
    }
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), "team");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "team");
    eventually("the deployment's pods", async || {
        (pods.list(&ListParams::default()).await.unwrap().items.len() == 2).then_some(())
    })
    .await;

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
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually_gone(&namespaces, "team").await;
    // Nothing of it is left behind, of any kind.
    let sets: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "team");
    let endpoints: Api<Endpoints> = Api::namespaced(server.client.clone(), "team");
    let lp = ListParams::default();
    assert!(configmaps.list(&lp).await.unwrap().items.is_empty());
    assert!(secrets.list(&lp).await.unwrap().items.is_empty());
    assert!(services.list(&lp).await.unwrap().items.is_empty());
    assert!(endpoints.list(&lp).await.unwrap().items.is_empty());
    assert!(deployments.list(&lp).await.unwrap().items.is_empty());
    assert!(sets.list(&lp).await.unwrap().items.is_empty());
    assert!(pods.list(&lp).await.unwrap().items.is_empty());

    controllers.stop().await;
}
