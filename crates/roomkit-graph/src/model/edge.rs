//! Edges: the transitions between nodes.

use serde::{Deserialize, Deserializer, Serialize};
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
    /// An empty condition `{}` in JSON is no condition either (kept as a
    /// [`Condition::Lenient`] without reading, so it is written back and reported).
    #[serde(default, deserialize_with = "condition", skip_serializing_if = "Option::is_none")]
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

    /// The condition as routing reads it: none for an unconditional edge
    /// (also one written `"condition": {}`), and a leniently read condition's reading.
    ///
    /// ```
    /// use roomkit_graph::Edge;
    /// use serde_json::json;
    ///
    /// let edge: Edge = serde_json::from_value(json!({"source": "a", "target": "b", "condition": {}}))?;
    /// assert!(edge.condition.is_some());
    /// assert!(edge.route_condition().is_none());
    /// assert_eq!(serde_json::to_value(&edge)?["condition"], json!({}));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn route_condition(&self) -> Option<&Condition> {
        match self.condition.as_ref()? {
            Condition::Lenient { reading, .. } => reading.as_deref(),
            condition => Some(condition),
        }
    }
}

/// An edge's condition: `{}` is none, read leniently (see [`Edge::condition`]).
fn condition<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Condition>, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.map(|value| match value {
        Value::Object(map) if map.is_empty() => Condition::Lenient {
            raw: Value::Object(map),
            reading: None,
            reason: "the condition is empty: the edge is taken as an unconditional edge".to_owned(),
        },
        value => Condition::from_value(&value),
    }))
}
