//! The one conformance suite every [`Runtime`] must pass, unchanged.
//!
//! An implementation's `tests/conformance.rs` calls [`conformance_tests!`] with an async
//! constructor of its [`Backend`]; every case then runs as its own test against a fresh
//! runtime holding no containers, with image archives the backend built. Cases run real
//! processes (busybox), so they need a Linux host with cgroups, as the runtime does.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use crate::{
    AttachedExec, ContainerConfig, Error, Event, ExecConfig, ImageConfig, LogTarget, Runtime,
    TaskStatus,
};

/// A runtime under test and the files the cases use.
pub trait Backend: Send + Sync + 'static {
    /// The runtime; every call returns a handle to the same one.
    fn runtime(&self) -> Arc<dyn Runtime>;
    /// The image archives and scratch directory.
    fn fixtures(&self) -> &Fixtures;
}

/// What the cases need from outside the runtime.
#[derive(Clone, Debug)]
pub struct Fixtures {
    /// A directory for log and output files, writable by the runtime's shims.
    pub scratch: PathBuf,
    /// One busybox image per archive format the runtime must read (OCI layout and `docker
    /// save`, gzip-compressed or not), each under its own name. The first is the one
    /// containers run: it must have `sh`, `sleep`, `echo`, `cat`, `head` and `tail`, and
    /// `busybox` itself (for `busybox stty`).
    pub archives: Vec<Archive>,
}

/// An image archive and what importing it must report.
#[derive(Clone, Debug)]
pub struct Archive {
    /// The archive file.
    pub path: PathBuf,
    /// The image's full name after import.
    pub name: String,
    /// The manifest digest, when the archive fixes it (`docker save` archives carry no
    /// manifest, so the runtime makes one up).
    pub digest: Option<String>,
    /// Its config.
    pub config: ImageConfig,
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh backend from
/// `$new` (an async fn returning a [`Backend`]).
#[macro_export]
macro_rules! conformance_tests {
    ($new:path) => {
        $crate::conformance_tests!(@cases $new;
            imports_every_archive_format,
            reimport_is_idempotent,
            removed_images_are_gone,
            exit_status_log_and_event,
            binary_logger_gets_output,
            sigterm_reaches_a_trap,
            sigkill_gives_137,
            oom_is_reported,
            exec_returns_status_and_output,
            exec_timeout_is_unavailable,
            attached_exec_streams_and_status,
            attached_exec_with_a_terminal,
            attached_exec_errors_are_classified,
            delete_is_idempotent,
            list_shows_labels_and_tasks,
            a_group_shares_one_shim,
            stats_of_a_running_task,
            errors_are_classified,
        );
    };
    (@cases $new:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $new().await;
                let case = $crate::conformance::$case(&backend);
                if tokio::time::timeout($crate::conformance::CASE_LIMIT, case).await.is_err() {
                    panic!("{} did not finish within {:?}", stringify!($case), $crate::conformance::CASE_LIMIT);
                }
            }
        )*
    };
}

/// How long a whole case may run before it fails instead of hanging.
pub const CASE_LIMIT: Duration = Duration::from_secs(300);

/// How long a case waits for something that should happen promptly; a liveness bound,
/// not a performance assertion.
const PATIENCE: Duration = Duration::from_secs(60);

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
}

/// A container id unique on this host, as cgroup paths are host-wide.
fn unique_id(case: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{case}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A minimal runc-like OCI runtime spec for `args`: its own pid, ipc, uts and mount
/// namespaces (the host's network), no device but the defaults runc makes, a cgroup of
/// its own at `/slipway-conformance-<id>` (runc removes it with the container), and
/// optionally a memory limit without swap.
pub fn spec(id: &str, args: &[&str], memory_limit: Option<i64>) -> Value {
    let mut resources = json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    if let Some(limit) = memory_limit {
        resources["memory"] = json!({ "limit": limit, "swap": limit });
    }
    json!({
        "ociVersion": "1.0.2",
        "process": process(args),
        "root": { "readonly": false },
        "hostname": "conformance",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] },
        ],
        "linux": {
            "resources": resources,
            "cgroupsPath": format!("/slipway-conformance-{id}"),
            "namespaces": [
                { "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" },
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    })
}

/// An OCI process spec running `args` as root in `/`.
pub fn process(args: &[&str]) -> Value {
    let caps = [
        "CAP_AUDIT_WRITE",
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETGID",
        "CAP_SETUID",
    ];
    json!({
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
        "args": args,
        "env": [PATH],
        "cwd": "/",
        "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
        "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
        "noNewPrivileges": true,
    })
}

/// Imports the runnable image and configures a container running `args` in it.
async fn config<B: Backend>(
    backend: &B,
    case: &str,
    args: &[&str],
    memory_limit: Option<i64>,
) -> ContainerConfig {
    let image = &backend.fixtures().archives[0];
    within("import", backend.runtime().import(&image.path))
        .await
        .expect("importing the runnable image");
    let id = unique_id(case);
    ContainerConfig {
        spec: spec(&id, args, memory_limit),
        id,
        image: image.name.clone(),
        labels: BTreeMap::from([(format!("{}case", crate::LABEL_PREFIX), case.to_owned())]),
        group: None,
    }
}

/// [`config`], created.
async fn container<B: Backend>(
    backend: &B,
    case: &str,
    args: &[&str],
    memory_limit: Option<i64>,
) -> ContainerConfig {
    let config = config(backend, case, args, memory_limit).await;
    within("create", backend.runtime().create(&config))
        .await
        .expect("creating a container");
    config
}

fn log_path<B: Backend>(backend: &B, id: &str) -> PathBuf {
    backend.fixtures().scratch.join(format!("{id}.log"))
}

/// Waits until a file holds `needle` (the shim writes output asynchronously).
async fn file_holds(path: &std::path::Path, needle: &str) -> String {
    within(&format!("{} to hold {needle:?}", path.display()), async {
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn next_matching(
    events: &mut mpsc::Receiver<Event>,
    what: &str,
    matches: impl Fn(&Event) -> bool,
) -> Event {
    within(what, async {
        loop {
            let event = events.recv().await.expect("the event stream ended");
            if matches(&event) {
                return event;
            }
        }
    })
    .await
}

async fn cleanup(runtime: &dyn Runtime, id: &str) {
    within("delete", runtime.delete(id))
        .await
        .expect("deleting a container");
}

/// Every archive format imports, and `image` and `images` report what `import` did.
pub async fn imports_every_archive_format<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    for archive in &backend.fixtures().archives {
        let imported = within("import", runtime.import(&archive.path))
            .await
            .unwrap_or_else(|e| panic!("importing {}: {e}", archive.path.display()));
        assert_eq!(
            imported.len(),
            1,
            "{}: {imported:?}",
            archive.path.display()
        );
        let image = &imported[0];
        assert_eq!(image.name, archive.name);
        assert!(
            image.digest.starts_with("sha256:") && image.digest.len() == 71,
            "{image:?}"
        );
        if let Some(digest) = &archive.digest {
            assert_eq!(&image.digest, digest);
        }
        assert!(image.size > 0);
        assert_eq!(image.config, archive.config);
        let got = within("image", runtime.image(&archive.name))
            .await
            .expect("image");
        assert_eq!(got.as_ref(), Some(image));
        let all = within("images", runtime.images()).await.expect("images");
        assert!(all.contains(image), "{all:?} lacks {image:?}");
    }
}

/// Importing an archive again changes nothing.
pub async fn reimport_is_idempotent<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    for archive in &backend.fixtures().archives {
        let first = within("import", runtime.import(&archive.path))
            .await
            .expect("import");
        let second = within("import", runtime.import(&archive.path))
            .await
            .expect("import again");
        assert_eq!(first, second);
    }
    let all = within("images", runtime.images()).await.expect("images");
    assert_eq!(all.len(), backend.fixtures().archives.len(), "{all:?}");
}

/// A removed image is gone, and removing it again is not an error.
pub async fn removed_images_are_gone<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let archive = &backend.fixtures().archives[0];
    within("import", runtime.import(&archive.path))
        .await
        .expect("import");
    within("remove", runtime.remove_image(&archive.name))
        .await
        .expect("remove");
    assert_eq!(
        within("image", runtime.image(&archive.name))
            .await
            .expect("image"),
        None
    );
    let all = within("images", runtime.images()).await.expect("images");
    assert!(all.iter().all(|i| i.name != archive.name), "{all:?}");
    within("remove again", runtime.remove_image(&archive.name))
        .await
        .expect("removing a missing image");
}

/// A task's exit status comes back from `wait`, from an `Exit` event and from `list`; its
/// output lands in its log file.
pub async fn exit_status_log_and_event<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let mut events = within("events", runtime.events()).await.expect("events");
    let config = container(
        backend,
        "exit",
        &["sh", "-c", "echo hello-conformance; exit 3"],
        None,
    )
    .await;
    let log = log_path(backend, &config.id);
    let pid = within(
        "start",
        runtime.start(&config.id, &LogTarget::File(log.clone())),
    )
    .await
    .expect("start");
    assert!(pid > 0);
    let exit = within("wait", runtime.wait(&config.id))
        .await
        .expect("wait");
    assert_eq!(exit.status, 3);
    file_holds(&log, "hello-conformance\n").await;
    let id = config.id.clone();
    let event = next_matching(
        &mut events,
        "exit event",
        |e| matches!(e, Event::Exit { container, .. } if *container == id),
    )
    .await;
    let Event::Exit { process, exit, .. } = event else {
        unreachable!("matched an exit")
    };
    assert_eq!(process, config.id);
    assert_eq!(exit.status, 3);
    let listed = within("list", runtime.list()).await.expect("list");
    let task = listed
        .iter()
        .find(|c| c.id == config.id)
        .and_then(|c| c.task.clone())
        .expect("the stopped task is listed");
    assert_eq!(task.status, TaskStatus::Stopped);
    assert_eq!(task.exit.map(|e| e.status), Some(3));
    cleanup(runtime.as_ref(), &config.id).await;
}

/// A `binary` log target runs the logger with the container's output on fds 3 and 4 and
/// the arguments as `key value` pairs; the logger signals readiness by closing fd 5.
pub async fn binary_logger_gets_output<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let scratch = &backend.fixtures().scratch;
    let logger = scratch.join("logger.sh");
    // Every process of the logger must close fd 5, or the runtime waits for it forever.
    let script = "#!/bin/sh\nexec 5>&-\nwhile [ $# -ge 2 ]; do [ \"$1\" = out ] && out=$2; shift 2; done\n\
                  cat <&3 >>\"$out\" &\ncat <&4 >>\"$out\"\nwait\n";
    std::fs::write(&logger, script).expect("writing the logger");
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("making the logger executable");
    let config = container(
        backend,
        "binlog",
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2"],
        None,
    )
    .await;
    let out = scratch.join(format!("{}-binary.log", config.id));
    let target = LogTarget::Binary {
        path: logger,
        args: BTreeMap::from([
            ("out".to_owned(), out.to_string_lossy().into_owned()),
            ("other".to_owned(), "a value with spaces & more".to_owned()),
        ]),
    };
    within("start", runtime.start(&config.id, &target))
        .await
        .expect("start");
    let exit = within("wait", runtime.wait(&config.id))
        .await
        .expect("wait");
    assert_eq!(exit.status, 0);
    file_holds(&out, "to-stdout\n").await;
    file_holds(&out, "to-stderr\n").await;
    cleanup(runtime.as_ref(), &config.id).await;
}

/// SIGTERM reaches a process that handles it; the status is what the handler exits with.
pub async fn sigterm_reaches_a_trap<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let script = "trap 'exit 143' TERM; echo trap-ready; while true; do sleep 0.1; done";
    let config = container(backend, "term", &["sh", "-c", script], None).await;
    let log = log_path(backend, &config.id);
    within(
        "start",
        runtime.start(&config.id, &LogTarget::File(log.clone())),
    )
    .await
    .expect("start");
    file_holds(&log, "trap-ready").await;
    within("kill", runtime.kill(&config.id, 15, false))
        .await
        .expect("kill");
    let exit = within("wait", runtime.wait(&config.id))
        .await
        .expect("wait");
    assert_eq!(exit.status, 143);
    cleanup(runtime.as_ref(), &config.id).await;
}

/// SIGKILL ends a process with 128 + 9, and signalling it again is not an error.
pub async fn sigkill_gives_137<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let config = container(backend, "kill", &["sleep", "1000"], None).await;
    within("start", runtime.start(&config.id, &LogTarget::Null))
        .await
        .expect("start");
    within("kill", runtime.kill(&config.id, 9, false))
        .await
        .expect("kill");
    let exit = within("wait", runtime.wait(&config.id))
        .await
        .expect("wait");
    assert_eq!(exit.status, 137);
    within("kill again", runtime.kill(&config.id, 9, true))
        .await
        .expect("killing a finished process");
    cleanup(runtime.as_ref(), &config.id).await;
}

/// A process that outgrows the memory limit is killed (137) and an `Oom` event says so.
pub async fn oom_is_reported<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let mut events = within("events", runtime.events()).await.expect("events");
    // `tail` keeps the last line in memory, and /dev/zero has no line breaks.
    let config = container(
        backend,
        "oom",
        &["sh", "-c", "head -c 256m /dev/zero | tail"],
        Some(16 << 20),
    )
    .await;
    within("start", runtime.start(&config.id, &LogTarget::Null))
        .await
        .expect("start");
    let exit = within("wait", runtime.wait(&config.id))
        .await
        .expect("wait");
    assert_eq!(exit.status, 137);
    let id = config.id.clone();
    next_matching(
        &mut events,
        "oom event",
        |e| matches!(e, Event::Oom { container } if *container == id),
    )
    .await;
    cleanup(runtime.as_ref(), &config.id).await;
}

/// An exec'd process's status comes back, and its output lands in the given file.
pub async fn exec_returns_status_and_output<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let config = container(backend, "exec", &["sleep", "1000"], None).await;
    within("start", runtime.start(&config.id, &LogTarget::Null))
        .await
        .expect("start");
    let output = backend
        .fixtures()
        .scratch
        .join(format!("{}-exec.out", config.id));
    let exec = ExecConfig {
        id: "probe".to_owned(),
        process: process(&["sh", "-c", "echo exec-output; exit 7"]),
        output: Some(output.clone()),
    };
    let exit = within("exec", runtime.exec(&config.id, &exec, PATIENCE))
        .await
        .expect("exec");
    assert_eq!(exit.status, 7);
    file_holds(&output, "exec-output\n").await;
    // The id is free again once the exec returned.
    let quiet = ExecConfig {
        output: None,
        process: process(&["true"]),
        ..exec
    };
    let exit = within("exec again", runtime.exec(&config.id, &quiet, PATIENCE))
        .await
        .expect("exec again");
    assert_eq!(exit.status, 0);
    cleanup(runtime.as_ref(), &config.id).await;
}

/// An exec that outlasts its timeout is killed and reported unavailable; the container
/// carries on.
pub async fn exec_timeout_is_unavailable<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let config = container(backend, "exectimeout", &["sleep", "1000"], None).await;
    within("start", runtime.start(&config.id, &LogTarget::Null))
        .await
        .expect("start");
    let exec = ExecConfig {
        id: "slow".to_owned(),
        process: process(&["sleep", "1000"]),
        output: None,
    };
    let result = within(
        "exec",
        runtime.exec(&config.id, &exec, Duration::from_millis(500)),
    )
    .await;
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    let listed = within("list", runtime.list()).await.expect("list");
    let task = listed
        .iter()
        .find(|c| c.id == config.id)
        .and_then(|c| c.task.clone());
    assert_eq!(task.map(|t| t.status), Some(TaskStatus::Running));
    let fast = ExecConfig {
        process: process(&["true"]),
        ..exec
    };
    let exit = within("exec again", runtime.exec(&config.id, &fast, PATIENCE))
        .await
        .expect("the same exec id again");
    assert_eq!(exit.status, 0);
    cleanup(runtime.as_ref(), &config.id).await;
}

/// Reads a stream to its end on a task of its own, so the process never blocks on a full
/// pipe while the case waits for something else.
fn read_all(stream: Option<Box<dyn AsyncRead + Send + Unpin>>) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut text = Vec::new();
        if let Some(mut stream) = stream {
            stream.read_to_end(&mut text).await.expect("reading output");
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// An attached exec: what is written to stdin reaches the process, end of file on stdin
/// ends `cat`, stdout and stderr come back apart, and the exit status is the process's.
pub async fn attached_exec_streams_and_status<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let config = container(backend, "attached", &["sleep", "1000"], None).await;
    within("start", runtime.start(&config.id, &LogTarget::Null))
        .await
        .expect("start");
    let exec = AttachedExec {
        id: "attached".to_owned(),
        process: process(&["sh", "-c", "cat; echo to-stderr >&2; exit 3"]),
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let mut attached = within("exec", runtime.exec_attached(&config.id, &exec))
        .await
        .expect("exec");
    let stdout = read_all(attached.stdout.take());
    let stderr = read_all(attached.stderr.take());
    let mut stdin = attached.stdin.take().expect("a stdin");
    within("writing stdin", stdin.write_all(b"hello\nworld\n"))
        .await
        .expect("writing stdin");
    drop(stdin);
    within("closing stdin", attached.process.close_stdin())
        .await
        .expect("closing stdin");
    let exit = within("wait", attached.process.wait()).await.expect("wait");
    assert_eq!(exit.status, 3);
    assert_eq!(
        within("stdout", stdout).await.expect("stdout"),
        "hello\nworld\n"
    );
    assert_eq!(
        within("stderr", stderr).await.expect("stderr"),
        "to-stderr\n"
    );
    // The id is free again once waited for.
    let again = AttachedExec {
        process: process(&["echo", "again"]),
        stdin: false,
        stderr: false,
        ..exec
    };
    let mut attached = within("exec again", runtime.exec_attached(&config.id, &again))
        .await
        .expect("the same exec id again");
    assert!(attached.stdin.is_none() && attached.stderr.is_none());
    let stdout = read_all(attached.stdout.take());
    let exit = within("wait again", attached.process.wait())
        .await
        .expect("wait again");
    assert_eq!(exit.status, 0);
    assert_eq!(within("stdout", stdout).await.expect("stdout"), "again\n");
    cleanup(runtime.as_ref(), &config.id).await;
}

/// With a terminal the process's stdin and stdout are a tty of the size last set, and
/// everything it prints comes back on stdout.
pub async fn attached_exec_with_a_terminal<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let config = container(backend, "tty", &["sleep", "1000"], None).await;
    within("start", runtime.start(&config.id, &LogTarget::Null))
        .await
        .expect("start");
    let script = "test -t 0 && test -t 1 && echo is-a-tty; read line; busybox stty size; \
                  echo to-stderr >&2; exit 4";
    let exec = AttachedExec {
        id: "tty".to_owned(),
        process: process(&["sh", "-c", script]),
        stdin: true,
        stdout: true,
        stderr: true,
        tty: true,
    };
    let mut attached = within("exec", runtime.exec_attached(&config.id, &exec))
        .await
        .expect("exec");
    assert!(attached.stderr.is_none(), "a terminal has one output");
    let stdout = read_all(attached.stdout.take());
    within("resize", attached.process.resize(100, 30))
        .await
        .expect("resize");
    // The size is set before the line that lets the script ask for it.
    let mut stdin = attached.stdin.take().expect("a stdin");
    within("writing stdin", stdin.write_all(b"go\n"))
        .await
        .expect("writing stdin");
    let exit = within("wait", attached.process.wait()).await.expect("wait");
    assert_eq!(exit.status, 4);
    drop(stdin);
    let output = within("stdout", stdout).await.expect("stdout");
    for expected in ["is-a-tty\r\n", "30 100\r\n", "to-stderr\r\n"] {
        assert!(
            output.contains(expected),
            "{expected:?} missing from {output:?}"
        );
    }
    cleanup(runtime.as_ref(), &config.id).await;
}

/// An attached exec of a binary the container lacks is [`Error::Invalid`] and leaves its id
/// free; one in a container that does not exist is [`Error::NotFound`].
pub async fn attached_exec_errors_are_classified<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let config = container(backend, "attachederr", &["sleep", "1000"], None).await;
    within("start", runtime.start(&config.id, &LogTarget::Null))
        .await
        .expect("start");
    let exec = AttachedExec {
        id: "missing".to_owned(),
        process: process(&["/bin/no-such-binary"]),
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let started = within("exec", runtime.exec_attached(&config.id, &exec)).await;
    assert!(matches!(started, Err(Error::Invalid(_))), "{started:?}");
    let fine = AttachedExec {
        process: process(&["true"]),
        ..exec.clone()
    };
    let attached = within("exec again", runtime.exec_attached(&config.id, &fine))
        .await
        .expect("the id is free after a failed start");
    let exit = within("wait", attached.process.wait()).await.expect("wait");
    assert_eq!(exit.status, 0);
    let missing = within("exec", runtime.exec_attached("no-such-container", &exec)).await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    cleanup(runtime.as_ref(), &config.id).await;
}

/// Deleting a running, a never started or a missing container all succeed, and deleted
/// containers are not listed.
pub async fn delete_is_idempotent<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let running = container(backend, "delrunning", &["sleep", "1000"], None).await;
    within("start", runtime.start(&running.id, &LogTarget::Null))
        .await
        .expect("start");
    let created = container(backend, "delcreated", &["sleep", "1000"], None).await;
    for id in [&running.id, &created.id] {
        within("delete", runtime.delete(id)).await.expect("delete");
        within("delete again", runtime.delete(id))
            .await
            .expect("deleting a deleted container");
    }
    within("delete missing", runtime.delete("never-was"))
        .await
        .expect("deleting a container that never was");
    let listed = within("list", runtime.list()).await.expect("list");
    assert!(listed.is_empty(), "{listed:?}");
}

/// `list` shows each container's labels and image, and its task when it has one.
pub async fn list_shows_labels_and_tasks<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let running = container(backend, "listrunning", &["sleep", "1000"], None).await;
    let pid = within("start", runtime.start(&running.id, &LogTarget::Null))
        .await
        .expect("start");
    let created = container(backend, "listcreated", &["sleep", "1000"], None).await;
    let listed = within("list", runtime.list()).await.expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (config, task) in [(&running, true), (&created, false)] {
        let found = listed
            .iter()
            .find(|c| c.id == config.id)
            .unwrap_or_else(|| panic!("{} not listed in {listed:?}", config.id));
        assert_eq!(found.labels, config.labels);
        assert_eq!(found.image, config.image);
        if task {
            let task = found.task.clone().expect("a task");
            assert_eq!(task.status, TaskStatus::Running);
            assert_eq!(task.pid, pid);
            assert_eq!(task.exit, None);
        } else {
            assert_eq!(found.task, None);
        }
    }
    cleanup(runtime.as_ref(), &running.id).await;
    cleanup(runtime.as_ref(), &created.id).await;
}

/// Containers of one group share one shim: their processes have the same parent.
pub async fn a_group_shares_one_shim<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let mut pids = Vec::new();
    let mut ids = Vec::new();
    let group = unique_id("group");
    for _ in 0..2 {
        let mut config = container(backend, "grouped", &["sleep", "1000"], None).await;
        // Recreated with the group: the group is part of the container, not of the start.
        within("delete", runtime.delete(&config.id))
            .await
            .expect("delete");
        config.group = Some(group.clone());
        within("create", runtime.create(&config))
            .await
            .expect("create");
        let pid = within("start", runtime.start(&config.id, &LogTarget::Null))
            .await
            .expect("start");
        pids.push(pid);
        ids.push(config.id);
    }
    let parents: Vec<String> = pids.iter().map(|pid| parent_of(*pid)).collect();
    assert_eq!(parents[0], parents[1], "shims of {pids:?}");
    for id in &ids {
        cleanup(runtime.as_ref(), id).await;
    }
}

fn parent_of(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading stat");
    // The command name in parentheses may hold spaces; the fields after it do not.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .expect("a parent pid")
        .to_owned()
}

/// A running task's stats show the memory it holds and CPU time that never goes back; a
/// container with no task, or none at all, has no stats.
pub async fn stats_of_a_running_task<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let config = container(backend, "stats", &["sleep", "1000"], None).await;
    let before_start = within("stats", runtime.stats(&config.id)).await;
    assert!(
        matches!(before_start, Err(Error::NotFound(_))),
        "a container with no task: {before_start:?}"
    );
    within("start", runtime.start(&config.id, &LogTarget::Null))
        .await
        .expect("start");
    let first = within("stats", runtime.stats(&config.id))
        .await
        .expect("stats of a running task");
    let second = within("stats again", runtime.stats(&config.id))
        .await
        .expect("stats of a running task");
    for stats in [first, second] {
        assert!(stats.memory_usage_bytes > 0, "{stats:?}");
        assert!(
            stats.memory_working_set_bytes <= stats.memory_usage_bytes,
            "{stats:?}"
        );
    }
    assert!(
        second.cpu_nanos >= first.cpu_nanos,
        "{first:?} then {second:?}"
    );
    assert!(second.at >= first.at, "{first:?} then {second:?}");
    let unknown = within("stats", runtime.stats("no-such-container")).await;
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
    cleanup(runtime.as_ref(), &config.id).await;
}

/// Failures come back in the classes callers decide on.
pub async fn errors_are_classified<B: Backend>(backend: &B) {
    let runtime = backend.runtime();
    let config = container(backend, "errors", &["sleep", "1000"], None).await;
    let again = within("create again", runtime.create(&config)).await;
    assert!(matches!(again, Err(Error::AlreadyExists(_))), "{again:?}");
    let missing_image = ContainerConfig {
        id: unique_id("noimage"),
        image: "slipway.local/no-such-image:1".to_owned(),
        ..config.clone()
    };
    let created = within("create", runtime.create(&missing_image)).await;
    assert!(matches!(created, Err(Error::NotFound(_))), "{created:?}");
    let started = within(
        "start",
        runtime.start("no-such-container", &LogTarget::Null),
    )
    .await;
    assert!(matches!(started, Err(Error::NotFound(_))), "{started:?}");
    let killed = within("kill", runtime.kill("no-such-container", 9, false)).await;
    assert!(matches!(killed, Err(Error::NotFound(_))), "{killed:?}");
    let bad_id = unique_id("badexec");
    let bad = ContainerConfig {
        spec: spec(&bad_id, &["/bin/no-such-binary"], None),
        id: bad_id,
        ..config.clone()
    };
    within("create", runtime.create(&bad))
        .await
        .expect("create");
    let started = within("start", runtime.start(&bad.id, &LogTarget::Null)).await;
    assert!(matches!(started, Err(Error::Invalid(_))), "{started:?}");
    let garbage = backend.fixtures().scratch.join("garbage.tar");
    std::fs::write(&garbage, b"not an archive").expect("writing garbage");
    let imported = within("import", runtime.import(&garbage)).await;
    assert!(matches!(imported, Err(Error::Invalid(_))), "{imported:?}");
    cleanup(runtime.as_ref(), &bad.id).await;
    cleanup(runtime.as_ref(), &config.id).await;
}
