//! Time through the runner's [`Clock`]: "now" in the store's [`Millis`],
//! waits until a stored time, durations as time offsets, and the tick of the
//! timer loop. The runner reads the time nowhere else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use roomkit_graph::Clock;
use roomkit_graph_store::{Millis, millis_at};

/// The time on `clock`, in milliseconds since the Unix epoch (0 before it).
pub(crate) fn now(clock: &dyn Clock) -> Millis {
    millis_at(clock.now())
}

/// Waits on `clock` until `at` (at once when it has passed).
pub(crate) fn sleep_until(clock: &dyn Clock, at: Millis) -> BoxFuture<'static, ()> {
    let since_epoch = Duration::from_millis(u64::try_from(at).unwrap_or(0));
    clock.sleep_until(SystemTime::UNIX_EPOCH + since_epoch)
}

/// A duration in whole milliseconds, as a time offset, saturating.
pub(crate) fn millis_i64(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// How often the timer loop looks for due timers, and whether it was started.
pub(crate) struct Tick {
    every: Duration,
    started: AtomicBool,
}

impl Tick {
    /// A loop that looks every `every`, not started yet.
    pub(crate) fn new(every: Duration) -> Self {
        Tick { every, started: AtomicBool::new(false) }
    }

    /// How often the loop looks.
    pub(crate) fn every(&self) -> Duration {
        self.every
    }

    /// Marks the loop started: true the first time only.
    pub(crate) fn start_once(&self) -> bool {
        !self.started.swap(true, Ordering::SeqCst)
    }
}
