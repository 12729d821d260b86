//! The namespace controller: a namespace being deleted is emptied of every namespaced
//! object (their own finalizers and grace periods respected), its status conditions say
//! what remains, as Kubernetes' do, and once nothing remains its `kubernetes` finalizer is
//! removed through `namespaces/finalize`, which lets the API delete it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::discovery::Kind;
use crate::reconciler::{Error, drive, retry_after, settled};

/// The finalizer the API puts on every namespace for this controller.
const FINALIZER: &str = "kubernetes";

/// How soon a namespace whose content is still going is looked at again; its objects'
/// deletions do not signal the namespace itself.
const RECHECK: Duration = Duration::from_secs(1);

struct Ctx {
    client: Client,
    kinds: Vec<Kind>,
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: Client, kinds: Vec<Kind>, shutdown: CancellationToken) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ctx = Arc::new(Ctx { client, kinds });
    let controller =
        Controller::new(namespaces, watcher::Config::default()).run(reconcile, error_policy, ctx);
    drive("namespace", controller, &shutdown).await;
}

fn error_policy(namespace: Arc<Namespace>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = %namespace.name_any(), %error, "emptying the namespace failed; retrying");
    Action::requeue(retry_after(3))
}

/// What is left in a namespace, by resource and by finalizer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Remaining {
    /// `plural.group` (core: `plural.`) to the number of objects left.
    pub resources: BTreeMap<String, usize>,
    /// Finalizer to the number of objects left that carry it.
    pub finalizers: BTreeMap<String, usize>,
}

async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let finalizers = namespace
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if namespace.metadata.deletion_timestamp.is_none() || !finalizers.iter().any(|f| f == FINALIZER)
    {
        return Ok(Action::await_change());
    }
    let name = namespace.name_any();
    let remaining = empty(&ctx, &name).await?;
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let conditions = conditions(&remaining);
    let current = namespace
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let changed = conditions.iter().any(|want| {
        !current.iter().any(|have| {
            have.type_ == want["type"]
                && have.status == want["status"]
                && have.message.as_deref() == want["message"].as_str()
        })
    });
    if changed {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let conditions: Vec<_> = conditions
            .into_iter()
            .map(|mut c| {
                c["lastTransitionTime"] = json!(now);
                c
            })
            .collect();
        namespaces
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": conditions}})),
            )
            .await?;
    }
    if !remaining.resources.is_empty() {
        return Ok(Action::requeue(RECHECK));
    }
    let mut finalized = (*namespace).clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    }
    finalized.metadata.managed_fields = None;
    settled(
        namespaces
            .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
            .await,
    )?;
    Ok(Action::await_change())
}

/// Deletes every namespaced object in `namespace` and says what is still there.
async fn empty(ctx: &Ctx, namespace: &str) -> Result<Remaining, Error> {
    let mut remaining = Remaining::default();
    for kind in ctx.kinds.iter().filter(|k| k.namespaced) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), namespace, &kind.resource);
        let listed = api.list(&ListParams::default()).await?;
        let live: Vec<&DynamicObject> = listed
            .items
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
            .collect();
        if !live.is_empty() {
            if kind.delete_collection {
                api.delete_collection(&DeleteParams::background(), &ListParams::default())
                    .await?;
            } else {
                for object in &live {
                    settled(
                        api.delete(&object.name_any(), &DeleteParams::background())
                            .await,
                    )?;
                }
            }
        }
        let left = api.list(&ListParams::default()).await?;
        if left.items.is_empty() {
            continue;
        }
        let label = format!("{}.{}", kind.resource.plural, kind.resource.group);
        remaining.resources.insert(label, left.items.len());
        for object in &left.items {
            for finalizer in object.metadata.finalizers.iter().flatten() {
                *remaining.finalizers.entry(finalizer.clone()).or_default() += 1;
            }
        }
    }
    Ok(remaining)
}

/// The deletion conditions Kubernetes' namespace controller reports, without their times.
pub fn conditions(remaining: &Remaining) -> Vec<serde_json::Value> {
    let content = if remaining.resources.is_empty() {
        json!({"type": "NamespaceContentRemaining", "status": "False", "reason": "ContentRemoved",
               "message": "All content successfully removed"})
    } else {
        let parts: Vec<String> = remaining
            .resources
            .iter()
            .map(|(resource, n)| format!("{resource} has {n} resource instances"))
            .collect();
        json!({"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
               "message": format!("Some resources are remaining: {}", parts.join(", "))})
    };
    let finalizers = if remaining.finalizers.is_empty() {
        json!({"type": "NamespaceFinalizersRemaining", "status": "False", "reason": "ContentHasNoFinalizers",
               "message": "All content-preserving finalizers finished"})
    } else {
        let parts: Vec<String> = remaining
            .finalizers
            .iter()
            .map(|(finalizer, n)| format!("{finalizer} in {n} resource instances"))
            .collect();
        json!({"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
               "message": format!("Some content in the namespace has finalizers remaining: {}", parts.join(", "))})
    };
    vec![
        json!({"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered",
               "message": "All resources successfully discovered"}),
        json!({"type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False", "reason": "ParsedGroupVersions",
               "message": "All legacy kube types successfully parsed"}),
        json!({"type": "NamespaceDeletionContentFailure", "status": "False", "reason": "ContentDeleted",
               "message": "All content successfully deleted, may be waiting on finalization"}),
        content,
        finalizers,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_read_as_kubernetes_writes_them() {
        let remaining = Remaining {
            resources: [
                ("configmaps.".to_owned(), 1),
                ("deployments.apps".to_owned(), 2),
            ]
            .into(),
            finalizers: [("example.com/hold".to_owned(), 1)].into(),
        };
        let listed = conditions(&remaining);
        assert_eq!(
            listed[3]["message"],
            "Some resources are remaining: configmaps. has 1 resource instances, deployments.apps has 2 resource instances"
        );
        assert_eq!(
            listed[4]["message"],
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
        );
        let done = conditions(&Remaining::default());
        assert_eq!(done[3]["reason"], "ContentRemoved");
        assert_eq!(done[4]["status"], "False");
    }
}
