use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{FunctionRegistry, HandlerError, NodeHandler, NodeResult, Scope};
use crate::duration::parse_duration;
use crate::model::Node;

/// The function node, by `config.action`:
/// - `set_context`: outputs `config.values` as given;
/// - `delay`: waits `config.duration` on the engine's clock, outputs `{"delayed": duration}`;
/// - `json_transform`: outputs `config.template` with every placeholder resolved (`{}` without one);
/// - `custom`: calls the registered function `config.function` with (context, config).
///
/// Any other action, or an unregistered function, fails the node.
#[derive(Clone, Debug, Default)]
pub struct FunctionHandler {
    registry: Arc<FunctionRegistry>,
}

/// The actions a function node knows.
pub(crate) const FUNCTION_ACTIONS: [&str; 4] = ["set_context", "delay", "json_transform", "custom"];

impl FunctionHandler {
    /// A function handler whose `custom` action calls the functions of `registry`.
    pub fn new(registry: FunctionRegistry) -> Self {
        FunctionHandler { registry: Arc::new(registry) }
    }
}

#[async_trait]
impl NodeHandler for FunctionHandler {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let config = &node.config;
        let action = config.get("action").and_then(Value::as_str);
        Ok(match action {
            Some("set_context") => NodeResult::completed(
                config.get("values").cloned().unwrap_or_else(|| Value::Object(Map::new())),
            ),
            Some("json_transform") => {
                NodeResult::completed(scope.resolve("template")?.unwrap_or_else(|| Value::Object(Map::new())))
            }
            Some("delay") => {
                let written = config.get("duration").cloned().unwrap_or(Value::Null);
                let Some(text) = written.as_str() else {
                    return Ok(NodeResult::failed(format!(
                        "node {:?}: delay needs a \"duration\" string such as \"30s\", got {written}",
                        node.id
                    )));
                };
                match parse_duration(text) {
                    Ok(duration) => {
                        scope.clock().sleep(duration).await;
                        NodeResult::completed(json!({ "delayed": written }))
                    }
                    Err(error) => NodeResult::failed(format!("node {:?}: {error}", node.id)),
                }
            }
            Some("custom") => {
                let Some(name) = config.get("function").and_then(Value::as_str) else {
                    return Ok(NodeResult::failed(format!(
                        "node {:?}: a custom function node needs a \"function\" name",
                        node.id
                    )));
                };
                match self.registry.call(name, scope.context(), config).await {
                    Some(Ok(output)) => NodeResult::completed(output),
                    Some(Err(error)) => NodeResult::failed(format!("function {name:?} failed: {error}")),
                    None => NodeResult::failed(format!("no function named {name:?} is registered")),
                }
            }
            _ => NodeResult::failed(format!(
                "node {:?}: unknown function action {} (expected one of {})",
                node.id,
                config.get("action").unwrap_or(&Value::Null),
                FUNCTION_ACTIONS.join(", ")
            )),
        })
    }
}
