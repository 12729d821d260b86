//! The bench's pods: plain network namespaces made with `ip netns`, each with `lo` up and
//! one loopback address, as the agent's sandboxes are. [`Namespaces`] removes every one it
//! made when dropped, so an error, a panic or an interrupted run leaves none behind.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;
use slipway_net::Netns;

/// The namespaces made so far; dropping it deletes them.
pub(crate) struct Namespaces {
    names: Vec<String>,
}

/// A pod: its namespace, its address, and the thread that makes sockets inside it.
pub(crate) struct Pod {
    pub(crate) ip: Ipv4Addr,
    pub(crate) netns: Netns,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (iproute2 must be installed)")?;
    anyhow::ensure!(
        output.status.success(),
        "`ip {}` failed ({}; the bench must run as root): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl Namespaces {
    pub(crate) fn new() -> Self {
        Namespaces { names: Vec::new() }
    }

    /// Makes the namespace `slipway-netbench-<pid>-<tag>` with `lo` up and `address` on it.
    pub(crate) async fn pod(&mut self, tag: &str, address: Ipv4Addr) -> anyhow::Result<Pod> {
        let name = format!("slipway-netbench-{}-{tag}", std::process::id());
        ip(&["netns", "add", &name])?;
        // Recorded before it is set up, so a failure below removes it too.
        self.names.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{address}/32"),
            "dev",
            "lo",
        ])?;
        slipway_net::redirect::install(&name)
            .await
            .with_context(|| format!("routing {name}'s Service traffic to the proxy"))?;
        let path = PathBuf::from("/run/netns").join(&name);
        let netns = Netns::open(&path)
            .await
            .with_context(|| format!("entering {}", path.display()))?;
        Ok(Pod { ip: address, netns })
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            // Sockets and threads still inside keep the namespace alive until they go; this
            // only takes its name away, which is all that would outlive the process.
            if let Err(e) = ip(&["netns", "delete", name]) {
                eprintln!("removing network namespace {name}: {e:#}");
            }
        }
    }
}
