use async_trait::async_trait;
use serde_json::Value;

use super::{Ask, HandlerError, NodeHandler, NodeResult, Scope};
use crate::model::Node;

/// The human node: the run waits for a person's answer. Its config says what
/// it asks (`prompt`, a template rendered when the node runs) and which
/// answers it takes (`actions`): an answer whose `action` is not one of them
/// is refused. The answer becomes the node's output.
///
/// ```
/// use roomkit_graph::{Edge, Graph, Handlers, HumanHandler, Node, EngineStatus, Trigger, Workflow};
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
/// assert_eq!(engine.status(), EngineStatus::Waiting);
/// assert!(engine.resume("review", json!({"action": "ship"})).is_err());
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
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        // A prompt that does not render is shown as written: the person can still answer.
        let prompt = match scope.render("prompt") {
            Ok(prompt) => prompt,
            Err(_) => node.config.get("prompt").and_then(Value::as_str).map(str::to_owned),
        };
        Ok(NodeResult::waiting_for(Ask { prompt, actions: actions(node) }))
    }

    fn check_answer(&self, node: &Node, answer: &Value) -> Result<(), String> {
        if !answer.is_object() {
            return Err(format!("an answer is a JSON object, not {answer}"));
        }
        Ask { prompt: None, actions: actions(node) }.check(answer)
    }
}

/// The actions a human node offers.
fn actions(node: &Node) -> Vec<String> {
    let listed = node.config.get("actions").and_then(Value::as_array);
    listed.into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}
