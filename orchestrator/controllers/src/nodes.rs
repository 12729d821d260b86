//! The node lifecycle controller: a node whose agent stops renewing its Lease in
//! `kube-node-lease` (and stops posting status) for the grace period (40 s) is marked
//! `Ready=Unknown` and tainted `node.kubernetes.io/unreachable:NoExecute`; each of its pods
//! is deleted, so its owner recreates it elsewhere, once the taint is older than the pod's
//! toleration of it (`tolerationSeconds`; 5 min for pods without one, as Kubernetes'
//! default tolerations give; never for a toleration without seconds). A node heard from
//! again loses the taint.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::reconciler::{Error, drive, retry_after, settled};

/// The taint of a node nothing has been heard from.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// How long the controller waits before it acts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Silence after which a node is Unknown and tainted (`--node-monitor-grace-period`).
    pub grace: Duration,
    /// How long pods stay on a tainted node (the default `tolerationSeconds`).
    pub eviction: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            grace: Duration::from_secs(40),
            eviction: Duration::from_secs(300),
        }
    }
}

struct Ctx {
    client: Client,
    timing: Timing,
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: Client, timing: Timing, shutdown: CancellationToken) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let controller = Controller::new(nodes, watcher::Config::default())
        .watches(leases, watcher::Config::default(), |lease| {
            Some(ObjectRef::<Node>::new(&lease.name_any()))
        })
        .run(reconcile, error_policy, Arc::new(Ctx { client, timing }));
    drive("node-lifecycle", controller, &shutdown).await;
}

fn error_policy(node: Arc<Node>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(node = %node.name_any(), %error, "node lifecycle failed; retrying");
    Action::requeue(retry_after(3))
}

/// When the node was last heard from: its Lease's renewal or its Ready heartbeat, the later.
fn last_heard(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let posted = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    renewed.max(posted)
}

fn ready_condition(node: &Node) -> Option<&k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

fn unreachable_since(node: &Node) -> Option<Timestamp> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .and_then(|t| t.iter().find(|t| t.key == UNREACHABLE))
        .map(|t| t.time_added.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
}

fn elapsed(since: Timestamp) -> Duration {
    let now = Timestamp::now();
    Duration::try_from(now.duration_since(since)).unwrap_or_default()
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = node.name_any();
    let lease = Api::<Lease>::namespaced(ctx.client.clone(), "kube-node-lease")
        .get_opt(&name)
        .await?;
    // A node never heard from is timed from its creation.
    let heard = last_heard(&node, lease.as_ref())
        .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or_else(Timestamp::now);
    let silent = elapsed(heard);
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let tainted = unreachable_since(&node);
    if silent < ctx.timing.grace {
        if tainted.is_some() {
            set_taints(&nodes, &node, false).await?;
        }
        return Ok(Action::requeue(
            ctx.timing.grace - silent + Duration::from_millis(100),
        ));
    }
    let Some(since) = tainted else {
        mark_unknown(&nodes, &node).await?;
        set_taints(&nodes, &node, true).await?;
        // Pods that tolerate nothing or zero seconds go right away.
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let next = evict(&ctx.client, &name, elapsed(since), ctx.timing.eviction).await?;
    Ok(Action::requeue(next.unwrap_or(ctx.timing.eviction)))
}

/// How long a pod stays on an unreachable node: `None` for ever.
fn toleration(pod: &Pod, default: Duration) -> Option<Duration> {
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_ref());
    let matching = tolerations.into_iter().flatten().find(|t| {
        (t.key.as_deref() == Some(UNREACHABLE)
            || t.key.is_none() && t.operator.as_deref() == Some("Exists"))
            && t.effect.as_deref().is_none_or(|e| e == "NoExecute")
    });
    match matching {
        None => Some(default),
        Some(t) => t
            .toleration_seconds
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))),
    }
}

/// The node's Ready condition set to Unknown, as the node lifecycle controller writes it.
async fn mark_unknown(nodes: &Api<Node>, node: &Node) -> Result<(), Error> {
    let now = Timestamp::now().to_string();
    let mut conditions: Vec<serde_json::Value> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|c| {
            c.iter()
                .filter(|c| c.type_ != "Ready")
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let heartbeat = ready_condition(node).and_then(|c| c.last_heartbeat_time.clone());
    conditions.push(json!({
        "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
        "lastHeartbeatTime": heartbeat, "lastTransitionTime": now,
    }));
    nodes
        .patch_status(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await?;
    Ok(())
}

/// Adds or removes the unreachable taint, keeping the others.
async fn set_taints(nodes: &Api<Node>, node: &Node, unreachable: bool) -> Result<(), Error> {
    let mut taints: Vec<serde_json::Value> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| {
            t.iter()
                .filter(|t| t.key != UNREACHABLE)
                .filter_map(|t| serde_json::to_value(t).ok())
                .collect()
        })
        .unwrap_or_default();
    if unreachable {
        taints.push(json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": Timestamp::now().to_string()}));
    }
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "spec": {"taints": if taints.is_empty() { json!(null) } else { json!(taints) }},
    });
    settled(
        nodes
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await,
    )
    .map(drop)
}

/// Deletes the pods bound to `node` whose toleration of its being unreachable is over;
/// says when the next one's will be.
async fn evict(
    client: &Client,
    node: &str,
    tainted_for: Duration,
    default: Duration,
) -> Result<Option<Duration>, Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let bound = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    let mut next: Option<Duration> = None;
    for pod in bound.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(tolerated) = toleration(&pod, default) else {
            continue;
        };
        if tainted_for < tolerated {
            let left = tolerated - tainted_for + Duration::from_millis(100);
            next = Some(next.map_or(left, |n| n.min(left)));
            continue;
        }
        let (Some(namespace), Some(name)) =
            (pod.metadata.namespace.clone(), pod.metadata.name.clone())
        else {
            continue;
        };
        // Nothing runs the pod any more to confirm a graceful stop: delete it outright.
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        settled(
            Api::<Pod>::namespaced(client.clone(), &namespace)
                .delete(&name, &params)
                .await,
        )?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}}))
            .unwrap()
    }

    #[test]
    fn a_pod_stays_as_long_as_its_toleration_of_the_unreachable_taint_says() {
        let default = Duration::from_secs(300);
        assert_eq!(toleration(&pod(json!([])), default), Some(default));
        let zero = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]);
        assert_eq!(toleration(&pod(zero), default), Some(Duration::ZERO));
        let ever = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]);
        assert_eq!(toleration(&pod(ever), default), None);
        let everything = json!([{"operator": "Exists", "tolerationSeconds": 30}]);
        assert_eq!(
            toleration(&pod(everything), default),
            Some(Duration::from_secs(30))
        );
        let other = json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 1}]);
        assert_eq!(toleration(&pod(other), default), Some(default));
    }
}
