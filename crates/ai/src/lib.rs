//! AI nodes for roomkit-graph: `agent` and `orchestration` node handlers that
//! call real models, on any OpenAI-compatible chat completions endpoint
//! (OpenAI, Ollama, vLLM, LM Studio) or the Anthropic Messages API.
//!
//! - [`Agents`], [`AgentsConfig`]: the agents file (providers and agents), API
//!   keys read from environment variables when a request is sent, and the
//!   functions behind agents' tools ([`Agents::with_tool`]).
//! - [`AgentHandler`]: the `agent` node: streamed replies (each piece emitted
//!   as a `token` event), tool calls, structured output checked against a
//!   JSON Schema and asked again when it does not fit.
//! - [`OrchestrationHandler`]: the `orchestration` node: `pipeline`, `loop`,
//!   `supervisor` and `swarm` strategies.
//! - [`register`] puts both on a [`Handlers`]; [`AgentCheck`], registered in
//!   the [`Checks`](roomkit_graph::Checks) beside them, finds mistakes in the
//!   nodes' configuration before anything runs.
//!
//! Every call streams, retries 429 and 5xx answers with exponential backoff
//! (honouring `Retry-After`), and has a timeout ([`ProviderConfig`],
//! [`RetryPolicy`]). API keys never appear in `Debug` output, errors or events.
//!
//! # Quick start
//!
//! ```
//! use std::sync::Arc;
//! use roomkit_graph::{Checks, Edge, Graph, Handlers, Limits, Node, Trigger, Workflow};
//! use roomkit_graph_ai::{AgentCheck, Agents, register};
//! use serde_json::json;
//!
//! let agents = Arc::new(Agents::from_json(r#"{
//!   "providers": {
//!     "local": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1", "timeout": "60s"},
//!     "claude": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"}
//!   },
//!   "agents": [
//!     {"id": "triage-agent", "provider": "local", "model": "llama3.2",
//!      "system_prompt": "You triage bug reports.", "temperature": 0.2, "max_tokens": 512}
//!   ]
//! }"#)?);
//!
//! let mut graph = Graph::new("triage", "Triage", Trigger::manual());
//! graph.add_nodes([
//!     Node::new("start", "start"),
//!     Node::new("triage", "agent").with_config(json!({
//!         "agent_id": "triage-agent",
//!         "prompt_template": "Classify this issue:\n\n{{trigger.title}}",
//!         "output_schema": {"type": "object", "required": ["severity"],
//!                           "properties": {"severity": {"enum": ["low", "high", "critical"]}}}
//!     })),
//!     Node::new("end", "end"),
//! ])?;
//! graph.add_edges([Edge::new("start", "triage"), Edge::new("triage", "end")]);
//! let checks = Checks::new().with(AgentCheck::new(Arc::clone(&agents)));
//! assert!(checks.check(&graph, &Limits::default()).is_valid());
//!
//! let workflow = Workflow::new(graph, register(Handlers::builtin(), agents));
//! // workflow.engine().run(json!({"title": "Login fails"})).await?;
//! # let _ = workflow;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod agent_node;
mod check;
mod config;
mod duration_text;
mod error;
mod message;
pub mod metrics;
mod orchestration;
mod pace;
mod provider;
mod retry;
mod schema;
mod session;
mod sse;

use std::sync::Arc;

use roomkit_graph::Handlers;

pub use agent_node::AgentHandler;
pub use check::AgentCheck;
pub use config::{AgentConfig, Agents, AgentsConfig, ProviderConfig, ProviderKind};
pub use error::{AgentsError, AiError, ProviderError};
pub use message::ToolSpec;
pub use orchestration::OrchestrationHandler;
pub use retry::RetryPolicy;

/// Registers [`AgentHandler`] for `agent` nodes and [`OrchestrationHandler`]
/// for `orchestration` nodes, both calling `agents`; [`AgentCheck`] checks
/// their nodes against the same `agents` before a graph is accepted.
///
/// ```
/// use std::sync::Arc;
/// use roomkit_graph::Handlers;
/// use roomkit_graph_ai::{Agents, AgentsConfig, register};
///
/// let handlers = register(Handlers::builtin(), Arc::new(Agents::new(AgentsConfig::default())?));
/// assert!(handlers.has_type("agent") && handlers.has_type("orchestration"));
/// # Ok::<(), roomkit_graph_ai::AgentsError>(())
/// ```
pub fn register(handlers: Handlers, agents: Arc<Agents>) -> Handlers {
    handlers
        .with("agent", AgentHandler::new(Arc::clone(&agents)))
        .with("orchestration", OrchestrationHandler::new(agents))
}
