//! exec and attach over SPDY/3.1, kubectl's fallback (`Upgrade: SPDY/3.1`), as the
//! kubelet's remotecommand server speaks it (`httpstream.go`).
//!
//! The protocol comes from `X-Stream-Protocol-Version`, the client's first that this end
//! speaks: `v5.channel.k8s.io` (on SPDY the same as v4: its close signal is WebSocket's),
//! `v4.channel.k8s.io`, `v3.channel.k8s.io`, `v2.channel.k8s.io` or `channel.k8s.io`. The
//! client then opens one stream per standard stream, named by its `streamType` header:
//! `error`, and `stdin`, `stdout`, `stderr` as the query asks, plus `resize` with a terminal
//! from v3 on; nothing runs until all of them are open, and a client that does not open them
//! within [`STREAM_CREATION`] is dropped. Output flows on its stream and ends with FIN;
//! stdin's FIN is end of file; the resize stream carries `{"Width":..,"Height":..}` objects
//! one after another. At the end the error stream carries the Status: as JSON from v4 on,
//! before that only a failure's message as text. Then every stream is reset and the session
//! goes away, as the kubelet closes its connection.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use slipway_runtime::AttachedProcess;
use slipway_spdy::{
    NegotiateError, Negotiated, Session, Stream, StreamReader, StreamWriter, negotiate,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Client, Options, Output, Size, status};

/// The protocols this end speaks, newest first; the client's order decides.
const PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// How long the client may take to open its streams (the kubelet's default).
const STREAM_CREATION: Duration = Duration::from_secs(30);

/// The most of an unfinished terminal size the resize stream may hold: sizes are small.
const MAX_RESIZE_MESSAGE: usize = 4096;

/// The `streamType` header of a client's stream.
const STREAM_TYPE: &str = "streamtype";

/// What a protocol version changes on SPDY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    /// v3 on: a `resize` stream comes with a terminal.
    resize: bool,
    /// v4 on: the Status goes out as JSON, success included.
    json_status: bool,
}

impl Version {
    fn of(protocol: &str) -> Version {
        match protocol {
            "v5.channel.k8s.io" | "v4.channel.k8s.io" => Version {
                resize: true,
                json_status: true,
            },
            "v3.channel.k8s.io" => Version {
                resize: true,
                json_status: false,
            },
            _ => Version {
                resize: false,
                json_status: false,
            },
        }
    }

    /// What goes on the error stream at the end: from v4 on the Status itself; before,
    /// only a failure's message (the kubelet's `v1WriteStatusFunc`).
    fn error_message(self, status: &Value) -> Option<Vec<u8>> {
        if self.json_status {
            return Some(status.to_string().into_bytes());
        }
        if status["status"] == "Success" {
            return None;
        }
        let message = status["message"].as_str().unwrap_or("unknown error");
        Some(message.as_bytes().to_vec())
    }
}

/// The streams a client opens, by `streamType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl Kind {
    fn of(stream_type: &str) -> Option<Kind> {
        Some(match stream_type {
            "error" => Kind::Error,
            "stdin" => Kind::Stdin,
            "stdout" => Kind::Stdout,
            "stderr" => Kind::Stderr,
            "resize" => Kind::Resize,
            _ => return None,
        })
    }
}

/// The streams a session waits for, as the kubelet counts them.
fn expected(options: &Options, version: Version) -> Vec<Kind> {
    [
        (true, Kind::Error),
        (options.stdin, Kind::Stdin),
        (options.stdout, Kind::Stdout),
        (options.stderr, Kind::Stderr),
        (options.tty && version.resize, Kind::Resize),
    ]
    .into_iter()
    .filter_map(|(on, kind)| on.then_some(kind))
    .collect()
}

/// A SPDY upgrade, negotiated.
pub(super) struct Upgrade {
    negotiated: Negotiated,
    on_upgrade: OnUpgrade,
}

/// Why a SPDY upgrade request cannot be served.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpgradeError {
    /// No protocol in common, or not a valid upgrade request.
    #[error(transparent)]
    Negotiate(#[from] NegotiateError),
    /// The HTTP connection has no upgrade to give (not HTTP/1.1).
    #[error("unable to upgrade: this connection cannot be upgraded")]
    NotUpgradable,
}

impl UpgradeError {
    /// The Status to answer with: 403 when the protocols do not match, 400 otherwise.
    pub(super) fn response(&self) -> Response {
        match self {
            UpgradeError::Negotiate(e) if e.status() == StatusCode::FORBIDDEN => {
                status(StatusCode::FORBIDDEN, "Forbidden", &self.to_string())
            }
            _ => status(StatusCode::BAD_REQUEST, "BadRequest", &self.to_string()),
        }
    }
}

impl Upgrade {
    /// The SPDY upgrade of a request.
    pub(super) fn new(parts: &mut Parts) -> Result<Upgrade, UpgradeError> {
        let negotiated = negotiate(&parts.headers, &PROTOCOLS)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeError::NotUpgradable)?;
        Ok(Upgrade {
            negotiated,
            on_upgrade,
        })
    }

    /// Answers `101 Switching Protocols` and, once the client has opened its streams, runs
    /// `session` on them.
    pub(super) fn on_upgrade<F, Fut>(self, options: Options, session: F) -> Response
    where
        F: FnOnce(SpdyClient) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let answer = self.negotiated.response_headers();
        let negotiated = self.negotiated;
        tokio::spawn(async move {
            let upgraded = match self.on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!(error = %e, "an exec's SPDY upgrade failed");
                    return;
                }
            };
            let version = Version::of(negotiated.protocol());
            let spdy = Session::new(negotiated.wrap(TokioIo::new(upgraded)));
            if let Some(client) = SpdyClient::open(spdy, version, &options).await {
                session(client).await;
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        response.headers_mut().extend(answer);
        response
    }
}

/// The client's end of a session: its streams, and a task that owns the SPDY session until
/// the end, refusing streams opened late and noticing when the client has gone.
pub(super) struct SpdyClient {
    version: Version,
    /// Set once open; `finish` takes it.
    error: Option<StreamWriter>,
    stdout: Option<StreamWriter>,
    stderr: Option<StreamWriter>,
    stdin: Option<StreamReader>,
    resize: Option<StreamReader>,
    /// This end's halves of stdin and resize, never written: kept, since dropping a writer
    /// resets its stream under the client's feet.
    kept: Vec<StreamWriter>,
    listeners: Vec<JoinHandle<()>>,
    watcher: JoinHandle<Session>,
    done: CancellationToken,
    gone: CancellationToken,
}

impl SpdyClient {
    /// Waits for the streams `options` call for; `None` (the session closed) if the client
    /// does not open them in time or goes away.
    async fn open(mut session: Session, version: Version, options: &Options) -> Option<Self> {
        let wanted = expected(options, version);
        let opened =
            match tokio::time::timeout(STREAM_CREATION, streams(&mut session, wanted)).await {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "an exec's SPDY session ended before its streams");
                    return None;
                }
                Err(_) => {
                    tracing::debug!("timed out waiting for client to create streams");
                    session.close().await;
                    return None;
                }
            };
        let done = CancellationToken::new();
        let gone = CancellationToken::new();
        let mut client = SpdyClient {
            version,
            error: None,
            stdout: None,
            stderr: None,
            stdin: None,
            resize: None,
            kept: Vec::new(),
            listeners: Vec::new(),
            watcher: tokio::spawn(watch(session, done.clone(), gone.clone())),
            done,
            gone,
        };
        for (kind, stream) in opened {
            let (reader, writer) = stream.split();
            match kind {
                Kind::Error => client.error = Some(writer),
                Kind::Stdout => client.stdout = Some(writer),
                Kind::Stderr => client.stderr = Some(writer),
                Kind::Stdin => {
                    client.stdin = Some(reader);
                    client.kept.push(writer);
                }
                Kind::Resize => {
                    client.resize = Some(reader);
                    client.kept.push(writer);
                }
            }
        }
        Some(client)
    }
}

/// Accepts the streams of the `wanted` kinds as the client opens them, refusing any other
/// (of no known type, not asked for, or a second of one kind), until it has them all.
async fn streams(
    session: &mut Session,
    mut wanted: Vec<Kind>,
) -> Result<Vec<(Kind, Stream)>, slipway_spdy::Error> {
    let mut opened = Vec::new();
    while !wanted.is_empty() {
        let incoming = session.accept().await?.ok_or(slipway_spdy::Error::Closed)?;
        let kind = incoming
            .headers()
            .get(STREAM_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Kind::of);
        match kind.and_then(|kind| wanted.iter().position(|k| *k == kind)) {
            Some(at) => opened.push((wanted.swap_remove(at), incoming.accept().await?)),
            None => incoming.refuse().await?,
        }
    }
    Ok(opened)
}

/// Refuses the streams a client opens once its session runs, until `done`; cancels `gone`
/// when the session ends first. Gives the session back for closing.
async fn watch(mut session: Session, done: CancellationToken, gone: CancellationToken) -> Session {
    loop {
        tokio::select! {
            () = done.cancelled() => return session,
            incoming = session.accept() => match incoming {
                Ok(Some(late)) => {
                    let _ = late.refuse().await;
                }
                Ok(None) | Err(_) => {
                    gone.cancel();
                    return session;
                }
            },
        }
    }
}

impl Client for SpdyClient {
    type Output = StreamWriter;

    fn outputs(&mut self) -> (Option<StreamWriter>, Option<StreamWriter>) {
        (self.stdout.take(), self.stderr.take())
    }

    fn listen(
        &mut self,
        stdin: Option<mpsc::Sender<Bytes>>,
        terminal: Option<Arc<dyn AttachedProcess>>,
    ) {
        // A stream nobody reads would stall the whole session once its buffer fills, so
        // readers without a taker are dropped (their data is discarded).
        if let (Some(mut from), Some(to)) = (self.stdin.take(), stdin) {
            self.listeners.push(tokio::spawn(async move {
                while let Some(data) = from.read().await {
                    if to.send(data).await.is_err() {
                        return;
                    }
                }
            }));
        }
        if let (Some(from), Some(terminal)) = (self.resize.take(), terminal) {
            self.listeners.push(tokio::spawn(resizes(from, terminal)));
        }
    }

    fn gone(&self) -> CancellationToken {
        self.gone.clone()
    }

    async fn finish(mut self, status: &Value) {
        for output in [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
        {
            output.end().await;
        }
        if let Some(mut error) = self.error.take() {
            if let Some(message) = self.version.error_message(status) {
                let _ = error.write(message.into()).await;
            }
            error.end().await;
        }
        for listener in &self.listeners {
            listener.abort();
        }
        self.done.cancel();
        if let Ok(session) = self.watcher.await {
            session.close().await;
        }
        // Only now: the session has reset them, so dropping sends nothing more.
        drop(self.kept);
    }
}

impl Output for StreamWriter {
    async fn send(&mut self, data: &[u8]) -> bool {
        self.write(Bytes::copy_from_slice(data)).await.is_ok()
    }

    async fn end(mut self) {
        let _ = self.close().await;
    }
}

/// Applies the terminal sizes the client sends until it stops or sends something else.
async fn resizes(mut from: StreamReader, terminal: Arc<dyn AttachedProcess>) {
    let mut pending = Vec::new();
    while let Some(data) = from.read().await {
        pending.extend_from_slice(&data);
        match sizes(&mut pending) {
            Ok(sizes) => {
                for size in sizes {
                    super::resize(terminal.as_ref(), size).await;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "an exec's resize stream");
                return;
            }
        }
    }
}

/// Why the resize stream is no longer read.
#[derive(Debug, thiserror::Error)]
enum ResizeError {
    #[error("not a terminal size: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("a terminal size longer than {MAX_RESIZE_MESSAGE} bytes")]
    TooLong,
}

/// The whole sizes at the front of `pending`, which keeps the unfinished rest.
fn sizes(pending: &mut Vec<u8>) -> Result<Vec<Size>, ResizeError> {
    let mut values = serde_json::Deserializer::from_slice(pending).into_iter::<Size>();
    let mut sizes = Vec::new();
    let mut consumed = 0;
    loop {
        match values.next() {
            Some(Ok(size)) => {
                sizes.push(size);
                consumed = values.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(e.into()),
            None => {
                consumed = values.byte_offset();
                break;
            }
        }
    }
    pending.drain(..consumed);
    if pending.len() > MAX_RESIZE_MESSAGE {
        return Err(ResizeError::TooLong);
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use slipway_runtime::Exit;

    use super::super::{exit_status, success};
    use super::*;

    fn options(query: &str) -> Options {
        Options::parse(Some(query)).expect("options")
    }

    #[test]
    fn the_kubelet_waits_for_the_streams_the_query_asks_for() {
        let v4 = Version::of("v4.channel.k8s.io");
        assert_eq!(
            expected(&options("command=ls&stdout=1&stderr=1"), v4),
            [Kind::Error, Kind::Stdout, Kind::Stderr]
        );
        // A terminal has no stderr and, from v3 on, a resize stream.
        let tty = options("command=sh&stdin=1&stdout=1&stderr=1&tty=1");
        assert_eq!(
            expected(&tty, Version::of("v5.channel.k8s.io")),
            [Kind::Error, Kind::Stdin, Kind::Stdout, Kind::Resize]
        );
        assert_eq!(
            expected(&tty, Version::of("v2.channel.k8s.io")),
            [Kind::Error, Kind::Stdin, Kind::Stdout]
        );
    }

    #[test]
    fn the_error_stream_carries_json_from_v4_and_text_before() {
        let failed = exit_status(Exit {
            status: 3,
            at: std::time::SystemTime::UNIX_EPOCH,
        });
        let success = success();
        let v4 = Version::of("v4.channel.k8s.io");
        assert_eq!(
            v4.error_message(&failed)
                .map(|m| serde_json::from_slice::<Value>(&m).unwrap()),
            Some(failed.clone())
        );
        assert_eq!(
            v4.error_message(&success),
            Some(br#"{"metadata":{},"status":"Success"}"#.to_vec())
        );
        let v2 = Version::of("v2.channel.k8s.io");
        assert_eq!(v2.error_message(&success), None);
        assert_eq!(
            v2.error_message(&failed),
            Some(b"command terminated with non-zero exit code: exit status 3".to_vec())
        );
        assert_eq!(Version::of("channel.k8s.io"), v2);
    }

    #[test]
    fn sizes_come_one_after_another_and_may_be_split() {
        let mut pending = b"{\"Width\":80,\"Height\":24}\n{\"Width\":100,".to_vec();
        assert_eq!(
            sizes(&mut pending).unwrap(),
            [Size {
                width: 80,
                height: 24
            }]
        );
        assert_eq!(pending.trim_ascii_start(), b"{\"Width\":100,");
        pending.extend_from_slice(b"\"Height\":40}\n");
        assert_eq!(
            sizes(&mut pending).unwrap(),
            [Size {
                width: 100,
                height: 40
            }]
        );
        assert!(pending.iter().all(u8::is_ascii_whitespace), "{pending:?}");
    }

    #[test]
    fn bad_sizes_stop_the_resize_stream() {
        let mut garbage = b"{\"Width\": \"wide\"}".to_vec();
        assert!(matches!(
            sizes(&mut garbage),
            Err(ResizeError::Malformed(_))
        ));
        let mut negative = json!({"Width": -1, "Height": 2}).to_string().into_bytes();
        assert!(matches!(
            sizes(&mut negative),
            Err(ResizeError::Malformed(_))
        ));
        let mut endless = b"{\"Width\":".to_vec();
        endless.resize(MAX_RESIZE_MESSAGE + 10, b' ');
        assert!(matches!(sizes(&mut endless), Err(ResizeError::TooLong)));
    }
}
