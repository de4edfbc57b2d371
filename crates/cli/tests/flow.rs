//! Flow control through the real binary, with a model provider stand-in on
//! loopback that speaks OpenAI's streaming protocol and records when each
//! request comes and how many are in flight: `serve --max-runs` drives at
//! most that many runs at once, and a provider's `requests_per_minute`
//! paces the requests of all runs of the process.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, client};

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    arrivals: Mutex<Vec<Instant>>,
}

/// A chat completion, streamed, after `delay`: one piece of text, then the end.
async fn complete(seen: Arc<Seen>, delay: Duration) -> impl IntoResponse {
    seen.arrivals.lock().unwrap().push(Instant::now());
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.most_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(delay).await;
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    let body = format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"delta": {"content": "a stand-in's reply"}}]})
    );
    ([("content-type", "text/event-stream")], body)
}

/// Serves the stand-in on loopback, each reply after `delay`: its base URL and what it sees.
async fn stand_in(delay: Duration) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post({
            let seen = Arc::clone(&seen);
            move || complete(Arc::clone(&seen), delay)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// A server whose agents use the stand-in at `base` (with `provider` merged
/// into the provider's settings), started with `extra` arguments, and a
/// token with a graph of one agent step stored.
async fn server_with_agent(base: &str, provider: Value, extra: &[&str]) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings =
        json!({"kind": "openai", "base_url": format!("{base}/v1"), "retry": {"max_attempts": 1}});
    settings.as_object_mut().unwrap().extend(provider.as_object().unwrap().clone());
    let agents = json!({"providers": {"stand-in": settings},
        "agents": [{"id": "writer", "provider": "stand-in", "model": "any"}]});
    let file = dir.path().join("agents.json");
    std::fs::write(&file, agents.to_string()).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let args: Vec<&str> = [&["--agents", file.as_str(), "--poll", "100ms"][..], extra].concat();
    let server = Server::start_on(dir.path().join("runs.db"), &args, "warn", dir);
    let token = server.token("acme");
    let graph = json!({"id": "write", "name": "Write", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "draft", "type": "agent", "config": {"agent_id": "writer", "prompt_template": "Write {{trigger.n}}"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "draft"}, {"source": "draft", "target": "end"}]});
    let made = client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&graph).send().await.unwrap();
    assert_eq!(made.status(), StatusCode::CREATED, "{}", made.text().await.unwrap());
    (server, token)
}

/// Starts `runs` runs and waits for each to complete.
async fn run_all(server: &Server, token: &str, runs: usize) {
    let mut started = Vec::new();
    for n in 0..runs {
        let run = server.post(token, "/v1/graphs/write/runs", &json!({"n": n})).await;
        started.push(run["run_id"].as_str().unwrap().to_owned());
    }
    for run_id in &started {
        let done = server.until_run(token, run_id, |run| run["status"] != "running").await;
        assert_eq!(done["status"], "completed", "{done}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_drives_at_most_max_runs_runs_at_once() {
    let (base, seen) = stand_in(Duration::from_millis(300)).await;
    let (server, token) = server_with_agent(&base, json!({}), &["--max-runs", "2"]).await;
    run_all(&server, &token, 8).await;
    assert_eq!(seen.arrivals.lock().unwrap().len(), 8, "one call a run");
    assert_eq!(seen.most_in_flight.load(Ordering::SeqCst), 2, "two at a time, and no more");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_providers_requests_per_minute_paces_every_run_of_the_process() {
    let (base, seen) = stand_in(Duration::ZERO).await;
    let (server, token) = server_with_agent(&base, json!({"requests_per_minute": 300}), &[]).await;
    run_all(&server, &token, 6).await;
    let arrivals = seen.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 6);
    // 300 a minute: one every 200 ms, whatever the runs started together.
    for pair in arrivals.windows(2) {
        let apart = pair[1] - pair[0];
        assert!(apart >= Duration::from_millis(190), "two requests {apart:?} apart");
    }
}
