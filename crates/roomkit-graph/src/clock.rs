//! The clock delays wait on, so tests and tools can choose not to really wait.

use std::time::Duration;

use futures_util::future::BoxFuture;

/// What `delay` function nodes wait on.
pub trait Clock: Send + Sync {
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Really waits, on tokio's timer (which `tokio::time::pause` can speed up in tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Never waits: a delay completes at once. For dry runs and conformance checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoWaitClock;

impl Clock for NoWaitClock {
    fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}
