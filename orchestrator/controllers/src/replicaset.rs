//! The ReplicaSet controller: keeps as many live pods as `spec.replicas` asks, adopting
//! matching orphans and releasing pods that stopped matching, creating in slow-start
//! batches so a 1,000-replica set does not stampede the API, deleting by Kubernetes' rank
//! (unscheduled, then pending, then not ready, then ready; newer first), and reporting
//! status with Kubernetes' meaning.

use std::sync::Arc;

use futures::future::join_all;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::claim;
use crate::events::{Kind, Recorder};
use crate::reconciler::{Error, drive, retry_after, settled};

/// At most this many pods are created or deleted in one reconcile, as Kubernetes'
/// `burstReplicas`; the rest follow on the next.
const BURST: usize = 500;

struct Ctx {
    client: Client,
    events: Recorder,
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let sets: Api<ReplicaSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let controller = Controller::new(sets, watcher::Config::default());
    let known = controller.store();
    let controller = controller
        .watches(pods, watcher::Config::default(), move |pod| {
            claim::interested(&known.state(), &pod, |set: &ReplicaSet| {
                set.spec.as_ref().map(|s| &s.selector)
            })
        })
        .run(
            reconcile,
            error_policy,
            Arc::new(Ctx {
                events: Recorder::new(client.clone(), "replicaset-controller"),
                client,
            }),
        );
    drive("replicaset", controller, &shutdown).await;
}

fn error_policy(set: Arc<ReplicaSet>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(replicaset = %set.name_any(), %error, "syncing the replica set failed; retrying");
    Action::requeue(retry_after(3))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn min_ready_seconds(set: &ReplicaSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Ready for at least `min_ready` seconds (Kubernetes' `IsPodAvailable`).
fn is_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    let Some(ready) = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
    else {
        return false;
    };
    if min_ready <= 0 {
        return true;
    }
    ready.last_transition_time.as_ref().is_some_and(|since| {
        since
            .0
            .checked_add(SignedDuration::from_secs(i64::from(min_ready)))
            .is_ok_and(|due| due < now)
    })
}

fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

fn refused(status: &kube::core::Status) -> bool {
    status.code == 403 || status.code == 422
}

/// The order pods are deleted in when scaling down, as Kubernetes' `ActivePods` sort:
/// unscheduled before scheduled, pending before running, not ready before ready, and the
/// newest first among equals.
pub fn deletion_order(pods: &mut [Pod]) {
    let rank = |pod: &Pod| {
        let scheduled = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let phase = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Pending") | None => 0,
            Some("Unknown") => 1,
            _ => 2,
        };
        (scheduled, phase, is_ready(pod))
    };
    pods.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| {
            b.metadata
                .creation_timestamp
                .cmp(&a.metadata.creation_timestamp)
        })
    });
}

/// The sizes of slow-start batches for `count` creates: 1, 2, 4, ... so a set whose pods
/// all fail (quota, admission) learns it from one request, not hundreds.
pub fn batches(count: usize) -> Vec<usize> {
    let mut left = count.min(BURST);
    let mut size = 1;
    let mut out = Vec::new();
    while left > 0 {
        let batch = size.min(left);
        out.push(batch);
        left -= batch;
        size *= 2;
    }
    out
}

async fn reconcile(set: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (Some(namespace), Some(uid), Some(spec)) =
        (set.namespace(), set.metadata.uid.clone(), set.spec.as_ref())
    else {
        return Ok(Action::await_change());
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: set.name_any(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };

    let reference = ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("ReplicaSet".into()),
        name: Some(set.name_any()),
        namespace: Some(namespace.clone()),
        uid: Some(uid.clone()),
        resource_version: set.resource_version(),
        field_path: None,
    };
    let listed = pods.list(&ListParams::default()).await?.items;
    let owned = claim::claim(&pods, listed, &owner, &spec.selector, false).await?;

    let mut active: Vec<Pod> = owned.into_iter().filter(is_active).collect();
    let wanted = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    if active.len() < wanted {
        let template = spec.template.clone().unwrap_or_default();
        let mut meta = template.metadata.clone().unwrap_or_default();
        let pod = Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", set.name_any())),
                namespace: Some(namespace.clone()),
                labels: meta.labels.take(),
                annotations: meta.annotations.take(),
                owner_references: Some(vec![owner.clone()]),
                ..ObjectMeta::default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        // Each batch's creates are in flight together, as Kubernetes' slowStartBatch.
        for batch in batches(wanted - active.len()) {
            let results = join_all((0..batch).map(|_| async {
                let result = pods.create(&PostParams::default(), &pod).await;
                match &result {
                    Ok(created) => {
                        let message = format!("Created pod: {}", created.name_any());
                        ctx.events
                            .record(&reference, Kind::Normal, "SuccessfulCreate", &message)
                            .await;
                    }
                    Err(kube::Error::Api(status)) if refused(status) => {
                        let message = format!("Error creating: {}", status.message);
                        ctx.events
                            .record(&reference, Kind::Warning, "FailedCreate", &message)
                            .await;
                    }
                    Err(_) => {}
                }
                result
            }))
            .await;
            let mut stop = false;
            for result in results {
                match result {
                    Ok(_) => {}
                    // Refused (quota, namespace terminating): the next batches would be too.
                    Err(kube::Error::Api(status)) if refused(&status) => stop = true,
                    Err(e) => return Err(e.into()),
                }
            }
            if stop {
                break;
            }
        }
    } else if active.len() > wanted {
        deletion_order(&mut active);
        // All in flight together, as Kubernetes deletes them.
        let deletes = active
            .iter()
            .take((active.len() - wanted).min(BURST))
            .map(|pod| async {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: pod.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                let deleted = settled(pods.delete(&pod.name_any(), &params).await)?;
                if deleted.is_some() {
                    let message = format!("Deleted pod: {}", pod.name_any());
                    ctx.events
                        .record(&reference, Kind::Normal, "SuccessfulDelete", &message)
                        .await;
                }
                Ok::<(), Error>(())
            });
        join_all(deletes)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()?;
    }
    // Status counts the pods as listed, as Kubernetes does: the creates and deletes above
    // come back as pod events and are counted on the next pass.
    let now = Timestamp::now();
    update_status(&ctx, &set, &namespace, &active, now).await?;
    let min_ready = min_ready_seconds(&set);
    let maturing = active
        .iter()
        .any(|pod| is_ready(pod) && !is_available(pod, min_ready, now));
    Ok(Action::requeue(if maturing {
        Duration::from_secs(min_ready.unsigned_abs().into())
    } else {
        Duration::from_secs(300)
    }))
}

/// Status as Kubernetes reports it, from the set's active pods.
async fn update_status(
    ctx: &Ctx,
    set: &ReplicaSet,
    namespace: &str,
    owned: &[Pod],
    now: Timestamp,
) -> Result<(), Error> {
    let template_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let ready = owned.iter().filter(|p| is_ready(p)).count();
    let fully_labeled = owned
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let status = json!({
        "replicas": owned.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": owned
            .iter()
            .filter(|p| is_available(p, min_ready_seconds(set), now))
            .count(),
        "observedGeneration": set.meta().generation,
    });
    let current = serde_json::to_value(&set.status).unwrap_or_default();
    let unchanged = [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ]
    .iter()
    .all(|field| current[field].as_i64().unwrap_or(0) == status[field].as_i64().unwrap_or(0));
    if unchanged {
        return Ok(());
    }
    let sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = Patch::Merge(json!({"status": status}));
    settled(
        sets.patch_status(&set.name_any(), &PatchParams::default(), &patch)
            .await,
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool, created: i64) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": jiff_time(created)},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    fn jiff_time(seconds: i64) -> String {
        k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + seconds)
            .unwrap()
            .to_string()
    }

    #[test]
    fn scale_down_takes_the_least_useful_pods_first() {
        let mut pods = vec![
            pod("ready-old", Some("n"), "Running", true, 0),
            pod("ready-new", Some("n"), "Running", true, 10),
            pod("unready", Some("n"), "Running", false, 0),
            pod("pending", Some("n"), "Pending", false, 0),
            pod("unscheduled", None, "Pending", false, 0),
        ];
        deletion_order(&mut pods);
        let names: Vec<String> = pods.iter().map(ResourceExt::name_any).collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "unready",
                "ready-new",
                "ready-old"
            ]
        );
    }

    #[test]
    fn a_pod_is_available_once_ready_for_min_ready_seconds() {
        let mut ready = pod("web", Some("n"), "Running", true, 0);
        let since = Timestamp::from_second(1_800_000_000).unwrap();
        ready.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(since));
        let at = |seconds| {
            since
                .checked_add(SignedDuration::from_secs(seconds))
                .unwrap()
        };
        assert!(
            is_available(&ready, 0, at(0)),
            "no wait without minReadySeconds"
        );
        assert!(
            !is_available(&ready, 10, at(10)),
            "not yet: ready for exactly 10 s"
        );
        assert!(is_available(&ready, 10, at(11)));
        let unready = pod("web", Some("n"), "Running", false, 0);
        assert!(!is_available(&unready, 0, at(100)));
    }

    #[test]
    fn creates_start_slow_and_stop_at_the_burst() {
        assert_eq!(batches(0), Vec::<usize>::new());
        assert_eq!(batches(1), [1]);
        assert_eq!(batches(10), [1, 2, 4, 3]);
        assert_eq!(batches(5_000).iter().sum::<usize>(), BURST);
    }
}
