//! The whole host's CPU time, boot time and memory from `/proc`, as the kubelet reports its
//! node (the root cgroup): parsing is pure, so tables test it.

use std::time::{Duration, SystemTime};

/// Clock ticks per second in `/proc/stat`: the kernel's USER_HZ, which `sysconf(CLK_TCK)`
/// reports and which is 100 on every architecture Linux runs us on.
const USER_HZ: u64 = 100;

/// Why the host's figures could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The file lacks a line or value it always has.
    #[error("{path}: {what}")]
    Malformed {
        /// The file.
        path: &'static str,
        /// What is missing or unreadable.
        what: String,
    },
}

const STAT: &str = "/proc/stat";
const MEMINFO: &str = "/proc/meminfo";

/// What `/proc/stat` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cpu {
    /// CPU time spent on anything but idling since boot, in nanoseconds, all CPUs
    /// together.
    pub(crate) busy_nanos: u64,
    /// When the host booted.
    pub(crate) boot_time: SystemTime,
}

/// What `/proc/meminfo` says, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Memory {
    /// `MemTotal − MemAvailable`: what could not be had back without swapping, the
    /// kubelet's node working set.
    pub(crate) working_set_bytes: u64,
    /// `MemTotal − MemFree`: everything in use, page cache included.
    pub(crate) usage_bytes: u64,
}

/// Reads `/proc/stat`.
pub(crate) fn cpu() -> Result<Cpu, Error> {
    parse_stat(&read(STAT)?)
}

/// Reads `/proc/meminfo`.
pub(crate) fn memory() -> Result<Memory, Error> {
    parse_meminfo(&read(MEMINFO)?)
}

fn read(path: &'static str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read { path, source })
}

/// The aggregate `cpu` line and `btime` of `/proc/stat`. Busy time is user, nice, system,
/// irq, softirq and steal; idle and iowait are idle, and guest time is already counted in
/// user and nice.
pub(crate) fn parse_stat(text: &str) -> Result<Cpu, Error> {
    let malformed = |what: &str| Error::Malformed {
        path: STAT,
        what: what.to_owned(),
    };
    let mut busy_ticks = None;
    let mut boot_seconds = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                let mut ticks = [0u64; 8];
                for (i, tick) in ticks.iter_mut().enumerate() {
                    // Older kernels stop after irq, softirq or steal; what they lack is 0.
                    *tick = match fields.next() {
                        Some(value) => value
                            .parse()
                            .map_err(|_| malformed(&format!("cpu field {} is {value:?}", i + 1)))?,
                        None if i >= 4 => 0,
                        None => return Err(malformed("the cpu line is short")),
                    };
                }
                let [user, nice, system, _idle, _iowait, irq, softirq, steal] = ticks;
                busy_ticks = Some(
                    [user, nice, system, irq, softirq, steal]
                        .into_iter()
                        .fold(0u64, u64::saturating_add),
                );
            }
            Some("btime") => {
                let value = fields.next().unwrap_or_default();
                boot_seconds = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| malformed(&format!("btime is {value:?}")))?,
                );
            }
            _ => {}
        }
    }
    let busy_ticks = busy_ticks.ok_or_else(|| malformed("no cpu line"))?;
    let boot_seconds = boot_seconds.ok_or_else(|| malformed("no btime line"))?;
    Ok(Cpu {
        busy_nanos: busy_ticks.saturating_mul(1_000_000_000 / USER_HZ),
        boot_time: SystemTime::UNIX_EPOCH + Duration::from_secs(boot_seconds),
    })
}

/// `MemTotal`, `MemFree` and `MemAvailable` of `/proc/meminfo`, in kB (KiB).
pub(crate) fn parse_meminfo(text: &str) -> Result<Memory, Error> {
    let total = meminfo_field(text, "MemTotal")?;
    Ok(Memory {
        working_set_bytes: total.saturating_sub(meminfo_field(text, "MemAvailable")?),
        usage_bytes: total.saturating_sub(meminfo_field(text, "MemFree")?),
    })
}

/// Reads one field of `/proc/meminfo` (`MemTotal`, say), in bytes.
pub(crate) fn meminfo_bytes(name: &str) -> Result<u64, Error> {
    meminfo_field(&read(MEMINFO)?, name)
}

/// The field `name` of meminfo's text in bytes; the whole name must match, so
/// `MemFree` is never read from a line that only starts with it.
fn meminfo_field(text: &str, name: &str) -> Result<u64, Error> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .ok_or_else(|| Error::Malformed {
            path: MEMINFO,
            what: format!("no {name} line"),
        })?;
    let kib = line.split_whitespace().next().unwrap_or_default();
    kib.parse::<u64>()
        .map(|kib| kib.saturating_mul(1024))
        .map_err(|_| Error::Malformed {
            path: MEMINFO,
            what: format!("{name} is {kib:?}"),
        })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn busy_time_leaves_idle_iowait_and_guest_out() {
        let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let table: &[(&str, Option<u64>)] = &[
            // user nice system idle iowait irq softirq steal guest guest_nice
            (
                "cpu  100 20 30 5000 400 1 2 3 50 5\ncpu0 100 20 30 5000 400 1 2 3 50 5\nbtime 1700000000\n",
                Some(156),
            ),
            // An old kernel without steal and guest columns.
            ("cpu 10 0 10 99 9 1 1\nbtime 1700000000\n", Some(22)),
            ("cpu 10 0 10 99\nbtime 1700000000\n", Some(20)),
            ("cpu 10 0 10\nbtime 1700000000\n", None),
            ("cpu 10 x 10 99 9 1 1 0\nbtime 1700000000\n", None),
            ("cpu0 1 1 1 1 1 1 1 1\nbtime 1700000000\n", None),
            ("cpu 1 1 1 1 1 1 1 1\n", None),
            ("cpu 1 1 1 1 1 1 1 1\nbtime soon\n", None),
        ];
        for (text, busy_ticks) in table {
            let parsed = parse_stat(text);
            match busy_ticks {
                Some(ticks) => assert_eq!(
                    parsed.expect(text),
                    Cpu {
                        busy_nanos: ticks * 10_000_000,
                        boot_time: boot
                    },
                    "{text}"
                ),
                None => assert!(
                    matches!(parsed, Err(Error::Malformed { .. })),
                    "{text}: {parsed:?}"
                ),
            }
        }
    }

    #[test]
    fn memory_is_total_less_available_and_total_less_free() {
        let text = "MemTotal:       16000 kB\nMemFree:         4000 kB\n\
                    MemAvailable:   10000 kB\nBuffers:          100 kB\n";
        assert_eq!(
            parse_meminfo(text).expect("meminfo"),
            Memory {
                working_set_bytes: 6000 * 1024,
                usage_bytes: 12000 * 1024
            }
        );
        for broken in [
            "MemTotal: 16000 kB\nMemFree: 4000 kB\n",
            "MemTotal: lots kB\nMemFree: 4000 kB\nMemAvailable: 1 kB\n",
            // A prefix of another field's name is not the field.
            "MemTotal: 1 kB\nMemFreeish: 1 kB\nMemAvailable: 1 kB\n",
        ] {
            assert!(
                matches!(parse_meminfo(broken), Err(Error::Malformed { .. })),
                "{broken}"
            );
        }
    }

    #[test]
    fn this_host_reads() {
        let cpu = cpu().expect("/proc/stat");
        assert!(
            cpu.busy_nanos > 0 && cpu.boot_time < SystemTime::now(),
            "{cpu:?}"
        );
        let memory = memory().expect("/proc/meminfo");
        // Both above 0; how they compare depends on the host's page cache.
        assert!(
            memory.working_set_bytes > 0 && memory.usage_bytes > 0,
            "{memory:?}"
        );
        assert!(meminfo_bytes("MemTotal").expect("MemTotal") >= memory.usage_bytes);
    }
}
