//! Requests sent again, through a real `roomkit-graph serve`: an
//! `Idempotency-Key` reused with another body refused.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, client};

fn graph(id: &str, trigger: Value) -> Value {
    json!({"id": id, "name": id, "trigger": trigger,
        "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "end"}]})
}

/// The status, and the answer's run id or error code and message.
async fn answer(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("answers are JSON");
    match body["run_id"].as_str() {
        Some(run_id) => (status, run_id.to_owned(), String::new()),
        None => (
            status,
            body["error"]["code"].as_str().unwrap().to_owned(),
            body["error"]["message"].as_str().unwrap().to_owned(),
        ),
    }
}

async fn runs_of(server: &Server, token: &str, graph: &str) -> usize {
    let runs: Value = server.get(token, &format!("/v1/runs?graph_id={graph}")).await;
    runs["runs"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_reused_with_another_body_is_refused() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    let created = client().post(server.url("/v1/graphs")).bearer_auth(&token);
    let created = created.json(&graph("g", json!({"type": "manual"}))).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let start = |key: &str, body: &str| {
        let request = client().post(server.url("/v1/graphs/g/runs")).bearer_auth(&token);
        request
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let (status, first, _) = answer(start("k1", r#"{"topic": "rust"}"#).await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again, _) = answer(start("k1", r#"{ "topic" : "rust" }"#).await.unwrap()).await;
    assert_eq!(
        (status, again.as_str()),
        (StatusCode::OK, first.as_str()),
        "the same JSON is the same request"
    );
    let (status, code, message) = answer(start("k1", r#"{"topic": "go"}"#).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    assert!(message.contains(&first), "{message}");
    assert_eq!(answer(start("k2", r#"{"topic": "go"}"#).await.unwrap()).await.0, StatusCode::CREATED);
    assert_eq!(runs_of(&server, &token, "g").await, 2);
}
