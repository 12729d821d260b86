//! The root of the cancellation tree (DESIGN D10): the first SIGINT or SIGTERM cancels the
//! token every task hangs from; a second one exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Exit code after a second signal, as shells report death by SIGINT.
const FORCED_EXIT: i32 = 130;

/// A token cancelled on the first SIGINT or SIGTERM.
pub(crate) fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let root = token.clone();
    tokio::spawn(async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("stopping (signal again to exit at once)");
        root.cancel();
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("exiting without a clean stop");
        std::process::exit(FORCED_EXIT);
    });
    token
}
