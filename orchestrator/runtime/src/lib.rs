//! The container runtime as the node agent sees it: images, containers and their tasks,
//! and task events. containerd implements it (`slipway-runtime-containerd`); tests wrap it
//! in [`faults::FaultyRuntime`] to see the agent survive a runtime that fails.
//!
//! Processes run in a container either to completion with their output in a file
//! ([`Runtime::exec`], for probes and hooks) or attached to the caller's streams, with a
//! terminal if asked ([`Runtime::exec_attached`], for `kubectl exec`). [`Runtime::stats`]
//! reads what a running task uses, for the agent's usage summary.
//!
//! The trait speaks OCI terms (an image name, a runtime spec as JSON, a log URI), never
//! Kubernetes objects: turning a pod into containers is the agent's business.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod faults;
pub mod reference;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;

/// Every label the agent puts on a container starts with this, so the agent can tell its
/// own containers from anything else in the namespace.
pub const LABEL_PREFIX: &str = "slipway.dev/";

/// What went wrong talking to the runtime, classified so callers can decide without
/// reading messages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing asked for does not exist (image, container, task, process).
    #[error("not found: {0}")]
    NotFound(String),
    /// Something with that id already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request is wrong and would fail again (bad archive, bad spec, OCI runtime
    /// refused to create the container: the message says why).
    #[error("{0}")]
    Invalid(String),
    /// The runtime, or a registry it pulls from, could not be reached or did not answer in
    /// time; worth retrying.
    #[error("container runtime unavailable: {0}")]
    Unavailable(String),
    /// A registry refused a pull: no credentials where it wants some, or credentials it
    /// rejects. The message names the image and says which (`pull access denied for
    /// 127.0.0.1:5000/app:1: authentication required`); it never holds a password.
    #[error("{0}")]
    Unauthorized(String),
    /// Anything else the runtime reported.
    #[error("container runtime: {0}")]
    Other(String),
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An image the runtime holds, unpacked and ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Its full reference, e.g. `docker.io/library/busybox:latest` or `slipway.local/web:1`.
    pub name: String,
    /// Content digest of its manifest (`sha256:…`): what `imageID` reports.
    pub digest: String,
    /// Bytes of its compressed content (manifest, config, layers).
    pub size: u64,
    /// The process defaults from its config.
    pub config: ImageConfig,
}

/// A user name and password for a registry, as a `kubernetes.io/dockerconfigjson` Secret
/// holds them ([`reference::credentials_for`] picks them out).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

// By hand, so the password never reaches a log line.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The parts of an OCI image config a container's process starts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir`, empty when unset.
    pub working_dir: String,
    /// `User` (`uid`, `uid:gid`, or a name), empty when unset.
    pub user: String,
}

/// A container to create: an image's root filesystem plus an OCI runtime spec.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerConfig {
    /// Unique within the runtime namespace; never reused for another attempt.
    pub id: String,
    /// The image name, as [`Image::name`]; it must be present.
    pub image: String,
    /// Labels to find it by again (after an agent restart, say).
    pub labels: BTreeMap<String, String>,
    /// The OCI runtime spec (`config.json`), with `root.path` left to the runtime.
    pub spec: serde_json::Value,
    /// Containers with the same group share one shim process (one per pod).
    pub group: Option<String>,
}

/// Where a task's stdout and stderr go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Discard.
    Null,
    /// Appended to this file by the shim, both streams interleaved.
    File(std::path::PathBuf),
    /// A logger binary the shim runs with the streams on fds 3 and 4 (containerd's
    /// `binary://` scheme), given `args` as `key value` pairs.
    Binary {
        /// Absolute path of the logger.
        path: std::path::PathBuf,
        /// Passed on as arguments.
        args: BTreeMap<String, String>,
    },
}

/// The state of a container's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// Created but not started.
    Created,
    /// Its process runs.
    Running,
    /// Its process has exited; the task remains until deleted.
    Stopped,
    /// Frozen.
    Paused,
    /// The runtime does not know.
    Unknown,
}

/// A container the runtime holds, with its task if it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    /// Its id.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its image name.
    pub image: String,
    /// Its task, if one was created and not yet deleted.
    pub task: Option<Task>,
}

/// A container's task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Its state.
    pub status: TaskStatus,
    /// Its process id on the host (0 when it has none).
    pub pid: u32,
    /// Exit status, once stopped.
    pub exit: Option<Exit>,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Its status: the exit code, or 128 + the signal that killed it.
    pub status: u32,
    /// When it ended.
    pub at: SystemTime,
}

/// Something that happened to a task, as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A task's or exec'd process's process exited. `process` is the container id for the
    /// task's own process, or the exec id.
    Exit {
        /// The container.
        container: String,
        /// The process that exited.
        process: String,
        /// How.
        exit: Exit,
    },
    /// A container hit its memory limit and the kernel killed a process in it.
    Oom {
        /// The container.
        container: String,
    },
    /// The event stream broke and was opened again: events in between may be lost, so
    /// whoever listens must look at the runtime's state afresh.
    Resync,
}

/// What a container's running task uses, read at one moment ([`Runtime::stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// CPU time its processes have used since it started, in nanoseconds. Cumulative: a
    /// rate needs two readings.
    pub cpu_nanos: u64,
    /// Memory charged to it, in bytes, page cache included.
    pub memory_usage_bytes: u64,
    /// Its usage less the inactive file cache, in bytes: what the kernel cannot reclaim
    /// under pressure, as cAdvisor and the kubelet compute it (what `kubectl top` shows).
    pub memory_working_set_bytes: u64,
    /// When it was read.
    pub at: SystemTime,
}

/// A process to run inside a running container (a probe, `kubectl exec`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExecConfig {
    /// Unique among the container's processes.
    pub id: String,
    /// The OCI process spec (`args`, `env`, `cwd`, `user`, ...).
    pub process: serde_json::Value,
    /// Where its stdout and stderr go (a file the caller reads afterwards).
    pub output: Option<std::path::PathBuf>,
}

/// A process to run inside a running container with its standard streams attached
/// (`kubectl exec`), as [`Runtime::exec_attached`] starts it.
#[derive(Clone, Debug, PartialEq)]
pub struct AttachedExec {
    /// Unique among the container's processes.
    pub id: String,
    /// The OCI process spec (`args`, `env`, `cwd`, `user`, ...); `terminal` is set from
    /// [`AttachedExec::tty`].
    pub process: serde_json::Value,
    /// Whether the caller writes the process's stdin; without it stdin is empty.
    pub stdin: bool,
    /// Whether the caller reads stdout; without it stdout is discarded.
    pub stdout: bool,
    /// Whether the caller reads stderr; ignored with a terminal, which has one output.
    pub stderr: bool,
    /// Whether the process gets a terminal (stdin, stdout and stderr all on it).
    pub tty: bool,
}

/// A running process started by [`Runtime::exec_attached`]: its streams, and the handle
/// that resizes, signals and waits for it.
pub struct Attached {
    /// The process's stdin, if asked for. Dropping it and then calling
    /// [`AttachedProcess::close_stdin`] ends the process's input.
    pub stdin: Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>,
    /// The process's stdout (with a terminal: everything it prints), if asked for; it
    /// ends once the process and every child holding it have exited.
    pub stdout: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    /// The process's stderr, if asked for and there is no terminal.
    pub stderr: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    /// The process itself.
    pub process: Box<dyn AttachedProcess>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish_non_exhaustive()
    }
}

/// The handle of a process started by [`Runtime::exec_attached`].
#[async_trait]
pub trait AttachedProcess: Send + Sync {
    /// Sets the size of the process's terminal; an error without one.
    async fn resize(&self, width: u16, height: u16) -> Result<()>;
    /// Ends the process's stdin (once the caller's writer is dropped, the process reads
    /// end of file). Closing it again is not an error.
    async fn close_stdin(&self) -> Result<()>;
    /// Sends a signal to the process; one that already finished is not an error.
    async fn kill(&self, signal: u32) -> Result<()>;
    /// Waits until the process exits, then removes it from the runtime. Call it once,
    /// whatever happened before: it is what frees the process's resources.
    async fn wait(&self) -> Result<Exit>;
}

/// The container runtime.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The runtime's name and version, e.g. `containerd://1.6.20`.
    async fn version(&self) -> Result<String>;

    /// Loads every image in an OCI image-layout or `docker save` archive (gzip or not)
    /// and unpacks it; images already present are updated in place.
    async fn import(&self, archive: &Path) -> Result<Vec<Image>>;
    /// Pulls an image from its registry and unpacks it, as `import` does an archive: the
    /// manifest (an index resolved to linux on this machine's architecture), its config and
    /// layers, then the record under the [normalized](reference::normalize) name, which is
    /// updated in place if present. Blobs the runtime already holds are not downloaded
    /// again. `auth` is sent only if the registry asks for it.
    ///
    /// Errors: [`Error::Unavailable`] when the registry cannot be reached or answers with
    /// a server error; [`Error::Unauthorized`] when it wants credentials or rejects them;
    /// [`Error::NotFound`] when it does not know the repository or tag; [`Error::Invalid`]
    /// for a malformed reference or content the runtime cannot use.
    async fn pull(&self, reference: &str, auth: Option<&Credentials>) -> Result<Image>;
    /// The image of that name, if present.
    async fn image(&self, name: &str) -> Result<Option<Image>>;
    /// Every image present.
    async fn images(&self) -> Result<Vec<Image>>;
    /// Forgets an image; its content goes once nothing uses it. Removing an image that is
    /// not there is not an error.
    async fn remove_image(&self, name: &str) -> Result<()>;

    /// Creates a container (its writable snapshot and its record); no process yet.
    async fn create(&self, config: &ContainerConfig) -> Result<()>;
    /// Creates and starts the container's task, returning its host pid. A task left by an
    /// earlier attempt that is not running is replaced; a running one is
    /// [`Error::AlreadyExists`].
    async fn start(&self, id: &str, log: &LogTarget) -> Result<u32>;
    /// Sends a signal to the task's process (`all`: to every process of the container).
    /// A process that already finished is not an error; a container that does not exist
    /// is [`Error::NotFound`].
    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()>;
    /// Waits until the task's process exits.
    async fn wait(&self, id: &str) -> Result<Exit>;
    /// Removes the container: kills and deletes its task if it has one, then the record,
    /// then its snapshot. Removing what is already gone is not an error.
    async fn delete(&self, id: &str) -> Result<()>;
    /// Every container of this runtime namespace, with its task.
    async fn list(&self) -> Result<Vec<Container>>;
    /// Runs a process in a running container and waits for it, up to `timeout`; on
    /// timeout the process is killed and [`Error::Unavailable`] returned.
    async fn exec(
        &self,
        container: &str,
        exec: &ExecConfig,
        timeout: std::time::Duration,
    ) -> Result<Exit>;
    /// Starts a process in a running container with the streams `exec` asks for attached
    /// to the caller, and returns at once. A process that cannot start (no such binary,
    /// say) is [`Error::Invalid`] with the runtime's message; a container that is not
    /// running is [`Error::NotFound`].
    async fn exec_attached(&self, container: &str, exec: &AttachedExec) -> Result<Attached>;
    /// What the container's task uses now. A container that does not exist, or has no
    /// task (never started, or deleted), is [`Error::NotFound`]; a task that exited and
    /// is not yet deleted may still give the figures of its last moments.
    async fn stats(&self, id: &str) -> Result<Stats>;

    /// Task events of this namespace from now on. The stream outlives runtime restarts:
    /// after a reconnection it yields [`Event::Resync`]. It ends only when the receiver
    /// is dropped.
    async fn events(&self) -> Result<tokio::sync::mpsc::Receiver<Event>>;
}
