//! The Endpoints controller: every Service with a selector gets an Endpoints object of its
//! name listing the matching pods that have an IP, ready ones under `addresses` and the
//! rest under `notReadyAddresses` (all under `addresses` with
//! `publishNotReadyAddresses`), with each service port resolved against the pod's container
//! ports by name or number, and pods grouped into subsets by the ports they resolve to.
//!
//! One deliberate difference from Kubernetes: the Endpoints object carries an owner
//! reference to its Service, so the garbage collector removes it with the Service instead
//! of this controller keeping a queue of deleted names.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use slipway_model::labels::Selector;
use tokio_util::sync::CancellationToken;

use crate::reconciler::{Error, drive, retry_after, settled};

struct Ctx {
    client: Client,
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let services: Api<Service> = Api::all(client.clone());
    let controller = Controller::new(services, watcher::Config::default());
    let known = controller.store();
    let controller = controller
        .owns(
            Api::<Endpoints>::all(client.clone()),
            watcher::Config::default(),
        )
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |pod| selecting(&known.state(), &pod),
        )
        .run(reconcile, error_policy, Arc::new(Ctx { client }));
    drive("endpoints", controller, &shutdown).await;
}

/// The services in a pod's namespace whose selector matches it.
fn selecting(services: &[Arc<Service>], pod: &Pod) -> Vec<ObjectRef<Service>> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    services
        .iter()
        .filter(|s| s.namespace() == pod.namespace())
        .filter(|s| selector(s).is_some_and(|sel| sel.matches(&labels)))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn selector(service: &Service) -> Option<Selector> {
    let labels = service.spec.as_ref()?.selector.clone()?;
    (!labels.is_empty()).then(|| Selector::from_labels(&labels))
}

fn error_policy(service: Arc<Service>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(service = %service.name_any(), %error, "syncing endpoints failed; retrying");
    Action::requeue(retry_after(3))
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let (Some(namespace), Some(selector)) = (service.namespace(), selector(&service)) else {
        // No selector: the endpoints are the user's to manage.
        return Ok(Action::await_change());
    };
    if service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let matching: Vec<Pod> = pods
        .list(&ListParams::default().labels(&selector.to_string()))
        .await?
        .items;
    let subsets = subsets(&service, &matching);
    let name = service.name_any();
    let wanted = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: service.metadata.labels.clone(),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: name.clone(),
                uid: service.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    let endpoints: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = match endpoints.get_opt(&name).await? {
        None => endpoints
            .create(&PostParams::default(), &wanted)
            .await
            .map(drop),
        Some(current)
            if current.subsets == wanted.subsets
                && current.metadata.labels == wanted.metadata.labels
                && current.metadata.owner_references == wanted.metadata.owner_references =>
        {
            Ok(())
        }
        Some(current) => {
            let mut replaced = wanted;
            replaced.metadata.resource_version = current.metadata.resource_version;
            endpoints
                .replace(&name, &PostParams::default(), &replaced)
                .await
                .map(drop)
        }
    };
    settled(result)?;
    Ok(Action::await_change())
}

/// The subsets for `service` over `pods`: pods grouped by the ports they resolve to.
pub fn subsets(service: &Service, pods: &[Pod]) -> Vec<EndpointSubset> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    type Group = (Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<Vec<(String, i32, String)>, Group> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let mut ports = Vec::new();
        for port in spec.ports.iter().flatten() {
            let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
            if let Some(number) = target_port(pod, port.target_port.as_ref(), port.port, &protocol)
            {
                ports.push((port.name.clone().unwrap_or_default(), number, protocol));
            }
        }
        let address = EndpointAddress {
            ip,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            hostname: None,
        };
        let group = groups.entry(ports).or_default();
        if publish_not_ready || is_ready(pod) {
            group.0.push(address);
        } else {
            group.1.push(address);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A service port's target on one pod: a number as is (the service port when unset), a
/// name looked up among the pod's container ports of that protocol.
fn target_port(pod: &Pod, target: Option<&IntOrString>, port: i32, protocol: &str) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(number)) => Some(*number),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, ip: Option<&str>, ready: bool, http_port: Option<i32>) -> Pod {
        let ports = http_port.map_or(json!([]), |p| json!([{"name": "http", "containerPort": p}]));
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "ports": ports}]},
            "status": {"podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    #[test]
    fn ready_and_not_ready_pods_grouped_by_resolved_ports() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}
        }))
        .unwrap();
        let pods = [
            pod("a", Some("10.0.0.2"), true, Some(8080)),
            pod("b", Some("10.0.0.1"), false, Some(8080)),
            pod("c", Some("10.0.0.3"), true, Some(9090)),
            pod("no-ip", None, true, Some(8080)),
        ];
        let subsets = subsets(&service, &pods);
        assert_eq!(subsets.len(), 2, "{subsets:?}");
        let first = &subsets[0];
        assert_eq!(first.ports.as_ref().unwrap()[0].port, 8080);
        assert_eq!(first.addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert_eq!(
            first.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.0.0.1"
        );
        assert_eq!(
            first.addresses.as_ref().unwrap()[0]
                .target_ref
                .as_ref()
                .unwrap()
                .name
                .as_deref(),
            Some("a")
        );
        assert_eq!(subsets[1].ports.as_ref().unwrap()[0].port, 9090);
    }

    #[test]
    fn publish_not_ready_addresses_lists_every_pod_as_an_address() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "publishNotReadyAddresses": true,
                     "ports": [{"port": 80}]}
        }))
        .unwrap();
        let subsets = subsets(&service, &[pod("b", Some("10.0.0.1"), false, None)]);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 1);
        assert!(subsets[0].not_ready_addresses.is_none());
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 80);
    }
}
