//! Limits through a real `roomkit-graph serve`: a small graph that once took
//! the server's memory fails its run on the size limit while the server
//! stays small, and JSON nested too deep is refused at every door, so that
//! nothing accepted becomes unreadable.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, client};

/// start -> `count` log nodes (each dumping the whole context) -> end.
fn log_chain(id: &str, count: usize) -> Value {
    let mut nodes = vec![json!({"id": "start", "type": "start"})];
    let mut edges = Vec::new();
    let mut previous = "start".to_owned();
    for i in 1..=count {
        let id = format!("log{i}");
        nodes.push(json!({"id": id, "type": "log"}));
        edges.push(json!({"source": previous, "target": id}));
        previous = id;
    }
    nodes.push(json!({"id": "end", "type": "end"}));
    edges.push(json!({"source": previous, "target": "end"}));
    json!({"id": id, "name": id, "trigger": {"type": "manual"}, "nodes": nodes, "edges": edges})
}

/// JSON text nested `depth` arrays deep.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// A field of /proc/PID/status, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn until_settled(server: &Server, token: &str, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = server.get(token, &format!("/v1/runs/{run_id}")).await;
        if ["failed", "completed", "waiting"].contains(&run["status"].as_str().unwrap_or_default()) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {run_id} still {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_of_log_nodes_fails_on_the_size_limit_and_the_server_stays_small() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    // 60 log nodes: each dump holds all the others, so they double (once 6.2 GB and counting).
    let graph = log_chain("dumps", 60);
    assert!(graph.to_string().len() < 4096, "a small graph");
    let created =
        client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&graph).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let started = server.post(&token, "/v1/graphs/dumps/runs", &json!({"topic": "x"})).await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let run = until_settled(&server, &token, &run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("more than the limit of"), "{error}");

    // Its transcript reads back, and holds nothing past the limit.
    let response = client()
        .get(server.url(&format!("/v1/runs/{run_id}/transcript?limit=1000")))
        .bearer_auth(&token)
        .send();
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let transcript = response.text().await.unwrap();
    assert!(transcript.len() < 8 << 20, "a {}-byte transcript", transcript.len());

    // The server's peak memory, as the kernel counts it.
    let peak = proc_status_kib(server.pid(), "VmHWM:");
    assert!(peak < 300 * 1024, "the server peaked at {peak} KiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_nested_too_deep_is_refused_at_every_door() {
    let server = Server::start(&["--allow-unsigned-webhooks"]);
    let token = server.token("acme");
    let review = json!({"id": "review", "name": "Review", "trigger": {"type": "webhook"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "review", "type": "human", "config": {"actions": ["approve"]}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "review"}, {"source": "review", "target": "end"}]});
    let created =
        client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&review).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let run = server.post(&token, "/v1/graphs/review/runs", &json!({})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    until_settled(&server, &token, &run_id).await;

    // 70 levels parse as JSON but pass the limit; 200 do not even parse.
    for depth in [70, 200] {
        let body = nested(depth);
        let answer = format!(r#"{{"node_id": "review", "data": {{"action": "approve", "notes": {body}}}}}"#);
        for (path, body, with_token) in [
            ("/v1/graphs/review/runs".to_owned(), body.clone(), true),
            ("/v1/hooks/acme/review".to_owned(), body.clone(), false),
            (format!("/v1/runs/{run_id}/answer"), answer, true),
            ("/v1/graphs".to_owned(), format!(r#"{{"id": "deep", "metadata": {body}}}"#), true),
        ] {
            let mut request =
                client().post(server.url(&path)).header("content-type", "application/json").body(body);
            if with_token {
                request = request.bearer_auth(&token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} at depth {depth}");
            let refusal: Value = response.json().await.unwrap();
            assert_eq!(refusal["error"]["code"], "too_deep", "{path}: {refusal}");
            let message = refusal["error"]["message"].as_str().unwrap();
            assert!(message.contains("the limit of 64"), "{path}: {message}");
        }
    }

    // Nothing was started or answered by them, and the run reads back whole.
    let runs = server.get(&token, "/v1/runs").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    let run = server.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "waiting");
    let transcript = client()
        .get(server.url(&format!("/v1/runs/{run_id}/transcript")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(transcript.status(), StatusCode::OK);
}
