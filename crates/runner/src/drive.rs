//! The loop that drives one run: step, commit, repeat; failed attempts are
//! retried as the node's policy says, each attempt in the transcript. Beside
//! it, the run's lease is kept: renewed with the commits, or on its own when
//! a third of it passes without one; once it is lost, driving stops.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use std::sync::Arc;

use roomkit_graph::{ChildEnd, StepStatus, Workflow, WorkflowEngine};
use roomkit_graph_store::{Entry, Lease, Millis, RunRecord, RunStatus, StoreError, TranscriptEvent};

use tokio::sync::Notify;
use tracing::Instrument as _;

use crate::children::{self, Asked};
use crate::commit::{self, Cause};
use crate::error::RunnerError;
use crate::lease::Held;
use crate::metrics;
use crate::progress::Keeper;
use crate::shared::Shared;
use crate::time::sleep_until;
use crate::trace;

/// How driving a run ended.
pub(crate) enum Ended {
    /// The run parked (or was not running): an answer or a timer may set it
    /// going again.
    Parked,
    /// The run parked on a child run it opened, for the supervisor to drive.
    Opened(Box<Started>),
    /// The run is over: completed, failed or cancelled; a child run names
    /// its parent, which the store set going.
    Over(Option<String>),
    /// Another writer moved the run, the lease was lost, or the runner is
    /// stopping: leave it alone.
    LetGo,
    /// The store failed (unavailable, locked...): the run stays as last
    /// committed, with this runner's lease, to be driven again a little later.
    Failed,
}

impl Ended {
    /// How the drive ended, in a word (for its span).
    fn word(&self) -> &'static str {
        match self {
            Ended::Parked => "parked",
            Ended::Opened(_) => "child_opened",
            Ended::Over(_) => "over",
            Ended::LetGo => "let_go",
            Ended::Failed => "store_failed",
        }
    }
}

/// Drives `run_id`, whose lease this runner holds until `until`, until it
/// parks, ends, or the runner stops. Each step is committed before the next
/// begins. A commit or renewal refused as a conflict means another writer
/// moved the run (it was cancelled, say) or took it: the task lets go, dropping
/// the step in progress. So does a cancel through this runner (`cancelled`
/// notified), without waiting for a renewal.
pub(crate) async fn drive(
    shared: &Arc<Shared>,
    run_id: &str,
    until: Millis,
    start: Option<Started>,
    cancelled: &Notify,
) -> Ended {
    let held = Arc::new(Held {
        owner: shared.leases.owner().to_owned(),
        until: AtomicI64::new(until),
        duration: shared.leases.duration_millis(),
    });
    let driving = async {
        tokio::select! {
            ended = drive_steps(shared, run_id, &held, start) => match ended {
                Ok(ended) => (ended.word(), ended),
                Err(error) => {
                    // The run stays as last committed, to be driven again.
                    tracing::warn!(%error, "driving the run stopped: the store failed");
                    ("store_failed", Ended::Failed)
                }
            },
            () = keep_lease(shared, run_id, &held) => {
                tracing::info!("the run's lease was lost: letting go");
                ("lease_lost", Ended::LetGo)
            }
            () = cancelled.notified() => {
                tracing::info!("the run was cancelled: the step in progress is dropped");
                ("cancelled", Ended::Over(None))
            }
        }
    };
    let span = trace::run_span(run_id);
    let (word, ended) = driving.instrument(span.clone()).await;
    span.record("ended", word);
    ended
}

/// Renews the lease each time a third of it has passed without a commit doing
/// it. Returns once the lease is lost: the run is not running any more, or
/// another owner took it.
async fn keep_lease(shared: &Shared, run_id: &str, held: &Held) {
    loop {
        let until = held.until.load(Ordering::SeqCst);
        sleep_until(&*shared.clock, until.saturating_sub(held.duration / 3 * 2)).await;
        if held.until.load(Ordering::SeqCst) != until {
            // A commit renewed it meanwhile.
            continue;
        }
        let lease = Lease::new(held.owner.clone(), shared.now(), held.duration);
        match shared.store.renew_lease(run_id, &lease).await {
            Ok(run) => {
                held.until.fetch_max(run.lease_until.unwrap_or(lease.until), Ordering::SeqCst);
            }
            Err(StoreError::Conflict { .. }) => return,
            // The store failed (locked, say): try again shortly, before the lease runs out.
            Err(_) => {
                shared
                    .clock
                    .sleep(Duration::from_millis(u64::try_from(held.duration / 10).unwrap_or(5)))
                    .await
            }
        }
    }
}

/// A run just set going by this runner (created, answered or woken): its
/// record and its engine, so that driving it need not read them back.
pub(crate) struct Started {
    pub(crate) record: RunRecord,
    pub(crate) engine: WorkflowEngine,
    /// When its current node's next attempt is due (a retry scheduled by the
    /// step that started it).
    pub(crate) retry_at: Option<Millis>,
}

async fn drive_steps(
    shared: &Arc<Shared>,
    run_id: &str,
    held: &Arc<Held>,
    start: Option<Started>,
) -> Result<Ended, RunnerError> {
    if let Some(Started { record, engine, retry_at }) = start {
        return drive_from(shared, run_id, held, &record, engine, retry_at, None).await;
    }
    let (record, state) = shared.store.load_run(run_id).await?;
    if record.status != RunStatus::Running {
        return Ok(Ended::Parked);
    }
    if let Some(link) = &record.parent
        && shared.store.run(&link.run_id).await?.status.is_final()
    {
        // A child whose parent is over (cancelled while a crash kept the
        // child from being cancelled with it) has nobody to go on for.
        let entries = vec![Entry::RunCancelled { reason: Some("its parent run is over".to_owned()) }];
        let cancel = commit::status_change(&record, RunStatus::Cancelled, entries, shared.now());
        return match shared.store.commit_step(cancel).await {
            Ok(_) => Ok(Ended::Over(None)),
            Err(StoreError::Conflict { .. }) => Ok(Ended::LetGo),
            Err(error) => Err(error.into()),
        };
    }
    let workflow = shared.workflow_of(&record).await?;
    // Only the last event can be a pending retry, or the end of the child
    // run the run waited on (which set it going); the few before it say
    // which attempt at its node the child was.
    let recent =
        shared.store.transcript(run_id, record.last_seq.saturating_sub(RECENT as u64), RECENT).await?;
    let last = &recent[recent.len().saturating_sub(1)..];
    let finished = match (last.first().map(|event| &event.entry), record.current_node_id.as_deref()) {
        (Some(Entry::ChildFinished { node_id, run_id: child, status }), Some(current))
            if node_id == current =>
        {
            let attempt = recent.iter().rev().find_map(|event| match &event.entry {
                Entry::NodeStarted { node_id, attempt, .. } if node_id == current => Some(*attempt),
                _ => None,
            });
            Some((children::end_of(shared, child, *status).await, attempt.unwrap_or(1)))
        }
        _ => None,
    };
    let mut state = state;
    // Its engine still waits on the child, until it takes the child's end.
    state.waiting |= finished.is_some();
    let mut engine = restored(&workflow, &record, state)?;
    // A run picked up after a restart may be between two attempts of a node.
    let mut retry_at = None;
    if let Some(node) = engine.current_node_id()
        && let Some((attempt, at)) = pending_retry(last, node)
    {
        engine.set_attempt(attempt);
        retry_at = Some(at);
    }
    let finished = finished.map(|(end, attempt)| {
        engine.set_attempt(attempt);
        end
    });
    drive_from(shared, run_id, held, &record, engine, retry_at, finished).await
}

/// How many of a run's last transcript events are read when it is picked
/// up: a child's end, and the waiting step (with its attempt) before it.
const RECENT: usize = 8;

/// The engine of a stored run, its steps counted from where the run stands.
pub(crate) fn restored(
    workflow: &Workflow,
    record: &RunRecord,
    state: roomkit_graph::EngineState,
) -> Result<WorkflowEngine, RunnerError> {
    let mut engine = workflow.restore(state)?;
    engine.set_steps_taken(record.steps);
    Ok(engine)
}

/// Drives the run from `record` and `engine`, its next attempt due at
/// `retry_at` (a retry scheduled before a restart), if set; first taking
/// `finished`, the end of the child run it waited on, if given.
async fn drive_from(
    shared: &Arc<Shared>,
    run_id: &str,
    held: &Arc<Held>,
    record: &RunRecord,
    mut engine: WorkflowEngine,
    retry_at: Option<Millis>,
    finished: Option<ChildEnd>,
) -> Result<Ended, RunnerError> {
    trace::record_run(&tracing::Span::current(), &record.org, &record.graph_id, record.graph_version);
    let mut finished = finished;
    let mut version = record.version;
    // The keeper of the attempt under way at a node run alone.
    let mut keeper = None;
    // A stop cuts the wait for a retry short: the run is let go, its retry
    // still scheduled, for whoever drives it next.
    let stop = shared.tasks.stop();
    if let Some(at) = retry_at
        && !stop.unless_stopped(sleep_until(&*shared.clock, at)).await
    {
        return Ok(Ended::LetGo);
    }
    // A child's end is taken even when stopping: it is one quick commit.
    while finished.is_some() || !stop.is_set() {
        let step = step_span(&engine);
        let (mut outcome, cause) = match finished.take() {
            Some(end) => (engine.finish_child(end)?, Cause::Wake),
            None => {
                keeper = keeper_for(shared, held, record, version, &mut engine).await?;
                let began = std::time::Instant::now();
                match engine.step_outcome().instrument(step.clone()).await {
                    Some(outcome) => {
                        let node_type = engine.graph().node(&outcome.node_id).map(|node| &node.node_type);
                        metrics::step(node_type, &outcome.status, began.elapsed());
                        (outcome, Cause::Step)
                    }
                    None => {
                        step.record("outcome", "none");
                        return Ok(Ended::Parked);
                    }
                }
            }
        };
        let committed = if let StepStatus::Child(request) = &outcome.status {
            let request = request.clone();
            let lease = held.for_commit(shared.now());
            match children::open(shared, record, version, lease, &outcome, &mut engine, &request).await? {
                Asked::Opened(child) => {
                    step.record("outcome", metrics::outcome(&outcome.status));
                    tracing::debug!(node = %outcome.node_id, graph = %request.graph_id, "child run started");
                    let (record, engine) = *child;
                    return Ok(Ended::Opened(Box::new(Started { record, engine, retry_at: None })));
                }
                Asked::Moved => return Ok(Ended::LetGo),
                Asked::Failed(failed) => {
                    let (committed, failed) = *failed;
                    outcome = failed;
                    committed
                }
            }
        } else {
            let mut started = false;
            if let Some(keeper) = keeper.take() {
                match keeper.failure() {
                    // The attempt failed keeping its progress: the store's
                    // failure, not the node's. The run stays as committed.
                    Some(StoreError::Conflict { .. }) => return Ok(Ended::LetGo),
                    Some(error) => return Err(error.into()),
                    None => (version, started) = keeper.committed().await,
                }
            }
            let now = shared.now();
            let mut commit = commit::of_outcome(&outcome, &engine, cause, run_id, version, now);
            if started {
                // Its progress said the node started.
                commit.entries.retain(|entry| !matches!(entry, Entry::NodeStarted { .. }));
            }
            let commit = roomkit_graph_store::StepCommit { lease: Some(held.for_commit(now)), ..commit };
            match shared.store.commit_step(commit).instrument(step.clone()).await {
                Ok((committed, _)) => committed,
                Err(StoreError::Conflict { detail, .. }) => {
                    step.record("outcome", "conflict");
                    tracing::debug!(node = %outcome.node_id, %detail, "another writer moved the run; letting go");
                    return Ok(Ended::LetGo);
                }
                Err(error) => return Err(error.into()),
            }
        };
        version = committed.version;
        step.record("outcome", metrics::outcome(&outcome.status));
        drop(step);
        let status = committed.status;
        let node = &outcome.node_id;
        match &outcome.status {
            StepStatus::Failed { error, retry_in: None } => tracing::info!(%node, %error, "run failed"),
            StepStatus::Failed { error, retry_in: Some(_) } => {
                tracing::info!(%node, %error, attempt = outcome.attempt, "node failed; retry scheduled")
            }
            StepStatus::Routed(failure) => {
                tracing::info!(%node, error = %failure.message, "node failed; error route taken")
            }
            StepStatus::Waiting(_) => tracing::debug!(%node, "run waits for an answer"),
            StepStatus::Sleeping(rest) => tracing::debug!(%node, ?rest, "run rests on a timer"),
            // Never here: an opened child parked the run above, and a child
            // that could not start replaced the outcome with its failure.
            StepStatus::Child(_) => {}
            StepStatus::Completed if status == RunStatus::Completed => tracing::info!(%node, "run completed"),
            StepStatus::Completed => tracing::debug!(%node, "step committed"),
        }
        if status.is_final() {
            // A child run that is over: its parent goes on.
            return Ok(Ended::Over(committed.parent.map(|link| link.run_id)));
        }
        if status != RunStatus::Running {
            return Ok(Ended::Parked);
        }
        if let StepStatus::Failed { retry_in: Some(wait), .. } = outcome.status
            && !stop.unless_stopped(shared.clock.sleep(wait)).await
        {
            return Ok(Ended::LetGo);
        }
    }
    Ok(Ended::LetGo)
}

/// For a run that runs its parent's node alone (a room), at `version`: the
/// keeper of the attempt `engine` is about to run, handed to it.
async fn keeper_for(
    shared: &Arc<Shared>,
    held: &Arc<Held>,
    record: &RunRecord,
    version: u64,
    engine: &mut WorkflowEngine,
) -> Result<Option<Arc<Keeper>>, RunnerError> {
    let (Some(link), Some(node)) = (&record.parent, engine.current_node_id()) else { return Ok(None) };
    if !link.runs_node {
        return Ok(None);
    }
    let node_type = engine.graph().node(node).map(|n| n.node_type.to_string()).unwrap_or_default();
    let run = RunRecord { version, ..record.clone() };
    let keeper = Arc::new(Keeper::of(shared, held, run, node_type, engine.attempt()).await?);
    // An attempt cut short by a crash goes on as the same attempt.
    engine.set_attempt(keeper.attempt());
    engine.keep_progress_in(Arc::clone(&keeper) as Arc<dyn roomkit_graph::Progress>);
    Ok(Some(keeper))
}

/// The attempt a run resumes `node` at, and when, from the end of its
/// transcript: after a `retry_scheduled` for the node, that attempt at that time.
fn pending_retry(events: &[TranscriptEvent], node: &str) -> Option<(u32, Millis)> {
    match events.last().map(|e| &e.entry) {
        Some(roomkit_graph_store::Entry::RetryScheduled { node_id, attempt, retry_at })
            if node_id == node =>
        {
            Some((*attempt, *retry_at))
        }
        _ => None,
    }
}

/// The span of the step `engine` is about to take (or to finish, taking a
/// child run's end).
pub(crate) fn step_span(engine: &WorkflowEngine) -> tracing::Span {
    trace::step_span(engine.graph(), engine.current_node_id().unwrap_or_default(), engine.attempt())
}
