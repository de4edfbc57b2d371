//! The Anthropic Messages wire format: requests, and the streamed
//! `message_start` ... `message_stop` events.

use serde_json::{Map, Value, json};

use super::{Decoded, ReplyBuilder, event_json};
use crate::message::{ChatRequest, Message};
use crate::sse::SseEvent;

/// The reply limit sent when an agent sets none (the API requires one).
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// The request body: `{model, max_tokens, system?, messages, tools?, stream}`.
pub(super) fn encode(request: &ChatRequest<'_>) -> Value {
    // An empty reply cannot be sent back (content must not be empty); the
    // user turns around it are then joined by the API.
    let sent = request.messages.iter().filter(
        |message| !matches!(message, Message::Assistant { text, tool_calls } if text.is_empty() && tool_calls.is_empty()),
    );
    let messages = sent.map(|message| match message {
        Message::User(text) => json!({"role": "user", "content": text}),
        Message::Assistant { text, tool_calls } => {
            let mut content = Vec::with_capacity(tool_calls.len() + 1);
            if !text.is_empty() {
                content.push(json!({"type": "text", "text": text}));
            }
            content.extend(tool_calls.iter().map(
                |call| json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}),
            ));
            json!({"role": "assistant", "content": content})
        }
        Message::ToolResults(results) => {
            let content = results.iter().map(|result| {
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": result.call_id, "content": result.content});
                if result.is_error {
                    block["is_error"] = true.into();
                }
                block
            });
            json!({"role": "user", "content": content.collect::<Vec<_>>()})
        }
    });
    let mut body = Map::new();
    body.insert("model".into(), request.model.into());
    body.insert("max_tokens".into(), request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into());
    if let Some(system) = request.system {
        body.insert("system".into(), system.into());
    }
    body.insert("messages".into(), Value::Array(messages.collect()));
    if !request.tools.is_empty() {
        let tools = request.tools.iter().map(|tool| {
            json!({"name": tool.name, "description": tool.description, "input_schema": tool.parameters})
        });
        body.insert("tools".into(), Value::Array(tools.collect()));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), temperature.into());
    }
    body.insert("stream".into(), true.into());
    Value::Object(body)
}

/// One streamed event, by its `type`.
pub(super) fn decode(event: &SseEvent, reply: &mut ReplyBuilder<'_>) -> Result<Decoded, String> {
    if event.data.trim().is_empty() {
        return Ok(Decoded::More);
    }
    let data = event_json(event)?;
    let kind = data.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
    let index =
        || data.get("index").and_then(Value::as_u64).ok_or_else(|| format!("{kind} without an index"));
    let count = |usage: &Value, key: &str| usage.get(key).and_then(Value::as_u64);
    match kind {
        "message_start" => {
            if let Some(usage) = data.get("message").and_then(|m| m.get("usage")) {
                let (input, output) = (count(usage, "input_tokens"), count(usage, "output_tokens"));
                let total = reply.usage();
                total.input_tokens = input.unwrap_or(0);
                total.output_tokens = output.unwrap_or(0);
            }
        }
        "content_block_start" => {
            let block = data.get("content_block").ok_or("content_block_start without a content_block")?;
            match block.get("type").and_then(Value::as_str) {
                Some("tool_use") => {
                    let index = index()?;
                    let id = block.get("id").and_then(Value::as_str);
                    reply.call(index, id, block.get("name").and_then(Value::as_str));
                }
                Some("text") => reply.text(block.get("text").and_then(Value::as_str).unwrap_or_default()),
                _ => {}
            }
        }
        "content_block_delta" => {
            let delta = data.get("delta").ok_or("content_block_delta without a delta")?;
            match delta.get("type").and_then(Value::as_str) {
                Some("text_delta") => {
                    reply.text(delta.get("text").and_then(Value::as_str).unwrap_or_default())
                }
                Some("input_json_delta") => reply.arguments(
                    index()?,
                    delta.get("partial_json").and_then(Value::as_str).unwrap_or_default(),
                ),
                _ => {}
            }
        }
        "message_delta" => {
            if let Some(usage) = data.get("usage") {
                let (input, output) = (count(usage, "input_tokens"), count(usage, "output_tokens"));
                let total = reply.usage();
                if let Some(input) = input {
                    total.input_tokens = input;
                }
                if let Some(output) = output {
                    total.output_tokens = output;
                }
            }
        }
        "message_stop" => return Ok(Decoded::Done),
        "error" => {
            let error = data.get("error").unwrap_or(&data);
            let message =
                error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
            return Err(format!("error event: {message}"));
        }
        // ping, content_block_stop, and event types added later.
        _ => {}
    }
    Ok(Decoded::More)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ToolCall, ToolResult};

    #[test]
    fn tool_use_and_results_encode_as_content_blocks() {
        let messages = [
            Message::User("weather?".into()),
            Message::Assistant {
                text: "Looking.".into(),
                tool_calls: vec![ToolCall {
                    id: "t1".into(),
                    name: "weather".into(),
                    arguments: json!({"city": "Oslo"}),
                }],
            },
            Message::ToolResults(vec![ToolResult {
                call_id: "t1".into(),
                content: "down".into(),
                is_error: true,
            }]),
        ];
        let request = ChatRequest {
            model: "claude",
            system: None,
            messages: &messages,
            tools: &[],
            temperature: None,
            max_tokens: None,
        };
        assert_eq!(
            encode(&request),
            json!({
                "model": "claude",
                "max_tokens": 1024,
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Looking."},
                        {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "down", "is_error": true}
                    ]}
                ],
                "stream": true
            })
        );
    }

    #[test]
    fn an_empty_reply_is_left_out() {
        let messages = [
            Message::User("a".into()),
            Message::Assistant { text: String::new(), tool_calls: Vec::new() },
            Message::User("b".into()),
        ];
        let request = ChatRequest {
            model: "m",
            system: None,
            messages: &messages,
            tools: &[],
            temperature: None,
            max_tokens: Some(5),
        };
        assert_eq!(
            encode(&request)["messages"],
            json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
        );
    }
}
