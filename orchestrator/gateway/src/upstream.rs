//! What the gateway asks of its host: a connection to a ready endpoint of a Service.

use std::fmt;
use std::net::SocketAddr;

use tokio::net::TcpStream;

/// A Service port an Ingress backend names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServicePort {
    /// `port.number`: one of the Service's port numbers.
    Number(u16),
    /// `port.name`: the name of one of the Service's ports.
    Name(String),
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => write!(f, "{number}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// A Service port an Ingress routes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    /// The Ingress's namespace: a backend never names a Service of another namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The Service's port.
    pub port: ServicePort,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.service, self.port)
    }
}

/// Why the gateway cannot reach a backend.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No such Service, or the Service has no such port.
    #[error("no such service or service port")]
    UnknownService,
    /// The Service exists but none of its endpoints is ready.
    #[error("no ready endpoint")]
    NoReadyEndpoint,
    /// Connecting to the endpoint chosen failed.
    #[error("connecting to the endpoint: {0}")]
    Connect(#[source] std::io::Error),
}

/// How the gateway reaches Services; the node agent implements it over its service proxy.
#[async_trait::async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// A fresh connection to a ready endpoint of `backend`; `client` is the downstream peer
    /// (for session affinity).
    ///
    /// The gateway bounds the call with its request timeout and drops the future when the
    /// time is up, so it must be cancel-safe.
    async fn connect(
        &self,
        backend: &Backend,
        client: SocketAddr,
    ) -> Result<TcpStream, UpstreamError>;
}
