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
}
