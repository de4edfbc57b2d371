//! Following a run's transcript live, the same for every backend: replay
//! from a position, then every new event as it is committed, by this process
//! or another.
//!
//! A backend gives two things: how to read a page of a transcript
//! ([`TranscriptPages`]), and how its followers are woken ([`Wakes`]: after
//! each commit of this process, from another process's notice, and by a
//! poll in any case, as a notice can be lost).
//!
//! The seam: a follower subscribes to the wakes when [`Wakes::follow`] is
//! called, before its first read, so every event is in that read or comes
//! after a wake (or both). It remembers the last sequence number it delivered
//! and reads strictly after it, dropping anything at or below it: no
//! duplicate. A committed event that is the next one is delivered as it
//! comes; any other wake (a gap, a notice, a lagged broadcast, the poll) makes
//! it read the database, where every event it is woken for is committed
//! already: no gap. It ends after a final event, once the run is over with
//! nothing more to deliver, or after yielding an error; while the database is
//! unavailable it reads again at the next wake.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_core::stream::BoxStream;
use futures_util::{StreamExt, stream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::{Result, RunRecord, TranscriptEvent};

/// How many events one read fetches at most.
const PAGE: usize = 256;

/// How many wakes the broadcast holds for followers that fall behind; beyond
/// that they read the database.
const CAPACITY: usize = 1024;

/// How a backend reads a run's transcript for its followers.
#[async_trait]
pub trait TranscriptPages: Send + Sync + 'static {
    /// Up to `limit` events of run `run` with a sequence number above
    /// `after`, in order, and the run's record, read no earlier than the
    /// events: a record that says the run is over, with nothing after them,
    /// means nothing more will come. [`StoreError::NotFound`](crate::StoreError::NotFound) for an unknown
    /// run.
    async fn page(&self, run_id: &str, after: u64, limit: usize)
    -> Result<(RunRecord, Vec<TranscriptEvent>)>;
}

/// What wakes the followers of a run.
#[derive(Clone, Debug)]
pub enum Wake {
    /// This event was committed: a follower waiting for exactly this one
    /// takes it without reading the database.
    Committed(Arc<TranscriptEvent>),
    /// This run has new events (a notice from another process): its
    /// followers read them.
    Appended(Arc<str>),
}

/// The wakes of one store's followers in this process. Cheap to clone: the
/// backend keeps a clone where it learns of commits. Once every clone is
/// gone, followers go on with the poll alone.
///
/// ```
/// use std::time::Duration;
/// use roomkit_graph_store::{Wake, Wakes};
///
/// let wakes = Wakes::default();
/// assert!(!wakes.is_followed());
/// // Nobody follows: the wake is dropped.
/// wakes.wake(Wake::Appended("run-1".into()));
/// ```
#[derive(Clone, Debug)]
pub struct Wakes {
    sender: broadcast::Sender<Wake>,
}

impl Default for Wakes {
    fn default() -> Self {
        Wakes { sender: broadcast::channel(CAPACITY).0 }
    }
}

impl Wakes {
    /// Whether any follower listens (so that a backend copies events for
    /// them only when needed).
    pub fn is_followed(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Every wake from now on, as each follower receives them.
    pub fn subscribe(&self) -> broadcast::Receiver<Wake> {
        self.sender.subscribe()
    }

    /// Wakes the followers; none listening is fine.
    pub fn wake(&self, wake: Wake) {
        let _ = self.sender.send(wake);
    }

    /// The stream of run `run_id`'s transcript after sequence number
    /// `after`, read with `pages`, woken by these wakes and every `poll` (see
    /// the module docs). Subscribes now, before the first read.
    pub fn follow(
        &self,
        pages: impl TranscriptPages,
        poll: Duration,
        run_id: &str,
        after: u64,
    ) -> BoxStream<'static, Result<TranscriptEvent>> {
        let follower = Follower {
            pages,
            wakes: Some(self.subscribe()),
            every: poll,
            poll: None,
            run_id: run_id.to_owned(),
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
}

/// One follower of one run.
struct Follower<P> {
    pages: P,
    /// The store's wakes; none once the store is gone.
    wakes: Option<broadcast::Receiver<Wake>>,
    /// How often to read without a wake.
    every: Duration,
    /// Made on first use, inside the runtime.
    poll: Option<Interval>,
    run_id: String,
    /// The last sequence number delivered.
    last: u64,
    /// Events to deliver, in order.
    ready: VecDeque<TranscriptEvent>,
    /// The database may hold events after `last` that are not in `ready`.
    must_read: bool,
    /// A final event or an error was delivered, or the run is over.
    done: bool,
}

impl<P: TranscriptPages> Follower<P> {
    async fn next(&mut self) -> Option<Result<TranscriptEvent>> {
        while !self.done {
            if let Some(event) = self.ready.pop_front() {
                if event.seq <= self.last {
                    continue;
                }
                self.last = event.seq;
                self.done = event.entry.is_final();
                return Some(Ok(event));
            }
            if !self.must_read {
                self.wait().await;
                continue;
            }
            match self.pages.page(&self.run_id, self.last, PAGE).await {
                Ok((record, events)) => {
                    // A full page may have more behind it: read again once it is delivered.
                    self.must_read = events.len() == PAGE;
                    // Over, and everything delivered (a final entry already
                    // delivered, or none written): nothing more will come.
                    self.done = events.is_empty() && record.status.is_final() && record.last_seq <= self.last;
                    self.ready.extend(events);
                }
                // The database is out of reach for now: read again at the next wake.
                Err(err) if err.is_retryable() => self.wait().await,
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
        None
    }

    /// Waits for a wake of this run or the next poll.
    async fn wait(&mut self) {
        let Follower { wakes, every, poll, run_id, last, ready, must_read, .. } = self;
        let poll = poll.get_or_insert_with(|| {
            let mut poll = tokio::time::interval_at(Instant::now() + *every, *every);
            poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
            poll
        });
        let Some(receiver) = wakes else {
            poll.tick().await;
            *must_read = true;
            return;
        };
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(Wake::Committed(event)) if event.run_id != *run_id || event.seq <= *last => {}
                // Events are shared by every follower: copy only this run's.
                Ok(Wake::Committed(event)) if event.seq == *last + 1 => {
                    ready.push_back(Arc::unwrap_or_clone(event));
                }
                // A gap (subscribed mid-way, or events missed): the database has them.
                Ok(Wake::Committed(_)) => *must_read = true,
                Ok(Wake::Appended(id)) => *must_read |= *id == **run_id,
                Err(RecvError::Lagged(_)) => *must_read = true,
                Err(RecvError::Closed) => *wakes = None,
            },
            _ = poll.tick() => *must_read = true,
        }
    }
}
