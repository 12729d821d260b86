//! One containerd connection: the namespace and lease headers, a deadline on every call,
//! and gRPC statuses turned into the runtime's error classes.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{CreateRequest, DeleteRequest};
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Response, Status};
use slipway_runtime::{Error, Result};

/// The snapshotter every image is unpacked with and every container runs on.
pub(crate) const SNAPSHOTTER: &str = "overlayfs";

/// The deadline of a call that only touches containerd's metadata.
pub(crate) const QUICK: Duration = Duration::from_secs(15);

/// A connection to one containerd, bound to a namespace.
pub(crate) struct Conn {
    channel: Channel,
    namespace: MetadataValue<containerd_client::tonic::metadata::Ascii>,
    namespace_name: String,
}

impl Conn {
    pub(crate) async fn connect(socket: &Path, namespace: &str) -> Result<Self> {
        let valid = !namespace.is_empty()
            && namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        let header = MetadataValue::try_from(namespace)
            .ok()
            .filter(|_| valid)
            .ok_or_else(|| Error::Invalid(format!("invalid containerd namespace {namespace:?}")))?;
        let channel = tokio::time::timeout(QUICK, containerd_client::connect(socket))
            .await
            .map_err(|_| {
                Error::Unavailable(format!(
                    "connecting to {}: no answer within {QUICK:?}",
                    socket.display()
                ))
            })?
            .map_err(|e| Error::Unavailable(format!("connecting to {}: {e}", socket.display())))?;
        Ok(Conn {
            channel,
            namespace: header,
            namespace_name: namespace.to_owned(),
        })
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace_name
    }

    /// A call named `what` (for error messages) with the default deadline.
    pub(crate) fn call(&self, what: &'static str) -> Call<'_> {
        Call {
            conn: self,
            what,
            deadline: QUICK,
            lease: None,
        }
    }

    pub(crate) fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    pub(crate) fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
    }

    pub(crate) fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel.clone())
    }

    pub(crate) fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel.clone())
    }

    pub(crate) fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }

    pub(crate) fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }

    pub(crate) fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    pub(crate) async fn version(&self) -> Result<String> {
        let call = self.call("version.Version");
        let reply = call
            .run(VersionClient::new(self.channel.clone()).version(call.req(())))
            .await?;
        Ok(reply.version)
    }

    /// Creates a lease that protects what is written under it from garbage collection; it
    /// expires by itself after an hour in case we never get to delete it.
    pub(crate) async fn lease(&self, purpose: &str) -> Result<String> {
        let id = format!("slipway-{purpose}-{}", unique());
        let expire = SystemTime::now() + Duration::from_secs(3600);
        let labels = [("containerd.io/gc.expire".to_owned(), rfc3339(expire))].into();
        let call = self.call("leases.Create");
        call.run(
            LeasesClient::new(self.channel.clone()).create(call.req(CreateRequest {
                id: id.clone(),
                labels,
            })),
        )
        .await?;
        Ok(id)
    }

    /// Deletes a lease; what it protected is now held by the records that reference it.
    pub(crate) async fn drop_lease(&self, id: String) -> Result<()> {
        let call = self.call("leases.Delete");
        call.run(
            LeasesClient::new(self.channel.clone())
                .delete(call.req(DeleteRequest { id, sync: false })),
        )
        .await
        .map(drop)
    }
}

/// One gRPC call's headers and deadline.
pub(crate) struct Call<'a> {
    conn: &'a Conn,
    what: &'static str,
    deadline: Duration,
    lease: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub(crate) fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub(crate) fn lease(mut self, lease: &'a str) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The request with the namespace, lease and deadline headers.
    pub(crate) fn req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.deadline);
        let metadata = request.metadata_mut();
        metadata.insert("containerd-namespace", self.conn.namespace.clone());
        if let Some(lease) = self.lease.and_then(|l| MetadataValue::try_from(l).ok()) {
            metadata.insert("containerd-lease", lease);
        }
        request
    }

    /// The request for a stream that lives as long as it is read (an event subscription),
    /// which a deadline would cut off: only the namespace header.
    pub(crate) fn stream_req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("containerd-namespace", self.conn.namespace.clone());
        request
    }

    /// Awaits the call, bounded by the deadline on our side too (a server that never
    /// answers does not honour its own deadline).
    pub(crate) async fn run<T>(
        &self,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.deadline + Duration::from_secs(1), call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status_error(self.what, &status)),
            Err(_) => Err(self.timed_out()),
        }
    }

    pub(crate) fn timed_out(&self) -> Error {
        Error::Unavailable(format!(
            "{}: no answer within {:?}",
            self.what, self.deadline
        ))
    }

    pub(crate) fn error(&self, status: &Status) -> Error {
        status_error(self.what, status)
    }
}

/// Classifies a gRPC status. runc's refusals arrive as `Unknown` with runc's message, and
/// would fail again, so they count as invalid requests.
pub(crate) fn status_error(what: &str, status: &Status) -> Error {
    let message = format!("{what}: {}", status.message());
    match status.code() {
        Code::NotFound => Error::NotFound(message),
        Code::AlreadyExists => Error::AlreadyExists(message),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Error::Unavailable(message),
        Code::InvalidArgument | Code::FailedPrecondition => Error::Invalid(message),
        Code::Unknown if status.message().contains("OCI runtime") => Error::Invalid(message),
        _ => Error::Other(message),
    }
}

/// Treats "not found" as done, for steps that remove things.
pub(crate) fn gone_is_ok(result: Result<()>) -> Result<()> {
    match result {
        Err(Error::NotFound(_)) => Ok(()),
        other => other,
    }
}

/// A string unique within this process and, by the clock, across restarts.
pub(crate) fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{nanos}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn to_system_time(at: Option<&prost_types::Timestamp>) -> SystemTime {
    at.and_then(|t| {
        let secs = u64::try_from(t.seconds).ok()?;
        let nanos = u32::try_from(t.nanos).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
    })
    .unwrap_or(UNIX_EPOCH)
}

/// RFC 3339 in UTC, as containerd's `gc.expire` label wants it.
fn rfc3339(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::rfc3339;

    #[test]
    fn expiry_labels_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "2024-02-29T23:59:59Z"
        );
    }
}
