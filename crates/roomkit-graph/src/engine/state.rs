use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A run's saved state: everything needed to continue it in another process.
///
/// ```
/// use roomkit_graph::EngineState;
/// use serde_json::json;
///
/// let state: EngineState = serde_json::from_value(json!({
///     "context": {"start": {"output": {"input": {"issue_id": "123"}}}},
///     "current_node_id": "review",
///     "previous_node_id": "start",
///     "waiting": true,
///     "run_id": "6f1c0a4e"
/// }))?;
/// assert!(state.waiting);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineState {
    /// Every stored output: `{node_id: {"output": value}}`.
    pub context: Map<String, Value>,
    /// The node the run is on; null once the run is complete.
    pub current_node_id: Option<String>,
    /// The node the run last left along an edge.
    pub previous_node_id: Option<String>,
    /// Whether the run waits for outside input on its current node.
    pub waiting: bool,
    /// The run's id (a fresh one is made when absent).
    #[serde(default)]
    pub run_id: String,
    /// The children of the parallel node the run waits on that still wait
    /// for an answer, in node order; written only while some do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// The child runs of the subgraph nodes the run stands on, by subgraph
    /// node id: written only while one is under way (it waits, or was
    /// answered and goes on at the next step).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub children: BTreeMap<String, ChildState>,
}

/// A subgraph node's child run, saved: which graph version it runs and
/// where it stands.
///
/// ```
/// use roomkit_graph::{ChildState, EngineState};
/// use serde_json::json;
///
/// let state: EngineState = serde_json::from_value(json!({
///     "context": {"start": {"output": {"input": {}}}},
///     "current_node_id": "checks",
///     "previous_node_id": "start",
///     "waiting": true,
///     "children": {"checks": {"graph_id": "review", "version": 2, "state": {
///         "context": {"start": {"output": {"input": {"doc": 7}}}},
///         "current_node_id": "approve",
///         "previous_node_id": "start",
///         "waiting": true
///     }}}
/// }))?;
/// let child: &ChildState = &state.children["checks"];
/// assert_eq!((child.graph_id.as_str(), child.version), ("review", 2));
/// assert_eq!(child.state.current_node_id.as_deref(), Some("approve"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildState {
    /// The graph the child runs.
    pub graph_id: String,
    /// Its version, as it was when the parent reached the node.
    pub version: u32,
    /// The child run's own state.
    pub state: Box<EngineState>,
}
