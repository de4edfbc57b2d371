//! Run-event hooks through a real `roomkit-graph serve`: a hook made over
//! HTTP hears runs wait, complete, fail and be cancelled; a receiver on
//! loopback that answers 500 for a while, across a SIGKILL of the server,
//! then 204, gets every event, each signed so that the documented check
//! (`verify_delivery`) holds and catches a wrong secret or a stale
//! timestamp; each attempt is seen at `GET /v1/hooks/deliveries` and with
//! `hook deliveries`.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::StatusCode;
use roomkit_graph_triggers::{Delivery, SignatureError, verify_delivery};
use serde_json::{Value, json};
use server::{Server, cli, client, review_graph, text};

/// What the receiver was sent, each request as it came.
#[derive(Default)]
struct Received {
    /// Whether it answers 500 (otherwise 204).
    failing: AtomicBool,
    requests: Mutex<Vec<(HeaderMap, Bytes, u16)>>,
}

async fn receive(State(received): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let status = if received.failing.load(Ordering::SeqCst) {
        AxumStatus::INTERNAL_SERVER_ERROR
    } else {
        AxumStatus::NO_CONTENT
    };
    received.requests.lock().unwrap().push((headers, body, status.as_u16()));
    status
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A graph whose only step is an agent, which fails on a server without an
/// agents file.
fn failing_graph() -> Value {
    json!({"id": "triage", "name": "Triage", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "classify", "type": "agent", "config": {"agent_id": "triage", "prompt_template": "hi"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "classify"}, {"source": "classify", "target": "end"}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_gets_every_event_signed_once_in_effect_across_a_server_crash() {
    let received = Arc::new(Received::default());
    received.failing.store(true, Ordering::SeqCst);
    let app =
        axum::Router::new().route("/in", axum::routing::post(receive)).with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut server = Server::start(&["--hooks-to-private-addresses"]);
    let token = server.token("acme");
    for graph in [review_graph("Review"), failing_graph()] {
        let made =
            client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&graph).send().await.unwrap();
        assert_eq!(made.status(), StatusCode::CREATED);
    }
    let events = ["run.completed", "run.failed", "run.waiting", "run.cancelled", "node.failed"];
    let made =
        server.post(&token, "/v1/hooks", &json!({"url": format!("{receiver}/in"), "events": events})).await;
    let (hook_id, secret) =
        (made["hook_id"].as_str().unwrap().to_owned(), made["secret"].as_str().unwrap().to_owned());
    let refused = server
        .post(&token, "/v1/hooks", &json!({"url": "ftp://example.com", "events": ["run.failed"]}))
        .await;
    assert_eq!(refused["error"]["code"], "invalid_hook", "{refused}");
    let listed = server.get(&token, "/v1/hooks").await;
    assert_eq!(listed["hooks"][0]["hook_id"], hook_id.as_str());
    assert!(!listed.to_string().contains(&secret), "the secret is shown once");

    // One run completes after waiting, one is cancelled while it waits, one fails.
    let mut runs = Vec::new();
    for topic in ["kept", "dropped"] {
        let run = server.post(&token, "/v1/graphs/review/runs", &json!({"topic": topic})).await;
        let run_id = run["run_id"].as_str().unwrap().to_owned();
        server.until_run(&token, &run_id, |run| run["status"] == "waiting").await;
        runs.push(run_id);
    }
    let answer = json!({"node_id": "review", "data": {"action": "approve"}});
    server.post(&token, &format!("/v1/runs/{}/answer", runs[0]), &answer).await;
    server.post(&token, &format!("/v1/runs/{}/cancel", runs[1]), &json!({"reason": "not needed"})).await;
    let failed = server.post(&token, "/v1/graphs/triage/runs", &json!({})).await;
    let failed = failed["run_id"].as_str().unwrap().to_owned();
    server.until_run(&token, &failed, |run| run["status"] == "failed").await;
    server.until_run(&token, &runs[0], |run| run["status"] == "completed").await;
    let expected: BTreeSet<(String, &str)> = [
        (&runs[0], "run.waiting"),
        (&runs[0], "run.completed"),
        (&runs[1], "run.waiting"),
        (&runs[1], "run.cancelled"),
        (&failed, "node.failed"),
        (&failed, "run.failed"),
    ]
    .into_iter()
    .map(|(run, event)| (run.clone(), event))
    .collect();

    // Refused for a while: every event tried at least once; then the server is killed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tried: BTreeSet<String> = received
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(headers, _, _)| header(headers, "x-roomkit-delivery").map(str::to_owned))
            .collect();
        if tried.len() == expected.len() {
            break;
        }
        assert!(Instant::now() < deadline, "only {} events were tried: {tried:?}", tried.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.crash_and_restart();
    received.failing.store(false, Ordering::SeqCst);

    // Taken, each event once in effect: the receiver drops the ids it has seen.
    let deadline = Instant::now() + Duration::from_secs(60);
    let taken = loop {
        let mut taken: BTreeMap<String, Value> = BTreeMap::new();
        for (headers, body, status) in received.requests.lock().unwrap().iter() {
            if *status == 204 {
                let body: Value = serde_json::from_slice(body).unwrap();
                taken.entry(header(headers, "x-roomkit-delivery").unwrap().to_owned()).or_insert(body);
            }
        }
        if taken.len() == expected.len() {
            break taken;
        }
        assert!(Instant::now() < deadline, "only {} events were taken: {:?}", taken.len(), taken.keys());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let heard: BTreeSet<(String, &str)> = taken
        .values()
        .map(|body| {
            let event = events.into_iter().find(|event| body["type"] == *event).unwrap();
            (body["data"]["run_id"].as_str().unwrap().to_owned(), event)
        })
        .collect();
    assert_eq!(heard, expected);
    for (id, body) in &taken {
        assert_eq!(body["id"], id.as_str(), "the body names its delivery");
        assert_eq!(body["org"], "acme");
    }
    let failure = taken.values().find(|body| body["type"] == "node.failed").unwrap();
    assert_eq!(failure["data"]["node_id"], "classify");
    assert!(failure["data"]["error"].as_str().unwrap().contains("agent"), "{failure}");

    // Every request verifies with the hook's secret, as sent; a wrong secret
    // or a replay later than five minutes does not.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let now = i64::try_from(now).unwrap();
    let requests = received.requests.lock().unwrap().clone();
    for (headers, body, _) in &requests {
        assert_eq!(
            header(headers, "x-roomkit-event"),
            serde_json::from_slice::<Value>(body).unwrap()["type"].as_str()
        );
        let delivery = Delivery {
            timestamp: header(headers, "x-roomkit-timestamp"),
            roomkit_signature: header(headers, "x-roomkit-signature"),
            hub_signature: None,
        };
        let signed_at: i64 = delivery.timestamp.unwrap().parse().unwrap();
        assert!(verify_delivery(secret.as_bytes(), body, delivery, signed_at + 1).is_ok());
        assert_eq!(
            verify_delivery(b"another secret", body, delivery, signed_at),
            Err(SignatureError::Mismatch("X-Roomkit-Signature"))
        );
        assert!(matches!(
            verify_delivery(secret.as_bytes(), body, delivery, now + 600),
            Err(SignatureError::Stale { .. })
        ));
        let mut tampered = body.to_vec();
        tampered.extend_from_slice(b" ");
        assert!(verify_delivery(secret.as_bytes(), &tampered, delivery, signed_at).is_err());
    }

    // Each attempt is kept: refused ones with the receiver's answer, then the one taken.
    let deadline = Instant::now() + Duration::from_secs(20);
    let deliveries = loop {
        let page = server.get(&token, "/v1/hooks/deliveries?status=delivered").await;
        let deliveries = page["deliveries"].as_array().unwrap().clone();
        if deliveries.len() == expected.len() {
            break deliveries;
        }
        assert!(Instant::now() < deadline, "not all recorded as delivered: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for delivery in &deliveries {
        let attempts = delivery["attempts"].as_array().unwrap();
        assert!(attempts.len() >= 2, "{delivery}");
        assert_eq!(attempts[0]["status_code"], 500);
        assert!(attempts[0]["error"].as_str().unwrap().contains("500"), "{delivery}");
        assert_eq!(attempts.last().unwrap()["status_code"], 204);
        assert_eq!(delivery["body"]["id"], delivery["delivery_id"]);
    }
    let first = server.get(&token, "/v1/hooks/deliveries?limit=4").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = server.get(&token, &format!("/v1/hooks/deliveries?limit=4&cursor={cursor}")).await;
    assert_eq!(rest["deliveries"].as_array().unwrap().len(), expected.len() - 4);
    assert_eq!(rest["next_cursor"], Value::Null);

    let printed = cli(&server.db, &["--org", "acme", "hook", "deliveries", "--status", "delivered"]);
    let printed = text(&printed.stdout);
    assert_eq!(printed.lines().count(), expected.len(), "{printed}");
    assert!(printed.lines().all(|line| line.contains(" delivered ")), "{printed}");
    // A page at a time: the next page's cursor on stderr while pages are full.
    let first = cli(&server.db, &["--org", "acme", "hook", "deliveries", "--limit", "4"]);
    let next = text(&first.stderr);
    let cursor = next.trim().strip_prefix("next page: --cursor ").unwrap_or_else(|| panic!("{next}"));
    let rest = cli(&server.db, &["--org", "acme", "hook", "deliveries", "--limit", "4", "--cursor", cursor]);
    let mut paged: Vec<String> = [&first, &rest]
        .iter()
        .flat_map(|out| text(&out.stdout).lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(paged.len(), expected.len(), "{paged:?}");
    paged.sort();
    paged.dedup();
    assert_eq!(paged.len(), expected.len(), "each once");
    let listed = cli(&server.db, &["--org", "acme", "hook", "list"]);
    assert!(text(&listed.stdout).starts_with(&hook_id), "{}", text(&listed.stdout));

    // Removed: it hears nothing more.
    let removed = client()
        .delete(server.url(&format!("/v1/hooks/{hook_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let again = client()
        .delete(server.url(&format!("/v1/hooks/{hook_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let run = server.post(&token, "/v1/graphs/triage/runs", &json!({})).await;
    server.until_run(&token, run["run_id"].as_str().unwrap(), |run| run["status"] == "failed").await;
    let all = server.get(&token, "/v1/hooks/deliveries").await;
    assert_eq!(all["deliveries"].as_array().unwrap().len(), expected.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_are_made_and_removed_on_the_command_line_and_not_by_read_only_tokens() {
    let server = Server::start(&[]);
    let added = cli(
        &server.db,
        &[
            "--org",
            "acme",
            "--json",
            "hook",
            "add",
            "https://example.com/in",
            "--events",
            "run.failed,node.failed",
        ],
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    let added: Value = serde_json::from_slice(&added.stdout).unwrap();
    assert_eq!(added["events"], json!(["run.failed", "node.failed"]));
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"));
    let unknown =
        cli(&server.db, &["--org", "acme", "hook", "add", "https://example.com", "--events", "run.done"]);
    assert!(!unknown.status.success() && text(&unknown.stderr).contains("\"run.done\" is not an event"));

    let output =
        server::command(&server.db, &["--org", "acme", "token", "create", "--read-only"]).output().unwrap();
    let viewer = text(&output.stdout).trim().to_owned();
    let made = server
        .post(&viewer, "/v1/hooks", &json!({"url": "https://example.com", "events": ["run.failed"]}))
        .await;
    assert_eq!(made["error"]["code"], "read_only_token");
    for path in ["/v1/hooks", "/v1/hooks/deliveries"] {
        let refused = server.get(&viewer, path).await;
        assert_eq!(refused["error"]["code"], "read_only_token", "{path}: URLs may hold credentials");
    }
    let writer = server.token("acme");
    assert_eq!(server.get(&writer, "/v1/hooks").await["hooks"][0]["hook_id"], added["hook_id"]);
    let no_graph = json!({"url": "https://example.com", "events": ["run.failed"], "graph_id": "missing"});
    assert_eq!(server.post(&writer, "/v1/hooks", &no_graph).await["error"]["code"], "not_found");

    let id = added["hook_id"].as_str().unwrap();
    let removed = cli(&server.db, &["--org", "acme", "hook", "remove", id]);
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    assert_eq!(server.get(&writer, "/v1/hooks").await["hooks"], json!([]));
}
