use async_trait::async_trait;
use serde_json::json;

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::model::Node;

/// The condition node: outputs `{"result": bool}` from `config.condition`; a
/// condition that is absent or cannot be evaluated gives false.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConditionHandler;

#[async_trait]
impl NodeHandler for ConditionHandler {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let result = scope
            .config_condition()
            .is_some_and(|condition| condition.evaluate(scope.context()).unwrap_or(false));
        Ok(NodeResult::completed(json!({ "result": result })))
    }
}
