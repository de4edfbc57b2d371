//! The progress of a node run alone in a child run of its own (an
//! orchestration's agents taking turns), kept as it goes: each record the
//! node keeps ([`Scope::keep_progress`](roomkit_graph::Scope::keep_progress))
//! is committed at once, with what the step sent before it, as a `progress`
//! entry of the child's transcript; a step driven again after a crash is
//! handed back the records kept, and goes on from there.

use std::sync::Arc;

use async_trait::async_trait;
use roomkit_graph::{Emitted, Progress};
use roomkit_graph_store::{Entry, RunRecord, RunStatus, StepCommit};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::commit;
use crate::drive::Held;
use crate::error::RunnerError;
use crate::shared::Shared;

/// How many transcript events are read at a time to find what was kept.
const PAGE: usize = 256;

/// Keeps the progress of the step of `run`, driven under `held`.
pub(crate) struct Keeper {
    shared: Arc<Shared>,
    held: Arc<Held>,
    /// The run as it stood when its step began.
    run: RunRecord,
    /// The node's type, for its `node_started` entry.
    node_type: String,
    /// What an earlier go kept.
    kept: Vec<Value>,
    /// The run's version as last committed, and whether its transcript
    /// holds the node's `node_started` entry yet.
    committed: Mutex<(u64, bool)>,
}

impl Keeper {
    /// A keeper for the step `run` stands at (a node of type `node_type`),
    /// with the records its transcript holds for that node.
    pub(crate) async fn of(
        shared: &Arc<Shared>,
        held: &Arc<Held>,
        run: &RunRecord,
        node_type: String,
    ) -> Result<Arc<Keeper>, RunnerError> {
        let node = run.current_node_id.as_deref().unwrap_or_default();
        let (mut kept, mut started, mut after) = (Vec::new(), false, 0);
        loop {
            let page = shared.store.transcript(&run.run_id, after, PAGE).await?;
            for event in &page {
                match &event.entry {
                    Entry::NodeStarted { node_id, .. } if node_id == node => started = true,
                    Entry::Progress { node_id, record } if node_id == node => kept.push(record.clone()),
                    _ => {}
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = last.seq,
                _ => break,
            }
        }
        Ok(Arc::new(Keeper {
            shared: Arc::clone(shared),
            held: Arc::clone(held),
            run: run.clone(),
            node_type,
            kept,
            committed: Mutex::new((run.version, started)),
        }))
    }

    /// The run's version as last committed, and whether the node's
    /// `node_started` entry is committed already (the step's own commit
    /// then leaves it out).
    pub(crate) async fn committed(&self) -> (u64, bool) {
        *self.committed.lock().await
    }
}

#[async_trait]
impl Progress for Keeper {
    fn kept(&self) -> &[Value] {
        &self.kept
    }

    async fn keep(&self, node_id: &str, record: Value, sent: Vec<Emitted>) -> Result<(), String> {
        let mut committed = self.committed.lock().await;
        let (version, started) = *committed;
        let mut entries = Vec::with_capacity(sent.len() + 2);
        if !started {
            // A node run alone is never retried in its own run: its
            // parent's step retries it with a fresh child.
            entries.push(Entry::NodeStarted {
                node_id: node_id.to_owned(),
                node_type: self.node_type.clone(),
                attempt: 1,
            });
        }
        entries.extend(sent.iter().map(|emitted| commit::kept(emitted.node_id.clone(), &emitted.sent)));
        entries.push(Entry::Progress { node_id: node_id.to_owned(), record });
        let now = self.shared.now();
        let commit = StepCommit {
            expected_version: version,
            lease: Some(self.held.for_commit(now)),
            ..commit::status_change(&self.run, RunStatus::Running, entries, now)
        };
        let (record, _) = self.shared.store.commit_step(commit).await.map_err(|error| error.to_string())?;
        *committed = (record.version, true);
        Ok(())
    }
}
