//! What the containerd test binaries share: a private containerd in a temporary directory
//! with a runtime connected to it, which cleans up after itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use slipway_runtime::Runtime;
use slipway_runtime_containerd::{Containerd, ContainerdRuntime};

pub(crate) const NAMESPACE: &str = "slipway-conformance";
const PATIENCE: Duration = Duration::from_secs(60);

/// A containerd with its runtime. Dropping it deletes every container (from a thread of its
/// own, as drop cannot await), stops containerd and removes the directory.
pub(crate) struct Harness {
    pub(crate) runtime: Arc<ContainerdRuntime>,
    pub(crate) containerd: Option<Containerd>,
    pub(crate) dir: tempfile::TempDir,
}

impl Harness {
    pub(crate) async fn start() -> Harness {
        // Short, as containerd's socket path must fit a Unix socket address.
        let dir = tempfile::Builder::new()
            .prefix("swc-")
            .tempdir_in("/tmp")
            .expect("temporary directory");
        let containerd = Containerd::start(&dir.path().join("c"))
            .await
            .expect("starting containerd");
        let runtime =
            ContainerdRuntime::connect(containerd.socket(), NAMESPACE, &containerd.runc_root())
                .await
                .expect("connecting to containerd");
        Harness {
            runtime: Arc::new(runtime),
            containerd: Some(containerd),
            dir,
        }
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("c/containerd.sock")
    }

    pub(crate) fn runc_root(&self) -> PathBuf {
        self.dir.path().join("c/runc")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let (socket, runc_root) = (self.socket(), self.runc_root());
        let purged = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to clean up with");
            runtime.block_on(purge(&socket, &runc_root))
        })
        .join();
        if let Ok(Err(e)) | Err(e) = purged.map_err(|_| "the clean-up panicked".to_owned()) {
            eprintln!("cleaning up containers: {e}");
        }
        drop(self.containerd.take());
    }
}

async fn purge(socket: &Path, runc_root: &Path) -> Result<(), String> {
    let purge = async {
        let runtime = ContainerdRuntime::connect(socket, NAMESPACE, runc_root).await?;
        for container in runtime.list().await? {
            runtime.delete(&container.id).await?;
        }
        Ok::<(), slipway_runtime::Error>(())
    };
    match tokio::time::timeout(PATIENCE, purge).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// `future`'s output, or a panic naming `what` if it takes longer than [`PATIENCE`].
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
}
