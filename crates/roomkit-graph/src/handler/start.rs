use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::model::Node;

/// The start node: outputs `{"input": trigger_data}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartHandler;

#[async_trait]
impl NodeHandler for StartHandler {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let mut output = Map::with_capacity(1);
        output.insert("input".to_owned(), scope.context().trigger().cloned().unwrap_or(Value::Null));
        Ok(NodeResult::completed(Value::Object(output)))
    }
}
