//! Following a run's transcript: replay from the database, then every new
//! event as it is committed, by this process or another.
//!
//! Two sources feed a follower:
//! - the in-process broadcast of committed events, sent by the writer thread
//!   after each COMMIT: low latency for steps committed here;
//! - a poll of the database every [`POLL`], for commits made by other
//!   processes on the same file (and as a safety net).
//!
//! The seam: the follower subscribes to the broadcast when [`follow`] is
//! called, before its first database read, so every event is either in that
//! read or in the broadcast (or both). It remembers the last sequence number it
//! delivered and drops anything at or below it (no duplicate); an event that is
//! not the next one, or a lagged broadcast, makes it read the missing range from
//! the database (no gap). Events are only broadcast once committed, so that read
//! always finds them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use roomkit_graph_store::{StoreError, TranscriptEvent};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::pool::Readers;
use crate::read;

/// How often a follower looks at the database for commits made elsewhere.
const POLL: Duration = Duration::from_millis(200);

/// How many events one database read fetches at most.
const PAGE: usize = 256;

/// The stream of a run's transcript after `after`; see the module docs.
pub(crate) fn follow(
    readers: Arc<Readers>,
    committed: broadcast::Receiver<Arc<TranscriptEvent>>,
    run_id: String,
    after: u64,
) -> BoxStream<'static, Result<TranscriptEvent, StoreError>> {
    let follower = Follower {
        readers,
        committed: Some(committed),
        poll: None,
        run_id,
        last: after,
        ready: VecDeque::new(),
        must_read: true,
        done: false,
    };
    stream::unfold(follower, |mut follower| async move {
        let item = follower.next().await?;
        Some((item, follower))
    })
    .boxed()
}

struct Follower {
    readers: Arc<Readers>,
    /// Events committed in this process; none once the store is gone.
    committed: Option<broadcast::Receiver<Arc<TranscriptEvent>>>,
    /// Made on first use, inside the runtime.
    poll: Option<Interval>,
    run_id: String,
    /// The last sequence number delivered.
    last: u64,
    /// Events to deliver, in order, all above `last`.
    ready: VecDeque<TranscriptEvent>,
    /// The database may hold events after `last` that are not in `ready`.
    must_read: bool,
    /// A final event or an error was delivered.
    done: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<TranscriptEvent, StoreError>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.ready.pop_front() {
                if event.seq <= self.last {
                    continue;
                }
                self.last = event.seq;
                self.done = event.entry.is_final();
                return Some(Ok(event));
            }
            if self.must_read {
                match self.read().await {
                    Ok(over) if over => {
                        // The run ended without a final entry we could deliver
                        // (already delivered, or none written): nothing more will come.
                        self.done = true;
                        return None;
                    }
                    Ok(_) => continue,
                    Err(err) => {
                        self.done = true;
                        return Some(Err(err));
                    }
                }
            }
            self.wait().await;
        }
    }

    /// Reads the next page after `last` into `ready`. True when the run is
    /// over and holds nothing more to deliver.
    async fn read(&mut self) -> Result<bool, StoreError> {
        let (run_id, after) = (self.run_id.clone(), self.last);
        let (record, events) =
            self.readers.run(move |conn| read::transcript_page(conn, &run_id, after, PAGE)).await?;
        // A full page may have more behind it: read again once it is delivered.
        self.must_read = events.len() == PAGE;
        let over = events.is_empty() && record.status.is_final() && record.last_seq <= self.last;
        self.ready.extend(events);
        Ok(over)
    }

    /// Waits for the next event of the broadcast or the next poll.
    async fn wait(&mut self) {
        let Follower { committed, poll, run_id, last, ready, must_read, .. } = self;
        let poll = poll.get_or_insert_with(|| {
            let mut poll = tokio::time::interval_at(Instant::now() + POLL, POLL);
            poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
            poll
        });
        let Some(receiver) = committed else {
            poll.tick().await;
            *must_read = true;
            return;
        };
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(event) if event.run_id != *run_id || event.seq <= *last => {}
                // Events are shared by every follower: copy only this run's.
                Ok(event) if event.seq == *last + 1 => ready.push_back(Arc::unwrap_or_clone(event)),
                // A gap (we subscribed mid-way) or missed events: the database has them.
                Ok(_) | Err(RecvError::Lagged(_)) => *must_read = true,
                Err(RecvError::Closed) => *committed = None,
            },
            _ = poll.tick() => *must_read = true,
        }
    }
}
