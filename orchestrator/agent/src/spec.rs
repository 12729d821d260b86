//! The OCI runtime spec of one container, built from a plan the pod worker resolved
//! (process, user, mounts, resources, security context), with the defaults Kubernetes'
//! container runtimes apply: runc-like mounts, masked and read-only kernel paths, a
//! deny-all device rule, containerd's default capabilities. No IO.

use serde_json::{Value, json};

/// Capabilities a container gets unless its security context says otherwise: containerd's
/// CRI default set, the one Kubernetes users expect.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows, for privileged containers and `add: [ALL]`.
const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Kernel paths hidden from unprivileged containers, as runc's and containerd's defaults.
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Kernel paths unprivileged containers may read but not write.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The CFS period CPU limits are expressed in, as the kubelet uses.
pub const CPU_PERIOD: u64 = 100_000;

/// A bind mount into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// Host path.
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Linux capabilities to add and drop, as names with or without `CAP_`, or `ALL`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Added to the default set.
    pub add: Vec<String>,
    /// Removed from it (after adding).
    pub drop: Vec<String>,
}

/// Everything the spec of one container is made from, already resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// argv.
    pub args: Vec<String>,
    /// `NAME=value`, later entries win.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// The uid the process runs as.
    pub uid: u32,
    /// The gid the process runs as.
    pub gid: u32,
    /// Supplementary gids.
    pub additional_gids: Vec<u32>,
    /// The pod's hostname.
    pub hostname: String,
    /// Path of the pod's network namespace.
    pub netns: String,
    /// The container's cgroup path (absolute, relative to each hierarchy's root).
    pub cgroup: String,
    /// Bind mounts: /etc/hosts and the like, then volumes.
    pub binds: Vec<Bind>,
    /// Size of /dev/shm in bytes.
    pub shm_bytes: u64,
    /// `limits.memory` in bytes.
    pub memory_limit: Option<i64>,
    /// Whether the memory cgroup accounts swap (`memory.memsw.*` exists); the limit then
    /// covers swap too, so a container cannot swap past it.
    pub swap_accounting: bool,
    /// `requests.cpu` in millicores (the shares).
    pub cpu_request_milli: Option<i64>,
    /// `limits.cpu` in millicores (the CFS quota).
    pub cpu_limit_milli: Option<i64>,
    /// Run with every capability and device, without masked paths.
    pub privileged: bool,
    /// Capabilities to add and drop.
    pub capabilities: Capabilities,
    /// The root filesystem is read-only.
    pub read_only_root: bool,
    /// `allowPrivilegeEscalation: false` sets the no_new_privs bit.
    pub no_new_privileges: bool,
}

/// CPU shares for a request in millicores, as the kubelet computes them (`MilliCPUToShares`).
pub fn cpu_shares(milli: Option<i64>) -> u64 {
    const MIN_SHARES: u64 = 2;
    match milli {
        Some(milli) if milli > 0 => (u64::try_from(milli)
            .unwrap_or(u64::MAX)
            .saturating_mul(1024)
            / 1000)
            .max(MIN_SHARES),
        _ => MIN_SHARES,
    }
}

/// The CFS quota for a limit in millicores, as the kubelet computes it (`MilliCPUToQuota`).
pub fn cpu_quota(milli: i64) -> i64 {
    const MIN_QUOTA: i64 = 1000;
    (milli.saturating_mul(CPU_PERIOD as i64) / 1000).max(MIN_QUOTA)
}

/// The capability set of a container: the default (or every one, when privileged), plus
/// `add`, minus `drop`.
pub fn capabilities(plan: &Plan) -> Vec<String> {
    let normal = |name: &str| {
        let upper = name.to_ascii_uppercase();
        if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        }
    };
    let base = if plan.privileged {
        ALL_CAPABILITIES
    } else {
        DEFAULT_CAPABILITIES
    };
    let mut set: Vec<String> = base.iter().map(|c| (*c).to_owned()).collect();
    for add in &plan.capabilities.add {
        if add.eq_ignore_ascii_case("ALL") {
            set = ALL_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect();
        } else {
            let add = normal(add);
            if !set.contains(&add) {
                set.push(add);
            }
        }
    }
    for drop in &plan.capabilities.drop {
        if drop.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            let drop = normal(drop);
            set.retain(|c| *c != drop);
        }
    }
    set
}

/// The container's runtime spec.
pub fn build(plan: &Plan) -> Value {
    let capabilities = capabilities(plan);
    let sys_options = if plan.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={}", plan.shm_bytes)]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for bind in &plan.binds {
        let mode = if bind.read_only { "ro" } else { "rw" };
        mounts.push(
            json!({"destination": bind.destination, "type": "bind", "source": bind.source,
                           "options": ["rbind", "rprivate", mode]}),
        );
    }
    let mut resources = json!({
        "devices": [{"allow": plan.privileged, "access": "rwm"}],
        "cpu": {"shares": cpu_shares(plan.cpu_request_milli)},
    });
    if let Some(limit) = plan.cpu_limit_milli {
        resources["cpu"]["quota"] = json!(cpu_quota(limit));
        resources["cpu"]["period"] = json!(CPU_PERIOD);
    }
    if let Some(limit) = plan.memory_limit {
        resources["memory"] = if plan.swap_accounting {
            json!({"limit": limit, "swap": limit})
        } else {
            json!({"limit": limit})
        };
    }
    let mut linux = json!({
        "namespaces": [
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
            {"type": "network", "path": plan.netns},
        ],
        "resources": resources,
        "cgroupsPath": plan.cgroup,
    });
    if !plan.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": plan.uid, "gid": plan.gid, "additionalGids": plan.additional_gids},
            "args": plan.args,
            "env": plan.env,
            "cwd": plan.cwd,
            "capabilities": {
                "bounding": capabilities,
                "effective": capabilities,
                "permitted": capabilities,
            },
            "noNewPrivileges": plan.no_new_privileges,
        },
        "root": {"path": "rootfs", "readonly": plan.read_only_root},
        "hostname": plan.hostname,
        "mounts": mounts,
        "linux": linux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            args: vec!["/bin/sh".into()],
            cwd: "/".into(),
            hostname: "web-1".into(),
            netns: "/run/netns/p".into(),
            cgroup: "/slipway/n/podu/c".into(),
            shm_bytes: 64 << 20,
            ..Plan::default()
        }
    }

    #[test]
    fn shares_and_quota_follow_the_kubelet() {
        assert_eq!(cpu_shares(None), 2);
        assert_eq!(cpu_shares(Some(1)), 2);
        assert_eq!(cpu_shares(Some(250)), 256);
        assert_eq!(cpu_shares(Some(2000)), 2048);
        assert_eq!(cpu_quota(500), 50_000);
        assert_eq!(cpu_quota(1), 1000);
    }

    #[test]
    fn capabilities_add_and_drop() {
        let mut p = plan();
        assert_eq!(capabilities(&p).len(), DEFAULT_CAPABILITIES.len());
        p.capabilities = Capabilities {
            add: vec!["NET_ADMIN".into()],
            drop: vec!["net_raw".into(), "CAP_KILL".into()],
        };
        let caps = capabilities(&p);
        assert!(caps.contains(&"CAP_NET_ADMIN".to_owned()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_owned()));
        assert!(!caps.contains(&"CAP_KILL".to_owned()));
        p.capabilities = Capabilities {
            add: vec!["NET_BIND_SERVICE".into()],
            drop: vec!["ALL".into()],
        };
        assert!(capabilities(&p).is_empty());
        p.capabilities = Capabilities::default();
        p.privileged = true;
        assert!(capabilities(&p).contains(&"CAP_SYS_ADMIN".to_owned()));
    }

    #[test]
    fn unprivileged_spec_masks_and_denies_devices() {
        let mut p = plan();
        p.memory_limit = Some(64 << 20);
        p.swap_accounting = true;
        p.cpu_limit_milli = Some(500);
        p.cpu_request_milli = Some(250);
        p.read_only_root = true;
        p.no_new_privileges = true;
        let spec = build(&p);
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(spec["process"]["noNewPrivileges"], true);
        assert_eq!(spec["linux"]["resources"]["devices"][0]["allow"], false);
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(spec["linux"]["resources"]["memory"]["swap"], 64 << 20);
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(spec["linux"]["resources"]["cpu"]["shares"], 256);
        assert_eq!(spec["linux"]["namespaces"][4]["path"], "/run/netns/p");
        assert!(
            spec["linux"]["maskedPaths"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        );
        let sys = spec["mounts"][5]["options"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(sys.contains(&json!("ro")));
    }

    #[test]
    fn privileged_spec_unmasks_and_allows_devices() {
        let mut p = plan();
        p.privileged = true;
        let spec = build(&p);
        assert_eq!(spec["linux"]["resources"]["devices"][0]["allow"], true);
        assert!(spec["linux"].get("maskedPaths").is_none());
        assert!(spec["linux"]["resources"].get("memory").is_none());
    }

    #[test]
    fn binds_keep_their_mode() {
        let mut p = plan();
        p.binds = vec![
            Bind {
                source: "/d/hosts".into(),
                destination: "/etc/hosts".into(),
                read_only: false,
            },
            Bind {
                source: "/d/cm".into(),
                destination: "/config".into(),
                read_only: true,
            },
        ];
        let spec = build(&p);
        let mounts = spec["mounts"].as_array().cloned().unwrap_or_default();
        let config = mounts.iter().find(|m| m["destination"] == "/config");
        assert_eq!(config.map(|m| m["options"][2].clone()), Some(json!("ro")));
    }
}
