//! The store interface for durable runs: what a backend (SQLite, PostgreSQL)
//! keeps, and the operations the runner needs from it. No database here: only
//! the types and the [`Store`] trait.
//!
//! - Everything belongs to an organization: graph ids are unique within one,
//!   and a run belongs to the organization of its graph. Access tokens
//!   ([`TokenRecord`], stored by hash only) and graph secrets are kept per
//!   organization too.
//! - Graphs are stored by version ([`StoredGraph`]); a run pins the version it
//!   started with, so saving a new version never changes a run in flight.
//! - Every run is a room: a [`RunRecord`] (where it stands) and its transcript,
//!   an ordered, append-only list of [`TranscriptEvent`]s that reads like a chat
//!   thread ([`render_text`]).
//! - A step is committed whole ([`StepCommit`]): the outputs it wrote, the run's
//!   new position and its transcript entries, in one transaction, guarded by the
//!   run's version so a step is never committed twice.
//! - A running run is driven by one process at a time, the holder of its
//!   [`Lease`]: [`Store::claim_run`] takes it, commits and
//!   [`Store::renew_lease`] extend it, and parking, ending or
//!   [`Store::release_run`] let it go. A lease whose owner died expires, and
//!   [`Store::claimable_runs`] lists the run again.
//! - A run may hold a [`RunKey`] (an idempotency key, a schedule's due time),
//!   which no other run gets while it holds it.
//! - Lists that can grow are read a [`Page`] at a time, from a cursor that
//!   stays right whatever is inserted meanwhile ([`RunCursor`], [`GraphCursor`]).
//! - A process with an explicit worker id registers it
//!   ([`WorkerRegistration`], [`Store::register_worker`]) so that no two live
//!   processes are the same worker; a restarted one takes back the runs its
//!   id holds ([`Store::runs_held_by`]) without waiting for their leases.
//!
//! What every backend must do is written once as tests, in the module
//! `contract` (feature `contract`), that each backend runs against a real
//! database of its own.

mod access;
mod error;
mod json;
mod key;
mod lease;
mod page;
mod run;
mod step;
mod transcript;
mod worker;

#[cfg(feature = "contract")]
pub mod contract;

use async_trait::async_trait;
use futures_core::stream::BoxStream;
use roomkit_graph::{EngineState, Graph};

pub use access::{DEFAULT_ORG, TokenRecord};
pub use error::StoreError;
pub use json::{STORED_DEPTH, pending_text, read_pending, read_stored};
pub use key::{HeldKey, RunKey};
pub use lease::Lease;
pub use page::{CursorError, GraphCursor, Page, RunCursor};
pub use run::{FilterValue, NewRun, RunFilter, RunRecord, RunStatus, StepCommit, StoredGraph};
pub use transcript::{Entry, TranscriptEvent, render_text};
pub use worker::WorkerRegistration;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// Where durable runs live. Every method is one transaction.
///
/// A write whose future is dropped before it answers may or may not have been
/// applied; the run version in [`StepCommit`] makes retrying it safe.
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores `graph` as the next version of its id in `org` (1 for a new id)
    /// and returns that version.
    async fn save_graph(&self, org: &str, graph: &Graph) -> Result<StoredGraph, StoreError>;

    /// A stored graph of `org`: the given version, or the latest when `version` is `None`.
    async fn graph(&self, org: &str, graph_id: &str, version: Option<u64>)
    -> Result<StoredGraph, StoreError>;

    /// The number of the latest version of a graph of `org`: what
    /// [`Store::graph`] would give with `None`, without reading the graph.
    async fn latest_graph_version(&self, org: &str, graph_id: &str) -> Result<u64, StoreError> {
        Ok(self.graph(org, graph_id, None).await?.version)
    }

    /// The latest version of every graph of `org` (of every organization when
    /// `None`), by organization and graph id.
    async fn list_graphs(&self, org: Option<&str>) -> Result<Vec<StoredGraph>, StoreError>;

    /// Stores an access token (by its hash). Refused if the hash exists.
    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    /// The token with this hash, if any.
    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Sets (or with `None` removes) the secret `name` of a graph of `org`,
    /// kept apart from the graph and its versions.
    async fn set_secret(
        &self,
        org: &str,
        graph_id: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError>;

    /// The secret `name` of a graph of `org`, if set.
    async fn secret(&self, org: &str, graph_id: &str, name: &str) -> Result<Option<String>, StoreError>;

    /// Opens a run's room: its record, its initial state and the `run_started`
    /// entry (sequence number 1). Refused if the run id exists, if its key is
    /// held by another run ([`StoreError::Duplicate`], see
    /// [`RunKey::taken_by`]) or if the graph version does not exist. A key
    /// whose holder let it go ([`HeldKey::is_free_at`]) is taken from it.
    async fn create_run(&self, run: NewRun) -> Result<RunRecord, StoreError>;

    /// Commits one step: its writes, the run's new position and status, and its
    /// transcript entries, atomically. Refused with [`StoreError::Conflict`],
    /// changing nothing, when the run's version is not `commit.expected_version`
    /// (another process moved it), or when the commit carries a lease and
    /// another owner holds one on the run that is live at `commit.at`. A commit that leaves the run
    /// running with a lease takes or renews it; one that leaves it not running
    /// releases its lease (see [`StepCommit::lease`]). Returns the new record
    /// and the appended events.
    async fn commit_step(&self, commit: StepCommit) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError>;

    /// Takes the lease on a run for `lease.owner` until `lease.until`, if the
    /// run is running and nobody else holds a live lease on it at `now` (it
    /// has no owner, its owner's lease expired, or the owner is `lease.owner`,
    /// whose lease is then renewed). Returns the claimed record, or `None` (changing
    /// nothing) when the run is not running or someone else holds it.
    /// [`StoreError::NotFound`] for an unknown run. Does not change the run's
    /// version: a commit prepared by the owner before a renewal still applies.
    async fn claim_run(
        &self,
        run_id: &str,
        lease: &Lease,
        now: Millis,
    ) -> Result<Option<RunRecord>, StoreError>;

    /// Extends the lease `lease.owner` holds on a running run to `lease.until`
    /// (never shortening it). Refused with [`StoreError::Conflict`], changing
    /// nothing, when the run is not running or its lease is not held by
    /// `lease.owner` (another process took it after it expired, or it was
    /// released): the owner has lost the run and must stop driving it.
    async fn renew_lease(&self, run_id: &str, lease: &Lease) -> Result<RunRecord, StoreError>;

    /// Releases the lease `owner` holds on a run, so that another process can
    /// take it at once. Returns whether `owner` held it; a lease held by
    /// someone else, or none, is left as it is.
    async fn release_run(&self, run_id: &str, owner: &str) -> Result<bool, StoreError>;

    /// Up to `limit` running runs that nobody holds a live lease on at `now`:
    /// those without an owner first, then those whose lease expired, oldest
    /// lease first. What a process may [`Store::claim_run`] to pick up.
    async fn claimable_runs(&self, now: Millis, limit: usize) -> Result<Vec<RunRecord>, StoreError>;

    /// A run's record.
    async fn run(&self, run_id: &str) -> Result<RunRecord, StoreError>;

    /// A run's record and the engine state to continue it from.
    async fn load_run(&self, run_id: &str) -> Result<(RunRecord, EngineState), StoreError>;

    /// Runs matching `filter`, newest first (equal creation times by run id).
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;

    /// A page of at most `size` runs matching `filter` (whose `limit` it
    /// ignores), in the order of [`Store::list_runs`], and the cursor of the
    /// next page: pass it as `filter.after` ([`RunCursor::decode`]).
    async fn run_page(&self, filter: &RunFilter, size: usize) -> Result<Page<RunRecord>, StoreError> {
        let one_more = RunFilter { limit: Some(size.saturating_add(1)), ..filter.clone() };
        let runs = self.list_runs(&one_more).await?;
        Ok(Page::cut(runs, size, |last| RunCursor::after(last).encode()))
    }

    /// Up to `limit` of the graphs of `org` whose id sorts after `after` (all
    /// when `None`), by id: the latest version of each.
    async fn list_graphs_after(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredGraph>, StoreError>;

    /// A page of at most `size` graphs of `org` (latest versions, by id),
    /// starting after `after`, and the cursor of the next page.
    async fn graph_page(
        &self,
        org: &str,
        after: Option<&GraphCursor>,
        size: usize,
    ) -> Result<Page<StoredGraph>, StoreError> {
        let after = after.map(|cursor| cursor.graph_id.as_str());
        let graphs = self.list_graphs_after(org, after, size.saturating_add(1)).await?;
        Ok(Page::cut(graphs, size, |last| GraphCursor::after(last).encode()))
    }

    /// Up to `limit` transcript events of a run with a sequence number above
    /// `after`, in order.
    async fn transcript(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<TranscriptEvent>, StoreError>;

    /// The run's transcript from sequence number `after` (exclusive), then every
    /// new event as it is committed, by this process or another: no gap and no
    /// duplicate at the seam. Ends after a final event (run completed, failed or
    /// cancelled), and after yielding an error (an unknown run, say).
    fn follow(&self, run_id: &str, after: u64) -> BoxStream<'static, Result<TranscriptEvent, StoreError>>;

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
    ) -> Result<WorkerRegistration, StoreError>;

    /// Ends `instance`'s registration as `worker_id`, so that another process
    /// may take the id at once; a registration of another instance is left as
    /// it is.
    async fn release_worker(&self, worker_id: &str, instance: &str) -> Result<(), StoreError>;

    /// The running runs whose lease `owner` holds, live or expired: those a
    /// process that registered a worker id (the owner of its leases) takes
    /// back at once, held by a process of that id that died.
    async fn runs_held_by(&self, owner: &str) -> Result<Vec<RunRecord>, StoreError>;
}
