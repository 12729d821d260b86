//! Sets the demo up through the API as an administrator, idempotently, so a second `up`
//! on the same data directory finds everything in place: the squad, the app's image on
//! the node, the app and its Ingress in the squad's namespace, and the repository.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::github::{DemoGitHub, NAME, OWNER};
use crate::manifests;

/// The demo squad, and its namespace.
pub const SQUAD: &str = "demo";

/// The host the gateway serves the squad's front end at.
pub const HOST: &str = "demo.localhost";

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(250);

/// How many times a transient failure (the API busy or unavailable) is tried again.
const ATTEMPTS: u32 = 30;

/// Sets the demo up; the squad's front end is then served at [`HOST`] by the gateway.
/// Returns when everything is applied, or with `Error::Cancelled` when `shutdown` is.
/// Every step is idempotent, so a transient failure starts it over after a pause.
pub async fn set_up(
    client: &kube::Client,
    demo: &DemoGitHub,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let mut attempt = 1;
    loop {
        match set_up_once(client, demo, shutdown).await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tracing::debug!(attempt, "setting the demo up, again soon: {e}");
                attempt += 1;
                for _ in 0..4 {
                    pause(shutdown).await?;
                }
            }
            result => return result,
        }
    }
}

async fn set_up_once(
    client: &kube::Client,
    demo: &DemoGitHub,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    post(client, "/slipway/v1/squads", &json!({ "name": SQUAD })).await?;
    wait_for_a_node(client, shutdown).await?;
    import_image(client, shutdown).await?;
    let manifests = format!(
        "{}---\n{}",
        manifests::app("hello from the demo squad", "main"),
        manifests::ingress(HOST)
    );
    apply(client, SQUAD, &manifests).await?;
    post(
        client,
        &format!("/slipway/v1/squads/{SQUAD}/repos"),
        &json!({
            "owner": OWNER,
            "name": NAME,
            "webhookSecret": demo.webhook_secret(),
            "access": { "token": demo.token() },
        }),
    )
    .await
}

/// Waits until both Deployments of the squad's app have an available replica.
pub async fn wait_until_available(
    client: &kube::Client,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let api = Api::<Deployment>::namespaced(client.clone(), SQUAD);
    loop {
        let mut available = 0;
        for name in [manifests::API, manifests::WEB] {
            let deployment = match api.get_opt(name).await.map_err(Error::from) {
                Ok(deployment) => deployment,
                Err(e) if e.is_transient() => None,
                Err(e) => return Err(e),
            };
            if deployment
                .and_then(|d| d.status)
                .and_then(|s| s.available_replicas)
                .is_some_and(|n| n > 0)
            {
                available += 1;
            }
        }
        if available == 2 {
            return Ok(());
        }
        pause(shutdown).await?;
    }
}

async fn pause(shutdown: &CancellationToken) -> Result<(), Error> {
    tokio::select! {
        () = shutdown.cancelled() => Err(Error::Cancelled),
        () = tokio::time::sleep(POLL) => Ok(()),
    }
}

/// POSTs `body`; one that exists already is as good as created.
async fn post(client: &kube::Client, path: &str, body: &Value) -> Result<(), Error> {
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string().into_bytes())
        .map_err(|e| Error::Request(e.to_string()))?;
    match client.request_text(request).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn wait_for_a_node(client: &kube::Client, shutdown: &CancellationToken) -> Result<(), Error> {
    let nodes = Api::<Node>::all(client.clone());
    loop {
        let ready = nodes
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .any(|node| {
                node.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
        if ready {
            return Ok(());
        }
        pause(shutdown).await?;
    }
}

/// Packs the app and imports it into every node; a node still starting is waited for.
async fn import_image(client: &kube::Client, shutdown: &CancellationToken) -> Result<(), Error> {
    let archive = crate::image::archive(manifests::IMAGE, crate::APP_BINARY)
        .map_err(|e| Error::Request(format!("packing the demo image: {e}")))?;
    let mut attempts = 0;
    loop {
        let request = http::Request::post("/slipway/v1/images")
            .header(http::header::CONTENT_TYPE, "application/x-tar")
            .body(archive.clone())
            .map_err(|e| Error::Request(e.to_string()))?;
        match client.request_text(request).await {
            Ok(_) => return Ok(()),
            Err(e) if attempts < 40 => {
                tracing::debug!("importing the demo image, again soon: {e}");
                attempts += 1;
                pause(shutdown).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Server-side applies each document of `manifests` in `namespace`, as previews apply a
/// repository's manifests.
async fn apply(client: &kube::Client, namespace: &str, manifests: &str) -> Result<(), Error> {
    let mut objects = Vec::new();
    for document in manifests.split("---\n") {
        let mut object: Value =
            serde_yaml_ng::from_str(document).map_err(|e| Error::Request(e.to_string()))?;
        object["metadata"]["namespace"] = json!(namespace);
        let what = format!(
            "{} {}",
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        objects.push((what, object));
    }
    slipway_previews::cluster::apply(client, namespace, &objects, &[]).await?;
    Ok(())
}
