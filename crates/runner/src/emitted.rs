//! What handlers emit while a node runs, sorted into what the transcript keeps
//! and what only goes out live.
//!
//! Handlers emit JSON payloads ([`roomkit_graph::Scope::emit`]). Three shapes
//! have a meaning of their own:
//!
//! - `{"type": "agent_message", "agent": ID, "text": TEXT, "usage": ...}`: an
//!   agent's reply, kept as [`Entry::AgentMessage`];
//! - `{"type": "notification_sent", "channel": NAME, "text": TEXT}`: kept as
//!   [`Entry::NotificationSent`];
//! - `{"type": "token", ...}`: a piece of a reply being written. It is not kept
//!   (the finished reply is); it goes out live only ([`crate::Runner::live`]).
//!
//! Every other payload is kept as [`Entry::Custom`].

use roomkit_graph_store::Entry;
use serde_json::Value;

/// A payload that only goes out live, never committed: a run's node is
/// writing (a token of an agent's reply, say).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveEvent {
    /// The run.
    pub run_id: String,
    /// The node that emitted it.
    pub node_id: String,
    /// What it emitted.
    pub payload: Value,
}

/// The transcript entry for a payload `node_id` emitted, or `None` for one
/// that only goes out live.
pub(crate) fn entry(node_id: String, payload: Value) -> Option<Entry> {
    let text = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_owned);
    match payload.get("type").and_then(Value::as_str) {
        Some("token") => None,
        Some("agent_message") => match (text("agent"), text("text")) {
            (Some(agent), Some(text)) => {
                let usage = payload.get("usage").filter(|usage| !usage.is_null()).cloned();
                Some(Entry::AgentMessage { node_id, agent, text, usage })
            }
            _ => Some(Entry::Custom { node_id, payload }),
        },
        Some("notification_sent") => match (text("channel"), text("text")) {
            (Some(channel), Some(text)) => Some(Entry::NotificationSent { node_id, channel, text }),
            _ => Some(Entry::Custom { node_id, payload }),
        },
        _ => Some(Entry::Custom { node_id, payload }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_shapes_become_typed_entries_and_the_rest_stays_custom() {
        let message =
            json!({"type": "agent_message", "agent": "writer", "text": "Hi", "usage": {"output_tokens": 1}});
        assert_eq!(
            entry("draft".into(), message),
            Some(Entry::AgentMessage {
                node_id: "draft".into(),
                agent: "writer".into(),
                text: "Hi".into(),
                usage: Some(json!({"output_tokens": 1})),
            })
        );
        let sent = json!({"type": "notification_sent", "channel": "slack", "text": "Done"});
        assert_eq!(
            entry("notify".into(), sent),
            Some(Entry::NotificationSent {
                node_id: "notify".into(),
                channel: "slack".into(),
                text: "Done".into()
            })
        );
        assert_eq!(entry("draft".into(), json!({"type": "token", "text": "H"})), None);
        // A known type without its fields is kept as it came.
        let partial = json!({"type": "agent_message", "agent": "writer"});
        assert_eq!(
            entry("draft".into(), partial.clone()),
            Some(Entry::Custom { node_id: "draft".into(), payload: partial })
        );
        let other = json!({"kind": "tool_call", "tool": "search"});
        assert_eq!(
            entry("draft".into(), other.clone()),
            Some(Entry::Custom { node_id: "draft".into(), payload: other })
        );
    }
}
