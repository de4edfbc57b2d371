//! One node's conversations with its agents: each model call streams its text
//! as `token` events and ends with an `agent_message` event; an agent's own
//! function tools are run between calls.
//!
//! Each reply and each result of an agent's own tool is kept as the step's
//! progress ([`Scope::keep_progress`]) as soon as it is had: where a runner
//! keeps progress (an orchestration in a child run of its own), a step re-run
//! after a crash takes them back in order instead of calling the model or the
//! tool again, and goes on from the first one it does not have.

use roomkit_graph::{Scope, Signal};
use serde_json::{Value, json};

use crate::config::{AgentConfig, Agents};
use crate::error::AiError;
use crate::message::{ChatRequest, Message, Reply, ToolCall, ToolResult, ToolSpec};
use crate::provider;

/// The tool-call rounds one agent gets before it must answer, unless the node
/// sets `max_tool_rounds`.
pub(crate) const DEFAULT_MAX_TOOL_ROUNDS: u32 = 10;

/// How an agent's turn ended.
#[derive(Debug)]
pub(crate) enum Turn {
    /// It answered with text and called no tool.
    Answer(String),
    /// It called tools the node handles itself (`delegate`, `handoff`):
    /// `calls` are those; `results` hold the results of the agent's own tools
    /// called in the same reply. The node appends all results together.
    Handled { calls: Vec<ToolCall>, results: Vec<ToolResult> },
}

/// The node's agents and what they have said.
pub(crate) struct Session<'s> {
    agents: &'s Agents,
    scope: &'s Scope<'s>,
    max_tool_rounds: u32,
    /// Every complete reply with text, in order: `{"agent", "text"}`.
    pub(crate) messages: Vec<Value>,
    /// What an earlier go at the step kept and this one has not taken back yet.
    replay: std::slice::Iter<'s, Value>,
}

/// One record of the progress a session keeps: an agent's reply, or the
/// result of one of its own tools.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kept {
    Reply { agent: String, reply: Reply },
    ToolResult { agent: String, result: ToolResult },
}

impl<'s> Session<'s> {
    pub(crate) fn new(agents: &'s Agents, scope: &'s Scope<'s>, max_tool_rounds: u32) -> Self {
        Session { agents, scope, max_tool_rounds, messages: Vec::new(), replay: scope.progress().iter() }
    }

    /// The next record an earlier go kept, if any is left, checked to be
    /// what `agent` does now (`what`: "reply" or "tool result").
    fn replayed(&mut self, agent: &str, what: &str) -> Result<Option<Kept>, AiError> {
        let Some(record) = self.replay.next() else { return Ok(None) };
        let kept: Kept = serde_json::from_value(record.clone())
            .map_err(|error| AiError::Progress(format!("a kept turn cannot be read back: {error}")))?;
        let (by, kind) = match &kept {
            Kept::Reply { agent, .. } => (agent, "reply"),
            Kept::ToolResult { agent, .. } => (agent, "tool result"),
        };
        if by != agent || kind != what {
            return Err(AiError::Progress(format!(
                "the turns kept do not fit the conversation: a {kind} of agent {by:?} was kept where a {what} of agent {agent:?} comes"
            )));
        }
        Ok(Some(kept))
    }

    /// Keeps `kept` as the step's progress.
    async fn keep(&self, kept: Kept) -> Result<(), AiError> {
        let record = serde_json::to_value(&kept)
            .map_err(|error| AiError::Progress(format!("a turn cannot be kept: {error}")))?;
        self.scope.keep_progress(record).await.map_err(|error| AiError::Progress(error.to_string()))
    }

    /// The agent `id`, or a config error naming `field`.
    pub(crate) fn agent(&self, id: &str, field: &str) -> Result<&'s AgentConfig, AiError> {
        let agents: &'s Agents = self.agents;
        agents.agent(id).ok_or_else(|| AiError::Config {
            field: field.to_owned(),
            message: format!("no agent {id:?} (declared: {})", agents.ids().collect::<Vec<_>>().join(", ")),
        })
    }

    /// Runs `agent` on `conversation` until it answers or calls one of
    /// `node_tools`, running its own tools in between. Every reply is appended
    /// to `conversation`, and so are the results of its own tools, unless the
    /// turn ends [`Turn::Handled`].
    pub(crate) async fn converse(
        &mut self,
        agent: &AgentConfig,
        conversation: &mut Vec<Message>,
        node_tools: &[ToolSpec],
    ) -> Result<Turn, AiError> {
        let tools: Vec<ToolSpec> = agent.tools.iter().chain(node_tools).cloned().collect();
        for _ in 0..=self.max_tool_rounds {
            let reply = self.call(agent, conversation, &tools).await?;
            conversation.push(reply.to_message());
            if reply.tool_calls.is_empty() {
                return Ok(Turn::Answer(reply.text));
            }
            let mut results = Vec::with_capacity(reply.tool_calls.len());
            let mut handled = Vec::new();
            for call in reply.tool_calls {
                if node_tools.iter().any(|tool| tool.name == call.name) {
                    handled.push(call);
                } else {
                    results.push(self.run_tool(agent, &call).await?);
                }
            }
            if !handled.is_empty() {
                return Ok(Turn::Handled { calls: handled, results });
            }
            conversation.push(Message::ToolResults(results));
        }
        Err(AiError::ToolRounds { agent: agent.id.clone(), rounds: self.max_tool_rounds })
    }

    /// One model call: streams `token` events, then emits the reply as an
    /// `agent_message` (a reply that only calls tools emits `tool_call` events
    /// instead).
    async fn call(
        &mut self,
        agent: &AgentConfig,
        conversation: &[Message],
        tools: &[ToolSpec],
    ) -> Result<Reply, AiError> {
        let id = agent.id.as_str();
        if let Some(Kept::Reply { reply, .. }) = self.replayed(id, "reply")? {
            if !reply.text.is_empty() || reply.tool_calls.is_empty() {
                self.messages.push(json!({"agent": id, "text": reply.text}));
            }
            return Ok(reply);
        }
        let request = ChatRequest {
            model: &agent.model,
            system: agent.system_prompt.as_deref(),
            messages: conversation,
            tools,
            temperature: agent.temperature,
            max_tokens: agent.max_tokens,
        };
        let scope = self.scope;
        let mut on_text =
            |delta: &str| scope.signal(Signal::Token { agent: id.to_owned(), text: delta.to_owned() });
        let reply = provider::chat(self.agents, &agent.provider, &request, &mut on_text)
            .await
            .map_err(|source| AiError::Provider { agent: agent.id.clone(), source })?;
        for call in &reply.tool_calls {
            scope.emit(
                json!({"type": "tool_call", "agent": id, "tool": call.name, "arguments": call.arguments}),
            );
        }
        if !reply.text.is_empty() || reply.tool_calls.is_empty() {
            let usage = reply.usage.map(|usage| usage.to_json());
            scope.signal(Signal::AgentMessage { agent: id.to_owned(), text: reply.text.clone(), usage });
            self.messages.push(json!({"agent": id, "text": reply.text}));
        }
        self.keep(Kept::Reply { agent: id.to_owned(), reply: reply.clone() }).await?;
        Ok(reply)
    }

    /// Runs one of the agent's own tools, or takes back its result as an
    /// earlier go kept it.
    async fn run_tool(&mut self, agent: &AgentConfig, call: &ToolCall) -> Result<ToolResult, AiError> {
        if let Some(Kept::ToolResult { result, .. }) = self.replayed(&agent.id, "tool result")? {
            return Ok(result);
        }
        let result = self.call_tool(agent, call).await?;
        self.keep(Kept::ToolResult { agent: agent.id.clone(), result: result.clone() }).await?;
        Ok(result)
    }

    /// Runs one of the agent's own tools through its registered function.
    async fn call_tool(&self, agent: &AgentConfig, call: &ToolCall) -> Result<ToolResult, AiError> {
        let declared = agent.tools.iter().any(|tool| tool.name == call.name);
        let function = match self.agents.tool_function(&call.name) {
            Some(function) if declared => function,
            // The model named a tool it was not given: tell it so.
            _ if !declared => {
                return Ok(ToolResult {
                    call_id: call.id.clone(),
                    content: format!("there is no tool named {:?}", call.name),
                    is_error: true,
                });
            }
            _ => return Err(AiError::NoToolFunction { agent: agent.id.clone(), tool: call.name.clone() }),
        };
        let (content, is_error) = match function(call.arguments.clone()).await {
            Ok(Value::String(text)) => (text, false),
            Ok(value) => (value.to_string(), false),
            Err(message) => (message, true),
        };
        Ok(ToolResult { call_id: call.id.clone(), content, is_error })
    }
}
