//! The loop that drives one run: step, commit, repeat.

use futures_util::StreamExt;
use roomkit_graph::{EngineError, RunStatus as EngineStatus, StreamMode, WorkflowEngine};
use roomkit_graph_store::{Entry, RunStatus, StepCommit, StoreError};
use serde_json::Value;

use crate::{Inner, RunnerError, waiting_entry};

/// How driving a run ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The run parked or is over (or was not running).
    Parked,
    /// Another writer moved the run, the runner is stopping, or the store
    /// failed: leave it alone.
    LetGo,
}

/// Drives `run_id` until it parks, ends, or the runner stops. Each step is
/// committed before the next begins. A commit refused as a conflict means
/// another writer moved the run (it was cancelled, say): the task lets go.
pub(crate) async fn drive(inner: &Inner, run_id: &str) -> Ended {
    // An error leaves the run as last committed, for a later recovery.
    drive_steps(inner, run_id).await.unwrap_or(Ended::LetGo)
}

async fn drive_steps(inner: &Inner, run_id: &str) -> Result<Ended, RunnerError> {
    let (record, state) = inner.store.load_run(run_id).await?;
    if record.status != RunStatus::Running {
        return Ok(Ended::Parked);
    }
    let workflow = inner.workflow(&record.graph_id, record.graph_version).await?;
    let mut engine = workflow.restore(state)?;
    let mut version = record.version;
    while !inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        let commit = step(&mut engine, run_id, version).await;
        let status = commit.status;
        match inner.store.commit_step(commit).await {
            Ok((record, _)) => version = record.version,
            Err(StoreError::Conflict { .. }) => return Ok(Ended::LetGo),
            Err(error) => return Err(error.into()),
        }
        if status != RunStatus::Running {
            return Ok(Ended::Parked);
        }
    }
    Ok(Ended::LetGo)
}

/// Runs the engine's current node and describes what to commit.
async fn step(engine: &mut WorkflowEngine, run_id: &str, expected_version: u64) -> StepCommit {
    let node_id = engine.current_node_id().unwrap_or_default().to_owned();
    let node = engine.graph().node(&node_id).cloned();
    let node_type = node.as_ref().map(|n| n.node_type.to_string()).unwrap_or_default();
    let mut entries = vec![Entry::NodeStarted { node_id: node_id.clone(), node_type, attempt: 1 }];

    let mut failure: Option<EngineError> = None;
    let mut events = engine.stream_step(&[StreamMode::Custom]);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => entries.push(Entry::Custom {
                node_id: event.node_id.unwrap_or_else(|| node_id.clone()),
                payload: event.payload,
            }),
            Err(error) => failure = Some(error),
        }
    }
    drop(events);

    let output = engine.context().output(&node_id).cloned().unwrap_or(Value::Null);
    let (status, error) = match (failure, engine.status()) {
        (Some(error), _) => {
            let message = error.to_string();
            entries.push(Entry::NodeFailed { node_id: node_id.clone(), attempt: 1, error: message.clone() });
            entries.push(Entry::RunFailed { error: message.clone() });
            (RunStatus::Failed, Some(message))
        }
        (None, EngineStatus::Waiting) => {
            let config = node.map(|n| n.config).unwrap_or_default();
            entries.push(waiting_entry(&node_id, &config));
            (RunStatus::Waiting, None)
        }
        (None, EngineStatus::Completed) => {
            entries.push(Entry::NodeCompleted { node_id: node_id.clone(), output });
            entries.push(Entry::RunCompleted);
            (RunStatus::Completed, None)
        }
        (None, EngineStatus::Running) => {
            entries.push(Entry::NodeCompleted { node_id: node_id.clone(), output });
            (RunStatus::Running, None)
        }
    };
    StepCommit {
        run_id: run_id.to_owned(),
        expected_version,
        writes: engine.last_writes().map(|(id, output)| (id.to_owned(), output.clone())).collect(),
        current_node_id: engine.current_node_id().map(str::to_owned),
        previous_node_id: engine.previous_node_id().map(str::to_owned),
        status,
        error,
        entries,
    }
}
