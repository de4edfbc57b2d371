//! What `demo` stands up in place of the outside world, on a loopback port:
//! a rule-based stand-in for a model provider, speaking OpenAI's chat
//! completions protocol (streamed, as the agent nodes ask), whose every reply
//! says it is a stand-in; and a notification receiver that prints each
//! notification on the terminal.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};

/// How every text reply begins.
pub(crate) const LABEL: &str = "[rule-based stand-in, not a model]";

/// What marks the JSON Schema an agent node appends to its prompt.
const SCHEMA_MARK: &str = "that fits this JSON Schema:";

/// Words that make a report urgent.
const URGENT: [&str; 8] =
    ["down", "outage", "crash", "cannot", "broken", "every user", "data loss", "security hole"];

/// Serves the stand-in on a free loopback port until the process ends: its address.
pub(crate) async fn start() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot listen on loopback")?;
    let address = listener.local_addr().context("cannot read the stand-in's address")?;
    let app = Router::new()
        .route("/v1/chat/completions", post(completion))
        .route("/notify/{channel}", post(notify));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("demo: the stand-in stopped: {error}");
        }
    });
    Ok(address)
}

/// A notification, printed.
async fn notify(Path(channel): Path<String>, body: Bytes) -> StatusCode {
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body.get("text").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    // Printed as text: no control character reaches the terminal.
    let shown: String =
        text.chars().map(|c| if c.is_control() && c != '\n' { '\u{FFFD}' } else { c }).collect();
    let channel: String = channel.chars().filter(|c| !c.is_control()).collect();
    println!("[notification on {channel}] {shown}");
    StatusCode::OK
}

/// A chat completion, streamed as `chat.completion.chunk` events a few
/// characters at a time (so a page shows the reply being typed).
async fn completion(body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        let error = json!({"error": {"message": "the body is not JSON", "type": "invalid_request_error"}});
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    };
    let prompt = request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|message| message["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default();
    let text = reply(prompt);
    let words = text.split_whitespace().count();
    let pieces: Vec<String> =
        text.chars().collect::<Vec<_>>().chunks(12).map(|chunk| chunk.iter().collect()).collect();
    let mut events: Vec<String> = pieces
        .into_iter()
        .map(|piece| chunk(json!({"choices": [{"index": 0, "delta": {"content": piece}}]})))
        .collect();
    let usage = json!({"prompt_tokens": prompt.split_whitespace().count(), "completion_tokens": words});
    events.push(chunk(json!({"choices": [], "usage": usage})));
    events.push("data: [DONE]\n\n".to_owned());
    let stream = futures_util::stream::iter(events).then(|event| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, Infallible>(Bytes::from(event))
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(stream)).into_response()
}

fn chunk(value: Value) -> String {
    let mut object = match value {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    object.insert("object".into(), "chat.completion.chunk".into());
    object.insert("model".into(), "stand-in".into());
    format!("data: {}\n\n", Value::Object(object))
}

/// The reply to `prompt`: a JSON object filling the schema it ends with, or
/// a short text chosen by a few rules; either says it is a stand-in.
pub(crate) fn reply(prompt: &str) -> String {
    let (asked, schema) = match prompt.find(SCHEMA_MARK) {
        Some(at) => {
            let schema = serde_json::Deserializer::from_str(prompt[at + SCHEMA_MARK.len()..].trim_start())
                .into_iter::<Value>()
                .next()
                .and_then(Result::ok);
            (&prompt[..at], schema)
        }
        None => (prompt, None),
    };
    match schema {
        Some(schema) => fill(&schema, "reply", asked).to_string(),
        None => format!("{LABEL} {}", text_reply(asked)),
    }
}

/// A short answer by rule, from the words of the request's first line.
fn text_reply(asked: &str) -> String {
    let lower = asked.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or_default().to_lowercase();
    let subject = subject(asked);
    if lower.contains("summarize") {
        "Both reviews found nothing blocking. Verdict: ship it.".to_owned()
    } else if lower.contains("security") {
        "No concrete security risk found in this change.".to_owned()
    } else if lower.contains("compliance") {
        "No licence or personal-data problem found.".to_owned()
    } else if lower.contains("label") {
        "Labels: bug, needs-triage. Team: backend.".to_owned()
    } else if lower.contains("describe") || lower.contains("explain") {
        format!("This change is about {}. It looks small and self-contained.", subject.trim_end_matches('.'))
    } else {
        format!(
            "I read a request of {} words about {subject}. A real model would answer it here.",
            asked.split_whitespace().count()
        )
    }
}

/// What a request is about: its `Title:` line, else the rest of its first
/// line after a colon (or the line after, when the first ends with one), else
/// its first line; cut short.
fn subject(asked: &str) -> String {
    let mut lines = asked.lines().map(str::trim).filter(|line| !line.is_empty());
    let titled = asked.lines().find_map(|line| line.trim().strip_prefix("Title:")).map(str::trim);
    let first = lines.next().unwrap_or_default();
    let about = match (titled, first.rsplit_once(':')) {
        (Some(title), _) if !title.is_empty() => title,
        (_, Some((_, after))) if !after.trim().is_empty() => after.trim(),
        (_, Some(_)) => lines.next().unwrap_or(first),
        (_, None) => first,
    };
    about.chars().take(80).collect()
}

/// A value for `schema`, named `name`, by rule.
fn fill(schema: &Value, name: &str, asked: &str) -> Value {
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        return choose(choices, asked);
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_else(|| if schema.get("properties").is_some() { "object" } else { "string" });
    match kind {
        "object" => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let filled = properties
                .into_iter()
                .flatten()
                .map(|(key, property)| (key.clone(), fill(property, key, asked)))
                .collect();
            Value::Object(filled)
        }
        "array" => json!([]),
        "integer" | "number" => json!(1),
        "boolean" => json!(true),
        _ => Value::String(text_for(name, asked)),
    }
}

/// One of `choices`: the first named in the request, else the last (often
/// the gravest) when the request sounds urgent, else the first.
fn choose(choices: &[Value], asked: &str) -> Value {
    let lower = asked.to_lowercase();
    let named = choices.iter().find(|choice| {
        choice
            .as_str()
            .is_some_and(|word| lower.split(|c: char| !c.is_alphanumeric()).any(|w| w == word.to_lowercase()))
    });
    // Whole words (a "download" is not "down").
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let urgent = URGENT.iter().any(|phrase| {
        let phrase: Vec<&str> = phrase.split(' ').collect();
        words.windows(phrase.len()).any(|window| window == phrase.as_slice())
    });
    named.or(if urgent { choices.last() } else { choices.first() }).cloned().unwrap_or(Value::Null)
}

/// A string field's text, saying it is a stand-in's.
fn text_for(name: &str, asked: &str) -> String {
    let subject = subject(asked);
    match name {
        "title" => format!("{subject} (titled by the rule-based stand-in)"),
        "body" => format!(
            "{LABEL} A real model would write the post about {subject} here. This one only shows \
             the run going on: draft, review, publish."
        ),
        "summary" => format!("{LABEL} {subject}"),
        other => format!("{LABEL} {other} for {subject}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str =
        "\n\nReply with only a JSON object, without any other text, that fits this JSON Schema:\n";

    #[test]
    fn a_schema_is_filled_and_an_urgent_report_is_graver() {
        let schema = r#"{"type": "object", "required": ["severity", "title"], "properties": {
            "severity": {"enum": ["low", "medium", "high", "critical"]}, "title": {"type": "string"},
            "count": {"type": "integer"}}}"#;
        let urgent: Value =
            serde_json::from_str(&reply(&format!("Triage this.\n\nTitle: Checkout is down{SCHEMA}{schema}")))
                .unwrap_or_default();
        assert_eq!((&urgent["severity"], &urgent["count"]), (&json!("critical"), &json!(1)));
        assert!(urgent["title"].as_str().is_some_and(|title| title.contains("stand-in")));
        let calm: Value =
            serde_json::from_str(&reply(&format!("Title: the download button is a typo{SCHEMA}{schema}")))
                .unwrap_or_default();
        assert_eq!(calm["severity"], "low");
        let named: Value =
            serde_json::from_str(&reply(&format!("severity: medium{SCHEMA}{schema}"))).unwrap_or_default();
        assert_eq!(named["severity"], "medium");
    }

    #[test]
    fn every_text_reply_says_it_is_a_stand_in() {
        for prompt in ["Summarize these reviews", "Review this change for security issues", "hello", ""] {
            assert!(reply(prompt).starts_with(LABEL), "{prompt}");
        }
        assert!(reply("Describe what this change does:\n\nfaster startup").contains("about faster startup"));
        assert!(reply("Write a post about: tides").contains("about tides"));
        assert!(reply("Triage this.\n\nTitle: Checkout is down\n").contains("about Checkout is down"));
    }
}
