//! Memory as the kernel accounts it, from `/proc`: a process's RSS, and the PSS of the
//! helper processes each running container costs (its containerd-shim-runc-v2 and its
//! logger). PSS, not RSS, for the helpers: many copies of one binary share their text
//! pages, and RSS would count those pages once per process.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;

/// Bytes in a MiB, for printing.
pub(crate) const MIB: f64 = 1024.0 * 1024.0;

/// A `Name:   1234 kB` field of a `/proc` file, in bytes.
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let kb = rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
        Some(kb * 1024)
    })
}

/// The resident set of a process (`self` or a PID), in bytes.
pub(crate) fn rss(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    field(&text, "VmRSS").with_context(|| format!("no VmRSS in {path}"))
}

/// The proportional set of a process, in bytes.
fn pss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    field(&text, "Pss").with_context(|| format!("no Pss in {path}"))
}

/// The per-container helper processes of one containerd, with their summed PSS.
#[derive(Clone, Copy, Default)]
pub(crate) struct Helpers {
    pub(crate) shims: usize,
    pub(crate) shim_pss: u64,
    pub(crate) loggers: usize,
    pub(crate) logger_pss: u64,
}

/// The shims serving the containerd on `socket` (their command line names it after
/// `-address`), and the loggers among their children (processes running `logger`).
/// Processes that end while they are read are skipped.
pub(crate) fn helpers(socket: &Path, logger: &Path) -> anyhow::Result<Helpers> {
    let socket = socket.to_string_lossy();
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The parent is the second field after the command, which is in parentheses and
        // may hold spaces.
        let Some(parent) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        processes.push((pid, parent, args));
    }
    let shims: HashSet<u32> = processes
        .iter()
        .filter(|(_, _, args)| {
            args.first()
                .is_some_and(|a| a.ends_with("containerd-shim-runc-v2"))
                && args
                    .windows(2)
                    .any(|w| w[0] == "-address" && w[1] == socket)
        })
        .map(|(pid, _, _)| *pid)
        .collect();
    let mut helpers = Helpers::default();
    for (pid, parent, _) in &processes {
        if shims.contains(pid) {
            if let Ok(bytes) = pss(*pid) {
                helpers.shims += 1;
                helpers.shim_pss += bytes;
            }
        } else if shims.contains(parent)
            && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == logger)
            && let Ok(bytes) = pss(*pid)
        {
            helpers.loggers += 1;
            helpers.logger_pss += bytes;
        }
    }
    Ok(helpers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_bytes() {
        let text = "Rss:                3012 kB\nPss:                 812 kB\nPss_Anon: 4 kB\n";
        assert_eq!(field(text, "Pss"), Some(812 * 1024));
        assert_eq!(field(text, "Rss"), Some(3012 * 1024));
        assert_eq!(field(text, "Swap"), None);
    }

    #[test]
    fn this_process_has_a_resident_and_a_proportional_set() {
        assert!(rss("self").expect("VmRSS") > 0);
        assert!(pss(std::process::id()).expect("Pss") > 0);
    }

    #[test]
    fn no_shims_serve_a_socket_nobody_listens_on() {
        let helpers =
            helpers(Path::new("/nonexistent/containerd.sock"), Path::new("/")).expect("read /proc");
        assert_eq!(helpers.shims + helpers.loggers, 0);
    }
}
