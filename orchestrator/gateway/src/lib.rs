//! The Ingress gateway: serves `networking.k8s.io/v1` Ingresses over plain HTTP/1.1.
//!
//! A [`Gateway`] routes each request by host and path ([`Gateway::set_ingresses`] replaces the
//! routing table) to a Service port, asks its [`Upstream`] for a fresh connection to a ready
//! endpoint of that Service, and forwards the request on it: bodies stream both ways,
//! `Upgrade` requests (WebSocket) are spliced once the endpoint switches protocols, and the
//! endpoint sees the original `Host` and `X-Forwarded-For`, `-Proto` and `-Host`. One upstream
//! connection serves one request, so no request ever goes to an endpoint the Upstream has
//! stopped choosing.
//!
//! An Ingress annotated [`WAKE_ANNOTATION`] belongs to apps that may sleep: each request
//! for its namespace is reported to the [`Activity`], and one that finds no ready endpoint is
//! held up to [`Options::wake_hold`] while the app wakes, then answered with a "waking up"
//! page that reloads itself.
//!
//! What cannot be forwarded is answered by the gateway itself with a small page: 404 when no
//! Ingress routes the host and path, 503 with `Retry-After` when the Service is missing or
//! has no ready endpoint, 502 when the endpoint cannot be reached or answers badly, 504 when
//! no response head arrives within [`Options::request_timeout`], 400 for requests that cannot
//! be routed (a malformed `Host`), 431 for oversized heads.
//!
//! The gateway knows nothing of the node agent, network namespaces or the API server: the
//! agent feeds it Ingresses and implements [`Upstream`] over its service proxy.

mod body;
mod conn;
mod host;
mod pages;
mod proxy;
mod routes;
mod server;
mod upstream;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use routes::{INGRESS_CLASS, WAKE_ANNOTATION};
pub use upstream::{Backend, ServicePort, Upstream, UpstreamError};

use routes::RouteTable;

/// The gateway's limits.
#[derive(Debug, Clone)]
pub struct Options {
    /// From a request's head to its response's head: connecting, sending the request and
    /// waiting for the answer. Default 60 s.
    pub request_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request. Default 60 s.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request head: from the accept for the first one,
    /// from its first byte for later ones. Default 10 s.
    pub header_timeout: Duration,
    /// How long in-flight requests, streams and upgraded connections may run on after the
    /// shutdown before they are cut. Default 10 s.
    pub shutdown_grace: Duration,
    /// The largest request head accepted; a larger one is answered 431. Default 64 KiB.
    pub max_header_bytes: usize,
    /// How long a request for a wakeable namespace whose app has no ready endpoint is held
    /// while the app wakes, before a "waking up" page answers it. Default 2 s.
    pub wake_hold: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            wake_hold: Duration::from_secs(2),
        }
    }
}

/// Told of requests for namespaces whose Ingress is annotated [`WAKE_ANNOTATION`]: the
/// platform keeps its idle clock and wakes sleeping apps from it. Called on the request's
/// task, so it must return at once (send and forget).
pub trait Activity: Send + Sync + 'static {
    /// A request for `namespace` arrived; `waiting` when its Service has no ready endpoint
    /// and the request is being held for the app to wake.
    fn request(&self, namespace: &str, waiting: bool);
}

/// The Ingress gateway; see the crate docs.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
}

/// What the gateway's connections share.
struct Shared {
    upstream: Arc<dyn Upstream>,
    activity: Option<Arc<dyn Activity>>,
    options: Options,
    /// Swapped whole, so a request routes on one table from start to end.
    routes: RwLock<Arc<RouteTable>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn routes(&self) -> Arc<RouteTable> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Gateway {
    /// A gateway that routes nothing until [`Gateway::set_ingresses`].
    pub fn new(upstream: Arc<dyn Upstream>, options: Options) -> Self {
        Self::with_activity(upstream, None, options)
    }

    /// A gateway that reports requests for wakeable namespaces to `activity`.
    pub fn with_activity(
        upstream: Arc<dyn Upstream>,
        activity: Option<Arc<dyn Activity>>,
        options: Options,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                upstream,
                activity,
                options,
                routes: RwLock::new(Arc::new(RouteTable::default())),
            }),
        }
    }

    /// Replaces the routing table with one built from `ingresses` (all of them, in any
    /// order). Ingresses of another class are skipped, and so are rules, paths and backends
    /// that cannot be served, each with a warning. Requests already routed finish on their
    /// backend.
    pub fn set_ingresses(&self, ingresses: &[Ingress]) {
        let table = Arc::new(RouteTable::build(ingresses));
        *self
            .shared
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner) = table;
    }

    /// Serves connections from `listener` until `shutdown` is cancelled, then stops accepting
    /// and lets in-flight requests finish, for at most [`Options::shutdown_grace`].
    ///
    /// # Errors
    ///
    /// When accepting fails for a reason that is not about one connection or a passing
    /// shortage of file descriptors or memory.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        server::serve(self.shared.clone(), listener, shutdown).await
    }
}
