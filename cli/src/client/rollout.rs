//! `slipway rollout status|history|undo|restart`: a deployment's rollouts as kubectl shows
//! and steers them: readiness counts until done, revisions from its ReplicaSets, a
//! template copied back from one of them, and a restart by a pod-template annotation.

use std::time::Duration;

use futures::TryStreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::target::{Session, Target};
use super::{api_failure, describe, kind_and_names, print};
use crate::exit::Failure;

/// The ReplicaSet annotation the deployment controller numbers revisions with.
const REVISION: &str = "deployment.kubernetes.io/revision";
/// The annotation `rollout restart` sets on the pod template.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// How often `undo` reads the deployment again after losing a race to another writer.
const CONFLICT_RETRIES: u32 = 5;
/// The label the deployment controller adds to each ReplicaSet's template.
const HASH: &str = "pod-template-hash";

#[derive(Debug, clap::Subcommand)]
pub(crate) enum RolloutCommand {
    /// Wait until a deployment's rollout finishes, printing its progress.
    #[command(after_help = "Example:\n  slipway rollout status deployment/web --timeout 2m")]
    Status {
        /// deployment/NAME
        #[arg(required = true, value_name = "deployment/NAME")]
        what: Vec<String>,
        /// Give up after this long (30s, 5m, 1h) [default: wait for good]
        #[arg(long, value_name = "DURATION", value_parser = slipway_preview_config::parse_duration)]
        timeout: Option<Duration>,
        #[command(flatten)]
        target: Target,
    },
    /// List a deployment's revisions (from its ReplicaSets), or show one's pod template.
    #[command(after_help = "Examples:\n  slipway rollout history deployment/web\n  \
        slipway rollout history deployment/web --revision 2")]
    History {
        /// deployment/NAME
        #[arg(required = true, value_name = "deployment/NAME")]
        what: Vec<String>,
        /// Show this revision's pod template [default: 0, every revision listed]
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        revision: Option<i64>,
        #[command(flatten)]
        target: Target,
    },
    /// Roll a deployment back to its previous revision, or to --to-revision.
    #[command(after_help = "Example:\n  slipway rollout undo deployment/web --to-revision 1")]
    Undo {
        /// deployment/NAME
        #[arg(required = true, value_name = "deployment/NAME")]
        what: Vec<String>,
        /// The revision to go back to [default: the one before the current]
        #[arg(long, value_name = "N")]
        to_revision: Option<i64>,
        #[command(flatten)]
        target: Target,
    },
    /// Replace every pod of a deployment by a new rollout of the same template.
    #[command(after_help = "Example:\n  slipway rollout restart deployment/web")]
    Restart {
        /// deployment/NAME
        #[arg(required = true, value_name = "deployment/NAME")]
        what: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
}

pub(crate) async fn rollout(
    command: RolloutCommand,
    shutdown: CancellationToken,
) -> Result<(), Failure> {
    match command {
        RolloutCommand::Status {
            what,
            timeout,
            target,
        } => {
            let (session, name) = deployment(&what, &target)?;
            let api: Api<Deployment> = Api::namespaced(session.client, &session.namespace);
            let watching = status(&api, &name);
            match timeout {
                Some(limit) => tokio::select! {
                    () = shutdown.cancelled() => Ok(()),
                    outcome = tokio::time::timeout(limit, watching) => outcome
                        .map_err(|_| Failure::failed("timed out waiting for the condition"))?,
                },
                None => tokio::select! {
                    () = shutdown.cancelled() => Ok(()),
                    outcome = watching => outcome,
                },
            }
        }
        RolloutCommand::History {
            what,
            revision,
            target,
        } => {
            if revision.is_some_and(|n| n < 0) {
                return Err(Failure::bad_input(
                    "--revision must be 0 (every revision) or more",
                ));
            }
            // As kubectl: 0 is its default, the list of every revision.
            let revision = revision.filter(|n| *n != 0);
            let (session, name) = deployment(&what, &target)?;
            let deployments: Api<Deployment> =
                Api::namespaced(session.client.clone(), &session.namespace);
            let current = deployments.get(&name).await.map_err(api_failure)?;
            let revisions = revisions(&session, &current).await?;
            if let Some(wanted) = revision {
                let (_, set) = revisions
                    .iter()
                    .find(|(revision, _)| *revision == wanted)
                    .ok_or_else(|| Failure::bad_input("unable to find the specified revision"))?;
                let set = serde_json::to_value(set)
                    .map_err(|e| Failure::failed(format!("cannot encode the ReplicaSet: {e}")))?;
                say!("deployment.apps/{name} with revision #{wanted}");
                print(&describe::pod_template(&set["spec"]["template"]));
                return Ok(());
            }
            say!("deployment.apps/{name}");
            say!("REVISION  CHANGE-CAUSE");
            for (revision, set) in revisions {
                let cause = set
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/change-cause"))
                    .map_or("<none>", String::as_str);
                say!("{revision:<8}  {cause}");
            }
            Ok(())
        }
        RolloutCommand::Undo {
            what,
            to_revision,
            target,
        } => {
            let (session, name) = deployment(&what, &target)?;
            undo(&session, &name, to_revision.unwrap_or(0)).await
        }
        RolloutCommand::Restart { what, target } => {
            let (session, name) = deployment(&what, &target)?;
            let api: Api<Deployment> = Api::namespaced(session.client, &session.namespace);
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let patch = json!({
                "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: now } } } }
            });
            api.patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .map_err(api_failure)?;
            say!("deployment.apps/{name} restarted");
            Ok(())
        }
    }
}

/// The session and deployment name `deployment/NAME` (or `deployment NAME`) names.
fn deployment(what: &[String], target: &Target) -> Result<(Session, String), Failure> {
    let pairs = kind_and_names(what)?;
    let [(kind, Some(name))] = pairs.as_slice() else {
        return Err(Failure::bad_input("name one deployment: deployment/NAME"));
    };
    if !matches!(
        kind.to_lowercase().as_str(),
        "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps"
    ) {
        return Err(Failure::bad_input(format!(
            "rollouts are tracked for deployments only, not {kind:?}"
        )));
    }
    Ok((target.connect()?, name.clone()))
}

/// Follows the deployment until its rollout finishes, printing each new state.
async fn status(api: &Api<Deployment>, name: &str) -> Result<(), Failure> {
    let mut said = String::new();
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    loop {
        let deployment = api.get(name).await.map_err(api_failure)?;
        if report(&deployment, &mut said)? {
            return Ok(());
        }
        let revision = deployment.metadata.resource_version.unwrap_or_default();
        let events = api.watch(&params, &revision).await.map_err(api_failure)?;
        futures::pin_mut!(events);
        while let Some(event) = events.try_next().await.map_err(api_failure)? {
            match event {
                WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                    if report(&d, &mut said)? {
                        return Ok(());
                    }
                }
                WatchEvent::Deleted(_) => {
                    return Err(Failure::failed(format!(
                        "deployment \"{name}\" was deleted during its rollout"
                    )));
                }
                WatchEvent::Bookmark(_) => {}
                // An expired revision: read the deployment afresh.
                WatchEvent::Error(_) => break,
            }
        }
    }
}

/// Prints the deployment's rollout state when it differs from what was said last; true
/// once the rollout finished.
fn report(deployment: &Deployment, said: &mut String) -> Result<bool, Failure> {
    let (message, done) = verdict(deployment)?;
    if message != *said {
        say!("{message}");
        *said = message;
    }
    Ok(done)
}

/// kubectl's reading of a deployment's rollout: the message and whether it is done.
fn verdict(deployment: &Deployment) -> Result<(String, bool), Failure> {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    if generation > status.observed_generation.unwrap_or(0) {
        return Ok((
            "Waiting for deployment spec update to be observed...".to_owned(),
            false,
        ));
    }
    let exceeded = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if exceeded {
        return Err(Failure::failed(format!(
            "deployment \"{name}\" exceeded its progress deadline"
        )));
    }
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let waiting = "Waiting for deployment";
    let message = if updated < wanted {
        format!(
            "{waiting} \"{name}\" rollout to finish: {updated} out of {wanted} new replicas have been updated..."
        )
    } else if replicas > updated {
        format!(
            "{waiting} \"{name}\" rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        )
    } else if available < updated {
        format!(
            "{waiting} \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."
        )
    } else {
        return Ok((
            format!("deployment \"{name}\" successfully rolled out"),
            true,
        ));
    };
    Ok((message, false))
}

/// The deployment's ReplicaSets by revision, oldest first.
async fn revisions(
    session: &Session,
    deployment: &Deployment,
) -> Result<Vec<(i64, ReplicaSet)>, Failure> {
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let sets: Api<ReplicaSet> = Api::namespaced(session.client.clone(), &session.namespace);
    let listed = sets
        .list(&ListParams::default())
        .await
        .map_err(api_failure)?;
    let mut revisions: Vec<(i64, ReplicaSet)> = listed
        .items
        .into_iter()
        .filter(|set| {
            set.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| *o.uid == uid && o.controller == Some(true))
        })
        .filter_map(|set| {
            let revision = set
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()?;
            Some((revision, set))
        })
        .collect();
    revisions.sort_by_key(|(revision, _)| *revision);
    Ok(revisions)
}

/// A template as compared across revisions: without the controller's hash label.
fn comparable(template: Option<&Value>) -> Value {
    let mut template = template.cloned().unwrap_or(Value::Null);
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH);
    }
    template
}

async fn undo(session: &Session, name: &str, to_revision: i64) -> Result<(), Failure> {
    if to_revision < 0 {
        return Err(Failure::bad_input("--to-revision must be 0 or more"));
    }
    let deployments: Api<Deployment> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut current = deployments.get(name).await.map_err(api_failure)?;
    let revisions = revisions(session, &current).await?;
    let chosen = if to_revision == 0 {
        let mut newest_first = revisions.iter().rev();
        newest_first.next();
        newest_first.next().ok_or_else(|| {
            Failure::bad_input(format!(
                "no rollout history found for deployment \"{name}\""
            ))
        })?
    } else {
        revisions
            .iter()
            .find(|(revision, _)| *revision == to_revision)
            .ok_or_else(|| {
                Failure::bad_input(format!(
                    "unable to find specified revision {to_revision} in history"
                ))
            })?
    };
    let (revision, set) = chosen;
    let set = serde_json::to_value(set)
        .map_err(|e| Failure::failed(format!("cannot encode the ReplicaSet: {e}")))?;
    let template = comparable(set.pointer("/spec/template"));
    // A whole replace on the revision read, read again when the controller wrote in
    // between: a merge patch would keep the current template's extra labels and
    // annotations.
    let mut attempts = 0;
    loop {
        let mut replacement = serde_json::to_value(&current)
            .map_err(|e| Failure::failed(format!("cannot encode the Deployment: {e}")))?;
        if comparable(replacement.pointer("/spec/template")) == template {
            say!(
                "deployment.apps/{name} skipped rollback (current template already matches revision {revision})"
            );
            return Ok(());
        }
        replacement["spec"]["template"] = template.clone();
        let updated: Deployment = serde_json::from_value(replacement)
            .map_err(|e| Failure::failed(format!("cannot decode the Deployment: {e}")))?;
        match deployments
            .replace(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 409 && attempts < CONFLICT_RETRIES => {
                attempts += 1;
                current = deployments.get(name).await.map_err(api_failure)?;
            }
            Err(e) => return Err(api_failure(e)),
        }
    }
    say!("deployment.apps/{name} rolled back");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(wanted: i32, status: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": { "name": "web", "generation": 2 },
            "spec": {
                "replicas": wanted,
                "selector": {},
                "template": {},
            },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn rollout_messages_are_kubectls() {
        let cases = [
            (
                json!({"observedGeneration": 1}),
                "Waiting for deployment spec update to be observed...",
                false,
            ),
            (
                json!({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 2}),
                "Waiting for deployment \"web\" rollout to finish: 1 out of 2 new replicas have been updated...",
                false,
            ),
            (
                json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 3}),
                "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...",
                false,
            ),
            (
                json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}),
                "Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available...",
                false,
            ),
            (
                json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}),
                "deployment \"web\" successfully rolled out",
                true,
            ),
        ];
        for (status, message, done) in cases {
            assert_eq!(
                verdict(&deployment(2, status)).unwrap(),
                (message.to_owned(), done)
            );
        }
        let stuck = json!({
            "observedGeneration": 2,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
        });
        assert_eq!(verdict(&deployment(2, stuck)).unwrap_err().code(), 1);
    }
}
