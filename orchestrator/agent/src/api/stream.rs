//! `kubectl exec` and `kubectl attach` on the agent, at the kubelet's paths
//! (`/exec/{namespace}/{pod}/{container}?command=...&stdin=1...`, `/attach/...`), which the
//! API server relays its upgraded connections to.
//!
//! The connection is a WebSocket speaking `v5.channel.k8s.io` (kubectl 1.32's protocol) or
//! `v4.channel.k8s.io`: every binary message starts with its channel (0 stdin, 1 stdout, 2
//! stderr, 3 the final status, 4 terminal sizes as `{"Width":..,"Height":..}`); v5 adds
//! `[255, channel]`, the client closing a channel, which is how stdin ends. The session
//! ends with a `metav1.Status` on channel 3 (`Success`, or `NonZeroExitCode` with the exit
//! code as the `ExitCode` cause, which kubectl exits with) and a normal close.
//!
//! Attach follows the container's current log file, since containers write to the node's
//! logger; containerd gives a `binary://` logger's container no stdin, so attaching to
//! stdin is refused. SPDY, kubectl's fallback, is refused with a Status saying so.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts as _, Path as UrlPath, Request, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{Value, json};
use slipway_runtime::{AttachedExec, AttachedProcess, Exit};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::status;
use crate::{Context, labels};

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[CLOSE, channel]` says the client is done writing `channel`.
const CLOSE: u8 = 255;
/// The most one output message carries.
const CHUNK: usize = 32 * 1024;
const SIGKILL: u32 = 9;

/// What the client asked for, from the query (the kubelet's `1`, or `true`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Options {
    fn parse(query: Option<&str>) -> Result<Options, String> {
        let uri = format!("/?{}", query.unwrap_or_default());
        let uri = uri.parse().map_err(|_| "invalid query string".to_owned())?;
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
                .map_err(|e| format!("invalid query string: {e}"))?;
        let mut options = Options::default();
        for (key, value) in pairs {
            let on = value == "1" || value.eq_ignore_ascii_case("true");
            match key.as_str() {
                "command" => options.command.push(value),
                "stdin" | "input" => options.stdin = on,
                "stdout" | "output" => options.stdout = on,
                "stderr" => options.stderr = on,
                "tty" => options.tty = on,
                _ => {}
            }
        }
        // A terminal has one output, as the kubelet has it.
        options.stderr &= !options.tty;
        if !options.stdin && !options.stdout && !options.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".to_owned());
        }
        Ok(options)
    }
}

fn bad_request(message: &str) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// The running container a request means, and its pod's uid.
struct Target {
    uid: String,
    container: slipway_runtime::Container,
}

async fn locate(
    ctx: &Context,
    namespace: &str,
    pod_name: &str,
    container: &str,
) -> Result<Target, Response> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let pod = match pods.get_opt(pod_name).await {
        Ok(Some(pod)) => pod,
        Ok(None) => {
            return Err(status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("pods \"{pod_name}\" not found"),
            ));
        }
        Err(e) => {
            return Err(status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &format!("the agent cannot read the pod: {e}"),
            ));
        }
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let known = pod.spec.as_ref().is_some_and(|spec| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == container)
    });
    if !known {
        return Err(bad_request(&format!(
            "container {container} is not valid for pod {pod_name}"
        )));
    }
    let containers = ctx.runtime.list().await.map_err(|e| {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &e.to_string(),
        )
    })?;
    let running = containers.into_iter().find(|c| {
        c.labels.get(labels::POD_UID) == Some(&uid)
            && c.labels.get(labels::CONTAINER).map(String::as_str) == Some(container)
            && c.task
                .as_ref()
                .is_some_and(|t| t.status == slipway_runtime::TaskStatus::Running)
    });
    match running {
        Some(found) => Ok(Target {
            uid,
            container: found,
        }),
        None => Err(bad_request(&format!(
            "container \"{container}\" in pod \"{pod_name}\" is not running"
        ))),
    }
}

/// The WebSocket upgrade of a request, with the channel protocol chosen; anything else is
/// answered with a Status.
async fn upgrade(parts: &mut Parts) -> Result<(WebSocketUpgrade, bool), Response> {
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if upgrade.to_ascii_lowercase().starts_with("spdy/") {
        return Err(bad_request(&format!(
            "this node agent streams over WebSocket ({V5}, {V4}) only; SPDY is not supported yet"
        )));
    }
    let ws = WebSocketUpgrade::from_request_parts(parts, &())
        .await
        .map_err(|e| {
            bad_request(&format!(
                "this endpoint needs a WebSocket upgrade request ({V5}, {V4}): {e}"
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
    Ok((ws, close_signal))
}

/// Serves `GET|POST /exec/{namespace}/{pod}/{container}`.
pub(super) async fn exec(
    State(ctx): State<Arc<Context>>,
    UrlPath((namespace, pod_name, container)): UrlPath<(String, String, String)>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let options = match Options::parse(parts.uri.query()) {
        Ok(o) if o.command.is_empty() => {
            return bad_request("you must specify at least one command for the container");
        }
        Ok(o) => o,
        Err(e) => return bad_request(&e),
    };
    let target = match locate(&ctx, &namespace, &pod_name, &container).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (ws, close_signal) = match upgrade(&mut parts).await {
        Ok(upgraded) => upgraded,
        Err(response) => return response,
    };
    let process_file = ctx
        .config
        .pod_dir(&target.uid)
        .join("process")
        .join(format!("{}.json", target.container.id));
    let mut process: Value = match std::fs::read(&process_file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(process) => process,
        Err(e) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!(
                    "the process settings of container {container} ({}): {e}",
                    process_file.display()
                ),
            );
        }
    };
    process["args"] = json!(options.command);
    let config = AttachedExec {
        id: format!(
            "exec-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ),
        process,
        stdin: options.stdin,
        stdout: options.stdout,
        stderr: options.stderr,
        tty: options.tty,
    };
    let container_id = target.container.id;
    ws.on_upgrade(move |socket| async move {
        let mut session = Session::open(socket, close_signal, &options);
        let outcome = match ctx.runtime.exec_attached(&container_id, &config).await {
            Ok(attached) => session.run_exec(attached, options.tty).await,
            Err(e) => internal(&format!("error executing command in container: {e}")),
        };
        session.finish(&outcome).await;
    })
}

/// Serves `GET|POST /attach/{namespace}/{pod}/{container}`.
pub(super) async fn attach(
    State(ctx): State<Arc<Context>>,
    UrlPath((namespace, pod_name, container)): UrlPath<(String, String, String)>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let options = match Options::parse(parts.uri.query()) {
        Ok(o) => o,
        Err(e) => return bad_request(&e),
    };
    if options.stdin {
        return bad_request(&format!(
            "cannot attach to the stdin of container {container}: its output goes to the \
             node's logger, and containerd gives such a container no stdin; attach without \
             -i, or use kubectl exec"
        ));
    }
    let target = match locate(&ctx, &namespace, &pod_name, &container).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let path = ctx
        .config
        .pod_dir(&target.uid)
        .join("logs")
        .join(&container)
        .join(format!("{}.log", labels::attempt(&target.container.labels)));
    let Some(alive) = ctx.live_log(&path) else {
        return bad_request(&format!(
            "container \"{container}\" in pod \"{pod_name}\" is not running"
        ));
    };
    let (ws, close_signal) = match upgrade(&mut parts).await {
        Ok(upgraded) => upgraded,
        Err(response) => return response,
    };
    ws.on_upgrade(move |socket| async move {
        let mut session = Session::open(socket, close_signal, &options);
        let read = slipway_logs::ReadOptions {
            tail_lines: Some(0),
            follow: true,
            ..Default::default()
        };
        let outcome = match slipway_logs::read(&path, read, alive.cancelled_owned()).await {
            Ok(stream) => session.run_attach(stream, &options).await,
            Err(e) => internal(&format!("reading the container's output: {e}")),
        };
        session.finish(&outcome).await;
    })
}

/// The client's end of a session: a writer task that owns the socket's sending half (so
/// output never waits for input), and a reader of the other half.
struct Session {
    out: mpsc::Sender<Message>,
    writer: tokio::task::JoinHandle<()>,
    incoming: Option<SplitStream<WebSocket>>,
    listener: Option<tokio::task::JoinHandle<()>>,
    close_signal: bool,
    /// Cancelled when the client has gone.
    gone: CancellationToken,
}

impl Session {
    fn open(socket: WebSocket, close_signal: bool, options: &Options) -> Session {
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
        Session {
            out,
            writer,
            incoming: Some(incoming),
            listener: None,
            close_signal,
            gone,
        }
    }

    /// Reads the client's messages until it goes: stdin into `stdin` until the client
    /// closes that channel, terminal sizes to `terminal`.
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

    /// Streams an exec'd process until it exits (killed if the client goes first) and
    /// its output has been sent; the Status that says how it ended.
    async fn run_exec(&mut self, attached: slipway_runtime::Attached, tty: bool) -> Value {
        let process: Arc<dyn AttachedProcess> = Arc::from(attached.process);
        let (stdin, feeder) = match attached.stdin {
            Some(writer) => {
                let (sender, receiver) = mpsc::channel(16);
                let feeder = tokio::spawn(feed(writer, receiver, Arc::clone(&process)));
                (Some(sender), Some(feeder))
            }
            None => (None, None),
        };
        self.listen(stdin, tty.then(|| Arc::clone(&process)));
        let pumps: Vec<_> = [(attached.stdout, STDOUT), (attached.stderr, STDERR)]
            .into_iter()
            .filter_map(|(from, channel)| {
                from.map(|from| tokio::spawn(pump(from, channel, self.out.clone())))
            })
            .collect();
        let exit = tokio::select! {
            exit = process.wait() => exit,
            () = self.gone.cancelled() => {
                let _ = process.kill(SIGKILL).await;
                process.wait().await
            }
        };
        for pump in pumps {
            let _ = pump.await;
        }
        if let Some(feeder) = feeder {
            feeder.abort();
        }
        match exit {
            Ok(exit) => exit_status(exit),
            Err(e) => internal(&format!("error executing command in container: {e}")),
        }
    }

    /// Sends what the container prints from now on until it stops or the client goes.
    async fn run_attach(
        &mut self,
        stream: impl futures::Stream<Item = Result<Bytes, slipway_logs::Error>>,
        options: &Options,
    ) -> Value {
        self.listen(None, None);
        // The log holds both streams in one order, so they go out on one channel.
        let channel = if options.stdout { STDOUT } else { STDERR };
        let mut stream = std::pin::pin!(stream);
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                () = self.gone.cancelled() => None,
            };
            match item {
                Some(Ok(text)) => {
                    let mut message = Vec::with_capacity(text.len() + 1);
                    message.push(channel);
                    message.extend_from_slice(&text);
                    if self
                        .out
                        .send(Message::Binary(message.into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Some(Err(e)) => return internal(&format!("reading the container's output: {e}")),
                None => break,
            }
        }
        success()
    }

    /// Sends the final Status and closes the connection.
    async fn finish(self, outcome: &Value) {
        let mut message = vec![ERROR];
        message.extend_from_slice(outcome.to_string().as_bytes());
        let _ = self.out.send(Message::Binary(message.into())).await;
        drop(self.out);
        let _ = self.writer.await;
        if let Some(listener) = self.listener {
            listener.abort();
        }
    }
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

/// A terminal size, as kubectl sends it on the resize channel.
#[derive(serde::Deserialize)]
struct Size {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
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
                    && let Err(e) = process.resize(size.width, size.height).await
                {
                    tracing::debug!(error = %e, "resizing an exec's terminal");
                }
            }
            CLOSE if close_signal && payload == [STDIN] => stdin = None,
            _ => {}
        }
    }
}

/// Sends a process's output on `channel` until it ends or the client goes.
async fn pump(
    mut from: Box<dyn AsyncRead + Send + Unpin>,
    channel: u8,
    out: mpsc::Sender<Message>,
) {
    let mut buffer = vec![0; CHUNK + 1];
    buffer[0] = channel;
    loop {
        match from.read(&mut buffer[1..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let message = Bytes::copy_from_slice(&buffer[..=n]);
                if out.send(Message::Binary(message)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes the client's stdin to the process until the client closes it, then ends the
/// process's input.
async fn feed(
    mut to: Box<dyn AsyncWrite + Send + Unpin>,
    mut from: mpsc::Receiver<Bytes>,
    process: Arc<dyn AttachedProcess>,
) {
    while let Some(data) = from.recv().await {
        if to.write_all(&data).await.is_err() {
            break;
        }
    }
    drop(to);
    if let Err(e) = process.close_stdin().await {
        tracing::debug!(error = %e, "closing an exec's stdin");
    }
}

fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The kubelet's Status for an exit: success, or `NonZeroExitCode` with the code as the
/// `ExitCode` cause, which kubectl exits with.
fn exit_status(exit: Exit) -> Value {
    if exit.status == 0 {
        return success();
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: exit status {}", exit.status),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": exit.status.to_string()}]},
    })
}

fn internal(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_the_query() {
        let options = Options::parse(Some(
            "command=sh&command=-c&command=echo%20hi&stdin=1&stdout=true&stderr=1",
        ))
        .expect("options");
        assert_eq!(
            options,
            Options {
                command: vec!["sh".into(), "-c".into(), "echo hi".into()],
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false,
            }
        );
        let tty = Options::parse(Some("command=sh&stdout=1&stderr=1&tty=1")).expect("tty");
        assert!(tty.tty && tty.stdout && !tty.stderr, "{tty:?}");
        assert_eq!(
            Options::parse(Some("command=ls&stdout=0")),
            Err("you must specify at least 1 of stdin, stdout, stderr".to_owned())
        );
    }

    #[test]
    fn exits_become_the_kubelets_statuses() {
        let at = std::time::SystemTime::UNIX_EPOCH;
        assert_eq!(
            exit_status(Exit { status: 0, at }),
            json!({"metadata": {}, "status": "Success"})
        );
        let failed = exit_status(Exit { status: 3, at });
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["details"]["causes"],
            json!([{"reason": "ExitCode", "message": "3"}])
        );
    }
}
