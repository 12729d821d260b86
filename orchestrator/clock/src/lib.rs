//! Time as a dependency (DESIGN D9): TTLs, lease expiry and backoffs read a [`Clock`] so
//! that tests can hold time still and move it forward instead of sleeping for real.
//!
//! Tokio's paused clock is not enough on its own: it auto-advances whenever the runtime is
//! idle, and code that waits on a blocking thread (SQLite, a child process) looks idle, so
//! time would jump while a query runs. [`ManualClock`] only moves when a test says so.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of wall-clock time that can also wait for a moment to arrive.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Resolves once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: SystemTime) -> Sleep;

    /// Resolves once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(self.now() + duration)
    }
}

/// A clock shared between components.
pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        let wait = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that stands still until [`ManualClock::advance`] or [`ManualClock::set`] moves it.
///
/// Clones share the same time, so a test keeps one handle and gives another to the code
/// under test.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<SystemTime>>,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    /// A clock starting at a fixed, recognisable moment (2026-01-01T00:00:00Z).
    pub fn at_epoch_2026() -> Self {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// Moves time forward by `by` and wakes every sleeper whose deadline has passed.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by);
    }

    /// Sets the time; moving it backwards is allowed, as real clocks do that too.
    pub fn set(&self, to: SystemTime) {
        self.now.send_replace(to);
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &*self.now.borrow())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // `wait_for` checks the current value first, so a deadline already passed
            // resolves at once. An error means every clock handle is gone: time can never
            // reach the deadline, so the sleeper waits forever, as a real sleep would.
            if rx.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn manual_clock_sleeps_until_advanced_past_deadline() {
        let clock = ManualClock::at_epoch_2026();
        let start = clock.now();
        let mut sleep = clock.sleep(Duration::from_secs(10));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(Duration::from_secs(9));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(Duration::from_secs(1));
        assert!(sleep.now_or_never().is_some());
        assert_eq!(clock.now(), start + Duration::from_secs(10));
    }

    #[test]
    fn manual_clock_past_deadline_resolves_at_once() {
        let clock = ManualClock::at_epoch_2026();
        let past = clock.now() - Duration::from_secs(1);
        assert!(clock.sleep_until(past).now_or_never().is_some());
    }

    #[test]
    fn clones_share_time() {
        let clock = ManualClock::at_epoch_2026();
        let shared = clock.shared();
        clock.advance(Duration::from_secs(5));
        assert_eq!(shared.now(), clock.now());
    }

    #[tokio::test]
    async fn system_clock_sleep_resolves() {
        SystemClock.sleep(Duration::from_millis(1)).await;
    }
}
