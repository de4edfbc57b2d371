//! Pacing calls to a provider: at most `requests_per_minute` requests a
//! minute from the whole process, spread evenly (one every 60 s / n), so a
//! backlog of runs never turns into a burst the provider answers with 429.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// When the next request to one provider may go.
#[derive(Debug)]
pub(crate) struct Pace {
    /// The time between two requests.
    interval: Duration,
    /// When the next one may go.
    next: Mutex<Instant>,
}

impl Pace {
    /// A pace of `requests` a minute.
    pub(crate) fn per_minute(requests: NonZeroU32) -> Pace {
        Pace { interval: Duration::from_secs(60) / requests.get(), next: Mutex::new(Instant::now()) }
    }

    /// Waits for this request's turn: the first at once, each next one an
    /// interval after the one before, in the order they asked.
    pub(crate) async fn wait(&self) {
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let turn = (*next).max(Instant::now());
            *next = turn + self.interval;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_go_one_interval_apart_in_the_order_they_asked() {
        let pace = Pace::per_minute(NonZeroU32::new(120).unwrap_or(NonZeroU32::MIN));
        let start = Instant::now();
        // Polled in order: the first asks first.
        let waits = (0..4).map(|_| async {
            pace.wait().await;
            Instant::now() - start
        });
        let waited = futures_util::future::join_all(waits).await;
        let expected: Vec<Duration> = (0..4).map(|n| Duration::from_millis(500) * n).collect();
        assert_eq!(waited, expected, "each a turn after the one that asked before it");
    }
}
