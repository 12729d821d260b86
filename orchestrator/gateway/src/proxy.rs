//! One request: route it, forward it on a fresh upstream connection, and stream the answer back.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper::header::{ACCEPT, CONNECTION, HOST, HeaderMap, HeaderName, HeaderValue, UPGRADE};
use hyper::http::uri::{PathAndQuery, Uri};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::ResponseBody;
use crate::host::request_host;
use crate::pages::{Problem, page};
use crate::upstream::{Backend, UpstreamError};
use crate::{Options, Shared};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Hop-by-hop headers (RFC 9110 §7.6.1, and the older ones clients still send): they describe
/// one connection, so they are never forwarded, nor is any header that `Connection` names.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What every request of one `serve` shares.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) shared: Arc<Shared>,
    /// Upgraded connections and upstream connections are tasks of their own; tracked, they
    /// hold the shutdown until they finish.
    pub(crate) tracker: TaskTracker,
    /// Cancelled when the gateway stops accepting: connections close after their request.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the shutdown's grace has run out: everything closes.
    pub(crate) force: CancellationToken,
}

impl Context {
    pub(crate) fn options(&self) -> &Options {
        &self.shared.options
    }
}

/// Answers one request; failures are error pages, never errors, so the connection lives on.
pub(crate) async fn handle(
    ctx: &Context,
    mut request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let json = wants_json(request.headers());
    if request.method() == Method::CONNECT {
        return page(&Problem::Connect, json);
    }
    let host = match request_host(request.version(), request.uri(), request.headers()) {
        Ok(host) => host,
        Err(error) => return page(&Problem::BadRequest(&error.to_string()), json),
    };
    let routes = ctx.shared.routes();
    let Some(backend) = routes.route(&host, request.uri().path()).cloned() else {
        tracing::debug!(%host, path = request.uri().path(), "no route");
        return page(
            &Problem::NoRoute {
                host: &host,
                path: request.uri().path(),
                host_known: routes.knows_host(&host),
            },
            json,
        );
    };
    let wakes = routes.wakes(&backend.namespace);
    drop(routes);
    if wakes && let Some(activity) = &ctx.shared.activity {
        activity.request(&backend.namespace, false);
    }

    let upgrade = wants_upgrade(request.headers());
    let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let request = match upstream_request(request, peer, upgrade) {
        Ok(request) => request,
        Err(reason) => return page(&Problem::BadRequest(reason), json),
    };

    let timeout = ctx.options().request_timeout;
    let exchange =
        tokio::time::timeout(timeout, exchange(ctx, &backend, peer, request, wakes)).await;
    let mut response = match exchange {
        Ok(Ok(response)) => response,
        Ok(Err(Failure::Waking)) => return page(&Problem::Waking { backend: &backend }, json),
        Ok(Err(Failure::Upstream(
            error @ (UpstreamError::UnknownService | UpstreamError::NoReadyEndpoint),
        ))) => {
            tracing::debug!(%backend, "backend not ready: {error}");
            return page(
                &Problem::NotReady {
                    backend: &backend,
                    error: &error,
                },
                json,
            );
        }
        Ok(Err(failure)) => {
            tracing::warn!(%backend, "bad gateway: {failure}");
            return page(
                &Problem::BadGateway {
                    backend: &backend,
                    detail: &failure.to_string(),
                },
                json,
            );
        }
        Err(_elapsed) => {
            tracing::warn!(%backend, ?timeout, "no response head in time");
            return page(
                &Problem::Timeout {
                    backend: &backend,
                    timeout,
                },
                json,
            );
        }
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(downstream) = downstream_upgrade else {
            tracing::warn!(%backend, "bad gateway: switched protocols unasked");
            return page(
                &Problem::BadGateway {
                    backend: &backend,
                    detail: "it switched protocols though the request asked for no upgrade",
                },
                json,
            );
        };
        remove_hop_by_hop(response.headers_mut(), true);
        let upstream = hyper::upgrade::on(&mut response);
        ctx.tracker
            .spawn(splice(downstream, upstream, ctx.force.clone(), backend));
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, ResponseBody::empty());
    }
    remove_hop_by_hop(response.headers_mut(), false);
    response.map(ResponseBody::upstream)
}

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The Upstream found no endpoint or could not connect.
    #[error(transparent)]
    Upstream(UpstreamError),
    /// The endpoint's HTTP went wrong: it closed early or answered garbage.
    #[error("{0}")]
    Http(#[source] hyper::Error),
    /// A wakeable app found no ready endpoint within the wake hold.
    #[error("the app is waking up")]
    Waking,
}

/// A connection to `backend`; for a wakeable namespace whose app has no ready endpoint, the
/// app is woken and asked again every 100 ms for up to [`Options::wake_hold`].
async fn connect(
    ctx: &Context,
    backend: &Backend,
    peer: SocketAddr,
    wakes: bool,
) -> Result<tokio::net::TcpStream, Failure> {
    let upstream = &ctx.shared.upstream;
    let activity = ctx.shared.activity.as_ref().filter(|_| wakes);
    let Some(activity) = activity else {
        return upstream
            .connect(backend, peer)
            .await
            .map_err(Failure::Upstream);
    };
    let deadline = tokio::time::Instant::now() + ctx.options().wake_hold;
    let mut told = false;
    loop {
        match upstream.connect(backend, peer).await {
            Err(UpstreamError::NoReadyEndpoint | UpstreamError::UnknownService) => {
                if !told {
                    activity.request(&backend.namespace, true);
                    told = true;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Failure::Waking);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other.map_err(Failure::Upstream),
        }
    }
}

/// Connects, sends the request and waits for the response head; its body streams afterwards.
async fn exchange(
    ctx: &Context,
    backend: &Backend,
    peer: SocketAddr,
    request: Request<Incoming>,
    wakes: bool,
) -> Result<Response<Incoming>, Failure> {
    let stream = connect(ctx, backend, peer, wakes).await?;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%backend, "cannot set TCP_NODELAY: {error}");
    }
    let (mut sender, connection) = client::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(Failure::Http)?;
    let force = ctx.force.clone();
    ctx.tracker.spawn(async move {
        tokio::select! {
            result = connection.with_upgrades() => {
                if let Err(error) = result {
                    tracing::debug!("upstream connection ended: {error}");
                }
            }
            () = force.cancelled() => {}
        }
    });
    sender.send_request(request).await.map_err(Failure::Http)
}

/// Copies bytes both ways between an upgraded downstream and upstream connection until both
/// are done.
async fn splice(
    downstream: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    force: CancellationToken,
    backend: Backend,
) {
    let (downstream, upstream) = match tokio::try_join!(downstream, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%backend, "upgrade failed: {error}");
            return;
        }
    };
    let mut downstream = TokioIo::new(downstream);
    let mut upstream = TokioIo::new(upstream);
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut downstream, &mut upstream) => {
            if let Err(error) = result {
                tracing::debug!(%backend, "upgraded connection ended: {error}");
            }
        }
        () = force.cancelled() => {}
    }
}

/// The request as the upstream gets it: origin-form target, hop-by-hop headers removed, the
/// original Host kept and the `X-Forwarded-*` headers set.
fn upstream_request(
    request: Request<Incoming>,
    peer: SocketAddr,
    upgrade: bool,
) -> Result<Request<Incoming>, &'static str> {
    let (mut parts, body) = request.into_parts();
    // RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host header.
    let host = match parts.uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => parts.headers.get(HOST).cloned(),
    };
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(path);
    parts.version = Version::HTTP_11;

    let headers = &mut parts.headers;
    remove_hop_by_hop(headers, upgrade);
    let client = peer.ip().to_canonical().to_string();
    let forwarded_for = {
        let earlier: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        if earlier.is_empty() {
            client
        } else {
            format!("{}, {client}", earlier.join(", "))
        }
    };
    headers.insert(
        X_FORWARDED_FOR,
        HeaderValue::from_str(&forwarded_for).map_err(|_| "bad X-Forwarded-For header")?,
    );
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host.clone());
            headers.insert(HOST, host);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
    Ok(Request::from_parts(parts, body))
}

/// Removes the hop-by-hop headers; for an upgrade, `Upgrade` and `Connection: upgrade` pass.
fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    let upgrade_value = headers.get(UPGRADE).cloned();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if let (true, Some(protocol)) = (upgrade, upgrade_value) {
        headers.insert(UPGRADE, protocol);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether the request asks to switch protocols: `Upgrade` and a `Connection` naming it.
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether the client would rather read JSON than HTML (an API client, not a browser).
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    accept.contains("application/json") && !accept.contains("text/html")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Session"),
            ("keep-alive", "timeout=5"),
            ("x-session", "secret"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut map, false);
        assert_eq!(map, headers(&[("accept", "*/*")]));
    }

    #[test]
    fn an_upgrade_keeps_upgrade_and_connection_upgrade() {
        let mut map = headers(&[
            ("connection", "Upgrade, keep-alive"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(wants_upgrade(&map));
        remove_hop_by_hop(&mut map, true);
        assert_eq!(
            map,
            headers(&[
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-key", "k")
            ])
        );
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(!wants_upgrade(&headers(&[("upgrade", "websocket")])));
        assert!(!wants_upgrade(&headers(&[("connection", "upgrade")])));
    }

    #[test]
    fn json_only_when_asked_for_and_html_is_not() {
        assert!(wants_json(&headers(&[("accept", "application/json")])));
        assert!(!wants_json(&headers(&[(
            "accept",
            "text/html,application/json;q=0.9"
        )])));
        assert!(!wants_json(&headers(&[("accept", "*/*")])));
        assert!(!wants_json(&headers(&[])));
    }
}
