//! Loopback model providers speaking each provider's real wire format, and
//! helpers to run AI nodes through the engine.
//!
//! A [`FakeProvider`] serves a script of answers, one per request, streaming
//! replies as server-sent events exactly as OpenAI's chat completions or
//! Anthropic's Messages API do, cut into small chunks. Like the real APIs it
//! checks the path, the API key header and `stream: true`, answering 401/404/
//! 400 in the provider's error format otherwise, and it records every request.

#![allow(dead_code)] // Each test binary uses its own part of the support.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use futures_util::StreamExt;
use roomkit_graph::{Edge, Event, Graph, Handlers, Node, StreamMode, Trigger, Workflow};
use roomkit_graph_ai::{Agents, register};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Which wire format a fake provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    OpenAi,
    Anthropic,
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// A streamed reply: text, then tool calls `(name, arguments)`.
    Reply { text: String, tool_calls: Vec<(String, Value)> },
    /// An error status, with an optional `Retry-After` and the provider's message.
    Status { status: u16, retry_after: Option<String>, message: String },
    /// Never answers.
    Hang,
    /// A stream of exactly this SSE text.
    Raw(String),
}

impl Answer {
    pub(crate) fn text(text: &str) -> Answer {
        Answer::Reply { text: text.to_owned(), tool_calls: Vec::new() }
    }

    pub(crate) fn tool(name: &str, arguments: Value) -> Answer {
        Answer::Reply { text: String::new(), tool_calls: vec![(name.to_owned(), arguments)] }
    }

    pub(crate) fn status(status: u16, retry_after: Option<&str>, message: &str) -> Answer {
        Answer::Status { status, retry_after: retry_after.map(str::to_owned), message: message.to_owned() }
    }
}

/// A request the fake provider received.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) at: Instant,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Recorded {
    /// The model asked for.
    pub(crate) fn model(&self) -> &str {
        self.body["model"].as_str().unwrap_or_default()
    }

    /// The conversation's messages (without an OpenAI system message).
    pub(crate) fn messages(&self) -> Vec<Value> {
        let messages = self.body["messages"].as_array().cloned().unwrap_or_default();
        messages.into_iter().filter(|m| m["role"] != "system").collect()
    }

    /// The system prompt, in either format.
    pub(crate) fn system(&self) -> Option<String> {
        if let Some(system) = self.body["system"].as_str() {
            return Some(system.to_owned());
        }
        let messages = self.body["messages"].as_array()?;
        messages.iter().find(|m| m["role"] == "system")?["content"].as_str().map(str::to_owned)
    }

    /// The names of the tools offered, in either format.
    pub(crate) fn tool_names(&self) -> Vec<String> {
        let tools = self.body["tools"].as_array().cloned().unwrap_or_default();
        tools
            .iter()
            .filter_map(|tool| tool["function"]["name"].as_str().or_else(|| tool["name"].as_str()))
            .map(str::to_owned)
            .collect()
    }

    /// The text of the last user message, in either format (tool results
    /// joined with newlines).
    pub(crate) fn last_user_text(&self) -> String {
        let messages = self.messages();
        let Some(last) = messages.iter().rev().find(|m| m["role"] == "user" || m["role"] == "tool") else {
            return String::new();
        };
        match &last["content"] {
            Value::String(text) => text.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str().or_else(|| b["content"].as_str()))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

struct Shared {
    wire: Wire,
    key: Option<String>,
    script: Mutex<VecDeque<Answer>>,
    requests: Mutex<Vec<Recorded>>,
}

/// A model provider on 127.0.0.1, serving a script.
pub(crate) struct FakeProvider {
    pub(crate) addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl FakeProvider {
    /// Starts a provider speaking `wire` that wants `key` and answers `script` in order.
    pub(crate) async fn start(wire: Wire, key: Option<&str>, script: Vec<Answer>) -> FakeProvider {
        let shared = Arc::new(Shared {
            wire,
            key: key.map(str::to_owned),
            script: Mutex::new(script.into()),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(serve).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake provider serves") });
        FakeProvider { addr, shared }
    }

    /// The base URL to configure: `http://addr/v1` for OpenAI, `http://addr` for Anthropic.
    pub(crate) fn base_url(&self) -> String {
        match self.shared.wire {
            Wire::OpenAi => format!("http://{}/v1", self.addr),
            Wire::Anthropic => format!("http://{}", self.addr),
        }
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// Answers not yet served.
    pub(crate) fn unanswered(&self) -> usize {
        self.shared.script.lock().expect("script lock").len()
    }
}

async fn serve(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(shared.wire, 400, None, &format!("body is not JSON: {e}")),
    };
    shared.requests.lock().expect("requests lock").push(Recorded {
        at: Instant::now(),
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (path, key) = match shared.wire {
        Wire::OpenAi => ("/v1/chat/completions", header("authorization")),
        Wire::Anthropic => ("/v1/messages", header("x-api-key")),
    };
    if uri.path() != path {
        return error(shared.wire, 404, None, &format!("no route {}", uri.path()));
    }
    let expected_key = match (&shared.key, shared.wire) {
        (Some(key), Wire::OpenAi) => Some(format!("Bearer {key}")),
        (Some(key), Wire::Anthropic) => Some(key.clone()),
        (None, _) => None,
    };
    if expected_key.is_some() && key != expected_key {
        // Like OpenAI, echo what was sent: the client must keep it out of its errors.
        let sent = key.unwrap_or_default();
        return error(shared.wire, 401, None, &format!("Incorrect API key provided: {sent}"));
    }
    if shared.wire == Wire::Anthropic && header("anthropic-version").as_deref() != Some("2023-06-01") {
        return error(shared.wire, 400, None, "anthropic-version header missing");
    }
    if body["stream"] != true || body["model"].as_str().is_none() || !body["messages"].is_array() {
        return error(shared.wire, 400, None, "expected a streamed request with model and messages");
    }
    if shared.wire == Wire::Anthropic && body["max_tokens"].as_u64().is_none() {
        return error(shared.wire, 400, None, "max_tokens: Field required");
    }
    let answer = shared.script.lock().expect("script lock").pop_front();
    match answer {
        None => error(shared.wire, 500, None, "the script has no answer left"),
        Some(Answer::Hang) => std::future::pending().await,
        Some(Answer::Raw(text)) => stream(text),
        Some(Answer::Status { status, retry_after, message }) => {
            error(shared.wire, status, retry_after.as_deref(), &message)
        }
        Some(Answer::Reply { text, tool_calls }) => {
            let model = body["model"].as_str().unwrap_or_default();
            let events = match shared.wire {
                Wire::OpenAi => openai_events(model, &text, &tool_calls),
                Wire::Anthropic => anthropic_events(model, &text, &tool_calls),
            };
            stream(events)
        }
    }
}

/// An error answer in the provider's format.
fn error(wire: Wire, status: u16, retry_after: Option<&str>, message: &str) -> Response {
    let body = match wire {
        Wire::OpenAi => json!({"error": {"message": message, "type": "invalid_request_error", "code": null}}),
        Wire::Anthropic => json!({"type": "error", "error": {"type": "api_error", "message": message}}),
    };
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).expect("a valid status"))
        .header("content-type", "application/json");
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds);
    }
    response.body(Body::from(body.to_string())).expect("a valid response")
}

/// Streams SSE text in 7-byte chunks, pausing a millisecond every 16 chunks
/// so the client reads the stream in many pieces.
fn stream(text: String) -> Response {
    let chunks: Vec<Bytes> = text.into_bytes().chunks(7).map(Bytes::copy_from_slice).collect();
    let body = futures_util::stream::iter(chunks.into_iter().enumerate()).then(|(i, chunk)| async move {
        if i % 16 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
        Ok::<_, std::convert::Infallible>(chunk)
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .expect("a valid response")
}

/// Cuts text into pieces of three characters, as a model streams tokens.
pub(crate) fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(3).map(|c| c.iter().collect()).collect()
}

/// OpenAI's chat.completion.chunk events, ending with usage and [DONE].
fn openai_events(model: &str, text: &str, tool_calls: &[(String, Value)]) -> String {
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    };
    let mut out = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    for piece in pieces(text) {
        out.push_str(&chunk(json!({"content": piece}), Value::Null));
    }
    for (index, (name, arguments)) in tool_calls.iter().enumerate() {
        out.push_str(&chunk(
            json!({"tool_calls": [{"index": index, "id": format!("call_{index}"), "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        for piece in pieces(&arguments.to_string()) {
            out.push_str(&chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    let finish = if tool_calls.is_empty() { "stop" } else { "tool_calls" };
    out.push_str(&chunk(json!({}), json!(finish)));
    let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}});
    out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    out
}

/// Anthropic's message_start ... message_stop events.
fn anthropic_events(model: &str, text: &str, tool_calls: &[(String, Value)]) -> String {
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut out = event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 13, "output_tokens": 1}}}),
    );
    let mut index = 0;
    if !text.is_empty() {
        out.push_str(&event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        out.push_str(&event("ping", json!({"type": "ping"})));
        for piece in pieces(text) {
            out.push_str(&event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        out.push_str(&event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    for (i, (name, arguments)) in tool_calls.iter().enumerate() {
        out.push_str(&event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
                   "content_block": {"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": {}}}),
        ));
        out.push_str(&event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                   "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ));
        for piece in pieces(&arguments.to_string()) {
            out.push_str(&event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                       "delta": {"type": "input_json_delta", "partial_json": piece}}),
            ));
        }
        out.push_str(&event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    let stop = if tool_calls.is_empty() { "end_turn" } else { "tool_use" };
    out.push_str(&event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
               "usage": {"output_tokens": 9}}),
    ));
    out.push_str(&event("message_stop", json!({"type": "message_stop"})));
    out
}

/// The secret keys tests use, handed out through the agents' env lookup.
pub(crate) const OPENAI_KEY: &str = "sk-test-openai-5f2a9c81d7";
pub(crate) const ANTHROPIC_KEY: &str = "sk-ant-test-0b7e44c3a1";

/// Agents on `provider`: `agents_json` is the agents array; the provider is
/// named "p", wants the wire's test key (from `TEST_KEY`) and has `extra`
/// settings (timeout, retry).
pub(crate) fn agents_on(provider: &FakeProvider, extra: Value, agents_json: Value) -> Agents {
    let kind = match provider.shared.wire {
        Wire::OpenAi => "openai",
        Wire::Anthropic => "anthropic",
    };
    let mut settings = json!({"kind": kind, "base_url": provider.base_url(), "api_key_env": "TEST_KEY",
                              "retry": {"initial_backoff": "10ms"}});
    if let (Some(settings), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        settings.extend(extra.clone());
    }
    let file = json!({"providers": {"p": settings}, "agents": agents_json});
    let key = match provider.shared.wire {
        Wire::OpenAi => OPENAI_KEY,
        Wire::Anthropic => ANTHROPIC_KEY,
    };
    Agents::from_json(&file.to_string())
        .expect("the test agents file is valid")
        .with_env_lookup(move |name| (name == "TEST_KEY").then(|| key.to_owned()))
}

/// A graph start → `node` → end.
pub(crate) fn one_node_graph(node: Node) -> Graph {
    let mut graph = Graph::new("g", "G", Trigger::manual());
    let id = node.id.clone();
    graph.add_nodes([Node::new("start", "start"), node, Node::new("end", "end")]).expect("unique node ids");
    graph.add_edges([Edge::new("start", id.as_str()), Edge::new(id.as_str(), "end")]);
    graph
}

/// What a run of a one-node graph gave: the node's output or the error, and
/// every custom event emitted.
pub(crate) struct Ran {
    pub(crate) output: Result<Value, String>,
    pub(crate) custom: Vec<Value>,
}

impl Ran {
    /// The custom events of `kind` (`token`, `agent_message`, `tool_call`).
    pub(crate) fn events(&self, kind: &str) -> Vec<&Value> {
        self.custom.iter().filter(|e| e["type"] == kind).collect()
    }
}

/// Runs `node` between start and end through the real engine with the AI
/// handlers registered, streaming custom events.
pub(crate) async fn run_node(agents: Agents, node: Node, trigger: Value) -> Ran {
    let id = node.id.clone();
    let handlers = register(Handlers::builtin(), Arc::new(agents));
    let workflow = Workflow::new(one_node_graph(node), handlers);
    let mut engine = workflow.engine();
    let mut custom = Vec::new();
    let mut failure = None;
    {
        let mut events = engine.stream(trigger, &[StreamMode::Custom]);
        while let Some(event) = events.next().await {
            match event {
                Ok(Event { payload, node_id, .. }) => {
                    assert_eq!(
                        node_id.as_deref(),
                        Some(id.as_str()),
                        "custom events are attributed to the node"
                    );
                    custom.push(payload);
                }
                Err(error) => failure = Some(error.to_string()),
            }
        }
    }
    let output = match failure {
        Some(error) => Err(error),
        None => Ok(engine.context().output(&id).cloned().unwrap_or(Value::Null)),
    };
    Ran { output, custom }
}
