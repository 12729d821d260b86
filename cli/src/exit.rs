//! How a command fails: one line for the user, optional detail after it, and the documented
//! exit code (DESIGN: 1 failed, 2 bad usage or input, 3 cannot reach the server or store).

use std::fmt::Display;
use std::process::ExitCode;

use slipway_store::Error as StoreError;

/// A command's failure, already worded for the user.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
    detail: Option<String>,
}

impl Failure {
    /// The operation failed (exit code 1).
    pub(crate) fn failed(message: impl Display) -> Self {
        Failure {
            code: 1,
            message: message.to_string(),
            detail: None,
        }
    }

    /// The input was bad (exit code 2).
    pub(crate) fn bad_input(message: impl Display) -> Self {
        Failure {
            code: 2,
            message: message.to_string(),
            detail: None,
        }
    }

    /// The server or store could not be reached (exit code 3).
    pub(crate) fn unreachable(message: impl Display) -> Self {
        Failure {
            code: 3,
            message: message.to_string(),
            detail: None,
        }
    }

    /// Adds detail printed after the first line.
    pub(crate) fn with_detail(mut self, detail: impl Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// Classifies a store error for the user, naming what was being done.
    pub(crate) fn from_store(doing: &str, e: StoreError) -> Self {
        let message = format!("{doing}: {e}");
        match e {
            StoreError::Unavailable(_) => Failure::unreachable(message),
            StoreError::Locked { .. } => Failure::failed(message)
                .with_detail("is `slipway up` or `slipway server` already running on it?"),
            StoreError::InvalidKey { .. } | StoreError::TooLarge { .. } => {
                Failure::bad_input(message)
            }
            _ => Failure::failed(message),
        }
    }

    /// Prints the failure on stderr and returns its exit code.
    pub(crate) fn report(self) -> ExitCode {
        // A closed stderr loses the message but must not turn a failure into a panic.
        use std::io::Write as _;
        let mut stderr = std::io::stderr();
        let _ = writeln!(stderr, "error: {}", self.message);
        if let Some(detail) = self.detail {
            let _ = writeln!(stderr, "{detail}");
        }
        ExitCode::from(self.code)
    }
}

#[cfg(test)]
impl Failure {
    /// The exit code, for tests of how failures are classified.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }

    /// The first line, for tests of how failures are worded.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_documented_exit_codes() {
        let cases = [
            (StoreError::Unavailable("connection refused".into()), 3),
            (StoreError::Locked { path: "/x".into() }, 1),
            (
                StoreError::InvalidKey {
                    key: "a b".into(),
                    reason: "spaces",
                },
                2,
            ),
            (StoreError::Internal("disk I/O error".into()), 1),
        ];
        for (error, code) in cases {
            let shown = error.to_string();
            let failure = Failure::from_store("opening store", error);
            assert_eq!(failure.code, code, "{shown}");
            assert!(
                failure.message.starts_with("opening store: "),
                "{}",
                failure.message
            );
            assert!(
                !failure.message.contains('\n'),
                "one line: {}",
                failure.message
            );
        }
    }
}
