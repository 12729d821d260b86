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
///
/// A dial that never finishes holds its forwarded connection (not the session) until the
/// client resets it or the session ends, so implementations should bound it.
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
    // A reset (kubectl's answer to the pod's end of file, or the session ending) ends both
    // directions at once, even a dial or a write the pod is not reading.
    let reset = data_out.reset_token();
    let work = async {
        match dial.dial(port).await {
            Ok(conn) => copy(conn, &mut data_in, &mut data_out).await.err(),
            Err(err) => Some(err),
        }
    };
    let failure = tokio::select! {
        failure = work => failure,
        () = reset.cancelled() => None,
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

/// Copies between the data stream and the pod's port until both directions are done;
/// returns the first I/O error on the pod's side.
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
            let n = from_pod.read(&mut buf).await?;
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

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use http::{HeaderMap, HeaderValue};
    use tokio::io::DuplexStream;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::compress::{HeaderCompressor, HeaderDecompressor};
    use crate::frame::{
        self, Frame, FrameError, GOAWAY_OK, RST_CANCEL, RST_PROTOCOL_ERROR, RST_REFUSED_STREAM,
    };

    /// Hands the test the pod's end of every connection; port 9 refuses.
    struct TestDial(mpsc::UnboundedSender<(u16, DuplexStream)>);

    impl Dial for TestDial {
        type Conn = DuplexStream;

        fn dial(&self, port: u16) -> impl Future<Output = std::io::Result<DuplexStream>> + Send {
            let pods = self.0.clone();
            async move {
                if port == 9 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "refused",
                    ));
                }
                let (ours, pods_end) = tokio::io::duplex(1 << 16);
                pods.send((port, pods_end)).expect("the test is listening");
                Ok(ours)
            }
        }
    }

    /// kubectl's end, built from this crate's own frame codec.
    struct Client {
        io: DuplexStream,
        compressor: HeaderCompressor,
        decompressor: HeaderDecompressor,
        buf: BytesMut,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            let mut out = Vec::new();
            frame::encode(&frame, &mut self.compressor, &mut out).unwrap();
            self.io.write_all(&out).await.unwrap();
        }

        async fn open(&mut self, stream_id: u32, kind: &str, port: &str, request: Option<&str>) {
            let mut headers = HeaderMap::new();
            headers.insert("streamtype", HeaderValue::from_str(kind).unwrap());
            headers.insert("port", HeaderValue::from_str(port).unwrap());
            if let Some(request) = request {
                headers.insert("requestid", HeaderValue::from_str(request).unwrap());
            }
            self.send(Frame::SynStream {
                stream_id,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers,
            })
            .await;
        }

        async fn data(&mut self, stream_id: u32, fin: bool, data: &'static [u8]) {
            self.send(Frame::Data {
                stream_id,
                fin,
                data: Bytes::from_static(data),
            })
            .await;
        }

        async fn recv(&mut self) -> Option<Frame> {
            loop {
                if let Some(frame) = frame::decode(&mut self.buf, &mut self.decompressor).unwrap() {
                    return Some(frame);
                }
                if self.io.read_buf(&mut self.buf).await.unwrap() == 0 {
                    return None;
                }
            }
        }
    }

    fn reply(stream_id: u32) -> Frame {
        Frame::SynReply {
            stream_id,
            fin: false,
            headers: HeaderMap::new(),
        }
    }

    fn data(stream_id: u32, fin: bool, data: &[u8]) -> Frame {
        Frame::Data {
            stream_id,
            fin,
            data: Bytes::copy_from_slice(data),
        }
    }

    struct Harness {
        client: Client,
        pods: mpsc::UnboundedReceiver<(u16, DuplexStream)>,
        shutdown: CancellationToken,
        served: JoinHandle<Result<(), Error>>,
    }

    fn serve() -> Harness {
        serve_with_timeout(Duration::from_secs(30))
    }

    fn serve_with_timeout(stream_creation_timeout: Duration) -> Harness {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let (dialed, pods) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let options = PortForwardOptions {
            pod: "p_default".into(),
            uid: "u".into(),
            stream_creation_timeout,
        };
        let served = tokio::spawn(serve_port_forward(
            server_io,
            TestDial(dialed),
            options,
            shutdown.clone(),
        ));
        Harness {
            client: Client {
                io: client_io,
                compressor: HeaderCompressor::new().unwrap(),
                decompressor: HeaderDecompressor::new(),
                buf: BytesMut::new(),
            },
            pods,
            shutdown,
            served,
        }
    }

    #[tokio::test]
    async fn a_pair_is_forwarded_with_half_close_both_ways() {
        let mut h = serve();
        h.client.open(1, "error", "80", Some("0")).await;
        h.client.data(1, true, b"").await;
        h.client.open(3, "data", "80", Some("0")).await;
        assert_eq!(h.client.recv().await, Some(reply(1)));
        assert_eq!(h.client.recv().await, Some(reply(3)));
        let (port, mut pod) = h.pods.recv().await.unwrap();
        assert_eq!(port, 80);

        h.client.data(3, false, b"hi").await;
        let mut got = [0; 2];
        pod.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
        pod.write_all(b"yo").await.unwrap();
        assert_eq!(h.client.recv().await, Some(data(3, false, b"yo")));

        // The client finishes; the pod reads end of file but may still answer.
        h.client.data(3, true, b"").await;
        let mut rest = Vec::new();
        pod.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        pod.write_all(b"late").await.unwrap();
        assert_eq!(h.client.recv().await, Some(data(3, false, b"late")));
        drop(pod);
        assert_eq!(h.client.recv().await, Some(data(3, true, b"")));
        // No error: the error stream just ends.
        assert_eq!(h.client.recv().await, Some(data(1, true, b"")));

        h.client
            .send(Frame::GoAway {
                last_good_stream_id: 0,
                status: GOAWAY_OK,
            })
            .await;
        h.served.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_client_reset_ends_the_copy_and_the_error_stream() {
        let mut h = serve();
        h.client.open(1, "error", "80", Some("0")).await;
        h.client.open(3, "data", "80", Some("0")).await;
        let (_, mut pod) = h.pods.recv().await.unwrap();
        assert_eq!(h.client.recv().await, Some(reply(1)));
        assert_eq!(h.client.recv().await, Some(reply(3)));
        h.client
            .send(Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            })
            .await;
        let mut rest = Vec::new();
        pod.read_to_end(&mut rest).await.unwrap();
        assert_eq!(h.client.recv().await, Some(data(1, true, b"")));
    }

    #[tokio::test]
    async fn a_client_reset_ends_a_forward_the_pod_is_not_reading() {
        static CHUNK: [u8; 32 * 1024] = [7; 32 * 1024];
        let mut h = serve();
        h.client.open(1, "error", "80", Some("0")).await;
        h.client.open(3, "data", "80", Some("0")).await;
        // The pod's end stays open but unread, so its 64 KiB buffer fills up.
        let (_, _pod) = h.pods.recv().await.unwrap();
        assert_eq!(h.client.recv().await, Some(reply(1)));
        assert_eq!(h.client.recv().await, Some(reply(3)));
        for _ in 0..4 {
            h.client.data(3, false, &CHUNK).await;
        }
        h.client
            .send(Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            })
            .await;
        assert_eq!(h.client.recv().await, Some(data(1, true, b"")));
    }

    #[tokio::test]
    async fn streams_without_request_ids_pair_by_id_and_dial_failures_are_reported() {
        let mut h = serve();
        h.client.open(1, "error", "9", None).await;
        h.client.open(3, "data", "9", None).await;
        assert_eq!(h.client.recv().await, Some(reply(1)));
        assert_eq!(h.client.recv().await, Some(reply(3)));
        let message = b"error forwarding port 9 to pod p_default, uid u: refused";
        assert_eq!(h.client.recv().await, Some(data(1, false, message)));
        assert_eq!(h.client.recv().await, Some(data(1, true, b"")));
        assert_eq!(h.client.recv().await, Some(data(3, true, b"")));
    }

    #[tokio::test]
    async fn a_stream_left_unpaired_times_out() {
        let mut h = serve_with_timeout(Duration::from_millis(200));
        let start = Instant::now();
        h.client.open(1, "error", "80", Some("7")).await;
        assert_eq!(h.client.recv().await, Some(reply(1)));
        let message = b"(request=7) timed out waiting for streams";
        assert_eq!(h.client.recv().await, Some(data(1, false, message)));
        assert_eq!(h.client.recv().await, Some(data(1, true, b"")));
        assert!(start.elapsed() >= Duration::from_millis(200));

        // The request is forgotten: its data stream now starts a new, unpaired request.
        h.client.open(3, "data", "80", Some("7")).await;
        assert_eq!(h.client.recv().await, Some(reply(3)));
        assert_eq!(
            h.client.recv().await,
            Some(Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL
            })
        );
    }

    #[tokio::test]
    async fn invalid_and_duplicate_streams_are_refused() {
        let mut h = serve();
        h.client.open(1, "data", "http", Some("0")).await;
        assert_eq!(
            h.client.recv().await,
            Some(Frame::RstStream {
                stream_id: 1,
                status: RST_REFUSED_STREAM
            })
        );
        h.client.open(3, "bogus", "80", Some("0")).await;
        assert_eq!(
            h.client.recv().await,
            Some(Frame::RstStream {
                stream_id: 3,
                status: RST_REFUSED_STREAM
            })
        );
        h.client.open(5, "error", "0", Some("0")).await;
        assert_eq!(
            h.client.recv().await,
            Some(Frame::RstStream {
                stream_id: 5,
                status: RST_REFUSED_STREAM
            })
        );
        // Stream ids must grow.
        h.client.open(5, "error", "80", Some("0")).await;
        assert_eq!(
            h.client.recv().await,
            Some(Frame::RstStream {
                stream_id: 5,
                status: RST_PROTOCOL_ERROR
            })
        );
        h.client.open(7, "error", "80", Some("0")).await;
        h.client.open(9, "error", "80", Some("0")).await;
        assert_eq!(h.client.recv().await, Some(reply(7)));
        assert_eq!(h.client.recv().await, Some(reply(9)));
        assert_eq!(
            h.client.recv().await,
            Some(Frame::RstStream {
                stream_id: 9,
                status: RST_CANCEL
            })
        );
        let message = b"error processing stream for request 0: error stream already assigned";
        assert_eq!(h.client.recv().await, Some(data(7, false, message)));
    }

    #[tokio::test]
    async fn pings_are_echoed_and_other_control_frames_ignored() {
        let mut h = serve();
        h.client
            .send(Frame::Settings {
                clear: false,
                entries: vec![(0, 7, 1 << 20)],
            })
            .await;
        h.client
            .send(Frame::WindowUpdate {
                stream_id: 1,
                delta: 10,
            })
            .await;
        h.client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(h.client.recv().await, Some(Frame::Ping { id: 1 }));
        drop(h.client);
        h.served.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn malformed_input_ends_the_session_with_an_error() {
        let mut h = serve();
        h.client
            .io
            .write_all(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1])
            .await
            .unwrap();
        let err = h.served.await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::Frame(FrameError::UnsupportedVersion(2))),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn shutdown_resets_open_streams_and_says_goodbye() {
        let mut h = serve();
        h.client.open(1, "error", "80", Some("0")).await;
        h.client.open(3, "data", "80", Some("0")).await;
        let (_, _pod) = h.pods.recv().await.unwrap();
        assert_eq!(h.client.recv().await, Some(reply(1)));
        assert_eq!(h.client.recv().await, Some(reply(3)));
        h.shutdown.cancel();
        h.served.await.unwrap().unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = h.client.recv().await {
            frames.push(frame);
        }
        let goaway = Frame::GoAway {
            last_good_stream_id: 3,
            status: GOAWAY_OK,
        };
        assert_eq!(frames.last(), Some(&goaway), "{frames:?}");
        for id in [1, 3] {
            let reset = Frame::RstStream {
                stream_id: id,
                status: RST_CANCEL,
            };
            assert!(frames.contains(&reset), "{frames:?}");
        }
    }
}
