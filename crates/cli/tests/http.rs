//! The HTTP API of a real `roomkit-graph serve` process over loopback: a
//! human-in-the-loop run followed live over Server-Sent Events, parallel
//! approvals answered child by child across a server crash, webhooks with
//! good and bad signatures, a cron trigger firing, event triggers, tenant
//! isolation on every route, bad requests answered 4xx with the server up,
//! every refusal in JSON (a server fault with a fixed message and its request
//! id), slow clients cut off, a valid OpenAPI document, a graceful stop, and
//! two servers sharing a PostgreSQL database.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use roomkit_graph_triggers::sign;
use serde_json::{Value, json};
use server::{Server, SseEvent, SseReader, client, review_graph};

fn simple_graph(id: &str, trigger: Value) -> Value {
    json!({"id": id, "name": id, "trigger": trigger,
        "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "end"}]})
}

async fn create_graph(server: &Server, token: &str, graph: &Value) {
    let response =
        client().post(server.url("/v1/graphs")).bearer_auth(token).json(graph).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("errors are JSON");
    (status, body["error"]["code"].as_str().expect("an error code").to_owned())
}

/// Checks that `seen` is a whole answered run's stream: from its start to its
/// end (after which the stream ended), the answer among them, every event
/// once and in order.
fn assert_whole_answered_run(seen: &[SseEvent]) {
    let kinds: Vec<&str> = seen.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_completed"), "the stream ends after the final event: {kinds:?}");
    assert!(kinds.contains(&"answer_received"));
    let ids: Vec<u64> = seen.iter().map(|event| event.id.as_deref().unwrap().parse().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "every event once, in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_answers_over_http_while_a_client_follows_the_run_live() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    create_graph(&server, &token, &review_graph("Review")).await;

    let run: Value = server.post(&token, "/v1/graphs/review/runs", &json!({"topic": "rust"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let events_url = server.url(&format!("/v1/runs/{run_id}/events"));
    let response = client().get(&events_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut live = SseReader::new(response);

    // The follower sees the run up to where it waits for the person.
    let mut seen = Vec::new();
    while let Some(event) = live.next().await {
        seen.push(event.clone());
        if event.event == "node_waiting" {
            assert_eq!(event.data["prompt"], "Approve the post on rust?");
            assert_eq!(event.data["actions"], json!(["approve", "reject"]));
            break;
        }
    }
    // A wrong answer is refused and changes nothing; the right one finishes the run.
    let answer_url = server.url(&format!("/v1/runs/{run_id}/answer"));
    let refused = client()
        .post(&answer_url)
        .bearer_auth(&token)
        .json(&json!({"node_id": "review", "data": {"action": "maybe"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(refused).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_answer".into()));
    let answered = client()
        .post(&answer_url)
        .bearer_auth(&token)
        .json(&json!({"node_id": "review", "data": {"action": "approve"}, "by": "ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    while let Some(event) = live.next().await {
        seen.push(event);
    }
    assert_whole_answered_run(&seen);

    // Resuming from Last-Event-ID gives exactly the events after it.
    let resumed =
        client().get(&events_url).bearer_auth(&token).header("Last-Event-ID", "3").send().await.unwrap();
    let mut resumed = SseReader::new(resumed);
    let mut again = Vec::new();
    while let Some(event) = resumed.next().await {
        again.push(event);
    }
    assert_eq!(again, seen[3..], "no gap, no duplicate at the seam");

    // The transcript pages agree with the stream.
    let page: Value = server.get(&token, &format!("/v1/runs/{run_id}/transcript?after=2&limit=2")).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][0]["seq"], 3);
    assert_eq!(page["next_after"], 4);
    let done: Value = server.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(done["status"], "completed");
}

/// Legal and security approve a release in parallel while a lint check
/// completes beside them.
fn approvals_graph() -> Value {
    json!({"id": "release", "name": "Release", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "approvals", "type": "parallel", "config": {"join": "all"}},
                  {"id": "legal", "type": "human", "parent": "approvals",
                   "config": {"prompt": "Legal: ship {{trigger.release}}?", "actions": ["approve", "reject"]}},
                  {"id": "security", "type": "human", "parent": "approvals",
                   "config": {"prompt": "Security: ship {{trigger.release}}?", "actions": ["approve", "reject"]}},
                  {"id": "lint", "type": "function", "parent": "approvals",
                   "config": {"action": "set_context", "values": {"clean": true}}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "approvals"}, {"source": "approvals", "target": "end"}]})
}

/// POSTs an answer to `run_id`: the status and the JSON answer.
async fn post_answer(server: &Server, token: &str, run_id: &str, answer: &Value) -> (StatusCode, Value) {
    let url = server.url(&format!("/v1/runs/{run_id}/answer"));
    let response = client().post(url).bearer_auth(token).json(answer).send().await.unwrap();
    (response.status(), response.json().await.expect("answers are JSON"))
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_approvals_are_answered_child_by_child_across_a_server_crash() {
    let mut server = Server::start(&[]);
    let token = server.token("acme");
    create_graph(&server, &token, &approvals_graph()).await;
    let run: Value = server.post(&token, "/v1/graphs/release/runs", &json!({"release": "v2"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();

    // The stream shows each child's question, up to where the run waits.
    let events_url = server.url(&format!("/v1/runs/{run_id}/events"));
    let response = client().get(&events_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut live = SseReader::new(response);
    let mut asked = Vec::new();
    while asked.len() < 2 {
        let event = live.next().await.expect("the stream goes on while the run waits");
        if event.event == "node_waiting" {
            asked.push((
                event.data["node_id"].clone(),
                event.data["prompt"].clone(),
                event.data["actions"].clone(),
            ));
        }
    }
    let actions = json!(["approve", "reject"]);
    assert_eq!(
        asked,
        [
            (json!("legal"), json!("Legal: ship v2?"), actions.clone()),
            (json!("security"), json!("Security: ship v2?"), actions.clone())
        ]
    );
    drop(live);
    let waiting = server.until_run(&token, &run_id, |run| run["status"] == "waiting").await;
    assert_eq!(waiting["current_node_id"], "approvals");
    assert_eq!(waiting["pending"], json!(["legal", "security"]));

    // The parallel node itself is not answered, nor with an action its child does not offer.
    let (status, refused) = post_answer(
        &server,
        &token,
        &run_id,
        &json!({"node_id": "approvals", "data": {"action": "approve"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"legal\"") && message.contains("\"security\""), "{message}");
    let (status, refused) =
        post_answer(&server, &token, &run_id, &json!({"node_id": "legal", "data": {"action": "ship"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_answer");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("action \"ship\" is not one of approve, reject"), "{message}");

    // Legal approves: the run still waits, on security alone.
    let legal = json!({"node_id": "legal", "data": {"action": "approve"}, "by": "ada"});
    let (status, run) = post_answer(&server, &token, &run_id, &legal).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "waiting");
    assert_eq!(run["current_node_id"], "approvals");
    assert_eq!(run["pending"], json!(["security"]));

    // The server crashes and comes back on the same database; security approves there.
    server.crash_and_restart();
    let run: Value = server.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["pending"], json!(["security"]), "{run}");
    let security = json!({"node_id": "security", "data": {"action": "approve"}, "by": "grace"});
    let (status, run) = post_answer(&server, &token, &run_id, &security).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let done = server.until_run(&token, &run_id, |run| run["status"] == "completed").await;
    assert!(done.get("pending").is_none(), "no child waits any more: {done}");

    // The whole run, as the stream replays it: both answers, then the parallel node with all three outputs.
    let replay = client().get(&events_url).bearer_auth(&token).send().await.unwrap();
    let mut replay = SseReader::new(replay);
    let mut seen = Vec::new();
    while let Some(event) = replay.next().await {
        seen.push(event);
    }
    let answers: Vec<(&Value, &Value)> = seen
        .iter()
        .filter(|event| event.event == "answer_received")
        .map(|event| (&event.data["node_id"], &event.data["by"]))
        .collect();
    assert_eq!(answers, [(&json!("legal"), &json!("ada")), (&json!("security"), &json!("grace"))]);
    let completed = seen
        .iter()
        .find(|event| event.event == "node_completed" && event.data["node_id"] == "approvals")
        .expect("the parallel node completed");
    assert_eq!(
        completed.data["output"],
        json!({"legal": {"action": "approve"}, "security": {"action": "approve"}, "lint": {"clean": true}})
    );
    assert_eq!(seen.last().map(|event| event.event.as_str()), Some("run_completed"));
    let ids: Vec<u64> = seen.iter().map(|event| event.id.as_deref().unwrap().parse().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "every event once, in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_sharing_a_postgres_database_follow_and_answer_each_others_runs() {
    let url = roomkit_graph_pgtest::database();
    let start = || Server::start_on(url.clone().into(), &[], "warn", tempfile::tempdir().unwrap());
    let (one, other) = (start(), start());
    let token = one.token("acme");
    create_graph(&one, &token, &review_graph("Review")).await;

    // Started on one server, followed live on the other.
    let run: Value = one.post(&token, "/v1/graphs/review/runs", &json!({"topic": "rust"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let events_url = other.url(&format!("/v1/runs/{run_id}/events"));
    let mut live = SseReader::new(client().get(&events_url).bearer_auth(&token).send().await.unwrap());
    let mut seen = Vec::new();
    while let Some(event) = live.next().await {
        seen.push(event.clone());
        if event.event == "node_waiting" {
            break;
        }
    }
    // Answered on the second; the first drives the rest or the second does:
    // either way the follower on the second sees every step once, in order.
    let answered = client()
        .post(other.url(&format!("/v1/runs/{run_id}/answer")))
        .bearer_auth(&token)
        .json(&json!({"node_id": "review", "data": {"action": "approve"}, "by": "ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(event) = tokio::time::timeout_at(deadline.into(), live.next()).await.unwrap() {
        seen.push(event);
    }
    assert_whole_answered_run(&seen);
    let done = one.until_run(&token, &run_id, |run| run["status"] == "completed").await;
    assert_eq!(done["current_node_id"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_start_runs_only_with_a_good_signature() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    create_graph(
        &server,
        &token,
        &simple_graph("issues", json!({"type": "webhook", "source_type": "github"})),
    )
    .await;
    let secret_url = server.url("/v1/graphs/issues/webhook-secret");
    let set = client()
        .put(&secret_url)
        .bearer_auth(&token)
        .json(&json!({"secret": "s3cret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    let graph = client().get(server.url("/v1/graphs/issues")).bearer_auth(&token).send().await.unwrap();
    assert!(!graph.text().await.unwrap().contains("s3cret"), "the secret is never returned");

    let hook = server.url("/v1/hooks/acme/issues");
    let body = br#"{"action": "opened", "issue": {"title": "Login is down"}}"#.to_vec();
    let unsigned = client().post(&hook).body(body.clone()).send().await.unwrap();
    assert_eq!(error_code(unsigned).await, (StatusCode::UNAUTHORIZED, "bad_signature".into()));
    let forged = client()
        .post(&hook)
        .header("X-Hub-Signature-256", sign(b"guess", &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(forged).await, (StatusCode::UNAUTHORIZED, "bad_signature".into()));
    let runs: Value = server.get(&token, "/v1/runs").await;
    assert_eq!(runs["runs"], json!([]), "refused deliveries start nothing");

    let signed = || {
        client()
            .post(&hook)
            .header("X-Hub-Signature-256", sign(b"s3cret", &body))
            .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .body(body.clone())
    };
    let accepted = signed().send().await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let run: Value = accepted.json().await.unwrap();
    // GitHub redelivers with the same delivery id: the same run, not a second one.
    let redelivered = signed().send().await.unwrap();
    assert_eq!(redelivered.status(), StatusCode::OK);
    assert_eq!(redelivered.json::<Value>().await.unwrap()["run_id"], run["run_id"]);
    let run_id = run["run_id"].as_str().unwrap();
    let page: Value = server.get(&token, &format!("/v1/runs/{run_id}/transcript")).await;
    assert_eq!(page["events"][0]["trigger"]["issue"]["title"], "Login is down");

    // A graph not started by webhooks has no webhook.
    create_graph(&server, &token, &simple_graph("manual", json!({"type": "manual"}))).await;
    let none = client().post(server.url("/v1/hooks/acme/manual")).body("{}").send().await.unwrap();
    assert_eq!(error_code(none).await, (StatusCode::NOT_FOUND, "not_found".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cron_trigger_fires_and_events_start_their_graphs() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    let every_second =
        json!({"type": "scheduled", "schedule": {"cron": "* * * * * *", "timezone": "Europe/Paris"}});
    create_graph(&server, &token, &simple_graph("tick", every_second)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let run = loop {
        let runs: Value = server.get(&token, "/v1/runs?graph_id=tick").await;
        if let Some(run) = runs["runs"].as_array().unwrap().first() {
            break run.clone();
        }
        assert!(Instant::now() < deadline, "the schedule never fired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let page: Value =
        server.get(&token, &format!("/v1/runs/{}/transcript", run["run_id"].as_str().unwrap())).await;
    let trigger = &page["events"][0]["trigger"];
    assert_eq!(trigger["timezone"], "Europe/Paris");
    assert!(trigger["scheduled_at"].as_str().unwrap().ends_with("+01:00"), "{trigger}");

    // A broken schedule is refused when the graph is stored.
    let broken = simple_graph("broken", json!({"type": "scheduled", "schedule": {"cron": "every day"}}));
    let refused =
        client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&broken).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_graph");
    assert_eq!(body["error"]["details"]["errors"][0]["code"], "invalid_trigger");
    assert_eq!(body["error"]["details"]["errors"][0]["field"], "trigger.schedule.cron");

    create_graph(&server, &token, &simple_graph("on-deploy", json!({"type": "event", "event": "deployed"})))
        .await;
    let fired: Value = server.post(&token, "/v1/events/deployed", &json!({"version": "1.2.3"})).await;
    assert_eq!(fired["runs"].as_array().unwrap().len(), 1);
    assert_eq!(fired["runs"][0]["graph_id"], "on-deploy");
    let nobody: Value = server.post(&token, "/v1/events/nobody-listens", &json!({})).await;
    assert_eq!(nobody["runs"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organizations_graphs_and_runs_answer_404_on_every_route() {
    let server = Server::start(&[]);
    let acme = server.token("acme");
    let globex = server.token("globex");
    create_graph(&server, &acme, &review_graph("Review")).await;
    create_graph(&server, &acme, &simple_graph("hook", json!({"type": "webhook"}))).await;
    let run: Value = server.post(&acme, "/v1/graphs/review/runs", &json!({})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    server.until_run(&acme, &run_id, |run| run["status"] == "waiting").await;

    let routes: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (reqwest::Method::GET, "/v1/graphs/review".into(), None),
        (reqwest::Method::PUT, "/v1/graphs/review/webhook-secret".into(), Some(json!({"secret": "x"}))),
        (reqwest::Method::DELETE, "/v1/graphs/review/webhook-secret".into(), None),
        (reqwest::Method::POST, "/v1/graphs/review/runs".into(), Some(json!({}))),
        (reqwest::Method::GET, format!("/v1/runs/{run_id}"), None),
        (reqwest::Method::GET, format!("/v1/runs/{run_id}/transcript"), None),
        (reqwest::Method::GET, format!("/v1/runs/{run_id}/events"), None),
        (reqwest::Method::POST, format!("/v1/runs/{run_id}/cancel"), Some(json!({}))),
        (
            reqwest::Method::POST,
            format!("/v1/runs/{run_id}/answer"),
            Some(json!({"node_id": "review", "data": {"action": "approve"}})),
        ),
        (reqwest::Method::POST, "/v1/hooks/globex/hook".into(), Some(json!({}))),
    ];
    for (method, path, body) in routes {
        let mut request = client().request(method.clone(), server.url(&path)).bearer_auth(&globex);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (StatusCode::NOT_FOUND, "not_found".into()),
            "{method} {path}"
        );
    }
    // Lists show only the organization's own.
    let graphs: Value = server.get(&globex, "/v1/graphs").await;
    assert_eq!(graphs["graphs"], json!([]));
    let runs: Value = server.get(&globex, "/v1/runs").await;
    assert_eq!(runs["runs"], json!([]));
    // Events fired by globex start none of acme's graphs.
    create_graph(&server, &acme, &simple_graph("on-deploy", json!({"type": "event", "event": "deployed"})))
        .await;
    let fired: Value = server.post(&globex, "/v1/events/deployed", &json!({})).await;
    assert_eq!(fired["runs"], json!([]));
    // Globex may use the same graph id for its own graph.
    create_graph(&server, &globex, &simple_graph("review", json!({"type": "manual"}))).await;

    // Nothing globex did touched acme's run.
    let still = server.until_run(&acme, &run_id, |_| true).await;
    assert_eq!(
        (still["status"].as_str(), still["current_node_id"].as_str()),
        (Some("waiting"), Some("review"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_precise_4xx_and_the_server_stays_up() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    create_graph(&server, &token, &review_graph("Review")).await;
    let post = |path: &str| client().post(server.url(path)).bearer_auth(&token);
    let json_post = |path: &str| post(path).header("Content-Type", "application/json");

    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (client().get(server.url("/v1/graphs")), StatusCode::UNAUTHORIZED, "unauthorized"),
        (
            client().get(server.url("/v1/graphs")).bearer_auth("rkg_wrong"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            client().get(server.url("/v1/graphs")).header("Authorization", "Basic eDp5"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (json_post("/v1/graphs").body("{\"id\": "), StatusCode::BAD_REQUEST, "malformed_json"),
        (post("/v1/graphs").json(&review_graph("Review")), StatusCode::CONFLICT, "graph_exists"),
        (post("/v1/graphs/nope/runs"), StatusCode::NOT_FOUND, "not_found"),
        (
            post("/v1/runs/0000/answer").json(&json!({"node_id": "x", "data": {}})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            post("/v1/runs/0000/answer").json(&json!({"node": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            client().get(server.url("/v1/runs?status=sleeping")).bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(error_code(response).await, (status, code.to_owned()));
    }
    // A graph with mistakes lists every one, with its node and field.
    let mut bad = review_graph("Review");
    bad["nodes"][1]["config"] = json!({"action": "teleport"});
    let refused = post("/v1/graphs/validate").json(&bad).send().await.unwrap();
    let report: Value = refused.json().await.unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"][0]["node"], "draft");
    let refused =
        client().put(server.url("/v1/graphs/review")).bearer_auth(&token).json(&bad).send().await.unwrap();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_graph");
    assert_eq!(body["error"]["details"]["errors"][0]["code"], "unknown_function_action");

    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the server is still up");
}

#[tokio::test(flavor = "multi_thread")]
async fn warnings_come_apart_from_errors_and_a_graph_with_warnings_only_is_stored() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    // review and draft lead only to each other once the way out to publish is gone.
    let mut looping = review_graph("Review");
    looping["edges"]
        .as_array_mut()
        .unwrap()
        .retain(|edge| edge["target"] != "publish" && edge["source"] != "publish");
    looping["edges"].as_array_mut().unwrap().push(json!(
        {"source": "start", "target": "end", "condition": {"type": "field", "path": "trigger.skip", "op": "exists", "value": null}}
    ));
    looping["nodes"].as_array_mut().unwrap().retain(|node| node["id"] != "publish");
    let warning = json!({"code": "cycle_without_exit", "node": "draft", "field": null,
        "message": "nodes \"draft\", \"review\" lead only to each other: a run that gets there ends only at \
                    its step limit; give one of them an edge out"});

    let report: Value = server.post(&token, "/v1/graphs/validate", &looping).await;
    assert_eq!(report, json!({"valid": true, "errors": [], "warnings": [warning]}));

    let created =
        client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&looping).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!((&created["graph_id"], &created["version"]), (&json!("review"), &json!(1)));
    assert_eq!(created["warnings"], json!([warning]));
    assert_eq!(created["graph"], looping);

    // A new version without the loop: stored, with no warning.
    let fixed = client()
        .put(server.url("/v1/graphs/review"))
        .bearer_auth(&token)
        .json(&review_graph("Review"))
        .send()
        .await
        .unwrap();
    assert_eq!(fixed.status(), StatusCode::OK);
    let fixed: Value = fixed.json().await.unwrap();
    assert_eq!((&fixed["version"], &fixed["warnings"]), (&json!(2), &json!([])));

    // A mistake and a warning: validate lists both, storing is refused naming the mistake.
    looping["max_steps"] = json!(0);
    let report: Value = server.post(&token, "/v1/graphs/validate", &looping).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"][0]["code"], "invalid_max_steps");
    assert_eq!(report["errors"][0]["field"], "max_steps");
    assert_eq!(report["warnings"], json!([warning]));
    let refused = client()
        .put(server.url("/v1/graphs/review"))
        .bearer_auth(&token)
        .json(&looping)
        .send()
        .await
        .unwrap();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["details"]["errors"][0]["code"], "invalid_max_steps", "{body}");

    // A max_steps that is not a whole number is not a graph.
    looping["max_steps"] = json!(-1);
    let refused = client()
        .post(server.url("/v1/graphs/validate"))
        .bearer_auth(&token)
        .json(&looping)
        .send()
        .await
        .unwrap();
    let (status, body) = json_refusal(refused).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_graph");
    assert_eq!(
        body["error"]["message"],
        "invalid graph JSON: max_steps must be a whole number of steps such as 1000, not -1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graph_whose_subgraph_is_not_stored_is_refused_naming_the_node_and_the_id() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    let parent = json!({"id": "parent", "name": "Parent", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "check", "type": "subgraph", "config": {"graph_id": "review"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "check"}, {"source": "check", "target": "end"}]});
    let report = server.post(&token, "/v1/graphs/validate", &parent).await;
    assert_eq!(report["valid"], false, "{report}");
    let expected = json!({"code": "invalid_subgraph", "node": "check", "field": "graph_id",
        "message": "node \"check\": graph \"review\" is not stored"});
    assert_eq!(report["errors"], json!([expected]));
    let refused =
        client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&parent).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["details"]["errors"], json!([expected]), "{body}");

    create_graph(&server, &token, &review_graph("Review")).await;
    let report = server.post(&token, "/v1/graphs/validate", &parent).await;
    assert_eq!(report["valid"], true, "{report}");
    create_graph(&server, &token, &parent).await;
    // Another organization has no graph "review".
    let other = server.token("globex");
    let refused =
        client().post(server.url("/v1/graphs")).bearer_auth(&other).json(&parent).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_valid_and_lists_every_route() {
    let server = Server::start(&[]);
    let text = client().get(server.url("/v1/openapi.json")).send().await.unwrap().text().await.unwrap();
    assert_eq!(server::openapi::problems(&text), Vec::<String>::new(), "the document is valid");
    let document: Value = serde_json::from_str(&text).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let ids: Vec<&str> = ["get", "put", "post", "delete"]
        .iter()
        .flat_map(|method| document["paths"].as_object().unwrap().values().map(|item| &item[*method]))
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    for id in ["listRuns", "getRun", "listGraphs", "getGraph", "startRun", "answerRun", "followRunEvents"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/v1/graphs",
        "/v1/graphs/{graph_id}",
        "/v1/graphs/validate",
        "/v1/graphs/{graph_id}/webhook-secret",
        "/v1/graphs/{graph_id}/runs",
        "/v1/runs",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/transcript",
        "/v1/runs/{run_id}/cancel",
        "/v1/runs/{run_id}/answer",
        "/v1/runs/{run_id}/events",
        "/v1/hooks/{org}/{graph_id}",
        "/v1/events/{name}",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    // Graphs are described field by field, as the graph files are written.
    let graph_ref = json!({"$ref": "#/components/schemas/Graph"});
    for (path, method) in
        [("/v1/graphs", "post"), ("/v1/graphs/{graph_id}", "put"), ("/v1/graphs/validate", "post")]
    {
        let body = &paths[path][method]["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body, &graph_ref, "{method} {path}");
    }
    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["Graph"]["required"], json!(["id", "name", "trigger"]));
    assert_eq!(schemas["Node"]["required"], json!(["id", "type"]));
    assert_eq!(schemas["Edge"]["properties"]["condition"], json!({"$ref": "#/components/schemas/Condition"}));
    assert_eq!(
        schemas["Condition"]["properties"]["conditions"]["items"],
        json!({"$ref": "#/components/schemas/Condition"})
    );
}

#[test]
fn the_openapi_checks_find_each_broken_rule() {
    let broken = json!({
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/v1/runs": {"get": {"operationId": "list",
                "parameters": [{"name": "limit", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": {"200": {"content": {}}}}},
            "/v1/graphs": {"get": {"operationId": "list",
                "responses": {"200": {"description": "ok",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nowhere"}}}}}}},
            "/v1/runs/{run_id}": {"get": {"operationId": "get", "responses": {"200": {"description": "ok"}}}}
        }
    });
    let problems = server::openapi::problems(&broken.to_string());
    let expected = [
        "GET /v1/runs: path parameter \"limit\" is not in the path",
        "GET /v1/runs: response 200 has no description",
        "GET /v1/runs/{run_id}: {run_id} is not declared as a path parameter",
        "operationId \"list\" is used by GET /v1/runs, GET /v1/graphs",
        "$ref \"#/components/schemas/Nowhere\" points at nothing",
    ];
    for problem in expected {
        assert!(problems.iter().any(|found| found == problem), "{problem} not in {problems:#?}");
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

/// The JSON error of a response, with its status and the headers every
/// answer carries.
async fn json_refusal(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert_eq!(headers["content-type"], "application/json", "{status}: {text}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{status}");
    assert_eq!(headers["cache-control"], "no-store", "{status}");
    assert!(!headers["x-request-id"].is_empty(), "{status}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("no message: {body}"));
    for internal in ["Some(", "None", "struct ", "Json", "::"] {
        assert!(!message.contains(internal), "{status}: {message:?} shows {internal:?}");
    }
    (status, body)
}

/// Sends `request` as it is on a new connection to `address`: the whole
/// answer, up to the connection's end (bounded in time).
async fn raw_exchange(address: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer and close before reading the whole request.
    let _sent_or_cut = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _end_or_reset = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_is_json_in_plain_words_with_its_status() {
    let server = Server::start(&["--max-body-bytes", "4096"]);
    let token = server.token("acme");
    create_graph(&server, &token, &review_graph("Review")).await;
    let run: Value = server.post(&token, "/v1/graphs/review/runs", &json!({"topic": "rust"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    server.until_run(&token, &run_id, |run| run["status"] == "waiting").await;
    let get = |path: &str| client().get(server.url(path)).bearer_auth(&token);
    let post = |path: &str| client().post(server.url(path)).bearer_auth(&token);
    let answer = format!("/v1/runs/{run_id}/answer");
    let long_uri = format!("/v1/runs?graph_id={}", "x".repeat(9000));

    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (get("/v1/runs/%FF%FE"), StatusCode::BAD_REQUEST, "bad_path"),
        (post("/v1/graphs/%C3%28/runs").json(&json!({})), StatusCode::BAD_REQUEST, "bad_path"),
        (get(&long_uri), StatusCode::URI_TOO_LONG, "uri_too_long"),
        (get("/v1/nowhere"), StatusCode::NOT_FOUND, "no_route"),
        (
            client().delete(server.url("/v1/runs")).bearer_auth(&token),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            post("/v1/graphs").header("Content-Type", "text/plain").body(review_graph("Review").to_string()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post("/v1/graphs").body(review_graph("Review").to_string()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post(&answer).header("Content-Type", "application/json").body("{\"node_id\": "),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            post(&answer).header("Content-Type", "application/json").body("[1, 2]"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (post("/v1/graphs").json(&json!([1, 2])), StatusCode::UNPROCESSABLE_ENTITY, "invalid_graph"),
        (post(&answer).json(&json!({"node_id": "draft", "data": {}})), StatusCode::CONFLICT, "not_waiting"),
        (
            post("/v1/graphs").json(&json!({"pad": "x".repeat(8192)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            client().post(server.url("/v1/hooks/acme/review")).body("x".repeat(8192)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (get("/v1/runs?limit=many"), StatusCode::BAD_REQUEST, "bad_query"),
    ];
    for (request, status, code) in cases {
        let (got, body) = json_refusal(request.send().await.unwrap()).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{body}");
    }

    // Requests the HTTP parser cannot take at all (no HTTP client sends them).
    let address = server.base.strip_prefix("http://").unwrap();
    let unreadable = [
        (format!("GET /v1/runs?pad={} HTTP/1.1", "x".repeat(70_000)), "414 URI Too Long", "uri_too_long"),
        ("GET /v1/ru\u{7f}ns HTTP/1.1".to_owned(), "400 Bad Request", "bad_request"),
    ];
    for (line, status, code) in unreadable {
        let answer = raw_exchange(address, &format!("{line}\r\nHost: localhost\r\n\r\n")).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {answer:.200}"));
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
        assert!(head.contains("content-type: application/json") && head.contains("x-request-id: "), "{head}");
        let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
        assert_eq!(body["error"]["code"], code, "{body}");
    }

    // The answer that was refused names where the run waits, in words.
    let refused = post(&answer).json(&json!({"node_id": "draft", "data": {}})).send().await.unwrap();
    let (_, body) = json_refusal(refused).await;
    assert_eq!(
        body["error"]["message"],
        format!("run {run_id} is not waiting on \"draft\": it is waiting on \"review\"")
    );

    // JSON with a charset, a body-less cancel without Content-Type, the
    // scheme in any case: all taken.
    let started = post("/v1/graphs/review/runs")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(r#"{"topic": "go"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::CREATED);
    let other = started.json::<Value>().await.unwrap()["run_id"].as_str().unwrap().to_owned();
    let cancelled = post(&format!("/v1/runs/{other}/cancel")).send().await.unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    for scheme in ["bearer", "BEARER"] {
        let listed = client()
            .get(server.url("/v1/graphs"))
            .header("Authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), StatusCode::OK, "{scheme}");
        assert_eq!(listed.headers()["x-content-type-options"], "nosniff");
        assert_eq!(listed.headers()["cache-control"], "no-store");
    }

    // A client's sane request id comes back; another is replaced.
    let tagged = get("/v1/graphs").header("X-Request-Id", "trace-7f3a").send().await.unwrap();
    assert_eq!(tagged.headers()["x-request-id"], "trace-7f3a");
    let tagged = get("/v1/graphs").header("X-Request-Id", "a b<c>").send().await.unwrap();
    assert_ne!(tagged.headers()["x-request-id"], "a b<c>");
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the server is still up");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_fault_answers_a_fixed_message_and_logs_the_detail_under_its_request_id() {
    let server = Server::start_logging(&["--log-json"], "error");
    let token = server.token("acme");
    let runs = client().get(server.url("/v1/runs")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(runs.status(), StatusCode::OK, "the token is known (and kept) before the database breaks");

    // Every page of the database but the first overwritten under the server
    // (after a checkpoint, so that they are all in the file), and a commit from
    // elsewhere so that its connections read them again.
    let other = rusqlite::Connection::open(&server.db).unwrap();
    other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let mut file = std::fs::read(&server.db).unwrap();
    let page = match u16::from_be_bytes([file[16], file[17]]) {
        1 => 65536,
        size => usize::from(size),
    };
    file[page..].fill(0xA5);
    std::fs::write(&server.db, &file).unwrap();
    other.pragma_update(None, "user_version", 7).unwrap();
    drop(other);
    let failed = client().get(server.url("/v1/graphs")).bearer_auth(&token).send().await.unwrap();
    let header = failed.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (status, body) = json_refusal(failed).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"error": {"code": "storage_error", "message": "internal error", "request_id": header.as_str()}})
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logged = server.logs.lock().unwrap().iter().any(|line| {
            serde_json::from_str::<Value>(line).is_ok_and(|line| {
                line["fields"]["request_id"] == header.as_str()
                    && line["fields"]["detail"].as_str().is_some_and(|detail| detail.contains("malformed"))
            })
        });
        if logged {
            break;
        }
        assert!(Instant::now() < deadline, "the detail is logged with the request id");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_but_live_streams_are_not() {
    let server = Server::start(&["--header-timeout", "1s", "--request-timeout", "1s"]);
    let token = server.token("acme");
    let address = server.base.strip_prefix("http://").unwrap();

    // Half a request's headers, then nothing: the server closes the connection
    // without a word.
    let answer = raw_exchange(address, "GET /v1/graphs HTTP/1.1\r\nHost: localhost\r\nAuthor").await;
    assert_eq!(answer, "", "no answer to half a request");

    // Headers in time, half the body, then nothing: 408, in JSON.
    let answer = raw_exchange(
        address,
        &format!(
            "POST /v1/graphs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"id\": "
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains(r#"{"error":{"code":"timeout","#), "{answer}");

    // A live stream outlasts the request timeout.
    create_graph(&server, &token, &review_graph("Review")).await;
    let run: Value = server.post(&token, "/v1/graphs/review/runs", &json!({})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let events = client().get(server.url(&format!("/v1/runs/{run_id}/events"))).bearer_auth(&token);
    let mut live = SseReader::new(events.send().await.unwrap());
    let mut seen = Vec::new();
    while let Some(event) = live.next().await {
        seen.push(event.clone());
        if event.event == "node_waiting" {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let answered: Value = server
        .post(
            &token,
            &format!("/v1/runs/{run_id}/answer"),
            &json!({"node_id": "review", "data": {"action": "approve"}}),
        )
        .await;
    assert_eq!(answered["run_id"], run_id.as_str());
    while let Some(event) = tokio::time::timeout(Duration::from_secs(20), live.next()).await.unwrap() {
        seen.push(event);
    }
    assert_whole_answered_run(&seen);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_live_streams_and_stops_the_server_cleanly() {
    let mut server = Server::start(&[]);
    let token = server.token("acme");
    create_graph(&server, &token, &review_graph("Review")).await;
    let run: Value = server.post(&token, "/v1/graphs/review/runs", &json!({})).await;
    let run_id = run["run_id"].as_str().unwrap();
    server.until_run(&token, run_id, |run| run["status"] == "waiting").await;
    let response = client()
        .get(server.url(&format!("/v1/runs/{run_id}/events")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut live = SseReader::new(response);
    while live.next().await.is_some_and(|event| event.event != "node_waiting") {}

    let follower = tokio::spawn(async move { while live.next().await.is_some() {} });
    let status = tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    tokio::time::timeout(Duration::from_secs(5), follower).await.expect("the live stream ended").unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_json_lines_with_each_request_and_each_run() {
    let mut server = Server::start_logging(&["--log-json"], "info");
    let token = server.token("acme");
    create_graph(&server, &token, &simple_graph("hello", json!({"type": "manual"}))).await;
    let run: Value = server.post(&token, "/v1/graphs/hello/runs", &json!({})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    server.until_run(&token, &run_id, |run| run["status"] == "completed").await;
    assert!(server.stop().success());

    let logs: Vec<Value> = server
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|line| !line.starts_with("serve:"))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}")))
        .collect();
    let completed = logs
        .iter()
        .find(|line| line["fields"]["message"] == "run completed")
        .expect("the run's completion is logged");
    assert_eq!(completed["span"]["run_id"], run_id.as_str());
    assert_eq!(completed["level"], "INFO");
    assert!(
        logs.iter().any(|line| line["span"]["uri"] == "/v1/graphs/hello/runs"),
        "each request has its span"
    );
}
