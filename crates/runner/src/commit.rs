//! The one place where what happened to a run becomes a commit: an engine's
//! [`StepOutcome`] (a step, an answer, a timer that fired) or a cancel turns
//! into a [`StepCommit`]: the outputs it stored, where the run stands, and
//! the transcript entries a person reads.

use roomkit_graph::{EngineError, ErrorKind, Sent, Signal, StepOutcome, StepStatus, WorkflowEngine};
use roomkit_graph_store::{ConcurrencySlot, Entry, Millis, RunRecord, RunStatus, StepCommit};
use serde_json::Value;

use crate::error::RunnerError;
use crate::time::millis_i64;

/// What moved the run.
pub(crate) enum Cause<'a> {
    /// Its current node ran.
    Step,
    /// A person answered (`by`, if known) with `data`.
    Answer {
        /// Who answered.
        by: Option<&'a str>,
        /// The answer.
        data: &'a Value,
    },
    /// The timer it rested on fired.
    Wake,
}

/// `engine` (of run `run_id`) answers `node_id` with `data`: the outcome to
/// commit, or [`RunnerError::InvalidAnswer`] in the node's words when it
/// refuses the answer or no edge takes it (nothing is kept then).
pub(crate) fn answered(
    engine: &mut WorkflowEngine,
    run_id: &str,
    node_id: &str,
    data: &Value,
) -> Result<StepOutcome, RunnerError> {
    let refuse = |reason: String| RunnerError::InvalidAnswer {
        run_id: run_id.to_owned(),
        node_id: node_id.to_owned(),
        reason,
    };
    let outcome = engine.answer(node_id, data.clone()).map_err(|error| match error {
        EngineError::AnswerRefused { reason, .. } | EngineError::InvalidArgument(reason) => refuse(reason),
        other => RunnerError::Engine(other),
    })?;
    match outcome.status {
        StepStatus::Failed { error, .. } => Err(refuse(error.to_string())),
        _ => Ok(outcome),
    }
}

/// The commit that records `outcome` on the run `run_id` at
/// `expected_version`, `engine` standing where the outcome left it, at `now`
/// (the commit's time, and where its timers and retries count from). No
/// lease: the caller adds its own.
pub(crate) fn of_outcome(
    outcome: &StepOutcome,
    engine: &WorkflowEngine,
    cause: Cause<'_>,
    run_id: &str,
    expected_version: u64,
    now: Millis,
) -> StepCommit {
    let node_id = outcome.node_id.clone();
    let mut entries = Vec::with_capacity(outcome.emitted.len() + 3);
    let step_limit =
        matches!(&outcome.status, StepStatus::Failed { error, .. } if error.kind() == ErrorKind::StepLimit);
    match cause {
        // A step the limit stopped never ran its node.
        Cause::Step if step_limit => {}
        Cause::Step => entries.push(Entry::NodeStarted {
            node_id: node_id.clone(),
            node_type: engine.graph().node(&node_id).map(|n| n.node_type.to_string()).unwrap_or_default(),
            attempt: outcome.attempt,
        }),
        Cause::Answer { by, data } => entries.push(Entry::AnswerReceived {
            node_id: node_id.clone(),
            by: by.map(str::to_owned),
            data: data.clone(),
        }),
        Cause::Wake => {}
    }
    entries.extend(outcome.emitted.iter().map(|emitted| kept(emitted.node_id.clone(), &emitted.sent)));
    entries.extend(outcome.closed.iter().map(|closed| Entry::WaitingClosed { node_id: closed.clone() }));
    let output_of = |id: &str| engine.context().output(id).cloned().unwrap_or(Value::Null);
    let mut wake_at = None;
    let mut error = None;
    let status = match &outcome.status {
        StepStatus::Completed => {
            match cause {
                Cause::Step | Cause::Wake => entries
                    .push(Entry::NodeCompleted { node_id: node_id.clone(), output: output_of(&node_id) }),
                // The answer is the node's output; a parallel node it completed says so.
                Cause::Answer { .. } => entries.extend(
                    outcome.writes.iter().filter(|(written, _)| *written != node_id).map(|(written, _)| {
                        Entry::NodeCompleted { node_id: written.clone(), output: output_of(written) }
                    }),
                ),
            }
            finished_or_running(&outcome.next, &mut entries)
        }
        StepStatus::Waiting(points) => {
            entries.extend(points.iter().map(|point| Entry::NodeWaiting {
                node_id: point.node_id.clone(),
                prompt: point.ask.prompt.clone(),
                actions: point.ask.actions.clone(),
            }));
            RunStatus::Waiting
        }
        StepStatus::Sleeping(rest) => {
            entries.push(Entry::NodeWaiting {
                node_id: node_id.clone(),
                prompt: Some(format!("timer: waits {rest:?}")),
                actions: Vec::new(),
            });
            wake_at = Some(now.saturating_add(millis_i64(*rest)));
            RunStatus::Waiting
        }
        // The runner opens the child run with this commit and adds its
        // `child_started` entry (see `children::open`).
        StepStatus::Child(_) => RunStatus::Waiting,
        StepStatus::Failed { error: failure, retry_in: Some(wait) } => {
            let attempt = outcome.attempt;
            entries.push(Entry::NodeFailed { node_id: node_id.clone(), attempt, error: failure.to_string() });
            entries.push(Entry::RetryScheduled {
                node_id: node_id.clone(),
                attempt: attempt + 1,
                retry_at: now.saturating_add(millis_i64(*wait)),
            });
            RunStatus::Running
        }
        StepStatus::Failed { error: failure, retry_in: None } => {
            let message = failure.to_string();
            if !step_limit {
                entries.push(Entry::NodeFailed {
                    node_id: node_id.clone(),
                    attempt: outcome.attempt,
                    error: message.clone(),
                });
            }
            entries.push(Entry::RunFailed { error: message.clone() });
            error = Some(message);
            RunStatus::Failed
        }
        StepStatus::Routed(failure) => {
            entries.push(Entry::NodeFailed {
                node_id: node_id.clone(),
                attempt: outcome.attempt,
                error: failure.message.clone(),
            });
            let target = outcome.next.clone().unwrap_or_default();
            entries.push(Entry::ErrorRouted { node_id: node_id.clone(), target });
            RunStatus::Running
        }
    };
    StepCommit {
        run_id: run_id.to_owned(),
        expected_version,
        at: now,
        writes: outcome.writes.clone(),
        current_node_id: engine.current_node_id().map(str::to_owned),
        previous_node_id: engine.previous_node_id().map(str::to_owned),
        status,
        error,
        entries,
        wake_at,
        lease: None,
        steps: engine.steps_taken(),
        pending: engine.pending().into_iter().map(str::to_owned).collect(),
    }
}

/// A commit that moves `run` to `status` where it stands, running no node
/// (a cancel), with `entries`, at `now`.
pub(crate) fn status_change(
    run: &RunRecord,
    status: RunStatus,
    entries: Vec<Entry>,
    now: Millis,
) -> StepCommit {
    StepCommit {
        run_id: run.run_id.clone(),
        expected_version: run.version,
        at: now,
        writes: Vec::new(),
        current_node_id: run.current_node_id.clone(),
        previous_node_id: run.previous_node_id.clone(),
        status,
        error: None,
        entries,
        wake_at: None,
        lease: None,
        steps: run.steps,
        pending: run.pending.clone(),
    }
}

/// Completed when the run has no node left (closing the transcript), else running.
fn finished_or_running(next: &Option<String>, entries: &mut Vec<Entry>) -> RunStatus {
    if next.is_some() {
        RunStatus::Running
    } else {
        entries.push(Entry::RunCompleted);
        RunStatus::Completed
    }
}

/// The transcript entry of something a node sent.
pub(crate) fn kept(node_id: String, sent: &Sent) -> Entry {
    match sent {
        Sent::Signal(Signal::AgentMessage { agent, text, usage }) => {
            Entry::AgentMessage { node_id, agent: agent.clone(), text: text.clone(), usage: usage.clone() }
        }
        Sent::Signal(Signal::NotificationSent { channel, text }) => {
            Entry::NotificationSent { node_id, channel: channel.clone(), text: text.clone() }
        }
        // Tokens are never kept (the engine leaves them out); should one come, keep it as sent.
        Sent::Signal(signal @ Signal::Token { .. }) => Entry::Custom { node_id, payload: signal.to_value() },
        Sent::Custom(payload) => Entry::Custom { node_id, payload: payload.clone() },
    }
}

/// The place a run of `engine`'s graph started with `trigger` takes, when
/// the graph limits how many of its runs go at once. A key that renders to
/// nothing (its path names nothing in the trigger data and has no
/// `default`) is the empty one, shared by all such runs.
pub(crate) fn slot(engine: &WorkflowEngine, trigger: &Value) -> Option<ConcurrencySlot> {
    let concurrency = engine.graph().concurrency.as_ref()?;
    Some(ConcurrencySlot::new(concurrency.key_for(trigger).unwrap_or_default(), concurrency.limit))
}
