//! Test support with real processes: each helper starts its process on loopback ports and
//! stops it, by PID, when dropped, so a failed test leaves nothing running ([`EtcdServer`],
//! [`Registry`]). [`image`] builds container images for runtime tests from the host's
//! busybox; [`http`] makes one HTTP exchange with the `Host` a test chooses; [`process`]
//! stops a test's child processes as a service manager would.

pub mod etcd;
pub mod http;
pub mod image;
mod port;
pub mod process;
pub mod registry;

pub use etcd::EtcdServer;
pub use image::{ImageBuilder, host_arch};
pub use port::free_port;
pub use registry::{Pushed, Registry};

/// What can go wrong while starting a test process.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The etcd binary is not installed.
    #[error("{path} not found: install etcd-server (apt-get install etcd-server)")]
    EtcdMissing {
        /// Where the binary was looked for.
        path: String,
    },
    /// The registry binary is not installed.
    #[error("{path} not found: install docker-registry (apt-get install docker-registry)")]
    RegistryMissing {
        /// Where the binary was looked for.
        path: String,
    },
    /// The registry exited before it answered, on every attempt.
    #[error(
        "docker-registry exited with {status} before answering ({attempts} attempts); log tail:\n{log_tail}"
    )]
    RegistryExited {
        /// The last exit status.
        status: std::process::ExitStatus,
        /// How many ports were tried.
        attempts: u32,
        /// The end of the registry's log from the last attempt.
        log_tail: String,
    },
    /// The registry kept running but did not answer in time.
    #[error("docker-registry did not answer within {waited:?}; log tail:\n{log_tail}")]
    RegistryNotReady {
        /// How long the start waited.
        waited: std::time::Duration,
        /// The end of the registry's log.
        log_tail: String,
    },
    /// The registry answered a push request with an unexpected status.
    #[error("the registry refused {request}:\n{response}")]
    RegistryRefused {
        /// What was asked.
        request: String,
        /// Its answer, head and (the start of the) body.
        response: String,
    },
    /// busybox-static is not installed, so no test image can be built.
    #[error("{path} not found: install busybox-static (apt-get install busybox-static)")]
    BusyboxMissing {
        /// Where busybox was looked for.
        path: String,
    },
    /// A file added to a test image does not have an absolute, plain path.
    #[error("image file path {path:?} must be absolute, without empty or `..` parts")]
    BadImageFile {
        /// The path given.
        path: String,
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
    /// etcd exited before it answered, on every attempt.
    #[error(
        "etcd exited with {status} before answering ({attempts} attempts); log tail:\n{log_tail}"
    )]
    EtcdExited {
        /// The last exit status.
        status: std::process::ExitStatus,
        /// How many port pairs were tried.
        attempts: u32,
        /// The end of etcd's log from the last attempt.
        log_tail: String,
    },
    /// etcd kept running but did not report healthy in time.
    #[error("etcd did not become healthy within {waited:?}; log tail:\n{log_tail}")]
    EtcdNotReady {
        /// How long the start waited.
        waited: std::time::Duration,
        /// The end of etcd's log.
        log_tail: String,
    },
}

impl TestkitError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
        let context = context.into();
        move |source| TestkitError::Io { context, source }
    }
}
