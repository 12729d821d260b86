//! The agent's gateway (D5): Ingresses routed to Services through the node's proxy. The
//! gateway itself ([`slipway_gateway`]) knows nothing of the cluster; this module feeds it
//! every Ingress and lets it reach Services as pods do, through [`slipway_net::Proxy`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::Api;
use slipway_gateway::{Backend, Gateway, ServicePort, Upstream, UpstreamError};
use slipway_net::{ConnectError, PickError, PortRef, Proxy};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::network::{Key, follow};

/// Reaches Services through the node's proxy.
struct ThroughProxy(Proxy);

#[async_trait::async_trait]
impl Upstream for ThroughProxy {
    async fn connect(
        &self,
        backend: &Backend,
        client: SocketAddr,
    ) -> Result<TcpStream, UpstreamError> {
        let port = match &backend.port {
            ServicePort::Number(n) => PortRef::Number(*n),
            ServicePort::Name(name) => PortRef::Name(name.clone()),
        };
        self.0
            .connect(&backend.namespace, &backend.service, &port, client.ip())
            .await
            .map_err(|e| match e {
                ConnectError::Pick(PickError::NoReadyEndpoint(_)) => UpstreamError::NoReadyEndpoint,
                ConnectError::Pick(_) => UpstreamError::UnknownService,
                ConnectError::Connect(e) => UpstreamError::Connect(e),
            })
    }
}

/// Serves the gateway on `listener` until `stop`, its routes following the cluster's
/// Ingresses.
pub(crate) async fn serve(
    client: Client,
    proxy: Proxy,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let gateway = Arc::new(Gateway::new(
        Arc::new(ThroughProxy(proxy)),
        slipway_gateway::Options::default(),
    ));
    let routes = {
        let gateway = Arc::clone(&gateway);
        let ingresses = Arc::new(std::sync::Mutex::new(BTreeMap::<Key, Ingress>::new()));
        let (set, remove) = (Arc::clone(&ingresses), ingresses);
        let (g1, g2) = (Arc::clone(&gateway), gateway);
        follow(
            Api::<Ingress>::all(client),
            move |i: &Ingress| {
                let mut all = set
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                all.insert(crate::network::key(i), i.clone());
                g1.set_ingresses(&all.values().cloned().collect::<Vec<_>>());
            },
            move |key: &Key| {
                let mut all = remove
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                all.remove(key);
                g2.set_ingresses(&all.values().cloned().collect::<Vec<_>>());
            },
            None,
            stop.clone(),
        )
    };
    let serving = gateway.serve(listener, stop.clone());
    let (_, served) = tokio::join!(routes, serving);
    if let Err(e) = served {
        tracing::error!(error = %e, "the gateway stopped");
    }
}
