//! Limits through a real `roomkit-graph serve`: a small graph that once took
//! the server's memory fails its run on the size limit while the server
//! stays small, and JSON nested too deep is refused at every door, so that
//! nothing accepted becomes unreadable; and the limit options, set below
//! their defaults, hold for `run` and `validate`.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, cli, client, text};

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

/// A graph whose one function node outputs `{"text": "x" * len}`.
fn one_output(len: usize) -> Value {
    json!({"id": "big", "name": "Big", "trigger": {"type": "manual"},
           "nodes": [{"id": "start", "type": "start"},
                     {"id": "big", "type": "function",
                      "config": {"action": "set_context", "values": {"text": "x".repeat(len)}}},
                     {"id": "end", "type": "end"}],
           "edges": [{"source": "start", "target": "big"}, {"source": "big", "target": "end"}]})
}

#[test]
fn the_limit_options_hold_for_run_and_validate_and_say_each_reason_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let file = dir.path().join("big.json");
    std::fs::write(&file, one_output(500).to_string()).unwrap();
    let file = file.to_str().unwrap();
    let run = |options: &[&str], input: &str| {
        let mut args = options.to_vec();
        args.extend(["run", file, "--input", input]);
        cli(&db, &args)
    };

    let output = run(&[], "{}");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = run(&["--max-output-bytes", "400"], "{}");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(
            "run failed: node \"big\": its output is 511 bytes as JSON, more than the limit of 400"
        ),
        "{}",
        text(&output.stdout)
    );
    let output = run(&["--max-context-bytes", "400"], "{}");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("its output would make the run's context"),
        "{}",
        text(&output.stdout)
    );

    // Refused before anything runs, each reason said once.
    let output = run(&["--max-output-bytes", "600"], &json!({"a": "y".repeat(700)}).to_string());
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr.trim_end(),
        "roomkit-graph: node \"start\": the trigger data is 708 bytes as JSON, more than the limit of 600"
    );
    let output = run(&["--max-json-depth", "3"], &nested(5));
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr).trim_end(),
        "roomkit-graph: --input nests 5 levels deep, more than the limit of 3"
    );

    let output = cli(&db, &["--max-graph-nodes", "2", "validate", file]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("limit_exceeded: the graph has 3 nodes, more than the limit of 2"),
        "{}",
        text(&output.stdout)
    );

    // An empty graph id and a human node's actions as one string, through `validate`.
    let mut bad = one_output(1);
    bad["id"] = json!("");
    bad["nodes"][1] =
        json!({"id": "big", "type": "human", "config": {"prompt": "Ok?", "actions": "approve"}});
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, bad.to_string()).unwrap();
    let output = cli(&db, &["validate", bad_file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("invalid_id: graph id \"\": it is empty"), "{stdout}");
    assert!(stdout.contains("invalid_actions node=big field=actions"), "{stdout}");
}
