//! `kubectl port-forward`'s protocol (`portforward.k8s.io`) on a SPDY session, served as
//! the kubelet serves it (`pkg/kubelet/cri/streaming/portforward/httpstream.go`).
//!
//! For every local connection kubectl opens two streams with the headers `streamtype`
//! (`error`, then `data`), `port` and `requestid`. Streams are answered at once and paired
//! by request id (a client without request ids gets the kubelet's fallback: the error
//! stream's id, or the data stream's id minus 2). A complete pair dials the port through
//! the caller's [`Dial`] and copies bytes both ways: the client's FIN half-closes the
//! connection to the target, the target's end of file sends FIN, and the client's reset
//! (what kubectl sends once the target's side is done) ends the copy. A failure (dialing
//! or copying) is written as text on the error stream, which kubectl logs before closing
//! the whole port-forward, as it does with a real kubelet. The error stream is closed
//! (FIN) when the pair is done, which is how kubectl learns there was no error. A pair
//! still incomplete after [`PortForwardOptions::stream_creation_timeout`] is dropped with
//! a message on its error stream.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::session::{Error, IncomingStream, Session, Stream, StreamReader, StreamWriter};

/// The stream protocol of `kubectl port-forward`.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";

/// Connects to a port of the pod, e.g. on its loopback inside its network namespace.
pub trait Dial: Send + Sync + 'static {
    /// The connection to the pod's port.
    type Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to `port`. The error's text reaches the user through kubectl.
    fn dial(&self, port: u16) -> impl Future<Output = std::io::Result<Self::Conn>> + Send;
}

/// What a port-forward needs besides the connection and the dialer.
#[derive(Debug, Clone)]
pub struct PortForwardOptions {
    /// The pod as the kubelet names it in error messages (`name_namespace`).
    pub pod: String,
    /// The pod's UID, for the same messages.
    pub uid: String,
    /// How long the two streams of one forwarded connection may arrive apart; the
    /// kubelet's default is 30 seconds.
    pub stream_creation_timeout: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Error,
    Data,
}

struct Pair {
    error: Option<Stream>,
    data: Option<(u16, Stream)>,
    deadline: Instant,
}

/// Serves `kubectl port-forward` on an upgraded connection (see [`crate::negotiate`] and
/// [`crate::Negotiated::wrap`]) until the client goes away and every forwarded connection
/// is done, or until `shutdown`, which resets every stream and sends GOAWAY.
///
/// Errors are the session's: malformed SPDY or a failing connection. Failures of single
/// forwarded connections go to kubectl on their error streams and are not returned.
pub async fn serve_port_forward<S, D>(
    io: S,
    dial: D,
    options: PortForwardOptions,
    shutdown: CancellationToken,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: Dial,
{
    let mut session = Session::new(io);
    let dial = Arc::new(dial);
    let options = Arc::new(options);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut peer_gone = false;
    loop {
        let next_deadline = pairs.values().map(|pair| pair.deadline).min();
        tokio::select! {
            () = shutdown.cancelled() => {
                tasks.abort_all();
                session.close().await;
                return Ok(());
            }
            incoming = session.accept(), if !peer_gone => match incoming? {
                Some(stream) => {
                    if let Some((port, error, data)) = pair_up(stream, &mut pairs, &options).await {
                        tasks.spawn(forward(dial.clone(), options.clone(), port, error, data));
                    }
                }
                None => {
                    // The peer's streams are all reset; unpaired ones have nobody to wait for.
                    peer_gone = true;
                    pairs.clear();
                }
            },
            Some(joined) = tasks.join_next() => {
                if let Err(err) = joined {
                    tracing::warn!(error = %err, "a port-forward task failed");
                }
            }
            () = tokio::time::sleep_until(next_deadline.unwrap_or_else(Instant::now)), if next_deadline.is_some() => {
                let now = Instant::now();
                let expired: Vec<String> = pairs
                    .iter()
                    .filter(|(_, pair)| pair.deadline <= now)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in expired {
                    if let Some(pair) = pairs.remove(&id) {
                        tasks.spawn(time_out(id, pair));
                    }
                }
            }
        }
        if peer_gone && tasks.is_empty() {
            return Ok(());
        }
    }
}

/// Checks a new stream's headers, answers it and files it with its request; returns a
/// pair once both of its streams are there.
async fn pair_up(
    incoming: IncomingStream,
    pairs: &mut HashMap<String, Pair>,
    options: &PortForwardOptions,
) -> Option<(u16, Stream, Stream)> {
    let (port, kind) = match check(&incoming) {
        Ok(checked) => checked,
        Err(why) => {
            tracing::debug!(
                stream = incoming.id(),
                why,
                "refusing a port-forward stream"
            );
            let _ = incoming.refuse().await;
            return None;
        }
    };
    let request = request_id(&incoming, kind);
    let stream = incoming.accept().await.ok()?;
    let pair = pairs.entry(request.clone()).or_insert_with(|| Pair {
        error: None,
        data: None,
        deadline: Instant::now() + options.stream_creation_timeout,
    });
    let taken = match kind {
        Kind::Error if pair.error.is_none() => {
            pair.error = Some(stream);
            None
        }
        Kind::Data if pair.data.is_none() => {
            pair.data = Some((port, stream));
            None
        }
        Kind::Error => Some((stream, "error")),
        Kind::Data => Some((stream, "data")),
    };
    if let Some((duplicate, kind)) = taken {
        let (_, mut writer) = duplicate.split();
        let _ = writer.reset().await;
        if let Some(error) = &mut pair.error {
            let message = format!(
                "error processing stream for request {request}: {kind} stream already assigned"
            );
            let _ = error.writer().write(Bytes::from(message)).await;
        }
        return None;
    }
    if pair.error.is_some() && pair.data.is_some() {
        let pair = pairs.remove(&request)?;
        let (port, data) = pair.data?;
        return Some((port, pair.error?, data));
    }
    None
}

/// The stream's port and type, as the kubelet validates them.
fn check(incoming: &IncomingStream) -> Result<(u16, Kind), &'static str> {
    let headers = incoming.headers();
    let port = headers
        .get("port")
        .ok_or("the port header is required")?
        .to_str()
        .ok()
        .and_then(|port| port.parse::<u16>().ok())
        .ok_or("the port header is not a port")?;
    if port == 0 {
        return Err("the port must be > 0");
    }
    let kind = match headers.get("streamtype").map(|kind| kind.as_bytes()) {
        Some(b"error") => Kind::Error,
        Some(b"data") => Kind::Data,
        Some(_) => return Err("invalid stream type"),
        None => return Err("the streamType header is required"),
    };
    Ok((port, kind))
}

fn request_id(incoming: &IncomingStream, kind: Kind) -> String {
    match incoming
        .headers()
        .get("requestid")
        .and_then(|id| id.to_str().ok())
    {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let id = i64::from(incoming.id());
            match kind {
                Kind::Error => id.to_string(),
                Kind::Data => (id - 2).to_string(),
            }
        }
    }
}

async fn time_out(request: String, pair: Pair) {
    if let Some((_, data)) = pair.data {
        let (_, mut writer) = data.split();
        let _ = writer.reset().await;
    }
    if let Some(error) = pair.error {
        let (_, mut writer) = error.split();
        let message = format!("(request={request}) timed out waiting for streams");
        let _ = writer.write(Bytes::from(message)).await;
        let _ = writer.close().await;
    }
}

async fn forward<D: Dial>(
    dial: Arc<D>,
    options: Arc<PortForwardOptions>,
    port: u16,
    error: Stream,
    data: Stream,
) {
    // kubectl never writes on the error stream; dropping its reader discards the FIN.
    let (_, mut error) = error.split();
    let (mut data_in, mut data_out) = data.split();
    let failure = match dial.dial(port).await {
        Ok(conn) => copy(conn, &mut data_in, &mut data_out).await.err(),
        Err(err) => Some(err),
    };
    if let Some(err) = failure {
        let message = format!(
            "error forwarding port {port} to pod {}, uid {}: {err}",
            options.pod, options.uid
        );
        tracing::debug!(%message, "port-forward failed");
        let _ = error.write(Bytes::from(message)).await;
    }
    let _ = error.close().await;
    let _ = data_out.close().await;
}

/// Copies between the data stream and the pod's port until both directions are done or
/// the client resets the stream; returns the first I/O error on the pod's side.
async fn copy<C>(
    conn: C,
    data_in: &mut StreamReader,
    data_out: &mut StreamWriter,
) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut from_pod, mut to_pod) = tokio::io::split(conn);
    let upstream = async {
        while let Some(chunk) = data_in.read().await {
            to_pod.write_all(&chunk).await?;
        }
        // The client finished (or reset): the pod reads end of file.
        to_pod.shutdown().await
    };
    let downstream = async {
        let mut buf = vec![0; 32 * 1024];
        loop {
            let n = tokio::select! {
                n = from_pod.read(&mut buf) => n?,
                () = data_out.cancelled() => return Ok(()),
            };
            let sent = if n == 0 {
                data_out.close().await
            } else {
                data_out.write(Bytes::copy_from_slice(&buf[..n])).await
            };
            // A stream the client reset or a session that ended is no failure of the pod.
            if sent.is_err() || n == 0 {
                return Ok(());
            }
        }
    };
    let (upstream, downstream) = tokio::join!(upstream, downstream);
    upstream.and(downstream)
}
