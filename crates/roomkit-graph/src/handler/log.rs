use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::model::Node;

/// The log node: outputs `{"message": config.message, "values": {path: value}}`
/// for each of `config.paths` (null where missing); with no paths, the values
/// are the whole context.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogHandler;

#[async_trait]
impl NodeHandler for LogHandler {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let context = scope.context();
        let paths: Vec<&str> = node
            .config
            .get("paths")
            .and_then(Value::as_array)
            .map(|paths| paths.iter().filter_map(Value::as_str).filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let values = if paths.is_empty() {
            context.to_entries()
        } else {
            paths
                .into_iter()
                .map(|path| (path.to_owned(), context.get(path).cloned().unwrap_or(Value::Null)))
                .collect::<Map<_, _>>()
        };
        let message = node.config.get("message").cloned().unwrap_or_else(|| json!(""));
        Ok(NodeResult::completed(json!({"message": message, "values": values})))
    }
}
