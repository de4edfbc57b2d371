//! A long-running `roomkit-graph serve` keeps its memory flat and its live
//! streams bounded, through real HTTP on loopback:
//!
//! - thousands of small runs started over HTTP (16 at a time): the server's
//!   resident memory (VmRSS, read from /proc/PID/status) after the last run
//!   is within 10% of what it was after the first 2,000. 6,000 runs by
//!   default; `ROOMKIT_SOAK=1` runs the full 20,000. The samples and the rate
//!   are printed (`cargo test -p roomkit-graph-cli --test bounded -- --nocapture`).
//! - event streams beyond `--max-event-streams` are refused with a JSON 503,
//!   and a stream that ends gives its place back.

#![allow(clippy::unwrap_used, reason = "test code: a failed request fails the test")]

mod server;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, SseReader, client};

/// Runs between two memory samples; the first sample is the baseline.
const BATCH: usize = 2_000;

/// How many runs start at once.
const CONCURRENCY: usize = 16;

fn tiny_graph() -> Value {
    json!({"id": "tiny", "name": "Tiny", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "note", "type": "function", "config": {"action": "set_context", "values": {"seen": true}}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "note"}, {"source": "note", "target": "end"}]})
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until the server has no run left running (every run started is over).
async fn until_all_over(server: &Server, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = server.get(token, "/v1/runs?status=running&limit=1").await;
        if running["runs"].as_array().unwrap().is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "runs still running: {running}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_over_thousands_of_runs() {
    let soak = std::env::var("ROOMKIT_SOAK").is_ok_and(|value| value == "1");
    let total = if soak { 20_000 } else { 6_000 };
    let server = Server::start(&[]);
    let token = server.token("acme");
    let http = client();
    let created =
        http.post(server.url("/v1/graphs")).bearer_auth(&token).json(&tiny_graph()).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let began = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..total / BATCH {
        let statuses: Vec<StatusCode> = futures_util::stream::iter(0..BATCH)
            .map(|n| {
                let start =
                    http.post(server.url("/v1/graphs/tiny/runs")).bearer_auth(&token).json(&json!({"n": n}));
                async move { start.send().await.unwrap().status() }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let refused: Vec<&StatusCode> =
            statuses.iter().filter(|status| **status != StatusCode::CREATED).collect();
        assert!(refused.is_empty(), "{} starts refused, e.g. {:?}", refused.len(), refused.first());
        until_all_over(&server, &token).await;
        samples.push(rss_kib(server.pid()));
    }
    let elapsed = began.elapsed();
    eprintln!(
        "soak: {total} runs in {:.1} s ({:.0} runs/s); RSS every {BATCH} runs (KiB): {samples:?}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );

    for status in ["failed", "waiting", "cancelled"] {
        let listed = server.get(&token, &format!("/v1/runs?status={status}&limit=1")).await;
        assert!(listed["runs"].as_array().unwrap().is_empty(), "a run is {status}: {listed}");
    }
    // The rule: after the last run, at most 10% more than after the first batch.
    let (baseline, last) = (samples[0], *samples.last().unwrap());
    assert!(
        last * 10 <= baseline * 11,
        "memory grew from {baseline} KiB to {last} KiB over {total} runs: {samples:?}"
    );
    let mut server = server;
    assert!(server.stop().success(), "serve exits 0 on SIGTERM");
}

fn approval_graph() -> Value {
    json!({"id": "approve", "name": "Approve", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "review", "type": "human", "config": {"prompt": "Approve?", "actions": ["approve"]}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "review"}, {"source": "review", "target": "end"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_beyond_the_cap_are_refused_with_a_json_503() {
    let mut server = Server::start(&["--max-event-streams", "2"]);
    let token = server.token("acme");
    let http = client();
    let created =
        http.post(server.url("/v1/graphs")).bearer_auth(&token).json(&approval_graph()).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let first = server.post(&token, "/v1/graphs/approve/runs", &json!({})).await;
    let second = server.post(&token, "/v1/graphs/approve/runs", &json!({})).await;
    let (first, second) = (first["run_id"].as_str().unwrap(), second["run_id"].as_str().unwrap());
    let events =
        |run_id: &str| http.get(server.url(&format!("/v1/runs/{run_id}/events"))).bearer_auth(&token);

    let open_a = events(first).send().await.unwrap();
    let open_b = events(first).send().await.unwrap();
    assert_eq!((open_a.status(), open_b.status()), (StatusCode::OK, StatusCode::OK));
    let refused = events(second).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");

    // The run ends: so do its two streams, and their places are free again.
    let answer = json!({"node_id": "review", "data": {"action": "approve"}});
    server.post(&token, &format!("/v1/runs/{first}/answer"), &answer).await;
    for stream in [open_a, open_b] {
        let mut reader = SseReader::new(stream);
        let mut last = None;
        while let Some(event) = reader.next().await {
            last = Some(event.event);
        }
        assert_eq!(last.as_deref(), Some("run_completed"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let reopened = loop {
        let response = events(second).send().await.unwrap();
        if response.status() == StatusCode::OK {
            break response;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "the ended streams' places were not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut reader = SseReader::new(reopened);
    assert_eq!(reader.next().await.unwrap().event, "run_started");
    drop(reader);
    assert!(server.stop().success(), "serve exits 0 on SIGTERM");
}
