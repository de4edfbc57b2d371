//! The `agent` node: one agent answers one prompt, as text or as a JSON
//! object that fits a schema.

use std::sync::Arc;

use async_trait::async_trait;
use roomkit_graph::{HandlerError, Node, NodeHandler, NodeResult, Scope};
use serde_json::{Map, Value, json};

use crate::config::Agents;
use crate::error::AiError;
use crate::message::Message;
use crate::schema::OutputSchema;
use crate::session::{DEFAULT_MAX_TOOL_ROUNDS, Session, Turn};

/// Extra replies asked for when a reply does not fit `output_schema`, unless
/// the node sets `schema_retries`.
const DEFAULT_SCHEMA_RETRIES: u32 = 2;

/// Serves `agent` nodes.
///
/// Configuration:
/// - `agent_id` (required): the agent, as declared in the agents file;
/// - `prompt_template`: the prompt, with `{{path}}` placeholders (default: the
///   previous node's output);
/// - `output_schema`: a JSON Schema; the reply must then be a JSON object that
///   fits it, and that object is the node's output;
/// - `schema_retries` (default 2): how many more replies are asked for, each
///   told what was wrong, before the node fails naming the schema error;
/// - `max_tool_rounds` (default 10): tool-call rounds before the agent must answer.
///
/// The output is `{"text": reply}`, or the structured object. While the reply
/// streams, each piece is emitted as `{"type": "token", "agent", "text"}`;
/// each complete reply as `{"type": "agent_message", "agent", "text", "usage"}`
/// (`usage`: `{"input_tokens", "output_tokens"}` or null). A reply that only
/// calls tools emits no `agent_message`; each tool call it makes is emitted as
/// `{"type": "tool_call", "agent", "tool", "arguments"}`, and the tool's
/// function (see [`Agents::with_tool`]) runs before the agent is asked again.
///
/// ```
/// use std::sync::Arc;
/// use roomkit_graph::Handlers;
/// use roomkit_graph_ai::{AgentHandler, Agents};
///
/// let agents = Arc::new(Agents::from_json(r#"{"providers": {"local": {"kind": "openai"}}, "agents": []}"#)?);
/// let handlers = Handlers::builtin().with("agent", AgentHandler::new(agents));
/// assert!(handlers.has_type("agent"));
/// # Ok::<(), roomkit_graph_ai::AgentsError>(())
/// ```
#[derive(Clone, Debug)]
pub struct AgentHandler {
    agents: Arc<Agents>,
}

impl AgentHandler {
    /// A handler calling the agents of `agents`.
    pub fn new(agents: Arc<Agents>) -> Self {
        AgentHandler { agents }
    }
}

/// An agent node's configuration, read once per workflow.
#[derive(Debug)]
pub(crate) struct AgentNodeConfig {
    pub(crate) agent_id: String,
    schema: Option<OutputSchema>,
    schema_retries: u32,
    pub(crate) max_tool_rounds: u32,
}

impl AgentNodeConfig {
    /// Reads an agent node's configuration.
    pub(crate) fn read(config: &Map<String, Value>) -> Result<Self, AiError> {
        let invalid =
            |field: &str, message: &str| AiError::Config { field: field.into(), message: message.into() };
        let agent_id = match config.get("agent_id") {
            Some(Value::String(id)) => id.clone(),
            Some(_) => return Err(invalid("agent_id", "must be a string")),
            None => return Err(invalid("agent_id", "is required: the id of an agent in the agents file")),
        };
        let schema = match config.get("output_schema") {
            None | Some(Value::Null) => None,
            Some(schema) => Some(
                OutputSchema::compile(schema)
                    .map_err(|e| invalid("output_schema", &format!("not a usable JSON Schema: {e}")))?,
            ),
        };
        Ok(AgentNodeConfig {
            agent_id,
            schema,
            schema_retries: read_count(config, "schema_retries", DEFAULT_SCHEMA_RETRIES)?,
            max_tool_rounds: read_count(config, "max_tool_rounds", DEFAULT_MAX_TOOL_ROUNDS)?,
        })
    }
}

/// A non-negative integer setting, `default` when absent.
pub(crate) fn read_count(config: &Map<String, Value>, field: &str, default: u32) -> Result<u32, AiError> {
    match config.get(field) {
        None => Ok(default),
        Some(value) => value.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| AiError::Config {
            field: field.to_owned(),
            message: format!("must be a non-negative integer, not {value}"),
        }),
    }
}

/// The node's prompt: `prompt_template` rendered, else the previous node's
/// output as text.
pub(crate) fn prompt(scope: &Scope<'_>) -> Result<String, AiError> {
    if let Some(prompt) = scope.render("prompt_template")? {
        return Ok(prompt);
    }
    match scope.context().get("input") {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Null) | None => Err(AiError::Config {
            field: "prompt_template".into(),
            message: "is required when the node has no input from a previous node".into(),
        }),
        Some(value) => Ok(value.to_string()),
    }
}

#[async_trait]
impl NodeHandler for AgentHandler {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let config = scope.prepared(|node| AgentNodeConfig::read(&node.config).map_err(|e| e.to_string()));
        let config = match config.as_ref() {
            Ok(config) => config,
            Err(message) => return Err(HandlerError::execution(message.clone()).permanent()),
        };
        Ok(run(&self.agents, config, scope).await?)
    }
}

async fn run(agents: &Agents, config: &AgentNodeConfig, scope: &Scope<'_>) -> Result<NodeResult, AiError> {
    let mut session = Session::new(agents, scope, config.max_tool_rounds);
    let agent = session.agent(&config.agent_id, "agent_id")?;
    let mut prompt = prompt(scope)?;
    if let Some(schema) = &config.schema {
        prompt = format!("{prompt}\n\n{}", schema.instruction());
    }
    let mut conversation = vec![Message::User(prompt)];
    let tries = config.schema_retries + 1;
    for tried in 1..=tries {
        let text = match session.converse(agent, &mut conversation, &[]).await? {
            Turn::Answer(text) => text,
            // No node tools were offered, so every call was the agent's own.
            Turn::Handled { .. } => String::new(),
        };
        let Some(schema) = &config.schema else {
            return Ok(NodeResult::completed(json!({"text": text})));
        };
        match schema.check(&text) {
            Ok(object) => return Ok(NodeResult::completed(object)),
            Err(problem) if tried == tries => {
                return Err(AiError::Schema { agent: agent.id.clone(), tries, problem });
            }
            Err(problem) => conversation.push(Message::User(format!(
                "Your reply does not fit the schema: {problem}\n\n{}",
                schema.instruction()
            ))),
        }
    }
    Err(AiError::Schema { agent: agent.id.clone(), tries, problem: "no reply".into() })
}
