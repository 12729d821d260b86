//! `slipway agent`: a node agent joining a server with its join token, running pods on its
//! own containerd (started under the data directory) or on one given by socket.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use slipway_runtime_containerd::{Containerd, ContainerdRuntime};
use tokio_util::sync::CancellationToken;

use crate::exit::Failure;

/// The containerd namespace the agent keeps its containers in, apart from anyone else's.
const NAMESPACE: &str = "slipway";

/// What `slipway agent` is told.
pub(crate) struct Options {
    pub(crate) data_dir: PathBuf,
    pub(crate) node_name: String,
    pub(crate) address: Ipv4Addr,
    pub(crate) listen: SocketAddr,
    pub(crate) tunnel_port: u16,
    /// Where the gateway serves Ingresses, bound by the caller.
    pub(crate) gateway: Option<tokio::net::TcpListener>,
    pub(crate) pod_cidr: Option<slipway_agent::Cidr>,
    pub(crate) reserved: slipway_agent::Reserved,
    pub(crate) allow_privileged: bool,
    pub(crate) containerd_socket: Option<PathBuf>,
    pub(crate) token: String,
    /// Leave pods running when the agent stops (a restarted agent adopts them); else they
    /// are stopped and removed.
    pub(crate) keep_pods: bool,
}

/// The runtime the agent drives, and the containerd it started if it started one.
pub(crate) struct Runtime {
    pub(crate) runtime: Arc<dyn slipway_runtime::Runtime>,
    own: Option<Containerd>,
}

impl Runtime {
    /// Connects to `socket`, or starts a private containerd under `data_dir/containerd`.
    pub(crate) async fn open(
        data_dir: &std::path::Path,
        socket: Option<&std::path::Path>,
    ) -> Result<Runtime, Failure> {
        let (socket, runc_root, own) = match socket {
            Some(socket) => (socket.to_owned(), data_dir.join("runc"), None),
            None => {
                let containerd = Containerd::start(&data_dir.join("containerd"))
                    .await
                    .map_err(|e| Failure::failed(format!("cannot start containerd: {e}")))?;
                (
                    containerd.socket().to_owned(),
                    containerd.runc_root(),
                    Some(containerd),
                )
            }
        };
        let runtime = ContainerdRuntime::connect(&socket, NAMESPACE, &runc_root)
            .await
            .map_err(|e| {
                Failure::unreachable(format!(
                    "cannot reach containerd at {}: {e}",
                    socket.display()
                ))
            })?;
        Ok(Runtime {
            runtime: Arc::new(runtime),
            own,
        })
    }

    /// Stops the containerd the agent started; pods keep running in their shims.
    pub(crate) async fn close(self) {
        if let Some(containerd) = self.own
            && let Err(e) = containerd.stop().await
        {
            tracing::warn!(error = %e, "stopping containerd failed");
        }
    }
}

/// Binds the gateway's address.
pub(crate) async fn bind_gateway(addr: SocketAddr) -> Result<tokio::net::TcpListener, Failure> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::failed(format!("cannot listen on {addr} for the gateway: {e}")))
}

/// Runs an agent with `client` until `shutdown`.
pub(crate) async fn serve(
    client: kube::Client,
    options: Options,
    shutdown: CancellationToken,
) -> Result<(), Failure> {
    std::fs::create_dir_all(&options.data_dir).map_err(|e| {
        Failure::failed(format!("cannot create {}: {e}", options.data_dir.display()))
    })?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| Failure::failed(format!("cannot listen on {}: {e}", options.listen)))?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::failed(format!("cannot read the bound address: {e}")))?
        .port();
    let tunnel_addr = SocketAddr::from((options.address, options.tunnel_port));
    let tunnel = tokio::net::TcpListener::bind(tunnel_addr)
        .await
        .map_err(|e| Failure::failed(format!("cannot listen on {tunnel_addr}: {e}")))?;
    let runtime = Runtime::open(&options.data_dir, options.containerd_socket.as_deref()).await?;
    let keep_pods = options.keep_pods;
    let config = slipway_agent::Config {
        node_name: options.node_name,
        address: options.address,
        port,
        data_dir: options.data_dir,
        pod_cidr: options.pod_cidr,
        reserved: options.reserved,
        allow_privileged: options.allow_privileged,
        logger: std::env::current_exe().map_err(|e| {
            Failure::failed(format!("cannot find the slipway binary to log with: {e}"))
        })?,
        token: options.token,
        image_gc: slipway_agent::images::GcPolicy::default(),
    };
    let result = slipway_agent::run(
        client,
        Arc::clone(&runtime.runtime),
        config.clone(),
        slipway_agent::Listeners {
            api: listener,
            tunnel,
            gateway: options.gateway,
        },
        shutdown,
    )
    .await;
    if !keep_pods {
        slipway_agent::clear(runtime.runtime.as_ref(), &config).await;
    }
    runtime.close().await;
    result.map_err(|e| match e {
        slipway_agent::Error::Unauthorized(_) => Failure::bad_input(e),
        slipway_agent::Error::Api(_) => Failure::unreachable(e),
        other => Failure::failed(other),
    })
}
