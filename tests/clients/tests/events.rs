//! Events against a real API server: the controllers' recorder folds repeats into one
//! Event, and the server binds every Event to a lease so it expires, across updates too.

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::Api;
use kube::api::ListParams;
use slipway_client_tests::Server;
use slipway_controllers::events::{Kind, Recorder};

#[tokio::test]
async fn repeats_fold_and_events_expire_with_their_lease() {
    let server = Server::start().await;
    let recorder = Recorder::new(server.client.clone(), "test-controller");
    let subject = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("web".into()),
        namespace: Some("default".into()),
        uid: Some("uid-web".into()),
        ..ObjectReference::default()
    };
    recorder
        .record(&subject, Kind::Warning, "Broken", "it broke")
        .await;
    recorder
        .record(&subject, Kind::Warning, "Broken", "it broke")
        .await;
    recorder
        .record(&subject, Kind::Normal, "Fixed", "it works")
        .await;

    let events: Api<Event> = Api::namespaced(server.client.clone(), "default");
    let listed = events
        .list(&ListParams::default().fields("involvedObject.name=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let broken = listed
        .iter()
        .find(|e| e.reason.as_deref() == Some("Broken"))
        .unwrap();
    assert_eq!(broken.count, Some(2));
    assert_eq!(broken.type_.as_deref(), Some("Warning"));
    assert!(broken.last_timestamp >= broken.first_timestamp);
    assert_eq!(
        broken.source.as_ref().unwrap().component.as_deref(),
        Some("test-controller")
    );

    // Bound to a lease, kept through the count update; ending the lease ends the Event.
    let key = format!(
        "/registry/core/events/default/{}",
        broken.metadata.name.as_deref().unwrap()
    );
    let stored = server.store.get(&key, None).await.unwrap().expect("stored");
    let lease = stored.lease.expect("an Event is bound to a lease");
    server.store.revoke_lease(lease).await.unwrap();
    let left = events
        .list(&ListParams::default().fields("involvedObject.name=web"))
        .await
        .unwrap()
        .items;
    assert!(
        left.is_empty(),
        "both Events shared the lease and went with it: {left:?}"
    );
}
