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
        // Cancel first: a message to a stderr nobody reads any more must not stop the stop.
        root.cancel();
        note("stopping (signal again to exit at once)");
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        note("exiting without a clean stop");
        std::process::exit(FORCED_EXIT);
    });
    token
}

/// A line on stderr; a closed stderr is ignored rather than a panic.
fn note(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{message}");
}
