//! The demo `slipway up` sets up, so a new user sees the whole product at once: a squad
//! with quota, a two-service app (a web front end that calls an API by Service name) built
//! from a static binary this crate carries and packed into images here, and a repository
//! on a built-in fake GitHub whose pull requests `slipway demo pr` opens, pushes and closes.

use slipway_previews::cluster::ClusterError;

pub mod image;
pub mod manifests;

/// The demo app: a static executable, built from `app/main.rs` by `build.rs`.
pub const APP_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/demo-app"));

pub mod api;
pub mod github;
pub mod setup;

/// What can go wrong with the demo.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Its state file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its state file holds something else.
    #[error("{path} is not the demo's state: {message}")]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// What the parser said.
        message: String,
    },
    /// No pull request has the number.
    #[error("the demo repository has no pull request #{0}")]
    NoSuchPull(u64),
    /// The pull request is closed.
    #[error("pull request #{0} is closed")]
    Closed(u64),
    /// The system's random source failed.
    #[error("no random bytes: {0}")]
    Random(String),
    /// A request could not be made.
    #[error("{0}")]
    Request(String),
    /// The API answered with an error.
    #[error("the API: {0}")]
    Api(#[from] kube::Error),
    /// The app's manifests could not be applied.
    #[error("applying the app: {0}")]
    Apply(#[from] slipway_previews::cluster::ClusterError),
    /// Shut down before it was done.
    #[error("stopped before the demo was set up")]
    Cancelled,
}

impl Error {
    /// Whether trying again later may succeed: the API was busy, unavailable or unreachable.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api(kube::Error::Api(status))
            | Error::Apply(ClusterError::Api(kube::Error::Api(status))) => {
                status.code == 429 || status.code == 503 || status.code == 504
            }
            Error::Api(_) | Error::Apply(ClusterError::Api(_)) => true,
            _ => false,
        }
    }

    fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> Error {
        let status = kube::core::Status::failure("busy", "Busy").with_code(code);
        Error::Api(kube::Error::Api(status.boxed()))
    }

    #[test]
    fn only_a_busy_or_unreachable_api_is_tried_again() {
        assert!(api(503).is_transient());
        assert!(api(429).is_transient());
        assert!(!api(403).is_transient());
        assert!(!api(422).is_transient());
        assert!(!Error::NoSuchPull(1).is_transient());
        assert!(!Error::Cancelled.is_transient());
    }
}
