use async_trait::async_trait;
use serde_json::Value;

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::model::Node;

/// The end node: no output; reaching it completes the run.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndHandler;

#[async_trait]
impl NodeHandler for EndHandler {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Ok(NodeResult::completed(Value::Null))
    }
}
