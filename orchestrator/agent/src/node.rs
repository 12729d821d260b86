//! The agent's Node: what this machine offers (capacity, allocatable after reservations),
//! its addresses and system info, the pressure conditions read from the kernel, and the
//! heartbeat through its Lease in `kube-node-lease`, as the kubelet keeps them.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::Error;

/// How often the Lease is renewed (the kubelet's 10 s).
pub const LEASE_RENEWAL: Duration = Duration::from_secs(10);
/// How often the status is posted even when nothing changed (the kubelet's 1 minute is
/// the report frequency for changes; we post every minute regardless).
pub const STATUS_REPORT: Duration = Duration::from_secs(60);

/// What this machine has, read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// CPUs in millicores.
    pub cpu_milli: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Bytes of the data directory's filesystem.
    pub disk: i64,
}

/// What the node keeps back from pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reserved {
    /// Millicores.
    pub cpu_milli: i64,
    /// Bytes of memory.
    pub memory: i64,
    /// Bytes of ephemeral storage.
    pub disk: i64,
}

/// The most pods a node runs, as the kubelet's default `maxPods`.
pub const MAX_PODS: i64 = 110;

/// Reads the machine's size.
pub fn machine(data_dir: &Path) -> Machine {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let memory = meminfo("MemTotal").unwrap_or(0);
    let disk = nix::sys::statvfs::statvfs(data_dir)
        .map(|s| i64::try_from(s.blocks() * s.fragment_size()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Machine {
        cpu_milli: i64::try_from(cpus).unwrap_or(1) * 1000,
        memory,
        disk,
    }
}

/// A `/proc/meminfo` field in bytes, if it can be read.
fn meminfo(field: &str) -> Option<i64> {
    let bytes = crate::stats::host::meminfo_bytes(field).ok()?;
    Some(i64::try_from(bytes).unwrap_or(i64::MAX))
}

/// Pressure on the node, by the kubelet's default eviction thresholds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    /// Less than 100 MiB of memory available.
    pub memory: bool,
    /// Less than 10% of the data directory's filesystem free.
    pub disk: bool,
    /// More than 90% of the kernel's pid limit in use.
    pub pids: bool,
}

/// Reads the pressure conditions now.
pub fn pressure(data_dir: &Path) -> Pressure {
    let memory = meminfo("MemAvailable").is_some_and(|available| available < 100 << 20);
    let disk = nix::sys::statvfs::statvfs(data_dir)
        .map(|s| s.blocks() > 0 && s.blocks_available() * 10 < s.blocks())
        .unwrap_or(false);
    let pid_max: Option<u64> = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    // The fourth field of loadavg is running/total scheduling entities: every thread.
    let in_use: Option<u64> = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok());
    let pids = matches!((in_use, pid_max), (Some(used), Some(max)) if used * 10 > max * 9);
    Pressure { memory, disk, pids }
}

/// How the Node describes itself.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The node's name.
    pub name: String,
    /// Its address (InternalIP).
    pub address: Ipv4Addr,
    /// The port the agent serves logs on.
    pub port: u16,
    /// The loopback block pod addresses come from.
    pub pod_cidr: String,
    /// `containerd://1.6.20`.
    pub runtime_version: String,
    /// The port other nodes' proxies reach this node's pods through.
    pub tunnel_port: u16,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "Linux".into())
}

fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or_default()
        .to_string()
}

/// The Node's status: capacity, allocatable, conditions with a fresh heartbeat,
/// addresses, daemon endpoint and system info.
pub fn status(
    identity: &Identity,
    machine: &Machine,
    reserved: Reserved,
    pressure: Pressure,
    runtime_down: Option<&str>,
    previous: Option<&Node>,
) -> Value {
    let now = now();
    let old_conditions = previous
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        let transition = old_conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map_or_else(|| now.clone(), |t| t.0.to_string());
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": transition})
    };
    let flag = |on: bool| if on { "True" } else { "False" };
    let capacity = json!({
        "cpu": format!("{}m", machine.cpu_milli),
        "memory": format!("{}", machine.memory),
        "ephemeral-storage": format!("{}", machine.disk),
        "pods": MAX_PODS.to_string(),
    });
    let allocatable = json!({
        "cpu": format!("{}m", (machine.cpu_milli - reserved.cpu_milli).max(0)),
        "memory": format!("{}", (machine.memory - reserved.memory).max(0)),
        "ephemeral-storage": format!("{}", (machine.disk - reserved.disk).max(0)),
        "pods": MAX_PODS.to_string(),
    });
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [
            condition("MemoryPressure", flag(pressure.memory),
                if pressure.memory { "KubeletHasInsufficientMemory" } else { "KubeletHasSufficientMemory" },
                if pressure.memory { "kubelet has insufficient memory available" } else { "kubelet has sufficient memory available" }),
            condition("DiskPressure", flag(pressure.disk),
                if pressure.disk { "KubeletHasDiskPressure" } else { "KubeletHasNoDiskPressure" },
                if pressure.disk { "kubelet has disk pressure" } else { "kubelet has no disk pressure" }),
            condition("PIDPressure", flag(pressure.pids),
                if pressure.pids { "KubeletHasInsufficientPID" } else { "KubeletHasSufficientPID" },
                if pressure.pids { "kubelet has insufficient PID available" } else { "kubelet has sufficient PID available" }),
            match runtime_down {
                None => condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                Some(why) => condition("Ready", "False", "KubeletNotReady",
                    &format!("container runtime is down: {why}")),
            },
        ],
        "addresses": [
            {"type": "InternalIP", "address": identity.address.to_string()},
            {"type": "Hostname", "address": identity.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": identity.port}},
        "nodeInfo": {
            "architecture": architecture(),
            "operatingSystem": "linux",
            "osImage": os_image(),
            "kernelVersion": read_trimmed("/proc/sys/kernel/osrelease"),
            "kubeletVersion": concat!("v1.32.0+slipway.", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "containerRuntimeVersion": identity.runtime_version,
            "bootID": read_trimmed("/proc/sys/kernel/random/boot_id"),
            "machineID": read_trimmed("/etc/machine-id"),
            "systemUUID": "",
        },
    })
}

/// Registers the Node (or reports afresh on a Node registered before, as a restarted
/// kubelet does) and creates or renews its Lease.
///
/// # Errors
///
/// [`Error::Unauthorized`] when the API refuses the agent's credentials, else the API's
/// error.
pub async fn register(client: &Client, identity: &Identity, status: Value) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let annotations =
        json!({ crate::network::TUNNEL_PORT_ANNOTATION: identity.tunnel_port.to_string() });
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": identity.name, "labels": {
            "kubernetes.io/hostname": identity.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": architecture(),
        }, "annotations": annotations},
        "spec": {"podCIDR": identity.pod_cidr, "podCIDRs": [identity.pod_cidr]},
        "status": status,
    }))
    .map_err(|e| Error::Internal(format!("building the Node: {e}")))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(conflict)) if conflict.code == 409 => {
            nodes
                .patch(
                    &identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": {"annotations": annotations} })),
                )
                .await
                .map_err(Error::from_kube)?;
            nodes
                .patch_status(
                    &identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await
                .map_err(Error::from_kube)?;
        }
        Err(e) => return Err(Error::from_kube(e)),
    }
    renew(client, &identity.name).await
}

/// Renews the node's Lease, creating it if it is missing.
///
/// # Errors
///
/// The API's error.
pub async fn renew(client: &Client, name: &str) -> Result<(), Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let patch = json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_micro()}});
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(missing)) if missing.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": patch["spec"],
            }))
            .map_err(|e| Error::Internal(format!("building the Lease: {e}")))?;
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(drop)
                .map_err(Error::from_kube)
        }
        Err(e) => Err(Error::from_kube(e)),
    }
}

fn now_micro() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Microsecond)
        .unwrap_or_default()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_is_capacity_minus_reservations() {
        let identity = Identity {
            name: "n1".into(),
            address: Ipv4Addr::LOCALHOST,
            port: 10250,
            pod_cidr: "127.64.0.0/16".into(),
            runtime_version: "containerd://1.6.20".into(),
            tunnel_port: 10251,
        };
        let machine = Machine {
            cpu_milli: 2000,
            memory: 4 << 30,
            disk: 100 << 30,
        };
        let reserved = Reserved {
            cpu_milli: 100,
            memory: 256 << 20,
            disk: 0,
        };
        let status = status(
            &identity,
            &machine,
            reserved,
            Pressure {
                memory: true,
                ..Pressure::default()
            },
            None,
            None,
        );
        assert_eq!(status["capacity"]["cpu"], "2000m");
        assert_eq!(status["allocatable"]["cpu"], "1900m");
        assert_eq!(
            status["allocatable"]["memory"],
            ((4i64 << 30) - (256 << 20)).to_string()
        );
        assert_eq!(status["allocatable"]["pods"], "110");
        assert_eq!(status["conditions"][0]["status"], "True");
        assert_eq!(
            status["conditions"][0]["reason"],
            "KubeletHasInsufficientMemory"
        );
        assert_eq!(status["conditions"][3]["type"], "Ready");
        let down = super::status(
            &identity,
            &machine,
            reserved,
            Pressure::default(),
            Some("connection refused"),
            None,
        );
        assert_eq!(down["conditions"][3]["status"], "False");
        assert_eq!(
            down["conditions"][3]["message"],
            "container runtime is down: connection refused"
        );
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(
            status["nodeInfo"]["containerRuntimeVersion"],
            "containerd://1.6.20"
        );
    }

    #[test]
    fn the_machine_is_read() {
        let machine = machine(Path::new("/"));
        assert!(machine.cpu_milli >= 1000);
        assert!(machine.memory > 0);
        assert!(machine.disk > 0);
    }
}
