//! The gateway on real loopback sockets, in front of test apps an in-test Upstream maps
//! Services to; plus curl and (when installed) headless Chromium as real clients.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::channel::{Channel, Sender};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::networking::v1::Ingress;
use slipway_gateway::{Backend, Gateway, Options, Upstream, UpstreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// RFC 6455's sample handshake: this key must be answered with this accept value.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const PAGE: &str =
    "<!doctype html><html><body><h1 id=\"greeting\">Hello from the preview</h1></body></html>";

// ----- the app behind the gateway -----

type AppBody = BoxBody<Bytes, Infallible>;

/// A test app: `/page` is an HTML page, `/stream` streams what the test sends, `/upload`
/// reports each chunk of the request body as it arrives, `/ws` is a WebSocket echo, and
/// anything else echoes the request line and headers.
struct App {
    addr: SocketAddr,
    next_stream: Mutex<Option<Channel<Bytes>>>,
    uploads: mpsc::UnboundedSender<Bytes>,
}

impl App {
    async fn start() -> (Arc<Self>, mpsc::UnboundedReceiver<Bytes>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (uploads, received) = mpsc::unbounded_channel();
        let app = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            next_stream: Mutex::new(None),
            uploads,
        });
        let server = app.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let app = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.answer(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        (app, received)
    }

    /// The sender of the next `/stream` response's body: the response ends when it is dropped.
    fn stream_next(&self) -> Sender<Bytes> {
        let (sender, body) = Channel::new(1);
        *self.next_stream.lock().unwrap() = Some(body);
        sender
    }

    async fn answer(&self, mut request: Request<Incoming>) -> Response<AppBody> {
        match request.uri().path() {
            "/page" => {
                let mut response = Response::new(full(PAGE));
                response.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
            "/stream" => {
                let body = self.next_stream.lock().unwrap().take().unwrap();
                Response::new(body.boxed())
            }
            "/upload" => {
                let mut body = request.into_body();
                let mut total = 0;
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.unwrap().into_data() {
                        total += data.len();
                        let _ = self.uploads.send(data);
                    }
                }
                Response::new(full(format!("received {total} bytes")))
            }
            "/ws" => {
                assert_eq!(request.headers()["sec-websocket-key"], WS_KEY);
                let upgrade = hyper::upgrade::on(&mut request);
                tokio::spawn(async move {
                    let mut socket = TokioIo::new(upgrade.await.unwrap());
                    ws_echo(&mut socket).await;
                });
                let mut response = Response::new(full(""));
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                let headers = response.headers_mut();
                headers.insert("upgrade", HeaderValue::from_static("websocket"));
                headers.insert("connection", HeaderValue::from_static("Upgrade"));
                headers.insert("sec-websocket-accept", HeaderValue::from_static(WS_ACCEPT));
                response
            }
            _ => {
                let mut echo = format!("{} {}\n", request.method(), request.uri());
                for (name, value) in request.headers() {
                    echo.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
                }
                Response::new(full(echo))
            }
        }
    }
}

fn full(text: impl Into<Bytes>) -> AppBody {
    Full::new(text.into()).boxed()
}

/// Echoes WebSocket text frames (masked from the client, unmasked back) until the client
/// closes; payloads under 126 bytes.
async fn ws_echo(socket: &mut TokioIo<hyper::upgrade::Upgraded>) {
    loop {
        let mut head = [0_u8; 2];
        if socket.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = usize::from(head[1] & 0x7f);
        let mut mask = [0_u8; 4];
        socket.read_exact(&mut mask).await.unwrap();
        let mut payload = vec![0_u8; len];
        socket.read_exact(&mut payload).await.unwrap();
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        let mut frame = vec![head[0], head[1] & 0x7f];
        frame.extend_from_slice(&payload);
        socket.write_all(&frame).await.unwrap();
    }
}

// ----- the Upstream: Services to test apps -----

#[derive(Clone, Copy)]
enum Target {
    At(SocketAddr),
    NoService,
    NotReady,
}

#[derive(Default)]
struct TestUpstream {
    services: Mutex<HashMap<String, Target>>,
}

impl TestUpstream {
    fn set(&self, service: &str, target: Target) {
        self.services
            .lock()
            .unwrap()
            .insert(service.to_owned(), target);
    }
}

#[async_trait::async_trait]
impl Upstream for TestUpstream {
    async fn connect(
        &self,
        backend: &Backend,
        _client: SocketAddr,
    ) -> Result<TcpStream, UpstreamError> {
        let key = format!("{}/{}", backend.namespace, backend.service);
        let target = self.services.lock().unwrap().get(&key).copied();
        match target.unwrap_or(Target::NoService) {
            Target::At(addr) => TcpStream::connect(addr)
                .await
                .map_err(UpstreamError::Connect),
            Target::NoService => Err(UpstreamError::UnknownService),
            Target::NotReady => Err(UpstreamError::NoReadyEndpoint),
        }
    }
}

// ----- the gateway under test -----

struct Harness {
    addr: SocketAddr,
    gateway: Arc<Gateway>,
    upstream: Arc<TestUpstream>,
    shutdown: CancellationToken,
    serve: JoinHandle<io::Result<()>>,
}

async fn gateway(options: Options, ingresses: &[Ingress]) -> Harness {
    let upstream = Arc::new(TestUpstream::default());
    let gateway = Arc::new(Gateway::new(upstream.clone(), options));
    gateway.set_ingresses(ingresses);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serve = tokio::spawn({
        let gateway = gateway.clone();
        let shutdown = shutdown.clone();
        async move { gateway.serve(listener, shutdown).await }
    });
    Harness {
        addr,
        gateway,
        upstream,
        shutdown,
        serve,
    }
}

/// An Ingress in namespace `demo` routing `host` (all paths) to `service` port 80.
fn ingress(name: &str, host: &str, service: &str) -> Ingress {
    serde_json::from_value(serde_json::json!({
        "metadata": { "namespace": "demo", "name": name },
        "spec": { "rules": [{ "host": host, "http": { "paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": { "service": { "name": service, "port": { "number": 80 } } },
        }] } }] },
    }))
    .unwrap()
}

/// A gateway routing `app.example.com` to a test app as `demo/web`.
async fn gateway_to_app(options: Options) -> (Harness, Arc<App>, mpsc::UnboundedReceiver<Bytes>) {
    let h = gateway(options, &[ingress("web", "app.example.com", "web")]).await;
    let (app, uploads) = App::start().await;
    h.upstream.set("demo/web", Target::At(app.addr));
    (h, app, uploads)
}

// ----- clients -----

async fn client(addr: SocketAddr) -> SendRequest<BoxBody<Bytes, Infallible>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

fn get(host: &str, path: &str) -> Request<BoxBody<Bytes, Infallible>> {
    Request::get(path)
        .header("host", host)
        .body(full(""))
        .unwrap()
}

async fn send(
    sender: &mut SendRequest<BoxBody<Bytes, Infallible>>,
    request: Request<BoxBody<Bytes, Infallible>>,
) -> (StatusCode, HeaderMap, String) {
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn fetch(addr: SocketAddr, host: &str, path: &str) -> (StatusCode, HeaderMap, String) {
    send(&mut client(addr).await, get(host, path)).await
}

/// Headers the app echoed, lowercase names.
fn echoed(echo: &str) -> HashMap<String, String> {
    echo.lines()
        .skip(1)
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Writes `bytes` on a fresh connection and reads until the gateway closes it.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    // A bound, not a measurement: the gateway closes at once after these answers.
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer));
    // A reset after the answer (the gateway closing with unread input) ends the read too.
    let _ = read.await.expect("the gateway kept the connection open");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads a response head off a raw connection, byte by byte so nothing after it is taken.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.unwrap();
        head.push(byte);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

// ----- the tests -----

#[tokio::test]
async fn forwards_to_the_routed_service_with_forwarded_headers_and_without_hop_by_hop_ones() {
    let (h, _app, _) = gateway_to_app(Options::default()).await;
    let request = Request::get("/some/path?q=1")
        .header("host", "App.Example.com:8080")
        .header("x-forwarded-for", "127.9.9.9")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eA==")
        .header("x-app", "kept")
        .body(full(""))
        .unwrap();
    let (status, _, echo) = send(&mut client(h.addr).await, request).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert!(echo.starts_with("GET /some/path?q=1\n"), "{echo}");
    let headers = echoed(&echo);
    assert_eq!(headers["host"], "App.Example.com:8080");
    assert_eq!(headers["x-forwarded-host"], "App.Example.com:8080");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-for"], "127.9.9.9, 127.0.0.1");
    assert_eq!(headers["x-app"], "kept");
    for hop in ["x-hop", "keep-alive", "proxy-authorization"] {
        assert!(!headers.contains_key(hop), "{hop} forwarded: {echo}");
    }
}

#[tokio::test]
async fn an_unknown_host_gets_a_404_page() {
    let (h, _app, _) = gateway_to_app(Options::default()).await;
    let (status, headers, body) = fetch(h.addr, "nowhere.example.com:8080", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(body.contains("No app at nowhere.example.com"), "{body}");
    assert!(body.contains("ingressClassName"), "{body}");
}

#[tokio::test]
async fn a_service_without_ready_endpoints_gets_a_503_page_naming_it() {
    let h = gateway(
        Options::default(),
        &[
            ingress("web", "app.example.com", "web"),
            ingress("api", "api.example.com", "api"),
        ],
    )
    .await;
    h.upstream.set("demo/web", Target::NotReady);

    let (status, headers, body) = fetch(h.addr, "app.example.com", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(body.contains("demo/web is not ready yet"), "{body}");
    assert!(body.contains("no ready endpoint"), "{body}");
    assert!(body.contains("retry shortly"), "{body}");

    // `demo/api` is not known to the Upstream at all.
    let (status, headers, body) = fetch(h.addr, "api.example.com", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert!(body.contains("demo/api is not ready yet"), "{body}");
    assert!(body.contains("does not exist in namespace demo"), "{body}");
}

#[tokio::test]
async fn json_clients_get_json_errors() {
    let h = gateway(Options::default(), &[]).await;
    let request = Request::get("/")
        .header("host", "nowhere.example.com")
        .header("accept", "application/json")
        .body(full(""))
        .unwrap();
    let (status, headers, body) = send(&mut client(h.addr).await, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["title"], "No app at nowhere.example.com");
}

#[tokio::test]
async fn a_refused_connection_gets_a_502_page() {
    let h = gateway(
        Options::default(),
        &[ingress("web", "app.example.com", "web")],
    )
    .await;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    h.upstream.set("demo/web", Target::At(closed));
    let (status, headers, body) = fetch(h.addr, "app.example.com", "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(body.contains("demo/web did not answer"), "{body}");
}

#[tokio::test]
async fn an_upstream_that_never_answers_gets_a_504_page() {
    let options = Options {
        request_timeout: Duration::from_millis(200),
        ..Options::default()
    };
    let h = gateway(options, &[ingress("web", "app.example.com", "web")]).await;
    // Accepts and holds connections, never answering.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    h.upstream
        .set("demo/web", Target::At(silent.local_addr().unwrap()));
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(silent.accept().await.unwrap());
        }
    });
    let (status, _, body) = fetch(h.addr, "app.example.com", "/").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("demo/web did not answer in time"), "{body}");
    holder.abort();
}

#[tokio::test]
async fn keep_alive_serves_two_requests_on_one_connection() {
    let (h, _app, _) = gateway_to_app(Options::default()).await;
    let mut sender = client(h.addr).await;
    let (first, _, _) = send(&mut sender, get("app.example.com", "/one")).await;
    let (second, _, echo) = send(&mut sender, get("app.example.com", "/two")).await;
    assert_eq!((first, second), (StatusCode::OK, StatusCode::OK));
    assert!(echo.starts_with("GET /two\n"), "{echo}");
}

#[tokio::test]
async fn a_streamed_response_reaches_the_client_before_the_upstream_finishes() {
    let (h, app, _) = gateway_to_app(Options::default()).await;
    let mut upstream_body = app.stream_next();
    let mut sender = client(h.addr).await;
    let response = sender
        .send_request(get("app.example.com", "/stream"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();

    upstream_body
        .send_data(Bytes::from("data: first\n\n"))
        .await
        .unwrap();
    // The upstream's body is still open: only streaming gets this frame through now.
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(frame, "data: first\n\n");

    upstream_body
        .send_data(Bytes::from("data: second\n\n"))
        .await
        .unwrap();
    drop(upstream_body);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "data: second\n\n");
}

#[tokio::test]
async fn a_streaming_response_outlives_the_idle_timeout() {
    let options = Options {
        idle_timeout: Duration::from_millis(50),
        header_timeout: Duration::from_millis(50),
        ..Options::default()
    };
    let (h, app, _) = gateway_to_app(options).await;
    let mut upstream_body = app.stream_next();
    let response = client(h.addr)
        .await
        .send_request(get("app.example.com", "/stream"))
        .await
        .unwrap();
    let mut body = response.into_body();
    upstream_body.send_data(Bytes::from("a")).await.unwrap();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "a"
    );
    // Quiet for longer than both timeouts: a request in flight is not idle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    upstream_body.send_data(Bytes::from("b")).await.unwrap();
    drop(upstream_body);
    assert_eq!(body.collect().await.unwrap().to_bytes(), "b");
}

#[tokio::test]
async fn a_request_body_streams_to_the_upstream() {
    let (h, _app, mut uploads) = gateway_to_app(Options::default()).await;
    let (mut request_body, body) = Channel::<Bytes, Infallible>::new(1);
    let request = Request::post("/upload")
        .header("host", "app.example.com")
        .body(body.boxed())
        .unwrap();
    let mut sender = client(h.addr).await;
    let response = tokio::spawn(async move { send(&mut sender, request).await });

    request_body
        .send_data(Bytes::from("part one"))
        .await
        .unwrap();
    // The client has not finished its body, yet the upstream already has this part.
    assert_eq!(uploads.recv().await.unwrap(), "part one");
    request_body
        .send_data(Bytes::from("part two"))
        .await
        .unwrap();
    assert_eq!(uploads.recv().await.unwrap(), "part two");
    drop(request_body);

    let (status, _, answer) = response.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, "received 16 bytes");
}

#[tokio::test]
async fn a_websocket_upgrade_is_spliced_through() {
    let (h, _app, _) = gateway_to_app(Options::default()).await;
    let mut socket = TcpStream::connect(h.addr).await.unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: app.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(handshake.as_bytes()).await.unwrap();
    let head = read_head(&mut socket).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    assert!(
        head.contains(&format!(
            "sec-websocket-accept: {}\r\n",
            WS_ACCEPT.to_ascii_lowercase()
        )),
        "{head}"
    );

    for message in ["hello", "and again"] {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut frame = vec![0x81, 0x80 | u8::try_from(message.len()).unwrap()];
        frame.extend_from_slice(&mask);
        frame.extend(message.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        socket.write_all(&frame).await.unwrap();

        let mut echo = vec![0_u8; 2 + message.len()];
        socket.read_exact(&mut echo).await.unwrap();
        assert_eq!(echo[..2], [0x81, u8::try_from(message.len()).unwrap()]);
        assert_eq!(&echo[2..], message.as_bytes());
    }
}

#[tokio::test]
async fn an_absolute_form_target_is_routed_by_its_authority_and_sent_in_origin_form() {
    let (h, _app, _) = gateway_to_app(Options::default()).await;
    let answer = raw(
        h.addr,
        b"GET http://app.example.com/abs?x=1 HTTP/1.1\r\nHost: other.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("GET /abs?x=1\n"), "{answer}");
    assert!(answer.contains("host: app.example.com\n"), "{answer}");
}

#[tokio::test]
async fn bad_requests_get_4xx_answers() {
    let (h, _app, _) = gateway_to_app(Options::default()).await;
    let bad_host = raw(h.addr, b"GET / HTTP/1.1\r\nHost: a.com:x\r\n\r\n").await;
    assert!(bad_host.starts_with("HTTP/1.1 400"), "{bad_host}");
    let no_host = raw(h.addr, b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");
    let two_hosts = raw(
        h.addr,
        b"GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n",
    )
    .await;
    assert!(two_hosts.starts_with("HTTP/1.1 400"), "{two_hosts}");
    let garbage = raw(h.addr, b"\x00\x01 not http at all\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: app.example.com\r\nX-Big: {}\r\n\r\n",
        "a".repeat(128 * 1024)
    );
    let huge = raw(h.addr, huge.as_bytes()).await;
    assert!(huge.starts_with("HTTP/1.1 431"), "{huge}");
    let connect = raw(
        h.addr,
        b"CONNECT app.example.com:443 HTTP/1.1\r\nHost: app.example.com:443\r\n\r\n",
    )
    .await;
    assert!(connect.starts_with("HTTP/1.1 405"), "{connect}");

    // None of it hurt the gateway.
    let (status, _, _) = fetch(h.addr, "app.example.com", "/").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn new_ingresses_take_over_at_once() {
    let (h, app, _) = gateway_to_app(Options::default()).await;
    let (status, _, _) = fetch(h.addr, "new.example.com", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    h.upstream.set("demo/new", Target::At(app.addr));
    h.gateway
        .set_ingresses(&[ingress("new", "new.example.com", "new")]);
    let (status, _, _) = fetch(h.addr, "new.example.com", "/").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = fetch(h.addr, "app.example.com", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let idle_timeout = Duration::from_millis(200);
    let (h, _app, _) = gateway_to_app(Options {
        idle_timeout,
        ..Options::default()
    })
    .await;
    // The gateway's idle clock starts once it has sent the answer, so after this; the
    // client may read the answer later than it was sent.
    let asked = Instant::now();
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body).await.unwrap();

    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert!(asked.elapsed() >= idle_timeout);
}

#[tokio::test]
async fn a_slow_request_head_is_cut_after_the_header_timeout() {
    let header_timeout = Duration::from_millis(200);
    let (h, _app, _) = gateway_to_app(Options {
        header_timeout,
        ..Options::default()
    })
    .await;
    let connected = Instant::now();
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.exa")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(connected.elapsed() >= header_timeout);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_the_request_in_flight_finish() {
    let (h, app, _) = gateway_to_app(Options {
        shutdown_grace: Duration::from_secs(600),
        ..Options::default()
    })
    .await;
    let mut upstream_body = app.stream_next();
    let response = client(h.addr)
        .await
        .send_request(get("app.example.com", "/stream"))
        .await
        .unwrap();
    let mut body = response.into_body();
    upstream_body
        .send_data(Bytes::from("before"))
        .await
        .unwrap();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "before"
    );

    h.shutdown.cancel();
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(h.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "still accepting after the shutdown");
    assert!(
        !h.serve.is_finished(),
        "serve returned with a request in flight"
    );

    upstream_body.send_data(Bytes::from("after")).await.unwrap();
    drop(upstream_body);
    assert_eq!(body.collect().await.unwrap().to_bytes(), "after");
    h.serve.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_cuts_what_outlives_the_grace() {
    let (h, app, _) = gateway_to_app(Options {
        shutdown_grace: Duration::from_millis(100),
        ..Options::default()
    })
    .await;
    let _upstream_body = app.stream_next();
    let response = client(h.addr)
        .await
        .send_request(get("app.example.com", "/stream"))
        .await
        .unwrap();
    h.shutdown.cancel();
    h.serve.await.unwrap().unwrap();
    // The response never finished: its connection was cut.
    assert!(response.into_body().collect().await.is_err());
}

/// A `*.preview.localhost` host as a preview gets it; curl resolves `*.localhost` to loopback.
async fn preview_gateway() -> (Harness, Arc<App>, String) {
    let h = gateway(
        Options::default(),
        &[ingress("preview", "pr-7.preview.localhost", "web")],
    )
    .await;
    let (app, _) = App::start().await;
    h.upstream.set("demo/web", Target::At(app.addr));
    let url = format!("http://pr-7.preview.localhost:{}", h.addr.port());
    (h, app, url)
}

#[tokio::test]
async fn curl_reaches_a_preview_host() {
    let (_h, _app, url) = preview_gateway().await;
    let output = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--noproxy",
            "*",
            "--max-time",
            "60",
        ])
        .arg(format!("{url}/echo"))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("GET /echo\n"), "{stdout}");
    assert_eq!(echoed(&stdout)["host"], url.trim_start_matches("http://"));

    let page = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--noproxy",
            "*",
            "--max-time",
            "60",
        ])
        .arg(format!("{url}/page"))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&page.stdout), PAGE);
}

#[tokio::test]
async fn chromium_shows_a_preview_page() {
    let (_h, _app, url) = preview_gateway().await;
    let profile = tempfile::tempdir().unwrap();
    let spawned = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-proxy-server",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{url}/page"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let output = match spawned {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            eprintln!("skipped: chromium is not installed (scripts/install-deps installs it)");
            return;
        }
        spawned => spawned.unwrap(),
    };
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dom.contains("<h1 id=\"greeting\">Hello from the preview</h1>"),
        "{dom}"
    );
}

/// Records what the gateway reports; "wakes" the app by pointing its Service at it.
struct Wakes {
    seen: Mutex<Vec<(String, bool)>>,
    upstream: Arc<TestUpstream>,
    app: Option<SocketAddr>,
}

impl slipway_gateway::Activity for Wakes {
    fn request(&self, namespace: &str, waiting: bool) {
        self.seen
            .lock()
            .unwrap()
            .push((namespace.to_owned(), waiting));
        if waiting && let Some(app) = self.app {
            let upstream = self.upstream.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                upstream.set("demo/web", Target::At(app));
            });
        }
    }
}

async fn wakeable(wakes_up: bool, options: Options) -> (SocketAddr, Arc<Wakes>, CancellationToken) {
    let upstream = Arc::new(TestUpstream::default());
    let (app, _) = App::start().await;
    let wakes = Arc::new(Wakes {
        seen: Mutex::new(Vec::new()),
        upstream: upstream.clone(),
        app: wakes_up.then_some(app.addr),
    });
    let gateway = Arc::new(Gateway::with_activity(
        upstream.clone(),
        Some(wakes.clone() as Arc<dyn slipway_gateway::Activity>),
        options,
    ));
    let mut sleepy = ingress("web", "app.example.com", "web");
    sleepy.metadata.annotations = Some(
        [(
            slipway_gateway::WAKE_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    let mut awake = ingress("api", "api.example.com", "api");
    awake.metadata.namespace = Some("other".to_owned());
    gateway.set_ingresses(&[sleepy, awake]);
    upstream.set("demo/web", Target::NotReady);
    upstream.set("other/api", Target::At(app.addr));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { gateway.serve(listener, shutdown).await }
    });
    (addr, wakes, shutdown)
}

#[tokio::test]
async fn a_sleeping_app_is_woken_and_the_request_held_until_it_answers() {
    let (addr, wakes, shutdown) = wakeable(true, Options::default()).await;
    let (status, _, body) = fetch(addr, "app.example.com", "/hello").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("GET /hello"), "{body}");
    let seen = wakes.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [("demo".to_owned(), false), ("demo".to_owned(), true)]
    );
    // A namespace without the annotation is neither reported nor held.
    let (status, _, _) = fetch(addr, "api.example.com", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wakes.seen.lock().unwrap().len(), 2);
    shutdown.cancel();
}

#[tokio::test]
async fn an_app_that_does_not_wake_in_time_gets_a_waking_page_that_reloads() {
    let options = Options {
        wake_hold: Duration::from_millis(200),
        ..Options::default()
    };
    let (addr, wakes, shutdown) = wakeable(false, options).await;
    let (status, headers, body) = fetch(addr, "app.example.com", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert!(body.contains("Waking up demo"), "{body}");
    assert!(body.contains("http-equiv=\"refresh\""), "{body}");
    assert_eq!(
        wakes.seen.lock().unwrap().last(),
        Some(&("demo".to_owned(), true))
    );
    shutdown.cancel();
}
