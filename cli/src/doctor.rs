//! `slipway doctor`: checks that this machine can run `slipway up` (kernel features,
//! cgroups, the programs the node needs, free ports and disk) and says what to fix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::exit::Failure;

/// What a check found.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Fine.
    Ok(String),
    /// Works, but worth knowing.
    Warn(String),
    /// `slipway up` will not work until this is fixed: what is wrong, and the fix.
    Fail(String, String),
}

/// One line of the report.
struct Check {
    name: &'static str,
    verdict: Verdict,
}

/// What `slipway doctor` was asked to check.
pub(crate) struct Options {
    pub(crate) data_dir: PathBuf,
    pub(crate) ports: Vec<(&'static str, SocketAddr)>,
}

/// The disk `up` wants free under its data directory: images, pod logs and the store.
const DISK_WANTED_MIB: u64 = 2048;

pub(crate) fn run(options: &Options) -> Result<(), Failure> {
    let mut checks = vec![
        Check {
            name: "root",
            verdict: root(crate::up::is_root()),
        },
        Check {
            name: "kernel",
            verdict: kernel(&read("/proc/sys/kernel/osrelease")),
        },
        Check {
            name: "namespaces",
            verdict: namespaces(|kind| Path::new("/proc/self/ns").join(kind).exists()),
        },
        Check {
            name: "overlayfs",
            verdict: overlay(&read("/proc/filesystems")),
        },
        Check {
            name: "cgroups",
            verdict: cgroups(
                &read("/proc/self/mounts"),
                &read("/sys/fs/cgroup/cgroup.controllers"),
            ),
        },
    ];
    for (program, version_flag, package) in [
        ("containerd", "--version", "containerd"),
        ("runc", "--version", "runc"),
        ("ip", "-V", "iproute2"),
        ("nft", "--version", "nftables"),
    ] {
        checks.push(Check {
            name: program,
            verdict: program_version(program, version_flag, package),
        });
    }
    checks.push(Check {
        name: "loopback",
        verdict: loopback(),
    });
    for (what, address) in &options.ports {
        checks.push(Check {
            name: what,
            verdict: port(*address),
        });
    }
    checks.push(Check {
        name: "disk",
        verdict: disk(&options.data_dir),
    });
    let mut failed = 0;
    for check in &checks {
        match &check.verdict {
            Verdict::Ok(what) => say!("ok    {:<11} {what}", check.name),
            Verdict::Warn(what) => say!("warn  {:<11} {what}", check.name),
            Verdict::Fail(what, fix) => {
                failed += 1;
                say!("FAIL  {:<11} {what}", check.name);
                say!("      {:<11} fix: {fix}", "");
            }
        }
    }
    if failed == 0 {
        say!("this machine can run slipway up");
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "{failed} check{} failed; fix {} and run slipway doctor again",
            if failed == 1 { "" } else { "s" },
            if failed == 1 { "it" } else { "them" }
        )))
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn root(is_root: bool) -> Verdict {
    if is_root {
        Verdict::Ok("running as root (containerd, network namespaces)".to_owned())
    } else {
        Verdict::Fail(
            "not root: the node's containerd and pods' network namespaces need root".to_owned(),
            "run slipway up as root (sudo)".to_owned(),
        )
    }
}

fn kernel(release: &str) -> Verdict {
    let release = release.trim();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    match (numbers.next(), numbers.next()) {
        (Some(major), Some(minor)) if (major, minor) >= (5, 4) => {
            Verdict::Ok(format!("Linux {release}"))
        }
        (Some(_), Some(_)) => Verdict::Fail(
            format!("Linux {release} is older than 5.4"),
            "run on Linux 5.4 or later (cgroup v2 with pids, overlayfs)".to_owned(),
        ),
        _ => Verdict::Fail(
            "cannot read the kernel's release from /proc/sys/kernel/osrelease".to_owned(),
            "run on Linux with /proc mounted".to_owned(),
        ),
    }
}

fn namespaces(exists: impl Fn(&str) -> bool) -> Verdict {
    let missing: Vec<&str> = ["net", "pid", "mnt", "uts", "ipc"]
        .into_iter()
        .filter(|kind| !exists(kind))
        .collect();
    if missing.is_empty() {
        Verdict::Ok("net, pid, mnt, uts and ipc namespaces".to_owned())
    } else {
        Verdict::Fail(
            format!("no {} namespaces", missing.join(", ")),
            "use a kernel built with CONFIG_NAMESPACES and each kind".to_owned(),
        )
    }
}

fn overlay(filesystems: &str) -> Verdict {
    if filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        Verdict::Ok("overlay filesystem (containerd's snapshotter)".to_owned())
    } else {
        Verdict::Warn(
            "overlay is not loaded yet; containerd loads it when it can (modprobe overlay)"
                .to_owned(),
        )
    }
}

/// cgroup v2 (unified at /sys/fs/cgroup) or v1 (a hierarchy per controller), from
/// `/proc/self/mounts` and the v2 root's `cgroup.controllers`: runc drives either.
fn cgroups(mounts: &str, v2_controllers: &str) -> Verdict {
    let unified = mounts.lines().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        fields.get(1) == Some(&"/sys/fs/cgroup") && fields.get(2) == Some(&"cgroup2")
    });
    let (version, present): (&str, Vec<String>) = if unified {
        (
            "v2",
            v2_controllers
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        )
    } else {
        let v1 = mounts
            .lines()
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                (fields.get(2) == Some(&"cgroup")).then(|| fields.get(3).copied())?
            })
            .flat_map(|options| options.split(',').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        ("v1", v1)
    };
    if present.is_empty() {
        return Verdict::Fail(
            "no cgroup hierarchy is mounted at /sys/fs/cgroup".to_owned(),
            "mount cgroup v2 there (boot with systemd.unified_cgroup_hierarchy=1)".to_owned(),
        );
    }
    let missing: Vec<&str> = ["cpu", "memory", "pids"]
        .into_iter()
        .filter(|c| !present.iter().any(|p| p == c))
        .collect();
    if missing.is_empty() {
        Verdict::Ok(format!("cgroup {version} with cpu, memory and pids"))
    } else {
        Verdict::Fail(
            format!(
                "cgroup {version} lacks the {} controller(s)",
                missing.join(", ")
            ),
            "enable them (v2: the root's cgroup.subtree_control; v1: mount their hierarchies)"
                .to_owned(),
        )
    }
}

fn program_version(program: &str, flag: &str, package: &str) -> Verdict {
    match Command::new(program).arg(flag).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next().unwrap_or_default().trim().to_owned();
            Verdict::Ok(first)
        }
        Ok(out) => Verdict::Fail(
            format!(
                "{program} {flag} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            format!("reinstall it: apt-get install --reinstall {package}"),
        ),
        Err(_) => Verdict::Fail(
            format!("{program} is not on PATH"),
            format!("apt-get install {package} (scripts/install-deps installs everything)"),
        ),
    }
}

/// Pods get addresses from 127.64.0.0/10; the kernel must route all of 127/8 to loopback.
fn loopback() -> Verdict {
    match std::net::TcpListener::bind("127.64.0.1:0") {
        Ok(_) => Verdict::Ok("127.0.0.0/8 is local (pods' addresses come from it)".to_owned()),
        Err(e) => Verdict::Fail(
            format!("cannot bind 127.64.0.1: {e}"),
            "give the lo interface 127.0.0.1/8 (ip addr add 127.0.0.1/8 dev lo)".to_owned(),
        ),
    }
}

fn port(address: SocketAddr) -> Verdict {
    match std::net::TcpListener::bind(address) {
        Ok(_) => Verdict::Ok(format!("{address} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Verdict::Fail(
            format!("{address} is in use (a slipway up already running?)"),
            "stop what listens there, or give slipway up another address".to_owned(),
        ),
        Err(e) => Verdict::Fail(
            format!("cannot listen on {address}: {e}"),
            "give slipway up another address".to_owned(),
        ),
    }
}

/// The free space where the data directory is, or would be, read with `df`.
fn disk(data_dir: &Path) -> Verdict {
    let mut existing = data_dir;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => break,
        }
    }
    if existing.exists() && !existing.is_dir() {
        return Verdict::Fail(
            format!("{} is not a directory", existing.display()),
            "give --data-dir a directory".to_owned(),
        );
    }
    let out = Command::new("df")
        .args(["--output=avail", "-k"])
        .arg(existing)
        .output();
    let free_kib = out.ok().and_then(|out| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
    });
    match free_kib {
        Some(kib) if kib / 1024 >= DISK_WANTED_MIB => Verdict::Ok(format!(
            "{:.1} GiB free for {}",
            kib as f64 / 1024.0 / 1024.0,
            data_dir.display()
        )),
        Some(kib) => Verdict::Fail(
            format!(
                "only {} MiB free for {} (images, logs and the store want {DISK_WANTED_MIB} MiB)",
                kib / 1024,
                data_dir.display()
            ),
            "free some space, or give slipway up --data-dir elsewhere".to_owned(),
        ),
        None => Verdict::Warn(format!(
            "cannot tell the free space at {}",
            existing.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Fail(..))
    }

    #[test]
    fn kernels_from_5_4_pass() {
        assert!(!failed(&kernel("6.1.0-18-amd64\n")));
        assert!(!failed(&kernel("5.4.0")));
        assert!(failed(&kernel("4.19.0-27-amd64")));
        assert!(failed(&kernel("")));
    }

    #[test]
    fn cgroups_v2_or_v1_need_cpu_memory_and_pids() {
        let v2 = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
        assert_eq!(
            cgroups(v2, "cpuset cpu io memory hugetlb pids rdma misc\n"),
            Verdict::Ok("cgroup v2 with cpu, memory and pids".to_owned())
        );
        let Verdict::Fail(what, _) = cgroups(v2, "cpuset cpu io") else {
            panic!("a v2 root without memory and pids passes");
        };
        assert_eq!(what, "cgroup v2 lacks the memory, pids controller(s)");
        let v1 = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                  cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
                  cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
                  cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n\
                  cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        assert_eq!(
            cgroups(v1, ""),
            Verdict::Ok("cgroup v1 with cpu, memory and pids".to_owned())
        );
        let without_pids = v1.replace("rw,relatime,pids", "rw,relatime,freezer");
        assert!(failed(&cgroups(&without_pids, "")));
        assert!(failed(&cgroups("proc /proc proc rw 0 0\n", "")));
    }

    #[test]
    fn every_namespace_kind_is_named_when_missing() {
        assert!(!failed(&namespaces(|_| true)));
        let Verdict::Fail(what, _) = namespaces(|kind| kind != "pid" && kind != "uts") else {
            panic!("missing namespaces pass");
        };
        assert_eq!(what, "no pid, uts namespaces");
    }

    #[test]
    fn overlay_is_read_from_proc_filesystems() {
        assert!(matches!(
            overlay("nodev\tsysfs\nnodev\toverlay\n"),
            Verdict::Ok(_)
        ));
        assert!(matches!(overlay("nodev\tsysfs\n"), Verdict::Warn(_)));
    }

    #[test]
    fn a_port_in_use_is_a_failure_with_a_fix() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let Verdict::Fail(what, fix) = port(address) else {
            panic!("a taken port passes");
        };
        assert!(what.contains("in use"), "{what}");
        assert!(fix.contains("another address"), "{fix}");
        drop(taken);
        assert!(!failed(&port(address)));
    }

    #[test]
    fn a_missing_program_says_which_package_to_install() {
        let Verdict::Fail(what, fix) =
            program_version("slipway-no-such-program", "--version", "nothing")
        else {
            panic!("a missing program passes");
        };
        assert!(what.contains("not on PATH"), "{what}");
        assert!(fix.contains("apt-get install nothing"), "{fix}");
    }

    #[test]
    fn a_data_dir_that_is_a_file_fails() {
        let file = tempfile::NamedTempFile::new().unwrap();
        assert!(failed(&disk(&file.path().join("below"))));
        let dir = tempfile::tempdir().unwrap();
        assert!(!failed(&disk(&dir.path().join("not/yet/made"))));
    }
}
