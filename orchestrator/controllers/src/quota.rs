//! The ResourceQuota controller: each quota's `status.hard` follows `spec.hard`, and
//! `status.used` is recounted from the objects in its namespace, so objects that existed
//! before the quota count and drift (a refund lost to a crash) is repaired. Admission
//! charges writes to the same `status.used` in between, by compare-and-swap.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota, Secret, Service};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use slipway_model::quantity::{Format, ParsedQuantity};
use slipway_model::quota::{Usage, counted_kind, usage};
use tokio_util::sync::CancellationToken;

use crate::discovery::Kind;
use crate::reconciler::{Error, drive, retry_after, settled};

/// Kinds a quota counts whose changes are not watched (deployments, ...) are recounted at
/// least this often, as Kubernetes' quota controller resyncs.
const RESYNC: Duration = Duration::from_secs(30);

struct Ctx {
    client: Client,
    kinds: Vec<Kind>,
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: Client, kinds: Vec<Kind>, shutdown: CancellationToken) {
    let quotas: Api<ResourceQuota> = Api::all(client.clone());
    let controller = Controller::new(quotas, watcher::Config::default());
    let store = controller.store();
    let controller = controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            in_namespace(&store),
        )
        .watches(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            in_namespace(&store),
        )
        .watches(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default(),
            in_namespace(&store),
        )
        .watches(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
            in_namespace(&store),
        )
        .run(reconcile, error_policy, Arc::new(Ctx { client, kinds }));
    drive("quota", controller, &shutdown).await;
}

/// Maps a change to an object to every quota of its namespace.
fn in_namespace<K: Resource>(
    quotas: &Store<ResourceQuota>,
) -> impl Fn(K) -> Vec<ObjectRef<ResourceQuota>> + Send + Sync + 'static {
    let quotas = quotas.clone();
    move |object: K| {
        let namespace = object.meta().namespace.clone();
        quotas
            .state()
            .iter()
            .filter(|q| q.metadata.namespace == namespace)
            .map(|q| ObjectRef::from_obj(q.as_ref()))
            .collect()
    }
}

fn error_policy(quota: Arc<ResourceQuota>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(quota = %quota.name_any(), %error, "recounting quota usage failed; retrying");
    Action::requeue(retry_after(3))
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some(namespace) = quota.namespace() else {
        return Ok(Action::await_change());
    };
    let hard: Vec<String> = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.as_ref())
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default();
    let zero = || ParsedQuantity::from_value(0, Format::DecimalSI);
    let mut used: Usage = hard.iter().map(|name| (name.clone(), zero())).collect();
    let counted: BTreeSet<(String, String)> = hard.iter().filter_map(|h| counted_kind(h)).collect();
    for (group, plural) in counted {
        let Some(kind) = ctx
            .kinds
            .iter()
            .find(|k| k.namespaced && k.resource.group == group && k.resource.plural == plural)
        else {
            continue;
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &namespace, &kind.resource);
        for object in api.list(&ListParams::default()).await?.items {
            let object = serde_json::to_value(&object).unwrap_or(Value::Null);
            for (name, amount) in usage(&group, &plural, &object).usage {
                if let Some(total) = used.get_mut(&name)
                    && let Ok(sum) = total.checked_add(&amount)
                {
                    *total = sum;
                }
            }
        }
    }
    let used: serde_json::Map<String, Value> = used
        .iter()
        .map(|(name, amount)| (name.clone(), json!(amount.canonical())))
        .collect();
    let hard_now = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let status = quota.status.as_ref();
    let same_hard = status.and_then(|s| s.hard.as_ref()) == Some(&hard_now);
    let same_used = status.and_then(|s| s.used.as_ref()).is_some_and(|current| {
        current.len() == used.len()
            && current.iter().all(|(k, v)| {
                let now = used.get(k).and_then(Value::as_str);
                now.is_some_and(|now| same_amount(&v.0, now))
            })
    });
    if !(same_hard && same_used) {
        // Conditional on the version read: an admission charge since then wins, and the
        // recount runs again on the change it made.
        let patch = json!({
            "metadata": {"resourceVersion": quota.resource_version()},
            "status": {"hard": hard_now, "used": used},
        });
        settled(
            Api::<ResourceQuota>::namespaced(ctx.client.clone(), &namespace)
                .patch_status(
                    &quota.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await,
        )?;
    }
    Ok(Action::requeue(RESYNC))
}

fn same_amount(a: &str, b: &str) -> bool {
    match (ParsedQuantity::parse(a), ParsedQuantity::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
