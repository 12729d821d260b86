//! The garbage collector, run as it runs in `slipway server`, against a real API server:
//! background, orphan and foreground cascades, and owners that never existed.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use slipway_client_tests::{Server, eventually};

async fn create(
    api: &Api<ConfigMap>,
    name: &str,
    owners: Vec<OwnerReference>,
    finalizers: &[&str],
) -> ConfigMap {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: Some(owners),
            finalizers: Some(finalizers.iter().map(|f| (*f).to_owned()).collect()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    api.create(&PostParams::default(), &cm).await.unwrap()
}

fn owned_by(owner: &ConfigMap, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.metadata.name.clone().unwrap(),
        uid: owner.metadata.uid.clone().unwrap(),
        controller: None,
        block_owner_deletion: block.then_some(true),
    }
}

/// Waits until `check` holds for the named object (`None` when it is gone).
async fn until(
    api: &Api<ConfigMap>,
    name: &str,
    what: &str,
    check: impl Fn(Option<&ConfigMap>) -> bool,
) {
    eventually(&format!("{name}: {what}"), async || {
        let current = api.get_opt(name).await.unwrap();
        check(current.as_ref()).then_some(())
    })
    .await;
}

fn delete_with(policy: PropagationPolicy) -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(policy),
        ..DeleteParams::default()
    }
}

#[tokio::test]
async fn cascades_background_orphan_and_foreground() {
    let server = Server::start().await;
    let controllers = server.run_controllers();
    let api: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");

    // Background: the owner goes at once, its dependents after it.
    let owner = create(&api, "owner", vec![], &[]).await;
    create(&api, "dep-a", vec![owned_by(&owner, false)], &[]).await;
    create(&api, "dep-b", vec![owned_by(&owner, true)], &[]).await;
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    for dep in ["dep-a", "dep-b"] {
        until(&api, dep, "deleted", |cm| cm.is_none()).await;
    }

    // Orphan: the dependent stays, without its reference; then the owner goes.
    let owner = create(&api, "parent", vec![], &[]).await;
    create(&api, "kept", vec![owned_by(&owner, true)], &[]).await;
    api.delete("parent", &delete_with(PropagationPolicy::Orphan))
        .await
        .unwrap();
    until(&api, "parent", "deleted", |cm| cm.is_none()).await;
    let kept = api.get("kept").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    // Foreground: the owner waits for a blocking dependent held by its own finalizer.
    let owner = create(&api, "front", vec![], &[]).await;
    create(
        &api,
        "held",
        vec![owned_by(&owner, true)],
        &["example.com/hold"],
    )
    .await;
    api.delete("front", &delete_with(PropagationPolicy::Foreground))
        .await
        .unwrap();
    until(&api, "held", "marked for deletion", |cm| {
        cm.is_some_and(|cm| cm.metadata.deletion_timestamp.is_some())
    })
    .await;
    let front = api.get("front").await.unwrap();
    assert!(front.metadata.deletion_timestamp.is_some());
    assert_eq!(
        front.metadata.finalizers.unwrap_or_default(),
        ["foregroundDeletion"]
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    until(&api, "held", "deleted", |cm| cm.is_none()).await;
    until(&api, "front", "deleted", |cm| cm.is_none()).await;

    // An owner that never existed: the dependent is collected; one of two missing owners
    // is only dropped from the references.
    let ghost = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "ghost".into(),
        uid: "00000000-0000-0000-0000-000000000000".into(),
        controller: None,
        block_owner_deletion: None,
    };
    create(&api, "haunted", vec![ghost.clone()], &[]).await;
    let alive = create(&api, "alive", vec![], &[]).await;
    create(&api, "half", vec![owned_by(&alive, false), ghost], &[]).await;
    until(&api, "haunted", "deleted", |cm| cm.is_none()).await;
    until(&api, "half", "left with its live owner only", |cm| {
        cm.and_then(|cm| cm.metadata.owner_references.clone())
            .is_some_and(|refs| refs.len() == 1 && refs[0].name == "alive")
    })
    .await;

    controllers.stop().await;
}
