//! Leases: which process drives a run right now.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// A claim on a running run: `owner` drives it until `until`, and no other
/// owner may take it before then. A lease is renewed while its owner drives
/// the run and released when the run parks, ends or the owner stops; one
/// whose owner died expires, and the run can be claimed again.
///
/// Times are compared with the clock of the store's process at each
/// transaction, so every process sharing a store should keep its clock in sync.
///
/// ```
/// use roomkit_graph_store::Lease;
///
/// let lease = Lease::new("host-a/4242/0190f3c4", 1_000, 30_000);
/// assert_eq!(lease.until, 31_000);
/// assert!(lease.is_live_at(30_999));
/// assert!(!lease.is_live_at(31_000));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it: an id unique to one runner (see the runner's `owner`).
    pub owner: String,
    /// When it expires, in milliseconds since the Unix epoch.
    pub until: Millis,
}

impl Lease {
    /// A lease for `owner` taken at `now` for `duration_ms` milliseconds.
    pub fn new(owner: impl Into<String>, now: Millis, duration_ms: Millis) -> Self {
        Lease { owner: owner.into(), until: now.saturating_add(duration_ms) }
    }

    /// Whether the lease still holds at `now` (it expires at `until`).
    pub fn is_live_at(&self, now: Millis) -> bool {
        now < self.until
    }
}
