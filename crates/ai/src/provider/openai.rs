//! The OpenAI chat completions wire format (also spoken by Ollama, vLLM and
//! LM Studio): requests, and the streamed `chat.completion.chunk` events.

use serde_json::{Map, Value, json};

use super::{Decoded, ReplyBuilder, event_json};
use crate::message::{ChatRequest, Message};
use crate::sse::SseEvent;

/// The request body: `{model, messages, tools?, stream, stream_options, ...}`.
pub(super) fn encode(request: &ChatRequest<'_>) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in request.messages {
        match message {
            Message::User(text) => messages.push(json!({"role": "user", "content": text})),
            Message::Assistant { text, tool_calls } => {
                let mut entry = Map::new();
                entry.insert("role".into(), "assistant".into());
                // Null content is only allowed beside tool calls.
                let content = if text.is_empty() && !tool_calls.is_empty() {
                    Value::Null
                } else {
                    text.as_str().into()
                };
                entry.insert("content".into(), content);
                if !tool_calls.is_empty() {
                    let calls = tool_calls.iter().map(|call| {
                        json!({"id": call.id, "type": "function",
                               "function": {"name": call.name, "arguments": call.arguments.to_string()}})
                    });
                    entry.insert("tool_calls".into(), Value::Array(calls.collect()));
                }
                messages.push(Value::Object(entry));
            }
            Message::ToolResults(results) => messages.extend(results.iter().map(
                |result| json!({"role": "tool", "tool_call_id": result.call_id, "content": result.content}),
            )),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), request.model.into());
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools = request.tools.iter().map(|tool| {
            json!({"type": "function",
                   "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}})
        });
        body.insert("tools".into(), Value::Array(tools.collect()));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), temperature.into());
    }
    if let Some(max_tokens) = request.max_tokens {
        body.insert("max_tokens".into(), max_tokens.into());
    }
    body.insert("stream".into(), true.into());
    body.insert("stream_options".into(), json!({"include_usage": true}));
    Value::Object(body)
}

/// One streamed event: `data: {"choices": [{"delta": {...}}], "usage": ...}`,
/// `data: {"error": ...}`, or `data: [DONE]`.
pub(super) fn decode(event: &SseEvent, reply: &mut ReplyBuilder<'_>) -> Result<Decoded, String> {
    if event.data.trim() == "[DONE]" {
        return Ok(Decoded::Done);
    }
    if event.data.trim().is_empty() {
        return Ok(Decoded::More);
    }
    let chunk = event_json(event)?;
    if let Some(error) = chunk.get("error") {
        let message =
            error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
        return Err(format!("error event: {message}"));
    }
    if let Some(usage) = chunk.get("usage").filter(|usage| !usage.is_null()) {
        let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
        let (input, output) = (count("prompt_tokens"), count("completion_tokens"));
        let total = reply.usage();
        total.input_tokens = input;
        total.output_tokens = output;
    }
    let choices = chunk.get("choices").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for choice in choices {
        let Some(delta) = choice.get("delta") else { continue };
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            reply.text(text);
        }
        let calls = delta.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for (position, call) in calls.iter().enumerate() {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
            let function = call.get("function");
            let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
            reply.call(index, call.get("id").and_then(Value::as_str), name);
            match function.and_then(|f| f.get("arguments")) {
                Some(Value::String(piece)) => reply.arguments(index, piece),
                // Some compatible servers send the arguments as an object, whole.
                Some(arguments @ Value::Object(_)) => reply.arguments(index, &arguments.to_string()),
                _ => {}
            }
        }
    }
    Ok(Decoded::More)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ToolCall, ToolResult, ToolSpec};

    #[test]
    fn a_conversation_with_tool_calls_encodes_as_openai_messages() {
        let messages = [
            Message::User("weather?".into()),
            Message::Assistant {
                text: String::new(),
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "weather".into(),
                    arguments: json!({"city": "Paris"}),
                }],
            },
            Message::ToolResults(vec![ToolResult {
                call_id: "c1".into(),
                content: "sunny".into(),
                is_error: false,
            }]),
        ];
        let tools = [ToolSpec::new("weather", "Weather by city")];
        let request = ChatRequest {
            model: "gpt",
            system: Some("be brief"),
            messages: &messages,
            tools: &tools,
            temperature: Some(0.5),
            max_tokens: Some(10),
        };
        assert_eq!(
            encode(&request),
            json!({
                "model": "gpt",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "weather", "description": "Weather by city", "parameters": {"type": "object", "properties": {}}
                }}],
                "temperature": 0.5,
                "max_tokens": 10,
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }
}
