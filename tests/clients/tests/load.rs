//! A bounded load test: 100 concurrent kube-rs clients on loopback, each creating,
//! reading, patching, listing and deleting its own objects while all of them fight over
//! one shared object. The only errors allowed are the designed ones: 409 for a stale write.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Error};
use serde_json::json;
use slipway_client_tests::Server;

const CLIENTS: usize = 100;
const ROUNDS: usize = 5;

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"load": "yes"}}, "data": {"n": "0"}}),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clients_see_only_designed_errors() {
    let server = Server::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    api.create(&PostParams::default(), &configmap("shared"))
        .await
        .unwrap();

    let clients = (0..CLIENTS).map(|c| {
        let api = api.clone();
        tokio::spawn(async move {
            let mut conflicts = 0;
            for round in 0..ROUNDS {
                let name = format!("c{c}-r{round}");
                api.create(&PostParams::default(), &configmap(&name))
                    .await?;
                let got = api.get(&name).await?;
                assert_eq!(got.metadata.name.as_deref(), Some(name.as_str()));
                let patch = json!({"data": {"n": round.to_string()}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                api.list(&ListParams::default().labels("load=yes").limit(50))
                    .await?;
                // Everyone replaces the shared object from what they read: most lose the
                // race, and losing must be a 409, nothing else.
                let mut shared = api.get("shared").await?;
                shared
                    .data
                    .get_or_insert_default()
                    .insert("by".into(), format!("c{c}"));
                match api.replace("shared", &PostParams::default(), &shared).await {
                    Ok(_) => {}
                    Err(Error::Api(status)) if status.code == 409 => conflicts += 1,
                    Err(e) => return Err(e),
                }
                api.delete(&name, &DeleteParams::default()).await?;
            }
            Ok::<usize, Error>(conflicts)
        })
    });
    let mut conflicts = 0;
    for client in clients {
        let result = tokio::time::timeout(Duration::from_secs(120), client)
            .await
            .expect("a client did not finish in time")
            .unwrap();
        conflicts += result.unwrap_or_else(|e| panic!("an undesigned error: {e}"));
    }
    assert!(conflicts < CLIENTS * ROUNDS, "every shared write lost");
    let left = api
        .list(&ListParams::default().labels("load=yes"))
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1, "only the shared object remains");
}
