//! A step's progress, kept as it goes: a long node (agents taking turns,
//! say) keeps each finished part with [`Scope::keep_progress`]; a durable
//! runner commits it at once, and a step re-run after a crash is handed what
//! was kept ([`Scope::progress`]) to go on from there.

use async_trait::async_trait;
use serde_json::Value;

use crate::handler::Emitted;

/// Where a step's progress is kept, for a runner that keeps runs durably
/// ([`WorkflowEngine::keep_progress_in`](crate::WorkflowEngine::keep_progress_in)).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use roomkit_graph::{Edge, Emitted, Graph, HandlerError, Handlers, Node, NodeHandler, NodeResult, Progress, Scope, Trigger, Workflow};
/// use serde_json::{Value, json};
///
/// /// Counts to three, one part at a time, going on from what was kept.
/// struct Count;
///
/// #[async_trait::async_trait]
/// impl NodeHandler for Count {
///     async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
///         for part in scope.progress().len()..3 {
///             scope.keep_progress(json!(part)).await?;
///         }
///         Ok(NodeResult::completed(json!({"parts": 3})))
///     }
/// }
///
/// /// Keeps records in memory; an earlier go kept one.
/// struct Kept(Vec<Value>, Mutex<Vec<Value>>);
///
/// #[async_trait::async_trait]
/// impl Progress for Kept {
///     fn kept(&self) -> &[Value] {
///         &self.0
///     }
///     async fn keep(&self, _node_id: &str, record: Value, _sent: Vec<Emitted>) -> Result<(), String> {
///         self.1.lock().unwrap().push(record);
///         Ok(())
///     }
/// }
///
/// let mut graph = Graph::new("g", "G", Trigger::manual());
/// graph.add_nodes([Node::new("start", "start"), Node::new("count", "count")])?;
/// graph.add_edge(Edge::new("start", "count"));
/// let mut engine = Workflow::new(graph, Handlers::builtin().with("count", Count)).engine();
/// let kept = Arc::new(Kept(vec![json!(0)], Mutex::new(Vec::new())));
/// engine.keep_progress_in(kept.clone());
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// engine.run(json!({})).await?;
/// # Ok::<(), roomkit_graph::EngineError>(())
/// # })?;
/// assert_eq!(*kept.1.lock().unwrap(), [json!(1), json!(2)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[async_trait]
pub trait Progress: Send + Sync {
    /// What an earlier go at the step kept before it was cut short, in order
    /// (empty on a first go).
    fn kept(&self) -> &[Value];

    /// Keeps `record`, kept by node `node_id`, with what the step's nodes
    /// `sent` since the last record, before returning. An error (the run
    /// moved on, the store failed) fails the step.
    async fn keep(&self, node_id: &str, record: Value, sent: Vec<Emitted>) -> Result<(), String>;
}
