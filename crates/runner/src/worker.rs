//! Worker ids: a runner started as worker `ID` ([`Runner::register`]) takes
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

use std::sync::{Arc, Weak};
use std::time::Duration;

use roomkit_graph::Handlers;
use roomkit_graph_store::{Millis, Store, StoreError, WorkerRegistration, now_millis};
use tokio::sync::watch;

use crate::{Inner, Runner, millis_i64, new_owner_id};

/// How often a registered runner renews its worker id unless
/// [`Runner::register`] is given another heartbeat. Its registration lasts
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

/// The worker id a runner was registered as, and how it keeps it.
pub(crate) struct Worker {
    /// The id, which is also the owner of the runner's leases.
    pub(crate) id: String,
    /// This process, as the holder of the registration.
    pub(crate) instance: String,
    pub(crate) heartbeat: Duration,
}

impl Worker {
    /// The registration to ask for now.
    fn registration(&self) -> WorkerRegistration {
        WorkerRegistration::new(&self.id, &self.instance, now_millis(), self.ttl())
    }

    /// How long a registration lasts: three heartbeats.
    fn ttl(&self) -> Millis {
        millis_i64(self.heartbeat).saturating_mul(3)
    }
}

impl Runner {
    /// A runner on `store` that is worker `worker_id`: its leases are taken as
    /// `worker_id` (its [`Runner::owner`]), and [`Runner::recover`] also takes
    /// back at once the runs a previous process of that id held. The id is
    /// registered in the store and renewed every `heartbeat` ([`DEFAULT_HEARTBEAT`]
    /// is a good one); [`Runner::shutdown`] frees it.
    ///
    /// When another process holds the id, this waits (at most three
    /// heartbeats) to see whether that process is alive: it takes the id once
    /// the registration expires, or is refused with [`RegisterError::Taken`]
    /// as soon as the registration is renewed.
    ///
    /// Should the runner lose its id anyway (its process stalled for three
    /// heartbeats and another took the id), it stops driving runs:
    /// [`Runner::stopped`] completes.
    ///
    /// ```
    /// use roomkit_graph::Handlers;
    /// use roomkit_graph_runner::{DEFAULT_HEARTBEAT, RegisterError, Runner};
    /// use roomkit_graph_sqlite::SqliteStore;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let store = SqliteStore::open(dir.path().join("runs.db"))?;
    /// let first = Runner::register(store.clone(), Handlers::builtin(), "w1", DEFAULT_HEARTBEAT).await?;
    /// assert_eq!(first.owner(), "w1");
    /// // While the first is alive, nobody else is w1.
    /// let second = Runner::register(store, Handlers::builtin(), "w1", DEFAULT_HEARTBEAT).await;
    /// assert!(matches!(second, Err(RegisterError::Taken { .. })));
    /// first.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn register(
        store: impl Store + 'static,
        handlers: Handlers,
        worker_id: &str,
        heartbeat: Duration,
    ) -> Result<Runner, RegisterError> {
        check_id(worker_id)?;
        let worker = Worker {
            id: worker_id.to_owned(),
            instance: new_owner_id(),
            heartbeat: heartbeat.max(MIN_HEARTBEAT),
        };
        take(&store, &worker).await?;
        let heartbeat = worker.heartbeat;
        let runner = Runner::build(Arc::new(store), handlers, Some(worker));
        let (weak, stop) = (Arc::downgrade(&runner.inner), runner.inner.stop.subscribe());
        runner.inner.tasks.spawn(keep_registration(weak, heartbeat, stop));
        Ok(runner)
    }

    /// Completes once this runner stops driving runs: [`Runner::shutdown`]
    /// was called, or it lost its worker id ([`Runner::register`]).
    pub async fn stopped(&self) {
        let mut stop = self.inner.stop.subscribe();
        // The sender lives as long as the runner.
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
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
async fn take(store: &dyn Store, worker: &Worker) -> Result<(), RegisterError> {
    let mut seen: Option<WorkerRegistration> = None;
    loop {
        let held = store.register_worker(&worker.registration()).await?;
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
        let expires_in = u64::try_from(held.until.saturating_sub(now_millis())).unwrap_or(0);
        let wait = Duration::from_millis(expires_in).min(worker.heartbeat / 2);
        seen = Some(held);
        tokio::time::sleep(wait).await;
    }
}

/// Renews the runner's registration every `heartbeat` until it stops (or is
/// dropped: the loop holds it only while renewing). A renewal that finds
/// another process holding the id stops the runner; one the store fails is
/// tried again at the next heartbeat, unless the registration may have lapsed
/// since the last renewal that went through: then another process may have
/// the id, and the runner stops driving runs too.
async fn keep_registration(weak: Weak<Inner>, heartbeat: Duration, mut stop: watch::Receiver<bool>) {
    let mut renewed = now_millis();
    loop {
        tokio::select! {
            () = tokio::time::sleep(heartbeat) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let Some(inner) = weak.upgrade() else { return };
        let Some(worker) = &inner.worker else { return };
        match inner.store.register_worker(&worker.registration()).await {
            Ok(held) if held.instance == worker.instance => renewed = now_millis(),
            Ok(held) => {
                tracing::error!(worker_id = %worker.id, holder = %held.instance,
                    "another process took this worker id: driving no more runs");
                inner.stop_driving();
                return;
            }
            // Less than a heartbeat before it lapses: another process may take it at the next one.
            Err(error)
                if now_millis().saturating_sub(renewed)
                    >= worker.ttl().saturating_sub(millis_i64(heartbeat)) =>
            {
                tracing::error!(worker_id = %worker.id, %error,
                    "cannot renew the worker id before it lapses: driving no more runs");
                inner.stop_driving();
                return;
            }
            Err(error) => {
                tracing::warn!(worker_id = %worker.id, %error, "cannot renew the worker id; trying again");
            }
        }
    }
}

impl Inner {
    /// Frees this runner's worker id, if it has one. A release that fails
    /// is left to expire.
    pub(crate) async fn release_worker(&self) {
        if let Some(worker) = &self.worker {
            let _ = self.store.release_worker(&worker.id, &worker.instance).await;
        }
    }
}
