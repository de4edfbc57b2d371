//! What handlers tell whoever runs the graph while a node runs, apart from
//! the node's result: typed, so a runner need not guess from JSON.

use serde_json::{Value, json};

/// A message from a running node to whoever runs the graph
/// ([`Scope::signal`](crate::Scope::signal)). In a stream's custom mode each
/// shows as its [`to_value`](Signal::to_value); a durable runner keeps agent
/// messages and notifications in the run's transcript and sends tokens out
/// live only.
///
/// ```
/// use roomkit_graph::Signal;
/// use serde_json::json;
///
/// let token = Signal::Token { agent: "writer".into(), text: "Hel".into() };
/// assert_eq!(token.to_value(), json!({"type": "token", "agent": "writer", "text": "Hel"}));
/// assert!(!token.is_kept());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// A piece of an agent's reply as it is written: sent live, never kept
    /// (the finished reply is).
    Token {
        /// The agent writing.
        agent: String,
        /// The piece of text.
        text: String,
    },
    /// An agent's finished reply.
    AgentMessage {
        /// The agent.
        agent: String,
        /// What it said.
        text: String,
        /// What the model provider counted (tokens in and out), if it said.
        usage: Option<Value>,
    },
    /// A notification delivered through a channel.
    NotificationSent {
        /// The channel's name.
        channel: String,
        /// The text delivered.
        text: String,
    },
}

impl Signal {
    /// The signal as JSON, with its kind under `"type"`: `token`,
    /// `agent_message` or `notification_sent`.
    pub fn to_value(&self) -> Value {
        match self {
            Signal::Token { agent, text } => json!({"type": "token", "agent": agent, "text": text}),
            Signal::AgentMessage { agent, text, usage } => {
                let mut value = json!({"type": "agent_message", "agent": agent, "text": text});
                if let Some(usage) = usage {
                    value["usage"] = usage.clone();
                }
                value
            }
            Signal::NotificationSent { channel, text } => {
                json!({"type": "notification_sent", "channel": channel, "text": text})
            }
        }
    }

    /// Whether a run's record keeps it (all but tokens).
    pub fn is_kept(&self) -> bool {
        !matches!(self, Signal::Token { .. })
    }
}

/// Something a node sent while it ran: a [`Signal`], or a payload
/// [`emitted`](crate::Scope::emit) for the custom stream mode.
#[derive(Clone, Debug, PartialEq)]
pub enum Sent {
    /// A typed signal.
    Signal(Signal),
    /// A payload of the handler's own.
    Custom(Value),
}

/// What a node sent while a step ran, attributed to the node that sent it
/// (a parallel node's child, say).
#[derive(Clone, Debug, PartialEq)]
pub struct Emitted {
    /// The node that sent it.
    pub node_id: String,
    /// What it sent.
    pub sent: Sent,
}
