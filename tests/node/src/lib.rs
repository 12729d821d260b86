//! Test harness for the node agent: a real containerd under a temporary directory, the
//! agent joined to an in-process API server ([`slipway_client_tests::Server`]), and the
//! busybox test image imported. Dropping or stopping a node removes every pod it left.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use slipway_client_tests::Server;
use slipway_runtime::Runtime;
use slipway_runtime_containerd::{Containerd, ContainerdRuntime};
use slipway_testkit::ImageBuilder;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The image every test pod runs: busybox, built from the host's busybox-static.
pub const IMAGE: &str = "slipway.local/busybox:1";
/// The same content under another name, for rollouts.
pub const IMAGE_2: &str = "slipway.local/busybox:2";

/// The test logger binary cargo builds beside the test binaries (`target/<profile>/`);
/// integration tests of this package have it built first.
fn logger() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let logger = profile.join("slipway-test-logger");
    assert!(
        logger.exists(),
        "{} is missing: build the package's binaries",
        logger.display()
    );
    logger
}

/// A node: containerd, and an agent serving it while [`Node::agent_running`].
pub struct Node {
    /// The Node's name.
    pub name: String,
    /// The runtime the agent drives.
    pub runtime: Arc<dyn Runtime>,
    config: slipway_agent::Config,
    client: kube::Client,
    /// The gateway's port on 127.0.0.1, kept across agent restarts once chosen.
    gateway_port: u16,
    containerd: Option<Containerd>,
    agent: Option<(
        CancellationToken,
        JoinHandle<Result<(), slipway_agent::Error>>,
    )>,
    // Last: containerd's files go after containerd.
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts containerd, imports the test images and joins an agent named `name` to
    /// `server`.
    ///
    /// # Panics
    ///
    /// If containerd cannot start or the image cannot be imported.
    pub async fn start(server: &Server, name: &str) -> Node {
        // The agent's own account of a failure, with SLIPWAY_LOG=debug.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        // Short: containerd's socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("swn-")
            .tempdir_in("/tmp")
            .expect("temporary directory");
        let containerd = Containerd::start(&dir.path().join("c"))
            .await
            .expect("start containerd");
        let runtime: Arc<dyn Runtime> = Arc::new(
            ContainerdRuntime::connect(containerd.socket(), "slipway", &containerd.runc_root())
                .await
                .expect("connect to containerd"),
        );
        for image in [IMAGE, IMAGE_2] {
            let archive = dir.path().join("image.tar");
            ImageBuilder::busybox(image)
                .write_oci(&archive)
                .expect("build the test image");
            runtime
                .import(&archive)
                .await
                .expect("import the test image");
        }
        let config = slipway_agent::Config {
            node_name: name.to_owned(),
            address: std::net::Ipv4Addr::LOCALHOST,
            port: 0,
            data_dir: dir.path().join("agent"),
            pod_cidr: None,
            reserved: slipway_agent::Reserved::default(),
            allow_privileged: false,
            logger: logger(),
            token: slipway_client_tests::NODE_TOKEN.to_owned(),
            image_gc: slipway_agent::images::GcPolicy::default(),
        };
        let mut node = Node {
            name: name.to_owned(),
            runtime,
            config,
            client: server.client.clone(),
            gateway_port: 0,
            containerd: Some(containerd),
            agent: None,
            _dir: dir,
        };
        node.start_agent().await;
        node
    }

    /// Starts the agent (again), on the same data directory and containerd.
    ///
    /// # Panics
    ///
    /// If the agent's port cannot be bound.
    pub async fn start_agent(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the agent's port");
        self.config.port = listener.local_addr().expect("bound address").port();
        let tunnel = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the agent's tunnel port");
        let gateway = tokio::net::TcpListener::bind(("127.0.0.1", self.gateway_port))
            .await
            .expect("bind the agent's gateway port");
        self.gateway_port = gateway.local_addr().expect("bound address").port();
        let stop = CancellationToken::new();
        let task = tokio::spawn(slipway_agent::run(
            self.client.clone(),
            Arc::clone(&self.runtime),
            self.config.clone(),
            slipway_agent::Listeners {
                api: listener,
                tunnel,
                gateway: Some(gateway),
            },
            stop.clone(),
        ));
        self.agent = Some((stop, task));
    }

    /// Stops the agent only: pods keep running in containerd.
    ///
    /// # Panics
    ///
    /// If the agent had failed.
    pub async fn stop_agent(&mut self) {
        if let Some((stop, task)) = self.agent.take() {
            stop.cancel();
            task.await
                .expect("the agent task")
                .expect("the agent stopped cleanly");
        }
    }

    /// Where the agent's gateway serves Ingresses.
    pub fn gateway(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.gateway_port))
    }

    /// Where the agent's endpoint listens (`127.0.0.1:PORT`), for the API server's calls.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.config.port)
    }

    /// Where the agent keeps pods.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// A path in the node's scratch space, for archives and such.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self._dir.path().join(name)
    }

    /// Stops the agent, removes every pod it left on the host and stops containerd.
    pub async fn stop(mut self) {
        self.stop_agent().await;
        slipway_agent::clear(self.runtime.as_ref(), &self.config).await;
        if let Some(containerd) = self.containerd.take() {
            let _ = containerd.stop().await;
        }
    }
}

impl Drop for Node {
    /// A test that failed still leaves nothing behind: the agent is stopped and every pod
    /// removed from a thread of its own (the test's runtime may be unwinding), then
    /// containerd stops with its own `Drop`.
    fn drop(&mut self) {
        let Some(containerd) = self.containerd.as_ref() else {
            return;
        };
        if let Some((stop, _)) = self.agent.take() {
            stop.cancel();
        }
        let socket = containerd.socket().to_owned();
        let runc_root = containerd.runc_root();
        let config = self.config.clone();
        let cleaning = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(runtime) =
                    ContainerdRuntime::connect(&socket, "slipway", &runc_root).await
                {
                    slipway_agent::clear(&runtime, &config).await;
                }
            });
        });
        let _ = cleaning.join();
    }
}
