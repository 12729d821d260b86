//! Answering the HTTP upgrade that starts a SPDY session, plain or tunnelled.
//!
//! kubectl 1.32 first asks for a WebSocket with the subprotocol `SPDY/3.1+<protocol>`
//! (client-go's tunneling dialer; the API server's `streamtunnel.go` answers it with the
//! backend's chosen protocol under the same prefix) and, when that upgrade fails, falls
//! back to `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: <protocol>` (answered as
//! apimachinery's `httpstream.Handshake` and `spdy.responseUpgrader` do). [`negotiate`]
//! reads the request's headers and picks one; [`Negotiated::response_headers`] are the
//! headers of the `101 Switching Protocols` answer; [`Negotiated::wrap`] turns the
//! upgraded connection into the byte stream a [`crate::Session`] runs on.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::websocket;

/// The `Upgrade` token of plain SPDY.
const SPDY_31: &str = "SPDY/3.1";
/// What client-go puts before a protocol to ask for it tunnelled in a WebSocket.
const TUNNEL_PREFIX: &str = "SPDY/3.1+";
/// The header that carries stream protocols on a plain SPDY upgrade.
const PROTOCOL_VERSION: &str = "x-stream-protocol-version";

/// Why an upgrade request cannot be served; answered with [`NegotiateError::status`] and
/// the message as a plain-text body, as Kubernetes does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiateError {
    /// Neither a WebSocket nor a SPDY/3.1 upgrade.
    #[error("unable to upgrade: missing upgrade headers in request")]
    NotAnUpgrade,
    /// A WebSocket upgrade without a valid key or version 13.
    #[error("unable to upgrade: {0}")]
    BadWebSocket(&'static str),
    /// A WebSocket upgrade that offers no `SPDY/3.1+` protocol.
    #[error("unable to upgrade: no tunneling spdy protocols provided")]
    NoTunnelingProtocol,
    /// A SPDY upgrade without `X-Stream-Protocol-Version`.
    #[error("unable to upgrade: X-Stream-Protocol-Version is required")]
    NoProtocol,
    /// No protocol the client offers is one the server speaks.
    #[error(
        "unable to upgrade: unable to negotiate protocol: client supports {client:?}, server accepts {server:?}"
    )]
    NoCommonProtocol {
        /// What the client offered.
        client: Vec<String>,
        /// What the server speaks.
        server: Vec<String>,
    },
}

impl NegotiateError {
    /// The status to answer with: 403 when the protocols do not match, 400 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            NegotiateError::NoCommonProtocol { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An upgrade request this end can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    protocol: &'static str,
    transport: Transport,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Transport {
    Spdy,
    WebSocket { accept: String },
}

/// Picks the transport and the stream protocol for an upgrade request, the first of the
/// client's protocols that `supported` holds (e.g. [`crate::PORT_FORWARD_PROTOCOL`]).
pub fn negotiate(
    headers: &HeaderMap,
    supported: &[&'static str],
) -> Result<Negotiated, NegotiateError> {
    if !has_token(headers, &header::CONNECTION, "upgrade") {
        return Err(NegotiateError::NotAnUpgrade);
    }
    if has_token(headers, &header::UPGRADE, "websocket") {
        negotiate_websocket(headers, supported)
    } else if headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|value| contains_ignore_case(value.as_bytes(), SPDY_31))
    {
        let offered = list(headers, PROTOCOL_VERSION);
        if offered.is_empty() {
            return Err(NegotiateError::NoProtocol);
        }
        let protocol = choose(&offered, supported)?;
        Ok(Negotiated {
            protocol,
            transport: Transport::Spdy,
        })
    } else {
        Err(NegotiateError::NotAnUpgrade)
    }
}

fn negotiate_websocket(
    headers: &HeaderMap,
    supported: &[&'static str],
) -> Result<Negotiated, NegotiateError> {
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(NegotiateError::BadWebSocket(
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|key| key.to_str().ok())
        .map(str::trim)
        .filter(|key| key.len() == 24 && key.ends_with("=="))
        .ok_or(NegotiateError::BadWebSocket(
            "Sec-WebSocket-Key is missing or invalid",
        ))?;
    let offered: Vec<String> = list(headers, header::SEC_WEBSOCKET_PROTOCOL.as_str())
        .into_iter()
        .filter_map(|protocol| protocol.strip_prefix(TUNNEL_PREFIX).map(str::to_owned))
        .collect();
    if offered.is_empty() {
        return Err(NegotiateError::NoTunnelingProtocol);
    }
    let protocol = choose(&offered, supported)?;
    Ok(Negotiated {
        protocol,
        transport: Transport::WebSocket {
            accept: websocket::accept_key(key),
        },
    })
}

fn choose(offered: &[String], supported: &[&'static str]) -> Result<&'static str, NegotiateError> {
    offered
        .iter()
        .find_map(|protocol| supported.iter().find(|ours| **ours == protocol))
        .copied()
        .ok_or_else(|| NegotiateError::NoCommonProtocol {
            client: offered.to_vec(),
            server: supported
                .iter()
                .map(|protocol| (*protocol).to_owned())
                .collect(),
        })
}

/// Every comma-separated, trimmed, non-empty item of every value of `name`.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

fn has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

fn contains_ignore_case(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

impl Negotiated {
    /// The stream protocol both ends speak, without any tunnel prefix.
    pub fn protocol(&self) -> &'static str {
        self.protocol
    }

    /// Whether SPDY runs inside a WebSocket.
    pub fn is_websocket(&self) -> bool {
        matches!(self.transport, Transport::WebSocket { .. })
    }

    /// The headers of the `101 Switching Protocols` answer.
    pub fn response_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        match &self.transport {
            Transport::Spdy => {
                headers.insert(header::UPGRADE, HeaderValue::from_static(SPDY_31));
                headers.insert(PROTOCOL_VERSION, HeaderValue::from_static(self.protocol));
            }
            Transport::WebSocket { accept } => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                if let Ok(accept) = HeaderValue::from_str(accept) {
                    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
                }
                if let Ok(protocol) =
                    HeaderValue::from_str(&format!("{TUNNEL_PREFIX}{}", self.protocol))
                {
                    headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
                }
            }
        }
        headers
    }

    /// The byte stream SPDY runs on, from the connection after the 101 answer: the
    /// connection itself, or a WebSocket tunnel over it (which needs a Tokio runtime).
    pub fn wrap<S>(&self, io: S) -> Upgraded<S>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Upgraded(match self.transport {
            Transport::Spdy => Inner::Plain(io),
            Transport::WebSocket { .. } => Inner::Tunnel(websocket::tunnel(io)),
        })
    }
}

/// An upgraded connection as a byte stream for [`crate::Session`].
pub struct Upgraded<S>(Inner<S>);

enum Inner<S> {
    Plain(S),
    Tunnel(DuplexStream),
}

impl<S: AsyncRead + Unpin> AsyncRead for Upgraded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Inner::Tunnel(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Upgraded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Inner::Tunnel(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Plain(io) => Pin::new(io).poll_flush(cx),
            Inner::Tunnel(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Inner::Tunnel(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PORT_FORWARD_PROTOCOL;

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn kubectls_websocket_request_gets_the_tunnelled_protocol() {
        let headers = request(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ]);
        let negotiated = negotiate(&headers, &[PORT_FORWARD_PROTOCOL]).unwrap();
        assert!(negotiated.is_websocket());
        assert_eq!(negotiated.protocol(), "portforward.k8s.io");
        let answer = negotiated.response_headers();
        assert_eq!(answer["upgrade"], "websocket");
        assert_eq!(answer["connection"], "Upgrade");
        assert_eq!(
            answer["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            answer["sec-websocket-protocol"],
            "SPDY/3.1+portforward.k8s.io"
        );
    }

    #[test]
    fn kubectls_spdy_request_gets_spdy() {
        let headers = request(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "portforward.k8s.io"),
        ]);
        let negotiated = negotiate(&headers, &[PORT_FORWARD_PROTOCOL]).unwrap();
        assert!(!negotiated.is_websocket());
        let answer = negotiated.response_headers();
        assert_eq!(answer["upgrade"], "SPDY/3.1");
        assert_eq!(answer["x-stream-protocol-version"], "portforward.k8s.io");
    }

    #[test]
    fn the_clients_first_supported_protocol_wins() {
        let headers = request(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "SPDY/3.1"),
            (
                "x-stream-protocol-version",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            ),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
        ]);
        let negotiated = negotiate(&headers, &["v3.channel.k8s.io", "v4.channel.k8s.io"]).unwrap();
        assert_eq!(negotiated.protocol(), "v4.channel.k8s.io");
    }

    #[test]
    fn bad_requests_are_refused_with_kubernetes_messages() {
        let spdy = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")];
        let ws = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let cases: Vec<(Vec<(&str, &str)>, NegotiateError)> = vec![
            (vec![], NegotiateError::NotAnUpgrade),
            (
                vec![("connection", "Upgrade"), ("upgrade", "h2c")],
                NegotiateError::NotAnUpgrade,
            ),
            (vec![("upgrade", "SPDY/3.1")], NegotiateError::NotAnUpgrade),
            (spdy.to_vec(), NegotiateError::NoProtocol),
            (
                [&spdy[..], &[("x-stream-protocol-version", "other")]].concat(),
                NegotiateError::NoCommonProtocol {
                    client: vec!["other".into()],
                    server: vec!["portforward.k8s.io".into()],
                },
            ),
            (
                [&ws[..], &[("sec-websocket-protocol", "v5.channel.k8s.io")]].concat(),
                NegotiateError::NoTunnelingProtocol,
            ),
            (
                [
                    &ws[..2],
                    &[("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io")],
                ]
                .concat(),
                NegotiateError::BadWebSocket("Sec-WebSocket-Version must be 13"),
            ),
            (
                [
                    &ws[..3],
                    &[("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io")],
                ]
                .concat(),
                NegotiateError::BadWebSocket("Sec-WebSocket-Key is missing or invalid"),
            ),
        ];
        for (pairs, expected) in cases {
            let err = negotiate(&request(&pairs), &[PORT_FORWARD_PROTOCOL]).unwrap_err();
            assert_eq!(err, expected, "{pairs:?}");
        }
        let forbidden = NegotiateError::NoCommonProtocol {
            client: vec![],
            server: vec![],
        };
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(NegotiateError::NoProtocol.status(), StatusCode::BAD_REQUEST);
    }
}
