//! Pods as a client sees them: one watch of the bench's namespace, running throughout,
//! stamps the moment each pod is first seen with `Ready=True` and notes each deletion, so
//! a latency ends when a watcher would learn of it, not when someone polls.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Default)]
struct Seen {
    listed: bool,
    ready: HashMap<String, Instant>,
    gone: HashSet<String>,
}

/// The running watch. Pod names must not repeat within a run.
pub(crate) struct Watch {
    seen: watch::Receiver<Seen>,
    task: JoinHandle<()>,
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

impl Watch {
    /// Starts watching `pods` and returns once the initial list is in, so no later event
    /// is missed.
    pub(crate) async fn start(pods: Api<Pod>, cap: Duration) -> anyhow::Result<Watch> {
        let (tell, seen) = watch::channel(Seen::default());
        let task = tokio::spawn(async move {
            let mut events =
                std::pin::pin!(watcher(pods, watcher::Config::default()).default_backoff());
            while let Some(event) = events.next().await {
                let now = Instant::now();
                match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                        if is_ready(&pod) {
                            tell.send_if_modified(|seen| {
                                let fresh = !seen.ready.contains_key(&pod.name_any());
                                seen.ready.entry(pod.name_any()).or_insert(now);
                                fresh
                            });
                        }
                    }
                    Ok(watcher::Event::Delete(pod)) => {
                        tell.send_modify(|seen| {
                            seen.gone.insert(pod.name_any());
                        });
                    }
                    Ok(watcher::Event::InitDone) => tell.send_modify(|seen| seen.listed = true),
                    Ok(watcher::Event::Init) => {}
                    Err(e) => eprintln!("watch error, retrying: {e}"),
                }
            }
        });
        let watch = Watch { seen, task };
        watch
            .until(Instant::now() + cap, "the pod watch's first list", |s| {
                s.listed.then_some(())
            })
            .await?;
        Ok(watch)
    }

    /// When the watch first saw `name` Ready, waiting for it until `deadline`.
    pub(crate) async fn ready(&self, name: &str, deadline: Instant) -> anyhow::Result<Instant> {
        self.until(deadline, &format!("{name} Ready"), |s| {
            s.ready.get(name).copied()
        })
        .await
    }

    /// Waits until the watch has seen `name` deleted from the API.
    pub(crate) async fn gone(&self, name: &str, deadline: Instant) -> anyhow::Result<()> {
        self.until(deadline, &format!("{name} deleted"), |s| {
            s.gone.contains(name).then_some(())
        })
        .await
    }

    async fn until<T>(
        &self,
        deadline: Instant,
        what: &str,
        pick: impl Fn(&Seen) -> Option<T>,
    ) -> anyhow::Result<T> {
        let mut seen = self.seen.clone();
        let found = tokio::time::timeout_at(deadline, seen.wait_for(|s| pick(s).is_some()))
            .await
            .with_context(|| format!("the watch did not see {what} in time"))?
            .context("the pod watch ended")?;
        pick(&found).context("the watch lost what it saw")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
