//! The scheduler's IO: one task that owns the [`Cache`] and the [`Queue`], fed by watches
//! of Nodes and Pods. It decides for one pending pod at a time against the cache, assumes
//! the pod onto its node at once and hands the binding (`pods/binding`) to a task of its
//! own, with up to [`BINDS_IN_FLIGHT`] bindings in flight, so throughput is not one round
//! trip per pod. A binding that fails is forgotten and the pod retried after its backoff.
//!
//! A pod that fits nowhere gets `PodScheduled=False` (reason `Unschedulable`, Kubernetes'
//! message) and a `FailedScheduling` Event, and is parked until a node is added or changes
//! in a way that matters, a bound pod goes, or the slow flush comes round. Events are
//! written by a task of their own from a bounded queue; when it is full they are dropped,
//! as Kubernetes' event broadcaster drops them, so they never hold up binding.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use slipway_controllers::events::{Kind, Recorder};
use slipway_controllers::reconciler::{Error, settled};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, Decision};
use crate::filter::{PodInfo, PodRequests};
use crate::profile::{self, PROFILES, Profile};
use crate::queue::Queue;

/// Bindings in flight at once; the bench's bare binding loop uses the same.
pub const BINDS_IN_FLIGHT: usize = 128;
/// Status writes for unschedulable pods in flight at once.
const STATUSES_IN_FLIGHT: usize = 16;
/// Events waiting to be written; past this they are dropped (upstream's queue is 1,000).
const EVENTS_QUEUED: usize = 1000;
/// Decisions made before the loop looks at its watches again.
const DECISIONS_PER_TURN: usize = 256;
/// Watch events decoded ahead of the loop; the watches wait when it is behind.
const CHANGES_QUEUED: usize = 1024;
/// Watch events handled before the loop decides again.
const CHANGES_PER_TURN: usize = 256;
/// How often parked pods are checked for the slow flush.
const FLUSH_EVERY: Duration = Duration::from_secs(30);

/// An Event to write.
struct Note {
    profile: &'static str,
    object: ObjectReference,
    kind: Kind,
    reason: &'static str,
    message: String,
}

/// A binding's outcome.
struct Bound {
    uid: String,
    pod: Arc<Pod>,
    profile: &'static str,
    node: String,
    result: Result<(), kube::Error>,
}

/// A watch event, boxed: a Pod event is large and node events would pay for its size.
enum Change {
    Node(Box<watcher::Event<Node>>),
    Pod(Box<watcher::Event<Pod>>),
}

struct Scheduler {
    client: Client,
    cache: Cache,
    queue: Queue,
    binds: JoinSet<Bound>,
    /// Watch forwarders, the Event writer and status writes.
    helpers: JoinSet<()>,
    status_slots: Arc<Semaphore>,
    notes: mpsc::Sender<Note>,
    /// Names seen since a node relist began; `None` outside a relist.
    relisting_nodes: Option<HashSet<String>>,
    /// Uids seen since a pod relist began.
    relisting_pods: Option<HashSet<String>>,
    nodes_synced: bool,
    pods_synced: bool,
}

/// Schedules pods until `shutdown` is cancelled. Decisions wait until both watches have
/// listed everything once, so no decision is made on half a picture.
///
/// # Errors
///
/// None today: watches retry with backoff and failed writes are retried per pod. The
/// signature matches the controllers' so the leader election can run it.
pub async fn schedule(client: Client, shutdown: CancellationToken) -> Result<(), Error> {
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Change::Node(Box::new(e))));
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Change::Pod(Box::new(e))));
    let (changed, mut changes) = mpsc::channel(CHANGES_QUEUED);
    let (notes, queued) = mpsc::channel(EVENTS_QUEUED);
    let mut scheduler = Scheduler {
        client: client.clone(),
        cache: Cache::default(),
        queue: Queue::default(),
        binds: JoinSet::new(),
        helpers: JoinSet::new(),
        status_slots: Arc::new(Semaphore::new(STATUSES_IN_FLIGHT)),
        notes,
        relisting_nodes: None,
        relisting_pods: None,
        nodes_synced: false,
        pods_synced: false,
    };
    scheduler.helpers.spawn(write_events(client, queued));
    scheduler.helpers.spawn(forward(nodes, changed.clone()));
    scheduler.helpers.spawn(forward(pods, changed));
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    loop {
        let more = scheduler.decide_ready();
        let ready_at = scheduler.queue.next_ready();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(bound) = scheduler.binds.join_next(), if !scheduler.binds.is_empty() => {
                match bound {
                    Ok(bound) => scheduler.on_bound(bound),
                    Err(e) => tracing::warn!(error = %e, "a binding task failed"),
                }
            }
            Some(change) = changes.recv() => {
                scheduler.on_change(change);
                for _ in 1..CHANGES_PER_TURN {
                    let Ok(change) = changes.try_recv() else {
                        break;
                    };
                    scheduler.on_change(change);
                }
            }
            () = sleep_until(ready_at), if ready_at.is_some() => {}
            _ = flush.tick() => scheduler.queue.flush(std_now()),
            () = std::future::ready(()), if more => {}
        }
        while let Some(done) = scheduler.helpers.try_join_next() {
            if let Err(e) = done {
                tracing::warn!(error = %e, "a scheduler task failed");
            }
        }
    }
    Ok(())
}

/// Feeds a watch's events to the loop from a task of its own, so decoding them runs beside
/// the loop rather than in it.
async fn forward(
    events: impl futures::Stream<Item = Result<Change, watcher::Error>> + Send,
    changed: mpsc::Sender<Change>,
) {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(change) => {
                if changed.send(change).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "scheduler watch failed; retrying"),
        }
    }
}

async fn sleep_until(at: Option<std::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(Instant::from_std(at)).await;
    }
}

fn std_now() -> std::time::Instant {
    Instant::now().into_std()
}

/// A pod's tie-breaker: the same pod breaks ties the same way.
fn tie(uid: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    uid.hash(&mut hasher);
    hasher.finish()
}

fn reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Scheduler {
    fn on_change(&mut self, change: Change) {
        match change {
            Change::Node(event) => self.on_node_event(*event),
            Change::Pod(event) => self.on_pod_event(*event),
        }
    }

    fn on_node_event(&mut self, event: watcher::Event<Node>) {
        let now = std_now();
        match event {
            watcher::Event::Init => self.relisting_nodes = Some(HashSet::new()),
            watcher::Event::InitApply(node) => {
                if let Some(seen) = self.relisting_nodes.as_mut() {
                    seen.insert(node.name_any());
                }
                self.on_node(&node, now);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting_nodes.take() {
                    for name in self.cache.node_names() {
                        if !seen.contains(&name) {
                            self.cache.remove_node(&name);
                        }
                    }
                }
                self.nodes_synced = true;
            }
            watcher::Event::Apply(node) => self.on_node(&node, now),
            watcher::Event::Delete(node) => self.cache.remove_node(&node.name_any()),
        }
    }

    fn on_pod_event(&mut self, event: watcher::Event<Pod>) {
        let now = std_now();
        match event {
            watcher::Event::Init => self.relisting_pods = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(seen), Some(uid)) =
                    (self.relisting_pods.as_mut(), pod.metadata.uid.clone())
                {
                    seen.insert(uid);
                }
                self.on_pod(pod, now);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting_pods.take() {
                    let mut freed = false;
                    for uid in self.cache.bound_pods() {
                        if !seen.contains(&uid) {
                            freed |= self.cache.remove_pod(&uid);
                        }
                    }
                    for uid in self.queue.uids() {
                        if !seen.contains(&uid) {
                            self.queue.remove(&uid);
                        }
                    }
                    if freed {
                        self.queue.wake_all(now);
                    }
                }
                self.pods_synced = true;
            }
            watcher::Event::Apply(pod) => self.on_pod(pod, now),
            watcher::Event::Delete(pod) => {
                let Some(uid) = pod.metadata.uid.as_deref() else {
                    return;
                };
                self.queue.remove(uid);
                if self.cache.remove_pod(uid) {
                    self.queue.wake_all(now);
                }
            }
        }
    }

    fn on_node(&mut self, node: &Node, now: std::time::Instant) {
        if self.cache.set_node(node) {
            self.queue.wake_all(now);
        }
    }

    fn on_pod(&mut self, pod: Pod, now: std::time::Instant) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if let Some(node) = bound_node(&pod) {
            self.queue.remove(&uid);
            if finished(&pod) {
                if self.cache.remove_pod(&uid) {
                    self.queue.wake_all(now);
                }
            } else {
                self.cache.observe_bound(&uid, node, PodRequests::new(&pod));
            }
            return;
        }
        if pod.metadata.deletion_timestamp.is_some()
            || finished(&pod)
            || profile::of(&pod).is_none()
        {
            self.queue.remove(&uid);
            return;
        }
        self.queue.upsert(&uid, Arc::new(pod), now);
    }

    /// Decides for ready pods while bindings may start; true when it stopped with more to do.
    fn decide_ready(&mut self) -> bool {
        if !(self.nodes_synced && self.pods_synced) {
            return false;
        }
        let now = std_now();
        for _ in 0..DECISIONS_PER_TURN {
            if self.binds.len() >= BINDS_IN_FLIGHT {
                return false;
            }
            let Some((uid, pod)) = self.queue.pop(now) else {
                return false;
            };
            let Some(profile) = profile::of(&pod) else {
                self.queue.remove(&uid);
                continue;
            };
            let info = PodInfo::new(&pod);
            match self.cache.decide(&info, &profile, tie(&uid)) {
                Decision::Bind(node) => {
                    self.cache.assume(&uid, &node, info.requests.clone());
                    self.binds
                        .spawn(bind(self.client.clone(), uid, pod, profile.name, node));
                }
                Decision::Unschedulable(message) => {
                    self.queue.park(&uid, now);
                    self.unschedulable(&pod, profile, message);
                }
            }
        }
        true
    }

    fn on_bound(&mut self, bound: Bound) {
        match bound.result {
            Ok(()) => {
                let message = format!(
                    "Successfully assigned {}/{} to {}",
                    bound.pod.namespace().unwrap_or_default(),
                    bound.pod.name_any(),
                    bound.node
                );
                self.note(
                    &bound.pod,
                    bound.profile,
                    Kind::Normal,
                    "Scheduled",
                    message,
                );
            }
            Err(e) => {
                tracing::debug!(pod = %bound.pod.name_any(), node = %bound.node, error = %e, "binding failed");
                let now = std_now();
                if self.cache.forget(&bound.uid) {
                    self.queue.wake_all(now);
                }
                match e {
                    kube::Error::Api(status) if status.code == 404 => {
                        self.queue.remove(&bound.uid);
                    }
                    // Bound meanwhile (the watch will say so), refused, or the API is
                    // struggling: try again after the backoff.
                    _ => self.queue.retry(&bound.uid, now),
                }
            }
        }
    }

    fn note(
        &self,
        pod: &Pod,
        profile: &'static str,
        kind: Kind,
        reason: &'static str,
        message: String,
    ) {
        let note = Note {
            profile,
            object: reference(pod),
            kind,
            reason,
            message,
        };
        if self.notes.try_send(note).is_err() {
            tracing::debug!(reason, "event queue full; dropping an event");
        }
    }

    /// Reports a pod that fits nowhere: an Event every time, a status write only when
    /// the condition says something new.
    fn unschedulable(&mut self, pod: &Arc<Pod>, profile: Profile, message: String) {
        self.note(
            pod,
            profile.name,
            Kind::Warning,
            "FailedScheduling",
            message.clone(),
        );
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        if current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        }) {
            return;
        }
        let since = current
            .filter(|c| c.status == "False")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| k8s_openapi::jiff::Timestamp::now().to_string());
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": since,
        }]}});
        let pods: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let name = pod.name_any();
        let slots = Arc::clone(&self.status_slots);
        self.helpers.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let written = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await;
            if let Err(e) = settled(written) {
                tracing::debug!(pod = %name, error = %e, "reporting an unschedulable pod failed");
            }
        });
    }
}

/// Binds one pod through `pods/binding`.
async fn bind(
    client: Client,
    uid: String,
    pod: Arc<Pod>,
    profile: &'static str,
    node: String,
) -> Bound {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let result = Api::<Pod>::namespaced(client, &namespace)
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
        .map(drop);
    Bound {
        uid,
        pod,
        profile,
        node,
        result,
    }
}

/// Writes queued Events, one recorder per profile so each signs as its scheduler name.
async fn write_events(client: Client, mut queued: mpsc::Receiver<Note>) {
    let recorders: Vec<(&'static str, Recorder)> = PROFILES
        .iter()
        .map(|p| (p.name, Recorder::new(client.clone(), p.name)))
        .collect();
    while let Some(note) = queued.recv().await {
        if let Some((_, recorder)) = recorders.iter().find(|(name, _)| *name == note.profile) {
            recorder
                .record(&note.object, note.kind, note.reason, &note.message)
                .await;
        }
    }
}
