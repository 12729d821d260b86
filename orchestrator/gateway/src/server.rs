//! The accept loop and the shutdown: stop accepting, let connections finish, then cut them.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;
use crate::conn;
use crate::proxy::Context;

/// How long to pause accepting when the process runs out of file descriptors or memory, so
/// connections can finish and free some.
const SHORTAGE_PAUSE: Duration = Duration::from_millis(100);

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let grace = shared.options.shutdown_grace;
    let ctx = Arc::new(Context {
        shared,
        tracker: TaskTracker::new(),
        // A child, so that a failing listener can drain its connections too.
        shutdown: shutdown.child_token(),
        force: CancellationToken::new(),
    });
    let result = loop {
        let accepted = tokio::select! {
            () = ctx.shutdown.cancelled() => break Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Small writes (an SSE event, a WebSocket frame) go out as they come.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, "cannot set TCP_NODELAY: {error}");
                }
                ctx.tracker.spawn(conn::serve(ctx.clone(), stream, peer));
            }
            Err(error) => match classify(&error) {
                AcceptError::Connection => {
                    tracing::debug!("accepting a connection failed: {error}");
                }
                AcceptError::Shortage => {
                    tracing::warn!("accepting connections paused: {error}");
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => {}
                        () = tokio::time::sleep(SHORTAGE_PAUSE) => {}
                    }
                }
                AcceptError::Listener => break Err(error),
            },
        }
    };
    drop(listener);
    ctx.shutdown.cancel();
    ctx.tracker.close();
    if tokio::time::timeout(grace, ctx.tracker.wait())
        .await
        .is_err()
    {
        tracing::info!(
            tasks = ctx.tracker.len(),
            "cutting what runs on after the shutdown grace"
        );
        ctx.force.cancel();
        ctx.tracker.wait().await;
    }
    result
}

enum AcceptError {
    /// About the one connection being accepted: the next accept is unaffected.
    Connection,
    /// The process or system is short of descriptors or memory: it passes.
    Shortage,
    /// The listener itself is broken.
    Listener,
}

fn classify(error: &io::Error) -> AcceptError {
    let Some(errno) = error.raw_os_error().map(Errno::from_raw) else {
        return AcceptError::Listener;
    };
    match errno {
        Errno::ECONNABORTED
        | Errno::ECONNRESET
        | Errno::EINTR
        | Errno::EPROTO
        | Errno::EPERM
        | Errno::ETIMEDOUT
        | Errno::EHOSTUNREACH
        | Errno::ENETUNREACH => AcceptError::Connection,
        Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM => AcceptError::Shortage,
        _ => AcceptError::Listener,
    }
}
