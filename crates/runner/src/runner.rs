//! The public face of a runner: [`Runner`], made with [`Runner::new`],
//! [`Runner::register`] or [`Runner::builder`], and what it is asked to do
//! (save graphs, start, answer, cancel, wait for and recover runs). The work
//! is done by its parts: the supervisor (run tasks), the timer loop, the
//! graph cache and the commit builders.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use roomkit_graph::{
    Checks, Clock, EngineState, Graph, GraphError, Handlers, Limits, SubgraphRef, SystemClock, Validation,
    WorkflowEngine,
};
use roomkit_graph_store::{
    DEFAULT_ORG, Entry, Millis, NewRun, RunKey, RunRecord, RunStatus, StepCommit, Store, StoreError,
    StoredGraph,
};
use serde_json::Value;
use tokio::sync::broadcast;
use tracing::Instrument as _;

use crate::cache::Graphs;
use crate::children;
use crate::commit::{self, Cause};
use crate::drive::{self, Started};
use crate::error::RunnerError;
use crate::fork;
use crate::lease::{Leases, Worker};
use crate::live::LiveEvent;
use crate::metrics;
use crate::shared::Shared;
use crate::tasks::RunTasks;
use crate::time::Tick;
use crate::worker::{self, RegisterError};
use crate::{supervisor, timers, trace};

/// How many times an answer is worked out again when other commits to its
/// run come first.
const ANSWER_TRIES: usize = 5;

/// How often the timer loop looks for due timers.
const TICK: Duration = Duration::from_millis(100);

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
    shared: Arc<Shared>,
}

impl Runner {
    /// A runner on `store`, executing nodes with `handlers`, with an owner id
    /// of its own (see [`Runner::register`] for a worker id).
    pub fn new(store: impl Store + 'static, handlers: Handlers) -> Self {
        Runner::builder(store, handlers).build()
    }

    /// A runner on `store`, executing nodes with `handlers`, to set up before
    /// it is made: its clock ([`SystemClock`] unless set), then
    /// [`RunnerBuilder::build`] or [`RunnerBuilder::register`].
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use roomkit_graph::{Handlers, ManualClock};
    /// use roomkit_graph_runner::Runner;
    /// use roomkit_graph_sqlite::SqliteStore;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = SqliteStore::open(dir.path().join("runs.db"))?;
    /// // Leases, timers and retries follow this clock, which moves only when told.
    /// let clock = ManualClock::new(SystemTime::now());
    /// let runner = Runner::builder(store, Handlers::builtin()).clock(clock.clone()).build();
    /// clock.advance(Duration::from_secs(60));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(store: impl Store + 'static, handlers: Handlers) -> RunnerBuilder {
        RunnerBuilder { store: Arc::new(store), handlers, clock: Arc::new(SystemClock) }
    }

    /// A runner on `store` that is worker `worker_id`: its leases are taken as
    /// `worker_id` (its [`Runner::owner`]), and [`Runner::recover`] also takes
    /// back at once the runs a previous process of that id held. The id is
    /// registered in the store and renewed every `heartbeat` ([`DEFAULT_HEARTBEAT`](crate::DEFAULT_HEARTBEAT)
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
        Runner::builder(store, handlers).register(worker_id, heartbeat).await
    }

    /// Completes once this runner stops driving runs: [`Runner::shutdown`]
    /// was called, or it lost its worker id ([`Runner::register`]).
    pub async fn stopped(&self) {
        self.shared.tasks.stop().wait().await;
    }

    /// Sets how long the leases this runner takes last ([`DEFAULT_LEASE`](crate::DEFAULT_LEASE)
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
        self.shared.leases.set_duration(lease);
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
        self.shared.graphs.set_limits(limits);
        self
    }

    /// Sets the step limit of runs whose graph sets no `max_steps`
    /// ([`DEFAULT_MAX_STEPS`](crate::DEFAULT_MAX_STEPS) unless set; at least 1): a run that has executed
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
        self.shared.graphs.set_max_steps(max_steps);
        self
    }

    /// Caps the step limit of every run, a graph's own `max_steps` included
    /// ([`DEFAULT_STEP_CEILING`](crate::DEFAULT_STEP_CEILING) unless set; at least 1).
    pub fn with_step_ceiling(self, ceiling: u64) -> Self {
        self.shared.graphs.set_step_ceiling(ceiling);
        self
    }

    /// The step limit of runs whose graph sets none.
    pub fn max_steps(&self) -> u64 {
        self.shared.graphs.max_steps()
    }

    /// The most steps any run may take.
    pub fn step_ceiling(&self) -> u64 {
        self.shared.graphs.step_ceiling()
    }

    /// The limits of the runs this runner drives.
    pub fn limits(&self) -> Arc<Limits> {
        self.shared.graphs.limits()
    }

    /// Sets how many compiled graphs (graph versions) this runner keeps
    /// ([`DEFAULT_GRAPH_CACHE`](crate::DEFAULT_GRAPH_CACHE) unless set): the least recently used one goes
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
        self.shared.graphs.set_capacity(graphs);
        self
    }

    /// Drives at most `runs` runs at a time: beyond that, the runs it starts,
    /// answers or finds are left for another process (or for this one, as
    /// its runs park or end, at its next [`Runner::recover`]). Runs waiting
    /// (on a person, a timer or a child run) are not driven, so they do not
    /// count.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = roomkit_graph_sqlite::SqliteStore::open(dir.path().join("runs.db"))?;
    /// let runner = roomkit_graph_runner::Runner::new(store, roomkit_graph::Handlers::builtin())
    ///     .with_max_runs(std::num::NonZeroUsize::new(50).unwrap_or(std::num::NonZeroUsize::MIN));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_max_runs(self, runs: std::num::NonZeroUsize) -> Self {
        self.shared.tasks.set_limit(runs);
        self
    }

    /// How long the leases this runner takes last.
    pub fn lease(&self) -> Duration {
        self.shared.leases.duration()
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
        self.shared.leases.owner()
    }

    /// How many runs this runner's tasks are driving right now (runs parked on
    /// a person or a timer hold no task).
    pub fn active_runs(&self) -> usize {
        self.shared.tasks.driving()
    }

    /// The events of this runner's runs that are sent live and never kept:
    /// the tokens of agents' replies as they are written (see [`LiveEvent`]).
    /// The transcript
    /// ([`TranscriptStore::follow`](roomkit_graph_store::TranscriptStore::follow))
    /// has everything that is kept.
    /// A listener that falls far behind misses events
    /// ([`broadcast::error::RecvError::Lagged`]).
    pub fn live(&self) -> broadcast::Receiver<LiveEvent> {
        self.shared.graphs.live()
    }

    /// The child runs of `run_id` (started by its subgraph nodes), oldest
    /// first, each with its [`parent`](RunRecord::parent) link.
    pub async fn children(&self, run_id: &str) -> Result<Vec<RunRecord>, RunnerError> {
        children::of(&self.shared, run_id).await
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        &*self.shared.store
    }

    /// The store, shared: for what works beside the runner on its store
    /// (the sender of run-event hooks, say).
    pub fn shared_store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.shared.store)
    }

    /// The clock the runner tells the time by and waits on (see
    /// [`RunnerBuilder::clock`]): what else drives runs beside it (a
    /// scheduler) takes its time from here too.
    pub fn clock(&self) -> &dyn Clock {
        &*self.shared.clock
    }

    /// The time now on the runner's clock, in the store's [`Millis`].
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use roomkit_graph::{Handlers, ManualClock};
    /// use roomkit_graph_runner::Runner;
    /// use roomkit_graph_sqlite::SqliteStore;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
    /// let store = SqliteStore::open(dir.path().join("runs.db"))?;
    /// let runner = Runner::builder(store, Handlers::builtin()).clock(clock.clone()).build();
    /// clock.advance(Duration::from_millis(250));
    /// assert_eq!(runner.now(), 1_000_250);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn now(&self) -> Millis {
        self.shared.now()
    }

    /// Sets the checks a graph must pass, beyond the core's validation, to
    /// be saved ([`Checks::new`], none, unless set): those of the node
    /// types and triggers the application runs, registered beside their
    /// handlers. [`Runner::check`] and [`Runner::save_graph`] run them.
    ///
    /// ```
    /// use roomkit_graph::{Checks, Graph, GraphCheck, Handlers, ValidationCode, ValidationError};
    /// use roomkit_graph_runner::Runner;
    /// use roomkit_graph_sqlite::SqliteStore;
    /// use serde_json::json;
    ///
    /// /// This application runs no agent nodes.
    /// struct NoAgents;
    ///
    /// impl GraphCheck for NoAgents {
    ///     fn check(&self, graph: &Graph) -> Vec<ValidationError> {
    ///         let agents = graph.nodes().iter().filter(|node| node.node_type.as_str() == "agent");
    ///         agents
    ///             .map(|node| ValidationError {
    ///                 code: ValidationCode::Custom("agents_not_served"),
    ///                 node: Some(node.id.clone()),
    ///                 field: None,
    ///                 message: format!("node {:?}: this application runs no agents", node.id),
    ///             })
    ///             .collect()
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let runner = Runner::new(SqliteStore::open(dir.path().join("runs.db"))?, Handlers::builtin())
    ///     .with_checks(Checks::new().with(NoAgents));
    /// let graph = Graph::from_value(json!({
    ///     "id": "g", "name": "G", "trigger": {"type": "manual"},
    ///     "nodes": [{"id": "start", "type": "start"}, {"id": "ask", "type": "agent"}, {"id": "end", "type": "end"}],
    ///     "edges": [{"source": "start", "target": "ask"}, {"source": "ask", "target": "end"}]
    /// }))?;
    /// assert!(graph.validate().is_empty());
    /// assert_eq!(runner.check(&graph).errors[0].node.as_deref(), Some("ask"));
    /// assert!(runner.save_graph(&graph).await.is_err());
    /// assert!(runner.store().graph("default", "g", None).await.is_err(), "nothing is stored");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_checks(self, checks: Checks) -> Self {
        self.shared.graphs.set_checks(checks);
        self
    }

    /// The checks a graph must pass, beyond the core's validation, to be
    /// saved ([`Runner::with_checks`]).
    pub fn checks(&self) -> Checks {
        self.shared.graphs.checks()
    }

    /// Everything wrong with `graph` for this runner: the core's validation
    /// against [`Runner::limits`], then its [checks](Runner::with_checks). A
    /// graph with mistakes is one [`Runner::save_graph`] refuses.
    pub fn check(&self, graph: &Graph) -> Validation {
        self.shared.graphs.check(graph)
    }

    /// Checks `graph` ([`Runner::check`]) and stores it as the next version
    /// of its id in the [`DEFAULT_ORG`]. Runs in flight keep the version they
    /// started with.
    pub async fn save_graph(&self, graph: &Graph) -> Result<StoredGraph, RunnerError> {
        self.save_graph_in(DEFAULT_ORG, graph).await
    }

    /// Checks `graph` ([`Runner::check`]) and stores it as the next version
    /// of its id in `org`; a graph with mistakes is refused with
    /// [`GraphError::Invalid`], naming them all, and nothing is stored.
    ///
    /// A subgraph node must name a graph stored in `org` (and, when it pins
    /// one, a version it has): one that is not is a mistake
    /// (`invalid_subgraph`) naming the node and the id.
    pub async fn save_graph_in(&self, org: &str, graph: &Graph) -> Result<StoredGraph, RunnerError> {
        let mut stored = self.save_graphs_in(org, std::slice::from_ref(graph)).await?;
        Ok(stored.remove(0))
    }

    /// What [`Runner::save_graphs_in`] finds in each of `graphs`, checked
    /// together ([`Runner::check`], and each subgraph node's graph: stored in
    /// `org` or among `graphs`, with the version it pins), in order.
    pub async fn check_graphs_in(&self, org: &str, graphs: &[Graph]) -> Result<Vec<Validation>, RunnerError> {
        let targets: Vec<Vec<SubgraphRef>> = graphs.iter().map(Graph::subgraph_refs).collect();
        // The newest version of each graph a subgraph node names, once the
        // family is stored (only those are read from the store).
        let mut newest: HashMap<&str, Option<u32>> = HashMap::new();
        for target in targets.iter().flatten() {
            let id = target.graph_id.as_str();
            if newest.contains_key(id) {
                continue;
            }
            let stored = match self.shared.store.latest_graph_version(org, id).await {
                Ok(version) => Some(u32::try_from(version).unwrap_or(u32::MAX)),
                Err(StoreError::NotFound(_)) => None,
                Err(error) => return Err(error.into()),
            };
            let saved_with = graphs.iter().filter(|graph| graph.id == id).count();
            let saved_with = u32::try_from(saved_with).unwrap_or(u32::MAX);
            newest.insert(
                id,
                if saved_with == 0 { stored } else { Some(stored.unwrap_or(0).saturating_add(saved_with)) },
            );
        }
        Ok(graphs
            .iter()
            .zip(&targets)
            .map(|(graph, targets)| {
                let mut found = self.check(graph);
                found.errors.extend(targets.iter().filter_map(|target| {
                    target.missing(newest.get(target.graph_id.as_str()).copied().flatten(), "stored")
                }));
                found
            })
            .collect())
    }

    /// Checks `graphs` together and stores each as the next version of its
    /// id in `org`, in the order given: a subgraph node may name a graph
    /// stored already or one of `graphs` (a family stored at once, even
    /// graphs that run each other). With a mistake in any, they are refused
    /// with [`GraphError::Invalid`], naming them all, and none is stored.
    ///
    /// ```
    /// use roomkit_graph::{Graph, Handlers};
    /// use roomkit_graph_runner::Runner;
    /// use roomkit_graph_sqlite::SqliteStore;
    /// use serde_json::json;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let runner = Runner::new(SqliteStore::open(dir.path().join("runs.db"))?, Handlers::builtin());
    /// let graph = |id: &str, runs: &str| Graph::from_value(json!({
    ///     "id": id, "name": id, "trigger": {"type": "manual"},
    ///     "nodes": [{"id": "start", "type": "start"},
    ///               {"id": "sub", "type": "subgraph", "config": {"graph_id": runs}},
    ///               {"id": "end", "type": "end"}],
    ///     "edges": [{"source": "start", "target": "sub"}, {"source": "sub", "target": "end"}]
    /// }));
    /// let error = runner.save_graph(&graph("ping", "pong")?).await.unwrap_err();
    /// assert!(error.to_string().contains("node \"sub\": graph \"pong\" is not stored"), "{error}");
    /// let stored = runner.save_graphs_in("default", &[graph("ping", "pong")?, graph("pong", "ping")?]).await?;
    /// assert_eq!(stored.iter().map(|s| (s.graph.id.as_str(), s.version)).collect::<Vec<_>>(), [("ping", 1), ("pong", 1)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn save_graphs_in(&self, org: &str, graphs: &[Graph]) -> Result<Vec<StoredGraph>, RunnerError> {
        let found = self.check_graphs_in(org, graphs).await?;
        let errors: Vec<_> = found.into_iter().flat_map(|found| found.errors).collect();
        if !errors.is_empty() {
            return Err(GraphError::Invalid(errors).into());
        }
        let mut stored = Vec::with_capacity(graphs.len());
        for graph in graphs {
            stored.push(self.shared.store.save_graph(org, graph).await?);
        }
        Ok(stored)
    }

    /// Starts a run of the latest version of `graph_id` (of the
    /// [`DEFAULT_ORG`]) with `trigger` as its trigger data, and drives it in
    /// the background. Returns its record as first committed.
    pub async fn start(&self, graph_id: &str, trigger: Value) -> Result<RunRecord, RunnerError> {
        self.start_in(DEFAULT_ORG, graph_id, trigger, None).await
    }

    /// Starts a run of version `version` of `graph_id` (of the
    /// [`DEFAULT_ORG`]), as [`Runner::start`] does with the latest: to run a
    /// version a later save replaced. [`StoreError::NotFound`] when the graph
    /// has no such version.
    ///
    /// ```
    /// use roomkit_graph::{Edge, Graph, Handlers, Node, Trigger};
    /// use roomkit_graph_runner::Runner;
    /// use roomkit_graph_sqlite::SqliteStore;
    /// use serde_json::json;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let runner = Runner::new(SqliteStore::open(dir.path().join("runs.db"))?, Handlers::builtin());
    /// let mut graph = Graph::new("hello", "Hello", Trigger::manual());
    /// graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")])?;
    /// graph.add_edge(Edge::new("start", "end"));
    /// runner.save_graph(&graph).await?;
    /// runner.save_graph(&graph).await?;
    ///
    /// let first = runner.start_version("hello", 1, json!({})).await?;
    /// assert_eq!(first.graph_version, 1);
    /// assert!(runner.start_version("hello", 3, json!({})).await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn start_version(
        &self,
        graph_id: &str,
        version: u64,
        trigger: Value,
    ) -> Result<RunRecord, RunnerError> {
        self.start_graph(DEFAULT_ORG, graph_id, Some(version), trigger, None).await
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
        self.start_graph(org, graph_id, None, trigger, key).await
    }

    /// Starts a run of `version` of `graph_id` of `org` (the latest when none).
    async fn start_graph(
        &self,
        org: &str,
        graph_id: &str,
        version: Option<u64>,
        trigger: Value,
        key: Option<RunKey>,
    ) -> Result<RunRecord, RunnerError> {
        timers::start(&self.shared);
        // Compiled once per version.
        let graph_version = match version {
            Some(version) => version,
            None => self.shared.store.latest_graph_version(org, graph_id).await?,
        };
        let workflow = self.shared.workflow(org, graph_id, graph_version).await?;
        let mut engine = workflow.engine();
        engine.start(trigger.clone())?;
        let state = engine.to_state();
        let span = trace::run_span(&state.run_id);
        trace::record_run(&span, org, graph_id, graph_version);
        let created =
            self.create(org, graph_id, graph_version, engine, state, trigger, key).instrument(span.clone());
        let (record, engine, retry_at) = created.await?;
        span.record("ended", if record.status == RunStatus::Queued { "queued" } else { "started" });
        let start = Started { record: record.clone(), engine, retry_at };
        supervisor::spawn(&self.shared, &record, Some(start));
        Ok(record)
    }

    /// Runs the start node of a run `engine` started, and stores the run
    /// with that first step: its record, its engine, and when its first
    /// node's next attempt is due (a retry its first step scheduled).
    #[allow(clippy::too_many_arguments, reason = "the run's parts, each used once")]
    async fn create(
        &self,
        org: &str,
        graph_id: &str,
        graph_version: u64,
        mut engine: WorkflowEngine,
        state: EngineState,
        trigger: Value,
        key: Option<RunKey>,
    ) -> Result<(RunRecord, WorkflowEngine, Option<Millis>), RunnerError> {
        let step = drive::step_span(&engine);
        // The start node runs now; its step is committed with the run's creation.
        let now = self.shared.now();
        let outcome = engine.step_outcome().instrument(step.clone()).await;
        let first = outcome
            .as_ref()
            .map(|outcome| commit::of_outcome(outcome, &engine, Cause::Step, &state.run_id, 1, now));
        // A retry its first step scheduled.
        let retry_at = first.iter().flat_map(|commit| &commit.entries).find_map(|entry| match entry {
            Entry::RetryScheduled { retry_at, .. } => Some(*retry_at),
            _ => None,
        });
        let lease = self.shared.leases.taken_at(now);
        let concurrency = commit::slot(&engine, &trigger);
        let record = self
            .shared
            .store
            .create_run(NewRun {
                origin: None,
                parent: None,
                org: org.to_owned(),
                graph_id: graph_id.to_owned(),
                graph_version,
                at: now,
                trigger,
                state,
                key,
                lease: Some(lease.clone()),
                first_step: first.map(|commit| StepCommit { lease: Some(lease), ..commit }),
                concurrency,
            })
            .instrument(step.clone())
            .await?;
        step.record("outcome", outcome.as_ref().map_or("none", |outcome| metrics::outcome(&outcome.status)));
        Ok((record, engine, retry_at))
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
        timers::start(&self.shared);
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
        let (record, state) = self.shared.store.load_run(run_id).await?;
        let waits_on_it = record.current_node_id.as_deref() == Some(node_id) || !record.pending.is_empty();
        if record.status != RunStatus::Waiting || !waits_on_it {
            return Err(RunnerError::NotWaiting {
                run_id: run_id.to_owned(),
                node_id: node_id.to_owned(),
                status: record.status,
                current: record.current_node_id,
            });
        }
        if record.wake_at.is_some() {
            return Err(RunnerError::InvalidAnswer {
                run_id: run_id.to_owned(),
                node_id: node_id.to_owned(),
                reason: "the node waits on a timer, not for an answer".to_owned(),
            });
        }
        let workflow = self.shared.workflow_of(&record).await?;
        let mut engine = drive::restored(&workflow, &record, state)?;
        let span = trace::run_span(run_id);
        trace::record_run(&span, &record.org, &record.graph_id, record.graph_version);
        let step = span.in_scope(|| trace::step_span(workflow.graph(), node_id, engine.attempt()));
        let outcome = commit::answered(&mut engine, run_id, node_id, data)?;
        let cause = Cause::Answer { by, data };
        let now = self.shared.now();
        let commit = commit::of_outcome(&outcome, &engine, cause, run_id, record.version, now);
        // Set going again, the run is this runner's to drive.
        let commit = StepCommit { lease: Some(self.shared.leases.taken_at(now)), ..commit };
        // The run's span is open while the answer is committed.
        let committed =
            self.shared.store.commit_step(commit).instrument(step.clone()).instrument(span.clone());
        let record = match committed.await {
            Ok((record, _)) => record,
            Err(StoreError::Conflict { .. }) => {
                step.record("outcome", "conflict");
                span.record("ended", "conflict");
                return Ok(None);
            }
            Err(error) => return Err(error.into()),
        };
        step.record("outcome", metrics::outcome(&outcome.status));
        span.record("ended", "answered");
        let start = Started { record: record.clone(), engine, retry_at: None };
        supervisor::spawn(&self.shared, &record, Some(start));
        Ok(Some(record))
    }

    /// Starts a new run of the graph version `run_id` runs, from where that
    /// run stood at its transcript entry `seq` (its context, node and status
    /// as committed with the entry: see
    /// [`TranscriptStore::run_at`](roomkit_graph_store::TranscriptStore::run_at)),
    /// and drives it. Its `run_started` entry names its origin, which is
    /// never changed; it keeps the origin's step count, and a fork between
    /// two attempts at a node makes the next one when it is due. A fork where
    /// the run waited for a person asks again (the `node_waiting` entries
    /// are repeated); with `data`, that node is answered with it (`by`: who)
    /// in the fork's first commit, so the fork goes on as the answer says.
    ///
    /// Refused, creating nothing ([`RunnerError::CannotFork`]), for a child
    /// run (fork its parent), and at an entry where the run was over
    /// (completed, failed or cancelled), rested on a timer, waited on a child
    /// run or was taking its end; with `data`, where it did not wait for one
    /// answer; [`RunnerError::InvalidAnswer`] when the node refuses `data`.
    pub async fn fork(
        &self,
        run_id: &str,
        seq: u64,
        data: Option<Value>,
        by: Option<&str>,
    ) -> Result<RunRecord, RunnerError> {
        timers::start(&self.shared);
        fork::start(&self.shared, run_id, seq, data, by).await
    }

    /// Cancels a run that is not over yet, whoever drives it, and releases its
    /// lease; its child runs that are not over are cancelled with it, and a
    /// cancelled child's parent goes on (its subgraph node fails). A step this runner is driving is dropped at once (at its next
    /// await point); one another process drives is dropped once that process
    /// sees the run is no longer running (at its next commit or lease renewal),
    /// and its commit is refused: the cancellation wins.
    pub async fn cancel(&self, run_id: &str, reason: Option<&str>) -> Result<RunRecord, RunnerError> {
        loop {
            let record = self.shared.store.run(run_id).await?;
            if record.status.is_final() {
                return Err(RunnerError::Finished { run_id: run_id.to_owned(), status: record.status });
            }
            let entries = vec![Entry::RunCancelled { reason: reason.map(str::to_owned) }];
            let commit = commit::status_change(&record, RunStatus::Cancelled, entries, self.shared.now());
            match self.shared.store.commit_step(commit).await {
                Ok((record, _)) => {
                    self.shared.tasks.cancelled(run_id);
                    // A running run cancelled lets a queued one go.
                    supervisor::pick_up_released(&self.shared).await;
                    // Its live children go with it.
                    for child in children::live(&self.shared, run_id).await? {
                        let cancelled =
                            Box::pin(self.cancel(&child.run_id, Some("its parent run was cancelled")));
                        match cancelled.await {
                            Ok(_) | Err(RunnerError::Finished { .. }) => {}
                            Err(error) => return Err(error),
                        }
                    }
                    // A cancelled child's parent goes on (its node fails).
                    if let Some(parent) = &record.parent {
                        supervisor::drive_parent(&self.shared, &parent.run_id).await;
                    }
                    return Ok(record);
                }
                // A step committed in between: look again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Waits until the run waits for a person, is queued (see
    /// `Graph::concurrency`) or is over, and returns its record. A run parked on a timer is still under way; so is one waiting
    /// on a child run, until the child waits for a person (then so does the
    /// run) or is over. (A run nobody drives
    /// stays running: see [`Runner::recover`].)
    pub async fn wait(&self, run_id: &str) -> Result<RunRecord, RunnerError> {
        loop {
            // Subscribed before looking, so that a task settling the run after
            // the look is heard.
            let mut settled = self.shared.tasks.settled();
            if self.shared.tasks.drives(run_id) {
                // A task of this runner drives it: wait for the task to settle it.
                loop {
                    match settled.recv().await {
                        Ok(settled) if &*settled == run_id => break,
                        Ok(_) => continue,
                        Err(_) => break,
                    }
                }
            }
            let record = self.shared.store.run(run_id).await?;
            let parked = record.status == RunStatus::Waiting && record.wake_at.is_none();
            if parked {
                if let Some(child) = children::live(&self.shared, run_id).await?.pop() {
                    // It waits on a child run: for a person when the child does.
                    let child = Box::pin(self.wait(&child.run_id)).await?;
                    if child.status == RunStatus::Waiting {
                        return Ok(record);
                    }
                    // The child is over: the run goes on.
                    continue;
                }
                // A child that ended since the run was read set it going.
                if self.shared.store.run(run_id).await?.version != record.version {
                    continue;
                }
            }
            // Queued: it goes on when its turn comes, whoever drives it then.
            if parked || record.status.is_final() || record.status == RunStatus::Queued {
                return Ok(record);
            }
            if self.shared.tasks.drives(run_id) {
                // Set going again here meanwhile (answered, or its timer fired).
                continue;
            }
            // Follow the run to its next wait or its end, then look again.
            let mut events = self.shared.store.follow(run_id, record.last_seq);
            while let Some(event) = events.next().await {
                let entry = event?.entry;
                if entry.is_final() || matches!(entry, Entry::NodeWaiting { .. } | Entry::ChildStarted { .. })
                {
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
        timers::start(&self.shared);
        let mut claimable = self.shared.store.claimable_runs(self.shared.now(), usize::MAX).await?;
        if self.shared.leases.worker().is_some() {
            claimable.extend(self.shared.store.runs_held_by(self.shared.leases.owner()).await?);
        }
        let mut picked_up = 0;
        for run in claimable {
            if self.shared.tasks.stop().is_set() || self.shared.tasks.is_full() {
                break;
            }
            if self.adopt(&run.run_id).await? {
                picked_up += 1;
                if run.owner.as_deref().is_some_and(|owner| owner != self.shared.leases.owner()) {
                    metrics::takeover();
                }
            }
        }
        Ok(picked_up)
    }

    /// Adopts `run_id` (drives it) if nobody does: it is running, no task of this runner
    /// drives it, and no other process holds a live lease on it (a process
    /// that gave up on it after its store failed, say). Returns whether this
    /// runner took it.
    pub async fn adopt(&self, run_id: &str) -> Result<bool, RunnerError> {
        timers::start(&self.shared);
        // A run this runner drives already (whose lease lapsed in between) keeps its task.
        if self.shared.tasks.stop().is_set()
            || self.shared.tasks.drives(run_id)
            || self.shared.tasks.is_full()
        {
            return Ok(false);
        }
        // Another process may claim it first: then it is theirs.
        Ok(match self.shared.claim(run_id).await? {
            Some(claimed) => supervisor::spawn(&self.shared, &claimed, None),
            None => false,
        })
    }

    /// Stops driving runs: each task finishes and commits the step it is on,
    /// then stops and releases the run's lease. Runs stay running in the
    /// store, for another process's (or a later) [`Runner::recover`] to take
    /// at once. Last, a worker's id is freed ([`Runner::register`]).
    pub async fn shutdown(&self) {
        self.shared.tasks.stop_and_wait().await;
        // Last, once its runs are let go: the next process of the id may start.
        worker::release(&self.shared).await;
    }
}

/// What a [`Runner`] is made of, set before it is made ([`Runner::builder`]).
pub struct RunnerBuilder {
    store: Arc<dyn Store>,
    handlers: Handlers,
    clock: Arc<dyn Clock>,
}

impl RunnerBuilder {
    /// Takes every "now" (leases, timers, due times, commits, worker
    /// registrations) and every wait from `clock` ([`SystemClock`] unless
    /// set); nodes' handlers get it too ([`roomkit_graph::Scope::clock`]).
    /// Tests use a [`roomkit_graph::ManualClock`] to expire leases and fire
    /// timers without waiting for them.
    pub fn clock(self, clock: impl Clock + 'static) -> Self {
        RunnerBuilder { clock: Arc::new(clock), ..self }
    }

    /// The runner, with an owner id of its own.
    pub fn build(self) -> Runner {
        self.made(None)
    }

    /// The runner as worker `worker_id`: see [`Runner::register`].
    pub async fn register(self, worker_id: &str, heartbeat: Duration) -> Result<Runner, RegisterError> {
        let worker = worker::worker(worker_id, heartbeat)?;
        worker::take(&*self.store, &*self.clock, &worker).await?;
        let heartbeat = worker.heartbeat;
        let runner = self.made(Some(worker));
        let (weak, stop) = (Arc::downgrade(&runner.shared), runner.shared.tasks.stop().clone());
        runner.shared.tasks.spawn(worker::keep_registration(weak, heartbeat, stop));
        Ok(runner)
    }

    /// The runner, taking its leases as `worker`'s id or as a new owner id.
    fn made(self, worker: Option<Worker>) -> Runner {
        Runner {
            shared: Arc::new(Shared {
                store: self.store,
                graphs: Graphs::new(self.handlers, Arc::clone(&self.clock)),
                clock: self.clock,
                leases: Leases::new(worker),
                tasks: RunTasks::new(),
                tick: Tick::new(TICK),
                releases_seen: std::sync::atomic::AtomicU64::new(roomkit_graph_store::releases()),
            }),
        }
    }
}
