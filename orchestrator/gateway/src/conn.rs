//! One downstream connection: HTTP/1.1 with keep-alive, and the header and idle timeouts.
//!
//! Hyper's own header read timeout also runs while a keep-alive connection waits for its next
//! request, so it cannot tell a slow request head from an idle connection. The gateway keeps
//! both clocks itself: [`Watched`] sees the bytes arrive, [`InFlight`] guards mark requests
//! from head to the end of their response, and the connection's task closes the connection
//! when the clock of its current phase runs out: the header timeout from its accept until the
//! first request head, and from the first byte of every later head; the idle timeout from the
//! end of a response until the next byte. A request in flight has no clock here; the request
//! timeout bounds the wait for its response head.

use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::proxy::{self, Context as ProxyContext};

/// Serves one accepted connection until the client closes it, a timeout closes it, or the
/// shutdown does: at `ctx.shutdown` the connection finishes its request in flight and closes,
/// at `ctx.force` it closes at once.
pub(crate) async fn serve(ctx: Arc<ProxyContext>, stream: TcpStream, peer: SocketAddr) {
    let options = ctx.options();
    let activity = Arc::new(Activity::new(options.header_timeout, options.idle_timeout));
    let io = TokioIo::new(Watched {
        io: stream,
        activity: activity.clone(),
    });
    let service = {
        let ctx = ctx.clone();
        let activity = activity.clone();
        service_fn(move |request| {
            let in_flight = activity.begin();
            let ctx = ctx.clone();
            async move {
                let mut response = proxy::handle(&ctx, request, peer).await;
                response.body_mut().set_in_flight(in_flight);
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut connection = pin!(
        http1::Builder::new()
            .keep_alive(true)
            // The watchdog below keeps this clock (see the module docs).
            .header_read_timeout(None)
            .max_header_size(options.max_header_bytes)
            .serve_connection(io, service)
            .with_upgrades()
    );

    let mut draining = false;
    loop {
        let deadline = activity.deadline();
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, "connection ended: {error}");
                }
                return;
            }
            () = sleep_until(deadline) => {
                if activity.deadline().is_some_and(|deadline| deadline <= Instant::now()) {
                    tracing::debug!(%peer, "closing a connection idle or slow to send its request head");
                    return;
                }
            }
            () = activity.changed.notified() => {}
            () = ctx.shutdown.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            () = ctx.force.cancelled() => return,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What the connection is doing, for its timeouts.
#[derive(Debug)]
struct Activity {
    state: Mutex<State>,
    /// Wakes the connection's task when its deadline may have moved earlier.
    changed: Notify,
    header_timeout: Duration,
    idle_timeout: Duration,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    phase: Phase,
    /// When the current phase began.
    since: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, no request head complete yet: the header timeout runs from the accept.
    Fresh,
    /// Between requests, nothing read yet.
    Idle,
    /// Between requests, a head has begun.
    Head,
}

impl Activity {
    fn new(header_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                in_flight: 0,
                phase: Phase::Fresh,
                since: Instant::now(),
            }),
            changed: Notify::new(),
            header_timeout,
            idle_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deadline(&self) -> Option<Instant> {
        let state = self.lock();
        if state.in_flight > 0 {
            return None;
        }
        Some(match state.phase {
            Phase::Fresh | Phase::Head => state.since + self.header_timeout,
            Phase::Idle => state.since + self.idle_timeout,
        })
    }

    fn bytes_read(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.phase == Phase::Idle {
            state.phase = Phase::Head;
            state.since = Instant::now();
            drop(state);
            self.changed.notify_one();
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.in_flight += 1;
        InFlight {
            activity: self.clone(),
        }
    }
}

/// Counts a request as in flight until dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.activity.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.phase = Phase::Idle;
            state.since = Instant::now();
            drop(state);
            self.activity.changed.notify_one();
        }
    }
}

/// The connection's socket, reporting the bytes it reads to the connection's [`Activity`].
#[derive(Debug)]
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
