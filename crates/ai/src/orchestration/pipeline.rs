//! The pipeline strategy: agents in turn, each given the previous one's reply.

use crate::error::AiError;
use crate::message::Message;
use crate::session::{Session, Turn};

/// Runs `agents` in order on `task`; the last reply is the result.
pub(super) async fn run(
    session: &mut Session<'_>,
    agents: &[String],
    task: String,
) -> Result<String, AiError> {
    let mut input = task;
    for id in agents {
        let agent = session.agent(id, "agents")?;
        let mut conversation = vec![Message::User(input)];
        input = match session.converse(agent, &mut conversation, &[]).await? {
            Turn::Answer(text) => text,
            // No node tools were offered, so every call was the agent's own.
            Turn::Handled { .. } => String::new(),
        };
    }
    Ok(input)
}
