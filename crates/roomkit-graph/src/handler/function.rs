use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{FunctionRegistry, HandlerError, NodeHandler, NodeResult, Scope};
use crate::duration::parse_duration;
use crate::model::Node;

/// The function node, by `config.action`:
/// - `set_context`: outputs `config.values` as given;
/// - `delay`: outputs `{"delayed": duration}` and has the run rest `config.duration`
///   (a text such as `"30s"`, or a number of seconds; none: no rest) before it
///   follows the node's edges ([`NodeResult::sleep`]);
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

/// A function node's configuration, read once per graph.
enum Action {
    SetContext(Value),
    JsonTransform,
    Delay {
        written: Value,
        duration: Duration,
    },
    Custom(String),
    /// A configuration that cannot run, with why.
    Invalid(String),
}

impl Action {
    fn read(node: &Node) -> Action {
        let config = &node.config;
        let id = &node.id;
        match config.get("action").and_then(Value::as_str) {
            Some("set_context") => {
                Action::SetContext(config.get("values").cloned().unwrap_or_else(|| Value::Object(Map::new())))
            }
            Some("json_transform") => Action::JsonTransform,
            Some("delay") => match config.get("duration") {
                // No duration: no wait.
                None => Action::Delay { written: Value::String("0s".to_owned()), duration: Duration::ZERO },
                Some(Value::String(text)) => match parse_duration(text) {
                    Ok(duration) => Action::Delay { written: Value::String(text.clone()), duration },
                    Err(error) => Action::Invalid(format!("node {id:?}: {error}")),
                },
                // A number is seconds.
                Some(Value::Number(seconds)) => {
                    match seconds.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
                        Some(duration) => Action::Delay { written: Value::Number(seconds.clone()), duration },
                        None => Action::Invalid(format!(
                            "node {id:?}: delay \"duration\" {seconds} is not a number of seconds a run can wait"
                        )),
                    }
                }
                Some(other) => Action::Invalid(format!(
                    "node {id:?}: delay needs a \"duration\" such as \"30s\" or a number of seconds, got {other}"
                )),
            },
            Some("custom") => match config.get("function").and_then(Value::as_str) {
                Some(name) => Action::Custom(name.to_owned()),
                None => {
                    Action::Invalid(format!("node {id:?}: a custom function node needs a \"function\" name"))
                }
            },
            // The reference's wording: the action as written (nothing when absent).
            _ => Action::Invalid(match config.get("action") {
                None => "Unknown function action: ".to_owned(),
                Some(Value::String(action)) => format!("Unknown function action: {action}"),
                Some(other) => format!("Unknown function action: {other}"),
            }),
        }
    }
}

#[async_trait]
impl NodeHandler for FunctionHandler {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Ok(match &*scope.prepared(Action::read) {
            Action::SetContext(values) => NodeResult::completed(values.clone()),
            Action::JsonTransform => {
                NodeResult::completed(scope.resolve("template")?.unwrap_or_else(|| Value::Object(Map::new())))
            }
            Action::Delay { written, duration } => {
                NodeResult::sleep(*duration).with_output(json!({ "delayed": written }))
            }
            Action::Custom(name) => match self.registry.call(name, scope.context(), &node.config).await {
                Some(Ok(output)) => NodeResult::completed(output),
                Some(Err(error)) => NodeResult::failed(format!("function {name:?} failed: {error}")),
                None => NodeResult::failed(format!("Unknown custom function: '{name}'")),
            },
            Action::Invalid(message) => NodeResult::failed(message.clone()),
        })
    }
}
