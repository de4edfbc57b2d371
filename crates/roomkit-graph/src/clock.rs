//! The clock that tells the time and that delays wait on, so tests and tools
//! can choose the time and not really wait.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use tokio::sync::watch;

/// What tells the time and what waits: `delay` function nodes wait on it, and
/// a durable runner reads every "now" from it (leases, timers, commits).
pub trait Clock: Send + Sync {
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// The wall-clock time now.
    fn now(&self) -> SystemTime;

    /// Waits until the clock reads `deadline` (at once when it has passed).
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        self.sleep(deadline.duration_since(self.now()).unwrap_or_default())
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        (**self).sleep(duration)
    }

    fn now(&self) -> SystemTime {
        (**self).now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        (**self).sleep_until(deadline)
    }
}

/// The system's time; really waits, on tokio's timer (which
/// `tokio::time::pause` can speed up in tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The system's time, but never waits: a delay completes at once. For dry
/// runs and conformance checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoWaitClock;

impl Clock for NoWaitClock {
    fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to ([`ManualClock::advance`]): its time
/// stands still otherwise, and a wait on it ends once the clock has been moved
/// past its end. For tests of leases, timers and retries that must not
/// really wait. Clones share their time.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use roomkit_graph::{Clock, ManualClock};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
/// let clock = ManualClock::new(start);
/// let wait = clock.sleep(Duration::from_secs(30));
/// let mover = clock.clone();
/// tokio::spawn(async move { mover.advance(Duration::from_secs(30)) });
/// wait.await; // ends at once: the clock was moved 30 s on
/// assert_eq!(clock.now(), start + Duration::from_secs(30));
/// # });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<watch::Sender<SystemTime>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        ManualClock { now: Arc::new(watch::Sender::new(start)) }
    }

    /// Moves the clock `by` on, ending the waits that are due by then.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

impl Clock for ManualClock {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.sleep_until(self.now() + duration)
    }

    fn now(&self) -> SystemTime {
        *self.now.borrow()
    }

    /// Ends once the clock has been moved to `deadline`, however far it is
    /// moved meanwhile.
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; with none
            // left, nothing can move it and the wait never ends.
            if now.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
