//! Edges: the transitions between nodes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Condition;

/// A transition from `source` to `target`, taken when its condition holds.
///
/// An edge without a condition is the default way out of its source; an
/// [`Condition::otherwise`] edge is the explicit catch-all (see the routing rules
/// on [`crate::WorkflowEngine`]).
///
/// ```
/// use roomkit_graph::{Condition, Edge};
///
/// let edge = Edge::new("triage", "escalate")
///     .when(Condition::field("triage.output.severity").equals("critical"));
/// assert!(edge.condition.is_some());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// The node the edge leaves.
    pub source: String,
    /// The node the edge enters.
    pub target: String,
    /// When the edge is taken; none means always (as the default way out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// Free-form data kept with the edge.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl Edge {
    /// An unconditional edge.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Self {
        Edge { source: source.into(), target: target.into(), condition: None, metadata: Map::new() }
    }

    /// Sets the condition under which the edge is taken.
    pub fn when(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }
}
