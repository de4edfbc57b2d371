//! The compiled graphs a runner keeps, so that a step of a run needs no graph
//! read or compilation: at most a fixed number, the least recently used one
//! going first when a new one comes in; and the settings they are compiled
//! with (limits, step limits, the runner's clock, where live events go).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use roomkit_graph::{Checks, Clock, Graph, Handlers, Limits, Signal, Validation, Workflow};
use roomkit_graph_store::{Store, StoredGraph};
use tokio::sync::broadcast;

use crate::error::RunnerError;
use crate::live::LiveEvent;
use crate::tasks::lock;

/// The step limit of a run whose graph sets none, unless
/// [`Runner::with_max_steps`](crate::Runner::with_max_steps) says otherwise.
pub const DEFAULT_MAX_STEPS: u64 = 10_000;

/// The most steps any run may take, unless
/// [`Runner::with_step_ceiling`](crate::Runner::with_step_ceiling) says otherwise.
pub const DEFAULT_STEP_CEILING: u64 = 1_000_000;

/// How many live events a slow listener may fall behind before it misses some.
const LIVE_CAPACITY: usize = 4096;

/// The runner's graphs: compiled on first use with its settings, and kept.
pub(crate) struct Graphs {
    handlers: Handlers,
    clock: Arc<dyn Clock>,
    /// Compiled graphs by (organization, graph id, version), the most
    /// recently used ones.
    cache: Mutex<GraphCache>,
    /// What runs may store, and what graphs may be.
    limits: Mutex<Arc<Limits>>,
    /// What a graph must pass, beyond the core's validation, to be saved.
    checks: Mutex<Checks>,
    /// The step limit of runs whose graph sets none.
    max_steps: AtomicU64,
    /// The most steps any run may take, whatever its graph says.
    step_ceiling: AtomicU64,
    /// Payloads that are not kept, only sent to whoever listens.
    live: broadcast::Sender<LiveEvent>,
}

impl Graphs {
    /// No graph yet, the default settings, nodes run by `handlers` with `clock`.
    pub(crate) fn new(handlers: Handlers, clock: Arc<dyn Clock>) -> Self {
        Graphs {
            handlers,
            clock,
            cache: Mutex::new(GraphCache::new(DEFAULT_GRAPH_CACHE)),
            limits: Mutex::new(Arc::new(Limits::default())),
            checks: Mutex::new(Checks::new()),
            max_steps: AtomicU64::new(DEFAULT_MAX_STEPS),
            step_ceiling: AtomicU64::new(DEFAULT_STEP_CEILING),
            live: broadcast::channel(LIVE_CAPACITY).0,
        }
    }

    /// The compiled graph of `graph_id` at `version`, read from `store` the
    /// first time.
    pub(crate) async fn workflow(
        &self,
        store: &dyn Store,
        org: &str,
        graph_id: &str,
        version: u64,
    ) -> Result<Workflow, RunnerError> {
        let key = (org.to_owned(), graph_id.to_owned(), version);
        if let Some(workflow) = lock(&self.cache).get(&key) {
            return Ok(workflow);
        }
        Ok(self.compile(store.graph(org, graph_id, Some(version)).await?))
    }

    /// Compiles a stored graph version and keeps it for later runs.
    fn compile(&self, stored: StoredGraph) -> Workflow {
        let key = (stored.org, stored.graph.id.clone(), stored.version);
        let limits = Limits::clone(&lock(&self.limits));
        let live = self.live.clone();
        // Sleeps and retry waits are kept durably (see `drive`), never waited in a task.
        let workflow = Workflow::new(stored.graph, self.handlers.clone())
            .parking()
            .with_clock(Arc::clone(&self.clock))
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
        lock(&self.cache).insert(key, workflow.clone());
        workflow
    }

    /// The limits runs are compiled with.
    pub(crate) fn limits(&self) -> Arc<Limits> {
        Arc::clone(&lock(&self.limits))
    }

    /// Sets the limits; graphs compiled before are let go.
    pub(crate) fn set_limits(&self, limits: Limits) {
        *lock(&self.limits) = Arc::new(limits.clamped());
        // Graphs compiled before keep the limits they were compiled with.
        lock(&self.cache).clear();
    }

    /// The checks graphs must pass to be saved.
    pub(crate) fn checks(&self) -> Checks {
        lock(&self.checks).clone()
    }

    /// Sets the checks graphs must pass to be saved.
    pub(crate) fn set_checks(&self, checks: Checks) {
        *lock(&self.checks) = checks;
    }

    /// Everything wrong with `graph`: the core's validation against the
    /// limits, then the checks.
    pub(crate) fn check(&self, graph: &Graph) -> Validation {
        let checks = lock(&self.checks).clone();
        checks.check(graph, &self.limits())
    }

    /// The step limit of runs whose graph sets none.
    pub(crate) fn max_steps(&self) -> u64 {
        self.max_steps.load(Ordering::SeqCst)
    }

    /// Sets the step limit of runs whose graph sets none (at least 1).
    pub(crate) fn set_max_steps(&self, max_steps: u64) {
        self.max_steps.store(max_steps.max(1), Ordering::SeqCst);
        lock(&self.cache).clear();
    }

    /// The most steps any run may take.
    pub(crate) fn step_ceiling(&self) -> u64 {
        self.step_ceiling.load(Ordering::SeqCst)
    }

    /// Caps the step limit of every run (at least 1).
    pub(crate) fn set_step_ceiling(&self, ceiling: u64) {
        self.step_ceiling.store(ceiling.max(1), Ordering::SeqCst);
        lock(&self.cache).clear();
    }

    /// Keeps at most `graphs` compiled graphs.
    pub(crate) fn set_capacity(&self, graphs: usize) {
        lock(&self.cache).set_capacity(graphs);
    }

    /// Hears the live events of the runs from now on.
    pub(crate) fn live(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }
}

/// A graph version: (organization, graph id, version). Versions never change
/// once stored, so a compiled one stays right as long as it is kept.
type GraphKey = (String, String, u64);

/// How many compiled graphs a runner keeps unless
/// [`Runner::with_graph_cache`](crate::Runner::with_graph_cache) says otherwise.
pub const DEFAULT_GRAPH_CACHE: usize = 256;

/// Compiled graphs by version, at most `capacity` of them.
struct GraphCache {
    entries: HashMap<GraphKey, Kept>,
    capacity: usize,
    /// Counts the uses, to tell which entry was used least recently.
    clock: u64,
}

struct Kept {
    workflow: Workflow,
    used: u64,
}

impl GraphCache {
    /// An empty cache of at most `capacity` graphs (0 keeps none).
    pub(crate) fn new(capacity: usize) -> Self {
        GraphCache { entries: HashMap::new(), capacity, clock: 0 }
    }

    /// Keeps at most `capacity` graphs from now on, letting the least recently
    /// used ones go.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.entries.len() > self.capacity {
            self.evict();
        }
    }

    /// Lets every compiled graph go (they were compiled with settings that changed).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The compiled graph of `key`, if kept; it becomes the most recently used.
    pub(crate) fn get(&mut self, key: &GraphKey) -> Option<Workflow> {
        self.clock += 1;
        let kept = self.entries.get_mut(key)?;
        kept.used = self.clock;
        Some(kept.workflow.clone())
    }

    /// Keeps `workflow` as the compiled graph of `key`; when full, the least
    /// recently used one goes first. (Finding it walks the entries: it only
    /// happens on a miss, which compiles a graph anyway.)
    pub(crate) fn insert(&mut self, key: GraphKey, workflow: Workflow) {
        if self.capacity == 0 {
            return;
        }
        self.clock += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.evict();
        }
        self.entries.insert(key, Kept { workflow, used: self.clock });
    }

    /// How many graphs are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn evict(&mut self) {
        let oldest = self.entries.iter().min_by_key(|(_, kept)| kept.used).map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomkit_graph::{Graph, Handlers, Trigger};

    fn key(id: &str) -> GraphKey {
        ("default".to_owned(), id.to_owned(), 1)
    }

    fn workflow(id: &str) -> Workflow {
        Workflow::new(Graph::new(id, id, Trigger::manual()), Handlers::builtin())
    }

    #[test]
    fn the_least_recently_used_graph_goes_first_and_the_size_stays_bounded() {
        let mut cache = GraphCache::new(2);
        cache.insert(key("a"), workflow("a"));
        cache.insert(key("b"), workflow("b"));
        assert!(cache.get(&key("a")).is_some(), "a is used again: b is now the oldest");
        cache.insert(key("c"), workflow("c"));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("b")).is_none(), "b went");
        assert_eq!(cache.get(&key("a")).map(|w| w.graph().id.clone()).as_deref(), Some("a"));
        assert!(cache.get(&key("c")).is_some());

        for n in 0..1_000 {
            cache.insert(key(&format!("g{n}")), workflow("g"));
        }
        assert_eq!(cache.len(), 2, "a thousand graphs later");
        cache.set_capacity(1);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key("g999")).is_some(), "the most recent one stays");

        let mut none = GraphCache::new(0);
        none.insert(key("a"), workflow("a"));
        assert_eq!(none.len(), 0);
    }
}
