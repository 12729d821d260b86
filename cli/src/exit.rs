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

    /// Classifies what the API server answered, or that it could not be reached, naming
    /// what was being done (`doing`, empty when the server's own message names it):
    ///
    /// | answer | exit | why |
    /// | --- | --- | --- |
    /// | 401 | 2 | the credentials are the user's input: "the server refused the credentials" |
    /// | 400, 404, 422 | 2 | the user named something missing or sent something invalid |
    /// | 403, 409, 5xx, any other status | 1 | a well-formed request the server would not do now: a 409 (exists, another manager's field, a lost race) may pass later or forced |
    /// | no answer (connection refused or reset, TLS, timeout) | 3 | |
    /// | anything else the client failed at | 1 | |
    pub(crate) fn from_kube(doing: &str, e: kube::Error) -> Self {
        let named = |message: &str| {
            if doing.is_empty() {
                message.to_owned()
            } else {
                format!("{doing}: {message}")
            }
        };
        match e {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() {
                    named(&format!(
                        "the server answered {} {}",
                        status.code, status.reason
                    ))
                } else {
                    named(&status.message)
                };
                match status.code {
                    401 => Failure::bad_input("the server refused the credentials"),
                    400 | 404 | 422 => Failure::bad_input(message),
                    _ => Failure::failed(message),
                }
            }
            // kube-rs's transport: hyper's own errors, and the connector's (refused,
            // TLS handshake, timeout) boxed by the tower stack as `Service`.
            kube::Error::HyperError(_)
            | kube::Error::Service(_)
            | kube::Error::ReadEvents(_)
            | kube::Error::UpgradeConnection(
                kube::client::UpgradeConnectionError::GetPendingUpgrade(_),
            ) => Failure::unreachable(format!("cannot reach the API server: {}", with_cause(&e))),
            other => Failure::failed(named(&other.to_string())),
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

/// An error's message with its innermost cause appended: the transport's outer errors
/// ("client error (Connect)") say where it failed, only the innermost says why
/// ("Connection refused"). Left out when the message already holds it.
fn with_cause(e: &dyn std::error::Error) -> String {
    let shown = e.to_string();
    // Bounded, so a source chain that loops back on itself cannot hang the report.
    let innermost = std::iter::successors(e.source(), |s| s.source())
        .take(32)
        .last();
    match innermost.map(ToString::to_string) {
        Some(cause) if !cause.is_empty() && !shown.contains(&cause) => format!("{shown}: {cause}"),
        _ => shown,
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

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "Reason")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn kube_errors_map_to_documented_exit_codes() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cases = [
            (status(400, "bad body"), 2, "bad body"),
            (
                status(401, "Unauthorized"),
                2,
                "the server refused the credentials",
            ),
            (status(403, "pods is forbidden"), 1, "pods is forbidden"),
            (
                status(404, "pods \"x\" not found"),
                2,
                "pods \"x\" not found",
            ),
            (status(409, "squad web exists"), 1, "squad web exists"),
            (status(422, "bad quota"), 2, "bad quota"),
            (status(500, "boom"), 1, "boom"),
            (status(503, ""), 1, "the server answered 503 Reason"),
            (
                kube::Error::Service(Box::new(refused)),
                3,
                "cannot reach the API server: ServiceError: connection refused",
            ),
            (
                kube::Error::ReadEvents(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
                3,
                "cannot reach the API server: Error reading events stream: connection reset",
            ),
            (
                kube::Error::LinesCodecMaxLineLengthExceeded,
                1,
                "Error finding newline character",
            ),
        ];
        for (error, code, message) in cases {
            let failure = Failure::from_kube("", error);
            assert_eq!((failure.code, failure.message.as_str()), (code, message));
        }
        // A transport error says why at its innermost cause.
        #[derive(Debug)]
        struct Layer(&'static str, Box<dyn std::error::Error + Send + Sync>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.1)
            }
        }
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let nested = Layer(
            "client error (Connect)",
            Box::new(Layer("tcp connect error", Box::new(refused))),
        );
        let failure = Failure::from_kube("", kube::Error::Service(Box::new(nested)));
        assert_eq!(
            (failure.code, failure.message.as_str()),
            (
                3,
                "cannot reach the API server: ServiceError: client error (Connect): \
                 Connection refused (os error 111)"
            )
        );
        let named = Failure::from_kube("pod/web/main", status(404, "pods \"web\" not found"));
        assert_eq!(named.message, "pod/web/main: pods \"web\" not found");
        let refused = Failure::from_kube("squad web", status(401, "Unauthorized"));
        assert_eq!(refused.message, "the server refused the credentials");
    }

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
