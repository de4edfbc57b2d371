//! The conversation model both providers' wire formats encode: messages,
//! tools, tool calls and replies.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A function tool an agent may call: its name, what it does and a JSON
/// Schema of its arguments.
///
/// ```
/// use roomkit_graph_ai::ToolSpec;
/// use serde_json::json;
///
/// let tool: ToolSpec = serde_json::from_value(json!({
///     "name": "lookup_user",
///     "description": "Finds a user by email",
///     "parameters": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}
/// }))?;
/// assert_eq!(tool.name, "lookup_user");
/// let bare = ToolSpec::new("now", "The current time");
/// assert_eq!(bare.parameters, json!({"type": "object", "properties": {}}));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// A JSON Schema of the arguments (an object).
    #[serde(default = "no_parameters")]
    pub parameters: Value,
}

impl ToolSpec {
    /// A tool that takes no arguments.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        ToolSpec { name: name.into(), description: description.into(), parameters: no_parameters() }
    }

    /// Sets the arguments' JSON Schema.
    pub fn with_parameters(mut self, parameters: Value) -> Self {
        self.parameters = parameters;
        self
    }
}

/// A tool call in a reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ToolCall {
    /// The provider's id for the call, echoed in its result.
    pub(crate) id: String,
    /// The tool.
    pub(crate) name: String,
    /// The arguments (an object).
    pub(crate) arguments: Value,
}

/// The result of a tool call, sent back to the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ToolResult {
    /// The call's id.
    pub(crate) call_id: String,
    /// The result as text.
    pub(crate) content: String,
    /// Whether the tool failed.
    pub(crate) is_error: bool,
}

/// One message of a conversation (the system prompt is kept apart).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Message {
    /// What the user (or the workflow) says.
    User(String),
    /// A model's reply: text and the tools it called.
    Assistant { text: String, tool_calls: Vec<ToolCall> },
    /// The results of the previous reply's tool calls.
    ToolResults(Vec<ToolResult>),
}

/// Tokens a reply used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

impl Usage {
    pub(crate) fn to_json(self) -> Value {
        json!({"input_tokens": self.input_tokens, "output_tokens": self.output_tokens})
    }
}

/// A complete reply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reply {
    pub(crate) text: String,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) usage: Option<Usage>,
}

impl Reply {
    /// The reply as the assistant message of a conversation.
    pub(crate) fn to_message(&self) -> Message {
        Message::Assistant { text: self.text.clone(), tool_calls: self.tool_calls.clone() }
    }
}

/// What one model call asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChatRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) system: Option<&'a str>,
    pub(crate) messages: &'a [Message],
    pub(crate) tools: &'a [ToolSpec],
    pub(crate) temperature: Option<f64>,
    pub(crate) max_tokens: Option<u32>,
}

/// The default parameters of a tool that declares none: an object with no properties.
pub(crate) fn no_parameters() -> Value {
    json!({"type": "object", "properties": {}})
}
