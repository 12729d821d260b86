//! The body of every response the gateway sends: an error page or the upstream's stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

use crate::conn::InFlight;

/// A response body; it keeps its request counted as in flight until it is sent or dropped, so
/// a streaming response is never cut by the connection's idle timeout.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    inner: Inner,
    in_flight: Option<InFlight>,
}

#[derive(Debug)]
enum Inner {
    Full(Full<Bytes>),
    Upstream(Incoming),
}

impl ResponseBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Full(Full::new(bytes.into())),
            in_flight: None,
        }
    }

    pub(crate) fn empty() -> Self {
        Self::full(Bytes::new())
    }

    pub(crate) fn upstream(body: Incoming) -> Self {
        Self {
            inner: Inner::Upstream(body),
            in_flight: None,
        }
    }

    pub(crate) fn set_in_flight(&mut self, in_flight: InFlight) {
        self.in_flight = Some(in_flight);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(|never: Infallible| match never {}))),
            Inner::Upstream(incoming) => Pin::new(incoming).poll_frame(cx),
        };
        if let Poll::Ready(None | Some(Err(_))) = polled {
            // The request is done with its last frame, whenever hyper gets to drop the body.
            this.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(full) => full.is_end_stream(),
            Inner::Upstream(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(full) => full.size_hint(),
            Inner::Upstream(incoming) => incoming.size_hint(),
        }
    }
}
