//! A private containerd for one data directory: its own config, root, state and sockets,
//! started and stopped by PID. Stopping it leaves tasks running, as their shims are
//! processes of their own; a containerd started again on the same directory finds them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How long containerd may take to answer after it is spawned.
const READY: Duration = Duration::from_secs(30);
/// How long containerd may take to exit after SIGTERM before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// What can go wrong starting containerd.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The socket path would not fit a Unix socket address.
    #[error(
        "socket path {path} is {len} bytes, over the {MAX_SOCKET_PATH}-byte limit of Unix sockets: use a shorter data directory"
    )]
    SocketPathTooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// An I/O operation around the process failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// containerd exited before it answered.
    #[error("containerd exited with {status} before answering; log tail:\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its log.
        log_tail: String,
    },
    /// A containerd already answers on this directory's socket.
    #[error("a containerd already answers on {socket}; stop it first")]
    AlreadyRunning {
        /// Its socket.
        socket: PathBuf,
    },
    /// containerd kept running but never answered.
    #[error("containerd did not answer within {waited:?}; log tail:\n{log_tail}")]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SupervisorError {
    let context = context.into();
    move |source| SupervisorError::Io { context, source }
}

/// A running containerd, stopped by PID on [`Containerd::stop`] or when dropped.
pub struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl Containerd {
    /// Starts containerd for `dir` (created if missing): `dir/config.toml`, `dir/root`,
    /// `dir/state`, `dir/containerd.sock` (gRPC), `dir/ttrpc.sock`, and its log in
    /// `dir/containerd.log`; returns once it answers `version.Version`.
    pub async fn start(dir: &Path) -> Result<Self, SupervisorError> {
        let dir = std::path::absolute(dir).map_err(io(format!("resolving {}", dir.display())))?;
        let socket = dir.join("containerd.sock");
        let ttrpc = dir.join("ttrpc.sock");
        for path in [&socket, &ttrpc] {
            let len = path.as_os_str().len();
            if len > MAX_SOCKET_PATH {
                return Err(SupervisorError::SocketPathTooLong {
                    path: path.clone(),
                    len,
                });
            }
        }
        if answers(&socket).await {
            return Err(SupervisorError::AlreadyRunning { socket });
        }
        for sub in ["root", "state", "opt", "runc"] {
            let path = dir.join(sub);
            tokio::fs::create_dir_all(&path)
                .await
                .map_err(io(format!("creating {}", path.display())))?;
        }
        let config = dir.join("config.toml");
        tokio::fs::write(&config, config_toml(&dir, &socket, &ttrpc))
            .await
            .map_err(io(format!("writing {}", config.display())))?;
        let log_path = dir.join("containerd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("opening {}", log_path.display())))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("spawning containerd (is it installed?)"))?;
        let mut containerd = Containerd {
            dir,
            socket,
            child: Some(child),
        };
        containerd.wait_ready().await?;
        Ok(containerd)
    }

    /// The gRPC socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A runc state root inside the data directory, for [`crate::ContainerdRuntime::connect`].
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    /// containerd's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    async fn wait_ready(&mut self) -> Result<(), SupervisorError> {
        let deadline = tokio::time::Instant::now() + READY;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().map_err(io("checking on containerd"))?
            {
                self.child = None;
                return Err(SupervisorError::Exited {
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if answers(&self.socket).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                self.kill_now();
                return Err(SupervisorError::NotReady {
                    waited: READY,
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(POLL * 5).await;
        }
    }

    /// Stops containerd: SIGTERM, then SIGKILL if it has not exited within a grace period.
    pub async fn stop(mut self) -> Result<(), SupervisorError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw)
        {
            let _ = kill_process(pid, Signal::TERM);
        }
        match tokio::time::timeout(GRACE, child.wait()).await {
            Ok(status) => status.map(drop).map_err(io("waiting for containerd")),
            Err(_) => {
                child.kill().await.map_err(io("killing containerd"))?;
                Ok(())
            }
        }
    }

    /// SIGKILL and reap, for when it cannot be waited for asynchronously.
    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let deadline = std::time::Instant::now() + GRACE;
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Whether a containerd answers `version.Version` on `socket`.
async fn answers(socket: &Path) -> bool {
    if !socket.exists() {
        return false;
    }
    let asked = async {
        let channel = containerd_client::connect(socket).await.ok()?;
        let mut client =
            containerd_client::services::v1::version_client::VersionClient::new(channel);
        client.version(()).await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), asked).await,
        Ok(Some(_))
    )
}

impl Drop for Containerd {
    /// Drop cannot await: SIGTERM, poll for the exit for the grace period, then SIGKILL.
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Some(pid) = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw)
        {
            let _ = kill_process(pid, Signal::TERM);
        }
        let deadline = std::time::Instant::now() + GRACE;
        while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        self.kill_now();
    }
}

/// containerd's config: everything under `dir`, the CRI plugin off (we speak plain
/// containerd), and the `opt` plugin's directory moved off `/opt/containerd`.
fn config_toml(dir: &Path, socket: &Path, ttrpc: &Path) -> String {
    let quote = |path: &Path| {
        serde_json::to_string(&path.to_string_lossy()).unwrap_or_else(|_| "\"\"".to_owned())
    };
    format!(
        "version = 2\n\
         root = {root}\n\
         state = {state}\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         \n\
         [grpc]\n  address = {socket}\n\
         \n\
         [ttrpc]\n  address = {ttrpc}\n\
         \n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt}\n",
        root = quote(&dir.join("root")),
        state = quote(&dir.join("state")),
        socket = quote(socket),
        ttrpc = quote(ttrpc),
        opt = quote(&dir.join("opt")),
    )
}
