//! `kubectl exec` and `kubectl attach` on the agent, at the kubelet's paths
//! (`/exec/{namespace}/{pod}/{container}?command=...&stdin=1...`, `/attach/...`), which the
//! API server relays its upgraded connections to.
//!
//! Two transports carry a session, as they reach the kubelet: a WebSocket speaking
//! `v5.channel.k8s.io` or `v4.channel.k8s.io` (kubectl 1.32's default, [`websocket`]), and
//! SPDY/3.1 with `X-Stream-Protocol-Version` (kubectl's fallback, [`spdy`]), where the client
//! opens one stream per standard stream. Both are a [`Client`]: this module runs the
//! process or follows the log, whatever carries the bytes, and ends every session with the
//! kubelet's `metav1.Status` (`Success`, or `NonZeroExitCode` with the exit code as the
//! `ExitCode` cause, which kubectl exits with).
//!
//! Attach follows the container's current log file, since containers write to the node's
//! logger; containerd gives a `binary://` logger's container no stdin, so attaching to
//! stdin is refused.

mod spdy;
mod websocket;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::response::Response;
use futures::StreamExt as _;
use serde_json::{Value, json};
use slipway_runtime::{AttachedExec, AttachedProcess, Exit};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::status;
use crate::{Context, labels};

/// The most one output message carries.
const CHUNK: usize = 32 * 1024;
const SIGKILL: u32 = 9;

/// What the client asked for, from the query (the kubelet's `1`, or `true`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
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
    let pod = super::read_pod(ctx, namespace, pod_name).await?;
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

/// The upgrade a request asks for, accepted.
enum Upgrade {
    WebSocket(websocket::Upgrade),
    Spdy(spdy::Upgrade),
}

impl Upgrade {
    async fn new(parts: &mut Parts) -> Result<Upgrade, Response> {
        if asks_for_spdy(&parts.headers) {
            spdy::Upgrade::new(parts)
                .map(Upgrade::Spdy)
                .map_err(|e| e.response())
        } else {
            websocket::Upgrade::new(parts).await.map(Upgrade::WebSocket)
        }
    }

    /// Answers `101 Switching Protocols` and runs `work` for the client once upgraded.
    fn serve(self, options: Options, work: Work) -> Response {
        match self {
            Upgrade::WebSocket(ws) => ws.on_upgrade(options, |client| run(client, work)),
            Upgrade::Spdy(spdy) => spdy.on_upgrade(options, |client| run(client, work)),
        }
    }
}

/// `Upgrade: SPDY/3.1`, as kubectl sends it when WebSockets are off or refused.
fn asks_for_spdy(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().to_ascii_lowercase().starts_with("spdy/"))
}

/// What a session does for its client.
enum Work {
    Exec {
        ctx: Arc<Context>,
        container_id: String,
        config: AttachedExec,
    },
    Attach {
        path: std::path::PathBuf,
        alive: CancellationToken,
        stdout: bool,
    },
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
    let upgrade = match Upgrade::new(&mut parts).await {
        Ok(upgrade) => upgrade,
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
    let work = Work::Exec {
        ctx,
        container_id: target.container.id,
        config,
    };
    upgrade.serve(options, work)
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
    let upgrade = match Upgrade::new(&mut parts).await {
        Ok(upgrade) => upgrade,
        Err(response) => return response,
    };
    let work = Work::Attach {
        path,
        alive,
        stdout: options.stdout,
    };
    upgrade.serve(options, work)
}

/// The client's end of a session, whatever transport carries it.
trait Client: Send {
    /// Where one of the process's outputs goes.
    type Output: Output;

    /// The stdout and the stderr the client asked for; the second call gets none.
    fn outputs(&mut self) -> (Option<Self::Output>, Option<Self::Output>);

    /// Starts reading the client's input: stdin into `stdin` until the client ends it
    /// (then the sender is dropped), terminal sizes to `terminal`.
    fn listen(
        &mut self,
        stdin: Option<mpsc::Sender<Bytes>>,
        terminal: Option<Arc<dyn AttachedProcess>>,
    );

    /// Cancelled once the client has gone.
    fn gone(&self) -> CancellationToken;

    /// Sends the final Status and ends the session.
    fn finish(self, status: &Value) -> impl Future<Output = ()> + Send;
}

/// One output stream to the client.
trait Output: Send + 'static {
    /// Sends `data`; false once the client takes no more.
    fn send(&mut self, data: &[u8]) -> impl Future<Output = bool> + Send;

    /// Ends the stream: the client has all of it.
    fn end(self) -> impl Future<Output = ()> + Send;
}

/// Does a session's work for `client`, then ends the session with the Status of how it
/// went.
async fn run<C: Client>(mut client: C, work: Work) {
    let outcome = match work {
        Work::Exec {
            ctx,
            container_id,
            config,
        } => match ctx.runtime.exec_attached(&container_id, &config).await {
            Ok(attached) => run_exec(&mut client, attached, config.tty).await,
            Err(e) => internal(&format!("error executing command in container: {e}")),
        },
        Work::Attach {
            path,
            alive,
            stdout,
        } => {
            let read = slipway_logs::ReadOptions {
                tail_lines: Some(0),
                follow: true,
                ..Default::default()
            };
            match slipway_logs::read(&path, read, alive.cancelled_owned()).await {
                Ok(stream) => run_attach(&mut client, stream, stdout).await,
                Err(e) => internal(&format!("reading the container's output: {e}")),
            }
        }
    };
    client.finish(&outcome).await;
}

/// Streams an exec'd process until it exits (killed if the client goes first) and its
/// output has been sent; the Status that says how it ended.
async fn run_exec<C: Client>(
    client: &mut C,
    attached: slipway_runtime::Attached,
    tty: bool,
) -> Value {
    let process: Arc<dyn AttachedProcess> = Arc::from(attached.process);
    let (stdin, feeder) = match attached.stdin {
        Some(writer) => {
            let (sender, receiver) = mpsc::channel(16);
            let feeder = tokio::spawn(feed(writer, receiver, Arc::clone(&process)));
            (Some(sender), Some(feeder))
        }
        None => (None, None),
    };
    client.listen(stdin, tty.then(|| Arc::clone(&process)));
    let gone = client.gone();
    let (stdout, stderr) = client.outputs();
    let mut pumps = Vec::new();
    for (from, to) in [(attached.stdout, stdout), (attached.stderr, stderr)] {
        match (from, to) {
            (Some(from), Some(to)) => pumps.push(tokio::spawn(pump(from, to))),
            (None, Some(to)) => to.end().await,
            (_, None) => {}
        }
    }
    let exit = tokio::select! {
        exit = process.wait() => exit,
        () = gone.cancelled() => {
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
async fn run_attach<C: Client>(
    client: &mut C,
    stream: impl futures::Stream<Item = Result<Bytes, slipway_logs::Error>>,
    stdout: bool,
) -> Value {
    client.listen(None, None);
    let gone = client.gone();
    // The log holds both streams in one order, so they go out on one.
    let (out, err) = client.outputs();
    let (used, unused) = if stdout { (out, err) } else { (err, out) };
    let mut stream = std::pin::pin!(stream);
    let mut outcome = success();
    if let Some(mut to) = used {
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                () = gone.cancelled() => None,
            };
            match item {
                Some(Ok(text)) => {
                    if !to.send(&text).await {
                        break;
                    }
                }
                Some(Err(e)) => {
                    outcome = internal(&format!("reading the container's output: {e}"));
                    break;
                }
                None => break,
            }
        }
        to.end().await;
    }
    if let Some(unused) = unused {
        unused.end().await;
    }
    outcome
}

/// Sends a process's output until it ends or the client goes, then ends the stream.
async fn pump<O: Output>(mut from: Box<dyn AsyncRead + Send + Unpin>, mut to: O) {
    let mut buffer = vec![0; CHUNK];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !to.send(&buffer[..n]).await {
                    return;
                }
            }
        }
    }
    to.end().await;
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

/// A terminal size, as kubectl sends it on the resize channel or stream.
#[derive(Debug, PartialEq, Eq, serde::Deserialize)]
struct Size {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

async fn resize(terminal: &dyn AttachedProcess, size: Size) {
    if let Err(e) = terminal.resize(size.width, size.height).await {
        tracing::debug!(error = %e, "resizing an exec's terminal");
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
