//! The garbage collector: Kubernetes' ownerReference cascades (background, foreground and
//! orphan). It watches every kind the API serves, keeps the [`graph::Graph`] of owners and
//! dependents, and carries out what [`graph::Graph::plan`] decides, through the API only.

pub mod graph;

use std::collections::{HashMap, HashSet, VecDeque};

use futures::StreamExt;
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::discovery::Kind;
use crate::reconciler::{Action, Error, retry_after, settled};
use graph::{Graph, Node, Step};

/// The field manager the collector's writes are recorded under.
const MANAGER: &str = "garbage-collector";

/// What reconciles share: the client and the kinds, by index.
struct Ctx {
    client: Client,
    kinds: Vec<Kind>,
}

impl Ctx {
    fn api(&self, node: &Node) -> Api<DynamicObject> {
        let kind = &self.kinds[node.kind];
        match (&node.namespace, kind.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &kind.resource),
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
    }
}

/// Runs the collector over `kinds` until `shutdown` is cancelled; failed requests are
/// retried, never fatal.
pub async fn run(client: Client, kinds: Vec<Kind>, shutdown: CancellationToken) {
    let streams = kinds.iter().enumerate().map(|(i, kind)| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |event| (i, event))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let ctx = Ctx { client, kinds };
    let mut graph = Graph::default();
    let mut queue = Queue::default();
    let mut relisting: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut failures: HashMap<String, u32> = HashMap::new();
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<String>();

    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            Some((kind, event)) = events.next() => match event {
                Ok(event) => apply_event(&mut graph, &mut queue, &mut relisting, kind, event),
                // The watcher backs off and re-lists by itself; say so once per failure.
                Err(e) => tracing::warn!(kind = %ctx.kinds[kind].resource.plural, error = %e, "garbage collector watch failed"),
            },
            Some(uid) = retry_rx.recv() => queue.push(uid),
            Some(uid) = async { queue.pop() }, if !queue.is_empty() => {
                match reconcile(&ctx, &graph, &uid).await {
                    Ok(action) => {
                        failures.remove(&uid);
                        if let Action::RequeueAfter(after) = action {
                            requeue(&retry_tx, &shutdown, uid, after);
                        }
                    }
                    Err(e) => {
                        let count = failures.entry(uid.clone()).or_default();
                        tracing::warn!(%uid, error = %e, attempt = *count, "garbage collection failed; retrying");
                        let after = retry_after(*count);
                        *count += 1;
                        requeue(&retry_tx, &shutdown, uid, after);
                    }
                }
            }
        }
    }
}

fn requeue(
    tx: &mpsc::UnboundedSender<String>,
    shutdown: &CancellationToken,
    uid: String,
    after: std::time::Duration,
) {
    let tx = tx.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(after) => { let _ = tx.send(uid); }
        }
    });
}

fn apply_event(
    graph: &mut Graph,
    queue: &mut Queue,
    relisting: &mut HashMap<usize, HashSet<String>>,
    kind: usize,
    event: watcher::Event<DynamicObject>,
) {
    match event {
        watcher::Event::Init => {
            relisting.insert(kind, HashSet::new());
        }
        watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
            if let Some((uid, node)) = node_of(kind, &object) {
                if let Some(seen) = relisting.get_mut(&kind) {
                    seen.insert(uid.clone());
                }
                queue.extend(graph.upsert(&uid, node));
            }
        }
        watcher::Event::Delete(object) => {
            if let Some(uid) = object.metadata.uid {
                queue.extend(graph.remove(&uid));
            }
        }
        watcher::Event::InitDone => {
            // Whatever the fresh list no longer holds was deleted while the watch was down.
            let seen = relisting.remove(&kind).unwrap_or_default();
            for uid in graph.uids_of_kind(kind) {
                if !seen.contains(&uid) {
                    queue.extend(graph.remove(&uid));
                }
            }
        }
    }
}

fn node_of(kind: usize, object: &DynamicObject) -> Option<(String, Node)> {
    let meta = &object.metadata;
    Some((
        meta.uid.clone()?,
        Node {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone()?,
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            terminating: meta.deletion_timestamp.is_some(),
        },
    ))
}

/// Uids waiting to be reconciled, each at most once.
#[derive(Default)]
struct Queue {
    order: VecDeque<String>,
    queued: HashSet<String>,
}

impl Queue {
    fn push(&mut self, uid: String) {
        if self.queued.insert(uid.clone()) {
            self.order.push_back(uid);
        }
    }

    fn extend(&mut self, uids: Vec<String>) {
        for uid in uids {
            self.push(uid);
        }
    }

    fn pop(&mut self) -> Option<String> {
        let uid = self.order.pop_front()?;
        self.queued.remove(&uid);
        Some(uid)
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Carries out the plan for one object. Writes carry the resourceVersion or uid they were
/// planned from; one that lost a race (409) or found the object gone (404) needs nothing
/// more, as the change that beat it arrives as an event and is planned again.
async fn reconcile(ctx: &Ctx, graph: &Graph, uid: &str) -> Result<Action, Error> {
    for step in graph.plan(uid) {
        let result = match step {
            Step::Unown { dependent, owner } => {
                let Some(node) = graph.get(&dependent) else {
                    continue;
                };
                let kept: Vec<_> = node
                    .owners
                    .iter()
                    .filter(|o| o.uid != owner)
                    .cloned()
                    .collect();
                set_owners(ctx, node, kept).await
            }
            Step::Delete { uid, foreground } => {
                let Some(node) = graph.get(&uid) else {
                    continue;
                };
                delete(ctx, node, &uid, foreground).await
            }
            Step::Release { uid, finalizer } => {
                let Some(node) = graph.get(&uid) else {
                    continue;
                };
                let kept: Vec<&String> =
                    node.finalizers.iter().filter(|f| *f != finalizer).collect();
                let patch = json!({"metadata": {
                    "resourceVersion": node.resource_version,
                    "finalizers": if kept.is_empty() { json!(null) } else { json!(kept) },
                }});
                ctx.api(node)
                    .patch(&node.name, &patch_params(), &Patch::Merge(patch))
                    .await
                    .map(drop)
            }
            Step::Verify {
                dependent,
                missing,
                all_missing,
            } => {
                let Some(node) = graph.get(&dependent) else {
                    continue;
                };
                let mut gone = Vec::new();
                for reference in &missing {
                    if owner_absent(ctx, node, reference).await? {
                        gone.push(reference.uid.clone());
                    }
                }
                if gone.is_empty() {
                    // The owners exist; the graph had not seen them yet.
                    continue;
                }
                if all_missing && gone.len() == missing.len() {
                    delete(ctx, node, &dependent, false).await
                } else {
                    let kept: Vec<_> = node
                        .owners
                        .iter()
                        .filter(|o| !gone.contains(&o.uid))
                        .cloned()
                        .collect();
                    set_owners(ctx, node, kept).await
                }
            }
        };
        settled(result)?;
    }
    Ok(Action::AwaitChange)
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// Replaces a dependent's ownerReferences, on the condition that it has not changed since.
async fn set_owners(
    ctx: &Ctx,
    node: &Node,
    owners: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {
        "resourceVersion": node.resource_version,
        "ownerReferences": if owners.is_empty() { json!(null) } else { json!(owners) },
    }});
    ctx.api(node)
        .patch(&node.name, &patch_params(), &Patch::Merge(patch))
        .await
        .map(drop)
}

/// Deletes the object with `uid` (not a namesake created since), cascading to its own
/// dependents in the foreground or background.
async fn delete(ctx: &Ctx, node: &Node, uid: &str, foreground: bool) -> Result<(), kube::Error> {
    let params = DeleteParams {
        propagation_policy: Some(if foreground {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        }),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    ctx.api(node).delete(&node.name, &params).await.map(drop)
}

/// Whether the API confirms an owner is gone: no object of its kind and name where the
/// dependent can reference it, or one with another uid. An owner of a kind the API does
/// not serve cannot be confirmed gone, so it is kept.
async fn owner_absent(
    ctx: &Ctx,
    dependent: &Node,
    reference: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<bool, Error> {
    let Some(kind) = ctx.kinds.iter().position(|k| {
        k.resource.api_version == reference.api_version && k.resource.kind == reference.kind
    }) else {
        return Ok(false);
    };
    let api: Api<DynamicObject> = if ctx.kinds[kind].namespaced {
        let Some(ns) = &dependent.namespace else {
            // A cluster-scoped dependent cannot have a namespaced owner: never valid.
            return Ok(true);
        };
        Api::namespaced_with(ctx.client.clone(), ns, &ctx.kinds[kind].resource)
    } else {
        Api::all_with(ctx.client.clone(), &ctx.kinds[kind].resource)
    };
    let found = api.get_opt(&reference.name).await?;
    Ok(found.is_none_or(|owner| owner.metadata.uid.as_deref() != Some(reference.uid.as_str())))
}
