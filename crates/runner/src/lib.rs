//! Durable runs: the runner executes stored graphs on tokio tasks and commits
//! every step to a [`Store`] (its outputs, the run's new position and its
//! transcript entries, in one transaction) before the next step begins.
//!
//! - [`Runner::start`] opens a run's room and drives it until it completes,
//!   fails or parks on a waiting node.
//! - [`Runner::answer`] resumes a parked run; it is refused, changing nothing,
//!   when the run is not waiting on that node or the answer does not fit it.
//! - [`Runner::recover`] picks up the runs nobody drives: those a stopped
//!   process left running.
//! - A store that fails while a run is driven (locked, out of reach) stops
//!   the step in progress; the run's task drives it again after a pause that
//!   doubles each time, and after a few failures in a row leaves it to
//!   [`Runner::recover`].
//! - A delay node parks its run on a durable timer: no task waits, and the
//!   runner's timer loop (in every process sharing the store) wakes the run
//!   when it is due, also after a restart.
//!
//! # Leases: one driver per run
//!
//! Several runners, in one process or many, may share a store. Each has an
//! [owner id](Runner::owner), and drives a running run only while it holds the
//! run's [`Lease`] (for [`Runner::lease`], 30 s unless set with
//! [`Runner::with_lease`]):
//!
//! - **Claim.** Starting a run, answering it, waking it on its timer and
//!   [`Runner::recover`] take the lease in the same transaction that sets the
//!   run running (or, for recovery, before driving it). Recovery only takes
//!   runs nobody holds a live lease on, so any number of workers may call it
//!   as often as they like: a step's handler is never run by two of them at once.
//! - **Renew.** While it drives a run, the runner extends the lease with the
//!   step commits, and in between (a long step, a retry's backoff) renews it
//!   each time a third of it has passed.
//! - **Release.** Parking (on a person or a timer), completing, failing or
//!   being cancelled releases the lease in the commit that does it;
//!   [`Runner::shutdown`] releases the leases of the runs it stops driving, so
//!   another process can take them at once.
//! - **Expiry.** A lease whose runner died (or stalled past it) expires, and the
//!   run can be claimed again: it is picked up one lease duration after its
//!   last renewal at the latest.
//! - **Losing it.** A runner whose commit or renewal is refused (the run was
//!   cancelled, or another process took the expired lease) stops driving the
//!   run at once, dropping the step in progress. A cancel always wins.
//!
//! # Delivery: at least once
//!
//! A step's effects are committed after its handler returns. If the process
//! dies between a handler's side effect (an e-mail sent, an API called) and
//! the commit, the step runs again after recovery, once the dead process's
//! lease has expired. The same happens when a runner stalls past its lease (a
//! step that blocks its thread, a paused process) and another takes the run:
//! the stalled step's commit is then refused. Handlers with outside side
//! effects should make them idempotent, keyed on the run id and node id
//! ([`roomkit_graph::Scope::run_id`], [`roomkit_graph::Scope::node`]).
//!
//! # Worker ids: restarts that take back their runs at once
//!
//! A runner made with [`Runner::new`] has an owner id of its own, new in every
//! process: after a crash its runs wait for their leases to expire. One made
//! with [`Runner::register`] is worker `ID`: it takes its leases as `ID`, so
//! the next process started as `ID` takes those runs back at once
//! ([`Runner::recover`]). The id is registered in the store and renewed every
//! heartbeat, so two live processes are never the same worker: the second is
//! refused with [`RegisterError::Taken`].
//!
//! # Memory
//!
//! A runner keeps nothing of a run once its task ends: a finished task is
//! freed at once, and the compiled graphs it keeps are bounded
//! ([`Runner::with_graph_cache`]).

mod cache;
mod commit;
mod drive;
mod error;
mod live;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use roomkit_graph::{EngineError, Graph, Handlers, Limits, Signal, StepStatus, Workflow};
use roomkit_graph_store::{
    DEFAULT_ORG, Entry, Lease, Millis, NewRun, RunFilter, RunKey, RunRecord, RunStatus, StepCommit, Store,
    StoreError, StoredGraph, now_millis,
};
use serde_json::Value;
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::task::TaskTracker;

pub use cache::DEFAULT_GRAPH_CACHE;
use commit::Cause;
pub use error::RunnerError;
pub use live::LiveEvent;
pub use worker::{DEFAULT_HEARTBEAT, RegisterError};

/// Runs stored graphs durably. Cheap to clone; clones share their tasks.
///
/// ```
/// use roomkit_graph::{Edge, Graph, Handlers, Node, Trigger};
/// use roomkit_graph_runner::Runner;
/// use roomkit_graph_sqlite::SqliteStore;
/// use roomkit_graph_store::RunStatus;
/// use serde_json::json;
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(dir.path().join("runs.db"))?;
/// let runner = Runner::new(store, Handlers::builtin());
///
/// let mut graph = Graph::new("hello", "Hello", Trigger::manual());
/// graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")])?;
/// graph.add_edge(Edge::new("start", "end"));
/// runner.save_graph(&graph).await?;
///
/// let run = runner.start("hello", json!({"name": "Ada"})).await?;
/// let done = runner.wait(&run.run_id).await?;
/// assert_eq!(done.status, RunStatus::Completed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    handlers: Handlers,
    /// Compiled graphs by (organization, graph id, version), the most
    /// recently used ones.
    workflows: Mutex<cache::GraphCache>,
    /// Runs a task of this runner is driving, so none is driven twice, each
    /// with what tells its task the run was cancelled here.
    active: Mutex<HashMap<String, Arc<Notify>>>,
    /// The runner's tasks while they run (a finished one is not kept), for
    /// [`Runner::shutdown`] to wait for.
    tasks: TaskTracker,
    stopping: AtomicBool,
    /// Set with `stopping`, for the waits a stop cuts short.
    stop: watch::Sender<bool>,
    /// Whether the timer loop was started (on the first async call).
    timers: AtomicBool,
    /// How often the timer loop looks for due timers.
    tick: Duration,
    /// Payloads that are not kept, only sent to whoever listens ([`Runner::live`]).
    live: broadcast::Sender<LiveEvent>,
    /// The id of each run a task of this runner stopped driving (it parked,
    /// ended or was let go), for [`Runner::wait`].
    settled: broadcast::Sender<Arc<str>>,
    /// Who this runner is in the leases it takes: its worker id, or an id
    /// of its own.
    owner: String,
    /// The worker id it registered, if it was made with [`Runner::register`].
    worker: Option<worker::Worker>,
    /// How long a lease lasts, in milliseconds.
    lease_ms: AtomicU64,
    /// What runs may store, and what graphs may be.
    limits: Mutex<Arc<Limits>>,
    /// The step limit of runs whose graph sets none.
    max_steps: AtomicU64,
    /// The most steps any run may take, whatever its graph says.
    step_ceiling: AtomicU64,
}

/// The step limit of a run whose graph sets none, unless
/// [`Runner::with_max_steps`] says otherwise.
pub const DEFAULT_MAX_STEPS: u64 = 10_000;

/// The most steps any run may take, unless [`Runner::with_step_ceiling`]
/// says otherwise.
pub const DEFAULT_STEP_CEILING: u64 = 1_000_000;

/// How long a lease lasts unless [`Runner::with_lease`] says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The shortest lease a runner takes.
const MIN_LEASE: Duration = Duration::from_millis(50);

/// How many live events a slow listener may fall behind before it misses some.
const LIVE_CAPACITY: usize = 4096;

/// Locks a mutex held only for short, non-async sections; a panic elsewhere
/// does not make the data unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Runner {
    /// A runner on `store`, executing nodes with `handlers`, with an owner id
    /// of its own (see [`Runner::register`] for a worker id).
    pub fn new(store: impl Store + 'static, handlers: Handlers) -> Self {
        Runner::build(Arc::new(store), handlers, None)
    }

    /// A runner whose leases are taken as `worker`'s id, or as a new owner id.
    fn build(store: Arc<dyn Store>, handlers: Handlers, worker: Option<worker::Worker>) -> Self {
        Runner {
            inner: Arc::new(Inner {
                store,
                handlers,
                workflows: Mutex::new(cache::GraphCache::new(DEFAULT_GRAPH_CACHE)),
                active: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                stopping: AtomicBool::new(false),
                stop: watch::Sender::new(false),
                timers: AtomicBool::new(false),
                tick: Duration::from_millis(100),
                live: broadcast::channel(LIVE_CAPACITY).0,
                settled: broadcast::channel(LIVE_CAPACITY).0,
                owner: worker.as_ref().map_or_else(new_owner_id, |worker| worker.id.clone()),
                worker,
                lease_ms: AtomicU64::new(millis(DEFAULT_LEASE)),
                limits: Mutex::new(Arc::new(Limits::default())),
                max_steps: AtomicU64::new(DEFAULT_MAX_STEPS),
                step_ceiling: AtomicU64::new(DEFAULT_STEP_CEILING),
            }),
        }
    }

    /// Sets how long the leases this runner takes last ([`DEFAULT_LEASE`]
    /// unless set; at least 50 ms). A run whose runner died is picked up by
    /// another this long after its last renewal at the latest; a runner renews
    /// its leases each time a third of one has passed. Applies to the leases
    /// taken from now on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use roomkit_graph::Handlers;
    /// use roomkit_graph_runner::Runner;
    /// use roomkit_graph_sqlite::SqliteStore;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = SqliteStore::open(dir.path().join("runs.db"))?;
    /// let runner = Runner::new(store, Handlers::builtin()).with_lease(Duration::from_secs(5));
    /// assert_eq!(runner.lease(), Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_lease(self, lease: Duration) -> Self {
        self.inner.lease_ms.store(millis(lease.max(MIN_LEASE)), Ordering::SeqCst);
        self
    }

    /// Sets the limits of the runs this runner drives and the graphs it saves
    /// ([`Limits::default`] unless set): a step past them fails its run with
    /// the error kind `limit`, storing nothing of it; a graph past them is
    /// refused. Applies to the steps driven from now on.
    ///
    /// ```
    /// use roomkit_graph::{Handlers, Limits};
    /// use roomkit_graph_runner::Runner;
    /// use roomkit_graph_sqlite::SqliteStore;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = SqliteStore::open(dir.path().join("runs.db"))?;
    /// let limits = Limits { output_bytes: 64 << 10, ..Limits::default() };
    /// let runner = Runner::new(store, Handlers::builtin()).with_limits(limits.clone());
    /// assert_eq!(*runner.limits(), limits);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_limits(self, limits: Limits) -> Self {
        *lock(&self.inner.limits) = Arc::new(limits.clamped());
        // Graphs compiled before keep the limits they were compiled with.
        lock(&self.inner.workflows).clear();
        self
    }

    /// Sets the step limit of runs whose graph sets no `max_steps`
    /// ([`DEFAULT_MAX_STEPS`] unless set; at least 1): a run that has executed
    /// that many steps fails with the error kind `step_limit` before its next
    /// one. Every step of a run counts, across answers, timers and restarts.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = roomkit_graph_sqlite::SqliteStore::open(dir.path().join("runs.db"))?;
    /// let runner = roomkit_graph_runner::Runner::new(store, roomkit_graph::Handlers::builtin())
    ///     .with_max_steps(500)
    ///     .with_step_ceiling(2_000);
    /// assert_eq!((runner.max_steps(), runner.step_ceiling()), (500, 2_000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_max_steps(self, max_steps: u64) -> Self {
        self.inner.max_steps.store(max_steps.max(1), Ordering::SeqCst);
        lock(&self.inner.workflows).clear();
        self
    }

    /// Caps the step limit of every run, a graph's own `max_steps` included
    /// ([`DEFAULT_STEP_CEILING`] unless set; at least 1).
    pub fn with_step_ceiling(self, ceiling: u64) -> Self {
        self.inner.step_ceiling.store(ceiling.max(1), Ordering::SeqCst);
        lock(&self.inner.workflows).clear();
        self
    }

    /// The step limit of runs whose graph sets none.
    pub fn max_steps(&self) -> u64 {
        self.inner.max_steps.load(Ordering::SeqCst)
    }

    /// The most steps any run may take.
    pub fn step_ceiling(&self) -> u64 {
        self.inner.step_ceiling.load(Ordering::SeqCst)
    }

    /// The limits of the runs this runner drives.
    pub fn limits(&self) -> Arc<Limits> {
        Arc::clone(&lock(&self.inner.limits))
    }

    /// Sets how many compiled graphs (graph versions) this runner keeps
    /// ([`DEFAULT_GRAPH_CACHE`] unless set): the least recently used one goes
    /// when another comes in, and is read and compiled again when a run needs
    /// it. 0 keeps none.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = roomkit_graph_sqlite::SqliteStore::open(dir.path().join("runs.db"))?;
    /// let runner = roomkit_graph_runner::Runner::new(store, roomkit_graph::Handlers::builtin())
    ///     .with_graph_cache(32);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_graph_cache(self, graphs: usize) -> Self {
        lock(&self.inner.workflows).set_capacity(graphs);
        self
    }

    /// How long the leases this runner takes last.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.inner.lease_ms.load(Ordering::SeqCst))
    }

    /// This runner's id in the leases it takes (the [`RunRecord::owner`] of
    /// the runs it drives): its worker id ([`Runner::register`]), or else the
    /// host name, the process id and a UUIDv7, as `host/pid/uuid`, unique to
    /// this runner.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = roomkit_graph_sqlite::SqliteStore::open(dir.path().join("runs.db"))?;
    /// let runner = roomkit_graph_runner::Runner::new(store, roomkit_graph::Handlers::builtin());
    /// let pid = std::process::id().to_string();
    /// assert_eq!(runner.owner().split('/').nth(1), Some(pid.as_str()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// How many runs this runner's tasks are driving right now (runs parked on
    /// a person or a timer hold no task).
    pub fn active_runs(&self) -> usize {
        lock(&self.inner.active).len()
    }

    /// Starts the timer loop once, from inside the runtime.
    fn ensure_timers(&self) {
        if self.inner.stopping.load(Ordering::SeqCst) || self.inner.timers.swap(true, Ordering::SeqCst) {
            return;
        }
        // A weak handle: the loop must not keep a dropped runner (and its store) alive.
        let weak = Arc::downgrade(&self.inner);
        let tick = self.inner.tick;
        self.inner.tasks.spawn(async move {
            while let Some(inner) = weak.upgrade() {
                if inner.stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Err(error) = (Runner { inner }).fire_due_timers().await {
                    tracing::warn!(%error, "looking for due timers failed; trying again at the next tick");
                }
                tokio::time::sleep(tick).await;
            }
        });
    }

    /// Wakes every run whose timer is due: the node it rested on completes,
    /// the run follows its edges and is driven on.
    async fn fire_due_timers(&self) -> Result<(), RunnerError> {
        let due =
            RunFilter { status: Some(RunStatus::Waiting), due_by: Some(now_millis()), ..Default::default() };
        for run in self.inner.store.list_runs(&due).await? {
            if let Err(error) = self.wake(&run.run_id).await {
                tracing::warn!(run_id = %run.run_id, %error, "waking the run on its timer failed");
            }
        }
        Ok(())
    }

    /// Wakes `run_id`, due on its timer, in one commit that takes its lease,
    /// and drives it on. Another process waking it first is fine.
    async fn wake(&self, run_id: &str) -> Result<(), RunnerError> {
        let (record, state) = self.inner.store.load_run(run_id).await?;
        if record.status != RunStatus::Waiting || record.wake_at.is_none() {
            return Ok(());
        }
        let workflow = self.inner.workflow(&record.org, &record.graph_id, record.graph_version).await?;
        let mut engine = drive::restored(&workflow, &record, state)?;
        let outcome = engine.wake()?;
        let commit = commit::of_outcome(&outcome, &engine, Cause::Wake, run_id, record.version, now_millis());
        let wake = StepCommit { lease: Some(self.inner.new_lease()), ..commit };
        match self.inner.store.commit_step(wake).await {
            Ok((woken, _)) => {
                self.spawn_from(
                    &woken,
                    Some(drive::Started { record: woken.clone(), engine, retry_at: None }),
                );
                Ok(())
            }
            // Another process woke it first.
            Err(StoreError::Conflict { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The events of this runner's runs that are sent live and never kept:
    /// the tokens of agents' replies as they are written (see [`LiveEvent`]).
    /// The transcript
    /// ([`TranscriptStore::follow`](roomkit_graph_store::TranscriptStore::follow))
    /// has everything that is kept.
    /// A listener that falls far behind misses events
    /// ([`broadcast::error::RecvError::Lagged`]).
    pub fn live(&self) -> broadcast::Receiver<LiveEvent> {
        self.inner.live.subscribe()
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// Validates `graph` and stores it as the next version of its id in the
    /// [`DEFAULT_ORG`]. Runs in flight keep the version they started with.
    pub async fn save_graph(&self, graph: &Graph) -> Result<StoredGraph, RunnerError> {
        self.save_graph_in(DEFAULT_ORG, graph).await
    }

    /// Validates `graph` and stores it as the next version of its id in `org`.
    pub async fn save_graph_in(&self, org: &str, graph: &Graph) -> Result<StoredGraph, RunnerError> {
        let errors = graph.validate_with(&self.limits());
        if !errors.is_empty() {
            return Err(roomkit_graph::GraphError::Invalid(errors).into());
        }
        Ok(self.inner.store.save_graph(org, graph).await?)
    }

    /// Starts a run of the latest version of `graph_id` (of the
    /// [`DEFAULT_ORG`]) with `trigger` as its trigger data, and drives it in
    /// the background. Returns its record as first committed.
    pub async fn start(&self, graph_id: &str, trigger: Value) -> Result<RunRecord, RunnerError> {
        self.start_in(DEFAULT_ORG, graph_id, trigger, None).await
    }

    /// Starts a run of the latest version of `graph_id` of `org`, as
    /// [`Runner::start`]. With a `key`, a second start with the same key is
    /// refused with [`StoreError::Duplicate`], naming the run that has it
    /// (while it holds it: see [`RunKey`]): schedules use it to fire once per
    /// due time whichever process sees it first, the HTTP API for idempotent
    /// requests and webhooks against replays.
    pub async fn start_in(
        &self,
        org: &str,
        graph_id: &str,
        trigger: Value,
        key: Option<RunKey>,
    ) -> Result<RunRecord, RunnerError> {
        self.ensure_timers();
        // The latest version, compiled once.
        let graph_version = self.inner.store.latest_graph_version(org, graph_id).await?;
        let workflow = self.inner.workflow(org, graph_id, graph_version).await?;
        let mut engine = workflow.engine();
        engine.start(trigger.clone())?;
        let state = engine.to_state();
        // The start node runs now; its step is committed with the run's creation.
        let now = now_millis();
        let first = match engine.step_outcome().await {
            Some(outcome) => Some(commit::of_outcome(&outcome, &engine, Cause::Step, &state.run_id, 1, now)),
            None => None,
        };
        // A retry its first step scheduled.
        let retry_at = first.iter().flat_map(|commit| &commit.entries).find_map(|entry| match entry {
            Entry::RetryScheduled { retry_at, .. } => Some(*retry_at),
            _ => None,
        });
        let lease = self.inner.new_lease();
        let record = self
            .inner
            .store
            .create_run(NewRun {
                org: org.to_owned(),
                graph_id: graph_id.to_owned(),
                graph_version,
                trigger,
                state,
                key,
                lease: Some(lease.clone()),
                first_step: first.map(|commit| StepCommit { lease: Some(lease), ..commit }),
            })
            .await?;
        let start = drive::Started { record: record.clone(), engine, retry_at };
        self.spawn_from(&record, Some(start));
        Ok(record)
    }

    /// Answers the node `node_id` a run waits on with `data` (`by`: who
    /// answered), and drives the run on. Refused, changing nothing, when the run
    /// is not waiting on that node, when the node declares `actions` and
    /// `data.action` is not one of them, or when no edge of the node accepts the answer.
    pub async fn answer(
        &self,
        run_id: &str,
        node_id: &str,
        data: Value,
        by: Option<&str>,
    ) -> Result<RunRecord, RunnerError> {
        self.ensure_timers();
        // Another answer (to another child of a parallel node, say) may commit
        // first: then this one is worked out again from where the run stands.
        for _ in 0..ANSWER_TRIES {
            match self.try_answer(run_id, node_id, &data, by).await? {
                Some(record) => return Ok(record),
                None => continue,
            }
        }
        Err(RunnerError::Store(StoreError::Conflict {
            run_id: run_id.to_owned(),
            detail: format!("the run kept moving while the answer to {node_id:?} was committed"),
        }))
    }

    /// One try at [`Runner::answer`]: `None` when another commit came first.
    async fn try_answer(
        &self,
        run_id: &str,
        node_id: &str,
        data: &Value,
        by: Option<&str>,
    ) -> Result<Option<RunRecord>, RunnerError> {
        let (record, state) = self.inner.store.load_run(run_id).await?;
        let waits_on_it = record.current_node_id.as_deref() == Some(node_id) || !record.pending.is_empty();
        if record.status != RunStatus::Waiting || !waits_on_it {
            return Err(RunnerError::NotWaiting {
                run_id: run_id.to_owned(),
                node_id: node_id.to_owned(),
                status: record.status,
                current: record.current_node_id,
            });
        }
        let refuse = |reason: String| RunnerError::InvalidAnswer {
            run_id: run_id.to_owned(),
            node_id: node_id.to_owned(),
            reason,
        };
        if record.wake_at.is_some() {
            return Err(refuse("the node waits on a timer, not for an answer".to_owned()));
        }
        let workflow = self.inner.workflow(&record.org, &record.graph_id, record.graph_version).await?;
        let mut engine = drive::restored(&workflow, &record, state)?;
        let outcome = engine.answer(node_id, data.clone()).map_err(|error| match error {
            EngineError::AnswerRefused { reason, .. } | EngineError::InvalidArgument(reason) => {
                refuse(reason)
            }
            other => RunnerError::Engine(other),
        })?;
        if let StepStatus::Failed { error, .. } = outcome.status {
            // No edge takes the answer: nothing is kept.
            return Err(refuse(error.to_string()));
        }
        let cause = Cause::Answer { by, data };
        let commit = commit::of_outcome(&outcome, &engine, cause, run_id, record.version, now_millis());
        // Set going again, the run is this runner's to drive.
        let commit = StepCommit { lease: Some(self.inner.new_lease()), ..commit };
        let record = match self.inner.store.commit_step(commit).await {
            Ok((record, _)) => record,
            Err(StoreError::Conflict { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let start = drive::Started { record: record.clone(), engine, retry_at: None };
        self.spawn_from(&record, Some(start));
        Ok(Some(record))
    }

    /// Cancels a run that is not over yet, whoever drives it, and releases its
    /// lease. A step this runner is driving is dropped at once (at its next
    /// await point); one another process drives is dropped once that process
    /// sees the run is no longer running (at its next commit or lease renewal),
    /// and its commit is refused: the cancellation wins.
    pub async fn cancel(&self, run_id: &str, reason: Option<&str>) -> Result<RunRecord, RunnerError> {
        loop {
            let record = self.inner.store.run(run_id).await?;
            if record.status.is_final() {
                return Err(RunnerError::Finished { run_id: run_id.to_owned(), status: record.status });
            }
            let entries = vec![Entry::RunCancelled { reason: reason.map(str::to_owned) }];
            let commit = commit::status_change(&record, RunStatus::Cancelled, entries);
            match self.inner.store.commit_step(commit).await {
                Ok((record, _)) => {
                    if let Some(cancelled) = lock(&self.inner.active).get(run_id) {
                        cancelled.notify_one();
                    }
                    return Ok(record);
                }
                // A step committed in between: look again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Waits until the run waits for a person or is over, and returns its
    /// record. A run parked on a timer is still under way. (A run nobody drives
    /// stays running: see [`Runner::recover`].)
    pub async fn wait(&self, run_id: &str) -> Result<RunRecord, RunnerError> {
        loop {
            // Subscribed before looking, so that a task settling the run after
            // the look is heard.
            let mut settled = self.inner.settled.subscribe();
            if lock(&self.inner.active).contains_key(run_id) {
                // A task of this runner drives it: wait for the task to settle it.
                loop {
                    match settled.recv().await {
                        Ok(settled) if &*settled == run_id => break,
                        Ok(_) => continue,
                        Err(_) => break,
                    }
                }
            }
            let record = self.inner.store.run(run_id).await?;
            let asks_a_person = record.status == RunStatus::Waiting && record.wake_at.is_none();
            if asks_a_person || record.status.is_final() {
                return Ok(record);
            }
            if lock(&self.inner.active).contains_key(run_id) {
                // Set going again here meanwhile (answered, or its timer fired).
                continue;
            }
            // Follow the run to its next wait or its end, then look again.
            let mut events = self.inner.store.follow(run_id, record.last_seq);
            while let Some(event) = events.next().await {
                let entry = event?.entry;
                if entry.is_final() || matches!(entry, Entry::NodeWaiting { .. }) {
                    break;
                }
            }
        }
    }

    /// Claims and drives every run nobody drives: running, with no live lease
    /// (after a restart, say, once the leases of the stopped process expired),
    /// and, for a worker ([`Runner::register`]), the runs its id holds that no
    /// task of it drives (a previous process of the id died holding them):
    /// those at once, live lease or not. Runs another runner drives are left
    /// to it, so every worker sharing a store may call this as often as it
    /// likes. Returns how many were picked up.
    pub async fn recover(&self) -> Result<usize, RunnerError> {
        self.ensure_timers();
        let mut claimable = self.inner.store.claimable_runs(now_millis(), usize::MAX).await?;
        if self.inner.worker.is_some() {
            claimable.extend(self.inner.store.runs_held_by(&self.inner.owner).await?);
        }
        let mut picked_up = 0;
        for run in claimable {
            if self.inner.stopping.load(Ordering::SeqCst) {
                break;
            }
            if self.adopt(&run.run_id).await? {
                picked_up += 1;
            }
        }
        Ok(picked_up)
    }

    /// Adopts `run_id` (drives it) if nobody does: it is running, no task of this runner
    /// drives it, and no other process holds a live lease on it (a process
    /// that gave up on it after its store failed, say). Returns whether this
    /// runner took it.
    pub async fn adopt(&self, run_id: &str) -> Result<bool, RunnerError> {
        self.ensure_timers();
        // A run this runner drives already (whose lease lapsed in between) keeps its task.
        if self.inner.stopping.load(Ordering::SeqCst) || lock(&self.inner.active).contains_key(run_id) {
            return Ok(false);
        }
        // Another process may claim it first: then it is theirs.
        Ok(match self.inner.store.claim_run(run_id, &self.inner.new_lease()).await? {
            Some(claimed) => self.spawn(&claimed),
            None => false,
        })
    }

    /// Stops driving runs: each task finishes and commits the step it is on,
    /// then stops and releases the run's lease. Runs stay running in the
    /// store, for another process's (or a later) [`Runner::recover`] to take
    /// at once. Last, a worker's id is freed ([`Runner::register`]).
    pub async fn shutdown(&self) {
        self.inner.stop_driving();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        // Last, once its runs are let go: the next process of the id may start.
        self.inner.release_worker().await;
    }

    /// Drives `run` on a task of its own, if it is running with a lease this
    /// runner holds and no task of this runner drives it yet. Returns whether
    /// a task was started. A run claimed but not driven (the runner is
    /// stopping) is released.
    fn spawn(&self, run: &RunRecord) -> bool {
        self.spawn_from(run, None)
    }

    /// [`Runner::spawn`], for a run just created when `start` is given.
    fn spawn_from(&self, run: &RunRecord, start: Option<drive::Started>) -> bool {
        let Some(until) = run
            .lease_until
            .filter(|_| run.status == RunStatus::Running && run.owner.as_deref() == Some(&*self.inner.owner))
        else {
            return false;
        };
        if self.inner.stopping.load(Ordering::SeqCst) {
            let (inner, run_id) = (Arc::clone(&self.inner), run.run_id.clone());
            self.inner.tasks.spawn(async move { inner.release(&run_id).await });
            return false;
        }
        let Some(mut cancelled) = self.inner.enter(&run.run_id) else {
            return false;
        };
        let inner = Arc::clone(&self.inner);
        let run_id = run.run_id.clone();
        self.inner.tasks.spawn(async move {
            let mut until = until;
            let mut start = start;
            let mut failures = 0;
            loop {
                let mut ended = drive::drive(&inner, &run_id, until, start.take(), &cancelled).await;
                if ended == drive::Ended::Failed {
                    // Driven again after a pause, while the store may come back;
                    // the step in progress runs again (at least once).
                    failures += 1;
                    let pause = tokio::time::sleep(FAILED_PAUSE * (1 << failures.min(5)));
                    if failures < DRIVE_ATTEMPTS
                        && inner.unless_stopped(pause).await
                        && let Ok(Some(run)) = inner.store.claim_run(&run_id, &inner.new_lease()).await
                    {
                        until = run.lease_until.unwrap_or(until);
                        continue;
                    }
                    ended = drive::Ended::LetGo;
                }
                failures = 0;
                if ended == drive::Ended::LetGo {
                    // Released before the run leaves `active`, so that it never
                    // releases a lease a new task of this runner has taken.
                    inner.release(&run_id).await;
                    lock(&inner.active).remove(&run_id);
                    inner.settled(&run_id);
                    break;
                }
                lock(&inner.active).remove(&run_id);
                inner.settled(&run_id);
                if ended == drive::Ended::Over || inner.stopping.load(Ordering::SeqCst) {
                    break;
                }
                // An answer may have set the run going again while this task was
                // finishing (and so did not start another): look once more.
                let claimed = inner.store.claim_run(&run_id, &inner.new_lease()).await.ok().flatten();
                match claimed.and_then(|run| Some((run, inner.enter(&run_id)?))) {
                    Some((run, entered)) => {
                        until = run.lease_until.unwrap_or(until);
                        cancelled = entered;
                    }
                    None => break,
                }
            }
        });
        true
    }
}

/// How many times an answer is worked out again when other commits to its
/// run come first.
const ANSWER_TRIES: usize = 5;

/// How many times in a row a task drives a run whose store failed before it
/// lets the run go (for [`Runner::recover`] to pick up later).
const DRIVE_ATTEMPTS: u32 = 6;

/// The pause before driving a run again after its store failed, doubled for
/// each failure in a row (1 s, 2 s, 4 s... with [`DRIVE_ATTEMPTS`]).
const FAILED_PAUSE: Duration = Duration::from_millis(500);

/// A new owner id: `host/pid/uuid`.
fn new_owner_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}/{}/{}", std::process::id(), uuid::Uuid::now_v7())
}

/// A duration in whole milliseconds, as a time offset, saturating.
fn millis_i64(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A duration in whole milliseconds, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Inner {
    /// Drives no more runs: the tasks stop at their next step, and the waits
    /// a stop cuts short end.
    fn stop_driving(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.send_replace(true);
    }

    /// Waits for `wait` to finish, unless the runner is stopped first.
    /// Whether it finished (false: the runner stops).
    async fn unless_stopped(&self, wait: impl Future<Output = ()>) -> bool {
        let mut stop = self.stop.subscribe();
        tokio::select! {
            () = wait => true,
            _ = stop.wait_for(|stopped| *stopped) => false,
        }
    }

    /// Marks `run_id` as driven by a task of this runner: what tells that task
    /// the run was cancelled, or `None` when a task drives it already.
    fn enter(&self, run_id: &str) -> Option<Arc<Notify>> {
        let mut active = lock(&self.active);
        if active.contains_key(run_id) {
            return None;
        }
        let cancelled = Arc::new(Notify::new());
        active.insert(run_id.to_owned(), Arc::clone(&cancelled));
        Some(cancelled)
    }

    /// Tells [`Runner::wait`] that a task stopped driving `run_id`.
    fn settled(&self, run_id: &str) {
        // Nobody waiting is fine.
        let _ = self.settled.send(Arc::from(run_id));
    }

    /// A lease for this runner, from now.
    fn new_lease(&self) -> Lease {
        Lease::new(self.owner.clone(), now_millis(), self.lease_millis())
    }

    /// How long a lease lasts, in milliseconds.
    fn lease_millis(&self) -> Millis {
        Millis::try_from(self.lease_ms.load(Ordering::SeqCst)).unwrap_or(Millis::MAX)
    }

    /// Releases this runner's lease on a run, if it holds one. A release that
    /// fails is left to expire.
    async fn release(&self, run_id: &str) {
        let _ = self.store.release_run(run_id, &self.owner).await;
    }

    /// The compiled graph of `graph_id` at `version`, read from the store the
    /// first time.
    async fn workflow(&self, org: &str, graph_id: &str, version: u64) -> Result<Workflow, RunnerError> {
        if let Some(workflow) = self.cached(org, graph_id, version) {
            return Ok(workflow);
        }
        Ok(self.compile(self.store.graph(org, graph_id, Some(version)).await?))
    }

    fn cached(&self, org: &str, graph_id: &str, version: u64) -> Option<Workflow> {
        lock(&self.workflows).get(&(org.to_owned(), graph_id.to_owned(), version))
    }

    /// Compiles a stored graph version and keeps it for later runs.
    fn compile(&self, stored: StoredGraph) -> Workflow {
        let key = (stored.org, stored.graph.id.clone(), stored.version);
        let limits = Limits::clone(&lock(&self.limits));
        let live = self.live.clone();
        // Sleeps and retry waits are kept durably (see `drive`), never waited in a task.
        let workflow = Workflow::new(stored.graph, self.handlers.clone())
            .parking()
            .with_limits(limits)
            .with_max_steps(self.max_steps.load(Ordering::SeqCst))
            .with_step_ceiling(self.step_ceiling.load(Ordering::SeqCst))
            .with_live(move |run_id, node_id, signal| {
                if let Signal::Token { .. } = signal {
                    // Nobody listening is fine: live events are not kept.
                    let payload = signal.to_value();
                    let _ = live.send(LiveEvent {
                        run_id: run_id.to_owned(),
                        node_id: node_id.to_owned(),
                        payload,
                    });
                }
            });
        lock(&self.workflows).insert(key, workflow.clone());
        workflow
    }
}
