use async_trait::async_trait;
use serde_json::json;

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::condition::Condition;
use crate::model::Node;

/// The condition node: outputs `{"result": bool}` from `config.condition`; a
/// condition that is absent or cannot be evaluated gives false.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConditionHandler;

#[async_trait]
impl NodeHandler for ConditionHandler {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let condition = scope.prepared(|node| node.config.get("condition").map(Condition::from_value));
        let result =
            condition.as_ref().as_ref().is_some_and(|c| c.evaluate(scope.context()).unwrap_or(false));
        Ok(NodeResult::completed(json!({ "result": result })))
    }
}
