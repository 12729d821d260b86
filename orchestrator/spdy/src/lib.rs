//! SPDY/3.1 sessions as kubectl speaks them, server side, and `kubectl port-forward`'s
//! protocol on top: what a node agent needs to serve `/portForward/{ns}/{pod}`, and exec
//! and attach over SPDY, the way the kubelet does; and the frames and header compression
//! for a client.
//!
//! # Layers
//!
//! * [`negotiate`] reads an upgrade request's headers: kubectl 1.32 asks for a WebSocket
//!   carrying SPDY (subprotocol `SPDY/3.1+portforward.k8s.io`) and falls back to a plain
//!   `Upgrade: SPDY/3.1`. The [`Negotiated`] answer gives the `101` response headers and
//!   [`Negotiated::wrap`]s the upgraded connection into the byte stream SPDY runs on.
//! * [`Session`] is a SPDY/3.1 server session on that stream, compatible with Go's
//!   `moby/spdystream` (client-go's implementation): the client opens streams with
//!   headers, the server accepts ([`IncomingStream::accept`]) or refuses them, and each
//!   accepted [`Stream`] carries bytes both ways with half-close (FIN) and reset.
//! * [`serve_port_forward`] speaks `portforward.k8s.io` on a session: error and data
//!   streams paired by request id, each pair forwarded to a port through a [`Dial`].
//! * For the client side (the CLI's `port-forward`), the wire format alone: [`Frame`]s
//!   written with [`encode`] and read with [`decode`], their header blocks compressed by a
//!   [`HeaderCompressor`] and inflated by a [`HeaderDecompressor`] with the SPDY/3
//!   dictionary, one of each per session. A client keeps its own streams.
//!
//! # From an HTTP handler
//!
//! Call [`negotiate`] with the request's headers and [`PORT_FORWARD_PROTOCOL`]; on an
//! error answer [`NegotiateError::status`] with the error's text. Otherwise take hyper's
//! upgrade future (`hyper::upgrade::on(&mut request)`), answer `101 Switching Protocols`
//! with [`Negotiated::response_headers`], and in a task await the upgrade and run
//! `serve_port_forward(negotiated.wrap(TokioIo::new(upgraded)), dialer, options, token)`.
//! The crate's kubectl test (`tests/kubectl.rs`) does exactly this with axum.

mod compress;
mod dictionary;
mod frame;
mod portforward;
mod session;
mod upgrade;
mod websocket;

pub use compress::{HeaderCompressor, HeaderDecompressor};
pub use frame::{Frame, FrameError, decode, encode};
pub use portforward::{Dial, PORT_FORWARD_PROTOCOL, PortForwardOptions, serve_port_forward};
pub use session::{
    Error, IncomingStream, STREAM_BUFFER, Session, Stream, StreamReader, StreamWriter,
};
pub use upgrade::{NegotiateError, Negotiated, Upgraded, negotiate};
