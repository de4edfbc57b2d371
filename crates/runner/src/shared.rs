//! What the parts of a runner share: the store, the clock, the compiled
//! graphs, its leases, its tasks and its timer loop's tick. Each part keeps
//! its own state behind its own methods; this only holds them together.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use roomkit_graph::{Clock, Workflow};
use roomkit_graph_store::{Millis, RunRecord, Store, StoreError, TranscriptEvent};

use crate::cache::Graphs;
use crate::error::RunnerError;
use crate::lease::Leases;
use crate::tasks::RunTasks;
use crate::time::{self, Tick};

/// How many transcript events are read at a time when a whole stretch of a
/// transcript is needed.
const TRANSCRIPT_PAGE: usize = 1000;

/// A runner's parts, shared by its handles and its tasks.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    /// Where every "now" and every wait of the runner comes from.
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) graphs: Graphs,
    pub(crate) leases: Leases,
    pub(crate) tasks: RunTasks,
    /// The timer loop's.
    pub(crate) tick: Tick,
    /// The store's count of queued runs let go, as this runner last looked
    /// ([`roomkit_graph_store::releases`]).
    pub(crate) releases_seen: AtomicU64,
}

impl Shared {
    /// The time now, on the runner's clock.
    pub(crate) fn now(&self) -> Millis {
        time::now(&*self.clock)
    }

    /// Claims `run_id` with a new lease, now: the claimed record, or `None`
    /// when it is not running or someone else holds it.
    pub(crate) async fn claim(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let now = self.now();
        self.store.claim_run(run_id, &self.leases.taken_at(now), now).await
    }

    /// Releases this runner's lease on a run, if it holds one. A release that
    /// fails is left to expire.
    pub(crate) async fn release(&self, run_id: &str) {
        let _ = self.store.release_run(run_id, self.leases.owner()).await;
    }

    /// The compiled graph of `graph_id` at `version`.
    pub(crate) async fn workflow(
        &self,
        org: &str,
        graph_id: &str,
        version: u64,
    ) -> Result<Workflow, RunnerError> {
        self.graphs.workflow(&*self.store, org, graph_id, version).await
    }

    /// The transcript of `run_id` up to entry `last`, read a page at a time.
    pub(crate) async fn transcript_through(
        &self,
        run_id: &str,
        last: u64,
    ) -> Result<Vec<TranscriptEvent>, StoreError> {
        let mut events: Vec<TranscriptEvent> = Vec::new();
        loop {
            let after = events.last().map_or(0, |event| event.seq);
            let page = self.store.transcript(run_id, after, TRANSCRIPT_PAGE).await?;
            let full = page.len() == TRANSCRIPT_PAGE;
            events.extend(page.into_iter().take_while(|event| event.seq <= last));
            if !full || events.last().is_some_and(|event| event.seq >= last) {
                return Ok(events);
            }
        }
    }

    /// The compiled graph `run` runs: its graph at its version, or, for a
    /// child run that runs its parent's node itself, that node
    /// [alone](Workflow::alone).
    pub(crate) async fn workflow_of(&self, run: &RunRecord) -> Result<Workflow, RunnerError> {
        let workflow = self.workflow(&run.org, &run.graph_id, run.graph_version).await?;
        match &run.parent {
            Some(link) if link.runs_node => Ok(workflow.alone(&link.node_id)?),
            _ => Ok(workflow),
        }
    }
}
