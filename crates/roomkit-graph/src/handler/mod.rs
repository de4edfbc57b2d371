//! Node handlers: what each node type does when a run reaches it.
//!
//! A handler gets the node and a [`Scope`] (the run's context, the node's
//! resolved configuration, `emit` for progress events) and returns a
//! [`NodeResult`]. Built-ins cover start, end, function, condition, switch, log
//! and parallel; applications register their own for agent, human,
//! notification and custom types.

mod condition;
mod end;
mod function;
mod functions;
mod human;
mod log;
mod parallel;
mod scope;
mod start;
mod switch;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::condition::ConditionError;
use crate::limits::LimitError;
use crate::model::Node;
use crate::template::TemplateError;

pub use condition::ConditionHandler;
pub use end::EndHandler;
pub(crate) use function::FUNCTION_ACTIONS;
pub use function::FunctionHandler;
pub use functions::{FunctionError, FunctionRegistry};
pub use human::HumanHandler;
pub use log::LogHandler;
pub(crate) use parallel::PARALLEL_JOINS;
pub use parallel::ParallelHandler;
pub use scope::Scope;
pub use start::StartHandler;
pub use switch::SwitchHandler;

/// How a node's execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    /// Done: the run follows the node's edges.
    Completed,
    /// Paused for outside input: the run waits on this node until resumed.
    Waiting,
    /// Failed: the run stays on this node with an execution error.
    Failed,
}

impl NodeStatus {
    /// `completed`, `waiting` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Completed => "completed",
            NodeStatus::Waiting => "waiting",
            NodeStatus::Failed => "failed",
        }
    }
}

/// What a handler returns.
///
/// The output is stored in the context whatever the status (a null output
/// stores nothing).
///
/// ```
/// use roomkit_graph::{NodeResult, NodeStatus};
/// use serde_json::json;
///
/// let done = NodeResult::completed(json!({"severity": "high"}));
/// assert_eq!(done.status, NodeStatus::Completed);
/// let paused = NodeResult::waiting();
/// assert!(paused.output.is_null());
/// let failed = NodeResult::failed("rate limited").with_output(json!({"partial": 1}));
/// assert_eq!(failed.error.as_deref(), Some("rate limited"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NodeResult {
    /// The node's output (null: nothing is stored).
    pub output: Value,
    /// How the execution ended.
    pub status: NodeStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Outputs of other nodes written by this step, such as a parallel node's
    /// children: `(node_id, output)`, stored before the node's own output.
    pub child_outputs: Vec<(String, Value)>,
}

impl NodeResult {
    /// A completed execution with `output`.
    pub fn completed(output: Value) -> Self {
        NodeResult { output, status: NodeStatus::Completed, error: None, child_outputs: Vec::new() }
    }

    /// An execution that waits for outside input.
    pub fn waiting() -> Self {
        NodeResult {
            output: Value::Null,
            status: NodeStatus::Waiting,
            error: None,
            child_outputs: Vec::new(),
        }
    }

    /// A failed execution.
    pub fn failed(error: impl Into<String>) -> Self {
        NodeResult {
            output: Value::Null,
            status: NodeStatus::Failed,
            error: Some(error.into()),
            child_outputs: Vec::new(),
        }
    }

    /// Sets the output.
    pub fn with_output(mut self, output: Value) -> Self {
        self.output = output;
        self
    }
}

/// An error a handler raises instead of returning a [`NodeResult`].
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A template in the node's configuration could not be resolved.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A condition could not be evaluated.
    #[error(transparent)]
    Condition(#[from] ConditionError),
    /// No handler is registered for the node's type.
    #[error("no handler is registered for node type {node_type:?}: register one with Handlers::with")]
    NoHandler {
        /// The type without a handler.
        node_type: String,
    },
    /// Anything else that made the node fail.
    #[error("{0}")]
    Execution(String),
    /// What the node would output goes past the run's
    /// [`Limits`](crate::Limits): the step fails with
    /// [`EngineError::Limit`](crate::EngineError::Limit), never routed.
    #[error("its output {0}")]
    Limit(#[from] LimitError),
}

/// What a node type does.
///
/// ```
/// use roomkit_graph::{HandlerError, Node, NodeHandler, NodeResult, Scope};
/// use serde_json::json;
///
/// struct Shout;
///
/// #[async_trait::async_trait]
/// impl NodeHandler for Shout {
///     async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
///         let text = scope.render("text")?.unwrap_or_default();
///         scope.emit(json!({"kind": "progress", "chars": text.len()}));
///         Ok(NodeResult::completed(json!({"text": text.to_uppercase()})))
///     }
/// }
/// ```
#[async_trait]
pub trait NodeHandler: Send + Sync {
    /// Runs `node`. Return a failed [`NodeResult`] (or an error) to fail it.
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError>;
}

/// The handlers an engine dispatches to: one per node type, and optionally one
/// for a particular node id (which wins over its type's).
///
/// ```
/// use roomkit_graph::{FunctionRegistry, Handlers};
/// use serde_json::json;
///
/// let mut functions = FunctionRegistry::new();
/// functions.register("double", |context, _config| {
///     let n = context.get("trigger.n").and_then(|v| v.as_i64()).unwrap_or(0);
///     Ok(json!({"n": n * 2}))
/// });
/// let handlers = Handlers::builtin().with_functions(functions);
/// assert!(handlers.has_type("function"));
/// assert!(!handlers.has_type("agent"));
/// ```
#[derive(Clone)]
pub struct Handlers {
    by_type: HashMap<String, Arc<dyn NodeHandler>>,
    by_node: HashMap<String, Arc<dyn NodeHandler>>,
}

impl Handlers {
    /// No handlers at all.
    pub fn empty() -> Self {
        Handlers { by_type: HashMap::new(), by_node: HashMap::new() }
    }

    /// The built-in handlers, exactly those of the reference: start, end,
    /// function (with no registered functions), condition, switch, log and
    /// parallel. Agent, human, notification and orchestration nodes need
    /// handlers of the application's (a human node: add [`HumanHandler`]).
    ///
    /// ```
    /// use roomkit_graph::{Handlers, HumanHandler};
    ///
    /// assert!(!Handlers::builtin().has_type("human"));
    /// assert!(Handlers::builtin().with("human", HumanHandler).has_type("human"));
    /// ```
    pub fn builtin() -> Self {
        Handlers::empty()
            .with("start", StartHandler)
            .with("end", EndHandler)
            .with("function", FunctionHandler::default())
            .with("condition", ConditionHandler)
            .with("switch", SwitchHandler)
            .with("log", LogHandler)
            .with("parallel", ParallelHandler)
    }

    /// Registers `handler` for nodes of type `node_type`, replacing any other.
    pub fn with(mut self, node_type: &str, handler: impl NodeHandler + 'static) -> Self {
        self.by_type.insert(node_type.to_owned(), Arc::new(handler));
        self
    }

    /// Registers a shared handler for nodes of type `node_type`.
    pub fn with_arc(mut self, node_type: &str, handler: Arc<dyn NodeHandler>) -> Self {
        self.by_type.insert(node_type.to_owned(), handler);
        self
    }

    /// Serves the node `node_id` with `handler`, whatever its type.
    pub fn with_node(mut self, node_id: &str, handler: impl NodeHandler + 'static) -> Self {
        self.by_node.insert(node_id.to_owned(), Arc::new(handler));
        self
    }

    /// Uses a function handler that calls the functions of `registry`.
    pub fn with_functions(self, registry: FunctionRegistry) -> Self {
        self.with("function", FunctionHandler::new(registry))
    }

    /// Whether a handler is registered for `node_type`.
    pub fn has_type(&self, node_type: &str) -> bool {
        self.by_type.contains_key(node_type)
    }

    /// The handler that serves `node`.
    pub fn for_node(&self, node: &Node) -> Option<&Arc<dyn NodeHandler>> {
        self.by_node.get(&node.id).or_else(|| self.by_type.get(node.node_type.as_str()))
    }
}

impl Default for Handlers {
    fn default() -> Self {
        Handlers::builtin()
    }
}
