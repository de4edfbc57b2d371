//! Running a graph: step by step, to completion, paused and resumed, streamed.

mod answer;
mod error;
mod graphs;
mod outcome;
mod plan;
mod progress;
mod scope;
mod state;
mod step;
mod stream;
mod subgraph;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::clock::{Clock, SystemClock};
use crate::context::Context;
use crate::handler::{Handlers, NodeHandler, NodeStatus, Signal};
use crate::limits::{LimitError, Limits};
use crate::model::{Graph, NodeType};

pub use error::{EngineError, ErrorKind};
pub use graphs::Graphs;
pub use outcome::{NodeFailure, StepOutcome, StepStatus, WaitingPoint};
use plan::start_output;
use plan::{Plan, Prepared};
pub use progress::Progress;
pub use scope::{LiveHook, Scope};
pub use state::{ChildState, EngineState};
pub(crate) use stream::EventSink;
pub use stream::{Event, EventStream, StreamMode};
use subgraph::Child;
pub(crate) use subgraph::Target as SubgraphTarget;
pub use subgraph::{ChildEnd, ChildRequest};

/// A graph compiled for running, with its handlers: build it once, then start
/// or restore as many runs as needed. Cloning it is cheap.
///
/// ```
/// use roomkit_graph::{Edge, Graph, Handlers, Node, EngineStatus, Trigger, Workflow};
/// use serde_json::json;
///
/// let mut graph = Graph::new("hello", "Hello", Trigger::manual());
/// graph.add_nodes([
///     Node::new("start", "start"),
///     Node::new("greet", "function").with_config(json!({
///         "action": "json_transform",
///         "template": {"greeting": "Hello, {{trigger.name}}!"}
///     })),
///     Node::new("end", "end"),
/// ])?;
/// graph.add_edges([Edge::new("start", "greet"), Edge::new("greet", "end")]);
///
/// let workflow = Workflow::new(graph, Handlers::builtin());
/// let mut engine = workflow.engine();
/// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
/// assert_eq!(engine.run(json!({"name": "Ada"})).await?, EngineStatus::Completed);
/// assert_eq!(engine.context().get("greet.output.greeting"), Some(&json!("Hello, Ada!")));
/// # Ok::<(), roomkit_graph::EngineError>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Workflow {
    plan: Arc<Plan>,
    /// Each node's handler, looked up once.
    handlers: Arc<[Option<Arc<dyn NodeHandler>>]>,
    clock: Arc<dyn Clock>,
    max_steps: Option<u64>,
    limits: Arc<Limits>,
    live: Option<Arc<LiveHook>>,
    /// Whether sleeps and retry waits are handed to the caller instead of
    /// waited on the clock.
    parks: bool,
    /// The graphs subgraph nodes may run.
    graphs: Option<Arc<Graphs>>,
    /// How deep this workflow's runs are nested in others (0: not a child run).
    depth: usize,
    /// Whether it runs one node alone ([`Workflow::alone`]): that node's
    /// step runs here, not in a child run.
    alone: bool,
}

impl Workflow {
    /// Compiles `graph` (templates and conditions are parsed here, once).
    pub fn new(graph: Graph, handlers: Handlers) -> Self {
        let max_steps = graph.max_steps;
        let plan = Plan::new(graph);
        let handlers = plan.graph().nodes().iter().map(|node| handlers.for_node(node).cloned()).collect();
        Workflow {
            plan: Arc::new(plan),
            handlers,
            clock: Arc::new(SystemClock),
            max_steps,
            limits: Arc::new(Limits::default()),
            live: None,
            parks: false,
            graphs: None,
            depth: 0,
            alone: false,
        }
    }

    /// Bounds what runs may store: trigger data, answers and each step's
    /// outputs past `limits` fail with [`EngineError::Limit`], storing nothing
    /// ([`Limits::default`] unless set).
    ///
    /// ```
    /// use roomkit_graph::{Edge, EngineError, Graph, Handlers, Limits, Node, Trigger, Workflow};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([
    ///     Node::new("start", "start"),
    ///     Node::new("big", "function")
    ///         .with_config(json!({"action": "json_transform", "template": {"twice": "{{trigger.text}}{{trigger.text}}"}})),
    ///     Node::new("end", "end"),
    /// ])?;
    /// graph.add_edges([Edge::new("start", "big"), Edge::new("big", "end")]);
    /// let workflow = Workflow::new(graph, Handlers::builtin())
    ///     .with_limits(Limits { output_bytes: 1000, ..Limits::default() });
    /// let mut engine = workflow.engine();
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
    /// let error = engine.run(json!({"text": "x".repeat(500)})).await.unwrap_err();
    /// assert!(matches!(error, EngineError::Limit { ref node, .. } if node == "big"));
    /// assert_eq!(error.to_string(), "node \"big\": its output is 1012 bytes as JSON, more than the limit of 1000");
    /// assert_eq!(engine.context().get("big"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Arc::new(limits.clamped());
        self
    }

    /// The limits runs of this workflow keep to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Calls `hook` with each [`Signal`] a node sends, as it sends it (the
    /// tokens of an agent's reply, say), with the run's id and the node's.
    pub fn with_live(mut self, hook: impl Fn(&str, &str, &Signal) + Send + Sync + 'static) -> Self {
        self.live = Some(Arc::new(hook));
        self
    }

    /// Hands waits to the caller instead of waiting on the clock, for a
    /// runner that keeps them durably: a node that sleeps ends its step with
    /// [`StepStatus::Sleeping`] (the run resting on it until
    /// [`WorkflowEngine::wake`]), and a failure its policy retries ends it
    /// with [`StepStatus::Failed`] and the wait before the next attempt. Without
    /// it, the engine sleeps and waits out retries itself.
    ///
    /// ```
    /// use roomkit_graph::{Edge, Graph, Handlers, Node, EngineStatus, StepStatus, Trigger, Workflow};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([
    ///     Node::new("start", "start"),
    ///     Node::new("pause", "function").with_config(json!({"action": "delay", "duration": "1h"})),
    ///     Node::new("end", "end"),
    /// ])?;
    /// graph.add_edges([Edge::new("start", "pause"), Edge::new("pause", "end")]);
    /// let mut engine = Workflow::new(graph, Handlers::builtin()).parking().engine();
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// engine.start(json!({}))?;
    /// engine.step().await?;
    /// let outcome = engine.step_outcome().await.expect("pause runs");
    /// assert!(matches!(outcome.status, StepStatus::Sleeping(d) if d.as_secs() == 3600));
    /// assert_eq!(engine.status(), EngineStatus::Waiting);
    /// assert_eq!(engine.wake()?.next.as_deref(), Some("end"));
    /// # Ok::<(), roomkit_graph::EngineError>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parking(mut self) -> Self {
        self.parks = true;
        self
    }

    /// A workflow that runs node `node_id` of this one's graph alone, for a
    /// run of its own (the child run that a node
    /// [running in its own room](NodeHandler::runs_in_own_room) is handed out as):
    /// the same nodes and handlers without the edges, so the run completes
    /// once the node has (its attempts retried there, as its `retry` says).
    /// A run of it is restored at the node, on its parent's context
    /// ([`Workflow::restore`]).
    ///
    /// ```
    /// use roomkit_graph::{EngineState, EngineStatus, Edge, Graph, Handlers, Node, Trigger, Workflow};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_chain([
    ///     Node::new("start", "start"),
    ///     Node::new("shout", "function")
    ///         .with_config(json!({"action": "json_transform", "template": {"text": "{{trigger.text}}!"}})),
    ///     Node::new("end", "end"),
    /// ])?;
    /// let alone = Workflow::new(graph, Handlers::builtin()).alone("shout")?;
    /// let mut context = serde_json::Map::new();
    /// context.insert("start".into(), json!({"output": {"input": {"text": "hi"}}}));
    /// let state = EngineState {
    ///     context,
    ///     current_node_id: Some("shout".into()),
    ///     previous_node_id: Some("start".into()),
    ///     waiting: false,
    ///     run_id: String::new(),
    ///     pending: Vec::new(),
    ///     children: Default::default(),
    /// };
    /// let mut engine = alone.restore(state)?;
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// assert_eq!(engine.advance().await?, EngineStatus::Completed);
    /// # Ok::<(), roomkit_graph::EngineError>(())
    /// # })?;
    /// assert_eq!(engine.context().get("shout.output.text"), Some(&json!("hi!")));
    /// assert_eq!(engine.context().get("end"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn alone(&self, node_id: &str) -> Result<Workflow, EngineError> {
        let graph = self.graph();
        if graph.node(node_id).is_none() {
            return Err(EngineError::InvalidArgument(format!(
                "no node {node_id:?} in graph {:?} to run alone",
                graph.id
            )));
        }
        let mut alone = Graph::new(graph.id.clone(), graph.name.clone(), graph.trigger.clone());
        alone.version = graph.version;
        alone
            .add_nodes(graph.nodes().iter().cloned())
            .map_err(|error| EngineError::InvalidArgument(error.to_string()))?;
        let plan = Plan::new(alone);
        Ok(Workflow { plan: Arc::new(plan), alone: true, graphs: None, ..self.clone() })
    }

    /// Whether node `node`'s step is handed to the caller as a child run: a
    /// node running in its own room, in a parking workflow that does not run
    /// it alone.
    pub(crate) fn hands_out(&self, node: usize) -> bool {
        self.parks
            && !self.alone
            && self.handlers.get(node).and_then(Option::as_ref).is_some_and(|h| h.runs_in_own_room())
    }

    /// Lets subgraph nodes run the graphs of `graphs`: a subgraph node
    /// (`{"graph_id": ..., "version": ..., "input": ..., "output": ...}`)
    /// runs one as a child run, started on `input` (a value resolved like
    /// `json_transform`'s template; the parent's trigger data when absent),
    /// and completes with `output` resolved against the child's context (the
    /// child's whole context when absent). A child that waits makes its
    /// parent wait: answer it through the parent, with the child's node id.
    /// Its events come in the parent's stream with their
    /// [`path`](crate::Event::path). Runs nest up to
    /// [`Limits::subgraph_depth`].
    ///
    /// ```
    /// use roomkit_graph::{Edge, EngineStatus, Graph, Graphs, Handlers, HumanHandler, Node, Trigger, Workflow};
    /// use serde_json::json;
    ///
    /// let handlers = Handlers::builtin().with("human", HumanHandler);
    /// let mut review = Graph::new("review", "Review", Trigger::manual());
    /// review.add_nodes([
    ///     Node::new("start", "start"),
    ///     Node::new("approve", "human").with_config(json!({"prompt": "Publish {{trigger.title}}?"})),
    ///     Node::new("end", "end"),
    /// ])?;
    /// review.add_edges([Edge::new("start", "approve"), Edge::new("approve", "end")]);
    /// let mut graphs = Graphs::new();
    /// graphs.add(Workflow::new(review, handlers.clone()));
    ///
    /// let mut publish = Graph::new("publish", "Publish", Trigger::manual());
    /// publish.add_nodes([
    ///     Node::new("start", "start"),
    ///     Node::new("check", "subgraph").with_config(json!({
    ///         "graph_id": "review",
    ///         "input": {"title": "{{trigger.title}}"},
    ///         "output": "{{approve.output}}"
    ///     })),
    ///     Node::new("end", "end"),
    /// ])?;
    /// publish.add_edges([Edge::new("start", "check"), Edge::new("check", "end")]);
    /// let mut engine = Workflow::new(publish, handlers).with_graphs(graphs).engine();
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// assert_eq!(engine.run(json!({"title": "Q3 report"})).await?, EngineStatus::Waiting);
    /// assert_eq!(engine.to_state().children["check"].state.current_node_id.as_deref(), Some("approve"));
    /// engine.answer("approve", json!({"ok": true}))?;
    /// assert_eq!(engine.advance().await?, EngineStatus::Completed);
    /// assert_eq!(engine.context().get("check.output"), Some(&json!({"ok": true})));
    /// # Ok::<(), roomkit_graph::EngineError>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_graphs(mut self, graphs: Graphs) -> Self {
        self.graphs = Some(Arc::new(graphs));
        self
    }

    /// Uses `clock` for delays and the waits between retries.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Stops a run with [`EngineError::StepLimit`] once it has executed
    /// `max_steps` steps, so a runaway loop cannot run forever. A graph's own
    /// [`Graph::max_steps`] takes precedence.
    pub fn with_max_steps(mut self, max_steps: u64) -> Self {
        self.max_steps = Some(self.graph().max_steps.unwrap_or(max_steps));
        self
    }

    /// Caps the step limit at `ceiling`, whatever the graph or
    /// [`with_max_steps`](Self::with_max_steps) say; a run without a limit gets
    /// this one.
    ///
    /// ```
    /// use roomkit_graph::{Graph, Handlers, Trigger, Workflow};
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.max_steps = Some(50);
    /// let workflow = Workflow::new(graph.clone(), Handlers::builtin()).with_max_steps(10);
    /// assert_eq!(workflow.max_steps(), Some(50));
    /// assert_eq!(workflow.with_step_ceiling(20).max_steps(), Some(20));
    /// graph.max_steps = None;
    /// assert_eq!(Workflow::new(graph, Handlers::builtin()).with_max_steps(10).max_steps(), Some(10));
    /// ```
    pub fn with_step_ceiling(mut self, ceiling: u64) -> Self {
        self.max_steps = Some(self.max_steps.map_or(ceiling, |limit| limit.min(ceiling)));
        self
    }

    /// How many steps a run may execute, if limited.
    pub fn max_steps(&self) -> Option<u64> {
        self.max_steps
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        self.plan.graph()
    }

    /// An engine for a new run (call [`WorkflowEngine::start`] or
    /// [`WorkflowEngine::run`] on it).
    pub fn engine(&self) -> WorkflowEngine {
        WorkflowEngine {
            workflow: self.clone(),
            context: Arc::new(self.plan.new_context()),
            current: None,
            previous: None,
            waiting: false,
            run_id: String::new(),
            steps_taken: 0,
            attempt: 1,
            written: Vec::new(),
            pending: Vec::new(),
            child: None,
            sink: None,
            progress: None,
        }
    }

    /// An engine that continues the run saved in `state`, possibly by another process.
    pub fn restore(&self, state: EngineState) -> Result<WorkflowEngine, EngineError> {
        let plan = &self.plan;
        plan.start()?;
        let index = |id: Option<String>, what: &str| -> Result<Option<usize>, EngineError> {
            id.map(|id| {
                plan.index(&id).ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "the saved state's {what} {id:?} is not a node of graph {:?}",
                        plan.graph().id
                    ))
                })
            })
            .transpose()
        };
        let current = index(state.current_node_id, "current_node_id")?;
        let previous = index(state.previous_node_id, "previous_node_id")?;
        let pending = state
            .pending
            .iter()
            .map(|child| {
                let index = plan.index(child).filter(|&i| {
                    state.waiting && current.is_some_and(|parent| plan.children(parent).contains(&i))
                });
                index.ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "the saved state's pending {child:?} is not a child of the parallel node the run waits on"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // At most one child, on the subgraph node the run stands on.
        let mut children = state.children.into_iter();
        let child = match children.next() {
            None => None,
            Some((node_id, saved)) => {
                let alone = children.next().is_none();
                let on = current.filter(|&at| {
                    alone && plan.id(at) == node_id && plan.node(at).node_type == NodeType::Subgraph
                });
                let at = on.ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "the saved state's child run of {node_id:?} is not on the subgraph node the run stands on"
                    ))
                })?;
                Some(Child::restore(self, plan.node(at), state.waiting, saved)?)
            }
        };
        let run_id = if state.run_id.is_empty() { new_run_id() } else { state.run_id };
        let mut context = plan.restore_context(state.context);
        match (previous, current) {
            (None, Some(node)) => context.set_input_from(plan.sources(node)),
            _ => context.set_input(previous),
        }
        Ok(WorkflowEngine {
            workflow: self.clone(),
            context: Arc::new(context),
            current,
            previous,
            waiting: state.waiting,
            run_id,
            steps_taken: 0,
            attempt: 1,
            written: Vec::new(),
            pending,
            child,
            sink: None,
            progress: None,
        })
    }
}

/// Where the engine's run stands: running, waiting or completed. (A failed
/// run is an [`EngineError`]; a durable run's status, with failed and
/// cancelled, is kept by the store.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineStatus {
    /// Not started, or on a node that has yet to run.
    Running,
    /// Paused on a node until [`WorkflowEngine::resume`].
    Waiting,
    /// Finished: no current node.
    Completed,
}

/// Drives one run of a graph.
///
/// - [`start`](Self::start) puts the run on the start node; [`step`](Self::step)
///   runs the current node and follows its edges; [`run`](Self::run) = start + step
///   until the run completes, waits or fails.
/// - After a node completes, its conditional edges are tried in the order they
///   were added (first match wins), then its unconditional edge, then its
///   `otherwise` edge. A node without edges completes the run; edges without a
///   match are a [`EngineError::NoTransition`].
/// - A handler that returns `waiting` pauses the run; [`resume`](Self::resume)
///   stores outside input as that node's output and moves on.
/// - [`to_state`](Self::to_state) / [`Workflow::restore`] carry a run across processes.
pub struct WorkflowEngine {
    workflow: Workflow,
    /// Shared with the handlers running a step ([`Scope::shared_context`]);
    /// written through [`context_mut`](Self::context_mut), which copies it
    /// only while a handler still holds it.
    context: Arc<Context>,
    current: Option<usize>,
    previous: Option<usize>,
    waiting: bool,
    run_id: String,
    steps_taken: u64,
    /// Which attempt at the current node the next step is (set by a runner that retries).
    attempt: u32,
    /// The nodes whose outputs the last step (or resume) stored, in order.
    written: Vec<usize>,
    /// The children of the parallel node the run waits on that still wait, in node order.
    pending: Vec<usize>,
    /// The child run of the subgraph node the run stands on, while it is
    /// under way.
    child: Option<Child>,
    sink: Option<Arc<EventSink>>,
    /// Where its steps keep their progress, if anywhere.
    progress: Option<Arc<dyn Progress>>,
}

/// A fresh run id: a UUID v7, random but ordered by time, so stores that index
/// runs by id append instead of splitting pages.
fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl WorkflowEngine {
    /// An engine for a new run of `graph` (see [`Workflow`] to share one
    /// compiled graph between runs).
    pub fn new(graph: Graph, handlers: Handlers) -> Self {
        Workflow::new(graph, handlers).engine()
    }

    /// An engine that continues the run saved in `state`.
    pub fn from_state(graph: Graph, handlers: Handlers, state: EngineState) -> Result<Self, EngineError> {
        Workflow::new(graph, handlers).restore(state)
    }

    /// The graph being run.
    pub fn graph(&self) -> &Graph {
        self.workflow.graph()
    }

    /// The run's context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Stores `output` as node `node_id`'s output from outside a step (as
    /// an answer is stored): checked against the run's [`Limits`] as a step's
    /// output is (nothing is stored past them), noted among the last step's
    /// writes ([`StepOutcome::writes`]), read by the next steps' templates and
    /// conditions, and saved with the run. An id that is no node of the graph
    /// is kept beside the nodes' outputs, saved with them.
    ///
    /// ```
    /// use roomkit_graph::{Condition, Edge, Graph, Handlers, Limits, Node, Trigger, Workflow};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([Node::new("start", "start"), Node::new("check", "log"), Node::new("end", "end")])?;
    /// graph.add_edge(Edge::new("check", "end").when(Condition::field("check.output.ok").equals(true)));
    /// let limits = Limits { output_bytes: 32, ..Limits::default() };
    /// let mut engine = Workflow::new(graph, Handlers::builtin()).with_limits(limits).engine();
    /// engine.set_output("check", json!({"ok": true}))?;
    /// assert_eq!(engine.evaluate_edges("check")?.as_deref(), Some("end"));
    /// let error = engine.set_output("check", json!({"text": "more than thirty-two bytes"})).unwrap_err();
    /// assert_eq!(error.to_string(), "is 37 bytes as JSON, more than the limit of 32");
    /// assert_eq!(engine.context().get("check.output.ok"), Some(&json!(true)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_output(&mut self, node_id: &str, output: Value) -> Result<(), LimitError> {
        let limits = &*self.workflow.limits;
        let bytes = limits.check_value(&output)?;
        let index = self.workflow.plan.index(node_id);
        let (before, replaced, stored) = match index {
            Some(index) => (self.context.size(), self.context.size_at(index), bytes),
            None => {
                // Kept as its entry, `{"output":...}`.
                let replaced =
                    self.context.entry(node_id).map_or(0, |entry| crate::limits::measure(entry).bytes);
                (self.context.size(), replaced, bytes + r#"{"output":}"#.len())
            }
        };
        let after = before - replaced.min(before) + stored;
        if after > limits.context_bytes && after > before {
            return Err(LimitError::Context { bytes: after, limit: limits.context_bytes });
        }
        match index {
            Some(index) => {
                self.context_mut().set_output_at(index, output, bytes);
                self.written.retain(|&written| written != index);
                self.written.push(index);
            }
            None => self.context_mut().set_output(node_id, output),
        }
        Ok(())
    }

    /// Sets what the `input` scope reads until the next step (which sets it
    /// to what flows into its node): `None`, nothing.
    pub fn set_input_value(&mut self, value: Option<Value>) {
        self.context_mut().set_input_value(value);
    }

    /// The run's context, to change (a copy, while a handler holds it).
    pub(crate) fn context_mut(&mut self) -> &mut Context {
        Arc::make_mut(&mut self.context)
    }

    /// Where the run would go after `node_id` completed, judged on the
    /// context as it stands (`input` reading that node's output), without
    /// moving the run: its conditional edges in order, then its unconditional
    /// edge, then its `otherwise` edge. `None`: the node has no edges.
    /// [`EngineError::NoTransition`] when it has edges and none matched;
    /// [`EngineError::InvalidArgument`] for a node not in the graph.
    pub fn evaluate_edges(&mut self, node_id: &str) -> Result<Option<String>, EngineError> {
        let plan = Arc::clone(&self.workflow.plan);
        let node = plan.index(node_id).ok_or_else(|| {
            EngineError::InvalidArgument(format!("no node {node_id:?} in graph {:?}", plan.graph().id))
        })?;
        let before = self.context_mut().replace_input(node);
        let routed = plan.route(node, &self.context);
        self.context_mut().restore_input(before);
        Ok(routed?.map(|next| plan.id(next).to_owned()))
    }

    /// The limits the run keeps to.
    pub fn limits(&self) -> &Limits {
        self.workflow.limits()
    }

    /// The node the run is on; `None` once it is complete.
    pub fn current_node_id(&self) -> Option<&str> {
        self.current.map(|i| self.workflow.plan.id(i))
    }

    /// The node the run last left along an edge (or through `resume`).
    pub fn previous_node_id(&self) -> Option<&str> {
        self.previous.map(|i| self.workflow.plan.id(i))
    }

    /// Whether the run waits for outside input.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// The run's id: fresh and random for each run started.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// How many steps the run has executed since it started (or since the
    /// engine was restored, unless set with [`set_steps_taken`](Self::set_steps_taken)).
    pub fn steps_taken(&self) -> u64 {
        self.steps_taken
    }

    /// Sets how many steps the run has executed: a durable runner that
    /// counts every step of a run restores its count with the run.
    pub fn set_steps_taken(&mut self, steps: u64) {
        self.steps_taken = steps;
    }

    /// Sets which attempt at the current node the next step is (1 for the
    /// first), as handlers see it in [`Scope::attempt`](crate::Scope::attempt). A runner that retries
    /// failed nodes sets it; it goes back to 1 once the run moves on.
    pub fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt.max(1);
    }

    /// Which attempt at the current node the next step is (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Keeps the progress its steps make in `progress`, for a runner that
    /// keeps runs durably: see [`Progress`]. Without it,
    /// [`Scope::keep_progress`](crate::Scope::keep_progress) keeps nothing.
    pub fn keep_progress_in(&mut self, progress: Arc<dyn Progress>) {
        self.progress = Some(progress);
    }

    /// Where the run stands.
    pub fn status(&self) -> EngineStatus {
        match (self.current, self.waiting) {
            (None, _) => EngineStatus::Completed,
            (Some(_), true) => EngineStatus::Waiting,
            (Some(_), false) => EngineStatus::Running,
        }
    }

    /// The run's saved state.
    pub fn to_state(&self) -> EngineState {
        EngineState {
            context: self.context.to_entries(),
            current_node_id: self.current_node_id().map(str::to_owned),
            previous_node_id: self.previous_node_id().map(str::to_owned),
            waiting: self.waiting,
            run_id: self.run_id.clone(),
            pending: self.pending.iter().map(|&child| self.workflow.plan.id(child).to_owned()).collect(),
            children: match (&self.child, self.current_node_id()) {
                (Some(child), Some(node_id)) => [(node_id.to_owned(), child.to_state())].into(),
                _ => Default::default(),
            },
        }
    }

    /// Starts a new run with `trigger` as its trigger data: the start node's
    /// input is stored and the run is put on the start node.
    pub fn start(&mut self, trigger: Value) -> Result<(), EngineError> {
        self.start_run(trigger, false)
    }

    /// Starts a new run as [`start`](Self::start) does, keeping what the
    /// context holds beside the start node's input (outputs written before
    /// the run, an earlier run's): roomkit-graph's `start()`. Refused, with
    /// nothing changed, when the context would go past the run's limit.
    ///
    /// ```
    /// use roomkit_graph::{Edge, Graph, Handlers, Node, Trigger, Workflow};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")])?;
    /// graph.add_edge(Edge::new("start", "end"));
    /// let mut engine = Workflow::new(graph, Handlers::builtin()).engine();
    /// engine.set_output("settings", json!({"tone": "warm"}))?;
    /// engine.start_keeping_context(json!({"n": 1}))?;
    /// assert_eq!(engine.context().get("settings.output.tone"), Some(&json!("warm")));
    /// engine.start(json!({"n": 2}))?;
    /// assert_eq!(engine.context().get("settings"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_keeping_context(&mut self, trigger: Value) -> Result<(), EngineError> {
        self.start_run(trigger, true)
    }

    fn start_run(&mut self, trigger: Value, keep: bool) -> Result<(), EngineError> {
        let plan = Arc::clone(&self.workflow.plan);
        let start = plan.start()?;
        let limit = |source| EngineError::Limit {
            node: plan.id(start).to_owned(),
            what: "the trigger data".to_owned(),
            source,
        };
        let context_limit = self.workflow.limits.context_bytes;
        let trigger_bytes = self.workflow.limits.check_value(&trigger).map_err(limit)?;
        let output = start_output(trigger);
        let bytes = crate::limits::measure(&output).bytes;
        // `{{start.output.input}}` is the trigger data whatever the start node is called.
        let alias = plan.id(start) != "start";
        let stored = if alias { 2 * bytes + r#"{"output":}"#.len() } else { bytes };
        let after = if keep {
            let replaced = self.context.size_at(start)
                + if alias {
                    self.context.entry("start").map_or(0, |entry| crate::limits::measure(entry).bytes)
                } else {
                    0
                };
            self.context.size() - replaced.min(self.context.size()) + stored
        } else {
            trigger_bytes
        };
        if after > context_limit {
            return Err(limit(LimitError::Context { bytes: after, limit: context_limit }));
        }
        if !keep {
            self.context_mut().clear();
        }
        if alias {
            self.context_mut().set_output("start", output.clone());
        }
        self.context_mut().set_output_at(start, output, bytes);
        self.current = Some(start);
        self.previous = None;
        self.waiting = false;
        self.pending.clear();
        self.child = None;
        self.run_id = new_run_id();
        self.steps_taken = 0;
        self.attempt = 1;
        self.send_values();
        Ok(())
    }

    /// Steps until the run completes, waits or fails.
    pub async fn advance(&mut self) -> Result<EngineStatus, EngineError> {
        while self.step().await? {}
        Ok(self.status())
    }

    /// Starts a run with `trigger` and steps until it completes, waits or fails.
    pub async fn run(&mut self, trigger: Value) -> Result<EngineStatus, EngineError> {
        self.start(trigger)?;
        self.advance().await
    }

    /// Starts a run and streams its events in `modes` until it completes, waits
    /// or fails (the error comes last, after the failing step's events).
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use roomkit_graph::{Edge, Graph, Handlers, Node, StreamMode, Trigger, WorkflowEngine};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")])?;
    /// graph.add_edge(Edge::new("start", "end"));
    /// let mut engine = WorkflowEngine::new(graph, Handlers::builtin());
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let events: Vec<_> = engine.stream(json!({}), &[StreamMode::Lifecycle]).collect().await;
    /// let phases: Vec<_> = events.iter().map(|e| e.as_ref().unwrap().payload["phase"].clone()).collect();
    /// assert_eq!(phases, [json!("start"), json!("complete"), json!("start"), json!("complete")]);
    /// # });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&mut self, trigger: Value, modes: &[StreamMode]) -> EventStream<'_> {
        self.streaming(modes, Continuation::Start(trigger))
    }

    /// Resumes a waiting run (as [`resume`](Self::resume)) and streams the
    /// continuation in `modes`: an updates event for the stored answer, a values
    /// snapshot, then every following step until the run completes, waits or fails.
    pub fn stream_resume(&mut self, node_id: &str, data: Value, modes: &[StreamMode]) -> EventStream<'_> {
        self.streaming(modes, Continuation::Resume(node_id.to_owned(), data))
    }

    /// Streams the rest of the run from where it stands (a run restored from
    /// saved state, or one a step limit stopped).
    pub fn stream_continue(&mut self, modes: &[StreamMode]) -> EventStream<'_> {
        self.streaming(modes, Continuation::Advance)
    }

    /// Runs one step (as [`step`](Self::step)) and streams its events in
    /// `modes`. Its updates event holds exactly the outputs the step wrote, which
    /// is what a durable store commits; the stream ends with the step's error,
    /// if any.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use roomkit_graph::{Edge, Graph, Handlers, Node, StreamMode, Trigger, WorkflowEngine};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")])?;
    /// graph.add_edge(Edge::new("start", "end"));
    /// let mut engine = WorkflowEngine::new(graph, Handlers::builtin());
    /// engine.start(json!({"n": 1}))?;
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let events: Vec<_> = engine.stream_step(&[StreamMode::Updates]).collect().await;
    /// assert_eq!(events.len(), 1);
    /// assert_eq!(events[0].as_ref().unwrap().payload, json!({"start": {"output": {"input": {"n": 1}}}}));
    /// assert_eq!(engine.current_node_id(), Some("end"));
    /// # });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream_step(&mut self, modes: &[StreamMode]) -> EventStream<'_> {
        self.streaming(modes, Continuation::Step)
    }

    fn streaming(&mut self, modes: &[StreamMode], continuation: Continuation) -> EventStream<'_> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.sink = Some(Arc::new(EventSink::new(modes, sender)));
        let run = Box::pin(async move {
            // The guard clears the sink when the run ends or the stream is dropped.
            let mut guard = SinkGuard(self);
            let engine = &mut *guard;
            match continuation {
                Continuation::Start(trigger) => engine.start(trigger)?,
                Continuation::Resume(node_id, data) => engine.resume(&node_id, data)?,
                Continuation::Advance => {}
                Continuation::Step => return engine.step().await.map(drop),
            }
            engine.advance().await.map(drop)
        });
        EventStream::new(run, receiver)
    }

    fn send_lifecycle_start(&self, node: usize) {
        if let Some(sink) = &self.sink {
            let plan = &self.workflow.plan;
            let id = plan.id(node);
            sink.send(
                StreamMode::Lifecycle,
                Some(id),
                || json!({"phase": "start", "node_id": id, "type": plan.node(node).node_type.as_str()}),
            );
        }
    }

    fn send_lifecycle_complete(&self, node: usize, status: NodeStatus) {
        if let Some(sink) = &self.sink {
            let id = self.workflow.plan.id(node);
            sink.send(
                StreamMode::Lifecycle,
                Some(id),
                || json!({"phase": "complete", "node_id": id, "status": status.as_str()}),
            );
        }
    }

    fn send_updates(&self, node: usize) {
        if let (Some(sink), false) = (&self.sink, self.written.is_empty()) {
            sink.send(StreamMode::Updates, Some(self.workflow.plan.id(node)), || {
                Value::Object(self.written_entries().into_iter().collect())
            });
        }
    }

    /// The context entries the last step (or answer) stored, in order.
    fn written_entries(&self) -> Vec<(String, Value)> {
        let plan = &self.workflow.plan;
        self.written
            .iter()
            .filter_map(|&node| Some((plan.id(node).to_owned(), self.context.entry_at(node)?)))
            .collect()
    }

    fn send_values(&self) {
        if let Some(sink) = &self.sink {
            sink.send(StreamMode::Values, None, || Value::Object(self.context.to_entries()));
        }
    }

    /// A step's closing events: lifecycle complete, updates, values.
    fn finish_step(&self, node: usize, status: NodeStatus) {
        self.send_lifecycle_complete(node, status);
        self.send_updates(node);
        self.send_values();
    }
}

/// How a streamed run begins.
enum Continuation {
    Start(Value),
    Resume(String, Value),
    Advance,
    Step,
}

/// Clears the engine's event sink when dropped.
struct SinkGuard<'a>(&'a mut WorkflowEngine);

impl Drop for SinkGuard<'_> {
    fn drop(&mut self) {
        self.0.sink = None;
    }
}

impl Deref for SinkGuard<'_> {
    type Target = WorkflowEngine;
    fn deref(&self) -> &WorkflowEngine {
        self.0
    }
}

impl DerefMut for SinkGuard<'_> {
    fn deref_mut(&mut self) -> &mut WorkflowEngine {
        self.0
    }
}
