//! What one step (or answer, or timer) did to a run, as data: what a durable
//! runner commits, what a caller inspects.

use std::time::Duration;

use serde_json::Value;

use super::{ChildRequest, EngineError, ErrorKind};
use crate::handler::{Ask, Emitted};

/// What happened when a run moved: the node that ran (or was answered, or
/// woke), what it stored, how it ended and where the run stands now.
///
/// ```
/// use roomkit_graph::{Edge, Graph, Handlers, Node, StepStatus, Trigger, WorkflowEngine};
/// use serde_json::json;
///
/// let mut graph = Graph::new("g", "G", Trigger::manual());
/// graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")])?;
/// graph.add_edge(Edge::new("start", "end"));
/// let mut engine = WorkflowEngine::new(graph, Handlers::builtin());
/// engine.start(json!({"n": 1}))?;
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let outcome = engine.step_outcome().await.expect("the run has a node to run");
/// assert_eq!(outcome.node_id, "start");
/// assert!(matches!(outcome.status, StepStatus::Completed));
/// assert_eq!(outcome.writes, [("start".to_owned(), json!({"output": {"input": {"n": 1}}}))]);
/// assert_eq!(outcome.next.as_deref(), Some("end"));
/// # });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StepOutcome {
    /// The node that ran, was answered or woke.
    pub node_id: String,
    /// Which attempt at the node this was (1 for the first).
    pub attempt: u32,
    /// How it ended.
    pub status: StepStatus,
    /// The context entries it stored (`{"output": ...}`, with `"error"` for a
    /// failure taken along an error edge), in the order stored.
    pub writes: Vec<(String, Value)>,
    /// The node the run is on now; `None` once it is complete.
    pub next: Option<String>,
    /// What the node (or its children) sent while it ran.
    pub emitted: Vec<Emitted>,
    /// Waiting points this closed without an answer: the other children of a
    /// parallel node with `join: "any"` once one of them is answered.
    pub closed: Vec<String>,
}

/// How a step ended.
#[derive(Debug)]
pub enum StepStatus {
    /// The node completed; the run moved to [`StepOutcome::next`] (none: the
    /// run is complete).
    Completed,
    /// The run waits. The step opened these waiting points (one for a node
    /// that waits, one per waiting child for a parallel node, in node order);
    /// an answer that leaves other children of a parallel node waiting opens
    /// none ([`WorkflowEngine::pending`](crate::WorkflowEngine::pending) lists them).
    Waiting(Vec<WaitingPoint>),
    /// The node completed and the run rests this long on it before following
    /// its edges: for whoever runs the engine to carry out (a durable timer),
    /// then [`WorkflowEngine::wake`](crate::WorkflowEngine::wake).
    Sleeping(Duration),
    /// The run waits on a child run for its caller to start (a subgraph
    /// node in a [`parking`](crate::Workflow::parking) workflow without
    /// [graphs](crate::Workflow::with_graphs)); once it ends,
    /// [`WorkflowEngine::finish_child`](crate::WorkflowEngine::finish_child).
    Child(ChildRequest),
    /// The step failed; the run stays on the node.
    Failed {
        /// Why.
        error: EngineError,
        /// When the node's policy retries it: after this wait, as the next
        /// attempt. `None`: the run has failed.
        retry_in: Option<Duration>,
    },
    /// The node failed and the run took its error edge to
    /// [`StepOutcome::next`]; the failure is stored under the node's `error`.
    Routed(NodeFailure),
}

/// A point where a run waits for an answer: the node answered
/// ([`WorkflowEngine::resume`](crate::WorkflowEngine::resume)) and what it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingPoint {
    /// The node to answer.
    pub node_id: String,
    /// What it asks.
    pub ask: Ask,
    /// For a node of a subgraph's child run: the subgraph nodes leading to
    /// it, outermost first (empty for the run's own nodes).
    pub path: Vec<String>,
}

impl WaitingPoint {
    /// A waiting point on the run's own node `node_id`.
    pub fn new(node_id: impl Into<String>, ask: Ask) -> Self {
        WaitingPoint { node_id: node_id.into(), ask, path: Vec::new() }
    }
}

/// A node's failure as stored for an error route: `{"kind", "message", "attempts"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFailure {
    /// `execution` or `template`.
    pub kind: ErrorKind,
    /// The handler's error text as given.
    pub message: String,
    /// How many attempts were made.
    pub attempts: u32,
}

impl NodeFailure {
    /// The failure as stored under the node's `error`.
    pub fn to_value(&self) -> Value {
        serde_json::json!({"kind": self.kind.as_str(), "message": self.message, "attempts": self.attempts})
    }
}
