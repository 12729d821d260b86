//! A pod's sandbox on the host: its network namespace (loopback up, the pod's address on
//! it), its cgroup under the agent's parent, and the files its containers share (hosts,
//! hostname, resolv.conf). Everything here is idempotent, so a restarted agent can run it
//! again over what a previous run left.

use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where `ip netns` keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// The cgroup every agent on the machine keeps its pods under, one child per node.
pub const CGROUP_PARENT: &str = "/slipway";
/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A sandbox step that failed; shown on the pod as the reason it cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command such as `ip` failed.
    #[error("{command}: {message}")]
    Command {
        /// What ran.
        command: String,
        /// What it said.
        message: String,
    },
    /// A file could not be written or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The name of a pod's network namespace.
pub fn netns_name(pod_uid: &str) -> String {
    format!("slipway-{pod_uid}")
}

/// The path containers join the pod's network namespace by.
pub fn netns_path(name: &str) -> String {
    format!("{NETNS_DIR}/{name}")
}

async fn ip(args: &[&str]) -> Result<(), Error> {
    let output = tokio::process::Command::new("ip")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::Command {
            command: format!("ip {}", args.join(" ")),
            message: e.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("ip {}", args.join(" ")),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Creates the pod's network namespace with `lo` up and `address` on it, unless it exists.
///
/// # Errors
///
/// When `ip` fails.
pub async fn create_netns(name: &str, address: Ipv4Addr) -> Result<(), Error> {
    if !Path::new(&netns_path(name)).exists() {
        ip(&["netns", "add", name]).await?;
    }
    ip(&["-n", name, "link", "set", "lo", "up"]).await?;
    let cidr = format!("{address}/32");
    match ip(&["-n", name, "addr", "add", &cidr, "dev", "lo"]).await {
        Err(Error::Command { message, .. })
            if message.contains("File exists") || message.contains("already assigned") =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Removes the pod's network namespace; gone already is fine.
///
/// # Errors
///
/// When `ip` fails for another reason.
pub async fn remove_netns(name: &str) -> Result<(), Error> {
    if !Path::new(&netns_path(name)).exists() {
        return Ok(());
    }
    ip(&["netns", "delete", name]).await
}

/// Whether the memory cgroup accounts swap, so a memory limit can cover it.
pub fn swap_accounting() -> bool {
    Path::new(CGROUP_ROOT)
        .join("memory/memory.memsw.limit_in_bytes")
        .exists()
}

/// Removes a cgroup path from every hierarchy, deepest directories first; paths still
/// holding processes are left for a later try.
///
/// # Errors
///
/// When a directory cannot be read or removed for a reason other than being busy or gone.
pub fn remove_cgroup(path: &str) -> Result<(), Error> {
    let relative = path.trim_start_matches('/');
    let hierarchies = match std::fs::read_dir(CGROUP_ROOT) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                path: CGROUP_ROOT.into(),
                source,
            });
        }
    };
    let mut roots = vec![PathBuf::from(CGROUP_ROOT)];
    for entry in hierarchies.flatten() {
        // Joined hierarchies appear twice (`cpu,cpuacct` and its symlinks); real
        // directories are enough.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            roots.push(entry.path());
        }
    }
    for root in roots {
        remove_tree(&root.join(relative))?;
    }
    Ok(())
}

/// Removes a cgroup directory from every hierarchy if nothing is left in it; one still in
/// use (another agent's nodes) stays.
pub fn remove_cgroup_if_empty(path: &str) {
    let relative = path.trim_start_matches('/');
    let Ok(hierarchies) = std::fs::read_dir(CGROUP_ROOT) else {
        return;
    };
    for entry in hierarchies.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir(entry.path().join(relative));
        }
    }
    let _ = std::fs::remove_dir(Path::new(CGROUP_ROOT).join(relative));
}

fn remove_tree(dir: &Path) -> Result<(), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        // EBUSY: a process is still in it; the next cleanup pass gets it.
        Err(e) if e.raw_os_error() == Some(16) => Ok(()),
        Err(source) => Err(Error::Io {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// The /etc/hosts of a pod, as the kubelet writes it.
pub fn hosts_file(hostname: &str, pod_ip: Ipv4Addr, extra: &[(String, Vec<String>)]) -> String {
    let mut hosts = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    hosts.push_str(&format!("{pod_ip}\t{hostname}\n"));
    if !extra.is_empty() {
        hosts.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in extra {
            hosts.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    hosts
}

/// The resolv.conf of a pod: Kubernetes' search path; no nameserver, since pods have no
/// network beyond loopback (names come from /etc/hosts).
pub fn resolv_conf(namespace: &str) -> String {
    format!(
        "search {namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    )
}

/// Writes `contents` to `path` by rename, so a reader never sees half a file.
///
/// # Errors
///
/// When the file cannot be written.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, contents).map_err(io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io(path))
}

/// Removes a directory tree; gone already is fine.
///
/// # Errors
///
/// When it cannot be removed.
pub fn remove_dir(path: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names_the_pod() {
        let hosts = hosts_file(
            "web-1",
            Ipv4Addr::new(127, 64, 0, 2),
            &[("127.0.0.9".into(), vec!["db".into(), "db.local".into()])],
        );
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("127.64.0.2\tweb-1\n"));
        assert!(hosts.ends_with("127.0.0.9\tdb\tdb.local\n"));
    }

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hosts");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        remove_dir(&dir.path().join("absent")).expect("absent is fine");
    }
}
