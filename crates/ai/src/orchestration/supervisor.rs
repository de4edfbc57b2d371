//! The supervisor strategy: a supervisor agent hands tasks to workers through
//! a `delegate(worker, task)` tool and answers when it has what it needs.

use serde_json::{Value, json};

use crate::error::AiError;
use crate::message::{Message, ToolCall, ToolResult, ToolSpec};
use crate::session::{Session, Turn};

/// The tool the supervisor delegates with.
fn delegate_tool(session: &Session<'_>, workers: &[String]) -> ToolSpec {
    let listed: Vec<String> = workers
        .iter()
        .map(|id| match session.agent(id, "workers").ok().and_then(|agent| agent.description.as_deref()) {
            Some(description) => format!("{id} ({description})"),
            None => id.clone(),
        })
        .collect();
    ToolSpec::new(
        "delegate",
        format!(
            "Give a task to a worker and get its reply. Workers: {}. Call it as often as needed; \
             answer without calling it when you are done.",
            listed.join(", ")
        ),
    )
    .with_parameters(json!({
        "type": "object",
        "properties": {
            "worker": {"type": "string", "enum": workers, "description": "Which worker"},
            "task": {"type": "string", "description": "The task, with everything the worker needs to know"}
        },
        "required": ["worker", "task"]
    }))
}

/// Runs the supervisor on `task` until it answers without delegating.
pub(super) async fn run(
    session: &mut Session<'_>,
    supervisor: &str,
    workers: &[String],
    task: String,
    max_rounds: u32,
) -> Result<String, AiError> {
    let boss = session.agent(supervisor, "supervisor")?;
    let tools = [delegate_tool(session, workers)];
    let mut conversation = vec![Message::User(task)];
    for _ in 0..max_rounds {
        let (calls, mut results) = match session.converse(boss, &mut conversation, &tools).await? {
            Turn::Answer(text) => return Ok(text),
            Turn::Handled { calls, results } => (calls, results),
        };
        for call in calls {
            results.push(delegate(session, workers, &call).await?);
        }
        conversation.push(Message::ToolResults(results));
    }
    Err(AiError::Rounds { strategy: "supervisor", rounds: max_rounds })
}

/// Runs one `delegate` call: the worker's reply, or what was wrong with the call.
async fn delegate(
    session: &mut Session<'_>,
    workers: &[String],
    call: &ToolCall,
) -> Result<ToolResult, AiError> {
    let text = |key: &str| call.arguments.get(key).and_then(Value::as_str);
    let refuse = |content: String| ToolResult { call_id: call.id.clone(), content, is_error: true };
    let Some(worker) = text("worker") else {
        return Ok(refuse("delegate needs a \"worker\"".into()));
    };
    if !workers.iter().any(|id| id == worker) {
        return Ok(refuse(format!("there is no worker {worker:?}; workers: {}", workers.join(", "))));
    }
    let Some(task) = text("task") else {
        return Ok(refuse("delegate needs a \"task\"".into()));
    };
    let agent = session.agent(worker, "workers")?;
    let mut conversation = vec![Message::User(task.to_owned())];
    let reply = match session.converse(agent, &mut conversation, &[]).await? {
        Turn::Answer(text) => text,
        Turn::Handled { .. } => String::new(),
    };
    Ok(ToolResult { call_id: call.id.clone(), content: reply, is_error: false })
}
