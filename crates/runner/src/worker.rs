//! Worker ids: a runner started as worker `ID` ([`Runner::register`](crate::Runner::register)) takes
//! its run leases as `ID`, so that the next process started as `ID` (after a
//! crash or a restart) takes back at once the runs this one held, instead of
//! waiting for their leases to expire.
//!
//! Two live processes are never the same worker: the id is registered in the
//! store ([`WorkerRegistration`]) and renewed every heartbeat; a registration
//! lasts three heartbeats, so one whose process died expires soon after. A
//! process that finds the id held watches the registration: if it is renewed,
//! its holder is alive and the new process is refused
//! ([`RegisterError::Taken`]); if it expires, the holder is dead and the new
//! process takes the id.

use std::sync::Weak;
use std::time::Duration;

use roomkit_graph::Clock;
use roomkit_graph_store::{Store, StoreError, WorkerRegistration};

use crate::lease::{Worker, new_owner_id};
use crate::shared::Shared;
use crate::tasks::Stop;
use crate::time::{self, millis_i64};

/// How often a registered runner renews its worker id unless
/// [`Runner::register`](crate::Runner::register) is given another heartbeat. Its registration lasts
/// three heartbeats.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);

/// The shortest heartbeat.
const MIN_HEARTBEAT: Duration = Duration::from_millis(50);

/// The longest worker id.
const MAX_ID_LEN: usize = 200;

/// Why a runner could not become a worker.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Another live process is this worker.
    #[error(
        "worker id {worker_id:?} is in use by another live process ({holder}): stop that process first, \
         or give this one another id"
    )]
    Taken {
        /// The worker id.
        worker_id: String,
        /// The process holding it (`host/pid/uuid`).
        holder: String,
    },
    /// The worker id is not one (empty, too long, with spaces or control characters).
    #[error("{0}")]
    InvalidId(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The worker `worker_id` of this process, renewing its registration every
/// `heartbeat` (at least 50 ms), or why it cannot be one.
pub(crate) fn worker(worker_id: &str, heartbeat: Duration) -> Result<Worker, RegisterError> {
    check_id(worker_id)?;
    Ok(Worker { id: worker_id.to_owned(), instance: new_owner_id(), heartbeat: heartbeat.max(MIN_HEARTBEAT) })
}

/// Refuses what cannot be a worker id.
fn check_id(worker_id: &str) -> Result<(), RegisterError> {
    let problem = if worker_id.is_empty() {
        "a worker id cannot be empty".to_owned()
    } else if worker_id.chars().count() > MAX_ID_LEN {
        format!("a worker id has at most {MAX_ID_LEN} characters")
    } else if worker_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        format!("worker id {worker_id:?}: no spaces or control characters")
    } else {
        return Ok(());
    };
    Err(RegisterError::InvalidId(problem))
}

/// Takes `worker`'s id: at once when free, else once its holder's
/// registration expires; refused when the holder renews it (it is alive) or
/// another process takes it meanwhile.
pub(crate) async fn take(store: &dyn Store, clock: &dyn Clock, worker: &Worker) -> Result<(), RegisterError> {
    let mut seen: Option<WorkerRegistration> = None;
    loop {
        let now = time::now(clock);
        let held = store.register_worker(&worker.registration(now), now).await?;
        if held.instance == worker.instance {
            return Ok(());
        }
        match &seen {
            Some(first) if *first != held => {
                return Err(RegisterError::Taken { worker_id: worker.id.clone(), holder: held.instance });
            }
            Some(_) => {}
            None => {
                tracing::info!(worker_id = %worker.id, holder = %held.instance,
                    "the worker id is held: waiting to see whether its process is alive");
            }
        }
        // Look again when it expires, or half a heartbeat from now (a live
        // holder renews it within a heartbeat).
        let expires_in = u64::try_from(held.until.saturating_sub(time::now(clock))).unwrap_or(0);
        let wait = Duration::from_millis(expires_in).min(worker.heartbeat / 2);
        seen = Some(held);
        clock.sleep(wait).await;
    }
}

/// Renews the runner's registration every `heartbeat` until it stops (or is
/// dropped: the loop holds it only while renewing). A renewal that finds
/// another process holding the id stops the runner; one the store fails is
/// tried again at the next heartbeat, unless the registration may have lapsed
/// since the last renewal that went through: then another process may have
/// the id, and the runner stops driving runs too.
pub(crate) async fn keep_registration(weak: Weak<Shared>, heartbeat: Duration, stop: Stop) {
    let Some(mut renewed) = weak.upgrade().map(|shared| shared.now()) else { return };
    loop {
        let Some(next) = weak.upgrade().map(|shared| shared.clock.sleep(heartbeat)) else { return };
        if !stop.unless_stopped(next).await {
            return;
        }
        let Some(shared) = weak.upgrade() else { return };
        let Some(worker) = shared.leases.worker() else { return };
        let now = shared.now();
        match shared.store.register_worker(&worker.registration(now), now).await {
            Ok(held) if held.instance == worker.instance => renewed = now,
            Ok(held) => {
                tracing::error!(worker_id = %worker.id, holder = %held.instance,
                    "another process took this worker id: driving no more runs");
                stop.set();
                return;
            }
            // Less than a heartbeat before it lapses: another process may take it at the next one.
            Err(error)
                if shared.now().saturating_sub(renewed)
                    >= worker.ttl().saturating_sub(millis_i64(heartbeat)) =>
            {
                tracing::error!(worker_id = %worker.id, %error,
                    "cannot renew the worker id before it lapses: driving no more runs");
                stop.set();
                return;
            }
            Err(error) => {
                tracing::warn!(worker_id = %worker.id, %error, "cannot renew the worker id; trying again");
            }
        }
    }
}

/// Frees the runner's worker id, if it has one. A release that fails is
/// left to expire.
pub(crate) async fn release(shared: &Shared) {
    if let Some(worker) = shared.leases.worker() {
        let _ = shared.store.release_worker(&worker.id, &worker.instance).await;
    }
}
