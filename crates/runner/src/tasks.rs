//! The run tasks a runner keeps track of: which runs a task of it drives
//! (so none is driven twice), the tasks themselves (for a shutdown to wait
//! for), who is told when a task stops driving a run, and whether the runner
//! is stopping.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, broadcast, watch};
use tokio_util::task::TaskTracker;

/// How many settled runs a slow [`Runner::wait`](crate::Runner::wait) may fall
/// behind before it looks at the store again.
const SETTLED_CAPACITY: usize = 4096;

/// Whether the runner is stopping: set once, by a shutdown or the loss of its
/// worker id, and never unset. Clones share it.
#[derive(Clone)]
pub(crate) struct Stop(Arc<watch::Sender<bool>>);

impl Stop {
    fn new() -> Self {
        Stop(Arc::new(watch::Sender::new(false)))
    }

    /// Whether the runner is stopping.
    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Stops the runner: its tasks stop at their next step, and the waits a
    /// stop cuts short end.
    pub(crate) fn set(&self) {
        self.0.send_replace(true);
    }

    /// Completes once the runner is stopping.
    pub(crate) async fn wait(&self) {
        let mut stop = self.0.subscribe();
        // The sender lives as long as this handle.
        let _ = stop.wait_for(|stopped| *stopped).await;
    }

    /// Waits for `wait` to finish, unless the runner is stopped first.
    /// Whether it finished (false: the runner stops).
    pub(crate) async fn unless_stopped(&self, wait: impl Future<Output = ()>) -> bool {
        tokio::select! {
            () = wait => true,
            () = self.wait() => false,
        }
    }
}

/// The tasks of a runner and the runs they drive.
pub(crate) struct RunTasks {
    /// Runs a task drives, each with what tells its task the run was
    /// cancelled here.
    active: Mutex<HashMap<String, Arc<Notify>>>,
    /// The tasks while they run (a finished one is not kept).
    tracker: TaskTracker,
    stop: Stop,
    /// The id of each run a task stopped driving (it parked, ended or was
    /// let go), for [`Runner::wait`](crate::Runner::wait).
    settled: broadcast::Sender<Arc<str>>,
    /// How many runs the tasks drive at most at once.
    limit: AtomicUsize,
}

/// Why a run is not driven by a new task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A task drives it already.
    Driven,
    /// The tasks drive as many runs as they may.
    Full,
}

impl RunTasks {
    pub(crate) fn new() -> Self {
        RunTasks {
            active: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            stop: Stop::new(),
            settled: broadcast::channel(SETTLED_CAPACITY).0,
            limit: AtomicUsize::new(usize::MAX),
        }
    }

    /// Lets the tasks drive at most `limit` runs at once.
    pub(crate) fn set_limit(&self, limit: NonZeroUsize) {
        self.limit.store(limit.get(), Ordering::Relaxed);
    }

    /// Whether the tasks drive as many runs as they may.
    pub(crate) fn is_full(&self) -> bool {
        lock(&self.active).len() >= self.limit.load(Ordering::Relaxed)
    }

    /// Whether the runner is stopping.
    pub(crate) fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Runs `task` as one of the runner's tasks.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// Stops the runner and waits for every task to end.
    pub(crate) async fn stop_and_wait(&self) {
        self.stop.set();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Marks `run_id` as driven by a task: what tells that task the run was
    /// cancelled, or why it may not be driven (a task drives it already, or
    /// the tasks drive as many runs as they may). Refused as
    /// [`Refusal::Full`], the run is marked all the same, until the caller
    /// has released its lease and [`RunTasks::leave`]s it: no task of this
    /// runner takes it meanwhile, so the release never drops a lease a new
    /// task holds.
    pub(crate) fn enter(&self, run_id: &str) -> Result<Arc<Notify>, Refusal> {
        let mut active = lock(&self.active);
        if active.contains_key(run_id) {
            return Err(Refusal::Driven);
        }
        if active.len() >= self.limit.load(Ordering::Relaxed) {
            active.insert(run_id.to_owned(), Arc::new(Notify::new()));
            return Err(Refusal::Full);
        }
        let cancelled = Arc::new(Notify::new());
        active.insert(run_id.to_owned(), Arc::clone(&cancelled));
        Ok(cancelled)
    }

    /// Marks `run_id` as driven by no task any more, and tells
    /// [`Runner::wait`](crate::Runner::wait).
    pub(crate) fn leave(&self, run_id: &str) {
        lock(&self.active).remove(run_id);
        // Nobody waiting is fine.
        let _ = self.settled.send(Arc::from(run_id));
    }

    /// Whether a task drives `run_id`.
    pub(crate) fn drives(&self, run_id: &str) -> bool {
        lock(&self.active).contains_key(run_id)
    }

    /// How many runs the tasks drive.
    pub(crate) fn driving(&self) -> usize {
        lock(&self.active).len()
    }

    /// Tells the task driving `run_id`, if any, that the run was cancelled.
    pub(crate) fn cancelled(&self, run_id: &str) {
        if let Some(cancelled) = lock(&self.active).get(run_id) {
            cancelled.notify_one();
        }
    }

    /// Hears of every run a task stops driving from now on.
    pub(crate) fn settled(&self) -> broadcast::Receiver<Arc<str>> {
        self.settled.subscribe()
    }
}

/// Locks a mutex held only for short, non-async sections; a panic elsewhere
/// does not make the data unusable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
