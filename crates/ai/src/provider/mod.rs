//! Calling a model: one streamed request, retried on 429 and 5xx, within the
//! provider's timeout. The two wire formats differ only in how a request is
//! encoded and how streamed events are decoded (`openai`, `anthropic`); the
//! sending, retrying and reply assembly here are shared.

mod anthropic;
mod openai;

use std::collections::BTreeMap;
use std::fmt;

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use roomkit_graph::ErrorChain;
use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use crate::config::{Agents, ProviderConfig, ProviderKind};
use crate::error::ProviderError;
use crate::message::{ChatRequest, Reply, ToolCall, Usage};
use crate::retry::{retry_after, retryable_status};
use crate::sse::{SseEvent, SseParser};

/// An API key. Its `Debug` never shows it.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Secret {
    /// Removes the key from `text` (a provider or transport message that might echo it).
    fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() { text.to_owned() } else { text.replace(&self.0, "[redacted]") }
    }
}

/// Assembles a reply from streamed pieces, passing text on as it arrives.
pub(crate) struct ReplyBuilder<'a> {
    on_text: &'a mut (dyn FnMut(&str) + Send),
    text: String,
    /// Tool calls by their index in the stream.
    calls: BTreeMap<u64, PartialCall>,
    usage: Option<Usage>,
}

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

impl<'a> ReplyBuilder<'a> {
    fn new(on_text: &'a mut (dyn FnMut(&str) + Send)) -> Self {
        ReplyBuilder { on_text, text: String::new(), calls: BTreeMap::new(), usage: None }
    }

    /// A piece of the reply's text.
    fn text(&mut self, delta: &str) {
        if !delta.is_empty() {
            self.text.push_str(delta);
            (self.on_text)(delta);
        }
    }

    /// The id or name of tool call `index`, when the stream gives them.
    fn call(&mut self, index: u64, id: Option<&str>, name: Option<&str>) {
        let call = self.calls.entry(index).or_default();
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            call.id = id.to_owned();
        }
        if let Some(name) = name.filter(|name| !name.is_empty()) {
            call.name.push_str(name);
        }
    }

    /// A piece of tool call `index`'s JSON arguments.
    fn arguments(&mut self, index: u64, piece: &str) {
        self.calls.entry(index).or_default().arguments.push_str(piece);
    }

    fn usage(&mut self) -> &mut Usage {
        self.usage.get_or_insert_with(Usage::default)
    }

    fn finish(self) -> Result<Reply, String> {
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for (index, call) in self.calls {
            if call.name.is_empty() {
                return Err(format!("tool call {index} has no name"));
            }
            let arguments = if call.arguments.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                serde_json::from_str(&call.arguments).map_err(|e| {
                    format!(
                        "the arguments of tool call {:?} are not JSON ({e}): {}",
                        call.name, call.arguments
                    )
                })?
            };
            let id = if call.id.is_empty() { format!("call_{index}") } else { call.id };
            tool_calls.push(ToolCall { id, name: call.name, arguments });
        }
        Ok(Reply { text: self.text, tool_calls, usage: self.usage })
    }
}

/// What decoding one event found.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    /// More events follow.
    More,
    /// The reply is complete.
    Done,
}

/// Sends `request` to the provider `provider_name`, streaming the reply's text
/// through `on_text`, and returns the whole reply.
///
/// Retried: 429 and 5xx answers (waiting `Retry-After` when given) and
/// connections that fail, up to the provider's `max_attempts`. Not retried: a
/// call that timed out or failed once its answer began streaming (its text
/// has been passed on already).
pub(crate) async fn chat(
    agents: &Agents,
    provider_name: &str,
    request: &ChatRequest<'_>,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<Reply, ProviderError> {
    let replied = send(agents, provider_name, request, on_text).await;
    crate::metrics::replied(provider_name, &replied);
    replied
}

/// [`chat`], without counting.
async fn send(
    agents: &Agents,
    provider_name: &str,
    request: &ChatRequest<'_>,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<Reply, ProviderError> {
    let name = provider_name.to_owned();
    let provider = agents.provider(provider_name).ok_or_else(|| ProviderError::Unusable {
        provider: name.clone(),
        message: "no such provider".into(),
    })?;
    let key = match &provider.api_key_env {
        Some(env) => Some(Secret(
            agents
                .env(env)
                .ok_or_else(|| ProviderError::MissingKey { provider: name.clone(), env: env.clone() })?,
        )),
        None => None,
    };
    let headers = headers(provider, key.as_ref())
        .map_err(|message| ProviderError::Unusable { provider: name.clone(), message })?;
    let (url, body) = match provider.kind {
        ProviderKind::OpenAi => {
            (format!("{}/chat/completions", provider.base_url()), openai::encode(request))
        }
        ProviderKind::Anthropic => {
            (format!("{}/v1/messages", provider.base_url()), anthropic::encode(request))
        }
    };
    let body = body.to_string();
    let scrub = |text: &str| key.as_ref().map_or_else(|| text.to_owned(), |key| key.scrub(text));

    let mut attempt = 0;
    let (response, deadline) = loop {
        attempt += 1;
        if let Some(pace) = agents.pace(provider_name) {
            pace.wait().await;
        }
        let deadline = Instant::now() + provider.timeout;
        let sent = agents.http.post(&url).headers(headers.clone()).body(body.clone()).send();
        let timed_out = || ProviderError::Timeout { provider: name.clone(), timeout: provider.timeout };
        let retry_left = attempt < provider.retry.max_attempts;
        let response = match timeout_at(deadline, sent).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(error)) if retry_left && (error.is_connect() || error.is_request()) => {
                tokio::time::sleep(provider.retry.backoff(attempt)).await;
                continue;
            }
            Ok(Err(error)) => {
                return Err(ProviderError::Transport {
                    provider: name.clone(),
                    attempts: attempt,
                    source: error.without_url(),
                });
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if response.status().is_success() {
            break (response, deadline);
        }
        if retry_left && retryable_status(status) {
            let wait = retry_after(response.headers()).unwrap_or_else(|| provider.retry.backoff(attempt));
            drop(response);
            tokio::time::sleep(wait).await;
            continue;
        }
        let text = match timeout_at(deadline, response.text()).await {
            Ok(Ok(text)) => text,
            Ok(Err(_)) | Err(_) => String::new(),
        };
        return Err(ProviderError::Status {
            provider: name.clone(),
            status,
            message: scrub(&error_message(&text)),
            attempts: attempt,
        });
    };

    let stream_error =
        |message: String| ProviderError::Stream { provider: name.clone(), message: scrub(&message) };
    let mut builder = ReplyBuilder::new(on_text);
    let mut parser = SseParser::default();
    let mut decoder = Decoder::new(provider.kind);
    let mut chunks = response.bytes_stream();
    loop {
        let chunk = match timeout_at(deadline, chunks.next()).await {
            Err(_) => {
                return Err(ProviderError::Timeout { provider: name.clone(), timeout: provider.timeout });
            }
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(error))) => return Err(stream_error(ErrorChain(&error).to_string())),
            Ok(None) => {
                // A last event without its blank line, then nothing.
                if let Some(event) = parser.finish()
                    && decoder.decode(&event, &mut builder).map_err(stream_error)? == Decoded::Done
                {
                    break;
                }
                return Err(stream_error(format!("the stream ended before {}", decoder.end_marker())));
            }
        };
        let mut done = false;
        for event in parser.feed(&chunk) {
            if decoder.decode(&event, &mut builder).map_err(stream_error)? == Decoded::Done {
                done = true;
                break;
            }
        }
        if done {
            break;
        }
    }
    builder.finish().map_err(stream_error)
}

/// Decodes one provider's stream events.
enum Decoder {
    OpenAi,
    Anthropic,
}

impl Decoder {
    fn new(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::OpenAi => Decoder::OpenAi,
            ProviderKind::Anthropic => Decoder::Anthropic,
        }
    }

    fn decode(&mut self, event: &SseEvent, builder: &mut ReplyBuilder<'_>) -> Result<Decoded, String> {
        match self {
            Decoder::OpenAi => openai::decode(event, builder),
            Decoder::Anthropic => anthropic::decode(event, builder),
        }
    }

    fn end_marker(&self) -> &'static str {
        match self {
            Decoder::OpenAi => "data: [DONE]",
            Decoder::Anthropic => "message_stop",
        }
    }
}

/// The request headers: JSON in, events out, and the key as the provider wants it.
fn headers(provider: &ProviderConfig, key: Option<&Secret>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("text/event-stream"));
    let secret = |text: String| {
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| "the API key holds characters a header cannot carry".to_owned())?;
        value.set_sensitive(true);
        Ok::<_, String>(value)
    };
    match provider.kind {
        ProviderKind::OpenAi => {
            if let Some(key) = key {
                headers.insert(reqwest::header::AUTHORIZATION, secret(format!("Bearer {}", key.0))?);
            }
        }
        ProviderKind::Anthropic => {
            if let Some(key) = key {
                headers.insert(HeaderName::from_static("x-api-key"), secret(key.0.clone())?);
            }
            headers
                .insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static("2023-06-01"));
        }
    }
    Ok(headers)
}

/// The provider's error message from an error body: `{"error": {"message"}}`
/// (both formats), `{"error": "..."}`, or the body itself cut short.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|body| body.get("error"));
    match error {
        Some(Value::String(message)) => message.clone(),
        Some(error) => match error.get("message").and_then(Value::as_str) {
            Some(message) => message.to_owned(),
            None => error.to_string(),
        },
        None if body.trim().is_empty() => "(empty body)".to_owned(),
        None => body.chars().take(500).collect(),
    }
}

/// Reads `value` as a JSON object of an event's data.
fn event_json(event: &SseEvent) -> Result<Value, String> {
    serde_json::from_str(&event.data)
        .map_err(|e| format!("an event's data is not JSON ({e}): {}", event.data))
}
