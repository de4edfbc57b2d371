//! Flow control: how many runs go at once. A graph may limit its runs per
//! key ([`ConcurrencySlot`], from `Graph::concurrency`) and an organization
//! all of its runs ([`QueueStore::set_running_limit`]); a run that would go
//! past a limit is queued ([`RunStatus::Queued`](crate::RunStatus::Queued)),
//! held by nobody, and goes on, oldest first, as soon as it fits. Each
//! backend applies the limits in the transaction of the commit that moves a
//! run (SQLite's writer makes them one at a time, PostgreSQL takes a lock
//! per organization and per key), so they hold across any number of
//! processes. A child run that runs its parent's node (a room) holds its
//! parent's place, and a parent set going by its child's end takes the
//! child's place before any queued run.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::{Millis, Result};

/// How many queued runs the stores of this process have let go.
static RELEASES: AtomicU64 = AtomicU64::new(0);

/// Counts `released` queued runs let go (a backend calls it as it lets them
/// go, in the transaction that does).
pub fn count_releases(released: u64) {
    RELEASES.fetch_add(released, Ordering::Relaxed);
}

/// How many queued runs the stores of this process have let go so far: a
/// hint for a runner that a run it drove let others go, which it may then
/// drive at once instead of at its next poll (a transaction that let one go
/// may yet have been rolled back).
///
/// ```
/// use roomkit_graph_store::{count_releases, releases};
/// let before = releases();
/// count_releases(2);
/// assert!(releases() >= before + 2);
/// ```
pub fn releases() -> u64 {
    RELEASES.load(Ordering::Relaxed)
}

/// The place a run of a graph with a concurrency limit takes: at most
/// `limit` runs of its graph with the same `key` are running at once; the
/// others are queued, and the oldest of them goes on as soon as a running
/// one stops running (waits, ends). Made by [`ConcurrencySlot::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcurrencySlot {
    /// The key, rendered from the run's trigger data (or its digest).
    pub key: String,
    /// How many runs of the key may run at once (1 or more).
    pub limit: u32,
}

impl ConcurrencySlot {
    /// Keys longer than this many bytes are kept as their SHA-256 digest,
    /// so that any key fits in an index.
    pub const KEY_BYTES: usize = 128;

    /// The place a run with `key` takes under `limit`.
    ///
    /// ```
    /// use roomkit_graph_store::ConcurrencySlot;
    ///
    /// assert_eq!(ConcurrencySlot::new("acme".into(), 3).key, "acme");
    /// let long = ConcurrencySlot::new("x".repeat(10_000), 3).key;
    /// assert_eq!((long.len(), &long[..7]), (71, "sha256:"));
    /// assert_eq!(long, ConcurrencySlot::new("x".repeat(10_000), 1).key, "the same key each time");
    /// ```
    pub fn new(key: String, limit: u32) -> ConcurrencySlot {
        use sha2::Digest as _;
        if key.len() <= Self::KEY_BYTES {
            return ConcurrencySlot { key, limit };
        }
        ConcurrencySlot {
            key: format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.as_bytes()))),
            limit,
        }
    }
}

/// How many runs of a graph and key are queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    /// The organization.
    pub org: String,
    /// The graph.
    pub graph_id: String,
    /// The key (empty for runs queued by their organization's limit alone).
    pub key: String,
    /// How many of its runs are queued.
    pub queued: u64,
}

/// The organizations' limits and the queues. Every method is one
/// transaction.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Sets (or with `None` removes) how many runs of `org` may run at once;
    /// the queued runs that fit then (the limit raised or removed) go on at
    /// once, oldest first.
    async fn set_running_limit(&self, org: &str, limit: Option<u32>) -> Result<()>;

    /// How many runs of `org` may run at once, if it has a limit.
    async fn running_limit(&self, org: &str) -> Result<Option<u32>>;

    /// The queued runs counted by organization, graph and key (those with
    /// none queued left out), of every organization.
    async fn queue_depths(&self) -> Result<Vec<QueueDepth>>;

    /// Lets go, oldest first, every queued run that fits, of every
    /// organization: how many went. Runs go on as others stop, in the
    /// commits that stop them; this catches the ones a limit changed under
    /// a commit left queued (the retention sweep calls it every minute).
    async fn settle_queues(&self, now: Millis) -> Result<usize>;
}
