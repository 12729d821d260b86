//! The container runtime on containerd's gRPC API: [`ContainerdRuntime`] implements
//! [`slipway_runtime::Runtime`] against one containerd socket and namespace, and
//! [`Containerd`] runs a private containerd for a data directory.
//!
//! Everything goes over gRPC, nothing through `ctr` or containerd's Go client, so the
//! sequences the Go client hides are spelled out here: images, from an archive or pulled
//! from a registry (`oci-client`), are stored blob by blob
//! under a lease with the labels that keep them from garbage collection, then unpacked
//! layer by layer; a task is always deleted before its container record (containerd 1.6
//! does not check, and losing the record first orphans the task). A task's CPU and memory
//! use come from `tasks.Metrics`, read whether the host has cgroup v1 or v2. Every call
//! carries a deadline, as `tasks.Create` can hang.

mod archive;
mod attached;
mod container;
mod events;
mod grpc;
mod image;
mod metrics;
mod oci;
mod registry;
mod supervisor;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use slipway_runtime::{
    Attached, AttachedExec, Container, ContainerConfig, Credentials, Event, ExecConfig, Exit,
    Image, LogTarget, Result, Runtime, Stats,
};

pub use supervisor::{Containerd, SupervisorError};

use grpc::Conn;

/// [`Runtime`] on containerd: one socket, one namespace, one runc state root.
#[derive(Clone)]
pub struct ContainerdRuntime {
    conn: Arc<Conn>,
    runc_root: PathBuf,
}

impl ContainerdRuntime {
    /// Connects to the containerd listening on `socket` and checks that it answers. All
    /// images, containers and events are those of `namespace`. Tasks keep their runc state
    /// under `runc_root`, so two containerds on one machine never share it.
    pub async fn connect(socket: &Path, namespace: &str, runc_root: &Path) -> Result<Self> {
        let conn = Conn::connect(socket, namespace).await?;
        if !runc_root.is_absolute() {
            return Err(slipway_runtime::Error::Invalid(format!(
                "runc root {} is not an absolute path",
                runc_root.display()
            )));
        }
        let runtime = ContainerdRuntime {
            conn: Arc::new(conn),
            runc_root: runc_root.to_owned(),
        };
        runtime.conn.version().await?;
        Ok(runtime)
    }
}

#[async_trait]
impl Runtime for ContainerdRuntime {
    async fn version(&self) -> Result<String> {
        Ok(format!("containerd://{}", self.conn.version().await?))
    }

    async fn import(&self, archive: &Path) -> Result<Vec<Image>> {
        image::import(&self.conn, archive).await
    }

    async fn pull(&self, reference: &str, auth: Option<&Credentials>) -> Result<Image> {
        registry::pull(&self.conn, reference, auth).await
    }

    async fn image(&self, name: &str) -> Result<Option<Image>> {
        image::get(&self.conn, name).await
    }

    async fn images(&self) -> Result<Vec<Image>> {
        image::list(&self.conn).await
    }

    async fn remove_image(&self, name: &str) -> Result<()> {
        image::remove(&self.conn, name).await
    }

    async fn create(&self, config: &ContainerConfig) -> Result<()> {
        container::create(&self.conn, config, &self.runc_root).await
    }

    async fn start(&self, id: &str, log: &LogTarget) -> Result<u32> {
        container::start(&self.conn, id, log).await
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        container::kill(&self.conn, id, signal, all).await
    }

    async fn wait(&self, id: &str) -> Result<Exit> {
        container::wait(&self.conn, id).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        container::delete(&self.conn, id).await
    }

    async fn list(&self) -> Result<Vec<Container>> {
        container::list(&self.conn).await
    }

    async fn exec(&self, container: &str, exec: &ExecConfig, timeout: Duration) -> Result<Exit> {
        container::exec(&self.conn, container, exec, timeout).await
    }

    async fn exec_attached(&self, container: &str, exec: &AttachedExec) -> Result<Attached> {
        attached::exec_attached(Arc::clone(&self.conn), container, exec).await
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        metrics::stats(&self.conn, id).await
    }

    async fn events(&self) -> Result<tokio::sync::mpsc::Receiver<Event>> {
        events::subscribe(self.conn.clone()).await
    }
}
