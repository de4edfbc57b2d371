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
mod human;
mod log;
mod parallel;
mod registry;
mod signal;
mod start;
mod switch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::condition::ConditionError;
use crate::limits::LimitError;
use crate::model::Node;
use crate::template::TemplateError;

pub use crate::engine::{LiveHook, Scope};
pub use condition::ConditionHandler;
pub use end::EndHandler;
pub(crate) use function::FUNCTION_ACTIONS;
pub use function::FunctionHandler;
pub use human::HumanHandler;
pub use log::LogHandler;
pub use parallel::ParallelHandler;
pub(crate) use parallel::{PARALLEL_JOINS, joins_any};
pub use registry::{FunctionError, FunctionRegistry};
pub use signal::{Emitted, Sent, Signal};
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
/// use std::time::Duration;
/// use roomkit_graph::{Ask, NodeResult, NodeStatus};
/// use serde_json::json;
///
/// let done = NodeResult::completed(json!({"severity": "high"}));
/// assert_eq!(done.status, NodeStatus::Completed);
/// let paused = NodeResult::waiting_for(Ask::new("Approve?").with_actions(["approve", "reject"]));
/// assert!(paused.output.is_null());
/// assert_eq!(paused.ask.actions, ["approve", "reject"]);
/// let failed = NodeResult::failed("rate limited").with_output(json!({"partial": 1}));
/// assert_eq!(failed.error.as_deref(), Some("rate limited"));
/// let resting = NodeResult::sleep(Duration::from_secs(30)).with_output(json!({"delayed": "30s"}));
/// assert_eq!(resting.sleep, Some(Duration::from_secs(30)));
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
    /// What a waiting node asks for.
    pub ask: Ask,
    /// Other nodes that wait (a parallel node's children), each with what it
    /// asks, in node order: the run waits until each is answered.
    pub pending: Vec<(String, Ask)>,
    /// How long the run rests on a completed node before it follows the
    /// node's edges: the engine waits on its clock, a durable runner parks the
    /// run on a timer.
    pub sleep: Option<Duration>,
}

impl NodeResult {
    fn new(output: Value, status: NodeStatus, error: Option<String>) -> Self {
        NodeResult {
            output,
            status,
            error,
            child_outputs: Vec::new(),
            ask: Ask::default(),
            pending: Vec::new(),
            sleep: None,
        }
    }

    /// A completed execution with `output`.
    pub fn completed(output: Value) -> Self {
        NodeResult::new(output, NodeStatus::Completed, None)
    }

    /// An execution that waits for outside input, asking nothing in particular.
    pub fn waiting() -> Self {
        NodeResult::new(Value::Null, NodeStatus::Waiting, None)
    }

    /// An execution that waits for an answer to `ask`.
    pub fn waiting_for(ask: Ask) -> Self {
        NodeResult { ask, ..NodeResult::waiting() }
    }

    /// A completed execution after which the run rests `duration` before it
    /// follows the node's edges.
    pub fn sleep(duration: Duration) -> Self {
        NodeResult { sleep: Some(duration), ..NodeResult::completed(Value::Null) }
    }

    /// A failed execution.
    pub fn failed(error: impl Into<String>) -> Self {
        NodeResult::new(Value::Null, NodeStatus::Failed, Some(error.into()))
    }

    /// Sets the output.
    pub fn with_output(mut self, output: Value) -> Self {
        self.output = output;
        self
    }
}

/// What a waiting node asks a person: a prompt and the actions an answer may
/// take (any answer when there are none).
///
/// ```
/// use roomkit_graph::Ask;
/// use serde_json::json;
///
/// let ask = Ask::new("Ship it?").with_actions(["approve", "reject"]);
/// assert!(ask.check(&json!({"action": "approve"})).is_ok());
/// assert_eq!(
///     ask.check(&json!({"action": "maybe"})).unwrap_err(),
///     "action \"maybe\" is not one of approve, reject"
/// );
/// assert!(Ask::default().check(&json!({"note": "anything"})).is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ask {
    /// What the person is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The actions an answer may take.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

impl Ask {
    /// Asks `prompt`, offering no particular actions.
    pub fn new(prompt: impl Into<String>) -> Self {
        Ask { prompt: Some(prompt.into()), actions: Vec::new() }
    }

    /// Offers `actions`: an answer's `action` must be one of them.
    pub fn with_actions<S: Into<String>>(mut self, actions: impl IntoIterator<Item = S>) -> Self {
        self.actions = actions.into_iter().map(Into::into).collect();
        self
    }

    /// Checks an answer against the actions offered: with actions, it must be
    /// a JSON object whose `action` is one of them.
    pub fn check(&self, answer: &Value) -> Result<(), String> {
        if self.actions.is_empty() {
            return Ok(());
        }
        let offered = || self.actions.join(", ");
        match answer.get("action").and_then(Value::as_str) {
            Some(action) if self.actions.iter().any(|a| a == action) => Ok(()),
            Some(action) => Err(format!("action {action:?} is not one of {}", offered())),
            None if answer.is_object() => {
                Err(format!("the answer needs an \"action\": one of {}", offered()))
            }
            None => Err(format!(
                "an answer is a JSON object with an \"action\" (one of {}), not {answer}",
                offered()
            )),
        }
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
    #[error("No handler registered for node type '{node_type}'")]
    NoHandler {
        /// The type without a handler.
        node_type: String,
    },
    /// Anything else that made the node fail: what went wrong in the
    /// handler's words, the error that caused it when there is one, and
    /// whether another attempt may succeed. Made with
    /// [`execution`](HandlerError::execution).
    ///
    /// Its text is the message alone; the engine writes the failure with its
    /// causes ([`ErrorChain`](crate::ErrorChain)).
    #[error("{message}")]
    Execution {
        /// What went wrong.
        message: String,
        /// The error that caused it (an I/O, HTTP client or JSON error...).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
        /// Whether the node's `retry` policy may try again: false when
        /// another attempt would fail the same way (a wrong configuration, a
        /// request the other side refuses as it stands).
        retryable: bool,
    },
    /// What the node would output goes past the run's
    /// [`Limits`](crate::Limits): the step fails with
    /// [`EngineError::Limit`](crate::EngineError::Limit), never routed.
    #[error("its output {0}")]
    Limit(#[from] LimitError),
}

impl HandlerError {
    /// The node failed for `message`; another attempt may succeed (see
    /// [`permanent`](HandlerError::permanent)).
    ///
    /// ```
    /// use roomkit_graph::HandlerError;
    ///
    /// let error = HandlerError::execution("the queue is full");
    /// assert_eq!(error.to_string(), "the queue is full");
    /// assert!(error.is_retryable());
    /// assert!(!HandlerError::execution("no such queue").permanent().is_retryable());
    /// ```
    pub fn execution(message: impl Into<String>) -> Self {
        HandlerError::Execution { message: message.into(), source: None, retryable: true }
    }

    /// The same error with `source` as its cause. Only an execution error
    /// takes one: the others have theirs already.
    pub fn with_source(self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        match self {
            HandlerError::Execution { message, retryable, .. } => {
                HandlerError::Execution { message, source: Some(Box::new(source)), retryable }
            }
            other => other,
        }
    }

    /// The same error, marked as one another attempt cannot help: the
    /// node's `retry` policy does not try again.
    pub fn permanent(self) -> Self {
        match self {
            HandlerError::Execution { message, source, .. } => {
                HandlerError::Execution { message, source, retryable: false }
            }
            other => other,
        }
    }

    /// Whether the node's `retry` policy may try again: only an execution
    /// error not marked [`permanent`](HandlerError::permanent). A template,
    /// a missing handler, a condition or a limit fails the same way each time.
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::Execution { retryable: true, .. })
    }
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

    /// Checks an answer to `node`, waiting, before
    /// [`resume`](crate::WorkflowEngine::resume) stores it: an error refuses
    /// it with why, changing nothing. Any answer is taken unless a handler
    /// says otherwise.
    fn check_answer(&self, node: &Node, answer: &Value) -> Result<(), String> {
        let _ = (node, answer);
        Ok(())
    }

    /// Whether the node's work runs in a room of its own: a long exchange
    /// (agents taking turns, say) kept turn by turn with
    /// [`Scope::keep_progress`]. A [`parking`](crate::Workflow::parking)
    /// workflow hands such a node to its caller as a child run
    /// ([`StepStatus::Child`](crate::StepStatus::Child) with
    /// [`ChildRequest::node`](crate::ChildRequest::node) set), which runs it
    /// [alone](crate::Workflow::alone), its attempts retried there; a
    /// failure of that run fails the node for good (its error edge may take
    /// it). Elsewhere (in memory, or as a child of a parallel node) it runs
    /// in the step as any node. No node does unless its handler says so.
    fn runs_in_own_room(&self) -> bool {
        false
    }
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

/// Runs `handler` on `node`: its result, or, when it panics, an execution
/// error that says so (the attempt fails as any failed attempt does, the
/// node's retry policy and error routes applying): a handler's panic never
/// takes its run, or the process driving it, down with it.
pub(crate) async fn execute_guarded(
    handler: &dyn NodeHandler,
    node: &Node,
    scope: &Scope<'_>,
) -> Result<NodeResult, HandlerError> {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(handler.execute(node, scope)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            Err(HandlerError::execution(format!("the {} node's handler panicked: {what}", node.node_type)))
        }
    }
}
