//! The floor: `ctr run -d` of the same image with the same command on the same containerd,
//! timed from spawning `ctr` to its exit (with `-d` it exits once the task has started).
//! Its containers get a network namespace of their own from runc (no `--net-host`), empty
//! and unnamed, and no logger: their stdio are FIFOs nobody reads once `ctr` is gone.
//! Containers are removed through the runtime, outside the timed part.

use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;
use tokio::time::Instant;

use crate::rig::{IMAGE, NAMESPACE, Rig};

/// Runs one container named `id` and returns how long `ctr run` took.
pub(crate) async fn ctr_run(rig: &Rig, id: &str, deadline: Instant) -> anyhow::Result<Duration> {
    let mut command = Command::new("ctr");
    command
        .arg("--address")
        .arg(&rig.socket)
        .args(["--namespace", NAMESPACE, "run", "-d"])
        // The agent's runc state root, and FIFOs in the bench's directory, so `ctr`
        // leaves nothing on the host outside it; neither changes what is started.
        .arg("--runc-root")
        .arg(&rig.runc_root)
        .arg("--fifo-dir")
        .arg(rig.scratch("fifo"))
        .args([IMAGE, id, "sleep", "3600"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout_at(deadline, command.output())
        .await
        .with_context(|| format!("ctr run {id} did not return in time"))?
        .context("running ctr (is it installed?)")?;
    let took = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "ctr run {id} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(took)
}

/// Removes a container `ctr` started: SIGKILL, its task, its record, its snapshot.
pub(crate) async fn remove(rig: &Rig, id: &str, deadline: Instant) -> anyhow::Result<()> {
    tokio::time::timeout_at(deadline, rig.runtime.delete(id))
        .await
        .with_context(|| format!("removing {id} took too long"))?
        .with_context(|| format!("removing {id}"))
}
