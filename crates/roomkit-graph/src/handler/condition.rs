use async_trait::async_trait;
use serde_json::json;

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::condition::{Condition, ConditionError};
use crate::model::Node;

/// The condition node: outputs `{"result": bool}` from `config.condition`; a
/// condition that is absent or malformed gives false, one with an unknown op
/// fails the node with a condition error (as it does on an edge).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConditionHandler;

#[async_trait]
impl NodeHandler for ConditionHandler {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let condition = scope.prepared(|node| node.config.get("condition").map(Condition::from_value));
        let result = match condition.as_ref().as_ref().map(|c| c.evaluate(scope.context())) {
            None | Some(Err(ConditionError::Malformed { .. })) => false,
            Some(Err(error @ ConditionError::UnknownOp { .. })) => return Err(error.into()),
            Some(Ok(result)) => result,
        };
        Ok(NodeResult::completed(json!({ "result": result })))
    }
}
