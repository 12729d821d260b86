//! The real kubectl 1.32 (`kubectl port-forward`) against a test API server whose
//! `pods/portforward` subresource this crate serves: once through the WebSocket tunnel
//! (kubectl's default), once over plain SPDY (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`).
//!
//! The API server answers only what kubectl asks on the way: `/version` (minor 32, so
//! the kubectl dispatcher on these machines runs 1.32), legacy discovery and a Running
//! pod `p`. The dialer connects to the requested port on 127.0.0.1, where a line server
//! answers each line and says goodbye when its client half-closes.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hyper_util::rt::TokioIo;
use serde_json::json;
use slipway_spdy::{
    Dial, PORT_FORWARD_PROTOCOL, PortForwardOptions, negotiate, serve_port_forward,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// Bound on every wait for kubectl; the first run of the dispatcher can be slow.
const WAIT: Duration = Duration::from_secs(60);

const POD_UID: &str = "6a1f0f6e-2f8a-4c36-9f63-3c3a7d2a4c11";

#[derive(Default)]
struct Seen {
    /// Whether each served port-forward ran in a WebSocket.
    websocket: Vec<bool>,
    /// Requests the server had no answer for, to explain a failing run.
    unknown: Vec<String>,
}

struct TestApi {
    seen: Arc<Mutex<Seen>>,
    shutdown: CancellationToken,
    dir: tempfile::TempDir,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Clone)]
struct AppState {
    seen: Arc<Mutex<Seen>>,
    shutdown: CancellationToken,
}

struct Loopback;

impl Dial for Loopback {
    type Conn = TcpStream;

    fn dial(&self, port: u16) -> impl Future<Output = std::io::Result<TcpStream>> + Send {
        TcpStream::connect((Ipv4Addr::LOCALHOST, port))
    }
}

async fn start_api() -> TestApi {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shutdown = CancellationToken::new();
    let state = AppState {
        seen: seen.clone(),
        shutdown: shutdown.clone(),
    };
    let app = Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/api/v1", get(api_resources))
        .route("/api/v1/namespaces/default/pods/p", get(pod))
        .route(
            "/api/v1/namespaces/default/pods/p/portforward",
            any(port_forward),
        )
        .fallback(unknown)
        .with_state(state);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: http://{addr}
users:
- name: test
  user: {{}}
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
current-context: test
"
    );
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
    TestApi {
        seen,
        shutdown,
        dir,
    }
}

fn json_response(value: &serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn version() -> Response {
    json_response(&json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "test",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23",
        "compiler": "gc", "platform": "linux/amd64"
    }))
}

async fn api_versions() -> Response {
    json_response(&json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
    }))
}

async fn api_groups() -> Response {
    json_response(&json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
}

async fn api_resources() -> Response {
    json_response(&json!({
        "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": ["get", "list"], "shortNames": ["po"]},
            {"name": "pods/portforward", "singularName": "", "namespaced": true,
             "kind": "PodPortForwardOptions", "verbs": ["create", "get"]}
        ]
    }))
}

async fn pod() -> Response {
    json_response(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": POD_UID,
                     "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running"}
    }))
}

async fn unknown(State(state): State<AppState>, request: Request) -> Response {
    let line = format!("{} {}", request.method(), request.uri());
    state.seen.lock().unwrap().unknown.push(line);
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "not found"});
    let mut response = json_response(&status);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// What the agent's `/portForward/{ns}/{pod}` route will do: negotiate, answer 101, serve.
async fn port_forward(State(state): State<AppState>, mut request: Request) -> Response {
    let negotiated = match negotiate(request.headers(), &[PORT_FORWARD_PROTOCOL]) {
        Ok(negotiated) => negotiated,
        Err(err) => return (err.status(), err.to_string()).into_response(),
    };
    state
        .seen
        .lock()
        .unwrap()
        .websocket
        .push(negotiated.is_websocket());
    let upgrade = hyper::upgrade::on(&mut request);
    let answer = negotiated.response_headers();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let options = PortForwardOptions {
            pod: "p_default".into(),
            uid: POD_UID.into(),
            stream_creation_timeout: Duration::from_secs(30),
        };
        let io = negotiated.wrap(TokioIo::new(upgraded));
        if let Err(err) = serve_port_forward(io, Loopback, options, state.shutdown).await {
            eprintln!("port-forward session failed: {err}");
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    response.headers_mut().extend(answer);
    response
}

/// A line server on 127.0.0.1: `pong: <line>` for each line, `bye` when the client
/// half-closes, then it closes too.
async fn start_target() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = conn.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write
                        .write_all(format!("pong: {line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                let _ = write.write_all(b"bye\n").await;
            });
        }
    });
    port
}

/// A loopback port nothing listens on.
async fn dead_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    listener.local_addr().unwrap().port()
}

struct PortForward {
    child: Child,
    local: u16,
    stderr: Arc<Mutex<String>>,
}

impl PortForward {
    /// Runs `kubectl port-forward pod/p 0:<remote>` and waits for its local port.
    async fn start(api: &TestApi, remote: u16, websockets: bool) -> PortForward {
        let mut command = Command::new("kubectl");
        command
            .args([
                "port-forward",
                "pod/p",
                &format!("0:{remote}"),
                "--address",
                "127.0.0.1",
            ])
            .arg(format!(
                "--cache-dir={}",
                api.dir.path().join("cache").display()
            ))
            .env("KUBECONFIG", api.dir.path().join("kubeconfig"))
            .env("HOME", api.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if websockets {
            command.env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS");
        } else {
            command.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
        }
        let mut child = command.spawn().expect("kubectl runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        let mut out_lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = timeout(WAIT, async {
            while let Ok(Some(line)) = out_lines.next_line().await {
                // "Forwarding from 127.0.0.1:40123 -> 8080"
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                    return rest
                        .split(' ')
                        .next()
                        .and_then(|port| port.parse::<u16>().ok());
                }
            }
            None
        })
        .await;
        let Ok(Some(local)) = ready else {
            panic!(
                "kubectl port-forward did not start: {}\nunanswered requests: {:?}",
                stderr.lock().unwrap(),
                api.seen.lock().unwrap().unknown
            );
        };
        // kubectl prints "Handling connection for <port>" per connection; keep draining.
        tokio::spawn(async move { while let Ok(Some(_)) = out_lines.next_line().await {} });
        PortForward {
            child,
            local,
            stderr,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect((Ipv4Addr::LOCALHOST, self.local))
            .await
            .unwrap()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn stop(mut self) {
        self.child.start_kill().unwrap();
        timeout(WAIT, self.child.wait()).await.unwrap().unwrap();
    }
}

/// One line there and back, then a half-close answered by the target's goodbye.
async fn exchange(conn: &mut TcpStream, line: &str) -> String {
    conn.write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let mut reply = vec![0; format!("pong: {line}\n").len()];
    timeout(WAIT, conn.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(reply).unwrap()
}

async fn finish(mut conn: TcpStream) -> String {
    conn.shutdown().await.unwrap();
    let mut rest = String::new();
    timeout(WAIT, conn.read_to_string(&mut rest))
        .await
        .unwrap()
        .unwrap();
    rest
}

async fn forward_and_check(websockets: bool) {
    let api = start_api().await;
    let target = start_target().await;
    let forward = PortForward::start(&api, target, websockets).await;

    let mut conn = forward.connect().await;
    assert_eq!(
        exchange(&mut conn, "ping 1").await,
        "pong: ping 1\n",
        "{}",
        forward.stderr()
    );
    assert_eq!(finish(conn).await, "bye\n");

    // Two connections at once through the same port-forward, interleaved.
    let mut first = forward.connect().await;
    let mut second = forward.connect().await;
    assert_eq!(exchange(&mut first, "a1").await, "pong: a1\n");
    assert_eq!(exchange(&mut second, "b1").await, "pong: b1\n");
    assert_eq!(exchange(&mut first, "a2").await, "pong: a2\n");
    assert_eq!(finish(second).await, "bye\n");
    assert_eq!(exchange(&mut first, "a3").await, "pong: a3\n");
    assert_eq!(finish(first).await, "bye\n");

    assert_eq!(
        api.seen.lock().unwrap().websocket,
        [websockets],
        "{}",
        forward.stderr()
    );
    forward.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forwards_through_the_websocket_tunnel() {
    forward_and_check(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forwards_over_plain_spdy() {
    forward_and_check(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_failure_is_reported_by_kubectl() {
    let api = start_api().await;
    let dead = dead_port().await;
    let forward = PortForward::start(&api, dead, true).await;
    let mut conn = forward.connect().await;
    // kubectl closes the local connection once the data stream ends.
    let mut rest = Vec::new();
    let _ = timeout(WAIT, conn.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    let expected = format!("error forwarding port {dead} to pod p_default, uid {POD_UID}: ");
    let reported = timeout(WAIT, async {
        loop {
            let stderr = forward.stderr();
            if stderr.contains(&expected) {
                return stderr;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("kubectl did not report the failure: {}", forward.stderr()));
    assert!(reported.contains("Connection refused"), "{reported}");
    forward.stop().await;
}
