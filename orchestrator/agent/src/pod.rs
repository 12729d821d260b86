//! One pod on this node, driven by its own worker: it makes the sandbox and volumes, runs
//! init containers in order and then the app containers, restarts them per policy with
//! the crash-loop back-off, acts on probe verdicts, reports the status, and on deletion
//! stops everything within the grace period, cleans up and lets the API forget the pod.
//! Each pass of [`Worker::reconcile`] is level-triggered: it looks at what the pod asks
//! for and what runs, and takes the next steps.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Container, ObjectReference, Pod, Probe, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use slipway_controllers::events::Kind as EventKind;
use slipway_runtime::{ContainerConfig, Exit};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::env::{self, ConfigError, Sources};
use crate::probe::{self, Verdict};
use crate::status::{Record, Report, State, Terminated};
use crate::{Context, labels, sandbox, spec, stats, volumes};

/// What wakes a worker.
#[derive(Debug)]
pub(crate) enum Message {
    /// A newer version of the pod.
    Pod(Box<Pod>),
    /// The pod is gone from the API.
    Gone,
    /// A container's process ended.
    Exited {
        /// The runtime's container id.
        container_id: String,
        /// How.
        exit: Exit,
    },
    /// Something the pod depends on changed (a ConfigMap, a Secret, the runtime).
    Wake,
}

/// The longest a termination message may be, as the kubelet reads it.
const MESSAGE_LIMIT: usize = 4096;
/// How often a worker looks again with nothing to wake it: volumes are refreshed from
/// their ConfigMaps and Secrets at least this often, as the kubelet's sync period.
const RESYNC: Duration = Duration::from_secs(60);
/// How often emptyDir volumes with a size limit are measured (the kubelet's eviction
/// manager looks every 10 s).
const SIZE_CHECK: Duration = Duration::from_secs(10);
/// A wait after a transient failure (the API or the runtime).
const RETRY: Duration = Duration::from_secs(2);

struct Run {
    id: String,
    /// The container's process settings (env, cwd, user), which exec'd probes and hooks
    /// inherit.
    process: Value,
    started: SystemTime,
    since: Instant,
    alive: CancellationToken,
    log: PathBuf,
}

struct Slot {
    spec: Container,
    init: bool,
    index: usize,
    record: Record,
    run: Option<Run>,
    backoff: Backoff,
    restart_at: Option<Instant>,
    /// Set while the container is being stopped on purpose (a failed liveness probe, a
    /// changed image), so its exit is a restart, not a crash.
    stopping: bool,
}

/// A pod's worker.
pub(crate) struct Worker {
    ctx: Arc<Context>,
    uid: String,
    pod: Pod,
    gone: bool,
    slots: Vec<Slot>,
    ip: Option<Ipv4Addr>,
    /// The pod's network namespace, once the proxy knows the pod.
    netns: Option<slipway_net::Netns>,
    start_time: SystemTime,
    /// The pod as the usage summary names it.
    stats_pod: Arc<stats::Pod>,
    sources: Sources,
    sent: Option<Value>,
    failure: Option<(String, String)>,
    messages: mpsc::Receiver<Message>,
    to_self: mpsc::Sender<Message>,
    verdicts: mpsc::Sender<Verdict>,
    verdicts_in: mpsc::Receiver<Verdict>,
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

impl Worker {
    /// A worker for `pod`, adopting the containers a previous run of the agent left.
    pub(crate) fn new(
        ctx: Arc<Context>,
        pod: Pod,
        existing: Vec<slipway_runtime::Container>,
        messages: mpsc::Receiver<Message>,
        to_self: mpsc::Sender<Message>,
    ) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let mut slots = Vec::new();
        let init = spec.init_containers.clone().unwrap_or_default();
        for (index, c) in init.into_iter().enumerate() {
            slots.push(Slot::new(c, true, index));
        }
        for (index, c) in spec.containers.iter().cloned().enumerate() {
            slots.push(Slot::new(c, false, index));
        }
        let (verdicts, verdicts_in) = mpsc::channel(64);
        let start_time = status
            .start_time
            .as_ref()
            .map_or_else(SystemTime::now, |t| SystemTime::from(t.0));
        let stats_pod = Arc::new(stats::Pod {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid.clone(),
            started: start_time,
        });
        let mut worker = Worker {
            ctx,
            uid,
            pod,
            gone: false,
            slots,
            ip: None,
            netns: None,
            start_time,
            stats_pod,
            sources: Sources::default(),
            sent: None,
            failure: None,
            messages,
            to_self,
            verdicts,
            verdicts_in,
        };
        worker.restore(&status, existing);
        worker
    }

    /// Picks up where a previous agent left: running containers are adopted, containers
    /// that ended are reported as exits, and what the pod status says had finished stays
    /// finished (an init container that succeeded does not run again).
    fn restore(
        &mut self,
        status: &k8s_openapi::api::core::v1::PodStatus,
        existing: Vec<slipway_runtime::Container>,
    ) {
        let reported: Vec<_> = status
            .init_container_statuses
            .iter()
            .flatten()
            .map(|s| (true, s))
            .chain(
                status
                    .container_statuses
                    .iter()
                    .flatten()
                    .map(|s| (false, s)),
            )
            .collect();
        for slot in &mut self.slots {
            let Some((_, known)) = reported
                .iter()
                .find(|(init, s)| *init == slot.init && s.name == slot.spec.name)
            else {
                continue;
            };
            slot.record.restart_count = known.restart_count;
            slot.record.image_id = known.image_id.clone();
            slot.record.last = known
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(terminated_from_status);
            if let Some(t) = known.state.as_ref().and_then(|s| s.terminated.as_ref()) {
                slot.record.state = State::Terminated(terminated_from_status(t));
            }
        }
        let mut existing = existing;
        existing.sort_by_key(|c| labels::attempt(&c.labels));
        let mut stale = Vec::new();
        let mut running = Vec::new();
        for container in existing {
            let name = container
                .labels
                .get(labels::CONTAINER)
                .cloned()
                .unwrap_or_default();
            let init = container
                .labels
                .get(labels::INIT)
                .is_some_and(|v| v == "true");
            let slot = self
                .slots
                .iter_mut()
                .find(|s| s.init == init && s.spec.name == name);
            let (Some(slot), Some(task)) = (slot, container.task.clone()) else {
                stale.push(container.id);
                continue;
            };
            if let Some(previous) = slot.run.take() {
                previous.alive.cancel();
                self.ctx.stats.ended(&previous.id);
                stale.push(previous.id);
            }
            let started = reported
                .iter()
                .find(|(i, s)| *i == init && s.name == name)
                .and_then(|(_, s)| s.state.as_ref()?.running.as_ref()?.started_at.as_ref())
                .map_or_else(SystemTime::now, |t| SystemTime::from(t.0));
            slot.record.restart_count = slot
                .record
                .restart_count
                .max(labels::attempt(&container.labels));
            slot.record.state = State::Running {
                started_at: started,
                container_id: format!("containerd://{}", container.id),
            };
            slot.record.started = slot.spec.startup_probe.is_none();
            slot.record.ready = slot.spec.readiness_probe.is_none() && slot.record.started;
            slot.run = Some(Run {
                id: container.id.clone(),
                process: std::fs::read(process_file(
                    &self.ctx.config.pod_dir(&self.uid),
                    &container.id,
                ))
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_else(|| json!({"env": [], "cwd": "/", "user": {"uid": 0, "gid": 0}})),
                started,
                since: Instant::now(),
                alive: CancellationToken::new(),
                log: self
                    .ctx
                    .config
                    .pod_dir(&self.uid)
                    .join("logs")
                    .join(&name)
                    .join(format!("{}.log", labels::attempt(&container.labels))),
            });
            if let Some(run) = &slot.run {
                self.ctx
                    .set_live_log(run.log.clone(), Some(run.alive.clone()));
                self.ctx
                    .stats
                    .started(&run.id, &self.stats_pod, &name, run.started);
            }
            if task.status == slipway_runtime::TaskStatus::Stopped {
                let exit = task.exit.unwrap_or(Exit {
                    status: 137,
                    at: SystemTime::now(),
                });
                let _ = self.to_self.try_send(Message::Exited {
                    container_id: container.id,
                    exit,
                });
            } else {
                running.push(container.id.clone());
            }
        }
        for id in stale {
            self.forget(id);
        }
        for id in running {
            self.watch_exit(id);
        }
        // Containers the status says run but the runtime no longer has: gone while the
        // agent was away, reported as the kubelet reports a container it cannot find.
        for slot in &mut self.slots {
            if slot.run.is_some() {
                continue;
            }
            let Some((_, known)) = reported
                .iter()
                .find(|(init, s)| *init == slot.init && s.name == slot.spec.name)
            else {
                continue;
            };
            if let Some(running) = known.state.as_ref().and_then(|s| s.running.as_ref()) {
                let lost = Terminated {
                    exit_code: 137,
                    reason: "ContainerStatusUnknown".into(),
                    message: Some(
                        "The container could not be located when the agent restarted".into(),
                    ),
                    started_at: running.started_at.as_ref().map(|t| SystemTime::from(t.0)),
                    finished_at: SystemTime::now(),
                    container_id: known.container_id.clone().unwrap_or_default(),
                };
                slot.record.state = State::Terminated(lost);
            }
        }
        for slot in &self.slots {
            if let Some(run) = &slot.run {
                self.start_probes(slot, run);
            }
        }
    }

    fn forget(&self, id: String) {
        let runtime = Arc::clone(&self.ctx.runtime);
        tokio::spawn(async move {
            if let Err(e) = runtime.delete(&id).await {
                tracing::warn!(container = %id, error = %e, "cannot remove a stale container");
            }
        });
    }

    fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_default()
    }

    fn name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_default()
    }

    fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: self.pod.metadata.name.clone(),
            namespace: self.pod.metadata.namespace.clone(),
            uid: self.pod.metadata.uid.clone(),
            resource_version: self.pod.metadata.resource_version.clone(),
            ..ObjectReference::default()
        }
    }

    async fn event(&self, kind: EventKind, reason: &str, message: &str) {
        self.ctx
            .recorder
            .record(&self.reference(), kind, reason, message)
            .await;
    }

    fn pod_dir(&self) -> PathBuf {
        self.ctx.config.pod_dir(&self.uid)
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    /// Runs the worker until the pod is gone from this node or `stop` is cancelled.
    /// Stopping leaves the containers running, so a restarted agent adopts them.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        loop {
            let next = if self.terminating() {
                self.terminate().await;
                return;
            } else {
                self.reconcile().await
            };
            let wake = next.unwrap_or_else(|| Instant::now() + RESYNC);
            tokio::select! {
                () = stop.cancelled() => {
                    for slot in &self.slots {
                        if let Some(run) = &slot.run {
                            run.alive.cancel();
                        }
                    }
                    return;
                }
                () = tokio::time::sleep_until(wake) => {}
                message = self.messages.recv() => match message {
                    Some(message) => self.handle(message).await,
                    None => return,
                },
                Some(verdict) = self.verdicts_in.recv() => self.verdict(verdict).await,
            }
            // Take whatever else is waiting before the next pass, so a burst of changes
            // costs one reconcile and one status write.
            while let Ok(message) = self.messages.try_recv() {
                self.handle(message).await;
            }
        }
    }

    fn terminating(&self) -> bool {
        self.gone || self.pod.metadata.deletion_timestamp.is_some()
    }

    async fn handle(&mut self, message: Message) {
        match message {
            Message::Pod(pod) => self.update(*pod).await,
            Message::Gone => self.gone = true,
            Message::Exited { container_id, exit } => self.exited(&container_id, exit, true).await,
            Message::Wake => {}
        }
    }

    /// Takes a newer pod: a container whose image changed is restarted with it, as the
    /// kubelet does for the one mutable part of a container.
    async fn update(&mut self, pod: Pod) {
        let spec = pod.spec.clone().unwrap_or_default();
        self.pod = pod;
        let mut changed = Vec::new();
        for slot in &mut self.slots {
            let new = if slot.init {
                spec.init_containers
                    .iter()
                    .flatten()
                    .find(|c| c.name == slot.spec.name)
            } else {
                spec.containers.iter().find(|c| c.name == slot.spec.name)
            };
            let Some(new) = new else { continue };
            if new.image != slot.spec.image {
                if let Some(run) = &slot.run {
                    slot.stopping = true;
                    changed.push((run.id.clone(), slot.spec.name.clone()));
                }
                slot.record.image = new.image.clone().unwrap_or_default();
            }
            slot.spec = new.clone();
        }
        for (id, name) in changed {
            self.event(
                EventKind::Normal,
                "Killing",
                &format!("Container {name} definition changed, will be restarted"),
            )
            .await;
            self.stop_in_background(id, name);
        }
    }

    /// One pass: sandbox, volumes, then the next containers to start. Returns when to look
    /// again, if a time is known.
    async fn reconcile(&mut self) -> Option<Instant> {
        if self.failure.is_some() {
            // A failed pod (evicted) runs nothing more; only its status is kept.
            self.report().await;
            return None;
        }
        if let Err(e) = self.fetch_sources().await {
            tracing::debug!(pod = %self.name(), error = %e, "reading the pod's ConfigMaps and Secrets failed");
            return Some(Instant::now() + RETRY);
        }
        if let Err(message) = self.ensure_sandbox().await {
            self.wait_all("ContainerCreating", Some(message.clone()));
            self.event(EventKind::Warning, "FailedCreatePodSandBox", &message)
                .await;
            self.report().await;
            return Some(Instant::now() + RETRY * 5);
        }
        if let Err(ConfigError(message)) = self.ensure_volumes() {
            self.wait_all("CreateContainerConfigError", Some(message.clone()));
            self.event(EventKind::Warning, "FailedMount", &message)
                .await;
            self.report().await;
            return Some(Instant::now() + RETRY * 5);
        }
        if self.enforce_size_limits().await {
            return None;
        }
        let policy = self.restart_policy();
        let mut next: Option<Instant> = None;
        let mut init_done = true;
        for i in 0..self.slots.len() {
            if !self.slots[i].init {
                continue;
            }
            let slot = &self.slots[i];
            if slot.record.succeeded() {
                continue;
            }
            init_done = false;
            if slot.run.is_some() {
                break;
            }
            if slot.record.failed() && policy == "Never" {
                break;
            }
            next = earliest(next, self.start_when_due(i).await);
            break;
        }
        for i in 0..self.slots.len() {
            if self.slots[i].init {
                continue;
            }
            if !init_done {
                if self.slots[i].run.is_none() && self.slots[i].record.last.is_none() {
                    self.slots[i].record.state = State::Waiting {
                        reason: "PodInitializing".into(),
                        message: None,
                    };
                }
                continue;
            }
            let slot = &self.slots[i];
            if slot.run.is_some() {
                continue;
            }
            let again = match &slot.record.state {
                State::Terminated(t) => match policy.as_str() {
                    "Always" => true,
                    "OnFailure" => t.exit_code != 0,
                    _ => false,
                },
                State::Waiting { .. } => true,
                State::Running { .. } => false,
            };
            if again {
                next = earliest(next, self.start_when_due(i).await);
            }
        }
        self.report().await;
        let sized = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| {
                v.empty_dir.as_ref().is_some_and(|e| {
                    e.size_limit.is_some() && e.medium.as_deref() != Some("Memory")
                })
            });
        if sized {
            next = earliest(next, Some(Instant::now() + SIZE_CHECK));
        }
        next
    }

    fn wait_all(&mut self, reason: &str, message: Option<String>) {
        for slot in &mut self.slots {
            if slot.run.is_none() && !matches!(slot.record.state, State::Terminated(_)) {
                slot.record.state = State::Waiting {
                    reason: reason.into(),
                    message: message.clone(),
                };
            }
        }
    }

    async fn fetch_sources(&mut self) -> Result<(), kube::Error> {
        let (config_maps, secrets) = env::references(&self.pod);
        let namespace = self.namespace();
        let links = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let mut sources = Sources {
            services: if links {
                self.ctx.proxy.env_for(&namespace)
            } else {
                Vec::new()
            },
            node_cpu_milli: self.ctx.allocatable.cpu_milli,
            node_memory: self.ctx.allocatable.memory,
            ..Sources::default()
        };
        let api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &namespace);
        for name in config_maps {
            if let Some(c) = api.get_opt(&name).await? {
                let mut data = c.data.unwrap_or_default();
                for (key, value) in c.binary_data.unwrap_or_default() {
                    data.insert(key, String::from_utf8_lossy(&value.0).into_owned());
                }
                sources.config_maps.insert(name, data);
            }
        }
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &namespace);
        for name in secrets {
            if let Some(s) = api.get_opt(&name).await? {
                let mut data: std::collections::BTreeMap<String, Vec<u8>> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                for (key, value) in s.string_data.unwrap_or_default() {
                    data.insert(key, value.into_bytes());
                }
                sources.secrets.insert(name, data);
            }
        }
        self.sources = sources;
        Ok(())
    }

    async fn ensure_sandbox(&mut self) -> Result<(), String> {
        let ip = match self.ip {
            Some(ip) => ip,
            None => {
                let wanted = self
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse().ok());
                let ip = self
                    .ctx
                    .ips
                    .lock()
                    .map_err(|_| "the address table is poisoned".to_owned())?
                    .claim(&self.uid, wanted)
                    .ok_or_else(|| "no pod address left in the node's pod CIDR".to_owned())?;
                self.ip = Some(ip);
                ip
            }
        };
        sandbox::create_netns(&sandbox::netns_name(&self.uid), ip)
            .await
            .map_err(|e| format!("failed to create pod sandbox: {e}"))?;
        let dir = self.pod_dir();
        std::fs::create_dir_all(dir.join("etc"))
            .map_err(|e| format!("failed to create pod sandbox: {}: {e}", dir.display()))?;
        let spec = self.pod.spec.clone().unwrap_or_default();
        let hostname = spec.hostname.clone().unwrap_or_else(|| self.name());
        let aliases: Vec<(String, Vec<String>)> = spec
            .host_aliases
            .iter()
            .flatten()
            .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
            .collect();
        let namespace = self.namespace();
        let hosts = sandbox::hosts_file(&hostname, ip, &aliases);
        let hosts_path = dir.join("etc/hosts");
        // Once made, the hosts file is the proxy's to keep current: it rewrites it in
        // place as Services come and go, since containers bind-mount its inode.
        if !hosts_path.exists() {
            let contents = self.ctx.proxy.hosts_for(&namespace, &hosts);
            sandbox::write_atomic(&hosts_path, contents.as_bytes())
                .map_err(|e| format!("failed to create pod sandbox: {e}"))?;
        }
        let files = [
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", sandbox::resolv_conf(&namespace)),
        ];
        for (name, contents) in files {
            let path = dir.join("etc").join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(contents.as_str()) {
                sandbox::write_atomic(&path, contents.as_bytes())
                    .map_err(|e| format!("failed to create pod sandbox: {e}"))?;
            }
        }
        if self.netns.is_none() {
            let name = sandbox::netns_name(&self.uid);
            slipway_net::redirect::install(&name)
                .await
                .map_err(|e| format!("failed to route the pod's Service traffic: {e}"))?;
            let path = std::path::PathBuf::from(sandbox::netns_path(&name));
            let netns = slipway_net::Netns::open(&path)
                .await
                .map_err(|e| format!("failed to enter the pod's network namespace: {e}"))?;
            self.ctx.proxy.add_pod(slipway_net::LocalPod {
                uid: self.uid.clone(),
                namespace,
                ip,
                netns: netns.clone(),
                hosts: Some(slipway_net::HostsFile {
                    path: hosts_path,
                    base: hosts,
                }),
            });
            self.netns = Some(netns);
        }
        Ok(())
    }

    fn ensure_volumes(&mut self) -> Result<(), ConfigError> {
        let plan = volumes::plan(&self.pod, &self.sources)?;
        let root = self.pod_dir().join("volumes");
        for (name, kind) in plan {
            let dir = root.join(&name);
            let result = match kind {
                volumes::Kind::EmptyDir { memory, size } => {
                    volumes::make_empty_dir(&dir, memory, size).map(drop)
                }
                volumes::Kind::Files(payload) => volumes::write_files(&dir, &payload).map(drop),
            };
            result.map_err(|e| ConfigError(format!("volume {name}: {e}")))?;
        }
        Ok(())
    }

    /// Starts the container in slot `i` if its back-off allows, else says when it will.
    async fn start_when_due(&mut self, i: usize) -> Option<Instant> {
        if let Some(at) = self.slots[i].restart_at
            && at > Instant::now()
        {
            return Some(at);
        }
        self.start(i).await
    }

    async fn start(&mut self, i: usize) -> Option<Instant> {
        let pod_name = self.name();
        let namespace = self.namespace();
        let (container, init, index) = {
            let slot = &self.slots[i];
            (slot.spec.clone(), slot.init, slot.index)
        };
        let name = container.name.clone();
        let image_name =
            slipway_runtime::reference::normalize(container.image.as_deref().unwrap_or(""));
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        let image = match self.image(&image_name, &policy).await {
            Ok(image) => image,
            Err((reason, message)) => {
                let retry = reason != "ErrImageNeverPull";
                return self.fail_start(i, reason, message, retry);
            }
        };
        let attempt = match self.slots[i].record.state {
            State::Waiting { .. } if self.slots[i].record.last.is_none() => {
                self.slots[i].record.restart_count
            }
            _ => self.slots[i].record.restart_count + 1,
        };
        let id = format!(
            "{}-{}{index}-{attempt}-{:x}",
            self.uid,
            if init { "i" } else { "c" },
            nanos() % 0xffff_ffff
        );
        let plan = match self.plan(&container, &image, &id) {
            Ok(plan) => plan,
            Err(ConfigError(message)) => {
                self.event(EventKind::Warning, "Failed", &format!("Error: {message}"))
                    .await;
                return self.fail_start(i, "CreateContainerConfigError", message, false);
            }
        };
        let log_dir = self.pod_dir().join("logs").join(&name);
        if let Err(e) = std::fs::create_dir_all(&log_dir) {
            return self.fail_start(
                i,
                "RunContainerError",
                format!("{}: {e}", log_dir.display()),
                true,
            );
        }
        prune_logs(&log_dir, attempt);
        let oci = spec::build(&plan);
        let mut process = oci["process"].clone();
        if let Some(p) = process.as_object_mut() {
            p.remove("args");
        }
        // Kept beside the pod, so a restarted agent's exec probes and hooks run as the
        // container does.
        let kept = process_file(&self.pod_dir(), &id);
        if let Err(e) = std::fs::create_dir_all(kept.parent().unwrap_or(&self.pod_dir()))
            .and_then(|()| std::fs::write(&kept, process.to_string()))
        {
            tracing::warn!(path = %kept.display(), error = %e, "cannot keep a container's process settings");
        }
        let config = ContainerConfig {
            id: id.clone(),
            image: image.name.clone(),
            labels: labels::for_container(&self.uid, &namespace, &pod_name, &name, init, attempt),
            spec: oci,
            group: Some(self.uid.clone()),
        };
        let log_path = log_dir.join(format!("{attempt}.log"));
        let log = self.ctx.log_target(&log_path);
        let started = async {
            self.ctx.runtime.create(&config).await?;
            self.ctx.runtime.start(&id, &log).await
        }
        .await;
        if let Err(e) = started {
            self.forget(id);
            let message = e.to_string();
            self.event(EventKind::Warning, "Failed", &format!("Error: {message}"))
                .await;
            return self.fail_start(i, "RunContainerError", message, true);
        }
        self.ctx.image_usage.touch(&image.name);
        let now = SystemTime::now();
        let slot = &mut self.slots[i];
        if let State::Terminated(t) = &slot.record.state {
            slot.record.last = Some(t.clone());
        }
        slot.record.restart_count = attempt;
        slot.record.image_id = image.digest.clone();
        slot.record.state = State::Running {
            started_at: now,
            container_id: format!("containerd://{id}"),
        };
        slot.record.started = container.startup_probe.is_none();
        slot.record.ready = container.readiness_probe.is_none() && slot.record.started;
        slot.restart_at = None;
        slot.stopping = false;
        let run = Run {
            id: id.clone(),
            process,
            started: now,
            since: Instant::now(),
            alive: CancellationToken::new(),
            log: log_path,
        };
        self.ctx
            .set_live_log(run.log.clone(), Some(run.alive.clone()));
        self.ctx
            .stats
            .started(&run.id, &self.stats_pod, &name, run.started);
        self.watch_exit(id);
        self.start_probes(&self.slots[i], &run);
        self.slots[i].run = Some(run);
        self.event(
            EventKind::Normal,
            "Created",
            &format!("Created container: {name}"),
        )
        .await;
        self.event(
            EventKind::Normal,
            "Started",
            &format!("Started container {name}"),
        )
        .await;
        None
    }

    /// The image a container runs, pulled as its policy says: `Never` uses only what the
    /// node holds, `IfNotPresent` pulls when the node lacks it, `Always` pulls every time
    /// (with the credentials of the pod's imagePullSecrets). The error is the waiting
    /// reason and message.
    async fn image(
        &self,
        name: &str,
        policy: &str,
    ) -> Result<slipway_runtime::Image, (&'static str, String)> {
        let present = self
            .ctx
            .runtime
            .image(name)
            .await
            .map_err(|e| ("ErrImagePull", e.to_string()))?;
        match (policy, present) {
            ("Never" | "IfNotPresent", Some(image)) => {
                self.event(
                    EventKind::Normal,
                    "Pulled",
                    &format!("Container image \"{name}\" already present on machine"),
                )
                .await;
                Ok(image)
            }
            ("Never", None) => {
                let message =
                    format!("Container image \"{name}\" is not present with pull policy of Never");
                self.event(EventKind::Warning, "ErrImageNeverPull", &message)
                    .await;
                Err(("ErrImageNeverPull", message))
            }
            _ => {
                self.event(
                    EventKind::Normal,
                    "Pulling",
                    &format!("Pulling image \"{name}\""),
                )
                .await;
                let started = std::time::Instant::now();
                let credentials = self.pull_credentials(name);
                match self.ctx.runtime.pull(name, credentials.as_ref()).await {
                    Ok(image) => {
                        self.event(
                            EventKind::Normal,
                            "Pulled",
                            &pulled(name, image.size, started.elapsed()),
                        )
                        .await;
                        Ok(image)
                    }
                    Err(e) => {
                        let message = format!("Failed to pull image \"{name}\": {e}");
                        self.event(EventKind::Warning, "Failed", &message).await;
                        Err(("ErrImagePull", message))
                    }
                }
            }
        }
    }

    /// The credentials for `image` from the pod's imagePullSecrets, the first that has
    /// an entry for its registry.
    fn pull_credentials(&self, image: &str) -> Option<slipway_runtime::Credentials> {
        let secrets = self.pod.spec.as_ref()?.image_pull_secrets.clone()?;
        secrets.iter().find_map(|reference| {
            let data = self.sources.secrets.get(&reference.name)?;
            let config = data
                .get(".dockerconfigjson")
                .or_else(|| data.get(".dockercfg"))?;
            slipway_runtime::reference::credentials_for(config, image)
        })
    }

    /// Records why a container could not start and when to try again.
    fn fail_start(
        &mut self,
        i: usize,
        reason: &str,
        message: String,
        retry: bool,
    ) -> Option<Instant> {
        tracing::warn!(pod = %self.name(), container = %self.slots[i].spec.name, reason, %message, "a container could not start");
        let slot = &mut self.slots[i];
        let delay = slot.backoff.next(Duration::ZERO).max(RETRY);
        let reason = match reason {
            "ErrImagePull" if slot.restart_at.is_some() => "ImagePullBackOff",
            other => other,
        };
        slot.record.state = State::Waiting {
            reason: reason.into(),
            message: Some(message),
        };
        let at = Instant::now() + if retry { delay } else { RETRY * 5 };
        slot.restart_at = Some(at);
        Some(at)
    }

    /// The spec plan of a container: process, user, mounts and resources.
    fn plan(
        &self,
        container: &Container,
        image: &slipway_runtime::Image,
        id: &str,
    ) -> Result<spec::Plan, ConfigError> {
        let pod_spec = self.pod.spec.clone().unwrap_or_default();
        let vars = env::resolve(&self.pod, container, &self.sources)?;
        let known: std::collections::BTreeMap<String, String> = vars.iter().cloned().collect();
        let expand = |list: &Option<Vec<String>>| -> Option<Vec<String>> {
            list.as_ref()
                .map(|l| l.iter().map(|a| env::expand(a, &known)).collect())
        };
        let command = expand(&container.command);
        let args_given = expand(&container.args);
        let config = &image.config;
        let args: Vec<String> = match (command, args_given) {
            (Some(command), Some(args)) => command.into_iter().chain(args).collect(),
            (Some(command), None) => command,
            (None, Some(args)) => config.entrypoint.iter().cloned().chain(args).collect(),
            (None, None) => config
                .entrypoint
                .iter()
                .chain(config.cmd.iter())
                .cloned()
                .collect(),
        };
        if args.is_empty() {
            return Err(ConfigError(format!(
                "no command specified for container {} and none in image {}",
                container.name, image.name
            )));
        }
        let hostname = pod_spec.hostname.clone().unwrap_or_else(|| self.name());
        let mut env: Vec<String> = config.env.clone();
        let mut push = |name: &str, value: &str| {
            let prefix = format!("{name}=");
            env.retain(|e| !e.starts_with(&prefix));
            env.push(format!("{name}={value}"));
        };
        push("HOSTNAME", &hostname);
        for (name, value) in &vars {
            push(name, value);
        }
        let pod_security = pod_spec.security_context.clone().unwrap_or_default();
        let security = container.security_context.clone().unwrap_or_default();
        let (image_uid, image_gid) = parse_user(&config.user)?;
        let uid = security
            .run_as_user
            .or(pod_security.run_as_user)
            .map(|u| u32::try_from(u).unwrap_or(0))
            .unwrap_or(image_uid);
        let gid = security
            .run_as_group
            .or(pod_security.run_as_group)
            .map(|g| u32::try_from(g).unwrap_or(0))
            .unwrap_or(image_gid);
        let non_root = security.run_as_non_root.or(pod_security.run_as_non_root) == Some(true);
        if non_root && uid == 0 {
            return Err(ConfigError(format!(
                "container has runAsNonRoot and image will run as root (pod: \"{}_{}({})\", container: {})",
                self.name(),
                self.namespace(),
                self.uid,
                container.name
            )));
        }
        let privileged = security.privileged == Some(true);
        if privileged && !self.ctx.config.allow_privileged {
            return Err(ConfigError(
                "privileged containers are not allowed on this node (the agent runs without --allow-privileged)".into(),
            ));
        }
        let mut additional_gids: Vec<u32> = pod_security
            .supplemental_groups
            .iter()
            .flatten()
            .chain(pod_security.fs_group.iter())
            .filter_map(|g| u32::try_from(*g).ok())
            .collect();
        additional_gids.sort_unstable();
        additional_gids.dedup();
        let dir = self.pod_dir();
        let mut binds = vec![
            spec::Bind {
                source: dir.join("etc/hosts").display().to_string(),
                destination: "/etc/hosts".into(),
                read_only: false,
            },
            spec::Bind {
                source: dir.join("etc/hostname").display().to_string(),
                destination: "/etc/hostname".into(),
                read_only: false,
            },
            spec::Bind {
                source: dir.join("etc/resolv.conf").display().to_string(),
                destination: "/etc/resolv.conf".into(),
                read_only: false,
            },
        ];
        let termination = dir.join("termination").join(&container.name);
        std::fs::create_dir_all(&termination)
            .map_err(|e| ConfigError(format!("{}: {e}", termination.display())))?;
        let message_file = termination.join("message");
        std::fs::write(&message_file, b"")
            .map_err(|e| ConfigError(format!("{}: {e}", message_file.display())))?;
        binds.push(spec::Bind {
            source: message_file.display().to_string(),
            destination: container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
            read_only: false,
        });
        for mount in container.volume_mounts.iter().flatten() {
            let volume_dir = dir.join("volumes").join(&mount.name);
            if volumes::is_absent(&volume_dir) {
                return Err(ConfigError(format!(
                    "volumeMount {}: no volume named {} in the pod",
                    mount.mount_path, mount.name
                )));
            }
            let source = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
                Some(sub) => {
                    if sub.split('/').any(|part| part == "..") || sub.starts_with('/') {
                        return Err(ConfigError(format!(
                            "subPath {sub:?} must be a relative path within the volume"
                        )));
                    }
                    let path = volume_dir.join(sub);
                    if volumes::is_absent(&path) {
                        std::fs::create_dir_all(&path)
                            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
                    }
                    path
                }
                None => volume_dir,
            };
            binds.push(spec::Bind {
                source: source.display().to_string(),
                destination: mount.mount_path.clone(),
                read_only: mount.read_only == Some(true),
            });
        }
        let resources = container.resources.clone().unwrap_or_default();
        let quantity = |map: &Option<
            std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >,
                        name: &str,
                        milli: bool|
         -> Result<Option<i64>, ConfigError> {
            match map.as_ref().and_then(|m| m.get(name)) {
                None => Ok(None),
                Some(q) => {
                    let parsed = slipway_model::quantity::ParsedQuantity::try_from(q)
                        .map_err(|e| ConfigError(format!("resources {name}: {e}")))?;
                    Ok(Some(if milli {
                        parsed.as_milli()
                    } else {
                        parsed.as_value()
                    }))
                }
            }
        };
        let memory_limit = quantity(&resources.limits, "memory", false)?;
        let cpu_limit = quantity(&resources.limits, "cpu", true)?;
        let cpu_request = quantity(&resources.requests, "cpu", true)?.or(cpu_limit);
        let capabilities = security.capabilities.clone().unwrap_or_default();
        Ok(spec::Plan {
            args,
            env,
            cwd: container
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or_else(|| Some(config.working_dir.clone()).filter(|w| !w.is_empty()))
                .unwrap_or_else(|| "/".into()),
            uid,
            gid,
            additional_gids,
            hostname,
            netns: sandbox::netns_path(&sandbox::netns_name(&self.uid)),
            cgroup: format!("{}/pod{}/{id}", self.ctx.config.cgroup_parent(), self.uid),
            binds,
            shm_bytes: 64 << 20,
            memory_limit,
            swap_accounting: self.ctx.swap_accounting,
            cpu_request_milli: cpu_request,
            cpu_limit_milli: cpu_limit,
            privileged,
            capabilities: spec::Capabilities {
                add: capabilities.add.unwrap_or_default(),
                drop: capabilities.drop.unwrap_or_default(),
            },
            read_only_root: security.read_only_root_filesystem == Some(true),
            no_new_privileges: security.allow_privilege_escalation == Some(false),
        })
    }

    /// Waits for a container's process to end and tells the worker. A runtime that is
    /// briefly away (containerd restarting) is waited out; a container that vanished is
    /// reported as killed.
    fn watch_exit(&self, id: String) {
        let runtime = Arc::clone(&self.ctx.runtime);
        let to_self = self.to_self.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                match runtime.wait(&id).await {
                    Ok(exit) => {
                        let _ = to_self
                            .send(Message::Exited {
                                container_id: id,
                                exit,
                            })
                            .await;
                        return;
                    }
                    Err(slipway_runtime::Error::NotFound(_)) => {
                        let exit = Exit {
                            status: 137,
                            at: SystemTime::now(),
                        };
                        let _ = to_self
                            .send(Message::Exited {
                                container_id: id,
                                exit,
                            })
                            .await;
                        return;
                    }
                    Err(e) => {
                        if to_self.is_closed() {
                            return;
                        }
                        failures += 1;
                        tracing::debug!(container = %id, error = %e, "waiting for a container failed; retrying");
                        tokio::time::sleep(slipway_controllers::reconciler::retry_after(
                            failures.min(6),
                        ))
                        .await;
                    }
                }
            }
        });
    }

    fn probe_target(&self, slot: &Slot, run: &Run) -> probe::Target {
        probe::Target {
            runtime: Arc::clone(&self.ctx.runtime),
            container_id: run.id.clone(),
            netns: PathBuf::from(sandbox::netns_path(&sandbox::netns_name(&self.uid))),
            pod_ip: self
                .ip
                .map_or_else(|| "127.0.0.1".into(), |ip| ip.to_string()),
            ports: slot
                .spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| Some((p.name.clone()?, p.container_port)))
                .collect(),
            process: run.process.clone(),
        }
    }

    /// Starts the container's startup probe, or, without one (or once it passed), its
    /// liveness and readiness probes.
    fn start_probes(&self, slot: &Slot, run: &Run) {
        if let Some(startup) = slot.spec.startup_probe.clone()
            && !slot.record.started
        {
            self.spawn_probe(startup, probe::Kind::Startup, slot, run);
            return;
        }
        self.start_steady_probes(slot, run);
    }

    fn start_steady_probes(&self, slot: &Slot, run: &Run) {
        if let Some(liveness) = slot.spec.liveness_probe.clone() {
            self.spawn_probe(liveness, probe::Kind::Liveness, slot, run);
        }
        if let Some(readiness) = slot.spec.readiness_probe.clone() {
            self.spawn_probe(readiness, probe::Kind::Readiness, slot, run);
        }
    }

    /// Runs a probe until the run ends.
    fn spawn_probe(&self, spec: Probe, kind: probe::Kind, slot: &Slot, run: &Run) {
        tokio::spawn(probe::run(
            spec,
            kind,
            self.probe_target(slot, run),
            self.verdicts.clone(),
            run.alive.child_token(),
        ));
    }

    async fn verdict(&mut self, verdict: Verdict) {
        let Some(i) = self
            .slots
            .iter()
            .position(|s| s.run.as_ref().is_some_and(|r| r.id == verdict.container_id))
        else {
            return;
        };
        let name = self.slots[i].spec.name.clone();
        if let Some(failure) = &verdict.failure {
            self.event(
                EventKind::Warning,
                "Unhealthy",
                &format!("{} probe failed: {failure}", verdict.kind.name()),
            )
            .await;
        }
        match (verdict.kind, verdict.crossed) {
            (probe::Kind::Readiness, Some(ready)) => {
                self.slots[i].record.ready = ready && self.slots[i].record.started;
                self.report().await;
            }
            (probe::Kind::Startup, Some(true)) => {
                self.slots[i].record.started = true;
                self.slots[i].record.ready = self.slots[i].spec.readiness_probe.is_none();
                if let Some(run) = self.slots[i].run.as_ref() {
                    self.start_steady_probes(&self.slots[i], run);
                }
                self.report().await;
            }
            (probe::Kind::Startup | probe::Kind::Liveness, Some(false)) => {
                if self.slots[i].stopping {
                    return;
                }
                self.slots[i].stopping = true;
                let id = self.slots[i]
                    .run
                    .as_ref()
                    .map(|r| r.id.clone())
                    .unwrap_or_default();
                self.event(
                    EventKind::Normal,
                    "Killing",
                    &format!(
                        "Container {name} failed {} probe, will be restarted",
                        verdict.kind.name().to_ascii_lowercase()
                    ),
                )
                .await;
                self.stop_in_background(id, name);
            }
            _ => {}
        }
    }

    fn grace(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref()?.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }

    fn stop_in_background(&self, id: String, name: String) {
        let runtime = Arc::clone(&self.ctx.runtime);
        let grace = self.grace();
        let hook = self.pre_stop(&name, &id);
        tokio::spawn(async move {
            stop_container(runtime, &id, grace, hook).await;
        });
    }

    fn pre_stop(&self, name: &str, id: &str) -> Option<(probe::Handler, probe::Target)> {
        let slot = self.slots.iter().find(|s| s.spec.name == name)?;
        let handler = slot.spec.lifecycle.as_ref()?.pre_stop.as_ref()?;
        let handler = if let Some(exec) = &handler.exec {
            probe::Handler::Exec(exec.clone())
        } else if let Some(http) = &handler.http_get {
            probe::Handler::Http(http.clone())
        } else {
            return None;
        };
        let run = slot.run.as_ref().filter(|r| r.id == id)?;
        Some((handler, self.probe_target(slot, run)))
    }

    /// Records how a container ended and whether it restarts; `remove` deletes it from the
    /// runtime in the background (a caller removing it itself passes false).
    async fn exited(&mut self, container_id: &str, exit: Exit, remove: bool) {
        let Some(i) = self
            .slots
            .iter()
            .position(|s| s.run.as_ref().is_some_and(|r| r.id == container_id))
        else {
            return;
        };
        let Some(run) = self.slots[i].run.take() else {
            return;
        };
        run.alive.cancel();
        self.ctx.set_live_log(run.log.clone(), None);
        self.ctx.stats.ended(container_id);
        let _ = std::fs::remove_file(process_file(&self.pod_dir(), container_id));
        let name = self.slots[i].spec.name.clone();
        let cgroup = format!(
            "{}/pod{}/{container_id}",
            self.ctx.config.cgroup_parent(),
            self.uid
        );
        let oom = oom_killed(&cgroup) || self.ctx.oom_seen(container_id);
        let code = i32::try_from(exit.status).unwrap_or(255);
        let message_file = self
            .pod_dir()
            .join("termination")
            .join(&name)
            .join("message");
        let message = std::fs::read(&message_file)
            .ok()
            .filter(|m| !m.is_empty())
            .map(|m| String::from_utf8_lossy(&m[..m.len().min(MESSAGE_LIMIT)]).into_owned());
        let terminated = Terminated {
            exit_code: code,
            reason: Terminated::reason_for(code, oom).into(),
            message,
            started_at: Some(run.started),
            finished_at: exit.at,
            container_id: format!("containerd://{container_id}"),
        };
        if remove {
            self.forget(container_id.to_owned());
        }
        let policy = self.restart_policy();
        let slot = &mut self.slots[i];
        let restart = match policy.as_str() {
            "Always" => true,
            "OnFailure" => code != 0 || slot.stopping,
            _ => false,
        } && self.pod.metadata.deletion_timestamp.is_none()
            && self.failure.is_none();
        slot.record.ready = false;
        slot.record.started = false;
        if restart && (!slot.init || code != 0) {
            let delay = slot.backoff.next(run.since.elapsed());
            slot.restart_at = Some(Instant::now() + delay);
            if delay.is_zero() {
                slot.record.state = State::Terminated(terminated);
            } else {
                slot.record.last = Some(terminated);
                slot.record.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={name} pod={}_{}({})",
                        delay.as_secs(),
                        self.pod.metadata.name.as_deref().unwrap_or_default(),
                        self.pod.metadata.namespace.as_deref().unwrap_or_default(),
                        self.uid
                    )),
                };
                self.event(
                    EventKind::Warning,
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {name} in pod {}_{}({})",
                        self.name(),
                        self.namespace(),
                        self.uid
                    ),
                )
                .await;
            }
        } else {
            slot.record.state = State::Terminated(terminated);
        }
        self.slots[i].stopping = false;
    }

    /// Writes the status if it changed since the last write.
    async fn report(&mut self) {
        let (init, containers): (Vec<Record>, Vec<Record>) = {
            let init = self
                .slots
                .iter()
                .filter(|s| s.init)
                .map(|s| s.record.clone())
                .collect();
            let containers = self
                .slots
                .iter()
                .filter(|s| !s.init)
                .map(|s| s.record.clone())
                .collect();
            (init, containers)
        };
        let ip = self.ip.map(|ip| ip.to_string());
        let host = self.ctx.config.address.to_string();
        let failure = self.failure.as_ref().map(|(r, m)| (r.as_str(), m.as_str()));
        let report = Report {
            pod: &self.pod,
            init: &init,
            containers: &containers,
            pod_ip: ip.as_deref(),
            host_ip: &host,
            start_time: self.start_time,
            failure,
        };
        let body = crate::status::status(&report, SystemTime::now());
        if self.sent.as_ref() == Some(&body) {
            return;
        }
        tracing::debug!(pod = %self.name(), phase = %body["phase"], "reporting the pod status");
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace());
        match api
            .patch_status(
                &self.name(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": body })),
            )
            .await
        {
            Ok(pod) => {
                if pod.metadata.uid.as_deref() == Some(self.uid.as_str()) {
                    self.pod.status = pod.status;
                    self.pod.metadata.resource_version = pod.metadata.resource_version;
                }
                self.sent = Some(body);
            }
            Err(e) => {
                tracing::debug!(pod = %self.name(), error = %e, "writing the pod status failed");
            }
        }
    }

    /// Stops every container within the grace period, removes them and the sandbox, and
    /// lets the API delete the pod.
    /// Stops every running container within `grace` (preStop, SIGTERM, SIGKILL) and
    /// records how each ended.
    async fn stop_all(&mut self, grace: Duration) {
        let mut stops = Vec::new();
        for slot in &self.slots {
            if let Some(run) = &slot.run {
                run.alive.cancel();
                self.event(
                    EventKind::Normal,
                    "Killing",
                    &format!("Stopping container {}", slot.spec.name),
                )
                .await;
                let runtime = Arc::clone(&self.ctx.runtime);
                let hook = self.pre_stop(&slot.spec.name, &run.id);
                let id = run.id.clone();
                stops.push(async move { stop_container(runtime, &id, grace, hook).await });
            }
        }
        let exits = futures::future::join_all(stops).await;
        let ids: Vec<String> = self
            .slots
            .iter()
            .filter_map(|s| s.run.as_ref().map(|r| r.id.clone()))
            .collect();
        for (id, exit) in ids.iter().zip(exits) {
            self.exited(id, exit, false).await;
        }
        for id in ids {
            if let Err(e) = self.ctx.runtime.delete(&id).await {
                tracing::warn!(container = %id, error = %e, "cannot remove a stopped container");
            }
        }
    }

    /// Evicts the pod when an emptyDir on disk holds more than its `sizeLimit`, as the
    /// kubelet does: its containers stop and it fails with reason `Evicted`.
    async fn enforce_size_limits(&mut self) -> bool {
        let root = self.pod_dir().join("volumes");
        let over = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| {
                let empty = v.empty_dir.as_ref()?;
                if empty.medium.as_deref() == Some("Memory") {
                    return None;
                }
                let limit = empty.size_limit.as_ref()?;
                let bytes = slipway_model::quantity::ParsedQuantity::try_from(limit)
                    .ok()?
                    .as_value();
                let used = volumes::usage(&root.join(&v.name));
                (i64::try_from(used).unwrap_or(i64::MAX) > bytes)
                    .then(|| (v.name.clone(), limit.0.clone()))
            })
            .next();
        let Some((name, limit)) = over else {
            return false;
        };
        let message =
            format!("Usage of EmptyDir volume \"{name}\" exceeds the limit \"{limit}\". ");
        self.event(EventKind::Warning, "Evicted", &message).await;
        self.failure = Some(("Evicted".into(), message));
        let grace = self.grace();
        self.stop_all(grace).await;
        self.report().await;
        true
    }

    async fn terminate(&mut self) {
        tracing::debug!(pod = %self.name(), gone = self.gone, "terminating");
        let grace = if self.gone && self.pod.metadata.deletion_timestamp.is_none() {
            Duration::ZERO
        } else {
            self.grace()
        };
        self.stop_all(grace).await;
        cleanup(&self.ctx, &self.uid).await;
        if self.gone {
            return;
        }
        self.report().await;
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&self.name(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %self.name(), error = %e, "cannot finish deleting a pod");
            }
        }
    }
}

impl Slot {
    fn new(spec: Container, init: bool, index: usize) -> Self {
        let record = Record::waiting(
            &spec.name,
            spec.image.as_deref().unwrap_or(""),
            "ContainerCreating",
        );
        Slot {
            spec,
            init,
            index,
            record,
            run: None,
            backoff: Backoff::default(),
            restart_at: None,
            stopping: false,
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn terminated_from_status(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> Terminated {
    Terminated {
        exit_code: t.exit_code,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|s| SystemTime::from(s.0)),
        finished_at: t
            .finished_at
            .as_ref()
            .map_or(SystemTime::UNIX_EPOCH, |s| SystemTime::from(s.0)),
        container_id: t.container_id.clone().unwrap_or_default(),
    }
}

/// Where a container's process settings (env, cwd, user) are kept under its pod's
/// directory.
fn process_file(pod_dir: &std::path::Path, container_id: &str) -> PathBuf {
    pod_dir.join("process").join(format!("{container_id}.json"))
}

/// `uid[:gid]` from an image config; names would need the image's /etc/passwd, which the
/// agent does not read, so they are refused with a way out.
fn parse_user(user: &str) -> Result<(u32, u32), ConfigError> {
    if user.is_empty() || user == "root" {
        return Ok((0, 0));
    }
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid = u.parse().map_err(|_| {
        ConfigError(format!(
            "image user {user:?} is not numeric: set securityContext.runAsUser"
        ))
    })?;
    let gid = if g.is_empty() {
        uid
    } else {
        g.parse().map_err(|_| {
            ConfigError(format!(
                "image group in {user:?} is not numeric: set securityContext.runAsGroup"
            ))
        })?
    };
    Ok((uid, gid))
}

/// Keeps the current and the previous attempt's logs of a container, as `--previous`
/// needs; older ones go.
fn prune_logs(dir: &std::path::Path, attempt: i32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let number: Option<i32> = name.split('.').next().and_then(|n| n.parse().ok());
        if number.is_some_and(|n| n < attempt - 1) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// kubelet's message for a pull, with the rate it came at: how long a slow registry
/// costs shows in `describe pod`.
fn pulled(name: &str, size: u64, took: std::time::Duration) -> String {
    let seconds = took.as_secs_f64();
    format!(
        "Successfully pulled image \"{name}\" in {seconds:.3}s. Image size: {size} bytes ({:.1} MB/s).",
        size as f64 / 1e6 / seconds.max(0.001)
    )
}

/// Whether the kernel's OOM killer struck in the container's memory cgroup.
fn oom_killed(cgroup: &str) -> bool {
    let relative = cgroup.trim_start_matches('/');
    let v1 = PathBuf::from("/sys/fs/cgroup/memory")
        .join(relative)
        .join("memory.oom_control");
    let v2 = PathBuf::from("/sys/fs/cgroup")
        .join(relative)
        .join("memory.events");
    [v1, v2].iter().any(|path| {
        std::fs::read_to_string(path).is_ok_and(|text| {
            text.lines().any(|line| {
                line.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    })
}

/// Stops a container: its preStop hook, SIGTERM, up to `grace` for it to exit, then
/// SIGKILL to every process in it. Returns how it ended.
pub(crate) async fn stop_container(
    runtime: Arc<dyn slipway_runtime::Runtime>,
    id: &str,
    grace: Duration,
    hook: Option<(probe::Handler, probe::Target)>,
) -> Exit {
    let deadline = Instant::now() + grace;
    if let Some((handler, target)) = hook
        && let probe::Outcome::Failure(message) =
            probe::check(&handler, &target, grace.max(Duration::from_secs(1))).await
    {
        tracing::info!(container = %id, %message, "preStop hook failed");
    }
    if let Err(e) = runtime.kill(id, 15, false).await {
        tracing::debug!(container = %id, error = %e, "SIGTERM failed");
    }
    let waited = tokio::time::timeout_at(deadline, async {
        loop {
            match runtime.wait(id).await {
                Ok(exit) => return Some(exit),
                Err(slipway_runtime::Error::NotFound(_)) => return None,
                Err(e) => {
                    tracing::debug!(container = %id, error = %e, "waiting for a stopping container failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
    .await;
    match waited {
        Ok(Some(exit)) => return exit,
        Ok(None) => {
            return Exit {
                status: 137,
                at: SystemTime::now(),
            };
        }
        Err(_) => {}
    }
    if let Err(e) = runtime.kill(id, 9, true).await {
        tracing::debug!(container = %id, error = %e, "SIGKILL failed");
    }
    match tokio::time::timeout(Duration::from_secs(10), runtime.wait(id)).await {
        Ok(Ok(exit)) => exit,
        _ => Exit {
            status: 137,
            at: SystemTime::now(),
        },
    }
}

/// Removes what a pod had on the host: its containers, network namespace, memory
/// volumes, directory, cgroup and address.
pub(crate) async fn cleanup(ctx: &Context, uid: &str) {
    ctx.proxy.remove_pod(uid);
    remove_from_host(ctx.runtime.as_ref(), &ctx.config, uid).await;
    if let Ok(mut ips) = ctx.ips.lock() {
        ips.release(uid);
    }
}

/// Removes a pod's containers, network namespace, memory volumes, directory and cgroup.
pub(crate) async fn remove_from_host(
    runtime: &dyn slipway_runtime::Runtime,
    config: &crate::Config,
    uid: &str,
) {
    if let Ok(containers) = runtime.list().await {
        for c in containers {
            if c.labels.get(labels::POD_UID).map(String::as_str) == Some(uid)
                && let Err(e) = runtime.delete(&c.id).await
            {
                tracing::warn!(container = %c.id, error = %e, "cannot remove a container");
            }
        }
    }
    if let Err(e) = sandbox::remove_netns(&sandbox::netns_name(uid)).await {
        tracing::warn!(pod = uid, error = %e, "cannot remove the pod's network namespace");
    }
    let dir = config.pod_dir(uid);
    volumes::unmount_all(&dir.join("volumes"));
    if let Err(e) = sandbox::remove_dir(&dir) {
        tracing::warn!(pod = uid, error = %e, "cannot remove the pod's directory");
    }
    if let Err(e) = sandbox::remove_cgroup(&format!("{}/pod{uid}", config.cgroup_parent())) {
        tracing::warn!(pod = uid, error = %e, "cannot remove the pod's cgroup");
    }
}
