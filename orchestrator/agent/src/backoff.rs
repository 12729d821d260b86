//! The kubelet's crash-loop back-off: a container that keeps exiting is restarted at once
//! the first time, then after 10 s, doubling to 5 minutes; a run of 10 minutes or more
//! forgives its history. No IO: the caller passes the time.

use std::time::Duration;

/// The first delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(300);
/// A run at least this long resets the back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// One container's back-off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    /// The delay the last restart waited, if it waited.
    current: Option<Duration>,
    /// Restarts counted since the last reset.
    restarts: u32,
}

impl Backoff {
    /// How long to wait before restarting a container that ran for `ran_for`, and records
    /// the restart.
    pub fn next(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= RESET_AFTER {
            *self = Backoff::default();
        }
        self.restarts += 1;
        if self.restarts == 1 {
            return Duration::ZERO;
        }
        let delay = match self.current {
            None => INITIAL,
            Some(previous) => (previous * 2).min(MAX),
        };
        self.current = Some(delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_five_minutes_then_resets_after_a_long_run() {
        let mut backoff = Backoff::default();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8).map(|_| backoff.next(short).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.next(RESET_AFTER), Duration::ZERO);
        assert_eq!(backoff.next(short), INITIAL);
    }
}
