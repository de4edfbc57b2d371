//! The store interface for durable runs: what a backend (SQLite, PostgreSQL)
//! keeps, and the operations the runner needs from it. No database here: only
//! the types, the traits of each concern and the rules every backend applies.
//!
//! # Layout
//!
//! One module per concern, each with its types and the trait a backend
//! implements for it; [`Store`] joins them, and [`prelude`] imports them all.
//!
//! - `graph`: [`StoredGraph`] and [`GraphStore`].
//! - `access`: [`TokenRecord`] and [`AccessStore`] (tokens and secrets).
//! - `run`: [`RunRecord`], [`NewRun`], [`StepCommit`], [`RunFilter`] and
//!   [`RunStore`] (runs, steps and leases); `lease`, `key` and `step` hold
//!   the rules of leases, run keys and commits that every backend applies.
//! - `transcript`: [`Entry`], [`TranscriptEvent`] and [`TranscriptStore`];
//!   `past`: a run as it stood at any entry ([`RunAt`]), from the
//!   [`Position`] kept with each commit;
//!   `follow`: following a transcript live, written once for every backend
//!   ([`Wakes::follow`]).
//! - `worker`: [`WorkerRegistration`] and [`WorkerStore`].
//! - `queue`: [`ConcurrencySlot`] and [`QueueStore`]: how many runs go at
//!   once, per graph and key and per organization, the others queued.
//! - `retention`: [`RetentionRule`] and [`RetentionStore`]: runs and graph
//!   versions deleted, finished runs past their retention swept
//!   ([`sweep_expired`]).
//! - `hooks`: [`Hook`], [`HookDelivery`] and [`HookStore`]: run-event hooks,
//!   whose deliveries each commit writes with its step ([`HookEvent::of`],
//!   [`hook_payload`]) and a sender attempts ([`next_attempt_at`]).
//! - [`metrics`]: runs started and finished and commit times, counted as
//!   commits land.
//! - `page`: lists read a [`Page`] at a time; `json`: stored JSON read back;
//!   `error`: [`StoreError`].
//!
//! # What a store keeps
//!
//! - Everything belongs to an organization: graph ids are unique within one,
//!   and a run belongs to the organization of its graph. Access tokens
//!   ([`TokenRecord`], stored by hash only) and graph secrets are kept per
//!   organization too.
//! - Graphs are stored by version ([`StoredGraph`]); a run pins the version it
//!   started with, so saving a new version never changes a run in flight.
//! - Every run is a room: a [`RunRecord`] (where it stands) and its transcript,
//!   an ordered, append-only list of [`TranscriptEvent`]s that reads like a chat
//!   thread.
//! - A step is committed whole ([`StepCommit`]): the outputs it wrote, the run's
//!   new position and its transcript entries, in one transaction, guarded by the
//!   run's version so a step is never committed twice.
//! - A running run is driven by one process at a time, the holder of its
//!   [`Lease`]: [`RunStore::claim_run`] takes it, commits and
//!   [`RunStore::renew_lease`] extend it, and parking, ending or
//!   [`RunStore::release_run`] let it go. A lease whose owner died expires, and
//!   [`RunStore::claimable_runs`] lists the run again.
//! - A run may hold a [`RunKey`] (an idempotency key, a schedule's due time),
//!   which no other run gets while it holds it.
//! - Lists that can grow are read a [`Page`] at a time, from a cursor that
//!   stays right whatever is inserted meanwhile ([`RunCursor`], [`GraphCursor`]).
//! - A process with an explicit worker id registers it
//!   ([`WorkerRegistration`], [`WorkerStore::register_worker`]) so that no two
//!   live processes are the same worker; a restarted one takes back the runs
//!   its id holds ([`WorkerStore::runs_held_by`]) without waiting for their
//!   leases.
//!
//! What every backend must do is written once as tests, in the module
//! `contract` (feature `contract`), that each backend runs against a real
//! database of its own.

mod access;
mod error;
mod follow;
mod graph;
mod hooks;
mod json;
mod key;
mod lease;
pub mod metrics;
mod page;
mod past;
mod queue;
mod retention;
mod run;
mod step;
mod transcript;
mod worker;

#[cfg(feature = "contract")]
pub mod contract;

pub use access::{AccessStore, DEFAULT_ORG, TOKEN_USE_RESOLUTION, TokenRecord};
pub use error::{Cause, Result, StoreError};
pub use follow::{TranscriptPages, Wake, Wakes};
pub use graph::{GraphStore, StoredGraph, VersionInfo};
pub use hooks::{
    ClaimedDelivery, DELIVERIES_KEPT, DeliveryFilter, DeliveryStatus, FIRST_RETRY, GIVE_UP_AFTER, Hook,
    HookAttempt, HookDelivery, HookEvent, HookStore, LONGEST_RETRY, delivery_id, hook_payload,
    next_attempt_at,
};
pub use json::{STORED_DEPTH, merged_context, pending_text, read_pending, read_stored};
pub use key::{HeldKey, RunKey};
pub use lease::Lease;
pub use page::{CursorError, DeliveryCursor, GraphCursor, Page, RunCursor};
pub use past::{Origin, Position, RunAt, UNKEPT_POSITION};
pub use queue::{ConcurrencySlot, QueueDepth, QueueStore, count_releases, releases};
pub use retention::{RetentionRule, RetentionStore, SWEEP_BATCH, Sweep, Swept, latest_kept, sweep_expired};
pub use run::{
    Dialect, FilterValue, LiveRunCounts, NewRun, ParentLink, ParentStep, RunFilter, RunRecord, RunStatus,
    RunStore, StepCommit, TriggerField,
};
pub use transcript::{Entry, TranscriptEvent, TranscriptStore};
pub use worker::{WorkerRegistration, WorkerStore};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    millis_at(std::time::SystemTime::now())
}

/// A point in time in [`Millis`]: 0 before the epoch, saturating far after.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use roomkit_graph_store::millis_at;
///
/// assert_eq!(millis_at(SystemTime::UNIX_EPOCH + Duration::from_millis(1_500)), 1_500);
/// assert_eq!(millis_at(SystemTime::UNIX_EPOCH - Duration::from_secs(1)), 0);
/// ```
pub fn millis_at(time: std::time::SystemTime) -> Millis {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// Where durable runs live: every concern of a store in one trait, for the
/// code that needs them all (the runner, the server). It has no method of its
/// own: each comes from the trait of its concern, and every type with all of
/// them is a `Store`.
///
/// | trait | keeps |
/// |---|---|
/// | [`GraphStore`] | graphs, by version |
/// | [`AccessStore`] | access tokens and graph secrets |
/// | [`RunStore`] | runs: opening, committing steps, leases, listing |
/// | [`TranscriptStore`] | a run's transcript, read or followed live |
/// | [`WorkerStore`] | worker registrations and the runs a worker holds |
/// | [`HookStore`] | run-event hooks and their deliveries |
/// | [`RetentionStore`] | retention rules; deleting runs and graph versions |
///
/// Import them all in one line with the [`prelude`]. Every method is one
/// transaction.
///
/// ```
/// use std::sync::Arc;
/// use roomkit_graph_store::prelude::*;
/// use roomkit_graph_store::StoreError;
///
/// /// How many runs of this organization a page of ten shows.
/// async fn first_page(store: Arc<dyn Store>, org: &str) -> Result<usize, StoreError> {
///     let filter = roomkit_graph_store::RunFilter { org: Some(org.into()), ..Default::default() };
///     Ok(store.run_page(&filter, 10).await?.items.len())
/// }
/// ```
pub trait Store:
    GraphStore + AccessStore + RunStore + TranscriptStore + WorkerStore + HookStore + RetentionStore + QueueStore
{
}

impl<T> Store for T where
    T: GraphStore
        + AccessStore
        + RunStore
        + TranscriptStore
        + WorkerStore
        + HookStore
        + RetentionStore
        + QueueStore
        + ?Sized
{
}

/// The store traits, to import in one line: `use roomkit_graph_store::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AccessStore, GraphStore, HookStore, QueueStore, RetentionStore, RunStore, Store, TranscriptStore,
        WorkerStore,
    };
}
