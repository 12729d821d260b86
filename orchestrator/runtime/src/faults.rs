//! A fault injector for any [`Runtime`]: make chosen operations fail, or break the event
//! stream, on command, so the agent's retry and resync paths can be tested against a real
//! containerd that never misbehaves on its own.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{
    Attached, AttachedExec, Container, ContainerConfig, Credentials, Error, Event, ExecConfig,
    Exit, Image, LogTarget, Result, Runtime, Stats,
};

/// Operations a fault can be aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// [`Runtime::create`].
    Create,
    /// [`Runtime::start`].
    Start,
    /// [`Runtime::kill`].
    Kill,
    /// [`Runtime::delete`].
    Delete,
    /// [`Runtime::list`].
    List,
    /// [`Runtime::exec`] and [`Runtime::exec_attached`].
    Exec,
    /// [`Runtime::stats`].
    Stats,
    /// [`Runtime::image`], [`Runtime::images`], [`Runtime::import`], [`Runtime::pull`]
    /// and [`Runtime::remove_image`].
    Images,
}

#[derive(Default)]
struct Control {
    pending: Mutex<Vec<(Op, u64)>>,
    injected: AtomicU64,
    resync: Mutex<Vec<mpsc::Sender<Event>>>,
}

/// A [`Runtime`] that forwards to `inner` except where a fault has been injected.
#[derive(Clone)]
pub struct FaultyRuntime {
    inner: Arc<dyn Runtime>,
    control: Arc<Control>,
}

impl FaultyRuntime {
    /// Wraps `inner`; nothing fails until asked.
    pub fn new(inner: Arc<dyn Runtime>) -> Self {
        FaultyRuntime {
            inner,
            control: Arc::default(),
        }
    }

    /// Makes the next `count` calls of `op` fail with [`Error::Unavailable`].
    pub fn fail_next(&self, op: Op, count: u64) {
        self.control
            .pending
            .lock()
            .expect("fault lock")
            .push((op, count));
    }

    /// How many faults have been injected so far.
    pub fn injected(&self) -> u64 {
        self.control.injected.load(Ordering::SeqCst)
    }

    /// Tells every event subscriber the stream broke ([`Event::Resync`]), as a containerd
    /// restart would.
    pub fn break_events(&self) {
        let subscribers = self.control.resync.lock().expect("fault lock").clone();
        for subscriber in subscribers {
            let _ = subscriber.try_send(Event::Resync);
        }
    }

    fn check(&self, op: Op) -> Result<()> {
        let mut pending = self.control.pending.lock().expect("fault lock");
        if let Some(entry) = pending.iter_mut().find(|(o, n)| *o == op && *n > 0) {
            entry.1 -= 1;
            self.control.injected.fetch_add(1, Ordering::SeqCst);
            return Err(Error::Unavailable(format!("injected fault in {op:?}")));
        }
        Ok(())
    }
}

#[async_trait]
impl Runtime for FaultyRuntime {
    async fn version(&self) -> Result<String> {
        self.inner.version().await
    }

    async fn import(&self, archive: &Path) -> Result<Vec<Image>> {
        self.check(Op::Images)?;
        self.inner.import(archive).await
    }

    async fn pull(&self, reference: &str, auth: Option<&Credentials>) -> Result<Image> {
        self.check(Op::Images)?;
        self.inner.pull(reference, auth).await
    }

    async fn image(&self, name: &str) -> Result<Option<Image>> {
        self.check(Op::Images)?;
        self.inner.image(name).await
    }

    async fn images(&self) -> Result<Vec<Image>> {
        self.check(Op::Images)?;
        self.inner.images().await
    }

    async fn remove_image(&self, name: &str) -> Result<()> {
        self.check(Op::Images)?;
        self.inner.remove_image(name).await
    }

    async fn create(&self, config: &ContainerConfig) -> Result<()> {
        self.check(Op::Create)?;
        self.inner.create(config).await
    }

    async fn start(&self, id: &str, log: &LogTarget) -> Result<u32> {
        self.check(Op::Start)?;
        self.inner.start(id, log).await
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        self.check(Op::Kill)?;
        self.inner.kill(id, signal, all).await
    }

    async fn wait(&self, id: &str) -> Result<Exit> {
        self.inner.wait(id).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.check(Op::Delete)?;
        self.inner.delete(id).await
    }

    async fn list(&self) -> Result<Vec<Container>> {
        self.check(Op::List)?;
        self.inner.list().await
    }

    async fn exec(&self, container: &str, exec: &ExecConfig, timeout: Duration) -> Result<Exit> {
        self.check(Op::Exec)?;
        self.inner.exec(container, exec, timeout).await
    }

    async fn exec_attached(&self, container: &str, exec: &AttachedExec) -> Result<Attached> {
        self.check(Op::Exec)?;
        self.inner.exec_attached(container, exec).await
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        self.check(Op::Stats)?;
        self.inner.stats(id).await
    }

    async fn events(&self) -> Result<mpsc::Receiver<Event>> {
        let mut inner = self.inner.events().await?;
        let (sender, receiver) = mpsc::channel(256);
        self.control
            .resync
            .lock()
            .expect("fault lock")
            .push(sender.clone());
        tokio::spawn(async move {
            while let Some(event) = inner.recv().await {
                if sender.send(event).await.is_err() {
                    break;
                }
            }
        });
        Ok(receiver)
    }
}
