//! The loop that drives one run: step, commit, repeat; failed attempts are
//! retried as the node's policy says, each attempt in the transcript. Beside
//! it, the run's lease is kept: renewed with the commits, or on its own when
//! a third of it passes without one; once it is lost, driving stops.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use roomkit_graph::{
    ErrorKind, Node, NodePolicy, NodeType, RunStatus as EngineStatus, StreamMode, Workflow, WorkflowEngine,
    parse_duration,
};
use roomkit_graph_store::{
    Entry, Lease, Millis, RunRecord, RunStatus, StepCommit, StoreError, TranscriptEvent, now_millis,
};
use serde_json::Value;

use tokio::sync::{Notify, broadcast};
use tracing::Instrument as _;

use crate::emitted::{self, LiveEvent};
use crate::{Inner, RunnerError, waiting_entry};

/// How driving a run ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The run parked (or was not running): an answer or a timer may set it
    /// going again.
    Parked,
    /// The run is over: completed, failed or cancelled.
    Over,
    /// Another writer moved the run, the lease was lost, or the runner is
    /// stopping: leave it alone.
    LetGo,
    /// The store failed (unavailable, locked...): the run stays as last
    /// committed, with this runner's lease, to be driven again a little later.
    Failed,
}

/// The lease this runner holds on the run it drives.
pub(crate) struct Held {
    owner: String,
    /// When it expires, as last stored (by the claim, a commit or a renewal).
    until: AtomicI64,
    /// How long a lease lasts.
    duration: Millis,
}

impl Held {
    /// The lease to commit a step with: renewed from now when a third of it
    /// has passed, else as stored (so the commit does not rewrite it).
    fn for_commit(&self) -> Lease {
        let now = now_millis();
        let until = self.until.load(Ordering::SeqCst);
        let until = if until.saturating_sub(now) < self.duration / 3 * 2 {
            let renewed = now.saturating_add(self.duration);
            self.until.fetch_max(renewed, Ordering::SeqCst);
            renewed
        } else {
            until
        };
        Lease { owner: self.owner.clone(), until }
    }
}

/// Drives `run_id`, whose lease this runner holds until `until`, until it
/// parks, ends, or the runner stops. Each step is committed before the next
/// begins. A commit or renewal refused as a conflict means another writer
/// moved the run (it was cancelled, say) or took it: the task lets go, dropping
/// the step in progress. So does a cancel through this runner (`cancelled`
/// notified), without waiting for a renewal.
pub(crate) async fn drive(
    inner: &Inner,
    run_id: &str,
    until: Millis,
    start: Option<Started>,
    cancelled: &Notify,
) -> Ended {
    let held =
        Held { owner: inner.owner.clone(), until: AtomicI64::new(until), duration: inner.lease_millis() };
    let driving = async {
        tokio::select! {
            ended = drive_steps(inner, run_id, &held, start) => match ended {
                Ok(ended) => ended,
                Err(error) => {
                    // The run stays as last committed, to be driven again.
                    tracing::warn!(%error, "driving the run stopped: the store failed");
                    Ended::Failed
                }
            },
            () = keep_lease(inner, run_id, &held) => {
                tracing::info!("the run's lease was lost: letting go");
                Ended::LetGo
            }
            () = cancelled.notified() => {
                tracing::info!("the run was cancelled: the step in progress is dropped");
                Ended::Over
            }
        }
    };
    driving.instrument(tracing::info_span!("run", run_id)).await
}

/// Renews the lease each time a third of it has passed without a commit doing
/// it. Returns once the lease is lost: the run is not running any more, or
/// another owner took it.
async fn keep_lease(inner: &Inner, run_id: &str, held: &Held) {
    loop {
        let until = held.until.load(Ordering::SeqCst);
        sleep_until(until.saturating_sub(held.duration / 3 * 2)).await;
        if held.until.load(Ordering::SeqCst) != until {
            // A commit renewed it meanwhile.
            continue;
        }
        let lease = Lease::new(held.owner.clone(), now_millis(), held.duration);
        match inner.store.renew_lease(run_id, &lease).await {
            Ok(run) => {
                held.until.fetch_max(run.lease_until.unwrap_or(lease.until), Ordering::SeqCst);
            }
            Err(StoreError::Conflict { .. }) => return,
            // The store failed (locked, say): try again shortly, before the lease runs out.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(u64::try_from(held.duration / 10).unwrap_or(5)))
                    .await
            }
        }
    }
}

/// A run just created by this runner: its record and its engine, so that
/// driving it need not read them back.
pub(crate) struct Started {
    pub(crate) record: RunRecord,
    pub(crate) engine: WorkflowEngine,
    pub(crate) workflow: Workflow,
    /// The attempt its current node runs at next, and when (a retry scheduled
    /// by its first step).
    pub(crate) pending: (u32, Option<Millis>),
}

async fn drive_steps(
    inner: &Inner,
    run_id: &str,
    held: &Held,
    start: Option<Started>,
) -> Result<Ended, RunnerError> {
    if let Some(Started { record, engine, workflow, pending }) = start {
        return drive_from(inner, run_id, held, &record, engine, &workflow, pending).await;
    }
    let (record, state) = inner.store.load_run(run_id).await?;
    if record.status != RunStatus::Running {
        return Ok(Ended::Parked);
    }
    let workflow = inner.workflow(&record.org, &record.graph_id, record.graph_version).await?;
    let engine = workflow.restore(state)?;
    // A run picked up after a restart may be between two attempts of a node.
    let pending = match engine.current_node_id() {
        // Only the last event can be a pending retry.
        Some(node) => {
            pending_retry(&inner.store.transcript(run_id, record.last_seq.saturating_sub(1), 1).await?, node)
        }
        None => (1, None),
    };
    drive_from(inner, run_id, held, &record, engine, &workflow, pending).await
}

/// Drives the run from `record` and `engine`: the attempt of its current node
/// to run (and when, for a retry scheduled before a restart) is `pending`.
async fn drive_from(
    inner: &Inner,
    run_id: &str,
    held: &Held,
    record: &RunRecord,
    mut engine: WorkflowEngine,
    workflow: &Workflow,
    pending: (u32, Option<Millis>),
) -> Result<Ended, RunnerError> {
    let graph = workflow.graph();
    let mut version = record.version;
    // Set when a timer woke the run: its delay node now runs instead of parking.
    let mut timer_fired = record.wake_at.is_some();
    let (mut attempt, retry_at) = pending;
    // A stop cuts the wait for a retry short: the run is let go, its retry
    // still scheduled, for whoever drives it next.
    if let Some(at) = retry_at
        && !inner.unless_stopped(sleep_until(at)).await
    {
        return Ok(Ended::LetGo);
    }
    while !inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        let node_id = engine.current_node_id().unwrap_or_default().to_owned();
        let node = graph.node(&node_id);
        let delay = node.and_then(delay_of);
        if let (Some(delay), false) = (delay, std::mem::take(&mut timer_fired)) {
            // Park on a durable timer: no task waits, the runner's timer loop wakes the run.
            let wake_at = now_millis().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
            let mut park = commit(&engine, run_id, version, Vec::new(), RunStatus::Waiting, None, Vec::new());
            park.entries.push(Entry::NodeWaiting {
                node_id: node_id.clone(),
                prompt: Some(format!("timer: waits {delay:?}")),
                actions: Vec::new(),
            });
            park.wake_at = Some(wake_at);
            park.lease = Some(held.for_commit());
            return match inner.store.commit_step(park).await {
                Ok(_) | Err(StoreError::Conflict { .. }) => Ok(Ended::LetGo),
                Err(error) => Err(error.into()),
            };
        }
        let (Attempted { commit, wait, .. }, next) =
            attempt_node(&mut engine, node, run_id, version, attempt, &inner.live).await;
        attempt = next;
        let status = commit.status;
        let failure = commit.error.clone();
        let commit = StepCommit { lease: Some(held.for_commit()), ..commit };
        match inner.store.commit_step(commit).await {
            Ok((record, _)) => version = record.version,
            Err(StoreError::Conflict { detail, .. }) => {
                tracing::debug!(node = %node_id, %detail, "another writer moved the run; letting go");
                return Ok(Ended::LetGo);
            }
            Err(error) => return Err(error.into()),
        }
        match (status, failure) {
            (RunStatus::Failed, Some(error)) => tracing::info!(node = %node_id, %error, "run failed"),
            (RunStatus::Completed, _) => tracing::info!(node = %node_id, "run completed"),
            (RunStatus::Waiting, _) => tracing::debug!(node = %node_id, "run waits for an answer"),
            (_, _) if wait.is_some() => {
                tracing::info!(node = %node_id, attempt, "node failed; retry scheduled")
            }
            _ => tracing::debug!(node = %node_id, "step committed"),
        }
        if status.is_final() {
            return Ok(Ended::Over);
        }
        if status != RunStatus::Running {
            return Ok(Ended::Parked);
        }
        if let Some(wait) = wait
            && !inner.unless_stopped(tokio::time::sleep(wait)).await
        {
            return Ok(Ended::LetGo);
        }
    }
    Ok(Ended::LetGo)
}

/// Runs attempt `attempt` of the engine's current node as the node's policy
/// says (its timeout; a failure the policy retries becomes a scheduled retry)
/// and describes what to commit. Also gives the attempt the node runs at
/// next: the following one after a scheduled retry, else 1.
pub(crate) async fn attempt_node(
    engine: &mut WorkflowEngine,
    node: Option<&Node>,
    run_id: &str,
    version: u64,
    attempt: u32,
    live: &broadcast::Sender<LiveEvent>,
) -> (Attempted, u32) {
    let node_id = engine.current_node_id().unwrap_or_default().to_owned();
    let no_config = serde_json::Map::new();
    let config = node.map_or(&no_config, |n| &n.config);
    let policy = match NodePolicy::read(config) {
        Ok(policy) => policy,
        Err(problem) => return (failed(engine, run_id, version, format!("node {node_id:?}: {problem}")), 1),
    };
    engine.set_attempt(attempt);
    let mut attempted = step(engine, node, run_id, version, attempt, policy.timeout, live).await;
    let commit = &mut attempted.commit;
    if commit.status != RunStatus::Failed || !attempted.retryable || attempt >= policy.max_attempts {
        return (attempted, 1);
    }
    // Not the end: schedule the next attempt instead.
    let wait = policy.backoff(attempt + 1);
    let retry_at = now_millis().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
    commit.entries.pop();
    commit.entries.push(Entry::RetryScheduled { node_id, attempt: attempt + 1, retry_at });
    commit.status = RunStatus::Running;
    commit.error = None;
    attempted.wait = Some(wait);
    (attempted, attempt + 1)
}

/// A step's commit, with whether its failure may be retried and how long to
/// wait before the next attempt.
pub(crate) struct Attempted {
    pub(crate) commit: StepCommit,
    retryable: bool,
    pub(crate) wait: Option<Duration>,
}

/// Runs the engine's current node (attempt `attempt`, within `timeout`) and
/// describes what to commit.
async fn step(
    engine: &mut WorkflowEngine,
    node: Option<&Node>,
    run_id: &str,
    expected_version: u64,
    attempt: u32,
    timeout: Option<Duration>,
    live: &broadcast::Sender<LiveEvent>,
) -> Attempted {
    let node_id = engine.current_node_id().unwrap_or_default().to_owned();
    let node_type = node.map(|n| n.node_type.to_string()).unwrap_or_default();
    let mut entries = vec![Entry::NodeStarted { node_id: node_id.clone(), node_type, attempt }];

    let run = async {
        let mut custom = Vec::new();
        let mut failure = None;
        let mut events = engine.stream_step(&[StreamMode::Custom]);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    let emitter = event.node_id.unwrap_or_else(|| node_id.clone());
                    match emitted::entry(emitter.clone(), event.payload.clone()) {
                        Some(entry) => custom.push(entry),
                        // Nobody listening is fine: live events are not kept.
                        None => drop(live.send(LiveEvent {
                            run_id: run_id.to_owned(),
                            node_id: emitter,
                            payload: event.payload,
                        })),
                    }
                }
                Err(error) => failure = Some(error),
            }
        }
        (custom, failure)
    };
    let outcome = match timeout {
        Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| limit),
        None => Ok(run.await),
    };
    let (failure, retryable, writes) = match outcome {
        Ok((custom, failure)) => {
            entries.extend(custom);
            let retryable = failure.as_ref().is_some_and(|e| e.kind() == ErrorKind::Execution);
            let writes = engine.last_writes().map(|(id, output)| (id.to_owned(), output.clone())).collect();
            (failure.map(|e| e.to_string()), retryable, writes)
        }
        // Cut off mid-step: nothing of the attempt was stored.
        Err(limit) => (Some(format!("node {node_id:?} timed out after {limit:?}")), true, Vec::new()),
    };

    let output = engine.context().output(&node_id).cloned().unwrap_or(Value::Null);
    let status = match (failure, engine.status()) {
        (Some(message), _) => {
            entries.push(Entry::NodeFailed { node_id: node_id.clone(), attempt, error: message.clone() });
            entries.push(Entry::RunFailed { error: message.clone() });
            return Attempted {
                commit: commit(
                    engine,
                    run_id,
                    expected_version,
                    writes,
                    RunStatus::Failed,
                    Some(message),
                    entries,
                ),
                retryable,
                wait: None,
            };
        }
        (None, EngineStatus::Waiting) => {
            let no_config = serde_json::Map::new();
            let config = node.map_or(&no_config, |n| &n.config);
            let max_bytes = engine.limits().output_bytes;
            entries.push(waiting_entry(&node_id, config, engine.context(), max_bytes));
            RunStatus::Waiting
        }
        (None, EngineStatus::Completed) => {
            entries.push(Entry::NodeCompleted { node_id: node_id.clone(), output });
            entries.push(Entry::RunCompleted);
            RunStatus::Completed
        }
        (None, EngineStatus::Running) => {
            entries.push(Entry::NodeCompleted { node_id: node_id.clone(), output });
            RunStatus::Running
        }
    };
    Attempted {
        commit: commit(engine, run_id, expected_version, writes, status, None, entries),
        retryable: false,
        wait: None,
    }
}

fn commit(
    engine: &WorkflowEngine,
    run_id: &str,
    expected_version: u64,
    writes: Vec<(String, Value)>,
    status: RunStatus,
    error: Option<String>,
    entries: Vec<Entry>,
) -> StepCommit {
    StepCommit {
        wake_at: None,
        run_id: run_id.to_owned(),
        expected_version,
        writes,
        current_node_id: engine.current_node_id().map(str::to_owned),
        previous_node_id: engine.previous_node_id().map(str::to_owned),
        status,
        error,
        entries,
        lease: None,
    }
}

/// A commit that fails the run without running its node (a malformed policy).
fn failed(engine: &WorkflowEngine, run_id: &str, version: u64, message: String) -> Attempted {
    let node_id = engine.current_node_id().unwrap_or_default().to_owned();
    let entries = vec![
        Entry::NodeFailed { node_id, attempt: 1, error: message.clone() },
        Entry::RunFailed { error: message.clone() },
    ];
    Attempted {
        commit: commit(engine, run_id, version, Vec::new(), RunStatus::Failed, Some(message), entries),
        retryable: false,
        wait: None,
    }
}

/// How long a delay function node waits, if `node` is one with a readable,
/// non-zero duration (an unreadable one runs, and fails with a clear error).
fn delay_of(node: &Node) -> Option<Duration> {
    if node.node_type != NodeType::Function
        || node.config.get("action").and_then(Value::as_str) != Some("delay")
    {
        return None;
    }
    let duration = parse_duration(node.config.get("duration")?.as_str()?).ok()?;
    (!duration.is_zero()).then_some(duration)
}

/// The attempt a run resumes `node` at, and when, from the end of its
/// transcript: after a `retry_scheduled` for the node, that attempt at that time.
fn pending_retry(events: &[TranscriptEvent], node: &str) -> (u32, Option<i64>) {
    match events.last().map(|e| &e.entry) {
        Some(Entry::RetryScheduled { node_id, attempt, retry_at }) if node_id == node => {
            (*attempt, Some(*retry_at))
        }
        _ => (1, None),
    }
}

async fn sleep_until(at: i64) {
    let wait = u64::try_from(at.saturating_sub(now_millis())).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait)).await;
}
