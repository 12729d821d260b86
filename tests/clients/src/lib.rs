//! Test harness for third-party Kubernetes clients: the API server in-process on a loopback
//! port over a throwaway SQLite store, and a kube-rs `Client` pointed at it.

use std::sync::Arc;

use slipway_apiserver::{ApiState, bootstrap, router, serve};
use slipway_clock::SystemClock;
use slipway_store::Store;
use slipway_store_sqlite::{Durability, Options, SqliteStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The token node agents accept from this server for `pods/log`.
pub const NODE_TOKEN: &str = "test-node-token";

/// A running API server. Dropping it stops the server and removes its store.
pub struct Server {
    /// A client configured as a user would: the server's URL and nothing else.
    pub client: kube::Client,
    /// The server's store, for what no client can reach (compaction).
    pub store: Arc<dyn Store>,
    url: String,
    shutdown: CancellationToken,
    // Held so the database outlives the server; dropped last.
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a bootstrapped server on `127.0.0.1:0`.
    ///
    /// # Panics
    ///
    /// If the store cannot be opened or the port bound: a test cannot go on without them.
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = Options {
            // Power-loss durability buys nothing in a tempdir and costs an fsync per write.
            durability: Durability::Normal,
            ..Options::default()
        };
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("state.db"), options)
                .await
                .expect("open the SQLite store"),
        );
        let shutdown = CancellationToken::new();
        let state = Arc::new(
            ApiState::new(Arc::clone(&store), SystemClock::shared(), shutdown.clone())
                .with_node_credentials(NODE_TOKEN.to_owned()),
        );
        bootstrap(&state).await.expect("bootstrap namespaces");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("bound address").port();
        tokio::spawn(serve(listener, router(state), shutdown.clone()));

        let url = format!("http://127.0.0.1:{port}");
        let client = kube::Client::try_from(kube::Config::new(url.parse().expect("a valid URL")))
            .expect("a client for plain HTTP");
        Server {
            client,
            store,
            url,
            shutdown,
            _dir: dir,
        }
    }

    /// Starts the controllers against this server, as `slipway server` runs them.
    pub fn run_controllers(&self) -> Running {
        Running::spawn("controllers", |stop| {
            slipway_controllers::run(self.client.clone(), stop)
        })
    }

    /// Starts the scheduler against this server, as `slipway server` runs it.
    pub fn run_scheduler(&self) -> Running {
        Running::spawn("scheduler", |stop| {
            slipway_scheduler::run(self.client.clone(), stop)
        })
    }

    /// The whole control plane on `nodes` hollow nodes (`node-0000`, ... of the default
    /// shape): the controllers, the scheduler, and a kubelet that runs bound pods.
    ///
    /// # Panics
    ///
    /// If the nodes cannot be registered.
    pub async fn run_cluster(&self, nodes: usize) -> Cluster {
        let hollow = slipway_hollow::HollowNodes::uniform(
            self.client.clone(),
            "node",
            nodes,
            &slipway_hollow::Shape::default(),
            slipway_hollow::Options::default(),
        )
        .await
        .expect("register the hollow nodes");
        Cluster {
            controllers: self.run_controllers(),
            scheduler: self.run_scheduler(),
            nodes: hollow,
        }
    }

    /// The server's base URL, `http://127.0.0.1:PORT`, for clients outside this process.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Controllers or the scheduler, running; [`Running::stop`] ends them and checks they
/// ended cleanly.
pub struct Running {
    what: &'static str,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), slipway_controllers::reconciler::Error>>,
}

impl Running {
    fn spawn<F>(what: &'static str, start: impl FnOnce(CancellationToken) -> F) -> Running
    where
        F: Future<Output = Result<(), slipway_controllers::reconciler::Error>> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = tokio::spawn(start(stop.clone()));
        Running { what, stop, task }
    }

    /// Stops them.
    ///
    /// # Panics
    ///
    /// If they failed or panicked: a test must not pass over a loop that broke.
    pub async fn stop(self) {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the {} failed: {e}", self.what),
            Err(e) => panic!("the {} panicked: {e}", self.what),
        }
    }
}

/// A control plane with nodes, from [`Server::run_cluster`].
pub struct Cluster {
    controllers: Running,
    scheduler: Running,
    /// The hollow nodes, for tests that add more.
    pub nodes: slipway_hollow::HollowNodes,
}

impl Cluster {
    /// Stops the controllers, the scheduler and the nodes' kubelet.
    ///
    /// # Panics
    ///
    /// If a controller or the scheduler failed or panicked.
    pub async fn stop(self) {
        self.controllers.stop().await;
        self.scheduler.stop().await;
        self.nodes.stop().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// How long a controller may take to converge before a test fails rather than hangs; a
/// bound, never a measure.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Polls `check` until it gives a value, failing the test with `what` after [`PATIENCE`].
///
/// # Panics
///
/// When `check` gives nothing within [`PATIENCE`].
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(done) = check().await {
            return done;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the object `name` no longer exists, failing the test after [`PATIENCE`].
///
/// # Panics
///
/// When it is still there after [`PATIENCE`], or the API fails.
pub async fn eventually_gone<K>(api: &kube::Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} gone"), async || {
        api.get_opt(name)
            .await
            .expect("the API answers")
            .is_none()
            .then_some(())
    })
    .await;
}

/// The real kubectl, pointed at a [`Server`] by a kubeconfig of its own. Its runs are
/// awaited, so the in-process server keeps serving while kubectl waits on it.
pub struct Kubectl {
    dir: tempfile::TempDir,
}

impl Kubectl {
    /// A kubeconfig for `server`'s plain-HTTP URL in the `default` namespace.
    ///
    /// # Panics
    ///
    /// If the kubeconfig cannot be written.
    pub fn new(server: &Server) -> Kubectl {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {}
users:
- name: test
  user: {{}}
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
current-context: test
",
            server.url()
        );
        std::fs::write(dir.path().join("kubeconfig"), config).expect("write the kubeconfig");
        Kubectl { dir }
    }

    /// Writes `content` to a file of this kubeconfig's directory, for `kubectl apply -f`.
    ///
    /// # Panics
    ///
    /// If the file cannot be written.
    pub fn file(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write a manifest");
        path.display().to_string()
    }

    /// Runs kubectl with `args`: its exit status, stdout and stderr.
    ///
    /// # Panics
    ///
    /// If kubectl cannot be started.
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("cache").display()
            ))
            .output()
            .await
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubectl and returns its stdout.
    ///
    /// # Panics
    ///
    /// If kubectl fails: the test fails with its output.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed: {stdout}{stderr}");
        stdout
    }
}
