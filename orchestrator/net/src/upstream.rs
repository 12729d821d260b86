//! The gateway's way to Services: [`slipway_gateway::Upstream`] over the node's proxy, so
//! a request through an Ingress reaches an endpoint exactly as a pod's connection would.

use std::net::SocketAddr;

use slipway_gateway::{Backend, ServicePort, Upstream, UpstreamError};
use tokio::net::TcpStream;

use crate::proxy::{ConnectError, Proxy};
use crate::table::{PickError, PortRef};

/// Reaches Services through a [`Proxy`].
pub struct ProxyUpstream(pub Proxy);

#[async_trait::async_trait]
impl Upstream for ProxyUpstream {
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
