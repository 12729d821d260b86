//! Container log files: the logger that writes them and the reader behind `pods/log`.
//!
//! # Format
//!
//! Files are in the CRI log format that containerd's CRI plugin writes and kubelet reads
//! ([`format`]): one record a line, `<timestamp> <stdout|stderr> <F|P> <text>\n`, the
//! timestamp in UTC with nine fraction digits. A line longer than [`format::MAX_LINE`] is
//! cut into `P` (partial) records and a last `F` one; text a stream leaves unterminated
//! when it ends is a last `P` record. Bytes pass through as they are, UTF-8 or not.
//!
//! # Writing: the logger
//!
//! The agent starts each container with a `binary` log target whose path is the `slipway`
//! binary and whose `args` are [`logger_uri_args`] (`slipway-logger` with an empty value,
//! `path`, `max-size`, `max-files`). containerd's shim then runs
//! `slipway <key> <value> …` with the container's stdout on fd 3, stderr on fd 4, a ready
//! pipe on fd 5 and `CONTAINER_ID` set. The binary's `main` first asks
//! [`logger_invocation`]; when it answers, `main` runs [`run_logger`] and exits (non-zero
//! on an error), before it opens anything else. The logger creates the log file, closes
//! fd 5 (only then does containerd start the container), and writes records until both
//! streams end, rotating the file by size (`path` → `path.1` → … → `path.<max-files - 1>`).
//! It is the shim's child, so the agent can restart without losing output.
//!
//! # Paths and `--previous`
//!
//! Each container has a log directory (the agent uses `<pod dir>/logs/<container name>`);
//! each run of the container writes its own log set there, named by the restart count
//! the run has in the pod status: [`log_path`]`(dir, n)` is `<dir>/<n>.log`, and its
//! rotations are `<n>.log.1`, `<n>.log.2`, …. So nothing is ever moved aside: the log
//! `kubectl logs --previous` wants is the set of the run before,
//! [`previous_log_path`]`(dir, n)`, and the agent keeps the two newest sets and deletes
//! older ones with [`remove_log_set`] (a name's part before the first `.` is its run).
//!
//! # Reading
//!
//! [`read`] streams a log set as `kubectl logs` shows it, with the options of `pods/log`:
//! the text of each line, stdout and stderr in the order their lines ended, partial records
//! joined into their line, from the oldest rotation to the current file; with `follow` it
//! waits for more, through rotations, until the caller says the container has stopped.

pub mod format;

mod files;
mod logger;
mod read;

use std::path::PathBuf;

pub use files::{log_path, log_set, previous_log_path, remove_log_set};
pub use logger::{
    DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, LOGGER_MARKER, LoggerArgs, logger_invocation,
    logger_uri_args, run_logger,
};
pub use read::{ReadOptions, read};

/// What can go wrong writing or reading logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file (or a stream, named by its `/proc` path) could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No file of the log set exists: the container never started, or its logs are gone.
    #[error("no log at {}", .0.display())]
    NotFound(PathBuf),
    /// The logger's arguments cannot be used.
    #[error("bad logger arguments: {0}")]
    Invocation(String),
}
