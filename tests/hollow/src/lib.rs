//! Hollow nodes, as Kubernetes' kubemark runs them: Node objects served by a small kubelet
//! that runs no containers, so the control plane (scheduler, controllers) can be tested and
//! measured against many nodes in one process.
//!
//! Each node is registered with its capacity (allocatable the same), a Ready condition and
//! a Lease in `kube-node-lease`, renewed every [`Options::lease_renewal`] (10 s by default,
//! spread over the interval rather than all at once); the Ready heartbeat is posted every
//! [`Options::status_report`]. One watch of bound pods serves every node. A pod bound to
//! one of them is reported Running and Ready at once, with an IP of its own from
//! 127.1.0.1 upward; a bound pod given a deletion timestamp is deleted outright, as a
//! kubelet finishes a termination, so deletions complete. Writes are bounded by
//! [`Options::in_flight`], so a thousand nodes in one process do not flood the API.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why hollow nodes could not start or join.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or could not be reached.
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    /// A node's description did not make a valid Node.
    #[error("invalid node {0}: {1}")]
    Invalid(String, serde_json::Error),
}

/// What a hollow node offers and how it is marked.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Capacity by resource name (allocatable is the same).
    pub capacity: BTreeMap<String, String>,
    /// Labels besides `kubernetes.io/hostname`, `kubernetes.io/os` and `kubernetes.io/arch`.
    pub labels: BTreeMap<String, String>,
    /// Taints, as `(key, value, effect)`.
    pub taints: Vec<(String, String, String)>,
}

impl Shape {
    /// A node of `cpu`, `memory` and `pods`, with 100 GiB of ephemeral storage.
    pub fn new(cpu: &str, memory: &str, pods: u32) -> Self {
        Shape {
            capacity: BTreeMap::from([
                ("cpu".to_owned(), cpu.to_owned()),
                ("memory".to_owned(), memory.to_owned()),
                ("pods".to_owned(), pods.to_string()),
                ("ephemeral-storage".to_owned(), "100Gi".to_owned()),
            ]),
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }

    /// Adds or sets a resource, e.g. `nvidia.com/gpu`.
    pub fn resource(mut self, name: &str, quantity: &str) -> Self {
        self.capacity.insert(name.to_owned(), quantity.to_owned());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a taint.
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.taints
            .push((key.to_owned(), value.to_owned(), effect.to_owned()));
        self
    }
}

impl Default for Shape {
    /// 4 CPUs, 16 GiB, 110 pods: a small machine.
    fn default() -> Self {
        Shape::new("4", "16Gi", 110)
    }
}

/// How the hollow kubelet paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How often each node's Lease is renewed (the kubelet's 10 s).
    pub lease_renewal: Duration,
    /// How often each node posts its Ready heartbeat (the kubelet's 5 min when nothing
    /// changes).
    pub status_report: Duration,
    /// Writes in flight at once, across all nodes.
    pub in_flight: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lease_renewal: Duration::from_secs(10),
            status_report: Duration::from_secs(300),
            in_flight: 32,
        }
    }
}

/// One registered node.
struct Member {
    host_ip: String,
    renewed: Instant,
    reported: Instant,
}

/// What the tasks share.
struct Shared {
    client: Client,
    options: Options,
    nodes: Mutex<BTreeMap<String, Member>>,
    next_pod_ip: AtomicU32,
    next_host_ip: AtomicU32,
}

impl Shared {
    fn host_ip(&self, node: &str) -> Option<String> {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .map(|m| m.host_ip.clone())
    }
}

/// Running hollow nodes. Dropping them stops their kubelet; the Node objects stay.
pub struct HollowNodes {
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

/// The `n`th pod IP: 127.x.y.z with x from 1, and y and z never 0 or 255, so no pod gets
/// a network or broadcast-looking address or the host's 127.0.0.1.
pub fn pod_ip(n: u32) -> String {
    let z = 1 + n % 254;
    let y = 1 + (n / 254) % 254;
    let x = 1 + (n / (254 * 254)) % 254;
    format!("127.{x}.{y}.{z}")
}

/// The `n`th node's IP, 127.0.y.z, apart from every pod IP.
fn host_ip(n: u32) -> String {
    format!("127.0.{}.{}", 1 + (n / 254) % 254, 1 + n % 254)
}

fn now() -> String {
    Timestamp::now().to_string()
}

impl HollowNodes {
    /// Registers `nodes` and starts serving them.
    ///
    /// # Errors
    ///
    /// When a node cannot be registered.
    pub async fn start(
        client: Client,
        nodes: impl IntoIterator<Item = (String, Shape)>,
        options: Options,
    ) -> Result<HollowNodes, Error> {
        let shared = Arc::new(Shared {
            client,
            options,
            nodes: Mutex::new(BTreeMap::new()),
            next_pod_ip: AtomicU32::new(0),
            next_host_ip: AtomicU32::new(0),
        });
        let hollow = HollowNodes {
            shared,
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        };
        futures::stream::iter(nodes)
            .map(|(name, shape)| hollow.join(name, shape))
            .buffer_unordered(options.in_flight.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        let mut hollow = hollow;
        let (jobs, queued) = mpsc::unbounded_channel();
        hollow.tasks.spawn(watch_pods(
            Arc::clone(&hollow.shared),
            jobs,
            hollow.stop.clone(),
        ));
        hollow.tasks.spawn(work(
            Arc::clone(&hollow.shared),
            queued,
            hollow.stop.clone(),
        ));
        hollow
            .tasks
            .spawn(heartbeat(Arc::clone(&hollow.shared), hollow.stop.clone()));
        Ok(hollow)
    }

    /// `count` nodes of one shape named `prefix-0000`, `prefix-0001`, ...
    ///
    /// # Errors
    ///
    /// When a node cannot be registered.
    pub async fn uniform(
        client: Client,
        prefix: &str,
        count: usize,
        shape: &Shape,
        options: Options,
    ) -> Result<HollowNodes, Error> {
        let nodes = (0..count).map(|i| (format!("{prefix}-{i:04}"), shape.clone()));
        HollowNodes::start(client, nodes, options).await
    }

    /// Registers one more node, which the kubelet serves from then on.
    ///
    /// # Errors
    ///
    /// When the Node, its status or its Lease cannot be written.
    pub async fn join(&self, name: String, shape: Shape) -> Result<(), Error> {
        let shared = &self.shared;
        let host = host_ip(shared.next_host_ip.fetch_add(1, Ordering::Relaxed));
        let mut labels = shape.labels.clone();
        labels.insert("kubernetes.io/hostname".into(), name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        let taints: Vec<Value> = shape
            .taints
            .iter()
            .map(|(key, value, effect)| json!({"key": key, "value": value, "effect": effect}))
            .collect();
        let status = node_status(&shape, &host);
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": if taints.is_empty() { json!({}) } else { json!({"taints": taints}) },
            "status": status["status"],
        }))
        .map_err(|e| Error::Invalid(name.clone(), e))?;
        let nodes: Api<Node> = Api::all(shared.client.clone());
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            // Registered before: report afresh, as a restarted kubelet does.
            Err(kube::Error::Api(conflict)) if conflict.code == 409 => {
                nodes
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        let leases: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now()},
        }))
        .map_err(|e| Error::Invalid(name.clone(), e))?;
        match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => renew(&leases, &name).await?,
            Err(e) => return Err(e.into()),
        }
        shared
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                name,
                Member {
                    host_ip: host,
                    renewed: Instant::now(),
                    reported: Instant::now(),
                },
            );
        Ok(())
    }

    /// The names of the nodes served.
    pub fn names(&self) -> Vec<String> {
        self.shared
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Stops the kubelet and waits for its tasks to end.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A registered node's status: capacity, a Ready condition with a fresh heartbeat,
/// addresses and system info.
fn node_status(shape: &Shape, host: &str) -> Value {
    let now = now();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({"status": {
        "capacity": shape.capacity,
        "allocatable": shape.capacity,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": host}],
        "nodeInfo": {
            "architecture": "amd64", "operatingSystem": "linux", "osImage": "hollow",
            "kernelVersion": "hollow", "kubeletVersion": "v1.32.0-hollow",
            "kubeProxyVersion": "v1.32.0-hollow", "containerRuntimeVersion": "hollow://1.0",
            "bootID": "", "machineID": "", "systemUUID": "",
        },
    }})
}

async fn renew(leases: &Api<Lease>, name: &str) -> Result<(), kube::Error> {
    leases
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"renewTime": now()}})),
        )
        .await
        .map(drop)
}

/// Renews every Lease once per `lease_renewal` and posts each node's Ready heartbeat once
/// per `status_report`, a slice of the nodes per tick so the writes spread over the interval.
async fn heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    const TICK: Duration = Duration::from_millis(50);
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    let nodes_api: Api<Node> = Api::all(shared.client.clone());
    let mut ticks = tokio::time::interval(TICK);
    let ticks_per_round = (shared.options.lease_renewal.as_millis() / TICK.as_millis()).max(1);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let (renewals, reports) = {
            let mut nodes = shared.nodes.lock().unwrap_or_else(PoisonError::into_inner);
            let slice = usize::try_from((nodes.len() as u128).div_ceil(ticks_per_round))
                .unwrap_or(usize::MAX);
            let mut renewals = Vec::new();
            let mut reports = Vec::new();
            for (name, member) in nodes.iter_mut() {
                if renewals.len() >= slice {
                    break;
                }
                if member.renewed.elapsed() >= shared.options.lease_renewal {
                    member.renewed = Instant::now();
                    renewals.push(name.clone());
                }
                if member.reported.elapsed() >= shared.options.status_report {
                    member.reported = Instant::now();
                    reports.push(name.clone());
                }
            }
            (renewals, reports)
        };
        let renewing = futures::stream::iter(renewals).for_each_concurrent(
            shared.options.in_flight.max(1),
            |name| {
                let leases = leases.clone();
                async move {
                    if let Err(e) = renew(&leases, &name).await {
                        tracing::debug!(error = %e, "renewing a hollow node's lease failed");
                    }
                }
            },
        );
        let reporting = futures::stream::iter(reports).for_each_concurrent(
            shared.options.in_flight.max(1),
            |name| {
                let nodes_api = nodes_api.clone();
                async move {
                    if let Err(e) = report(&nodes_api, &name).await {
                        tracing::debug!(error = %e, "posting a hollow node's status failed");
                    }
                }
            },
        );
        tokio::select! {
            () = stop.cancelled() => return,
            ((), ()) = async { tokio::join!(renewing, reporting) } => {}
        }
    }
}

/// Posts a fresh Ready heartbeat, keeping the other conditions.
async fn report(nodes: &Api<Node>, name: &str) -> Result<(), kube::Error> {
    let node = nodes.get_status(name).await?;
    let now = now();
    let conditions: Vec<Value> = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .map(|mut c| {
            c["lastHeartbeatTime"] = json!(now);
            c
        })
        .collect();
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await
        .map(drop)
}

/// Work for the kubelet.
enum Job {
    Start(Box<Pod>),
    Finish {
        namespace: String,
        name: String,
        uid: String,
    },
}

/// Watches the pods bound to any node and queues what the kubelet must do about each,
/// once per pod.
async fn watch_pods(
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<Job>,
    stop: CancellationToken,
) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let events =
        watcher(pods, watcher::Config::default().fields("spec.nodeName!=")).default_backoff();
    let mut events = std::pin::pin!(events);
    // What was already asked for each pod, so repeated events ask once; forgotten when
    // the pod goes.
    let mut started: HashSet<String> = HashSet::new();
    let mut finishing: HashSet<String> = HashSet::new();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            next = events.next() => match next {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "hollow pod watch failed; retrying");
                    continue;
                }
                None => return,
            },
        };
        let pod = match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => pod,
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    started.remove(uid);
                    finishing.remove(uid);
                }
                continue;
            }
            watcher::Event::Init | watcher::Event::InitDone => continue,
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        let Some(uid) = pod.metadata.uid.clone() else {
            continue;
        };
        if shared.host_ip(node).is_none() {
            continue;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            if finishing.insert(uid.clone()) {
                let job = Job::Finish {
                    namespace: pod.namespace().unwrap_or_default(),
                    name: pod.name_any(),
                    uid,
                };
                if jobs.send(job).is_err() {
                    return;
                }
            }
            continue;
        }
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !running && started.insert(uid) && jobs.send(Job::Start(Box::new(pod))).is_err() {
            return;
        }
    }
}

/// Runs queued jobs, `in_flight` at a time.
async fn work(
    shared: Arc<Shared>,
    mut queued: mpsc::UnboundedReceiver<Job>,
    stop: CancellationToken,
) {
    let jobs = futures::stream::poll_fn(|cx| queued.poll_recv(cx));
    let run = jobs.for_each_concurrent(shared.options.in_flight.max(1), |job| {
        let shared = Arc::clone(&shared);
        async move {
            let result = match job {
                Job::Start(pod) => start(&shared, &pod).await,
                Job::Finish {
                    namespace,
                    name,
                    uid,
                } => finish(&shared, &namespace, &name, &uid).await,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "a hollow kubelet write failed");
            }
        }
    });
    tokio::select! {
        () = stop.cancelled() => {}
        () = run => {}
    }
}

/// Retries a write a few times on errors other than the object being gone or changed, so
/// a busy API (429) does not leave a pod unstarted.
async fn persist<F, Fut>(mut write: F) -> Result<(), kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    let mut wait = Duration::from_millis(100);
    for _ in 0..6 {
        match write().await {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                return Ok(());
            }
            Err(e) => {
                tracing::debug!(error = %e, "a hollow kubelet write failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    write().await
}

/// Reports a pod Running and Ready, every container started.
async fn start(shared: &Shared, pod: &Pod) -> Result<(), kube::Error> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let node = spec.node_name.clone().unwrap_or_default();
    let host = shared.host_ip(&node).unwrap_or_default();
    let ip = if spec.host_network == Some(true) {
        host.clone()
    } else {
        pod_ip(shared.next_pod_ip.fetch_add(1, Ordering::Relaxed))
    };
    let now = now();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let scheduled_at = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        })
        .and_then(|c| c.last_transition_time.as_ref())
        .map_or_else(|| now.clone(), |t| t.0.to_string());
    let condition = |kind: &str, at: &str| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": at});
    let running = |name: &str, image: &str| {
        json!({"name": name, "image": image, "imageID": format!("hollow://{image}"),
               "containerID": format!("hollow://{uid}/{name}"), "ready": true, "started": true,
               "restartCount": 0, "state": {"running": {"startedAt": now}}})
    };
    let containers: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| running(&c.name, c.image.as_deref().unwrap_or_default()))
        .collect();
    let init: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let image = c.image.as_deref().unwrap_or_default();
            if c.restart_policy.as_deref() == Some("Always") {
                return running(&c.name, image);
            }
            json!({"name": c.name, "image": image, "imageID": format!("hollow://{image}"),
                   "containerID": format!("hollow://{uid}/{}", c.name), "ready": true,
                   "started": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                            "startedAt": now, "finishedAt": now}}})
        })
        .collect();
    let mut status = json!({
        "phase": "Running",
        "conditions": [
            condition("PodReadyToStartContainers", &now),
            condition("Initialized", &now),
            condition("Ready", &now),
            condition("ContainersReady", &now),
            condition("PodScheduled", &scheduled_at),
        ],
        "hostIP": host, "hostIPs": [{"ip": host}],
        "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": now,
        "containerStatuses": containers,
    });
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
    let pods: Api<Pod> =
        Api::namespaced(shared.client.clone(), &pod.namespace().unwrap_or_default());
    let name = pod.name_any();
    let patch = Patch::Merge(json!({"status": status}));
    persist(|| async {
        pods.patch_status(&name, &PatchParams::default(), &patch)
            .await
            .map(drop)
    })
    .await
}

/// Deletes a terminating pod outright, as a kubelet does once its containers stopped.
async fn finish(
    shared: &Shared,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    persist(|| async { pods.delete(name, &params).await.map(drop) }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_and_apart() {
        let pods: HashSet<String> = (0..200_000).map(pod_ip).collect();
        assert_eq!(pods.len(), 200_000);
        assert!(pods.iter().all(|ip| !ip.starts_with("127.0.")));
        assert!(
            pods.iter()
                .all(|ip| !ip.ends_with(".0") && !ip.ends_with(".255"))
        );
        let hosts: HashSet<String> = (0..5_000).map(host_ip).collect();
        assert_eq!(hosts.len(), 5_000);
        assert!(hosts.iter().all(|ip| ip != "127.0.0.1"));
    }
}
