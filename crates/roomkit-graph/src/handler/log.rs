use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{HandlerError, NodeHandler, NodeResult, Scope};
use crate::limits::{LimitError, measure};
use crate::model::Node;

/// The log node: outputs `{"message": config.message, "values": {path: value}}`
/// for each of `config.paths` (null where missing); with no paths, the values
/// are the whole context but for the ids that begin with `_` (a context larger than the run's output limit fails
/// the node with a limit error, without copying it; so do paths whose values
/// add up to more than the limit).
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
            let mut entries = context.to_entries();
            entries.retain(|id, _| !id.starts_with('_'));
            entries
        } else {
            // Each path once, and no copy past the output limit (many paths may read one large value).
            let limit = scope.limits().output_bytes;
            let mut bytes = 0usize;
            let mut values = Map::with_capacity(paths.len());
            for path in paths {
                if values.contains_key(path) {
                    continue;
                }
                let value = context.get(path).unwrap_or(&Value::Null);
                bytes = bytes.saturating_add(measure(value).bytes);
                if bytes > limit {
                    return Err(LimitError::Size { bytes, limit }.into());
                }
                values.insert(path.to_owned(), value.clone());
            }
            values
        };
        let message = node.config.get("message").cloned().unwrap_or_else(|| Value::from(""));
        let mut output = Map::with_capacity(2);
        output.insert("message".to_owned(), message);
        output.insert("values".to_owned(), Value::Object(values));
        Ok(NodeResult::completed(Value::Object(output)))
    }
}
