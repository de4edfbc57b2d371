//! The timer loop: runs parked on a durable timer (a delay node) hold no
//! task; every runner sharing the store looks for due timers each tick, and
//! wakes a due run in one commit that takes its lease, then drives it on.
//! Another process waking it first is fine.

use std::sync::Arc;

use roomkit_graph_store::{RunFilter, RunStatus, StepCommit, StoreError};

use crate::commit::{self, Cause};
use crate::drive::{self, Started};
use crate::error::RunnerError;
use crate::shared::Shared;
use crate::supervisor;

/// Starts the timer loop, once, from inside the runtime (not once stopping).
pub(crate) fn start(shared: &Arc<Shared>) {
    if shared.tasks.stop().is_set() || !shared.tick.start_once() {
        return;
    }
    // A weak handle: the loop must not keep a dropped runner (and its store) alive.
    let weak = Arc::downgrade(shared);
    let tick = shared.tick.every();
    shared.tasks.spawn(async move {
        while let Some(shared) = weak.upgrade() {
            if shared.tasks.stop().is_set() {
                break;
            }
            if let Err(error) = fire_due(&shared).await {
                tracing::warn!(%error, "looking for due timers failed; trying again at the next tick");
            }
            let (next, stop) = (shared.clock.sleep(tick), shared.tasks.stop().clone());
            drop(shared);
            // A stop ends the wait for the next tick: a shutdown need not wait for it.
            if !stop.unless_stopped(next).await {
                break;
            }
        }
    });
}

/// Wakes every run whose timer is due: the node it rested on completes, the
/// run follows its edges and is driven on.
async fn fire_due(shared: &Arc<Shared>) -> Result<(), RunnerError> {
    let due =
        RunFilter { status: Some(RunStatus::Waiting), due_by: Some(shared.now()), ..Default::default() };
    for run in shared.store.list_runs(&due).await? {
        if let Err(error) = wake(shared, &run.run_id).await {
            tracing::warn!(run_id = %run.run_id, %error, "waking the run on its timer failed");
        }
    }
    Ok(())
}

/// Wakes `run_id`, due on its timer, in one commit that takes its lease, and
/// drives it on.
async fn wake(shared: &Arc<Shared>, run_id: &str) -> Result<(), RunnerError> {
    let (record, state) = shared.store.load_run(run_id).await?;
    if record.status != RunStatus::Waiting || record.wake_at.is_none() {
        return Ok(());
    }
    let workflow = shared.workflow_of(&record).await?;
    let mut engine = drive::restored(&workflow, &record, state)?;
    let outcome = engine.wake()?;
    let now = shared.now();
    let commit = commit::of_outcome(&outcome, &engine, Cause::Wake, run_id, record.version, now);
    let wake = StepCommit { lease: Some(shared.leases.taken_at(now)), ..commit };
    match shared.store.commit_step(wake).await {
        Ok((woken, _)) => {
            supervisor::spawn(
                shared,
                &woken,
                Some(Started { record: woken.clone(), engine, retry_at: None }),
            );
            Ok(())
        }
        // Another process woke it first.
        Err(StoreError::Conflict { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}
