//! Who a runner is in the leases it takes (an owner id of its own, or the
//! worker id it registered), how long they last, and the lease held on a
//! run while it is driven ([`Held`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use roomkit_graph_store::{Lease, Millis, WorkerRegistration};

use crate::time::{millis, millis_i64};

/// How long a lease lasts unless [`Runner::with_lease`](crate::Runner::with_lease)
/// says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The shortest lease a runner takes.
const MIN_LEASE: Duration = Duration::from_millis(50);

/// The leases a runner takes.
pub(crate) struct Leases {
    /// Who the runner is in them: its worker id, or an id of its own.
    owner: String,
    /// The worker id it registered, if it was made with
    /// [`Runner::register`](crate::Runner::register).
    worker: Option<Worker>,
    /// How long one lasts, in milliseconds.
    duration_ms: AtomicU64,
}

impl Leases {
    /// The leases of `worker`, or of a new owner id, lasting [`DEFAULT_LEASE`].
    pub(crate) fn new(worker: Option<Worker>) -> Self {
        Leases {
            owner: worker.as_ref().map_or_else(new_owner_id, |worker| worker.id.clone()),
            worker,
            duration_ms: AtomicU64::new(millis(DEFAULT_LEASE)),
        }
    }

    /// Who the runner is in its leases.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// The worker id the runner registered, if any.
    pub(crate) fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    /// How long a lease lasts.
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms.load(Ordering::SeqCst))
    }

    /// Sets how long the leases taken from now on last (at least 50 ms).
    pub(crate) fn set_duration(&self, duration: Duration) {
        self.duration_ms.store(millis(duration.max(MIN_LEASE)), Ordering::SeqCst);
    }

    /// How long a lease lasts, in milliseconds.
    pub(crate) fn duration_millis(&self) -> Millis {
        Millis::try_from(self.duration_ms.load(Ordering::SeqCst)).unwrap_or(Millis::MAX)
    }

    /// A lease taken at `now`.
    pub(crate) fn taken_at(&self, now: Millis) -> Lease {
        Lease::new(self.owner.clone(), now, self.duration_millis())
    }
}

/// The worker id a runner was registered as, and how it keeps it.
#[derive(Clone)]
pub(crate) struct Worker {
    /// The id, which is also the owner of the runner's leases.
    pub(crate) id: String,
    /// This process, as the holder of the registration.
    pub(crate) instance: String,
    /// How often the registration is renewed.
    pub(crate) heartbeat: Duration,
}

impl Worker {
    /// The registration to ask for at `now`.
    pub(crate) fn registration(&self, now: Millis) -> WorkerRegistration {
        WorkerRegistration::new(&self.id, &self.instance, now, self.ttl())
    }

    /// How long a registration lasts: three heartbeats.
    pub(crate) fn ttl(&self) -> Millis {
        millis_i64(self.heartbeat).saturating_mul(3)
    }
}

/// A new owner id: `host/pid/uuid`.
pub(crate) fn new_owner_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}/{}/{}", std::process::id(), uuid::Uuid::now_v7())
}

/// The lease this runner holds on the run it drives.
pub(crate) struct Held {
    /// Who holds it.
    pub(crate) owner: String,
    /// When it expires, as last stored (by the claim, a commit or a renewal).
    pub(crate) until: AtomicI64,
    /// How long a lease lasts.
    pub(crate) duration: Millis,
}

impl Held {
    /// The lease to commit a step with at `now`: renewed from then when a
    /// third of it has passed, else as stored (so the commit does not rewrite it).
    pub(crate) fn for_commit(&self, now: Millis) -> Lease {
        let until = self.until.load(Ordering::SeqCst);
        let until = if until.saturating_sub(now) < self.duration / 3 * 2 {
            let renewed = now.saturating_add(self.duration);
            self.until.fetch_max(renewed, Ordering::SeqCst);
            renewed
        } else {
            until
        };
        Lease { owner: self.owner.clone(), until }
    }
}
