//! Sorting etcd-client's errors into the store's typed errors.
//!
//! etcd reports compaction, future revisions and missing leases as gRPC statuses whose only
//! distinguishing mark is the message text (`rpctypes` in etcd's source), so those are
//! matched by message; everything else goes by status code.

use slipway_store::Error;
use tonic::Code;

/// What an etcd error means for the store; the caller adds the context the error lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// "mvcc: required revision has been compacted".
    Compacted,
    /// "mvcc: required revision is a future revision".
    FutureRevision,
    /// "requested lease not found", or a keep-alive answered with TTL 0.
    LeaseNotFound,
    /// etcd is unreachable, has no leader, is overloaded or timed out: worth a retry.
    Unavailable,
    /// Anything else.
    Internal,
}

pub(crate) fn kind(err: &etcd_client::Error) -> Kind {
    use etcd_client::Error as E;
    match err {
        E::GRpcStatus(status) => {
            let message = status.message();
            if message.contains("required revision has been compacted") {
                Kind::Compacted
            } else if message.contains("required revision is a future revision") {
                Kind::FutureRevision
            } else if message.contains("requested lease not found") {
                Kind::LeaseNotFound
            } else {
                match status.code() {
                    // Cancelled is also how tonic reports the client's own request timeout.
                    Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Cancelled
                    | Code::ResourceExhausted
                    | Code::Aborted => Kind::Unavailable,
                    // A connection that broke under a stream surfaces as Unknown.
                    _ if transport_failure(status) => Kind::Unavailable,
                    _ => Kind::Internal,
                }
            }
        }
        // etcd-client's keep-alive turns a zero TTL, etcd's answer for an unknown lease,
        // into this message.
        E::LeaseKeepAliveError(message) if message.contains("lease not found") => {
            Kind::LeaseNotFound
        }
        E::TransportError(_) | E::IoError(_) => Kind::Unavailable,
        _ => Kind::Internal,
    }
}

/// Whether tonic made `status` from a local transport failure (a broken connection, an h2
/// reset): those carry their cause, while statuses etcd sent arrive without one.
fn transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// The store error for an etcd error that needs no context.
pub(crate) fn plain(err: etcd_client::Error) -> Error {
    match kind(&err) {
        Kind::Unavailable => Error::Unavailable(Box::new(err)),
        _ => Error::Internal(Box::new(err)),
    }
}

/// An internal error for an answer etcd should never give.
pub(crate) fn unexpected(what: impl Into<String>) -> Error {
    Error::Internal(what.into().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, message: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::new(code, message))
    }

    #[test]
    fn messages_and_codes_map_to_kinds() {
        let cases = [
            (
                status(
                    Code::OutOfRange,
                    "etcdserver: mvcc: required revision has been compacted",
                ),
                Kind::Compacted,
            ),
            (
                status(
                    Code::OutOfRange,
                    "etcdserver: mvcc: required revision is a future revision",
                ),
                Kind::FutureRevision,
            ),
            (
                status(Code::NotFound, "etcdserver: requested lease not found"),
                Kind::LeaseNotFound,
            ),
            (
                status(Code::Unavailable, "etcdserver: leader changed"),
                Kind::Unavailable,
            ),
            (
                status(Code::InvalidArgument, "etcdserver: key is not provided"),
                Kind::Internal,
            ),
            (
                etcd_client::Error::LeaseKeepAliveError("lease not found".to_owned()),
                Kind::LeaseNotFound,
            ),
            (
                etcd_client::Error::IoError(std::io::ErrorKind::ConnectionRefused.into()),
                Kind::Unavailable,
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(kind(&err), expected, "{err}");
        }
        let broken = tonic::Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::BrokenPipe,
        )));
        assert_eq!(
            kind(&etcd_client::Error::GRpcStatus(broken)),
            Kind::Unavailable
        );
        assert!(plain(status(Code::Unavailable, "down")).is_retryable());
        assert!(!plain(status(Code::Internal, "bug")).is_retryable());
    }
}
