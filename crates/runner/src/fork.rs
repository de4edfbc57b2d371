//! Forks: a new run of a run's graph version from where that run stood at
//! one of its transcript entries, opened in one transaction with its first
//! commit (the questions it waited on, asked again, and the answer it is
//! given), and driven; the run forked from is never changed.

use std::sync::Arc;

use roomkit_graph_store::{Entry, NewRun, Origin, RunRecord, RunStatus, StepCommit};
use serde_json::Value;

use crate::commit::{self, Cause};
use crate::drive::Started;
use crate::error::RunnerError;
use crate::shared::Shared;
use crate::supervisor;

/// See [`Runner::fork`](crate::Runner::fork).
pub(crate) async fn start(
    shared: &Arc<Shared>,
    run_id: &str,
    seq: u64,
    data: Option<Value>,
    by: Option<&str>,
) -> Result<RunRecord, RunnerError> {
    let refuse =
        |reason: &str| RunnerError::CannotFork { run_id: run_id.to_owned(), seq, reason: reason.to_owned() };
    let origin = shared.store.run(run_id).await?;
    if origin.parent.is_some() {
        return Err(refuse("it is a child run: fork its parent run instead"));
    }
    let at = shared.store.run_at(run_id, seq).await?;
    let position = &at.position;
    if position.status.is_final() {
        return Err(refuse(&format!(
            "the run was {} there: nothing goes on from it",
            position.status.as_str()
        )));
    }
    if position.status == RunStatus::Waiting && position.wake_at.is_some() {
        return Err(refuse("the run rested on a timer there: fork it at an entry before or after"));
    }
    let events = shared.transcript_through(run_id, at.commit_seq).await?;
    // What the commit of the entry ended with.
    let last = events.last().map(|event| &event.entry);
    if matches!(last, Some(Entry::ChildFinished { .. })) {
        return Err(refuse("the run was taking its child run's end there: fork it at the entry after"));
    }
    let workflow = shared.workflow_of(&origin).await?;
    // A fresh run id: the engine makes one.
    let mut engine = workflow.restore(at.engine_state(""))?;
    engine.set_steps_taken(position.steps);
    if engine.waits_on_child() {
        return Err(refuse("the run waited on a child run there: fork it at an entry before or after"));
    }
    let now = shared.now();
    // Between two attempts at its node: the fork makes the next one, when due.
    let mut retry_at = None;
    if let Some(Entry::RetryScheduled { node_id, attempt, retry_at: due }) = last
        && engine.current_node_id() == Some(node_id.as_str())
    {
        engine.set_attempt(*attempt);
        retry_at = Some((*due).max(now));
    }
    let state = engine.to_state();
    let fork_id = state.run_id.clone();
    // Where it waited for a person, it asks again.
    let waiting: Vec<String> = position.waiting_on().into_iter().map(str::to_owned).collect();
    let asked: Vec<Entry> = waiting
        .iter()
        .filter_map(|node| {
            events.iter().rev().find_map(|event| match &event.entry {
                entry @ Entry::NodeWaiting { node_id, .. } if node_id == node => Some(entry.clone()),
                _ => None,
            })
        })
        .collect();
    let lease = shared.leases.taken_at(now);
    let first_step = match data {
        None if asked.is_empty() => None,
        None => Some(StepCommit {
            run_id: fork_id.clone(),
            expected_version: 1,
            at: now,
            writes: Vec::new(),
            current_node_id: state.current_node_id.clone(),
            previous_node_id: state.previous_node_id.clone(),
            status: RunStatus::Waiting,
            error: None,
            entries: asked,
            wake_at: None,
            lease: None,
            steps: position.steps,
            pending: state.pending.clone(),
        }),
        Some(data) => {
            let node = match waiting.as_slice() {
                [node] => node.clone(),
                [] => return Err(refuse("the run did not wait for an answer there: fork it without data")),
                _ => return Err(refuse("the run waited on several nodes there: answer the fork's own")),
            };
            let outcome = commit::answered(&mut engine, &fork_id, &node, &data)?;
            let mut commit =
                commit::of_outcome(&outcome, &engine, Cause::Answer { by, data: &data }, &fork_id, 1, now);
            commit.entries.splice(0..0, asked);
            Some(StepCommit { lease: Some(lease.clone()), ..commit })
        }
    };
    let trigger = match events.first().map(|event| &event.entry) {
        Some(Entry::RunStarted { trigger, .. }) => trigger.clone(),
        _ => Value::Null,
    };
    let concurrency = commit::slot(&engine, &trigger);
    let record = shared
        .store
        .create_run(NewRun {
            org: origin.org.clone(),
            graph_id: origin.graph_id.clone(),
            graph_version: origin.graph_version,
            at: now,
            trigger,
            state,
            key: None,
            lease: Some(lease),
            first_step,
            parent: None,
            origin: Some(Origin { run_id: run_id.to_owned(), seq }),
            concurrency,
        })
        .await?;
    if record.status == RunStatus::Running {
        supervisor::spawn(shared, &record, Some(Started { record: record.clone(), engine, retry_at }));
    }
    Ok(record)
}
