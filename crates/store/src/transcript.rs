//! A run's transcript: what happened in it, in order, as entries that read
//! like a chat thread, and [`TranscriptStore`], where it is read and followed.

use std::fmt::Write as _;

use async_trait::async_trait;
use futures_core::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Millis, Result};

/// What happened in a run: one entry of its transcript.
///
/// Written as JSON with a `type` tag:
///
/// ```
/// use roomkit_graph_store::Entry;
/// use serde_json::json;
///
/// let entry = Entry::NodeWaiting {
///     node_id: "review".into(),
///     prompt: Some("Approve this draft?".into()),
///     actions: vec!["approve".into(), "reject".into()],
/// };
/// assert_eq!(
///     serde_json::to_value(&entry)?,
///     json!({"type": "node_waiting", "node_id": "review",
///            "prompt": "Approve this draft?", "actions": ["approve", "reject"]})
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// The run was started with this trigger data.
    RunStarted {
        /// The graph it runs.
        graph_id: String,
        /// The graph version it pinned.
        graph_version: u64,
        /// The trigger data.
        trigger: Value,
    },
    /// A node began (attempt 1, 2... with retries).
    NodeStarted {
        /// The node.
        node_id: String,
        /// Its type.
        node_type: String,
        /// Which attempt this is, from 1.
        attempt: u32,
    },
    /// A node completed with this output.
    NodeCompleted {
        /// The node.
        node_id: String,
        /// Its output (null when it wrote none).
        output: Value,
    },
    /// A node waits for a person: what it asks and which actions it offers.
    NodeWaiting {
        /// The node.
        node_id: String,
        /// What it asks.
        prompt: Option<String>,
        /// The answers it accepts (any when empty).
        actions: Vec<String>,
    },
    /// A waiting node was answered.
    AnswerReceived {
        /// The node.
        node_id: String,
        /// Who answered, when known.
        by: Option<String>,
        /// The answer.
        data: Value,
    },
    /// A notification went out.
    NotificationSent {
        /// The node.
        node_id: String,
        /// Where it went (slack, email, webhook...).
        channel: String,
        /// What it said.
        text: String,
    },
    /// An agent replied.
    AgentMessage {
        /// The node.
        node_id: String,
        /// The agent.
        agent: String,
        /// The reply.
        text: String,
        /// Token usage, as the provider reported it.
        usage: Option<Value>,
    },
    /// A handler emitted a custom payload.
    Custom {
        /// The node.
        node_id: String,
        /// The payload.
        payload: Value,
    },
    /// A node attempt failed.
    NodeFailed {
        /// The node.
        node_id: String,
        /// Which attempt failed, from 1.
        attempt: u32,
        /// Why.
        error: String,
    },
    /// A failed node's error edge took the run on: the failure is kept under
    /// the node's `error`.
    ErrorRouted {
        /// The node that failed.
        node_id: String,
        /// Where the run went.
        target: String,
    },
    /// A waiting point closed without an answer: another child of the same
    /// parallel node (`join: "any"`) was answered first.
    WaitingClosed {
        /// The node that no longer waits.
        node_id: String,
    },
    /// A failed node will be tried again at `at`.
    RetryScheduled {
        /// The node.
        node_id: String,
        /// The attempt that will run, from 2.
        attempt: u32,
        /// When.
        retry_at: Millis,
    },
    /// The run finished.
    RunCompleted,
    /// The run stopped on an error.
    RunFailed {
        /// Why.
        error: String,
    },
    /// The run was cancelled.
    RunCancelled {
        /// Why, when given.
        reason: Option<String>,
    },
}

impl Entry {
    /// Whether the run is over after this entry.
    pub fn is_final(&self) -> bool {
        matches!(self, Entry::RunCompleted | Entry::RunFailed { .. } | Entry::RunCancelled { .. })
    }
}

/// A transcript entry as stored: its run, its position and when it was committed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEvent {
    /// The run (the room).
    pub run_id: String,
    /// Its position in the run's transcript: 1, 2, 3... with no gap.
    pub seq: u64,
    /// When it was committed.
    pub at: Millis,
    /// What happened.
    #[serde(flatten)]
    pub entry: Entry,
}

/// Where transcripts are read, a page at a time or live. A run's transcript
/// is appended by the commits of [`RunStore`](crate::RunStore).
#[async_trait]
pub trait TranscriptStore: Send + Sync {
    /// Up to `limit` transcript events of a run with a sequence number above
    /// `after`, in order.
    async fn transcript(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<TranscriptEvent>>;

    /// The run's transcript from sequence number `after` (exclusive), then every
    /// new event as it is committed, by this process or another: no gap and no
    /// duplicate at the seam. Ends after a final event (run completed, failed or
    /// cancelled), and after yielding an error (an unknown run, say).
    fn follow(&self, run_id: &str, after: u64) -> BoxStream<'static, Result<TranscriptEvent>>;
}

/// Renders a transcript as plain text, one line per event, like a chat thread.
///
/// ```
/// use roomkit_graph_store::{Entry, TranscriptEvent, render_text};
/// use serde_json::json;
///
/// let event = |seq, entry| TranscriptEvent { run_id: "r1".into(), seq, at: 3_723_000, entry };
/// let text = render_text(&[
///     event(1, Entry::RunStarted { graph_id: "review".into(), graph_version: 2, trigger: json!({"topic": "rust"}) }),
///     event(2, Entry::NodeWaiting { node_id: "review".into(), prompt: Some("Approve?".into()), actions: vec!["approve".into(), "reject".into()] }),
///     event(3, Entry::AnswerReceived { node_id: "review".into(), by: Some("ada".into()), data: json!({"action": "approve"}) }),
///     event(4, Entry::RunCompleted),
/// ]);
/// assert_eq!(text, "\
/// 01:02:03 #1 ▶ run started: review v2 {\"topic\":\"rust\"}
/// 01:02:03 #2 review ⏸ Approve? [approve / reject]
/// 01:02:03 #3 ada → review: {\"action\":\"approve\"}
/// 01:02:03 #4 ■ run completed
/// ");
/// ```
pub fn render_text(events: &[TranscriptEvent]) -> String {
    let mut out = String::new();
    for event in events {
        let _ = writeln!(out, "{} #{} {}", clock_time(event.at), event.seq, line(&event.entry));
    }
    out
}

fn line(entry: &Entry) -> String {
    match entry {
        Entry::RunStarted { graph_id, graph_version, trigger } => {
            format!("▶ run started: {graph_id} v{graph_version} {trigger}")
        }
        Entry::NodeStarted { node_id, node_type, attempt: 1 } => format!("{node_id} … {node_type}"),
        Entry::NodeStarted { node_id, node_type, attempt } => {
            format!("{node_id} … {node_type} (attempt {attempt})")
        }
        Entry::NodeCompleted { node_id, output: Value::Null } => format!("{node_id} ✓"),
        Entry::NodeCompleted { node_id, output } => format!("{node_id} ✓ {}", short(output)),
        Entry::NodeWaiting { node_id, prompt, actions } => {
            let mut text = format!("{node_id} ⏸ {}", prompt.as_deref().unwrap_or("waiting for an answer"));
            if !actions.is_empty() {
                let _ = write!(text, " [{}]", actions.join(" / "));
            }
            text
        }
        Entry::AnswerReceived { node_id, by, data } => {
            format!("{} → {node_id}: {}", by.as_deref().unwrap_or("someone"), short(data))
        }
        Entry::NotificationSent { node_id, channel, text } => format!("{node_id} 📣 [{channel}] {text}"),
        Entry::AgentMessage { agent, text, .. } => format!("{agent}: {text}"),
        Entry::Custom { node_id, payload } => format!("{node_id} · {}", short(payload)),
        Entry::NodeFailed { node_id, attempt, error } => format!("{node_id} ✗ attempt {attempt}: {error}"),
        Entry::ErrorRouted { node_id, target } => format!("{node_id} ↪ error route to {target}"),
        Entry::WaitingClosed { node_id } => format!("{node_id} ⏹ no longer waits: another answer came first"),
        Entry::RetryScheduled { node_id, attempt, retry_at } => {
            format!("{node_id} ↻ attempt {attempt} at {}", clock_time(*retry_at))
        }
        Entry::RunCompleted => "■ run completed".to_owned(),
        Entry::RunFailed { error } => format!("■ run failed: {error}"),
        Entry::RunCancelled { reason: Some(reason) } => format!("■ run cancelled: {reason}"),
        Entry::RunCancelled { reason: None } => "■ run cancelled".to_owned(),
    }
}

/// A value as JSON, cut to a readable length.
fn short(value: &Value) -> String {
    const MAX: usize = 160;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `HH:MM:SS` (UTC) of a time in milliseconds.
fn clock_time(at: Millis) -> String {
    let seconds = at.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_values_are_cut_and_times_wrap_at_midnight() {
        let long = json!({"text": "x".repeat(500)});
        assert!(short(&long).chars().count() <= 161);
        assert!(short(&long).ends_with('…'));
        assert_eq!(clock_time(86_400_000 + 61_000), "00:01:01");
    }

    #[test]
    fn events_round_trip_through_json_with_a_flat_type_tag() {
        let event = TranscriptEvent {
            run_id: "r".into(),
            seq: 7,
            at: 1,
            entry: Entry::RetryScheduled { node_id: "a".into(), attempt: 2, retry_at: 5 },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            json!({"run_id": "r", "seq": 7, "at": 1, "type": "retry_scheduled", "node_id": "a", "attempt": 2, "retry_at": 5})
        );
        assert_eq!(serde_json::from_value::<TranscriptEvent>(json).unwrap(), event);
    }
}
