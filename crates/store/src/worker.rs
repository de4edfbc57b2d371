//! Worker registrations: which live process is a worker id right now.
//!
//! A process started with an explicit worker id takes its run leases as that
//! id, so that the next process with the id (after a restart) takes back at
//! once the runs it held. Two live processes must never be the same worker,
//! so the id is registered in the store: the process holding it renews its
//! registration while it lives, and a registration whose process died
//! expires, freeing the id. [`WorkerStore`] keeps them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Millis, Result, RunRecord};

/// A process's hold on a worker id: `instance` (one process, unique) is
/// worker `worker_id` until `until`, unless it renews its registration first.
///
/// ```
/// use roomkit_graph_store::WorkerRegistration;
///
/// let held = WorkerRegistration::new("w1", "host-a/4242/0190f3c4", 1_000, 6_000);
/// assert_eq!(held.until, 7_000);
/// // Another process may not take the id while the registration holds...
/// let other = WorkerRegistration::new("w1", "host-a/4343/0190f3d5", 2_000, 6_000);
/// assert_eq!(other.taken_over(Some(&held), 2_000), held);
/// // ...its own process renews it...
/// let renewed = WorkerRegistration::new("w1", "host-a/4242/0190f3c4", 3_000, 6_000);
/// assert_eq!(renewed.taken_over(Some(&held), 3_000), renewed);
/// // ...and once it expired, anyone may take it.
/// assert_eq!(other.taken_over(Some(&held), 7_000), other);
/// assert_eq!(other.taken_over(None, 2_000), other);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkerRegistration {
    /// The worker id, as given to the process (`--worker-id`).
    pub worker_id: String,
    /// The process holding it: unique to one process (`host/pid/uuid`).
    pub instance: String,
    /// When it expires, in milliseconds since the Unix epoch.
    pub until: Millis,
}

impl WorkerRegistration {
    /// `instance`'s registration as `worker_id`, taken at `now` for
    /// `duration_ms` milliseconds.
    pub fn new(
        worker_id: impl Into<String>,
        instance: impl Into<String>,
        now: Millis,
        duration_ms: Millis,
    ) -> Self {
        WorkerRegistration {
            worker_id: worker_id.into(),
            instance: instance.into(),
            until: now.saturating_add(duration_ms),
        }
    }

    /// Whether the registration still holds at `now` (it expires at `until`).
    pub fn is_live_at(&self, now: Millis) -> bool {
        now < self.until
    }

    /// The registration of the worker id once this one is asked for at `now`,
    /// when `held` is the stored one: this one, if the id is free, expired or
    /// already this instance's (a renewal); else `held`, unchanged (another
    /// live process is the worker). The rule every backend applies.
    pub fn taken_over(&self, held: Option<&WorkerRegistration>, now: Millis) -> WorkerRegistration {
        match held {
            Some(held) if held.instance != self.instance && held.is_live_at(now) => held.clone(),
            _ => self.clone(),
        }
    }
}

/// Where worker registrations are kept, and the runs a worker id holds.
/// Every method is one transaction.
#[async_trait]
pub trait WorkerStore: Send + Sync {
    /// Registers `registration.instance` as worker `registration.worker_id`
    /// until `registration.until`, or renews its registration, unless another
    /// process holds a registration of that id live at `now` (the rule of
    /// [`WorkerRegistration::taken_over`]). Returns the registration of the id
    /// after the call: `registration` when it was taken, or the other
    /// process's, changing nothing.
    async fn register_worker(
        &self,
        registration: &WorkerRegistration,
        now: Millis,
    ) -> Result<WorkerRegistration>;

    /// Ends `instance`'s registration as `worker_id`, so that another process
    /// may take the id at once; a registration of another instance is left as
    /// it is.
    async fn release_worker(&self, worker_id: &str, instance: &str) -> Result<()>;

    /// The running runs whose lease `owner` holds, live or expired: those a
    /// process that registered a worker id (the owner of its leases) takes
    /// back at once, held by a process of that id that died.
    async fn runs_held_by(&self, owner: &str) -> Result<Vec<RunRecord>>;
}
