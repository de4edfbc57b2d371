//! The `orchestration` node: several agents working on one task, by one of
//! four strategies (one file each).

mod loop_until;
mod pipeline;
mod supervisor;
mod swarm;

use std::sync::Arc;

use async_trait::async_trait;
use roomkit_graph::{Condition, HandlerError, Node, NodeHandler, NodeResult, Scope};
use serde_json::{Map, Value, json};

use crate::agent_node::read_count;
use crate::config::Agents;
use crate::error::AiError;
use crate::session::{DEFAULT_MAX_TOOL_ROUNDS, Session};

/// Serves `orchestration` nodes.
///
/// Configuration: `strategy` and the agents it uses, `prompt_template` (the
/// task, with `{{path}}` placeholders; default: the previous node's output),
/// and `max_tool_rounds` (default 10) for the agents' own tools.
///
/// - `"pipeline"`, `agents: [a, b, ...]`: each agent in turn, the first given
///   the task, each next one the previous one's reply.
/// - `"loop"`, `agent: a`: the agent answers, then is asked again with
///   `loop_prompt` (default `"Continue."`; `{{input}}` is its last reply) in
///   the same conversation, until the `until` condition holds or after
///   `max_rounds` replies (default 5). In `until` and `loop_prompt`, `input` is
///   the last reply: parsed when it is JSON, else its text; other paths read
///   the run's context.
/// - `"supervisor"`, `supervisor: s`, `workers: [w, ...]`: the supervisor gets
///   a `delegate(worker, task)` tool; each call runs the worker on the task and
///   returns its reply as the tool's result. It ends when the supervisor
///   answers without calling a tool; at most `max_rounds` supervisor replies
///   (default 10).
/// - `"swarm"`, `agents: [a, b, ...]`, `entry` (default the first): the active
///   agent gets a `handoff(agent, message)` tool that passes the conversation
///   to another agent. It ends when the active agent answers without handing
///   off; at most `max_rounds` replies (default 10).
///
/// The output is `{"text": final reply, "messages": [{"agent", "text"}, ...]}`.
/// Every reply is emitted as an `agent_message` event, its pieces as `token`
/// events, as for [`AgentHandler`](crate::AgentHandler).
///
/// In a durable runner the node runs as a child run of its own (see
/// [`NodeHandler::runs_in_own_room`]; not as a child of a parallel node,
/// where it runs in the parallel node's step): its transcript holds each
/// agent's turn as a message from that agent, committed as the turn ends,
/// and a run picked up after a crash goes on at the turn that was under way.
/// Its `retry` runs again in that room, each attempt from its first turn.
///
/// ```
/// use std::sync::Arc;
/// use roomkit_graph::{Graph, GraphCheck, Node, Trigger};
/// use roomkit_graph_ai::{AgentCheck, Agents, OrchestrationHandler};
/// use serde_json::json;
///
/// let agents = Arc::new(Agents::from_json(r#"{
///   "providers": {"local": {"kind": "openai"}},
///   "agents": [{"id": "writer", "provider": "local", "model": "m"},
///              {"id": "critic", "provider": "local", "model": "m"}]
/// }"#)?);
/// let node = Node::new("review", "orchestration").with_config(json!({
///     "strategy": "loop",
///     "agent": "writer",
///     "prompt_template": "Write a haiku about {{trigger.topic}}.",
///     "loop_prompt": "Make it better. Say DONE when it is perfect.",
///     "until": {"type": "field", "path": "input", "op": "contains", "value": "DONE"},
///     "max_rounds": 3
/// }));
/// let mut graph = Graph::new("g", "G", Trigger::manual());
/// graph.add_nodes([node])?;
/// assert!(AgentCheck::new(Arc::clone(&agents)).check(&graph).is_empty());
/// let _handler = OrchestrationHandler::new(agents);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct OrchestrationHandler {
    agents: Arc<Agents>,
}

impl OrchestrationHandler {
    /// A handler calling the agents of `agents`.
    pub fn new(agents: Arc<Agents>) -> Self {
        OrchestrationHandler { agents }
    }
}

/// How the agents of an orchestration node work together.
#[derive(Debug)]
pub(crate) enum Strategy {
    Pipeline { agents: Vec<String> },
    Loop { agent: String, until: Option<Condition>, loop_prompt: Option<String>, max_rounds: u32 },
    Supervisor { supervisor: String, workers: Vec<String>, max_rounds: u32 },
    Swarm { agents: Vec<String>, entry: String, max_rounds: u32 },
}

/// An orchestration node's configuration, read once per workflow.
#[derive(Debug)]
pub(crate) struct OrchestrationConfig {
    pub(crate) strategy: Strategy,
    max_tool_rounds: u32,
}

impl OrchestrationConfig {
    /// Reads an orchestration node's configuration.
    pub(crate) fn read(config: &Map<String, Value>) -> Result<Self, AiError> {
        let invalid = |field: &str, message: String| AiError::Config { field: field.into(), message };
        let text = |field: &str| match config.get(field) {
            Some(Value::String(text)) => Ok(Some(text.clone())),
            None => Ok(None),
            Some(other) => Err(invalid(field, format!("must be an agent id (a string), not {other}"))),
        };
        let required = |field: &str| text(field)?.ok_or_else(|| invalid(field, "is required".into()));
        let list = |field: &str| -> Result<Vec<String>, AiError> {
            let items = match config.get(field) {
                Some(Value::Array(items)) if !items.is_empty() => items,
                Some(_) => return Err(invalid(field, "must be a non-empty array of agent ids".into())),
                None => return Err(invalid(field, "is required: a non-empty array of agent ids".into())),
            };
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid(field, "must hold agent ids (strings)".into()))
        };
        let strategy = match config.get("strategy").and_then(Value::as_str) {
            Some("pipeline") => Strategy::Pipeline { agents: list("agents")? },
            Some("loop") => {
                let agent = match (text("agent")?, config.get("agents")) {
                    (Some(agent), _) => agent,
                    (None, Some(_)) => match list("agents")?.as_slice() {
                        [agent] => agent.clone(),
                        _ => {
                            return Err(invalid(
                                "agents",
                                "a loop repeats one agent: name it in \"agent\"".into(),
                            ));
                        }
                    },
                    (None, None) => {
                        return Err(invalid("agent", "is required: the agent that repeats".into()));
                    }
                };
                let until = config.get("until").map(Condition::from_value);
                if let Some(problem) = until.as_ref().and_then(Condition::problem) {
                    return Err(invalid("until", problem));
                }
                let loop_prompt = match config.get("loop_prompt") {
                    None => None,
                    Some(Value::String(text)) => Some(text.clone()),
                    Some(other) => {
                        return Err(invalid("loop_prompt", format!("must be a string, not {other}")));
                    }
                };
                Strategy::Loop { agent, until, loop_prompt, max_rounds: rounds(config, 5)? }
            }
            Some("supervisor") => Strategy::Supervisor {
                supervisor: required("supervisor")?,
                workers: list("workers")?,
                max_rounds: rounds(config, 10)?,
            },
            Some("swarm") => {
                let agents = list("agents")?;
                let entry = match text("entry")? {
                    Some(entry) if agents.contains(&entry) => entry,
                    Some(entry) => {
                        return Err(invalid("entry", format!("{entry:?} is not one of \"agents\"")));
                    }
                    None => agents[0].clone(),
                };
                Strategy::Swarm { agents, entry, max_rounds: rounds(config, 10)? }
            }
            Some(other) => {
                return Err(invalid(
                    "strategy",
                    format!("unknown strategy {other:?} (expected pipeline, loop, supervisor or swarm)"),
                ));
            }
            None => {
                return Err(invalid("strategy", "is required: pipeline, loop, supervisor or swarm".into()));
            }
        };
        Ok(OrchestrationConfig {
            strategy,
            max_tool_rounds: read_count(config, "max_tool_rounds", DEFAULT_MAX_TOOL_ROUNDS)?,
        })
    }

    /// Every agent the node names, with the field naming it.
    pub(crate) fn agent_ids(&self) -> Vec<(&'static str, &str)> {
        match &self.strategy {
            Strategy::Pipeline { agents } | Strategy::Swarm { agents, .. } => {
                agents.iter().map(|id| ("agents", id.as_str())).collect()
            }
            Strategy::Loop { agent, .. } => vec![("agent", agent.as_str())],
            Strategy::Supervisor { supervisor, workers, .. } => {
                std::iter::once(("supervisor", supervisor.as_str()))
                    .chain(workers.iter().map(|id| ("workers", id.as_str())))
                    .collect()
            }
        }
    }
}

/// `max_rounds`, at least 1.
fn rounds(config: &Map<String, Value>, default: u32) -> Result<u32, AiError> {
    match read_count(config, "max_rounds", default)? {
        0 => Err(AiError::Config { field: "max_rounds".into(), message: "must be at least 1".into() }),
        rounds => Ok(rounds),
    }
}

#[async_trait]
impl NodeHandler for OrchestrationHandler {
    /// The agents' turns run in a room of their own: a durable runner runs
    /// the node as a child run whose transcript holds each turn, committed
    /// as it ends, so that a crash costs the turn under way at most.
    fn runs_in_own_room(&self) -> bool {
        true
    }

    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let config =
            scope.prepared(|node| OrchestrationConfig::read(&node.config).map_err(|e| e.to_string()));
        let config = match config.as_ref() {
            Ok(config) => config,
            Err(message) => return Err(HandlerError::execution(message.clone()).permanent()),
        };
        let mut session = Session::new(&self.agents, scope, config.max_tool_rounds);
        // Every named agent must exist before any is called.
        for (field, id) in config.agent_ids() {
            session.agent(id, field)?;
        }
        let task = crate::agent_node::prompt(scope)?;
        let text = match &config.strategy {
            Strategy::Pipeline { agents } => pipeline::run(&mut session, agents, task).await?,
            Strategy::Loop { agent, until, loop_prompt, max_rounds } => {
                loop_until::run(
                    &mut session,
                    scope,
                    agent,
                    task,
                    until.as_ref(),
                    loop_prompt.as_deref(),
                    *max_rounds,
                )
                .await?
            }
            Strategy::Supervisor { supervisor, workers, max_rounds } => {
                supervisor::run(&mut session, supervisor, workers, task, *max_rounds).await?
            }
            Strategy::Swarm { agents, entry, max_rounds } => {
                swarm::run(&mut session, agents, entry, task, *max_rounds).await?
            }
        };
        Ok(NodeResult::completed(json!({"text": text, "messages": session.messages})))
    }
}
