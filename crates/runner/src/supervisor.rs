//! The tasks that drive runs: one per run this runner holds, started from a
//! claim, a start, an answer or a timer; driven again after a pause that
//! doubles each time when the store fails, and let go after a few failures
//! in a row; looking once more for an answer that came while it finished.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::FutureExt as _;
use std::time::Duration;

use roomkit_graph_store::{RunRecord, RunStatus};

use crate::drive::{self, Ended, Started};
use crate::shared::Shared;
use crate::tasks::Refusal;

/// How many times in a row a task drives a run whose store failed before it
/// lets the run go (for [`Runner::recover`](crate::Runner::recover) to pick up later).
const DRIVE_ATTEMPTS: u32 = 6;

/// The pause before driving a run again after its store failed, doubled for
/// each failure in a row (1 s, 2 s, 4 s... with [`DRIVE_ATTEMPTS`]).
const FAILED_PAUSE: Duration = Duration::from_millis(500);

/// Drives `run` on a task of its own, if it is running with a lease this
/// runner holds and no task of this runner drives it yet (or, for a child
/// run that is over, drives its parent, which the store set going); from `start` when
/// it was just set going here (created, answered or woken). Returns whether
/// a task was started. A run claimed but not driven (the runner is stopping)
/// is released.
pub(crate) fn spawn(shared: &Arc<Shared>, run: &RunRecord, start: Option<Started>) -> bool {
    if let Some(parent) = run.parent.as_ref().filter(|_| run.status.is_final()) {
        // A child run that is over: the store set its parent going; drive it.
        let (task_shared, parent) = (Arc::clone(shared), parent.run_id.clone());
        shared.tasks.spawn(async move { drive_parent(&task_shared, &parent).await });
        return false;
    }
    let Some(until) = run
        .lease_until
        .filter(|_| run.status == RunStatus::Running && run.owner.as_deref() == Some(shared.leases.owner()))
    else {
        return false;
    };
    if shared.tasks.stop().is_set() {
        let (task_shared, run_id) = (Arc::clone(shared), run.run_id.clone());
        shared.tasks.spawn(async move { task_shared.release(&run_id).await });
        return false;
    }
    let mut cancelled = match shared.tasks.enter(&run.run_id) {
        Ok(cancelled) => cancelled,
        Err(Refusal::Driven) => return false,
        Err(Refusal::Full) => {
            // Held, but this runner drives as many runs as it may: another
            // process (or this one, later) takes it once it is released.
            let (task_shared, run_id) = (Arc::clone(shared), run.run_id.clone());
            shared.tasks.spawn(async move {
                task_shared.release(&run_id).await;
                task_shared.tasks.leave(&run_id);
            });
            return false;
        }
    };
    let (task_shared, run_id) = (Arc::clone(shared), run.run_id.clone());
    shared.tasks.spawn(async move {
        let shared = task_shared;
        let mut until = until;
        let mut start = start;
        let mut failures = 0;
        loop {
            let driving = drive::drive(&shared, &run_id, until, start.take(), &cancelled);
            // A panic (a fault of the runner's own: handlers' panics fail
            // their attempt) counts as a failure, so the task still lets the
            // run go in the end.
            let mut ended = match AssertUnwindSafe(driving).catch_unwind().await {
                Ok(ended) => ended,
                Err(_) => {
                    tracing::error!(run_id, "driving the run panicked: it is driven again after a pause");
                    Ended::Failed
                }
            };
            if let Ended::Opened(child) = ended {
                // The run parked on a child run it opened: drive the child.
                let record = child.record.clone();
                spawn(&shared, &record, Some(*child));
                ended = Ended::Parked;
            }
            if matches!(ended, Ended::Failed) {
                // Driven again after a pause, while the store may come back;
                // the step in progress runs again (at least once).
                failures += 1;
                let pause = shared.clock.sleep(FAILED_PAUSE * (1 << failures.min(5)));
                if failures < DRIVE_ATTEMPTS
                    && shared.tasks.stop().unless_stopped(pause).await
                    && let Ok(Some(run)) = shared.claim(&run_id).await
                {
                    until = run.lease_until.unwrap_or(until);
                    continue;
                }
                ended = Ended::LetGo;
            }
            failures = 0;
            if matches!(ended, Ended::LetGo) {
                // Released before the run leaves the driven ones, so that it
                // never releases a lease a new task of this runner has taken.
                shared.release(&run_id).await;
                shared.tasks.leave(&run_id);
                break;
            }
            shared.tasks.leave(&run_id);
            // Parked or over, the run may have let queued runs go.
            pick_up_released(&shared).await;
            if let Ended::Over(parent) = ended {
                // A child run that is over: its parent goes on.
                if let Some(parent) = parent {
                    drive_parent(&shared, &parent).await;
                }
                break;
            }
            if shared.tasks.stop().is_set() {
                break;
            }
            // An answer may have set the run going again while this task was
            // finishing (and so did not start another): look once more.
            let Some(run) = shared.claim(&run_id).await.ok().flatten() else { break };
            match shared.tasks.enter(&run_id) {
                Ok(entered) => {
                    until = run.lease_until.unwrap_or(until);
                    cancelled = entered;
                }
                Err(Refusal::Driven) => break,
                Err(Refusal::Full) => {
                    shared.release(&run_id).await;
                    shared.tasks.leave(&run_id);
                    break;
                }
            }
        }
    });
    true
}

/// Drives `parent_id`, a parent the store set going (its child is over), if
/// nobody drives it yet.
pub(crate) async fn drive_parent(shared: &Arc<Shared>, parent_id: &str) {
    if shared.tasks.drives(parent_id) {
        return;
    }
    if let Ok(Some(claimed)) = shared.claim(parent_id).await {
        spawn(shared, &claimed, None);
    }
}

/// How many runs [`pick_up_released`] looks at, at most.
const PICK_UP: usize = 16;

/// Drives the queued runs a run just let go (see `QueueStore`), when the
/// store let any go since this runner last looked: at once, instead of at
/// the next poll of [`Runner::recover`](crate::Runner::recover). Any run
/// nobody drives is taken, as `recover` would.
pub(crate) async fn pick_up_released(shared: &Arc<Shared>) {
    let releases = roomkit_graph_store::releases();
    if shared.releases_seen.swap(releases, Ordering::SeqCst) == releases {
        return;
    }
    let Ok(runs) = shared.store.claimable_runs(shared.now(), PICK_UP).await else { return };
    for run in runs {
        if shared.tasks.stop().is_set() || shared.tasks.is_full() {
            break;
        }
        if shared.tasks.drives(&run.run_id) {
            continue;
        }
        if let Ok(Some(claimed)) = shared.claim(&run.run_id).await {
            spawn(shared, &claimed, None);
        }
    }
}
