//! The swarm strategy: agents pass one conversation to each other through a
//! `handoff(agent, message)` tool; the agent that answers without handing off
//! ends it.

use serde_json::{Value, json};

use crate::error::AiError;
use crate::message::{Message, ToolResult, ToolSpec};
use crate::session::{Session, Turn};

/// The tool an agent hands off with.
fn handoff_tool(session: &Session<'_>, agents: &[String]) -> ToolSpec {
    let listed: Vec<String> = agents
        .iter()
        .map(|id| match session.agent(id, "agents").ok().and_then(|agent| agent.description.as_deref()) {
            Some(description) => format!("{id} ({description})"),
            None => id.clone(),
        })
        .collect();
    ToolSpec::new(
        "handoff",
        format!(
            "Hand the conversation to another agent better placed to continue it. Agents: {}. \
             Answer without calling it to finish.",
            listed.join(", ")
        ),
    )
    .with_parameters(json!({
        "type": "object",
        "properties": {
            "agent": {"type": "string", "enum": agents, "description": "Who takes over"},
            "message": {"type": "string", "description": "What they should know"}
        },
        "required": ["agent"]
    }))
}

/// Runs the swarm on `task`, starting with `entry`.
pub(super) async fn run(
    session: &mut Session<'_>,
    agents: &[String],
    entry: &str,
    task: String,
    max_rounds: u32,
) -> Result<String, AiError> {
    let tools = [handoff_tool(session, agents)];
    let mut active = session.agent(entry, "entry")?;
    let mut conversation = vec![Message::User(task)];
    for _ in 0..max_rounds {
        let (calls, mut results) = match session.converse(active, &mut conversation, &tools).await? {
            Turn::Answer(text) => return Ok(text),
            Turn::Handled { calls, results } => (calls, results),
        };
        let mut next = None;
        for call in calls {
            let target = call.arguments.get("agent").and_then(Value::as_str).unwrap_or_default();
            let (content, is_error) = if next.is_some() {
                ("ignored: the conversation was already handed off".to_owned(), true)
            } else if target == active.id {
                (format!("you are {target}: hand off to another agent, or answer"), true)
            } else if agents.iter().any(|id| id == target) {
                next = Some(session.agent(target, "agents")?);
                (format!("{} handed the conversation to {target}", active.id), false)
            } else {
                (format!("there is no agent {target:?}; agents: {}", agents.join(", ")), true)
            };
            results.push(ToolResult { call_id: call.id.clone(), content, is_error });
        }
        conversation.push(Message::ToolResults(results));
        if let Some(next) = next {
            active = next;
        }
    }
    Err(AiError::Rounds { strategy: "swarm", rounds: max_rounds })
}
