//! A run's transcript: what happened in it, in order, as entries that read
//! like a chat thread, and [`TranscriptStore`], where it is read and followed.

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
        /// The run and entry it was forked from, for a fork.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forked_from: Option<crate::Origin>,
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
    /// A node kept this part of its work as its step went on (an agent's
    /// turn, with the messages before it): a step re-run after a crash
    /// takes the parts kept back instead of doing them again.
    Progress {
        /// The node.
        node_id: String,
        /// What it kept.
        record: Value,
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
    /// A subgraph node started a child run (a run of its own), or a node
    /// went to run in a room of its own (an orchestration), and the run
    /// waits on it.
    ChildStarted {
        /// The node.
        node_id: String,
        /// The child run.
        run_id: String,
        /// The graph it runs.
        graph_id: String,
        /// The graph version it pinned.
        graph_version: u64,
        /// Whether the child runs the node itself, alone (a room), rather
        /// than a graph of its own.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        runs_node: bool,
    },
    /// The child run a subgraph node waits on is over: the run goes on.
    ChildFinished {
        /// The subgraph node.
        node_id: String,
        /// The child run.
        run_id: String,
        /// How it ended: completed, failed or cancelled.
        status: crate::RunStatus,
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

    /// The run as it stood at its transcript entry `seq`: as the commit that
    /// appended the entry left it. [`StoreError::NotFound`](crate::StoreError::NotFound)
    /// for an unknown run; [`StoreError::Invalid`](crate::StoreError::Invalid)
    /// for an entry it does not have, or one committed before positions were
    /// kept ([`UNKEPT_POSITION`](crate::UNKEPT_POSITION)).
    async fn run_at(&self, run_id: &str, seq: u64) -> Result<crate::RunAt>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
