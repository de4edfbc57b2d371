//! Following transcripts across processes: one connection per store
//! `LISTEN`s on [`CHANNEL`], where the run ids of commits that appended events
//! are notified ([`notify`], after the commit, so that notifying does not hold
//! commits back); followers of those runs then read what is new.
//!
//! A follower reads the database first (from the position it was given), then
//! each time its run is notified, and every [`POLL`] in any case (a
//! notification is lost while the listening connection is down). It remembers
//! the last sequence number it delivered and reads strictly after it: no
//! duplicate, and as events are read in order from committed data, no gap.
//! While the database cannot be reached, it keeps looking at each poll.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use roomkit_graph_store::{StoreError, TranscriptEvent};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::transcript_page;

/// The channel commits notify, with the run id as payload.
pub(crate) const CHANNEL: &str = "roomkit_graph_transcript";

/// How often a follower reads the database without a notification.
const POLL: Duration = Duration::from_millis(500);

/// How long the listener waits before connecting again after losing its
/// connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// How many events one read fetches at most.
const PAGE: usize = 256;

/// Listens on [`CHANNEL`] and broadcasts the notified run ids, connecting
/// again whenever the connection is lost. Runs until aborted.
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    notified: broadcast::Sender<Arc<str>>,
) {
    loop {
        if let Ok((client, mut connection)) = config.connect(tls.clone()).await {
            let notified = notified.clone();
            // The connection delivers the notifications; it must be polled for
            // the LISTEN below to complete too.
            let pump = tokio::spawn(async move {
                let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let AsyncMessage::Notification(notification) = message {
                        let _ = notified.send(Arc::from(notification.payload()));
                    }
                }
            });
            if client.batch_execute(&format!("LISTEN {CHANNEL}")).await.is_ok() {
                let _ = pump.await;
            } else {
                pump.abort();
            }
            drop(client);
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Notifies on [`CHANNEL`] the run ids this store committed to, as they come:
/// all those waiting at once in one statement. A notification that cannot be
/// sent is dropped (followers poll too). Ends with the store.
///
/// Notifying outside the commit's transaction matters: a transaction that
/// notifies takes a lock for its commit, which would commit concurrent steps
/// one at a time instead of flushing them together.
pub(crate) async fn notify(pool: Pool, mut committed: mpsc::UnboundedReceiver<String>) {
    let mut run_ids = Vec::new();
    while committed.recv_many(&mut run_ids, PAGE).await > 0 {
        run_ids.sort_unstable();
        run_ids.dedup();
        if let Ok(client) = pool.get().await {
            let _ = client
                .execute(
                    "SELECT pg_notify($1, run_id) FROM unnest($2::text[]) AS run_id",
                    &[&CHANNEL, &run_ids],
                )
                .await;
        }
        run_ids.clear();
    }
}

/// The stream of a run's transcript after `after`; see the module docs.
pub(crate) fn follow(
    pool: Pool,
    notified: broadcast::Receiver<Arc<str>>,
    run_id: String,
    after: u64,
) -> BoxStream<'static, Result<TranscriptEvent, StoreError>> {
    let follower = Follower {
        pool,
        notified: Some(notified),
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
    pool: Pool,
    /// Run ids notified; none once the store is gone.
    notified: Option<broadcast::Receiver<Arc<str>>>,
    /// Made on first use, inside the runtime.
    poll: Option<Interval>,
    run_id: String,
    /// The last sequence number delivered.
    last: u64,
    /// Events read and not yet delivered, in order, all above `last`.
    ready: VecDeque<TranscriptEvent>,
    /// The database may hold events after `last` that are not in `ready`.
    must_read: bool,
    /// A final event or an error was delivered.
    done: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<TranscriptEvent, StoreError>> {
        while !self.done {
            if let Some(event) = self.ready.pop_front() {
                self.last = event.seq;
                self.done = event.entry.is_final();
                return Some(Ok(event));
            }
            if !self.must_read {
                self.wait().await;
                continue;
            }
            let page = match self.pool.get().await {
                Ok(client) => transcript_page(&client, &self.run_id, self.last, PAGE).await,
                Err(err) => Err(crate::error::pool_error(err)),
            };
            match page {
                Ok((record, events)) => {
                    // A full page may have more behind it.
                    self.must_read = events.len() == PAGE;
                    if events.is_empty() && record.status.is_final() && record.last_seq <= self.last {
                        // Over, and everything delivered: nothing more will come.
                        self.done = true;
                    }
                    self.ready.extend(events);
                }
                // The database is out of reach for now: look again at the next poll.
                Err(StoreError::Unavailable(_)) => self.wait().await,
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
        None
    }

    /// Waits for the run to be notified or the next poll.
    async fn wait(&mut self) {
        let Follower { notified, poll, run_id, must_read, .. } = self;
        let poll = poll.get_or_insert_with(|| {
            let mut poll = tokio::time::interval_at(Instant::now() + POLL, POLL);
            poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
            poll
        });
        let Some(receiver) = notified else {
            poll.tick().await;
            *must_read = true;
            return;
        };
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(id) if *id == **run_id => *must_read = true,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => *must_read = true,
                Err(RecvError::Closed) => *notified = None,
            },
            _ = poll.tick() => *must_read = true,
        }
    }
}
