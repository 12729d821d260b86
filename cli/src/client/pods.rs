//! Which pod and container a command means: `POD`, `pod/NAME`, or one pod of a
//! `deployment/NAME` or `svc/NAME` (a running one first, as kubectl picks), and the
//! container a pod's commands default to.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};

use super::api_failure;
use super::target::Session;
use crate::exit::Failure;

/// The annotation naming the container commands default to, as kubectl reads it.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// What a `POD|KIND/NAME` argument named.
pub(super) enum Named {
    Pod(String),
    Deployment(String),
    Service(String),
}

/// Reads a `POD`, `pod/NAME`, `deployment/NAME` or `svc/NAME` argument; `services` says
/// whether a Service may be named here.
pub(super) fn parse(what: &str, services: bool) -> Result<Named, Failure> {
    match what.split_once('/') {
        None => Ok(Named::Pod(what.to_owned())),
        Some((_, "")) => Err(Failure::bad_input(format!("{what:?} names no object"))),
        Some(("pod" | "pods" | "po", name)) => Ok(Named::Pod(name.to_owned())),
        Some((
            "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps",
            name,
        )) => Ok(Named::Deployment(name.to_owned())),
        Some(("service" | "services" | "svc", name)) if services => {
            Ok(Named::Service(name.to_owned()))
        }
        Some((kind, _)) => Err(Failure::bad_input(format!(
            "{kind:?} is not a kind this command reaches pods through"
        ))),
    }
}

/// The label selector a deployment's pods carry.
pub(super) async fn deployment_selector(session: &Session, name: &str) -> Result<String, Failure> {
    let deployments: Api<Deployment> = Api::namespaced(session.client.clone(), &session.namespace);
    let deployment = deployments.get(name).await.map_err(api_failure)?;
    let labels = deployment
        .spec
        .and_then(|s| s.selector.match_labels)
        .unwrap_or_default();
    selector(&labels, &format!("deployment {name}"))
}

fn selector(
    labels: &std::collections::BTreeMap<String, String>,
    what: &str,
) -> Result<String, Failure> {
    if labels.is_empty() {
        return Err(Failure::failed(format!(
            "{what} selects its pods by no labels"
        )));
    }
    Ok(labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// The pod an argument means, and the Service when it named one.
pub(super) async fn pod_of(
    session: &Session,
    named: &Named,
) -> Result<(Pod, Option<Service>), Failure> {
    let pods: Api<Pod> = Api::namespaced(session.client.clone(), &session.namespace);
    let (selector, service, what) = match named {
        Named::Pod(name) => return Ok((pods.get(name).await.map_err(api_failure)?, None)),
        Named::Deployment(name) => (
            deployment_selector(session, name).await?,
            None,
            format!("deployment/{name}"),
        ),
        Named::Service(name) => {
            let services: Api<Service> =
                Api::namespaced(session.client.clone(), &session.namespace);
            let service = services.get(name).await.map_err(api_failure)?;
            let labels = service
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default();
            (
                selector(&labels, &format!("service {name}"))?,
                Some(service),
                format!("svc/{name}"),
            )
        }
    };
    let mut listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(api_failure)?
        .items;
    listed.sort_by_key(|pod| {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        (!running, pod.metadata.name.clone())
    });
    let pod = listed
        .into_iter()
        .next()
        .ok_or_else(|| Failure::failed(format!("{what} has no pods")))?;
    Ok((pod, service))
}

/// The names of a pod's containers, in order.
pub(super) fn containers(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| c.name.clone())
        .collect()
}

/// The container a pod's commands default to: its only one, the one its annotation names,
/// or (said on stderr, as kubectl does) the first.
pub(super) fn default_container(pod: &Pod) -> Result<String, Failure> {
    let names = containers(pod);
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER))
        .filter(|name| names.contains(name));
    if let Some(name) = annotated {
        return Ok(name.clone());
    }
    let first = names
        .first()
        .cloned()
        .ok_or_else(|| Failure::failed("the pod has no containers"))?;
    if names.len() > 1 {
        eprintln!(
            "Defaulted container \"{first}\" out of: {}",
            names.join(", ")
        );
    }
    Ok(first)
}
