//! The node agent (D4, D5): registers its Node and keeps its Lease, watches the pods bound
//! to it, and runs each through a worker (`pod`) that turns it into containers on the
//! container runtime (containerd behind [`slipway_runtime::Runtime`]), one network
//! namespace per pod. It is a kube-rs client of the API like every other component (D2).
//!
//! Stopping the agent leaves its pods running; a new agent on the same data directory
//! adopts them (running containers are kept, finished ones reported, vanished ones
//! restarted per policy) and removes the containers of pods that went away meanwhile.

mod api;
pub mod backoff;
pub mod env;
pub mod images;
mod ingress;
mod ips;
mod labels;
pub mod network;
pub mod node;
mod pod;
pub mod probe;
pub mod sandbox;
pub mod spec;
mod stats;
pub mod status;
pub mod volumes;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use slipway_controllers::events::Recorder;
use slipway_runtime::{LogTarget, Runtime};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use crate::ips::Cidr;
pub use crate::node::Reserved;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused the agent's credentials.
    #[error("the API server refused the agent's credentials ({0}); check --token")]
    Unauthorized(String),
    /// The API answered with another error or could not be reached.
    #[error("API request failed: {0}")]
    Api(kube::Error),
    /// The container runtime failed.
    #[error(transparent)]
    Runtime(#[from] slipway_runtime::Error),
    /// Something the agent made for itself failed.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn from_kube(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
                Error::Unauthorized(format!("{} {}", status.code, status.message))
            }
            _ => Error::Api(e),
        }
    }
}

/// How the agent runs. Not `Debug`: it holds the node token, which never reaches a log.
#[derive(Clone)]
pub struct Config {
    /// The Node's name.
    pub node_name: String,
    /// The node's address (its InternalIP, the pods' hostIP).
    pub address: Ipv4Addr,
    /// The port the agent serves container logs on.
    pub port: u16,
    /// Where pods' files, volumes and logs live.
    pub data_dir: PathBuf,
    /// The loopback block pod addresses come from, unique per node; `None` picks one no
    /// other Node has (or keeps the one this Node was registered with).
    pub pod_cidr: Option<Cidr>,
    /// What the node keeps back from pods.
    pub reserved: Reserved,
    /// Whether privileged containers may run here.
    pub allow_privileged: bool,
    /// The logger containerd's shim runs for each container (`binary://`): the `slipway`
    /// binary itself, which writes the CRI log format with rotation (`slipway-logs`).
    pub logger: PathBuf,
    /// When unused images are removed to free disk space.
    pub image_gc: images::GcPolicy,
    /// The bearer token the API server presents to the agent's endpoint (the join token).
    pub token: String,
}

/// The sockets the agent serves on, bound by the caller (so it can pick free ports).
pub struct Listeners {
    /// The agent's endpoint for the API server (logs, images, exec).
    pub api: tokio::net::TcpListener,
    /// The tunnel other nodes' proxies reach this node's pods through; it listens on the
    /// node's address, and the port is published on the Node.
    pub tunnel: tokio::net::TcpListener,
    /// Where the gateway serves the cluster's Ingresses, if this node runs one.
    pub gateway: Option<tokio::net::TcpListener>,
}

/// What every worker shares.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) config: Config,
    pub(crate) recorder: Recorder,
    pub(crate) ips: Mutex<ips::Ips>,
    pub(crate) allocatable: node::Machine,
    pub(crate) swap_accounting: bool,
    /// When each image last started a container, for image garbage collection.
    pub(crate) image_usage: images::Usage,
    /// The node's Service proxy, which pods join once their sandbox exists.
    pub(crate) proxy: slipway_net::Proxy,
    /// Ends streaming sessions (port-forwards) when the agent stops.
    pub(crate) streams: CancellationToken,
    /// Which containers run for which pods, and their usage readings.
    pub(crate) stats: stats::Stats,
    oom: Mutex<HashSet<String>>,
    /// Log files of running attempts, each with a token cancelled when the attempt ends,
    /// so `kubectl logs -f` stops with the container.
    live_logs: Mutex<HashMap<PathBuf, CancellationToken>>,
}

impl Config {
    pub(crate) fn pod_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("pods").join(uid)
    }

    /// The cgroup every pod of this agent lives under.
    pub(crate) fn cgroup_parent(&self) -> String {
        format!("{}/{}", sandbox::CGROUP_PARENT, self.node_name)
    }
}

/// Removes every pod this agent left on the host: containers, network namespaces,
/// volumes, directories and cgroups. For `slipway up` stopping without `--keep-pods`, and
/// for tests leaving nothing behind; the API is not told.
pub async fn clear(runtime: &dyn Runtime, config: &Config) {
    let mut uids: HashSet<String> = HashSet::new();
    if let Ok(containers) = runtime.list().await {
        uids.extend(
            containers
                .iter()
                .filter_map(|c| c.labels.get(labels::POD_UID).cloned()),
        );
    }
    if let Ok(entries) = std::fs::read_dir(config.data_dir.join("pods")) {
        uids.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    for uid in uids {
        pod::remove_from_host(runtime, config, &uid).await;
    }
    if let Err(e) = sandbox::remove_cgroup(&config.cgroup_parent()) {
        tracing::warn!(error = %e, "cannot remove the agent's cgroup");
    }
    sandbox::remove_cgroup_if_empty(sandbox::CGROUP_PARENT);
}

impl Context {
    pub(crate) fn log_target(&self, path: &Path) -> LogTarget {
        LogTarget::Binary {
            path: self.config.logger.clone(),
            args: slipway_logs::logger_uri_args(
                path,
                slipway_logs::DEFAULT_MAX_SIZE,
                slipway_logs::DEFAULT_MAX_FILES,
            ),
        }
    }

    /// The token that ends when the attempt writing `path` ends, if one is running.
    pub(crate) fn live_log(&self, path: &Path) -> Option<CancellationToken> {
        self.live_logs.lock().ok()?.get(path).cloned()
    }

    pub(crate) fn set_live_log(&self, path: PathBuf, alive: Option<CancellationToken>) {
        if let Ok(mut logs) = self.live_logs.lock() {
            match alive {
                Some(token) => logs.insert(path, token),
                None => logs.remove(&path),
            };
        }
    }

    /// Whether the runtime reported an OOM kill in this container.
    pub(crate) fn oom_seen(&self, id: &str) -> bool {
        self.oom
            .lock()
            .map(|mut seen| seen.remove(id))
            .unwrap_or(false)
    }
}

#[cfg(test)]
impl Context {
    /// A context over `runtime` for handler tests: an API client that reaches nothing,
    /// node `n1`, token `node-token`, data under `data_dir`.
    pub(crate) fn for_tests(runtime: Arc<dyn Runtime>, data_dir: &Path) -> Arc<Context> {
        let api = kube::Config::new(http::Uri::from_static("http://127.0.0.1:9"));
        let client = Client::try_from(api).expect("a client needs no server to exist");
        let config = Config {
            node_name: "n1".into(),
            address: Ipv4Addr::LOCALHOST,
            port: 0,
            data_dir: data_dir.to_owned(),
            pod_cidr: None,
            reserved: Reserved::default(),
            allow_privileged: false,
            logger: PathBuf::from("/bin/false"),
            image_gc: images::GcPolicy::default(),
            token: "node-token".into(),
        };
        let streams = CancellationToken::new();
        let proxy = slipway_net::Proxy::new(
            slipway_net::ProxyConfig {
                node: config.node_name.clone(),
                node_address: config.address,
                key: slipway_net::TunnelKey::derive(&config.token),
            },
            streams.clone(),
        );
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), "kubelet"),
            client,
            runtime,
            ips: Mutex::new(ips::Ips::new(
                "127.200.0.0/16".parse().expect("a loopback block"),
            )),
            allocatable: node::Machine {
                cpu_milli: 1000,
                memory: 1 << 30,
                disk: 1 << 30,
            },
            swap_accounting: false,
            image_usage: images::Usage::default(),
            proxy,
            streams,
            stats: stats::Stats::default(),
            oom: Mutex::default(),
            live_logs: Mutex::default(),
            config,
        })
    }
}

/// How long pods wait for the first list of Services at start.
const SERVICES_LISTED: std::time::Duration = std::time::Duration::from_secs(10);

struct Handle {
    to_worker: mpsc::Sender<pod::Message>,
    namespace: String,
}

/// Runs the agent until `shutdown` is cancelled.
///
/// # Errors
///
/// When the node cannot be registered (bad credentials, unreachable API, runtime down).
/// Later failures are retried, not returned.
pub async fn run(
    client: Client,
    runtime: Arc<dyn Runtime>,
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let tunnel_port = listeners
        .tunnel
        .local_addr()
        .map_err(|e| Error::Internal(format!("the tunnel listener: {e}")))?
        .port();
    std::fs::create_dir_all(config.data_dir.join("pods")).map_err(|e| {
        Error::Internal(format!("cannot create {}: {e}", config.data_dir.display()))
    })?;
    let runtime_version = runtime.version().await?;
    let machine = node::machine(&config.data_dir);
    let nodes: Api<Node> = Api::all(client.clone());
    let listed = nodes
        .list(&Default::default())
        .await
        .map_err(Error::from_kube)?
        .items;
    let previous = listed
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(config.node_name.as_str()))
        .cloned();
    let pod_cidr = match config.pod_cidr {
        Some(cidr) => cidr,
        None => ips::choose(&config.node_name, &listed).ok_or_else(|| {
            Error::Internal("no loopback pod CIDR is left for this node: pass --pod-cidr".into())
        })?,
    };
    let identity = node::Identity {
        name: config.node_name.clone(),
        address: config.address,
        port: config.port,
        pod_cidr: pod_cidr.to_string(),
        runtime_version,
        tunnel_port,
    };
    let status = node::status(
        &identity,
        &machine,
        config.reserved,
        node::pressure(&config.data_dir),
        None,
        previous.as_ref(),
    );
    node::register(&client, &identity, status).await?;
    let allocatable = node::Machine {
        cpu_milli: machine.cpu_milli - config.reserved.cpu_milli,
        memory: machine.memory - config.reserved.memory,
        disk: machine.disk - config.reserved.disk,
    };
    let proxy = slipway_net::Proxy::new(
        slipway_net::ProxyConfig {
            node: config.node_name.clone(),
            node_address: config.address,
            // Every agent joins with the cluster's join token, so it doubles as the
            // secret tunnels are keyed with.
            key: slipway_net::TunnelKey::derive(&config.token),
        },
        shutdown.child_token(),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        runtime: Arc::clone(&runtime),
        recorder: Recorder::new(client.clone(), "kubelet"),
        ips: Mutex::new(ips::Ips::new(pod_cidr)),
        allocatable,
        swap_accounting: sandbox::swap_accounting(),
        image_usage: images::Usage::default(),
        proxy: proxy.clone(),
        streams: shutdown.child_token(),
        stats: stats::Stats::default(),
        oom: Mutex::default(),
        live_logs: Mutex::default(),
        config,
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(heartbeat(
        Arc::clone(&ctx),
        identity,
        machine,
        shutdown.child_token(),
    ));
    tasks.spawn(ooms(Arc::clone(&ctx), shutdown.child_token()));
    tasks.spawn(collect_images(Arc::clone(&ctx), shutdown.child_token()));
    tasks.spawn(stats::sample(Arc::clone(&ctx), shutdown.child_token()));
    tasks.spawn(api::serve(
        listeners.api,
        Arc::clone(&ctx),
        shutdown.child_token(),
    ));
    tasks.spawn(proxy.clone().run());
    tasks.spawn(proxy.clone().serve_tunnel(listeners.tunnel));
    if let Some(gateway) = listeners.gateway {
        tasks.spawn(ingress::serve(
            client.clone(),
            proxy.clone(),
            gateway,
            shutdown.child_token(),
        ));
    }
    let (synced, services_listed) = tokio::sync::oneshot::channel();
    tasks.spawn(network::watch(
        client.clone(),
        proxy,
        synced,
        shutdown.child_token(),
    ));
    // Pods get the variables of the Services that exist when they start, so list those
    // first; an API too slow to answer must not hold the pods back for long.
    let _ = tokio::time::timeout(SERVICES_LISTED, services_listed).await;
    let result = serve(ctx, shutdown.clone()).await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    result
}

/// Renews the Lease every 10 s and posts the node status every minute, or at once when
/// the container runtime goes down or comes back (Ready follows it).
async fn heartbeat(
    ctx: Arc<Context>,
    identity: node::Identity,
    machine: node::Machine,
    stop: CancellationToken,
) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut renewals = tokio::time::interval(node::LEASE_RENEWAL);
    let mut reported = tokio::time::Instant::now();
    let mut runtime_down: Option<String> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = renewals.tick() => {}
        }
        if let Err(e) = node::renew(&ctx.client, &identity.name).await {
            tracing::warn!(error = %e, "renewing the node lease failed");
        }
        let down = ctx.runtime.version().await.err().map(|e| e.to_string());
        if reported.elapsed() >= node::STATUS_REPORT || down.is_some() != runtime_down.is_some() {
            reported = tokio::time::Instant::now();
            runtime_down = down;
            let previous = nodes.get_opt(&identity.name).await.ok().flatten();
            let status = node::status(
                &identity,
                &machine,
                ctx.config.reserved,
                node::pressure(&ctx.config.data_dir),
                runtime_down.as_deref(),
                previous.as_ref(),
            );
            if let Err(e) = node::register(&ctx.client, &identity, status).await {
                tracing::warn!(error = %e, "posting the node status failed");
            }
        }
    }
}

/// Removes unused images whenever the disk is fuller than the policy allows.
async fn collect_images(ctx: Arc<Context>, stop: CancellationToken) {
    let policy = ctx.config.image_gc;
    let mut ticks = tokio::time::interval(policy.period);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        images::collect(
            ctx.runtime.as_ref(),
            &ctx.image_usage,
            &ctx.config.data_dir,
            policy,
        )
        .await;
    }
}

/// Remembers the containers the runtime reports OOM kills in, for exit reasons.
async fn ooms(ctx: Arc<Context>, stop: CancellationToken) {
    let mut events = match ctx.runtime.events().await {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "cannot subscribe to runtime events; OOM kills are read from cgroups only");
            return;
        }
    };
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Some(slipway_runtime::Event::Oom { container }) => {
                if let Ok(mut seen) = ctx.oom.lock() {
                    if seen.len() > 10_000 {
                        seen.clear();
                    }
                    seen.insert(container);
                }
            }
            Some(_) => {}
            None => return,
        }
    }
}

/// Whether a watch failed because this node may not watch that kind.
fn refused<T>(event: &Result<T, watcher::Error>) -> bool {
    match event {
        Err(
            watcher::Error::InitialListFailed(kube::Error::Api(status))
            | watcher::Error::WatchStartFailed(kube::Error::Api(status))
            | watcher::Error::WatchFailed(kube::Error::Api(status)),
        ) => status.is_forbidden(),
        Err(watcher::Error::WatchError(status)) => status.is_forbidden(),
        _ => false,
    }
}

/// Watches this node's pods (and the ConfigMaps and Secrets they may mount) and keeps one
/// worker per pod.
async fn serve(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), Error> {
    let mut existing: HashMap<String, Vec<slipway_runtime::Container>> = HashMap::new();
    for container in ctx.runtime.list().await? {
        if let Some(uid) = container.labels.get(labels::POD_UID) {
            existing.entry(uid.clone()).or_default().push(container);
        }
    }
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("spec.nodeName={}", ctx.config.node_name);
    let mut pod_events = watcher(pods, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let config_maps: Api<ConfigMap> = Api::all(ctx.client.clone());
    let secrets: Api<Secret> = Api::all(ctx.client.clone());
    // Changes wake the pods of their namespace at once, where this node may watch them; a
    // node authorized by the node authorizer may only get the objects its pods use, so it
    // stops at the refusal and its workers' periodic resync refreshes their volumes.
    let mut changes = futures::stream::select(
        watcher(config_maps, watcher::Config::default())
            .default_backoff()
            .take_while(|e| std::future::ready(!refused(e)))
            .map(|e| e.ok().and_then(|e| namespace_of(&e))),
        watcher(secrets, watcher::Config::default())
            .default_backoff()
            .take_while(|e| std::future::ready(!refused(e)))
            .map(|e| e.ok().and_then(|e| namespace_of(&e))),
    )
    .boxed();
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let mut running: JoinSet<String> = JoinSet::new();
    let mut listed = false;
    let mut seen_in_list: HashSet<String> = HashSet::new();
    let stop_workers = shutdown.child_token();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = running.join_next() => {
                if let Ok(uid) = done
                    && workers.get(&uid).is_some_and(|h| h.to_worker.is_closed())
                {
                    workers.remove(&uid);
                }
            }
            Some(namespace) = changes.next() => {
                if let Some(namespace) = namespace {
                    for handle in workers.values().filter(|h| h.namespace == namespace) {
                        let _ = handle.to_worker.try_send(pod::Message::Wake);
                    }
                }
            }
            event = pod_events.next() => {
                let Some(event) = event else { break };
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::debug!(error = %e, "the pod watch failed; it restarts");
                        continue;
                    }
                };
                match event {
                    watcher::Event::Init => seen_in_list.clear(),
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        seen_in_list.insert(uid.clone());
                        if let Some(handle) = workers.get(&uid) {
                            if handle.to_worker.send(pod::Message::Pod(Box::new(pod))).await.is_ok() {
                                continue;
                            }
                            workers.remove(&uid);
                            // The worker ended (the pod terminated); a pod still listed
                            // is on its way out and needs nothing more.
                            continue;
                        }
                        let (to_worker, messages) = mpsc::channel(64);
                        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                        let worker = pod::Worker::new(
                            Arc::clone(&ctx),
                            pod,
                            existing.remove(&uid).unwrap_or_default(),
                            messages,
                            to_worker.clone(),
                        );
                        let stop = stop_workers.clone();
                        let key = uid.clone();
                        running.spawn(async move {
                            Box::pin(worker.run(stop)).await;
                            key
                        });
                        workers.insert(uid, Handle { to_worker, namespace });
                    }
                    watcher::Event::Delete(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        if let Some(handle) = workers.get(&uid) {
                            let _ = handle.to_worker.send(pod::Message::Gone).await;
                        }
                    }
                    watcher::Event::InitDone => {
                        if !listed {
                            listed = true;
                            remove_orphans(&ctx, &seen_in_list, std::mem::take(&mut existing)).await;
                        }
                    }
                }
            }
        }
    }
    stop_workers.cancel();
    while running.join_next().await.is_some() {}
    Ok(())
}

fn namespace_of<K: kube::Resource>(event: &watcher::Event<K>) -> Option<String> {
    match event {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) => o.meta().namespace.clone(),
        _ => None,
    }
}

/// Removes what pods that went away while the agent was down left behind: their
/// containers, and pod directories no pod of this node claims.
async fn remove_orphans(
    ctx: &Context,
    live: &HashSet<String>,
    leftovers: HashMap<String, Vec<slipway_runtime::Container>>,
) {
    let mut orphans: HashSet<String> = leftovers
        .into_keys()
        .filter(|uid| !live.contains(uid))
        .collect();
    if let Ok(entries) = std::fs::read_dir(ctx.config.data_dir.join("pods")) {
        for entry in entries.flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if !live.contains(&uid) {
                orphans.insert(uid);
            }
        }
    }
    for uid in orphans {
        tracing::info!(pod = %uid, "removing what a pod that is gone left behind");
        pod::cleanup(ctx, &uid).await;
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;
    use kube::runtime::watcher;

    use super::refused;

    #[test]
    fn only_a_refusal_stops_a_watch() {
        let forbidden = || Status::failure("no", "Forbidden").with_code(403).boxed();
        let unavailable = || {
            Status::failure("later", "ServiceUnavailable")
                .with_code(503)
                .boxed()
        };
        let list = |s| Err::<(), _>(watcher::Error::InitialListFailed(kube::Error::Api(s)));
        assert!(refused(&list(forbidden())));
        assert!(refused(&Err::<(), _>(watcher::Error::WatchError(
            forbidden()
        ))));
        assert!(!refused(&list(unavailable())));
        assert!(!refused(&Err::<(), _>(watcher::Error::NoResourceVersion)));
        assert!(!refused(&Ok(())));
    }
}
