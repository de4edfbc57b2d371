use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::limits::LimitError;
use crate::model::Node;

/// The log node: outputs `{"message": config.message, "values": {path: value}}`
/// for each of `config.paths` (null where missing); with no paths, the values
/// are the whole context (a context larger than the run's output limit fails
/// the node with a limit error, without copying it).
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
            let limit = scope.limits().output_bytes;
            if context.size() > limit {
                return Err(LimitError::Dump { bytes: context.size(), limit }.into());
            }
            context.to_entries()
        } else {
            paths
                .into_iter()
                .map(|path| (path.to_owned(), context.get(path).cloned().unwrap_or(Value::Null)))
                .collect::<Map<_, _>>()
        };
        let message = node.config.get("message").cloned().unwrap_or_else(|| Value::from(""));
        let mut output = Map::with_capacity(2);
        output.insert("message".to_owned(), message);
        output.insert("values".to_owned(), Value::Object(values));
        Ok(NodeResult::completed(Value::Object(output)))
    }
}
