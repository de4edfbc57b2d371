//! What goes out live only, never kept: the tokens of an agent's reply as it
//! is written.

use serde_json::Value;

/// A payload that only goes out live, never committed: a run's node is
/// writing (a token of an agent's reply, say).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveEvent {
    /// The run.
    pub run_id: String,
    /// The node that sent it.
    pub node_id: String,
    /// What it sent, as JSON (`{"type": "token", "agent", "text"}`).
    pub payload: Value,
}
