use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::model::Node;

/// The switch node: outputs `{"value": <value at config.path>}` (null when
/// missing) for its outgoing edges to branch on.
#[derive(Clone, Copy, Debug, Default)]
pub struct SwitchHandler;

#[async_trait]
impl NodeHandler for SwitchHandler {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let value = node
            .config
            .get("path")
            .and_then(Value::as_str)
            .and_then(|path| scope.context().get(path))
            .cloned()
            .unwrap_or(Value::Null);
        let mut output = Map::with_capacity(1);
        output.insert("value".to_owned(), value);
        Ok(NodeResult::completed(Value::Object(output)))
    }
}
