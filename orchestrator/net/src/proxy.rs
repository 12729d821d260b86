//! The Service proxy of one node (D5). Inside the network namespace of every local pod it
//! listens on the proxy port, where the pod's connections to ClusterIPs arrive
//! ([`crate::redirect`]), and it listens on the node's address for NodePorts; a pod's
//! connection goes to a Service of the pod's own namespace only, and each accepted
//! connection goes to a ready endpoint, made
//! inside the endpoint pod's namespace when the pod is local, else through the endpoint
//! node's tunnel. It also keeps the Service names in each pod's /etc/hosts.
//!
//! It is level-triggered: changes only update what it knows and wake [`Proxy::run`], which
//! brings listeners and hosts files in line with it. Closing a listener leaves its
//! established connections to finish (drain); only new connections see the change.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::netns::Netns;
use crate::redirect::{self, PROXY_PORT};
use crate::table::{Endpoint, PickError, PortRef, Table, service_env};
use crate::tunnel::{self, TunnelKey};

/// How many endpoints one connection tries before giving up.
const ATTEMPTS: usize = 3;

/// A pod on this node, as the proxy needs it.
#[derive(Clone, Debug)]
pub struct LocalPod {
    /// The pod's UID.
    pub uid: String,
    /// Its namespace: it sees that namespace's Services and no others.
    pub namespace: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its network namespace.
    pub netns: Netns,
    /// Its /etc/hosts, kept current with the namespace's Services.
    pub hosts: Option<HostsFile>,
}

/// A pod's hosts file: where it is and what it holds besides Services.
#[derive(Clone, Debug)]
pub struct HostsFile {
    /// The file bind-mounted into the pod's containers; rewritten in place, since a
    /// bind mount keeps the inode it was made with.
    pub path: PathBuf,
    /// Its entries other than Services.
    pub base: String,
}

/// Who this proxy is.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The node's name, as Endpoints name it.
    pub node: String,
    /// The node's address, where NodePorts listen.
    pub node_address: Ipv4Addr,
    /// The key of the cluster's tunnels.
    pub key: TunnelKey,
}

/// Why a connection through the proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No endpoint to try.
    #[error(transparent)]
    Pick(#[from] PickError),
    /// Every endpoint tried failed; the last error.
    #[error("{0}")]
    Connect(io::Error),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Listener {
    /// The proxy port inside a pod.
    Pod { pod: String, namespace: String },
    Node {
        addr: SocketAddrV4,
        namespace: String,
        service: String,
        port: String,
    },
}

/// The listeners wanted (with the namespace each is made in) and each pod's hosts file.
type Desired = (BTreeMap<Listener, Option<Netns>>, Vec<(LocalPod, String)>);

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct Inner {
    config: ProxyConfig,
    table: Mutex<Table>,
    pods: Mutex<BTreeMap<String, LocalPod>>,
    tunnels: Mutex<HashMap<String, SocketAddr>>,
    changed: Notify,
    shutdown: CancellationToken,
}

/// The proxy; cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the node's networking down with it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Proxy {
    /// A proxy that stops serving when `shutdown` is cancelled.
    pub fn new(config: ProxyConfig, shutdown: CancellationToken) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                config,
                table: Mutex::new(Table::default()),
                pods: Mutex::new(BTreeMap::new()),
                tunnels: Mutex::new(HashMap::new()),
                changed: Notify::new(),
                shutdown,
            }),
        }
    }

    fn changed(&self) {
        self.inner.changed.notify_one();
    }

    /// Adds or replaces a Service.
    pub fn set_service(&self, service: &Service) {
        lock(&self.inner.table).set_service(service);
        self.changed();
    }

    /// Forgets a Service.
    pub fn remove_service(&self, namespace: &str, name: &str) {
        lock(&self.inner.table).remove_service(namespace, name);
        self.changed();
    }

    /// Adds or replaces a Service's endpoints.
    pub fn set_endpoints(&self, endpoints: &Endpoints) {
        lock(&self.inner.table).set_endpoints(endpoints);
    }

    /// Forgets a Service's endpoints.
    pub fn remove_endpoints(&self, namespace: &str, name: &str) {
        lock(&self.inner.table).remove_endpoints(namespace, name);
    }

    /// Where another node's tunnel listens (`None` when unknown).
    pub fn set_tunnel(&self, node: &str, addr: Option<SocketAddr>) {
        let mut tunnels = lock(&self.inner.tunnels);
        match addr {
            Some(addr) => tunnels.insert(node.to_owned(), addr),
            None => tunnels.remove(node),
        };
    }

    /// Adds or replaces a local pod.
    pub fn add_pod(&self, pod: LocalPod) {
        lock(&self.inner.pods).insert(pod.uid.clone(), pod);
        self.changed();
    }

    /// Forgets a local pod; its listeners close.
    pub fn remove_pod(&self, uid: &str) {
        lock(&self.inner.pods).remove(uid);
        self.changed();
    }

    /// The Service variables a container of `namespace` starting now gets.
    pub fn env_for(&self, namespace: &str) -> Vec<(String, String)> {
        service_env(lock(&self.inner.table).services_in(namespace))
    }

    /// A pod's hosts file: `base` and the names of its namespace's Services.
    pub fn hosts_for(&self, namespace: &str, base: &str) -> String {
        hosts_with_services(&lock(&self.inner.table), namespace, base)
    }

    /// Brings listeners and hosts files in line with what the proxy knows whenever that
    /// changes, until shutdown; then closes every listener.
    pub async fn run(self) {
        let mut running: BTreeMap<Listener, Running> = BTreeMap::new();
        let mut written: HashMap<String, String> = HashMap::new();
        loop {
            self.sync(&mut running, &mut written).await;
            tokio::select! {
                () = self.inner.shutdown.cancelled() => break,
                () = self.inner.changed.notified() => {}
            }
        }
        for (_, listener) in running {
            listener.stop.cancel();
        }
    }

    fn desired(&self) -> Desired {
        let table = lock(&self.inner.table);
        let pods = lock(&self.inner.pods);
        let mut wanted = BTreeMap::new();
        let mut hosts = Vec::new();
        for pod in pods.values() {
            wanted.insert(
                Listener::Pod {
                    pod: pod.uid.clone(),
                    namespace: pod.namespace.clone(),
                },
                Some(pod.netns.clone()),
            );
            if let Some(file) = &pod.hosts {
                let contents = hosts_with_services(&table, &pod.namespace, &file.base);
                hosts.push((pod.clone(), contents));
            }
        }
        for service in table.services() {
            for port in &service.ports {
                if let Some(node_port) = port.node_port {
                    wanted.insert(
                        Listener::Node {
                            addr: SocketAddrV4::new(self.inner.config.node_address, node_port),
                            namespace: service.namespace.clone(),
                            service: service.name.clone(),
                            port: port.name.clone(),
                        },
                        None,
                    );
                }
            }
        }
        (wanted, hosts)
    }

    async fn sync(
        &self,
        running: &mut BTreeMap<Listener, Running>,
        written: &mut HashMap<String, String>,
    ) {
        let (wanted, hosts) = self.desired();
        let gone: Vec<Listener> = running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(listener) = running.remove(&key) {
                listener.stop.cancel();
                // The address may be bound again below; wait until it is let go.
                let _ = listener.task.await;
            }
        }
        for (key, netns) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            match self.open(&key, netns.as_ref()).await {
                Ok(listener) => {
                    let stop = self.inner.shutdown.child_token();
                    let task =
                        tokio::spawn(self.clone().accept(key.clone(), listener, stop.clone()));
                    running.insert(key, Running { stop, task });
                }
                Err(e) => tracing::warn!(?key, "cannot listen for a service: {e}"),
            }
        }
        let pods: Vec<String> = hosts.iter().map(|(p, _)| p.uid.clone()).collect();
        written.retain(|uid, _| pods.contains(uid));
        for (pod, contents) in hosts {
            if written.get(&pod.uid) == Some(&contents) {
                continue;
            }
            let Some(file) = &pod.hosts else { continue };
            match rewrite_in_place(&file.path, contents.as_bytes()) {
                Ok(()) => {
                    written.insert(pod.uid.clone(), contents);
                }
                Err(e) => tracing::warn!(pod = %pod.uid, "cannot update /etc/hosts: {e}"),
            }
        }
    }

    async fn open(&self, key: &Listener, netns: Option<&Netns>) -> io::Result<TcpListener> {
        match (key, netns) {
            (Listener::Pod { .. }, Some(netns)) => {
                let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, PROXY_PORT);
                netns.listen(SocketAddr::V4(addr)).await
            }
            (Listener::Node { addr, .. }, _) => TcpListener::bind(addr).await,
            (Listener::Pod { .. }, None) => Err(io::Error::other("no namespace for the pod")),
        }
    }

    async fn accept(self, key: Listener, listener: TcpListener, stop: CancellationToken) {
        let client_of_pod = match &key {
            Listener::Pod { pod, .. } => lock(&self.inner.pods).get(pod).map(|p| IpAddr::V4(p.ip)),
            Listener::Node { .. } => None,
        };
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (downstream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(?key, "accept failed: {e}");
                    continue;
                }
            };
            let target = match &key {
                Listener::Node {
                    namespace,
                    service,
                    port,
                    ..
                } => Some((namespace.clone(), service.clone(), port.clone())),
                Listener::Pod { namespace, .. } => self.headed_for(namespace, &downstream),
            };
            let Some((namespace, service, port)) = target else {
                // Nothing of the pod's namespace at that address: the connection just
                // closes, as if nothing listened there.
                continue;
            };
            // Inside a pod every client looks like loopback; the pod is the client.
            let client = client_of_pod.unwrap_or(peer.ip());
            let proxy = self.clone();
            tokio::spawn(async move {
                let target = PortRef::Name(port);
                match proxy.connect(&namespace, &service, &target, client).await {
                    Ok(upstream) => splice(downstream, upstream).await,
                    Err(e) => tracing::debug!(%namespace, %service, "connection dropped: {e}"),
                }
            });
        }
    }

    /// The Service of `namespace` a redirected connection was headed for, with its port.
    fn headed_for(&self, namespace: &str, stream: &TcpStream) -> Option<(String, String, String)> {
        let headed = redirect::original_destination(stream)
            .map_err(|e| tracing::debug!("a connection without its destination: {e}"))
            .ok()?;
        let (service, port) = lock(&self.inner.table).at(namespace, *headed.ip(), headed.port())?;
        Some((namespace.to_owned(), service, port))
    }

    /// A new connection to a ready endpoint of a Service port on behalf of `client`,
    /// trying other endpoints when one refuses.
    ///
    /// # Errors
    ///
    /// When the Service has no ready endpoint or none accepts.
    pub async fn connect(
        &self,
        namespace: &str,
        service: &str,
        port: &PortRef,
        client: IpAddr,
    ) -> Result<TcpStream, ConnectError> {
        let mut failed: Vec<Endpoint> = Vec::new();
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let endpoint = lock(&self.inner.table).pick(
                namespace,
                service,
                port,
                client,
                &failed,
                Instant::now(),
            )?;
            if failed.contains(&endpoint) {
                break;
            }
            match self.dial(&endpoint).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    tracing::debug!(?endpoint, "endpoint refused: {e}");
                    last = Some(e);
                    failed.push(endpoint);
                }
            }
        }
        Err(ConnectError::Connect(last.unwrap_or_else(|| {
            io::Error::other("no endpoint accepted")
        })))
    }

    fn local_netns(&self, ip: Ipv4Addr) -> Option<Netns> {
        lock(&self.inner.pods)
            .values()
            .find(|p| p.ip == ip)
            .map(|p| p.netns.clone())
    }

    async fn dial(&self, endpoint: &Endpoint) -> io::Result<TcpStream> {
        let target = SocketAddrV4::new(endpoint.ip, endpoint.port);
        let remote = endpoint
            .node
            .as_deref()
            .filter(|n| *n != self.inner.config.node);
        match remote {
            None => {
                let netns = self.local_netns(endpoint.ip).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no local pod has {}", endpoint.ip),
                    )
                })?;
                netns.connect(SocketAddr::V4(target)).await
            }
            Some(node) => {
                let addr = lock(&self.inner.tunnels)
                    .get(node)
                    .copied()
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("node {node} has no known tunnel"),
                        )
                    })?;
                Ok(tunnel::open(addr, &self.inner.config.key, target).await?)
            }
        }
    }

    /// Serves other nodes' tunnels on `listener` until shutdown: each authenticated
    /// connection is spliced to the local pod endpoint it names.
    pub async fn serve_tunnel(self, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                () = self.inner.shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((mut stream, peer)) = accepted else {
                continue;
            };
            let proxy = self.clone();
            tokio::spawn(async move {
                let target = match tunnel::accept(&mut stream, &proxy.inner.config.key).await {
                    Ok(target) => target,
                    Err(e) => {
                        tracing::info!(%peer, "tunnel refused: {e}");
                        return;
                    }
                };
                let Some(netns) = proxy.local_netns(*target.ip()) else {
                    let _ = tunnel::answer(&mut stream, Err(format!("no pod has {}", target.ip())))
                        .await;
                    return;
                };
                match netns.connect(SocketAddr::V4(target)).await {
                    Ok(upstream) => {
                        if tunnel::answer(&mut stream, Ok(())).await.is_ok() {
                            splice(stream, upstream).await;
                        }
                    }
                    Err(e) => {
                        let _ = tunnel::answer(&mut stream, Err(e.to_string())).await;
                    }
                }
            });
        }
    }
}

fn hosts_with_services(table: &Table, namespace: &str, base: &str) -> String {
    let mut hosts = base.to_owned();
    let mut services = table
        .services_in(namespace)
        .filter_map(|s| Some((s.cluster_ip?, s.host_names())))
        .peekable();
    if services.peek().is_some() {
        hosts.push_str("\n# Services of the namespace.\n");
        for (ip, names) in services {
            hosts.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    hosts
}

async fn splice(mut a: TcpStream, mut b: TcpStream) {
    // Either side closing ends the copy; errors are the peers' business, not the node's.
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}

/// Rewrites a file keeping its inode, so bind mounts of it see the new contents.
fn rewrite_in_place(path: &std::path::Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    file.write_all(contents)
}
