//! The node lifecycle controller: a node whose agent stops renewing its Lease in
//! `kube-node-lease` (and stops posting status) for the grace period (40 s) is marked
//! `Ready=Unknown` and tainted `node.kubernetes.io/unreachable:NoExecute`; once tainted that
//! long past the eviction grace (5 min, Kubernetes' default toleration), its pods are
//! deleted so their owners recreate them elsewhere. A node heard from again loses the taint.

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
        return Ok(Action::requeue(ctx.timing.eviction));
    };
    let tainted_for = elapsed(since);
    if tainted_for < ctx.timing.eviction {
        return Ok(Action::requeue(
            ctx.timing.eviction - tainted_for + Duration::from_millis(100),
        ));
    }
    evict(&ctx.client, &name).await?;
    Ok(Action::requeue(ctx.timing.eviction))
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

/// Deletes the pods bound to `node` that do not tolerate its being unreachable.
async fn evict(client: &Client, node: &str) -> Result<(), Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let bound = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    for pod in bound.items {
        let tolerates = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_ref())
            .is_some_and(|t| {
                t.iter().any(|t| {
                    (t.key.as_deref() == Some(UNREACHABLE)
                        || t.key.is_none() && t.operator.as_deref() == Some("Exists"))
                        && t.toleration_seconds.is_none()
                })
            });
        if tolerates || pod.metadata.deletion_timestamp.is_some() {
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
    Ok(())
}
