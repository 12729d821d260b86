//! A service's page (one Deployment): rollout history, pods, the last log lines of each
//! container, events, the URLs that expose it; and its actions: scale, restart, roll back
//! (kubectl's way: the chosen ReplicaSet's pod template copied back).

use std::collections::HashSet;

use askama::Template;
use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::header;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::json;

use crate::api;
use crate::page::{Chrome, Ctx, Page, PageError, Query, done, render};
use crate::platform::{List, Preview, Squad};
use crate::view::{self, DeploymentRow, EventRow, Exposure, Gateway};

/// The annotation that numbers a ReplicaSet in its Deployment's history.
const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label the deployment controller adds to each template; not part of a rollback.
const TEMPLATE_HASH: &str = "pod-template-hash";
/// Pods whose logs the page shows; the rest are a click away.
const LOGGED_PODS: usize = 3;
/// Lines of each container's log on the page.
const PAGE_LINES: i64 = 20;
/// Lines the follow endpoint returns.
const FOLLOW_LINES: i64 = 100;
const MAX_REPLICAS: i32 = 1000;

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    chrome: Option<Chrome>,
    squad: String,
    base: String,
    row: DeploymentRow,
    history: Vec<Revision>,
    pods: Vec<PodRow>,
    logs: Vec<LogTail>,
    events: Vec<EventRow>,
    addresses: Vec<String>,
    notice: Option<&'static str>,
}

struct Revision {
    number: String,
    replica_set: String,
    image: String,
    replicas: i32,
    age: String,
    current: bool,
}

struct PodRow {
    name: String,
    phase: String,
    ready: String,
    restarts: i32,
    node: String,
    age: String,
}

struct LogTail {
    pod: String,
    container: String,
    text: String,
    /// The follow endpoint's URL.
    follow: String,
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Done {
    done: String,
}

/// Fails unless `namespace` is one of `squad`'s: its own or one of its previews'.
async fn check_namespace(ctx: &Ctx, squad: &str, namespace: &str) -> Result<(), PageError> {
    let (record, previews) = futures::try_join!(
        ctx.get::<Squad>(api::path(&["squads", squad])),
        ctx.get::<List<Preview>>(api::path(&["previews"])),
    )?;
    let owned = record.namespaces.iter().any(|n| n == namespace)
        || previews
            .items
            .iter()
            .any(|p| p.squad == squad && p.namespace == namespace);
    if owned {
        Ok(())
    } else {
        Err(PageError::NotFound(format!(
            "Namespace {namespace} is not squad {squad}'s."
        )))
    }
}

/// `a=1,b=2`: the Deployment's selector, for listing its ReplicaSets and pods.
fn selector(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn owned_by(rs: &ReplicaSet, d: &Deployment) -> bool {
    let uid = d.metadata.uid.as_deref();
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Deployment" && Some(o.uid.as_str()) == uid)
}

fn revision_of(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .map(String::as_str)
}

/// The Deployment's ReplicaSets, newest revision first.
async fn history(ctx: &Ctx, namespace: &str, d: &Deployment) -> Result<Vec<ReplicaSet>, PageError> {
    let selected = ListParams::default().labels(&selector(d));
    let list = ctx.list_in::<ReplicaSet>(namespace, &selected).await?;
    let mut owned: Vec<ReplicaSet> = list.into_iter().filter(|rs| owned_by(rs, d)).collect();
    owned.sort_by_key(|rs| {
        std::cmp::Reverse(
            revision_of(rs)
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(0),
        )
    });
    Ok(owned)
}

fn service_path(squad: &str, namespace: &str, name: &str) -> String {
    format!(
        "/squads/{}/services/{}/{}",
        api::encode(squad),
        api::encode(namespace),
        api::encode(name)
    )
}

pub(crate) async fn page(
    ctx: Ctx,
    Path((squad, namespace, name)): Path<(String, String, String)>,
    Query(done): Query<Done>,
) -> Page {
    check_namespace(&ctx, &squad, &namespace).await?;
    let client = &ctx.client;
    let deployment = ctx
        .call(kube::Api::<Deployment>::namespaced(client.clone(), &namespace).get(&name))
        .await?;
    let lp = ListParams::default();
    let selected = ListParams::default().labels(&selector(&deployment));
    let pods_api = kube::Api::<Pod>::namespaced(client.clone(), &namespace);
    let (replica_sets, pods, events, services, ingresses) = futures::try_join!(
        history(&ctx, &namespace, &deployment),
        ctx.list_in::<Pod>(&namespace, &selected),
        ctx.list_in::<Event>(&namespace, &lp),
        ctx.list_in::<Service>(&namespace, &lp),
        ctx.list_in::<Ingress>(&namespace, &lp),
    )?;
    let now = ctx.now();
    let base = service_path(&squad, &namespace, &name);

    let exposure = Exposure {
        services: &services,
        ingresses: &ingresses,
    };
    let exposing = exposure.services_of(&deployment);
    let gateway = Gateway::parse(ctx.inner.options.gateway.as_deref());
    let urls = exposure.urls(&exposing, &gateway);
    let addresses = exposing
        .iter()
        .flat_map(|s| {
            let svc = s.metadata.name.clone().unwrap_or_default();
            let ports: Vec<i32> = s
                .spec
                .iter()
                .flat_map(|spec| spec.ports.iter().flatten())
                .map(|p| p.port)
                .collect();
            let namespace = &namespace;
            ports
                .into_iter()
                .map(move |port| format!("{svc}.{namespace}.svc:{port}"))
        })
        .collect();
    let row = view::deployment_row(&deployment, now, urls);

    let current = deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .cloned();
    let history = replica_sets
        .iter()
        .map(|rs| {
            let number = revision_of(rs).unwrap_or("?").to_owned();
            Revision {
                current: current.as_deref() == Some(number.as_str()),
                number,
                replica_set: rs.metadata.name.clone().unwrap_or_default(),
                image: rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.spec.as_ref())
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default(),
                replicas: rs.status.as_ref().map_or(0, |s| s.replicas),
                age: view::age(now, view::time(rs.metadata.creation_timestamp.as_ref())),
            }
        })
        .collect();

    let pod_rows: Vec<PodRow> = pods.iter().map(|p| pod_row(p, now)).collect();
    let mut logs = Vec::new();
    for pod in pods.iter().take(LOGGED_PODS) {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let containers: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .map(|c| c.name.clone())
            .collect();
        for container in containers {
            let params = LogParams {
                container: Some(container.clone()),
                tail_lines: Some(PAGE_LINES),
                ..LogParams::default()
            };
            let text = match ctx.call(pods_api.logs(&pod_name, &params)).await {
                Ok(text) => text,
                Err(PageError::Api(api::Error::Unauthorized)) => {
                    return Err(PageError::Api(api::Error::Unauthorized));
                }
                Err(e) => format!("(no logs: {e})"),
            };
            logs.push(LogTail {
                follow: format!(
                    "{base}/logs?pod={}&container={}",
                    api::encode(&pod_name),
                    api::encode(&container)
                ),
                id: format!("log-{}", logs.len()),
                pod: pod_name.clone(),
                container,
                text,
            });
        }
    }

    let names: HashSet<String> = std::iter::once(name.clone())
        .chain(
            replica_sets
                .iter()
                .filter_map(|rs| rs.metadata.name.clone()),
        )
        .chain(pods.iter().filter_map(|p| p.metadata.name.clone()))
        .collect();
    let events = view::event_rows(&events, now, 20, |e| {
        e.involved_object
            .name
            .as_ref()
            .is_some_and(|n| names.contains(n))
    });
    let notice = match done.done.as_str() {
        "scaled" => Some("Scaled."),
        "restarted" => Some("Restarting: a new rollout has begun."),
        "rolledback" => Some("Rolled back: a new rollout has begun."),
        _ => None,
    };
    render(&ServicePage {
        chrome: Some(ctx.chrome("home")),
        squad,
        base,
        row,
        history,
        pods: pod_rows,
        logs,
        events,
        addresses,
        notice,
    })
}

fn pod_row(p: &Pod, now: jiff::Timestamp) -> PodRow {
    let statuses = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    let total = p
        .spec
        .as_ref()
        .map_or(statuses.len(), |s| s.containers.len());
    let ready = statuses.iter().filter(|c| c.ready).count();
    PodRow {
        name: p.metadata.name.clone().unwrap_or_default(),
        phase: p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".to_owned()),
        ready: format!("{ready}/{total}"),
        restarts: statuses.iter().map(|c| c.restart_count).sum(),
        node: p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "-".to_owned()),
        age: view::age(now, view::time(p.metadata.creation_timestamp.as_ref())),
    }
}

#[derive(Deserialize)]
struct ScaleForm {
    replicas: String,
}

pub(crate) async fn scale(
    ctx: Ctx,
    Path((squad, namespace, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Page {
    let form: ScaleForm = ctx.form(&body)?;
    let replicas = form
        .replicas
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|n| (0..=MAX_REPLICAS).contains(n))
        .ok_or_else(|| {
            PageError::BadRequest(format!(
                "Replicas must be a whole number from 0 to {MAX_REPLICAS}."
            ))
        })?;
    check_namespace(&ctx, &squad, &namespace).await?;
    let deployments = kube::Api::<Deployment>::namespaced(ctx.client.clone(), &namespace);
    let patch = Patch::Merge(json!({ "spec": { "replicas": replicas } }));
    ctx.call(deployments.patch_scale(&name, &PatchParams::default(), &patch))
        .await?;
    done(&format!(
        "{}?done=scaled",
        service_path(&squad, &namespace, &name)
    ))
}

#[derive(Deserialize)]
struct Empty {}

/// `kubectl rollout restart`: a new template annotation, so a new rollout.
pub(crate) async fn restart(
    ctx: Ctx,
    Path((squad, namespace, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Page {
    let Empty {} = ctx.form(&body)?;
    check_namespace(&ctx, &squad, &namespace).await?;
    let deployments = kube::Api::<Deployment>::namespaced(ctx.client.clone(), &namespace);
    let patch = Patch::Merge(
        json!({ "spec": { "template": { "metadata": { "annotations": {
        "kubectl.kubernetes.io/restartedAt": ctx.now().to_string()
    } } } } }),
    );
    ctx.call(deployments.patch(&name, &PatchParams::default(), &patch))
        .await?;
    done(&format!(
        "{}?done=restarted",
        service_path(&squad, &namespace, &name)
    ))
}

#[derive(Deserialize)]
struct RollbackForm {
    revision: String,
}

/// `kubectl rollout undo --to-revision`: the revision's template replaces the Deployment's,
/// under the resourceVersion just read, so a change made meanwhile is never overwritten.
pub(crate) async fn rollback(
    ctx: Ctx,
    Path((squad, namespace, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Page {
    let form: RollbackForm = ctx.form(&body)?;
    check_namespace(&ctx, &squad, &namespace).await?;
    let deployments = kube::Api::<Deployment>::namespaced(ctx.client.clone(), &namespace);
    // The Deployment's status changes under us as its pods come and go, which makes a
    // replace conflict without any change to its spec: read again and retry, a few times.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut deployment = ctx.call(deployments.get(&name)).await?;
        let replica_sets = history(&ctx, &namespace, &deployment).await?;
        let Some(mut template) = replica_sets
            .into_iter()
            .find(|rs| revision_of(rs) == Some(form.revision.as_str()))
            .and_then(|rs| rs.spec.and_then(|s| s.template))
        else {
            return Err(PageError::NotFound(format!(
                "Revision {} of {name} is not in its history.",
                form.revision
            )));
        };
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(TEMPLATE_HASH);
        }
        let Some(spec) = deployment.spec.as_mut() else {
            return Err(PageError::NotFound(format!(
                "Deployment {name} has no spec."
            )));
        };
        spec.template = template;
        match deployments
            .replace(&name, &PostParams::default(), &deployment)
            .await
        {
            Err(kube::Error::Api(status))
                if status.is_conflict() && attempts < ROLLBACK_ATTEMPTS => {}
            other => {
                ctx.call(std::future::ready(other)).await?;
                break;
            }
        }
    }
    done(&format!(
        "{}?done=rolledback",
        service_path(&squad, &namespace, &name)
    ))
}

/// How many times a rollback reads and replaces a Deployment that keeps changing.
const ROLLBACK_ATTEMPTS: u32 = 5;

#[derive(Deserialize)]
pub(crate) struct LogQuery {
    pod: String,
    container: String,
}

/// The last lines of one container's log as plain text, for following it.
pub(crate) async fn logs(
    ctx: Ctx,
    Path((squad, namespace, _name)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Response, PageError> {
    check_namespace(&ctx, &squad, &namespace).await?;
    let pods = kube::Api::<Pod>::namespaced(ctx.client.clone(), &namespace);
    let params = LogParams {
        container: Some(query.container),
        tail_lines: Some(FOLLOW_LINES),
        ..LogParams::default()
    };
    let text = ctx.call(pods.logs(&query.pod, &params)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

impl ServicePage {
    /// The revisions a rollback may go to: all but the running one.
    fn rollback_choices(&self) -> Vec<&Revision> {
        self.history.iter().filter(|r| !r.current).collect()
    }
}
