//! `slipway server`: the API server over a store, and the admin kubeconfig that lets
//! kubectl reach it. `slipway up` runs the same thing with embedded defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use slipway_apiserver::ApiState;
use slipway_clock::SystemClock;
use tokio_util::sync::CancellationToken;

use crate::exit::Failure;
use crate::store_url::{self, OpenStore, StoreUrl};

/// A running API server.
pub(crate) struct Running {
    /// The address it serves on.
    pub(crate) url: String,
    /// The admin kubeconfig it wrote.
    pub(crate) kubeconfig: PathBuf,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    store: OpenStore,
}

impl Running {
    /// Waits for the server to stop (its token cancelled), then closes the store.
    pub(crate) async fn wait(self) -> Result<(), Failure> {
        let served = self.task.await;
        self.store.close().await;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::failed(format!("the API server stopped: {e}"))),
            Err(e) => Err(Failure::failed(format!("the API server failed: {e}"))),
        }
    }
}

/// Opens the store, binds `listen`, writes `DATA_DIR/admin.kubeconfig` once the API
/// answers, and serves until `shutdown` is cancelled.
pub(crate) async fn start(
    data_dir: &Path,
    listen: SocketAddr,
    store: &StoreUrl,
    shutdown: CancellationToken,
) -> Result<Running, Failure> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", data_dir.display())))?;
    let open = store_url::open(store).await?;
    let state = Arc::new(ApiState {
        store: open.store(),
        clock: SystemClock::shared(),
        shutdown,
    });
    slipway_apiserver::bootstrap(&state)
        .await
        .map_err(|e| Failure::from_store("creating the system namespaces", e))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::failed(format!("cannot listen on {listen}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::failed(format!("cannot read the bound address: {e}")))?;
    let url = format!("http://{bound}");
    let task = tokio::spawn(slipway_apiserver::serve(listener, state));
    let kubeconfig = data_dir.join("admin.kubeconfig");
    write_kubeconfig(&kubeconfig, &url)?;
    Ok(Running {
        url,
        kubeconfig,
        task,
        store: open,
    })
}

/// The admin kubeconfig. The API has no authentication yet, so the user carries none.
fn write_kubeconfig(path: &Path, server: &str) -> Result<(), Failure> {
    let config = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: slipway\n  cluster:\n    server: {server}\n\
         users:\n\
         - name: admin\n  user: {{}}\n\
         contexts:\n\
         - name: slipway\n  context:\n    cluster: slipway\n    user: admin\n    namespace: default\n\
         current-context: slipway\n"
    );
    let temporary = path.with_extension("kubeconfig.tmp");
    std::fs::write(&temporary, config)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))
}

/// `slipway server`.
pub(crate) async fn run(
    data_dir: PathBuf,
    listen: SocketAddr,
    store: Option<StoreUrl>,
    shutdown: CancellationToken,
) -> Result<(), Failure> {
    let store = store.unwrap_or_else(|| StoreUrl::Sqlite(data_dir.join("state.db")));
    let running = start(&data_dir, listen, &store, shutdown).await?;
    say!("slipway server: API on {} (store {store})", running.url);
    say!("  kubeconfig {}", running.kubeconfig.display());
    running.wait().await?;
    say!("stopped");
    Ok(())
}
