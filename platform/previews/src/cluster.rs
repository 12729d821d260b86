//! What a preview is in the cluster: its namespace (made like a squad namespace, with the
//! squad's preview quota), its objects applied and pruned with the squad's own rights, the
//! Ingress that gives it its URL, and how its rollout is going.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use slipway_platform_db::{Applied, Squad};

/// The field manager of everything a preview applies.
pub const FIELD_MANAGER: &str = "slipway-preview";
/// The label on a preview namespace, and on every object it applies: the namespace's name.
pub const PREVIEW_LABEL: &str = "slipway.dev/preview";
/// The Ingress that routes a preview's host to its exposed Service.
pub const INGRESS_NAME: &str = "slipway-preview";

/// Why a cluster step failed: the change's fault (reported on the PR, not retried) or the
/// platform's (retried).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The manifests ask for something the cluster refuses (invalid, forbidden, unknown).
    #[error("{0}")]
    Refused(String),
    /// The API failed or could not be reached.
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

fn refused_or_failed(what: &str, e: kube::Error) -> ClusterError {
    match &e {
        kube::Error::Api(status) if (400..500).contains(&status.code) && status.code != 429 => {
            ClusterError::Refused(format!("{what}: {}", status.message))
        }
        _ => ClusterError::Api(e),
    }
}

/// Makes (or keeps) the preview's namespace: labelled with the squad, repository, pull
/// request, commit and expiry; the squad's preview quota, its LimitRange defaults and its
/// RoleBinding.
pub async fn ensure_namespace(
    platform: &Client,
    squad: &Squad,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> kube::Result<()> {
    let mut labels = labels.clone();
    labels.insert(PREVIEW_LABEL.to_owned(), namespace.to_owned());
    slipway_tenancy::apply_tenant_namespace(
        platform,
        &squad.name,
        namespace,
        &labels,
        &squad.previews.quota.hard,
        &squad.limits,
    )
    .await
}

/// The label on a preview namespace saying when it expires (Unix seconds), or `pinned`.
pub const EXPIRES_LABEL: &str = "slipway.dev/expires-at";

/// The value of [`EXPIRES_LABEL`].
pub fn expires_label(expires: Option<jiff::Timestamp>, pinned: bool) -> String {
    match (pinned, expires) {
        (true, _) | (false, None) => "pinned".to_owned(),
        (false, Some(at)) => at.as_second().to_string(),
    }
}

/// Relabels a preview namespace with its expiry; one already gone is fine.
pub async fn label_expiry(platform: &Client, namespace: &str, value: &str) -> kube::Result<()> {
    let patch = json!({ "metadata": { "labels": { EXPIRES_LABEL: value } } });
    match Api::<k8s_openapi::api::core::v1::Namespace>::all(platform.clone())
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Waits, bounded, until `client` may create Deployments in `namespace`: the RoleBinding
/// just applied reaches the API server's authorizer a moment after it is written.
pub async fn wait_for_access(client: &Client, namespace: &str) -> kube::Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some("create".to_owned()),
                group: Some("apps".to_owned()),
                resource: Some("deployments".to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api = Api::<SelfSubjectAccessReview>::all(client.clone());
    for _ in 0..100 {
        let answer = api.create(&PostParams::default(), &review).await?;
        if answer.status.is_some_and(|s| s.allowed) {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(false)
}

fn gvk_of(object: &Value) -> Option<GroupVersionKind> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Some(GroupVersionKind::gvk(group, version, kind))
}

async fn namespaced_api(
    client: &Client,
    namespace: &str,
    gvk: &GroupVersionKind,
    what: &str,
) -> Result<Api<DynamicObject>, ClusterError> {
    let (resource, capabilities) =
        kube::discovery::pinned_kind(client, gvk)
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) if status.code == 404 => ClusterError::Refused(format!(
                    "{what}: the cluster does not serve {}/{} {}",
                    gvk.group, gvk.version, gvk.kind
                )),
                e => refused_or_failed(what, e),
            })?;
    if capabilities.scope != Scope::Namespaced {
        return Err(ClusterError::Refused(format!(
            "{what}: {} is cluster-scoped; a preview may only create objects in its own namespace",
            gvk.kind
        )));
    }
    Ok(Api::namespaced_with(client.clone(), namespace, &resource))
}

/// Applies `objects` (each already in `namespace`) by server-side apply as `client`, then
/// deletes what `previous` applied and `objects` no longer has. Answers what is applied now.
pub async fn apply(
    client: &Client,
    namespace: &str,
    objects: &[(String, Value)],
    previous: &[Applied],
) -> Result<Vec<Applied>, ClusterError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    for (what, object) in objects {
        let gvk = gvk_of(object)
            .ok_or_else(|| ClusterError::Refused(format!("{what}: no apiVersion or kind")))?;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let api = namespaced_api(client, namespace, &gvk, what).await?;
        api.patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| refused_or_failed(what, e))?;
        applied.push(Applied {
            api_version: object["apiVersion"].as_str().unwrap_or_default().to_owned(),
            kind: gvk.kind.clone(),
            name,
        });
    }
    applied.sort();
    applied.dedup();
    for gone in previous.iter().filter(|p| !applied.contains(p)) {
        let Some(gvk) = gvk_of(&json!({ "apiVersion": gone.api_version, "kind": gone.kind }))
        else {
            continue;
        };
        let what = format!("pruning {} {}", gone.kind, gone.name);
        let api = match namespaced_api(client, namespace, &gvk, &what).await {
            Ok(api) => api,
            // A kind the cluster no longer serves has nothing left to prune.
            Err(ClusterError::Refused(_)) => continue,
            Err(e) => return Err(e),
        };
        match api.delete(&gone.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(applied)
}

/// The Ingress that routes `host` to the exposed Service and port.
pub fn ingress(namespace: &str, host: &str, service: &str, port: u16) -> (String, Value) {
    (
        format!("Ingress {INGRESS_NAME}"),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": INGRESS_NAME,
                "namespace": namespace,
                "labels": { PREVIEW_LABEL: namespace },
                // The gateway reports requests for it and holds them while it wakes.
                "annotations": { WAKE_ANNOTATION: "true" },
            },
            "spec": { "rules": [{
                "host": host,
                "http": { "paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": { "service": { "name": service, "port": { "number": port } } },
                }]},
            }]},
        }),
    )
}

/// The annotation the gateway reads (`slipway_gateway::WAKE_ANNOTATION`), spelled here so
/// the platform does not depend on the gateway.
const WAKE_ANNOTATION: &str = "slipway.dev/wake";

/// The annotation a sleeping Deployment keeps its replicas in.
pub const REPLICAS_ANNOTATION: &str = "slipway.dev/replicas";

/// Scales every Deployment of the namespace to zero, keeping its replicas in an annotation.
pub async fn sleep(client: &Client, namespace: &str) -> kube::Result<()> {
    let api = Api::<Deployment>::namespaced(client.clone(), namespace);
    for deployment in api.list(&ListParams::default()).await?.items {
        let replicas = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        if replicas == 0 {
            continue;
        }
        let patch = json!({
            "metadata": { "annotations": { REPLICAS_ANNOTATION: replicas.to_string() } },
            "spec": { "replicas": 0 },
        });
        api.patch(
            &deployment.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

/// Scales every Deployment put to sleep back to its replicas.
pub async fn wake(client: &Client, namespace: &str) -> kube::Result<()> {
    let api = Api::<Deployment>::namespaced(client.clone(), namespace);
    for deployment in api.list(&ListParams::default()).await?.items {
        let Some(replicas) = deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REPLICAS_ANNOTATION))
            .and_then(|r| r.parse::<i32>().ok())
        else {
            continue;
        };
        let patch = json!({
            "metadata": { "annotations": { REPLICAS_ANNOTATION: null } },
            "spec": { "replicas": replicas },
        });
        api.patch(
            &deployment.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

/// How a preview's rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Every Deployment has its updated replicas available.
    Available,
    /// Still going; how many Deployments are done of how many.
    Progressing {
        /// Done.
        ready: usize,
        /// All.
        total: usize,
    },
    /// A Deployment gave up (its progress deadline passed).
    Failed(String),
}

/// Reads the rollout of every Deployment in the namespace, as `kubectl rollout status` does.
pub async fn rollout(client: &Client, namespace: &str) -> kube::Result<Rollout> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let total = deployments.len();
    let mut ready = 0;
    for deployment in &deployments {
        let generation = deployment.metadata.generation.unwrap_or(0);
        let wanted = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let Some(status) = &deployment.status else {
            continue;
        };
        let stalled = status.conditions.iter().flatten().find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        if let Some(condition) = stalled {
            return Ok(Rollout::Failed(format!(
                "deployment {:?} exceeded its progress deadline: {}",
                deployment.name_any(),
                condition.message.clone().unwrap_or_default()
            )));
        }
        let done = status.observed_generation.unwrap_or(0) >= generation
            && status.updated_replicas.unwrap_or(0) == wanted
            && status.replicas.unwrap_or(0) == wanted
            && status.available_replicas.unwrap_or(0) == wanted;
        if done {
            ready += 1;
        }
    }
    Ok(if ready == total {
        Rollout::Available
    } else {
        Rollout::Progressing { ready, total }
    })
}

/// Why pods are not ready, in a few lines: waiting containers' reasons and the namespace's
/// latest warning events.
pub async fn diagnosis(client: &Client, namespace: &str) -> kube::Result<String> {
    let mut lines = Vec::new();
    for pod in Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items
    {
        for container in pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                lines.push(format!(
                    "pod {} container {}: {} {}",
                    pod.name_any(),
                    container.name,
                    waiting.reason.clone().unwrap_or_default(),
                    waiting.message.clone().unwrap_or_default()
                ));
            }
        }
    }
    let mut events: Vec<Event> = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect();
    events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
    for event in events.iter().rev().take(5).rev() {
        lines.push(format!(
            "event {} {}: {}",
            event.involved_object.name.clone().unwrap_or_default(),
            event.reason.clone().unwrap_or_default(),
            event.message.clone().unwrap_or_default()
        ));
    }
    Ok(lines.join("\n"))
}

/// Deletes a preview's namespace if it is still the squad's; one already gone is fine.
pub async fn delete_namespace(platform: &Client, squad: &str, namespace: &str) -> kube::Result<()> {
    slipway_tenancy::delete_tenant_namespace(platform, squad, namespace).await
}
