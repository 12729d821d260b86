//! exec and attach over a WebSocket speaking `v5.channel.k8s.io` (kubectl 1.32's protocol)
//! or `v4.channel.k8s.io`: every binary message starts with its channel (0 stdin, 1 stdout,
//! 2 stderr, 3 the final status, 4 terminal sizes); v5 adds `[255, channel]`, the client
//! closing a channel, which is how stdin ends. The session ends with the Status on channel 3
//! and a normal close.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::FromRequestParts as _;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::request::Parts;
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use slipway_runtime::AttachedProcess;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Client, Options, Output, Size, bad_request};

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[CLOSE, channel]` says the client is done writing `channel`.
const CLOSE: u8 = 255;

/// A WebSocket upgrade with its channel protocol chosen.
pub(super) struct Upgrade {
    ws: WebSocketUpgrade,
    close_signal: bool,
}

impl Upgrade {
    /// The WebSocket upgrade of a request; anything else is answered with a Status.
    pub(super) async fn new(parts: &mut Parts) -> Result<Upgrade, Response> {
        let ws = WebSocketUpgrade::from_request_parts(parts, &())
            .await
            .map_err(|e| {
                bad_request(&format!(
                    "this endpoint needs a WebSocket ({V5}, {V4}) or SPDY/3.1 upgrade request: {e}"
                ))
            })?;
        let requested: Vec<String> = ws
            .requested_protocols()
            .filter_map(|p| p.to_str().ok().map(str::to_owned))
            .collect();
        let ws = ws.protocols([V5, V4]);
        let close_signal = match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
            Some(V5) => true,
            Some(_) => false,
            None => {
                return Err(bad_request(&format!(
                    "requested protocol(s) are not supported: [{}]; supports [{V5} {V4}]",
                    requested.join(" ")
                )));
            }
        };
        Ok(Upgrade { ws, close_signal })
    }

    /// Answers `101 Switching Protocols` and runs `session` on the upgraded connection.
    pub(super) fn on_upgrade<F, Fut>(self, options: Options, session: F) -> Response
    where
        F: FnOnce(WebSocketClient) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let close_signal = self.close_signal;
        self.ws.on_upgrade(move |socket| async move {
            session(WebSocketClient::open(socket, close_signal, &options)).await;
        })
    }
}

/// The client's end of a session: a writer task that owns the socket's sending half (so
/// output never waits for input), and a reader of the other half.
pub(super) struct WebSocketClient {
    out: mpsc::Sender<Message>,
    writer: tokio::task::JoinHandle<()>,
    incoming: Option<SplitStream<WebSocket>>,
    listener: Option<tokio::task::JoinHandle<()>>,
    close_signal: bool,
    stdout: bool,
    stderr: bool,
    /// Cancelled when the client has gone.
    gone: CancellationToken,
}

impl WebSocketClient {
    fn open(socket: WebSocket, close_signal: bool, options: &Options) -> WebSocketClient {
        let (sink, incoming) = socket.split();
        let (out, outgoing) = mpsc::channel(32);
        let gone = CancellationToken::new();
        let writer = tokio::spawn(write(sink, outgoing, gone.clone()));
        // As the kubelet does: an empty message on the lowest output channel says the
        // streams are open.
        let first = if options.stdout {
            STDOUT
        } else if options.stderr {
            STDERR
        } else {
            ERROR
        };
        let _ = out.try_send(Message::Binary(Bytes::from(vec![first])));
        WebSocketClient {
            out,
            writer,
            incoming: Some(incoming),
            listener: None,
            close_signal,
            stdout: options.stdout,
            stderr: options.stderr,
            gone,
        }
    }
}

impl Client for WebSocketClient {
    type Output = Channel;

    fn outputs(&mut self) -> (Option<Channel>, Option<Channel>) {
        let channel = |on: bool, number| {
            on.then(|| Channel {
                number,
                out: self.out.clone(),
            })
        };
        (channel(self.stdout, STDOUT), channel(self.stderr, STDERR))
    }

    fn listen(
        &mut self,
        stdin: Option<mpsc::Sender<Bytes>>,
        terminal: Option<Arc<dyn AttachedProcess>>,
    ) {
        let incoming = self.incoming.take();
        let close_signal = self.close_signal;
        let gone = self.gone.clone();
        self.listener = Some(tokio::spawn(async move {
            if let Some(incoming) = incoming {
                read(incoming, close_signal, stdin, terminal).await;
            }
            gone.cancel();
        }));
    }

    fn gone(&self) -> CancellationToken {
        self.gone.clone()
    }

    async fn finish(self, status: &Value) {
        let mut message = vec![ERROR];
        message.extend_from_slice(status.to_string().as_bytes());
        let _ = self.out.send(Message::Binary(message.into())).await;
        drop(self.out);
        let _ = self.writer.await;
        if let Some(listener) = self.listener {
            listener.abort();
        }
    }
}

/// One output channel of the socket.
pub(super) struct Channel {
    number: u8,
    out: mpsc::Sender<Message>,
}

impl Output for Channel {
    async fn send(&mut self, data: &[u8]) -> bool {
        let mut message = Vec::with_capacity(data.len() + 1);
        message.push(self.number);
        message.extend_from_slice(data);
        self.out.send(Message::Binary(message.into())).await.is_ok()
    }

    /// The channel protocols have no end of output: the Status says it all.
    async fn end(self) {}
}

/// Sends what the session queues, then a normal close; a failed send means the client has
/// gone.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outgoing: mpsc::Receiver<Message>,
    gone: CancellationToken,
) {
    while let Some(message) = outgoing.recv().await {
        if sink.send(message).await.is_err() {
            gone.cancel();
            return;
        }
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

async fn read(
    mut incoming: SplitStream<WebSocket>,
    close_signal: bool,
    mut stdin: Option<mpsc::Sender<Bytes>>,
    terminal: Option<Arc<dyn AttachedProcess>>,
) {
    while let Some(Ok(message)) = incoming.next().await {
        let data = match message {
            Message::Binary(data) => data,
            Message::Close(_) => break,
            _ => continue,
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        match channel {
            STDIN if !payload.is_empty() => {
                if let Some(sender) = &stdin
                    && sender.send(data.slice(1..)).await.is_err()
                {
                    stdin = None;
                }
            }
            RESIZE => {
                if let (Some(process), Ok(size)) =
                    (&terminal, serde_json::from_slice::<Size>(payload))
                {
                    super::resize(process.as_ref(), size).await;
                }
            }
            CLOSE if close_signal && payload == [STDIN] => stdin = None,
            _ => {}
        }
    }
}
