//! The errors of this crate, one enum per layer: reading an agents file
//! ([`AgentsError`]), calling a provider ([`ProviderError`]) and running an AI
//! node ([`AiError`], which becomes the node's
//! [`HandlerError`](roomkit_graph::HandlerError)).
//!
//! No error ever holds an API key: provider messages are scrubbed of the key
//! before they are kept, and the HTTP client's errors, kept as sources, hold
//! no URL and no header (where keys travel).

use std::path::PathBuf;
use std::time::Duration;

/// Why an agents file (or an [`AgentsConfig`](crate::AgentsConfig) built in
/// code) could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    /// The file could not be read.
    #[error("cannot read agents file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not JSON.
    #[error("agents file is not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// The line of the mistake (from 1).
        line: usize,
        /// The column of the mistake (from 1).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A part of the file does not have the expected shape: a missing or
    /// unknown field, a value of the wrong type, a bad duration.
    #[error("{at}: {message}")]
    Invalid {
        /// Where, such as `agents[0] ("triage-agent")` or `providers.local.timeout`.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// An agent names a provider the file does not declare.
    #[error("agent {agent:?} uses provider {provider:?}, which is not declared (declared: {})", known.join(", "))]
    UnknownProvider {
        /// The agent.
        agent: String,
        /// The provider it names.
        provider: String,
        /// The providers the file declares.
        known: Vec<String>,
    },
    /// Two agents share an id.
    #[error("agent id {0:?} is declared twice: every agent needs its own id")]
    DuplicateAgent(String),
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// Why a call to a model provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The environment variable holding the provider's API key is not set.
    #[error("provider {provider:?}: the environment variable {env} (its api_key_env) is not set")]
    MissingKey {
        /// The provider.
        provider: String,
        /// The variable's name.
        env: String,
    },
    /// The provider answered with an error status (after retrying 429 and 5xx).
    #[error("provider {provider:?} answered {status} after {attempts} attempt(s): {message}")]
    Status {
        /// The provider.
        provider: String,
        /// The HTTP status code.
        status: u16,
        /// The provider's error message (or the body, cut short).
        message: String,
        /// How many requests were sent.
        attempts: u32,
    },
    /// No answer arrived within the provider's timeout.
    #[error("provider {provider:?} did not answer within {timeout:?}")]
    Timeout {
        /// The provider.
        provider: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The provider cannot be called as configured: it is not declared, or
    /// its API key holds characters an HTTP header cannot carry.
    #[error("provider {provider:?} cannot be called: {message}")]
    Unusable {
        /// The provider.
        provider: String,
        /// What is wrong.
        message: String,
    },
    /// The request could not be sent or the answer could not be read.
    #[error("provider {provider:?} could not be reached after {attempts} attempt(s)")]
    Transport {
        /// The provider.
        provider: String,
        /// How many requests were sent.
        attempts: u32,
        /// The HTTP client's error, without the URL (an API key never
        /// travels in it: keys go in headers).
        source: reqwest::Error,
    },
    /// The streamed answer broke the provider's wire format, or carried an
    /// error event.
    #[error("provider {provider:?} sent a bad stream: {message}")]
    Stream {
        /// The provider.
        provider: String,
        /// What went wrong.
        message: String,
    },
}

/// Why an agent or orchestration node failed.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// The node's configuration is wrong.
    #[error("config field {field:?}: {message}")]
    Config {
        /// The field, such as `agent_id` or `until`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A call on an agent's behalf failed.
    #[error("agent {agent:?}: {source}")]
    Provider {
        /// The agent.
        agent: String,
        /// What went wrong.
        source: ProviderError,
    },
    /// The agent called a tool that has no function registered.
    #[error("agent {agent:?} called tool {tool:?}, which has no function registered (Agents::with_tool)")]
    NoToolFunction {
        /// The agent.
        agent: String,
        /// The tool.
        tool: String,
    },
    /// The agent kept calling tools past the limit.
    #[error("agent {agent:?} was still calling tools after {rounds} rounds")]
    ToolRounds {
        /// The agent.
        agent: String,
        /// The limit.
        rounds: u32,
    },
    /// The reply never fitted the node's `output_schema`.
    #[error("agent {agent:?}: the reply did not fit output_schema after {tries} tries: {problem}")]
    Schema {
        /// The agent.
        agent: String,
        /// How many replies were asked for.
        tries: u32,
        /// What was wrong with the last reply.
        problem: String,
    },
    /// An orchestration ran out of rounds before it ended.
    #[error("{strategy} orchestration did not end within max_rounds = {rounds}")]
    Rounds {
        /// The strategy.
        strategy: &'static str,
        /// The limit.
        rounds: u32,
    },
    /// A template could not be rendered.
    #[error(transparent)]
    Template(#[from] roomkit_graph::TemplateError),
    /// The `until` condition could not be evaluated.
    #[error("until: {0}")]
    Condition(#[from] roomkit_graph::ConditionError),
    /// A turn could not be kept as the step's progress, or what an earlier
    /// go kept does not fit the conversation as it goes again.
    #[error("{0}")]
    Progress(String),
}

impl ProviderError {
    /// Whether calling again later may succeed: after a status the
    /// provider's own retries take (429 and 5xx), a timeout, a failed
    /// connection or a broken stream; not without the API key, nor for a
    /// provider that cannot be called, nor after another refusal (the request
    /// itself is wrong).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::MissingKey { .. } | ProviderError::Unusable { .. } => false,
            ProviderError::Status { status, .. } => crate::retry::retryable_status(*status),
            ProviderError::Timeout { .. }
            | ProviderError::Transport { .. }
            | ProviderError::Stream { .. } => true,
        }
    }
}

impl AiError {
    /// Whether running the node again may succeed: a provider's failure
    /// that [may pass](ProviderError::is_retryable), a reply that did not fit
    /// its schema, an orchestration out of rounds or tools; not a wrong
    /// configuration or a tool without a function.
    pub fn is_retryable(&self) -> bool {
        match self {
            AiError::Provider { source, .. } => source.is_retryable(),
            AiError::Config { .. }
            | AiError::NoToolFunction { .. }
            | AiError::Template(_)
            | AiError::Condition(_)
            | AiError::Progress(_) => false,
            AiError::ToolRounds { .. } | AiError::Schema { .. } | AiError::Rounds { .. } => true,
        }
    }
}

/// A template error stays one (the engine tells it apart); anything else is
/// an execution error caused by this one, retried by the node's `retry`
/// policy only when [it may pass](AiError::is_retryable).
impl From<AiError> for roomkit_graph::HandlerError {
    fn from(error: AiError) -> Self {
        use roomkit_graph::HandlerError;
        match error {
            AiError::Template(error) => HandlerError::Template(error),
            other => {
                let failed = HandlerError::execution(other.to_string());
                let failed = if other.is_retryable() { failed } else { failed.permanent() };
                failed.with_source(other)
            }
        }
    }
}
