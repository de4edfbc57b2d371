use async_trait::async_trait;

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::model::Node;

/// The human node: the run waits for a person's answer. Its config says what
/// it asks (`prompt`, a template) and which answers it takes (`actions`); a
/// durable runner posts both into the run's transcript, and refuses an answer
/// whose `action` is not one of them. The answer becomes the node's output.
///
/// ```
/// use roomkit_graph::{Edge, Graph, Handlers, HumanHandler, Node, RunStatus, Trigger, Workflow};
/// use serde_json::json;
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let mut graph = Graph::new("review", "Review", Trigger::manual());
/// graph.add_nodes([
///     Node::new("start", "start"),
///     Node::new("review", "human").with_config(json!({"prompt": "Approve?", "actions": ["approve", "reject"]})),
///     Node::new("end", "end"),
/// ])?;
/// graph.add_edges([Edge::new("start", "review"), Edge::new("review", "end")]);
/// let mut engine = Workflow::new(graph, Handlers::builtin().with("human", HumanHandler)).engine();
/// engine.run(json!({})).await?;
/// assert_eq!(engine.status(), RunStatus::Waiting);
/// engine.resume("review", json!({"action": "approve"}))?;
/// assert_eq!(engine.context().get("review.output.action"), Some(&json!("approve")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HumanHandler;

#[async_trait]
impl NodeHandler for HumanHandler {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Ok(NodeResult::waiting())
    }
}
