//! The store interface for durable runs: what a backend (SQLite, PostgreSQL)
//! keeps, and the operations the runner needs from it. No database here: only
//! the types and the [`Store`] trait.
//!
//! - Graphs are stored by version ([`StoredGraph`]); a run pins the version it
//!   started with, so saving a new version never changes a run in flight.
//! - Every run is a room: a [`RunRecord`] (where it stands) and its transcript,
//!   an ordered, append-only list of [`TranscriptEvent`]s that reads like a chat
//!   thread ([`render_text`]).
//! - A step is committed whole ([`StepCommit`]): the outputs it wrote, the run's
//!   new position and its transcript entries, in one transaction, guarded by the
//!   run's version so a step is never committed twice.

mod error;
mod run;
mod transcript;

use async_trait::async_trait;
use futures_core::stream::BoxStream;
use roomkit_graph::{EngineState, Graph};

pub use error::StoreError;
pub use run::{NewRun, RunFilter, RunRecord, RunStatus, StepCommit, StoredGraph};
pub use transcript::{Entry, TranscriptEvent, render_text};

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
    /// Stores `graph` as the next version of its id (1 for a new id) and returns
    /// that version.
    async fn save_graph(&self, graph: &Graph) -> Result<StoredGraph, StoreError>;

    /// A stored graph: the given version, or the latest when `version` is `None`.
    async fn graph(&self, graph_id: &str, version: Option<u64>) -> Result<StoredGraph, StoreError>;

    /// Opens a run's room: its record, its initial state and the `run_started`
    /// entry (sequence number 1). Refused if the run id exists or the graph
    /// version does not.
    async fn create_run(&self, run: NewRun) -> Result<RunRecord, StoreError>;

    /// Commits one step: its writes, the run's new position and status, and its
    /// transcript entries, atomically. Refused with [`StoreError::Conflict`],
    /// changing nothing, when the run's version is not `commit.expected_version`
    /// (another process moved it). Returns the new record and the appended events.
    async fn commit_step(&self, commit: StepCommit) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError>;

    /// A run's record.
    async fn run(&self, run_id: &str) -> Result<RunRecord, StoreError>;

    /// A run's record and the engine state to continue it from.
    async fn load_run(&self, run_id: &str) -> Result<(RunRecord, EngineState), StoreError>;

    /// Runs matching `filter`, newest first (equal creation times by run id).
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;

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
}
