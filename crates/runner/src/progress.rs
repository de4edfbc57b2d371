//! The progress of a node run alone in a child run of its own (an
//! orchestration's agents taking turns), kept as it goes: each record the
//! node keeps ([`Scope::keep_progress`](roomkit_graph::Scope::keep_progress))
//! is committed at once, with what the step sent before it, as a `progress`
//! entry of the child's transcript; an attempt driven again after a crash is
//! handed back the records it kept, and goes on from there.

use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use roomkit_graph::{Emitted, Progress};
use roomkit_graph_store::{Entry, RunRecord, RunStatus, StepCommit, StoreError};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::commit;
use crate::error::RunnerError;
use crate::lease::Held;
use crate::shared::Shared;

/// Keeps the progress of one attempt at the node `run` stands on.
pub(crate) struct Keeper {
    shared: Arc<Shared>,
    held: Arc<Held>,
    /// The run as it stood when the attempt began.
    run: RunRecord,
    /// The attempt.
    attempt: u32,
    /// The node's `node_started` entry for this attempt.
    started: Entry,
    /// What an earlier go at this attempt kept.
    kept: Vec<Value>,
    /// The run's version as last committed, and whether its transcript holds
    /// the attempt's `node_started` entry yet. Each commit updates it in a
    /// task of its own, so a step dropped midway (timed out) leaves it right.
    committed: Arc<Mutex<(u64, bool)>>,
    /// Why keeping failed, if it did: the store's error, not the node's.
    failure: std::sync::Mutex<Option<StoreError>>,
}

impl Keeper {
    /// A keeper for the attempt at the node `run` stands on (of type
    /// `node_type`): the one its transcript shows cut short, with the records
    /// it kept, or else attempt `next`, afresh.
    pub(crate) async fn of(
        shared: &Arc<Shared>,
        held: &Arc<Held>,
        run: RunRecord,
        node_type: String,
        next: u32,
    ) -> Result<Keeper, RunnerError> {
        let node = run.current_node_id.clone().unwrap_or_default();
        // The attempt started and not over yet, with what it kept.
        let mut open: Option<(u32, Vec<Value>)> = None;
        // To its end: `run` may be older than the commits of earlier attempts.
        for event in shared.transcript_through(&run.run_id, u64::MAX).await? {
            match event.entry {
                Entry::NodeStarted { node_id, attempt, .. } if node_id == node => {
                    open = Some((attempt, Vec::new()));
                }
                Entry::Progress { node_id, record } if node_id == node => {
                    if let Some((_, kept)) = &mut open {
                        kept.push(record);
                    }
                }
                Entry::NodeFailed { node_id, .. } if node_id == node => open = None,
                _ => {}
            }
        }
        let (attempt, started, kept) = match open {
            Some((attempt, kept)) => (attempt, true, kept),
            None => (next, false, Vec::new()),
        };
        Ok(Keeper {
            shared: Arc::clone(shared),
            held: Arc::clone(held),
            attempt,
            started: Entry::NodeStarted { node_id: node, node_type, attempt },
            kept,
            committed: Arc::new(Mutex::new((run.version, started))),
            run,
            failure: std::sync::Mutex::new(None),
        })
    }

    /// The attempt it keeps the progress of.
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The run's version as last committed, and whether the attempt's
    /// `node_started` entry is committed already (the step's own commit
    /// then leaves it out).
    pub(crate) async fn committed(&self) -> (u64, bool) {
        *self.committed.lock().await
    }

    /// The store's error that made keeping fail, if any: the step's failure
    /// is the store's, not the node's.
    pub(crate) fn failure(&self) -> Option<StoreError> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[async_trait]
impl Progress for Keeper {
    fn kept(&self) -> &[Value] {
        &self.kept
    }

    async fn keep(&self, node_id: &str, record: Value, sent: Vec<Emitted>) -> Result<(), String> {
        let mut entries = Vec::with_capacity(sent.len() + 2);
        entries.push(self.started.clone());
        entries.extend(sent.iter().map(|emitted| commit::kept(emitted.node_id.clone(), &emitted.sent)));
        entries.push(Entry::Progress { node_id: node_id.to_owned(), record });
        let (shared, held, run) = (Arc::clone(&self.shared), Arc::clone(&self.held), self.run.clone());
        let committed = Arc::clone(&self.committed);
        // Committed in a task of its own: once begun, it is seen through and
        // counted even if the step is dropped meanwhile.
        let task = tokio::spawn(async move {
            let mut committed = committed.lock().await;
            let (version, started) = *committed;
            if started {
                entries.remove(0);
            }
            let now = shared.now();
            let commit = StepCommit {
                expected_version: version,
                lease: Some(held.for_commit(now)),
                ..commit::status_change(&run, RunStatus::Running, entries, now)
            };
            let (record, _) = shared.store.commit_step(commit).await?;
            *committed = (record.version, true);
            Ok::<(), StoreError>(())
        });
        let failed = match task.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(join) => StoreError::Backend(format!("keeping the progress stopped: {join}").into()),
        };
        let why = failed.to_string();
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(failed);
        Err(why)
    }
}
