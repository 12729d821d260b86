//! What the bench runs on: the HTTP server inside the server pod, the node's Service proxy
//! with both pods local, a second proxy as another node that holds the server pod and
//! serves its tunnel, and the Ingress gateway over the first proxy. Everything real but the
//! pods, which are bare network namespaces; nothing of the API server or containerd.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::json;
use slipway_gateway::{Gateway, Options};
use slipway_net::{LocalPod, Netns, Proxy, ProxyConfig, ProxyUpstream, TunnelKey};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::http;
use crate::pods::Pod;

/// The namespace of the bench's Services and pods.
const NAMESPACE: &str = "bench";
/// The Service whose endpoint is on this node, and its ClusterIP.
const WEB: (&str, Ipv4Addr) = ("web", Ipv4Addr::new(127, 100, 250, 1));
/// The Service whose endpoint Endpoints place on the other node.
const WEB_FAR: (&str, Ipv4Addr) = ("web-far", Ipv4Addr::new(127, 100, 250, 2));
/// The Service port, and the server's port inside its pod.
const SERVICE_PORT: u16 = 80;
const SERVER_PORT: u16 = 8080;
/// The node names Endpoints use.
const NEAR: &str = "near";
const FAR: &str = "far";
/// How long the proxy may take to open its listeners.
const READY_CAP: Duration = Duration::from_secs(10);

/// Where a client connects to, and from which network namespace.
pub(crate) struct Target {
    /// Inside this namespace, or the host's when `None`.
    netns: Option<Netns>,
    addr: SocketAddr,
}

impl Target {
    /// A new connection, made inside the target's client namespace.
    pub(crate) async fn connect(&self) -> anyhow::Result<TcpStream> {
        let stream = match &self.netns {
            Some(netns) => netns.connect(self.addr).await,
            None => TcpStream::connect(self.addr)
                .await
                .and_then(|s| s.set_nodelay(true).map(|()| s)),
        };
        stream.with_context(|| format!("connecting to {}", self.addr))
    }
}

/// The four ways to the server the bench compares.
pub(crate) struct Rig {
    /// The floor: from inside the server pod straight to its address.
    pub(crate) direct: Target,
    /// From inside the client pod to the ClusterIP of the Service with a local endpoint.
    pub(crate) same_node: Target,
    /// From inside the client pod to the ClusterIP of the Service whose endpoint is on the
    /// other node, through its tunnel.
    pub(crate) cross_node: Target,
    /// From the host's namespace to the gateway, which routes the host to `web`.
    pub(crate) gateway: Target,
    /// Stops the server, the proxies and the gateway when the rig goes.
    _stop: DropGuard,
}

fn service(name: &str, cluster_ip: Ipv4Addr) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "clusterIP": cluster_ip.to_string(),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": SERVER_PORT}],
        },
    }))?)
}

fn endpoints(name: &str, ip: Ipv4Addr, node: &str) -> anyhow::Result<Endpoints> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "subsets": [{
            "addresses": [{"ip": ip.to_string(), "nodeName": node}],
            "ports": [{"name": "http", "port": SERVER_PORT}],
        }],
    }))?)
}

fn ingress() -> anyhow::Result<Ingress> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {"rules": [{
            "host": http::HOST,
            "http": {"paths": [{
                "path": "/",
                "pathType": "Prefix",
                "backend": {"service": {"name": WEB.0, "port": {"number": SERVICE_PORT}}},
            }]},
        }]},
    }))?)
}

fn local(uid: &str, pod: &Pod) -> LocalPod {
    LocalPod {
        uid: uid.to_owned(),
        namespace: NAMESPACE.to_owned(),
        ip: pod.ip,
        netns: pod.netns.clone(),
        hosts: None,
    }
}

fn config(node: &str) -> ProxyConfig {
    ProxyConfig {
        node: node.to_owned(),
        node_address: Ipv4Addr::LOCALHOST,
        key: TunnelKey::derive("the bench's cluster secret"),
    }
}

impl Rig {
    /// Starts everything and returns once every way answers a request.
    pub(crate) async fn start(client: &Pod, server: &Pod) -> anyhow::Result<Rig> {
        let stop = CancellationToken::new();
        let server_addr = SocketAddr::from((server.ip, SERVER_PORT));
        let listener = server
            .netns
            .listen(server_addr)
            .await
            .context("listening inside the server pod")?;
        tokio::spawn(http::serve(listener, stop.clone()));

        let far = Proxy::new(config(FAR), stop.clone());
        far.add_pod(local("server", server));
        let tunnel = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("listening for the other node's tunnel")?;
        let tunnel_addr = tunnel.local_addr()?;
        tokio::spawn(far.serve_tunnel(tunnel));

        let near = Proxy::new(config(NEAR), stop.clone());
        tokio::spawn(near.clone().run());
        near.add_pod(local("client", client));
        near.add_pod(local("server", server));
        near.set_tunnel(FAR, Some(tunnel_addr));
        near.set_service(&service(WEB.0, WEB.1)?);
        near.set_endpoints(&endpoints(WEB.0, server.ip, NEAR)?);
        near.set_service(&service(WEB_FAR.0, WEB_FAR.1)?);
        near.set_endpoints(&endpoints(WEB_FAR.0, server.ip, FAR)?);

        let gateway = Gateway::new(Arc::new(ProxyUpstream(near)), Options::default());
        gateway.set_ingresses(&[ingress()?]);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("listening for the gateway")?;
        let gateway_addr = listener.local_addr()?;
        let serving = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = gateway.serve(listener, serving).await {
                eprintln!("the gateway stopped: {e}");
            }
        });

        let in_client = Some(client.netns.clone());
        let rig = Rig {
            direct: Target {
                netns: Some(server.netns.clone()),
                addr: server_addr,
            },
            same_node: Target {
                netns: in_client.clone(),
                addr: SocketAddr::V4(SocketAddrV4::new(WEB.1, SERVICE_PORT)),
            },
            cross_node: Target {
                netns: in_client,
                addr: SocketAddr::V4(SocketAddrV4::new(WEB_FAR.1, SERVICE_PORT)),
            },
            gateway: Target {
                netns: None,
                addr: gateway_addr,
            },
            _stop: stop.drop_guard(),
        };
        for target in [&rig.direct, &rig.same_node, &rig.cross_node, &rig.gateway] {
            answers_eventually(target).await?;
        }
        Ok(rig)
    }
}

/// Waits until a request through `target` is answered: the proxy opens its ClusterIP
/// listeners in the background.
async fn answers_eventually(target: &Target) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_CAP;
    loop {
        let attempt = async { http::Client::new(target.connect().await?).get_once().await };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if Instant::now() >= deadline => {
                return Err(e.context(format!("{} never answered", target.addr)));
            }
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => anyhow::bail!("{} never answered within {READY_CAP:?}", target.addr),
        }
    }
}
