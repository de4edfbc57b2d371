//! Requests sent again, through a real `roomkit-graph serve`: webhook
//! deliveries signed with a timestamp (refused when stale) or GitHub's way
//! (a replay starts no second run), unsigned deliveries taken only by a
//! server started to take them, and an `Idempotency-Key` reused with another
//! body refused.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use roomkit_graph_triggers::{sign, sign_timestamped};
use serde_json::{Value, json};
use server::{Server, client};

const SECRET: &[u8] = b"s3cret";

fn graph(id: &str, trigger: Value) -> Value {
    json!({"id": id, "name": id, "trigger": trigger,
        "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "end"}]})
}

/// Creates a webhook graph `id`, with the webhook secret [`SECRET`] when `signed`.
async fn webhook_graph(server: &Server, token: &str, id: &str, signed: bool) {
    let created = client().post(server.url("/v1/graphs")).bearer_auth(token);
    let created = created.json(&graph(id, json!({"type": "webhook", "source_type": "github"}))).send();
    assert_eq!(created.await.unwrap().status(), StatusCode::CREATED);
    if signed {
        let secret = json!({"secret": String::from_utf8_lossy(SECRET)});
        let url = server.url(&format!("/v1/graphs/{id}/webhook-secret"));
        let set = client().put(url).bearer_auth(token).json(&secret).send().await.unwrap();
        assert_eq!(set.status(), StatusCode::NO_CONTENT);
    }
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs().try_into().unwrap()
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

/// Posts `body` to the webhook of `graph` with `headers`.
async fn deliver(
    server: &Server,
    graph: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> (StatusCode, String, String) {
    let url = server.url(&format!("/v1/hooks/acme/{graph}"));
    let mut request = client().post(url).header("Content-Type", "application/json").body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    answer(request.send().await.unwrap()).await
}

async fn runs_of(server: &Server, token: &str, graph: &str) -> usize {
    let runs: Value = server.get(token, &format!("/v1/runs?graph_id={graph}")).await;
    runs["runs"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_deliveries_start_one_run_each_and_stale_or_replayed_ones_start_none() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    webhook_graph(&server, &token, "issues", false).await;
    let body = br#"{"action": "opened", "issue": {"title": "Login is down"}}"#;

    // No secret yet: nothing is taken, and the answer says how to set one.
    let (status, code, message) = deliver(&server, "issues", body, &[]).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "no_webhook_secret"));
    assert!(message.contains("PUT /v1/graphs/issues/webhook-secret"), "{message}");
    webhook_graph(&server, &token, "signed", true).await;

    // Our scheme: a timestamp and the body, signed together.
    let stamped = |at: i64| {
        vec![
            ("X-Roomkit-Timestamp", at.to_string()),
            ("X-Roomkit-Signature", sign_timestamped(SECRET, at, body)),
        ]
    };
    let now = now_secs();
    let (status, first, _) = deliver(&server, "signed", body, &stamped(now)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, again, _) = deliver(&server, "signed", body, &stamped(now)).await;
    assert_eq!((status, again.as_str()), (StatusCode::OK, first.as_str()), "a replay answers the first run");
    for stale in [now - 600, now + 600] {
        let (status, code, message) = deliver(&server, "signed", body, &stamped(stale)).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "bad_signature"));
        assert!(message.contains("seconds away from the server's clock"), "{message}");
    }
    let mut forged = stamped(now);
    forged[1].1 = sign_timestamped(b"guess", now, body);
    assert_eq!(deliver(&server, "signed", body, &forged).await.1, "bad_signature");
    let mut moved = stamped(now);
    moved[0].1 = (now - 1).to_string();
    assert_eq!(deliver(&server, "signed", body, &moved).await.1, "bad_signature", "the timestamp is signed");
    let (status, later, _) = deliver(&server, "signed", body, &stamped(now + 1)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "signed again at another time, a new delivery");
    assert_ne!(later, first);

    // GitHub's scheme: the body only. The delivery id is not signed: it
    // neither makes a replay new nor makes another body a replay.
    let github = |body: &[u8], delivery: &str| {
        vec![("X-Hub-Signature-256", sign(SECRET, body)), ("X-GitHub-Delivery", delivery.to_owned())]
    };
    let other = br#"{"action": "closed"}"#;
    let (status, closed, _) = deliver(&server, "signed", other, &github(other, "d-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, replayed, _) = deliver(&server, "signed", other, &github(other, "d-2")).await;
    assert_eq!((status, replayed.as_str()), (StatusCode::OK, closed.as_str()));
    let third = br#"{"action": "reopened"}"#;
    assert_eq!(deliver(&server, "signed", third, &github(third, "d-1")).await.0, StatusCode::ACCEPTED);
    assert_eq!(deliver(&server, "signed", other, &github(b"{}", "d-3")).await.1, "bad_signature");
    assert_eq!(runs_of(&server, &token, "signed").await, 4, "one run per delivery, none per replay");
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_deliveries_are_taken_only_by_a_server_started_to_take_them() {
    let server = Server::start(&["--allow-unsigned-webhooks"]);
    let token = server.token("acme");
    webhook_graph(&server, &token, "open", false).await;
    webhook_graph(&server, &token, "signed", true).await;
    for _ in 0..2 {
        assert_eq!(deliver(&server, "open", b"{}", &[]).await.0, StatusCode::ACCEPTED);
    }
    assert_eq!(
        runs_of(&server, &token, "open").await,
        2,
        "unsigned deliveries are never taken for one another"
    );
    let (status, code, _) = deliver(&server, "signed", b"{}", &[]).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "bad_signature"), "a secret still binds");
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
