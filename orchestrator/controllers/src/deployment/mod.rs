//! The Deployment controller, after Kubernetes' own: it keeps one ReplicaSet per pod
//! template (named and labelled by the template's hash), rolls from the old ones to the new
//! one within maxSurge and maxUnavailable or recreates them all at once, shares a resize
//! out in proportion mid-rollout, stands still while paused, prunes history past
//! `revisionHistoryLimit`, and reports status and conditions that `kubectl rollout status`
//! and `kubectl describe` read. A rollback is kubectl's business: it copies an old
//! ReplicaSet's template back into the Deployment, which makes that ReplicaSet new again.

pub mod rollout;
pub mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::rollout::{Scale, desired, replicas};
use crate::claim;
use crate::events::{Kind, Recorder};
use crate::reconciler::{Error, drive, retry_after, settled};

/// How often a Deployment is looked at again with nothing happening, as a safety net.
const RESYNC: Duration = Duration::from_secs(300);

/// A write lost a race with a newer version of what it read: this pass stops and the
/// change that won, which arrives as an event, starts the next.
const STALE: Action = Action::requeue(Duration::from_secs(1));

struct Ctx {
    client: Client,
    events: Recorder,
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let controller = Controller::new(deployments, watcher::Config::default());
    let known = controller.store();
    let for_pods = known.clone();
    let controller = controller
        .watches(
            Api::<ReplicaSet>::all(client.clone()),
            watcher::Config::default(),
            move |set| claim::interested(&known.state(), &set, selector_of),
        )
        // Only a recreate waits on pods: for its old ones to be gone.
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |pod| {
                for_pods
                    .state()
                    .into_iter()
                    .filter(|d| !rollout::is_rolling(d) && d.namespace() == pod.namespace())
                    .filter(|d| selector_of(d).is_some_and(|s| claim::selects(s, &pod)))
                    .map(|d| ObjectRef::from_obj(d.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .run(
            reconcile,
            error_policy,
            Arc::new(Ctx {
                events: Recorder::new(client.clone(), "deployment-controller"),
                client,
            }),
        );
    drive("deployment", controller, &shutdown).await;
}

fn selector_of(d: &Deployment) -> Option<&LabelSelector> {
    d.spec.as_ref().map(|s| &s.selector)
}

fn error_policy(d: Arc<Deployment>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(deployment = %d.name_any(), %error, "syncing the deployment failed; retrying");
    Action::requeue(retry_after(3))
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let (Some(namespace), Some(uid), Some(spec)) =
        (d.namespace(), d.metadata.uid.clone(), d.spec.as_ref())
    else {
        return Ok(Action::await_change());
    };
    let selector = spec.selector.clone();
    let mut sync = Sync {
        sets: Api::namespaced(ctx.client.clone(), &namespace),
        deployments: Api::namespaced(ctx.client.clone(), &namespace),
        pods: Api::namespaced(ctx.client.clone(), &namespace),
        reference: ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: Some(d.name_any()),
            namespace: Some(namespace),
            uid: Some(uid.clone()),
            resource_version: d.resource_version(),
            field_path: None,
        },
        owner: OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: d.name_any(),
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        // Whole seconds: conditions round-trip through the API at that precision, and a
        // finer `now` would make every status look changed.
        now: Timestamp::from_second(Timestamp::now().as_second())
            .unwrap_or_else(|_| Timestamp::now()),
        d: (*d).clone(),
        ctx,
    };
    let everything = selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty);
    if everything {
        sync.record(
            Kind::Warning,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.",
        )
        .await;
        let mut status = sync.d.status.clone().unwrap_or_default();
        status.observed_generation = sync.d.metadata.generation;
        sync.write_status(status).await?;
        return Ok(Action::await_change());
    }
    let listed = sync.sets.list(&ListParams::default()).await?.items;
    let deleting = sync.d.metadata.deletion_timestamp.is_some();
    let sets = claim::claim(&sync.sets, listed, &sync.owner, &selector, deleting).await?;
    if deleting {
        return sync.status_only(&sets).await;
    }
    if let Some(status) = rollout::paused_status(&sync.d, sync.now) {
        sync.write_status(status).await?;
    }
    let paused = spec.paused.unwrap_or(false);
    let all: Vec<&ReplicaSet> = sets.iter().collect();
    if paused || rollout::is_scaling_event(&sync.d, &all) {
        return sync.resize(&sets).await;
    }
    if rollout::is_rolling(&sync.d) {
        sync.rolling(&sets).await
    } else {
        sync.recreate(&sets).await
    }
}

/// Every ReplicaSet but `new`: the old ones.
fn others<'a>(sets: &'a [ReplicaSet], new: Option<&ReplicaSet>) -> Vec<&'a ReplicaSet> {
    let new_uid = new.and_then(|n| n.metadata.uid.as_deref());
    sets.iter()
        .filter(|rs| rs.metadata.uid.as_deref() != new_uid)
        .collect()
}

/// One pass over one Deployment.
struct Sync {
    ctx: Arc<Ctx>,
    d: Deployment,
    sets: Api<ReplicaSet>,
    deployments: Api<Deployment>,
    pods: Api<Pod>,
    reference: ObjectReference,
    owner: OwnerReference,
    now: Timestamp,
}

impl Sync {
    async fn record(&self, kind: Kind, reason: &str, message: &str) {
        self.ctx
            .events
            .record(&self.reference, kind, reason, message)
            .await;
    }

    /// A rolling update: grow the new ReplicaSet within the surge, else shrink the old ones
    /// within the unavailability budget, else (done) prune history.
    async fn rolling(&mut self, sets: &[ReplicaSet]) -> Result<Action, Error> {
        let Some(new) = self.new_set(sets, true).await? else {
            return Ok(STALE);
        };
        let old = others(sets, Some(&new));
        let mut all = old.clone();
        all.push(&new);
        if let Some(scale) = rollout::reconcile_new(&self.d, &all, &new) {
            if !self.scale(&new, &scale).await? {
                return Ok(STALE);
            }
            return self.rollout_status(&all, Some(&new)).await;
        }
        let active: Vec<&ReplicaSet> = old.iter().copied().filter(|rs| replicas(rs) > 0).collect();
        let scales = rollout::reconcile_old(&self.d, &all, &active, Some(&new));
        if !scales.is_empty() {
            for scale in &scales {
                let Some(rs) = old.iter().find(|rs| rs.name_any() == scale.name) else {
                    continue;
                };
                if !self.scale(rs, scale).await? {
                    return Ok(STALE);
                }
            }
            return self.rollout_status(&all, Some(&new)).await;
        }
        if self.is_complete() {
            self.prune_history(&old).await?;
        }
        self.rollout_status(&all, Some(&new)).await
    }

    /// A recreate: every old pod goes, and only once none is left does the new ReplicaSet
    /// get all of them.
    async fn recreate(&mut self, sets: &[ReplicaSet]) -> Result<Action, Error> {
        let existing = self.new_set(sets, false).await?;
        let old = others(sets, existing.as_ref());
        let mut all = old.clone();
        all.extend(existing.as_ref());
        let mut scaled = false;
        for rs in old.iter().filter(|rs| replicas(rs) > 0) {
            let scale = Scale {
                name: rs.name_any(),
                from: replicas(rs),
                to: 0,
            };
            if !self.scale(rs, &scale).await? {
                return Ok(STALE);
            }
            scaled = true;
        }
        if scaled || self.old_pods_running(&old).await? {
            return self.rollout_status(&all, existing.as_ref()).await;
        }
        let new = match existing {
            Some(new) => new,
            None => match self.new_set(sets, true).await? {
                Some(new) => new,
                None => return Ok(STALE),
            },
        };
        let mut all = old.clone();
        all.push(&new);
        let want = desired(&self.d);
        if replicas(&new) != want {
            let scale = Scale {
                name: new.name_any(),
                from: replicas(&new),
                to: want,
            };
            if !self.scale(&new, &scale).await? {
                return Ok(STALE);
            }
        }
        if self.is_complete() {
            self.prune_history(&old).await?;
        }
        self.rollout_status(&all, Some(&new)).await
    }

    /// A resize or a paused Deployment: only sizes change, in proportion; a paused one also
    /// prunes history.
    async fn resize(&mut self, sets: &[ReplicaSet]) -> Result<Action, Error> {
        let new = self.new_set(sets, false).await?;
        let old = others(sets, new.as_ref());
        for scale in rollout::proportional(&self.d, new.as_ref(), &old) {
            // The new set as `new_set` left it: its annotations may just have changed.
            let Some(rs) = new
                .iter()
                .chain(old.iter().copied())
                .find(|rs| rs.name_any() == scale.name)
            else {
                continue;
            };
            if !self.scale(rs, &scale).await? {
                return Ok(STALE);
            }
        }
        if self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.prune_history(&old).await?;
        }
        let mut all = old.clone();
        all.extend(new.as_ref());
        let status = rollout::calculate_status(&self.d, &all, new.as_ref(), self.now);
        self.write_status(status).await?;
        Ok(Action::requeue(RESYNC))
    }

    /// A Deployment being deleted only reports; the garbage collector removes its
    /// ReplicaSets.
    async fn status_only(&mut self, sets: &[ReplicaSet]) -> Result<Action, Error> {
        let new = self.new_set(sets, false).await?;
        let all: Vec<&ReplicaSet> = sets.iter().collect();
        let status = rollout::calculate_status(&self.d, &all, new.as_ref(), self.now);
        self.write_status(status).await?;
        Ok(Action::await_change())
    }

    fn is_complete(&self) -> bool {
        rollout::is_complete(&self.d, &self.d.status.clone().unwrap_or_default())
    }

    async fn rollout_status(
        &mut self,
        all: &[&ReplicaSet],
        new: Option<&ReplicaSet>,
    ) -> Result<Action, Error> {
        let status = rollout::rollout_status(&self.d, all, new, self.now);
        let check = rollout::deadline_check(&self.d, &status, self.now);
        self.write_status(status).await?;
        Ok(Action::requeue(check.unwrap_or(RESYNC).min(RESYNC)))
    }

    /// The ReplicaSet of the current template, its annotations brought up to date, created
    /// when `create` and there is none. `None` when a write lost a race or the name is taken
    /// by a foreign ReplicaSet (the collision count is bumped for the next pass).
    async fn new_set(
        &mut self,
        sets: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, Error> {
        let found = rollout::find_new(&self.d, sets);
        let max_old = sets
            .iter()
            .filter(|rs| Some(*rs) != found)
            .map(template::revision)
            .max()
            .unwrap_or(0);
        let revision = max_old + 1;
        if let Some(found) = found {
            let mut updated = found.clone();
            let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let annotated = template::set_new_annotations(&self.d, &mut updated, revision, None);
            let spec = updated.spec.get_or_insert_with(ReplicaSetSpec::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
            if annotated || min_ready_changed {
                spec.min_ready_seconds = min_ready;
                let replaced = settled(
                    self.sets
                        .replace(&updated.name_any(), &PostParams::default(), &updated)
                        .await,
                )?;
                return Ok(replaced);
            }
            let current = updated
                .annotations()
                .get(template::REVISION)
                .cloned()
                .unwrap_or_default();
            self.set_revision(&current).await?;
            if self.has_deadline() && self.progressing().is_none() {
                let mut status = self.d.status.clone().unwrap_or_default();
                let message = format!("Found new replica set \"{}\"", updated.name_any());
                rollout::set_condition(
                    &mut status,
                    rollout::condition(
                        rollout::reason::PROGRESSING,
                        "True",
                        rollout::reason::FOUND_NEW_RS,
                        message,
                        self.now,
                    ),
                );
                self.write_status(status).await?;
            }
            return Ok(Some(updated));
        }
        if !create {
            return Ok(None);
        }
        // Boxed: a create, an event and two writes make a large future.
        Box::pin(self.create_new_set(sets, revision)).await
    }

    async fn create_new_set(
        &mut self,
        sets: &[ReplicaSet],
        revision: i64,
    ) -> Result<Option<ReplicaSet>, Error> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template::hash(&spec.template, collisions);
        let mut pod_template = spec.template.clone();
        let template_meta = pod_template
            .metadata
            .get_or_insert_with(ObjectMeta::default);
        let labels = template::with_hash(template_meta.labels.as_ref(), &hash);
        template_meta.labels = Some(labels.clone());
        let mut selector = spec.selector.clone();
        selector.match_labels = Some(template::with_hash(selector.match_labels.as_ref(), &hash));
        let name = format!("{}-{hash}", self.d.name_any());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.namespace(),
                labels: Some(labels),
                owner_references: Some(vec![self.owner.clone()]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(pod_template),
            }),
            status: None,
        };
        let mut all: Vec<&ReplicaSet> = sets.iter().collect();
        all.push(&rs);
        let count = rollout::new_replicas(&self.d, &all, &rs);
        if let Some(spec) = rs.spec.as_mut() {
            spec.replicas = Some(count);
        }
        let want = desired(&self.d);
        template::set_new_annotations(
            &self.d,
            &mut rs,
            revision,
            Some((want, want + rollout::max_surge(&self.d))),
        );
        match self.sets.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                if count > 0 {
                    self.record(
                        Kind::Normal,
                        "ScalingReplicaSet",
                        &format!("Scaled up replica set {name} to {count}"),
                    )
                    .await;
                }
                self.set_revision(&revision.to_string()).await?;
                if self.has_deadline() {
                    let mut status = self.d.status.clone().unwrap_or_default();
                    let message = format!("Created new replica set \"{name}\"");
                    rollout::set_condition(
                        &mut status,
                        rollout::condition(
                            rollout::reason::PROGRESSING,
                            "True",
                            rollout::reason::NEW_RS,
                            message,
                            self.now,
                        ),
                    );
                    self.write_status(status).await?;
                }
                Ok(Some(created))
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let Some(taken) = self.sets.get_opt(&name).await? else {
                    return Ok(None);
                };
                let ours = claim::controller_of(&taken).is_some_and(|o| o.uid == self.owner.uid);
                let same = taken
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| template::equal_ignoring_hash(&spec.template, t));
                if ours && same {
                    return Ok(Some(taken));
                }
                // A foreign ReplicaSet has this name: the next hash must differ.
                let mut status = self.d.status.clone().unwrap_or_default();
                status.collision_count = Some(collisions.unwrap_or(0) + 1);
                self.write_status(status).await?;
                Ok(None)
            }
            Err(kube::Error::Api(refused)) if refused.code == 403 || refused.code == 422 => {
                let message = format!(
                    "Failed to create new replica set \"{name}\": {}",
                    refused.message
                );
                if self.has_deadline() {
                    let mut status = self.d.status.clone().unwrap_or_default();
                    rollout::set_condition(
                        &mut status,
                        rollout::condition(
                            rollout::reason::PROGRESSING,
                            "False",
                            rollout::reason::FAILED_RS_CREATE,
                            message.clone(),
                            self.now,
                        ),
                    );
                    self.write_status(status).await?;
                }
                self.record(Kind::Warning, rollout::reason::FAILED_RS_CREATE, &message)
                    .await;
                Err(kube::Error::Api(refused).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn has_deadline(&self) -> bool {
        self.d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .is_some_and(|s| s != i32::MAX)
    }

    fn progressing(&self) -> Option<&k8s_openapi::api::apps::v1::DeploymentCondition> {
        rollout::get_condition(self.d.status.as_ref()?, rollout::reason::PROGRESSING)
    }

    /// Resizes a ReplicaSet and records the sizes it was made for, if it is unchanged since
    /// read; `false` when it changed meanwhile.
    async fn scale(&self, rs: &ReplicaSet, scale: &Scale) -> Result<bool, Error> {
        let want = desired(&self.d);
        let mut annotated = rs.clone();
        let annotations_changed = template::set_replica_annotations(
            &mut annotated,
            want,
            want + rollout::max_surge(&self.d),
        );
        if scale.from == scale.to && !annotations_changed {
            return Ok(true);
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": rs.resource_version(),
                "annotations": {
                    template::DESIRED_REPLICAS: want.to_string(),
                    template::MAX_REPLICAS: (want + rollout::max_surge(&self.d)).to_string(),
                },
            },
            "spec": {"replicas": scale.to},
        });
        let landed = settled(
            self.sets
                .patch(&scale.name, &PatchParams::default(), &Patch::Merge(patch))
                .await,
        )?;
        if landed.is_none() {
            return Ok(false);
        }
        if scale.from != scale.to {
            let direction = if scale.to > scale.from { "up" } else { "down" };
            let message = format!(
                "Scaled {direction} replica set {} to {} from {}",
                scale.name, scale.to, scale.from
            );
            self.record(Kind::Normal, "ScalingReplicaSet", &message)
                .await;
        }
        Ok(true)
    }

    /// Whether any pod of an old ReplicaSet still runs or is terminating.
    async fn old_pods_running(&self, old: &[&ReplicaSet]) -> Result<bool, Error> {
        let uids: Vec<&str> = old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        if uids.is_empty() {
            return Ok(false);
        }
        let pods = self.pods.list(&ListParams::default()).await?.items;
        Ok(pods.iter().any(|pod| {
            claim::controller_of(pod).is_some_and(|o| uids.contains(&o.uid.as_str()))
                && !matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        }))
    }

    async fn prune_history(&self, old: &[&ReplicaSet]) -> Result<(), Error> {
        for name in rollout::history_to_drop(&self.d, old) {
            settled(self.sets.delete(&name, &DeleteParams::default()).await)?;
        }
        Ok(())
    }

    /// Makes the Deployment's revision annotation `revision`.
    async fn set_revision(&mut self, revision: &str) -> Result<(), Error> {
        if revision.is_empty()
            || self
                .d
                .annotations()
                .get(template::REVISION)
                .map(String::as_str)
                == Some(revision)
        {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {template::REVISION: revision}}});
        if let Some(updated) = settled(
            self.deployments
                .patch(
                    &self.d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await,
        )? {
            self.d.metadata.annotations = updated.metadata.annotations;
        }
        Ok(())
    }

    /// Writes `status` unless it is what the Deployment already reports.
    async fn write_status(&mut self, status: DeploymentStatus) -> Result<(), Error> {
        if self.d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let patch = json!({"status": status});
        settled(
            self.deployments
                .patch_status(
                    &self.d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await,
        )?;
        self.d.status = Some(status);
        Ok(())
    }
}
