use crate::condition::ConditionError;
use crate::error_chain::ErrorChain;
use crate::handler::HandlerError;
use crate::limits::LimitError;
use crate::template::TemplateError;

/// Why a run could not go on. The run stays where it was (see each variant), so
/// its saved state can be inspected or resumed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A template in the node's configuration could not be resolved; nothing
    /// was stored and the run stays on the node.
    #[error("node {node:?}: {source}")]
    Template {
        /// The node whose configuration holds the template.
        node: String,
        /// What went wrong.
        source: TemplateError,
    },
    /// A condition could not be evaluated.
    #[error("node {node:?}: {source}")]
    Condition {
        /// The node being executed or routed from.
        node: String,
        /// What went wrong.
        source: ConditionError,
    },
    /// The node's handler failed; its output (if any) is stored and the run
    /// stays on the node.
    #[error("node {node:?} failed: {message}")]
    Execution {
        /// The failed node.
        node: String,
        /// Why, with the handler error's causes
        /// ([`ErrorChain`](crate::ErrorChain)).
        message: String,
    },
    /// No handler serves the node's type; the run stays on the node. Its kind
    /// is [`ErrorKind::Execution`], and error edges route it.
    #[error("node {node:?} failed: {}", HandlerError::NoHandler { node_type: node_type.clone() })]
    NoHandler {
        /// The node.
        node: String,
        /// Its type, which no handler serves.
        node_type: String,
    },
    /// The node has outgoing edges but none matched; its output is stored and
    /// the run stays on it.
    #[error("node {node:?}: no outgoing edge matched")]
    NoTransition {
        /// The node the run is stuck on.
        node: String,
    },
    /// The call itself is not allowed (a graph without start node, resuming the
    /// start node, a state that does not fit the graph...). Nothing changed.
    #[error("{0}")]
    InvalidArgument(String),
    /// An answer the node does not take (an action it does not offer), or a
    /// node the run does not wait on. Nothing changed. Its kind is
    /// [`ErrorKind::InvalidArgument`].
    #[error("cannot resume {node:?}: {reason}")]
    AnswerRefused {
        /// The node answered.
        node: String,
        /// Why the answer was refused.
        reason: String,
    },
    /// What a step (or the trigger data, or an answer) would store goes past
    /// the run's [`Limits`](crate::Limits): nothing was stored and the run
    /// stays on the node. Never routed by error edges.
    #[error("node {node:?}: {what} {source}")]
    Limit {
        /// The node whose step (or answer) it is.
        node: String,
        /// What is too large: `its output`, `the answer`, `the trigger data`...
        what: String,
        /// Which limit, and by how much.
        source: LimitError,
    },
    /// The run executed as many steps as its limit allows; it stays on the node
    /// it would have run next.
    #[error("step limit of {limit} reached before node {node:?}")]
    StepLimit {
        /// The node the run would have run next.
        node: String,
        /// The limit.
        limit: u64,
    },
}

/// The kind of an [`EngineError`], as written in records and APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// [`EngineError::Template`]
    Template,
    /// [`EngineError::Condition`]
    Condition,
    /// [`EngineError::Execution`] and [`EngineError::NoHandler`]
    Execution,
    /// [`EngineError::NoTransition`]
    NoTransition,
    /// [`EngineError::InvalidArgument`]
    InvalidArgument,
    /// [`EngineError::StepLimit`]
    StepLimit,
    /// [`EngineError::Limit`]
    Limit,
}

impl ErrorKind {
    /// `template`, `condition`, `execution`, `no_transition`, `invalid_argument`,
    /// `step_limit` or `limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Template => "template",
            ErrorKind::Condition => "condition",
            ErrorKind::Execution => "execution",
            ErrorKind::NoTransition => "no_transition",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::StepLimit => "step_limit",
            ErrorKind::Limit => "limit",
        }
    }
}

impl EngineError {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Template { .. } => ErrorKind::Template,
            EngineError::Condition { .. } => ErrorKind::Condition,
            EngineError::Execution { .. } | EngineError::NoHandler { .. } => ErrorKind::Execution,
            EngineError::NoTransition { .. } => ErrorKind::NoTransition,
            EngineError::InvalidArgument(_) | EngineError::AnswerRefused { .. } => ErrorKind::InvalidArgument,
            EngineError::StepLimit { .. } => ErrorKind::StepLimit,
            EngineError::Limit { .. } => ErrorKind::Limit,
        }
    }

    /// The node the error is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            EngineError::Template { node, .. }
            | EngineError::Condition { node, .. }
            | EngineError::Execution { node, .. }
            | EngineError::NoHandler { node, .. }
            | EngineError::NoTransition { node }
            | EngineError::StepLimit { node, .. }
            | EngineError::AnswerRefused { node, .. }
            | EngineError::Limit { node, .. } => Some(node),
            EngineError::InvalidArgument(_) => None,
        }
    }

    pub(crate) fn from_handler(node: &str, error: HandlerError) -> Self {
        let node = node.to_owned();
        match error {
            HandlerError::Template(TemplateError::Limit(source)) => {
                EngineError::Limit { node, what: "its output".to_owned(), source }
            }
            HandlerError::Template(source) => EngineError::Template { node, source },
            HandlerError::Condition(source) => EngineError::Condition { node, source },
            HandlerError::NoHandler { node_type } => EngineError::NoHandler { node, node_type },
            error @ HandlerError::Execution { .. } => {
                EngineError::Execution { node, message: ErrorChain(&error).to_string() }
            }
            HandlerError::Limit(source @ LimitError::Nesting { .. }) => {
                EngineError::Limit { node, what: "its subgraph".to_owned(), source }
            }
            HandlerError::Limit(source) => EngineError::Limit { node, what: "its output".to_owned(), source },
        }
    }
}
