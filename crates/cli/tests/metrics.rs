//! Metrics through the real binary: `serve --metrics-listen` serves the
//! Prometheus text format, and its counters move as runs start, wait,
//! complete and fail, steps run, requests are answered and commits land.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, client, review_graph};

/// The value of the sample of `name` whose labels include `labels` (0 when
/// there is none).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(key, _)| key.split('{').next() == Some(name))
        .filter(|(key, _)| labels.iter().all(|(label, value)| key.contains(&format!("{label}=\"{value}\""))))
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

async fn scrape(address: &str) -> String {
    let response = client().get(format!("{address}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_counters_move_as_runs_go() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&["--metrics-listen", &listen]);
    let address = server.until_logged("the metrics address", |line| line.starts_with("metrics: "));
    let address = address.trim_start_matches("metrics: ").trim_end_matches("/metrics").to_owned();
    assert_eq!(address, format!("http://{listen}"));
    let token = server.token("acme");
    let made =
        client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&review_graph("Review")).send();
    assert_eq!(made.await.unwrap().status(), StatusCode::CREATED);
    let failing = json!({"id": "triage", "name": "Triage", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "classify", "type": "agent", "config": {"agent_id": "triage", "prompt_template": "hi"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "classify"}, {"source": "classify", "target": "end"}]});
    let made = client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&failing).send();
    assert_eq!(made.await.unwrap().status(), StatusCode::CREATED);
    let before = scrape(&address).await;
    let review = [("org", "acme"), ("graph", "review")];
    assert_eq!(sample(&before, "roomkit_runs_started_total", &review), 0.0);

    const RUNS: usize = 12;
    let mut runs = Vec::new();
    for n in 0..RUNS {
        let run: Value = server.post(&token, "/v1/graphs/review/runs", &json!({"topic": n})).await;
        runs.push(run["run_id"].as_str().unwrap().to_owned());
    }
    for run_id in &runs {
        server.until_run(&token, run_id, |run| run["status"] == "waiting").await;
    }
    let waiting = scrape(&address).await;
    assert_eq!(sample(&waiting, "roomkit_runs_started_total", &review), RUNS as f64);
    assert_eq!(sample(&waiting, "roomkit_runs", &[("status", "waiting")]), RUNS as f64);
    let answer = json!({"node_id": "review", "data": {"action": "approve"}});
    for run_id in &runs[..RUNS / 2] {
        server.post(&token, &format!("/v1/runs/{run_id}/answer"), &answer).await;
        server.until_run(&token, run_id, |run| run["status"] == "completed").await;
    }
    let failed: Value = server.post(&token, "/v1/graphs/triage/runs", &json!({})).await;
    server.until_run(&token, failed["run_id"].as_str().unwrap(), |run| run["status"] == "failed").await;

    let after = scrape(&address).await;
    let finished =
        |status| sample(&after, "roomkit_runs_finished_total", &[("graph", "review"), ("status", status)]);
    assert_eq!(finished("completed"), (RUNS / 2) as f64);
    assert_eq!(
        sample(&after, "roomkit_runs_finished_total", &[("graph", "triage"), ("status", "failed")]),
        1.0
    );
    assert_eq!(sample(&after, "roomkit_runs", &[("status", "waiting")]), (RUNS / 2) as f64);
    assert_eq!(
        sample(&after, "roomkit_steps_total", &[("node_type", "human"), ("outcome", "waiting")]),
        RUNS as f64
    );
    assert_eq!(sample(&after, "roomkit_steps_total", &[("node_type", "agent"), ("outcome", "failed")]), 1.0);
    // Each run drafts, and the answered ones publish: two function steps for those.
    let functions = [("node_type", "function")];
    let function_steps = (RUNS + RUNS / 2) as f64;
    assert_eq!(
        sample(&after, "roomkit_steps_total", &[("node_type", "function"), ("outcome", "completed")]),
        function_steps
    );
    assert_eq!(sample(&after, "roomkit_step_duration_seconds_count", &functions), function_steps);
    let all_steps =
        sample(&after, "roomkit_step_duration_seconds_bucket", &[("node_type", "function"), ("le", "+Inf")]);
    assert_eq!(all_steps, function_steps);
    let started = [("method", "POST"), ("route", "/v1/graphs/{graph_id}/runs"), ("status", "201")];
    assert_eq!(sample(&after, "roomkit_http_requests_total", &started), (RUNS + 1) as f64);
    let commits = [("backend", "sqlite"), ("outcome", "committed")];
    assert!(
        sample(&after, "roomkit_store_commit_seconds_count", &commits)
            > sample(&waiting, "roomkit_store_commit_seconds_count", &commits)
    );
}
