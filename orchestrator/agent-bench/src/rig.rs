//! What the bench runs on: a private containerd in a short temporary directory with the
//! busybox test image imported, the API server in-process over SQLite (as `slipway up`
//! runs it, reached without a socket), and the node agent joined to it. [`Rig::stop`]
//! undoes all of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use slipway_apiserver::{ApiState, bootstrap, router};
use slipway_clock::SystemClock;
use slipway_runtime::Runtime;
use slipway_runtime_containerd::{Containerd, ContainerdRuntime};
use slipway_store::Store;
use slipway_store_sqlite::SqliteStore;
use slipway_testkit::ImageBuilder;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The image every pod and every `ctr run` starts.
pub(crate) const IMAGE: &str = "slipway.local/busybox:1";
/// The containerd namespace of the agent's runtime, which `ctr` is pointed at too.
pub(crate) const NAMESPACE: &str = "slipway";
/// How long the agent may take to stop, and the host to be cleared, before the bench
/// gives up on them and reports it.
const STOP_CAP: Duration = Duration::from_secs(60);
/// The token the API server presents to the agent's endpoint.
const AGENT_TOKEN: &str = "agent-bench";

type AgentTask = JoinHandle<Result<(), slipway_agent::Error>>;

/// A private containerd, the API server and the agent, all started by this process.
pub(crate) struct Rig {
    /// A client of the API server, in-process.
    pub(crate) client: kube::Client,
    /// The runtime the agent drives, for the floor's clean-up.
    pub(crate) runtime: Arc<dyn Runtime>,
    /// The Node the agent registered.
    pub(crate) node: String,
    /// containerd's gRPC socket, for `ctr`.
    pub(crate) socket: PathBuf,
    /// The runc state root of the agent's tasks, so `ctr`'s tasks keep theirs beside them.
    pub(crate) runc_root: PathBuf,
    containerd: Option<Containerd>,
    config: slipway_agent::Config,
    agent: Option<(CancellationToken, AgentTask)>,
    api_shutdown: CancellationToken,
    // Last: containerd's and the store's files go after everything that uses them.
    dir: tempfile::TempDir,
}

impl Rig {
    /// Starts containerd, imports the image, starts the API server and joins the agent,
    /// which runs this very binary as each container's logger.
    pub(crate) async fn start() -> anyhow::Result<Rig> {
        // Short: containerd's socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("swb-")
            .tempdir_in("/tmp")
            .context("creating the bench's directory")?;
        let containerd = Containerd::start(&dir.path().join("c"))
            .await
            .context("starting containerd")?;
        let runtime: Arc<dyn Runtime> = Arc::new(
            ContainerdRuntime::connect(containerd.socket(), NAMESPACE, &containerd.runc_root())
                .await
                .context("connecting to containerd")?,
        );
        let archive = dir.path().join("image.tar");
        ImageBuilder::busybox(IMAGE)
            .write_oci(&archive)
            .context("building the busybox image")?;
        runtime
            .import(&archive)
            .await
            .context("importing the busybox image")?;

        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("state.db"), Default::default())
                .await
                .context("opening the SQLite store")?,
        );
        let api_shutdown = CancellationToken::new();
        let state = Arc::new(
            ApiState::new(store, SystemClock::shared(), api_shutdown.clone())
                .with_node_credentials(AGENT_TOKEN.to_owned()),
        );
        bootstrap(&state)
            .await
            .context("bootstrapping the API server")?;
        let client = kube::Client::new(router(state), "default");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the agent's port")?;
        // The pid keeps the agent's cgroup (`/slipway/<node>`) apart from any other run.
        let node = format!("agent-bench-{}", std::process::id());
        let config = slipway_agent::Config {
            node_name: node.clone(),
            address: std::net::Ipv4Addr::LOCALHOST,
            port: listener.local_addr()?.port(),
            data_dir: dir.path().join("agent"),
            pod_cidr: None,
            reserved: slipway_agent::Reserved::default(),
            allow_privileged: false,
            // As `slipway` is its own logger, so is this binary (see `main`).
            logger: std::env::current_exe().context("finding this binary, the logger")?,
            // The API server reaches the agent's summary with it, for metrics.k8s.io.
            token: AGENT_TOKEN.to_owned(),
            image_gc: slipway_agent::images::GcPolicy::default(),
        };
        let tunnel = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the agent's tunnel port")?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(slipway_agent::run(
            client.clone(),
            Arc::clone(&runtime),
            config.clone(),
            slipway_agent::Listeners {
                api: listener,
                tunnel,
                gateway: None,
            },
            stop.clone(),
        ));
        Ok(Rig {
            client,
            runtime,
            node,
            socket: containerd.socket().to_owned(),
            runc_root: containerd.runc_root(),
            containerd: Some(containerd),
            config,
            agent: Some((stop, task)),
            api_shutdown,
            dir,
        })
    }

    /// A path in the bench's directory.
    pub(crate) fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// containerd's PID.
    pub(crate) fn containerd_pid(&self) -> Option<u32> {
        self.containerd.as_ref().and_then(Containerd::pid)
    }

    /// Whether the agent is still running: it returns only on a failure before the end.
    pub(crate) fn agent_failed(&self) -> bool {
        self.agent
            .as_ref()
            .is_none_or(|(_, task)| task.is_finished())
    }

    /// Stops the agent, removes every pod it left and every container `ctr` made, stops
    /// containerd and the API server. Every step runs even when one before it failed; the
    /// first failure is returned.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        if let Some((stop, task)) = self.agent.take() {
            stop.cancel();
            outcome = match tokio::time::timeout(STOP_CAP, task).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(anyhow::Error::new(e).context("the agent failed")),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("the agent panicked")),
                Err(_) => Err(anyhow::anyhow!(
                    "the agent did not stop within {STOP_CAP:?}"
                )),
            };
        }
        let cleared = tokio::time::timeout(STOP_CAP, async {
            // Every pod and `ctr` container was removed as the run went, so anything here
            // leaked (or the run failed): worth saying before it is removed.
            let left = self.runtime.list().await?;
            if !left.is_empty() {
                let ids: Vec<&str> = left.iter().map(|c| c.id.as_str()).collect();
                eprintln!(
                    "{} containers were left on containerd: {}",
                    ids.len(),
                    ids.join(", ")
                );
            }
            slipway_agent::clear(self.runtime.as_ref(), &self.config).await;
            // What is left is the floor's: `ctr` labels nothing the agent would know.
            for container in self.runtime.list().await? {
                self.runtime.delete(&container.id).await?;
            }
            Ok::<_, slipway_runtime::Error>(())
        })
        .await;
        let cleared = match cleared {
            Ok(result) => result.context("removing containers"),
            Err(_) => Err(anyhow::anyhow!(
                "removing containers took longer than {STOP_CAP:?}"
            )),
        };
        outcome = outcome.and(cleared);
        if let Some(containerd) = self.containerd.take() {
            outcome = outcome.and(containerd.stop().await.context("stopping containerd"));
        }
        self.api_shutdown.cancel();
        outcome
    }
}

impl Drop for Rig {
    /// A run that ended without [`Rig::stop`] (a panic) still stops the agent and the API
    /// server; containerd stops with its own `Drop`, leaving its shims, as it always does.
    fn drop(&mut self) {
        if let Some((stop, _)) = self.agent.take() {
            stop.cancel();
        }
        self.api_shutdown.cancel();
    }
}
