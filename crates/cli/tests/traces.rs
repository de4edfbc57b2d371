//! Traces through the real binary: `serve --otlp-endpoint` sends its runs'
//! spans over OTLP (HTTP/protobuf) to a loopback collector, which reads
//! them with the protocol's own messages: a `run` span per drive of a run
//! (and for its start and its answer), in the run's trace, each step a
//! `step` span under it.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;
use server::{Server, review_graph};

/// A loopback collector: the spans of every export it was sent.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                for resource in request.resource_spans {
                    let service = resource.resource.unwrap().attributes;
                    assert!(
                        service
                            .iter()
                            .any(|kv| kv.key == "service.name" && text(&kv.value) == "roomkit-graph")
                    );
                    kept.lock()
                        .unwrap()
                        .extend(resource.scope_spans.into_iter().flat_map(|scope| scope.spans));
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), spans)
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(n)) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// A span's attribute, as text ("" when it has none).
fn attribute(span: &Span, key: &str) -> String {
    span.attributes.iter().find(|kv| kv.key == key).map(|kv| text(&kv.value)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runs_drives_and_steps_are_spans_of_one_trace_sent_over_otlp() {
    let (base, spans) = collector().await;
    // No path: /v1/traces is added (the collector answers nothing else).
    let mut server = Server::start(&["--otlp-endpoint", &base]);
    let token = server.token("acme");
    let made =
        server::client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&review_graph("Review"));
    assert_eq!(made.send().await.unwrap().status(), reqwest::StatusCode::CREATED);
    let run = server.post(&token, "/v1/graphs/review/runs", &json!({"topic": "otters"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    server.until_run(&token, &run_id, |run| run["status"] == "waiting").await;
    let answer = json!({"node_id": "review", "data": {"action": "approve"}});
    server.post(&token, &format!("/v1/runs/{run_id}/answer"), &answer).await;
    server.until_run(&token, &run_id, |run| run["status"] == "completed").await;
    // Stopping sends the spans still held.
    assert!(server.stop().success());

    let spans = spans.lock().unwrap();
    let names: std::collections::BTreeSet<&str> = spans.iter().map(|span| span.name.as_str()).collect();
    assert_eq!(names, ["run", "step"].into(), "the runner's spans only");
    let trace_id = hex::decode(run_id.replace('-', "")).unwrap();
    let drives: Vec<&Span> = spans.iter().filter(|span| span.name == "run").collect();
    assert!(drives.len() >= 4, "started, driven, answered, driven: {drives:?}");
    for drive in &drives {
        assert_eq!(drive.trace_id, trace_id, "each drive in the run's trace");
        assert_eq!(
            (attribute(drive, "run_id"), attribute(drive, "org"), attribute(drive, "graph_id")),
            (run_id.clone(), "acme".to_owned(), "review".to_owned())
        );
        assert_eq!(attribute(drive, "graph_version"), "1");
    }
    let ended: Vec<String> = drives.iter().map(|drive| attribute(drive, "ended")).collect();
    for how in ["started", "parked", "answered", "over"] {
        assert!(ended.iter().any(|ended| ended == how), "{how} in {ended:?}");
    }
    let steps: Vec<(String, String, String)> = spans
        .iter()
        .filter(|span| span.name == "step")
        .inspect(|step| {
            assert_eq!(step.trace_id, trace_id);
            assert!(drives.iter().any(|drive| drive.span_id == step.parent_span_id), "a step under a drive");
        })
        .map(|step| (attribute(step, "node_id"), attribute(step, "node_type"), attribute(step, "outcome")))
        .collect();
    let step = |node: &str, kind: &str, outcome: &str| (node.to_owned(), kind.to_owned(), outcome.to_owned());
    for expected in [
        step("start", "start", "completed"),
        step("draft", "function", "completed"),
        step("review", "human", "waiting"),
        step("review", "human", "completed"),
        step("publish", "function", "completed"),
        step("end", "end", "completed"),
    ] {
        assert!(steps.contains(&expected), "{expected:?} in {steps:?}");
    }
}

/// A model provider on loopback speaking OpenAI's protocol that says when a
/// request came, then answers it after `delay`.
async fn slow_provider(delay: Duration) -> (String, Arc<tokio::sync::Notify>) {
    let called = Arc::new(tokio::sync::Notify::new());
    let heard = Arc::clone(&called);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let heard = Arc::clone(&heard);
            async move {
                heard.notify_one();
                tokio::time::sleep(delay).await;
                let chunk = json!({"choices": [{"delta": {"content": "a stand-in's draft"}}]});
                ([("content-type", "text/event-stream")], format!("data: {chunk}\n\ndata: [DONE]\n\n"))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), called)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_spans_of_a_step_under_way_when_the_server_stops_are_sent() {
    let (base, spans) = collector().await;
    let (provider, called) = slow_provider(Duration::from_millis(1_500)).await;
    let dir = tempfile::tempdir().unwrap();
    let agents = json!({"providers": {"stand-in": {"kind": "openai", "base_url": provider}},
        "agents": [{"id": "writer", "provider": "stand-in", "model": "any"}]});
    let file = dir.path().join("agents.json");
    std::fs::write(&file, agents.to_string()).unwrap();
    let endpoint = format!("{base}/v1/traces");
    let mut server = Server::start(&["--otlp-endpoint", &endpoint, "--agents", file.to_str().unwrap()]);
    let token = server.token("acme");
    let graph = json!({"id": "write", "name": "Write", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "draft", "type": "agent", "config": {"agent_id": "writer", "prompt_template": "Write"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "draft"}, {"source": "draft", "target": "end"}]});
    let made = server::client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&graph);
    assert_eq!(made.send().await.unwrap().status(), reqwest::StatusCode::CREATED);
    let run = server.post(&token, "/v1/graphs/write/runs", &json!({})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    // Stopped while the model is asked.
    tokio::time::timeout(Duration::from_secs(30), called.notified()).await.unwrap();
    assert!(server.stop().success());

    let spans = spans.lock().unwrap();
    let drive = spans
        .iter()
        .find(|span| {
            span.name == "run" && attribute(span, "run_id") == run_id && attribute(span, "ended") == "let_go"
        })
        .unwrap_or_else(|| panic!("the drive the stop cut short: {spans:?}"));
    let draft = spans
        .iter()
        .find(|span| span.name == "step" && span.parent_span_id == drive.span_id)
        .unwrap_or_else(|| panic!("its step: {spans:?}"));
    assert_eq!(
        (attribute(draft, "node_id"), attribute(draft, "node_type")),
        ("draft".into(), "agent".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_refuses_the_spans_is_told_on_stderr() {
    let (base, spans) = collector().await;
    let mut server = Server::start(&["--otlp-endpoint", &format!("{base}/elsewhere")]);
    let token = server.token("acme");
    let made =
        server::client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&review_graph("Review"));
    assert_eq!(made.send().await.unwrap().status(), reqwest::StatusCode::CREATED);
    let run = server.post(&token, "/v1/graphs/review/runs", &json!({"topic": "otters"})).await;
    server.until_run(&token, run["run_id"].as_str().unwrap(), |run| run["status"] == "waiting").await;
    assert!(server.stop().success());
    let told = server.until_logged("the refusal", |line| line.starts_with("traces: cannot send spans: "));
    assert!(told.contains("the collector answered 404"), "{told}");
    assert!(spans.lock().unwrap().is_empty());
}
