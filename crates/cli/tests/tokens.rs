//! Access tokens over a real `roomkit-graph serve`: made with `token create`
//! (read-only, expiring), listed without their secret with their last use,
//! and revoked with `token revoke`, after which every server sharing the
//! database (two processes on one SQLite file, or on one PostgreSQL
//! database) refuses the token on its next request.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, cli, client, command, review_graph, text};

/// A token made with `token create --json` and `args`: the token and its id.
fn create(db: impl AsRef<Path>, org: &str, args: &[&str]) -> (String, String) {
    let output = command(db.as_ref(), &[&["--org", org, "--json", "token", "create"], args].concat())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let made: Value = serde_json::from_slice(&output.stdout).unwrap();
    (made["token"].as_str().unwrap().to_owned(), made["id"].as_str().unwrap().to_owned())
}

/// The tokens `token list --json` prints, by line.
fn listed(db: impl AsRef<Path>, org: &str) -> (Vec<Value>, String) {
    let output = command(db.as_ref(), &["--org", org, "--json", "token", "list"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed = text(&output.stdout);
    (printed.lines().map(|line| serde_json::from_str(line).unwrap()).collect(), printed)
}

/// What `method path` with `token` answers: its status and error code.
async fn call(server: &Server, token: &str, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let request = match method {
        "GET" => client().get(server.url(path)),
        _ => client().post(server.url(path)).json(&body),
    };
    let response = request.bearer_auth(token).send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_tokens_only_read_expired_ones_are_refused_and_tokens_are_listed_without_secrets() {
    let server = Server::start(&[]);
    let (full, full_id) = create(&server.db, "acme", &["--label", "ci"]);
    let (viewer, viewer_id) = create(&server.db, "acme", &["--label", "dashboard", "--read-only"]);
    let (brief, brief_id) = create(&server.db, "acme", &["--expires", "5s"]);
    let made = Instant::now();
    assert_eq!(
        call(&server, &brief, "GET", "/v1/runs", Value::Null).await.0,
        StatusCode::OK,
        "taken until its time"
    );
    let (_, theirs_id) = create(&server.db, "globex", &[]);

    let (status, _) = call(&server, &full, "POST", "/v1/graphs", review_graph("Review")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, run) =
        call(&server, &full, "POST", "/v1/graphs/review/runs", json!({"topic": "rust"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    server.until_run(&viewer, &run_id, |run| run["status"] == "waiting").await;

    // Read-only: reads, follows and checks; never starts, answers, cancels or stores.
    for path in ["/v1/runs", &format!("/v1/runs/{run_id}"), "/v1/inbox", "/v1/graphs/review/drawing"] {
        assert_eq!(call(&server, &viewer, "GET", path, Value::Null).await.0, StatusCode::OK, "{path}");
    }
    let (status, _) = call(&server, &viewer, "POST", "/v1/graphs/validate", review_graph("Checked")).await;
    assert_eq!(status, StatusCode::OK);
    for (path, body) in [
        ("/v1/graphs/review/runs".to_owned(), json!({"topic": "go"})),
        (format!("/v1/runs/{run_id}/answer"), json!({"node_id": "review", "data": {"action": "approve"}})),
        (format!("/v1/runs/{run_id}/cancel"), json!({})),
        ("/v1/graphs".to_owned(), review_graph("Taken")),
    ] {
        let (status, refusal) = call(&server, &viewer, "POST", &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {refusal}");
        assert_eq!(refusal["error"]["code"], "read_only_token", "{refusal}");
        assert!(refusal["error"]["message"].as_str().unwrap().contains(&viewer_id), "{refusal}");
    }
    let still = server.get(&full, &format!("/v1/runs/{run_id}")).await;
    assert_eq!((still["status"].as_str(), still["graph_version"].as_u64()), (Some("waiting"), Some(1)));

    // Expiring: refused once past its time, saying when it expired.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(made.elapsed()) + Duration::from_millis(100))
        .await;
    let (status, refusal) = call(&server, &brief, "GET", "/v1/runs", Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refusal}");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(message.contains(&brief_id) && message.contains("expired at"), "{message}");

    // Listed oldest first, with their use; never a secret nor a hash; never another organization's.
    let deadline = Instant::now() + Duration::from_secs(10);
    let tokens = loop {
        let (tokens, printed) = listed(&server.db, "acme");
        for secret in [&full, &viewer, &brief] {
            assert!(!printed.contains(secret.as_str()), "no secret listed: {printed}");
            assert!(!printed.contains(&roomkit_graph_server::hash_token(secret)), "no hash listed");
        }
        if tokens.iter().all(|token| token["last_used_at"].is_i64()) {
            break tokens;
        }
        assert!(Instant::now() < deadline, "the uses were never recorded: {printed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ids: Vec<&str> = tokens.iter().map(|token| token["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [&full_id, &viewer_id, &brief_id]);
    assert!(!ids.contains(&theirs_id.as_str()));
    assert_eq!(tokens[0]["label"], "ci");
    assert_eq!(
        tokens.iter().map(|token| token["read_only"].as_bool().unwrap()).collect::<Vec<_>>(),
        [false, true, false]
    );
    let brief = &tokens[2];
    assert_eq!(brief["expires_at"].as_i64().unwrap() - brief["created_at"].as_i64().unwrap(), 5_000);
    assert_eq!((tokens[0]["expires_at"].is_null(), tokens[1]["expires_at"].is_null()), (true, true));

    let people = cli(&server.db, &["--org", "acme", "token", "list"]);
    let people = text(&people.stdout);
    let lines: Vec<&str> = people.lines().collect();
    assert_eq!(lines.len(), 3, "{people}");
    assert!(
        lines[0].starts_with(&full_id) && lines[0].contains("\"ci\"") && lines[0].contains("never expires")
    );
    assert!(lines[1].contains("read-only") && lines[1].contains("last used 20"), "{people}");
    assert!(lines[2].contains("EXPIRED"), "{people}");

    // Revoking names the token's organization: another's id, or an unknown one, is refused.
    for id in [theirs_id.as_str(), "tok_0000000000000000"] {
        let refused = cli(&server.db, &["--org", "acme", "token", "revoke", id]);
        assert!(!refused.status.success());
        assert!(
            text(&refused.stderr).contains(&format!("has no token \"{id}\"")),
            "{}",
            text(&refused.stderr)
        );
    }
    let zero = cli(&server.db, &["--org", "acme", "token", "create", "--expires", "0s"]);
    assert!(
        !zero.status.success() && text(&zero.stderr).contains("longer than 0s"),
        "{}",
        text(&zero.stderr)
    );
}

/// Two servers on one database answer a token, which `token revoke` (a
/// third process) revokes: both refuse it on their very next request, and
/// go on taking the organization's other tokens.
async fn a_revoked_token_is_refused_by_both_servers(one: &Server, other: &Server) {
    let (token, id) = create(&one.db, "acme", &["--label", "leaked"]);
    let (kept, _) = create(&one.db, "acme", &[]);
    for _ in 0..3 {
        for server in [one, other] {
            assert_eq!(call(server, &token, "GET", "/v1/runs", Value::Null).await.0, StatusCode::OK);
        }
    }
    let revoked = cli(&one.db, &["--org", "acme", "token", "revoke", &id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    for server in [one, other] {
        let (status, refusal) = call(server, &token, "GET", "/v1/runs", Value::Null).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refusal}");
        assert_eq!(refusal["error"]["message"], "the token is not valid");
        assert_eq!(call(server, &kept, "GET", "/v1/runs", Value::Null).await.0, StatusCode::OK);
    }
    let (tokens, _) = listed(&one.db, "acme");
    assert!(tokens.iter().all(|token| token["id"] != id.as_str()), "gone from the list");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_refused_at_once_by_two_servers_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let one = Server::start_on(db.clone(), &[], "warn", tempfile::tempdir().unwrap());
    let other = Server::start_on(db, &[], "warn", dir);
    a_revoked_token_is_refused_by_both_servers(&one, &other).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_refused_at_once_by_two_servers_on_one_postgres_database() {
    let url = roomkit_graph_pgtest::database();
    let start = || Server::start_on(url.clone().into(), &[], "warn", tempfile::tempdir().unwrap());
    let (one, other) = (start(), start());
    a_revoked_token_is_refused_by_both_servers(&one, &other).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_ends_the_event_streams_it_opened() {
    let server = Server::start(&[]);
    let (token, id) = create(&server.db, "acme", &[]);
    let (status, _) = call(&server, &token, "POST", "/v1/graphs", review_graph("Review")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, run) = call(&server, &token, "POST", "/v1/graphs/review/runs", json!({"topic": "rust"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    server.until_run(&token, &run_id, |run| run["status"] == "waiting").await;
    let events = server.url(&format!("/v1/runs/{run_id}/events"));
    let response = reqwest::Client::new().get(&events).bearer_auth(&token).send().await.unwrap();
    let mut stream = server::SseReader::new(response);
    while let Some(event) = stream.next().await {
        if event.event == "node_waiting" {
            break;
        }
    }
    let revoked = cli(&server.db, &["--org", "acme", "token", "revoke", &id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let ended = tokio::time::timeout(Duration::from_secs(45), stream.next()).await.expect("the stream ends");
    assert_eq!(ended, None, "nothing more is sent");
}

/// Every operation of the OpenAPI document but reads, checks and drawings
/// (and the signed webhook, which takes no token) refuses a read-only
/// token: a route added later without `Writer` fails here.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_token_is_refused_by_every_operation_that_changes_something() {
    let server = Server::start(&[]);
    let (viewer, _) = create(&server.db, "acme", &["--read-only"]);
    let document: Value =
        client().get(server.url("/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let only_compute = ["validateGraph", "drawGraphBody", "deliverWebhook"];
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_default();
            if method == "get" || only_compute.contains(&id) {
                continue;
            }
            // Every path parameter as 1: a graph, run or hook id, or a version.
            let mut concrete = String::new();
            for (index, part) in path.split(['{', '}']).enumerate() {
                concrete.push_str(if index % 2 == 1 { "1" } else { part });
            }
            let url = server.url(&concrete);
            let request = match method.as_str() {
                "post" => client().post(url),
                "put" => client().put(url),
                "delete" => client().delete(url),
                other => panic!("an operation with method {other}"),
            };
            let response = request.bearer_auth(&viewer).json(&json!({})).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                (status, &body["error"]["code"]),
                (StatusCode::FORBIDDEN, &json!("read_only_token")),
                "{id}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 13, "only {checked} operations change something");
}
