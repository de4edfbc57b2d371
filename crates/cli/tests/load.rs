//! A bounded load test on loopback: 200 clients start, follow and answer
//! human-in-the-loop runs against a real `roomkit-graph serve` for 30 seconds
//! (`ROOMKIT_GRAPH_LOAD_SECS` changes it). No request may fail and no run may
//! be lost; the throughput and the 99th percentile latency are printed
//! (`cargo test --test load -- --nocapture`).

#![allow(clippy::unwrap_used, reason = "test code: a failed request fails the test")]

mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::Server;

const CLIENTS: usize = 200;

fn approval_graph() -> Value {
    json!({"id": "approve", "name": "Approve", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "prepare", "type": "function", "config": {"action": "set_context", "values": {"ready": true}}},
                  {"id": "review", "type": "human", "config": {"prompt": "Approve {{trigger.n}}?", "actions": ["approve"]}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "prepare"}, {"source": "prepare", "target": "review"},
                  {"source": "review", "target": "end"}]})
}

/// What one client saw: the latency of each request, and the runs it finished.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failures: Vec<String>,
    finished: Vec<String>,
}

impl Tally {
    /// Sends a request, timing it; a non-2xx answer or a transport error is a failure.
    async fn send(&mut self, request: reqwest::RequestBuilder) -> Option<Value> {
        let began = Instant::now();
        let outcome = request.send().await;
        self.latencies.push(began.elapsed());
        match outcome {
            Ok(response) if response.status().is_success() => response.json().await.ok(),
            Ok(response) => {
                let status = response.status();
                self.failures.push(format!("{status}: {}", response.text().await.unwrap_or_default()));
                None
            }
            Err(error) => {
                self.failures.push(error.to_string());
                None
            }
        }
    }
}

async fn client_loop(
    base: String,
    token: String,
    http: reqwest::Client,
    stop: Arc<AtomicBool>,
    n: usize,
) -> Tally {
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let start =
            http.post(format!("{base}/v1/graphs/approve/runs")).bearer_auth(&token).json(&json!({"n": n}));
        let Some(run) = tally.send(start).await else { continue };
        let run_id = run["run_id"].as_str().unwrap().to_owned();
        // Wait for the run to ask, then answer it.
        loop {
            let get = http.get(format!("{base}/v1/runs/{run_id}")).bearer_auth(&token);
            match tally.send(get).await {
                Some(run) if run["status"] == "waiting" => break,
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                None => break,
            }
        }
        let answer = http
            .post(format!("{base}/v1/runs/{run_id}/answer"))
            .bearer_auth(&token)
            .json(&json!({"node_id": "review", "data": {"action": "approve"}}));
        if tally.send(answer).await.is_some() {
            tally.finished.push(run_id);
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_clients_for_thirty_seconds_lose_no_request_and_no_run() {
    let seconds: u64 =
        std::env::var("ROOMKIT_GRAPH_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let server = Server::start(&[]);
    let token = server.token("acme");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let created =
        http.post(server.url("/v1/graphs")).bearer_auth(&token).json(&approval_graph()).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(client_loop(server.base.clone(), token.clone(), http.clone(), Arc::clone(&stop), n))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    for client in clients {
        let tally = client.await.unwrap();
        all.latencies.extend(tally.latencies);
        all.failures.extend(tally.failures);
        all.finished.extend(tally.finished);
    }
    let elapsed = began.elapsed();

    assert!(
        all.failures.is_empty(),
        "{} requests failed, e.g. {:?}",
        all.failures.len(),
        &all.failures[..all.failures.len().min(5)]
    );
    let mut latencies = all.latencies;
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let p50 = latencies[latencies.len() / 2];
    eprintln!(
        "load: {CLIENTS} clients, {:.1} s: {} requests, {:.0} requests/s, p50 {:.1} ms, p99 {:.1} ms, {} runs answered",
        elapsed.as_secs_f64(),
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        all.finished.len(),
    );
    assert!(!all.finished.is_empty());

    // No run is lost: every answered run completes; none is left behind or failed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut open = 0;
        for status in ["running", "waiting", "failed", "cancelled"] {
            let listed = server.get(&token, &format!("/v1/runs?status={status}&limit=1000")).await;
            open += listed["runs"].as_array().unwrap().len();
        }
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} runs did not complete");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for run_id in all.finished.iter().step_by((all.finished.len() / 50).max(1)) {
        let run = server.get(&token, &format!("/v1/runs/{run_id}")).await;
        assert_eq!(run["status"], "completed", "{run}");
    }
}
