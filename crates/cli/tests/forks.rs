//! Time travel and forks through the real binary, on a SQLite file and on a
//! PostgreSQL database, and over HTTP: a run that went review → revise →
//! review → publish is looked at as it stood at its first review, and forked
//! there with the other answer: the fork goes straight on to publish, and the
//! run forked from is byte for byte what it was.

use std::ffi::OsStr;
use std::path::Path;

use serde_json::{Value, json};
use server::{cli, text};

mod server;

/// start → review (approve / reject); reject → revise → review; approve → publish → end.
fn article() -> Value {
    let when =
        |action: &str| json!({"type": "field", "path": "review.output.action", "op": "eq", "value": action});
    json!({"id": "article", "name": "Article", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "review", "type": "human", "config": {"prompt": "Publish {{trigger.doc}}?", "actions": ["approve", "reject"]}},
                  {"id": "revise", "type": "function",
                   "config": {"action": "json_transform", "template": {"doc": "{{trigger.doc}} (revised)"}}},
                  {"id": "publish", "type": "function",
                   "config": {"action": "json_transform", "template": {"published": "{{trigger.doc}}"}}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "review"},
                  {"source": "review", "target": "publish", "condition": when("approve")},
                  {"source": "review", "target": "revise", "condition": when("reject")},
                  {"source": "revise", "target": "review"},
                  {"source": "publish", "target": "end"}]})
}

fn write(dir: &Path, file: &str, graph: &Value) -> String {
    let path = dir.join(file);
    std::fs::write(&path, graph.to_string()).expect("the graph file is written");
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// The JSON lines `--json show RUN` prints: the run's transcript.
fn transcript(db: &OsStr, run: &str) -> Vec<Value> {
    let shown = cli(db, &["--json", "show", run]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    text(&shown.stdout).lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

/// The nodes a transcript's `node_started` entries name, in order.
fn started(events: &[Value]) -> Vec<&str> {
    events.iter().filter(|e| e["type"] == "node_started").filter_map(|e| e["node_id"].as_str()).collect()
}

fn a_run_forked_at_its_first_review_with_the_other_answer_takes_the_other_branch(db: &OsStr) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = write(dir.path(), "article.json", &article());
    let ran = cli(db, &["run", &file, "--input", r#"{"doc": "Q3"}"#]);
    assert_eq!(ran.status.code(), Some(3), "{}", text(&ran.stderr));
    let stderr = text(&ran.stderr);
    let hint = stderr.lines().find(|l| l.contains("waits on")).expect("where the run waits");
    let run = hint.split_whitespace().nth(1).expect("the run id").to_owned();
    for (action, code) in [("reject", 3), ("approve", 0)] {
        let data = json!({"action": action}).to_string();
        let answered = cli(db, &["answer", &run, "review", "--data", &data]);
        assert_eq!(answered.status.code(), Some(code), "{}", text(&answered.stderr));
    }
    let origin = transcript(db, &run);
    assert_eq!(started(&origin), ["start", "review", "revise", "review", "publish", "end"]);
    let before = text(&cli(db, &["--json", "show", &run]).stdout);
    let first_review = origin
        .iter()
        .find(|e| e["type"] == "node_waiting" && e["node_id"] == "review")
        .and_then(|e| e["seq"].as_u64())
        .expect("the first review waited");

    // The run as it stood there: waiting on review, nothing revised or published yet.
    let shown = cli(db, &["show", &run, "--at", &first_review.to_string()]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    assert!(
        shown.contains(&format!("run {run} at #{first_review}: waiting on review (after start)")),
        "{shown}"
    );
    let state: Value = serde_json::from_str(
        text(&cli(db, &["--json", "show", &run, "--at", &first_review.to_string()]).stdout).trim(),
    )
    .expect("the state as JSON");
    assert_eq!(
        (&state["position"]["status"], &state["position"]["current_node_id"]),
        (&json!("waiting"), &json!("review"))
    );
    let context = state["context"].as_object().expect("a context");
    assert!(
        context.contains_key("start") && !context.contains_key("revise") && !context.contains_key("publish"),
        "{state}"
    );

    // Forked there with the other answer: straight on to publish.
    let forked =
        cli(db, &["fork", &run, "--at", &first_review.to_string(), "--data", r#"{"action": "approve"}"#]);
    assert_eq!(forked.status.code(), Some(0), "{}", text(&forked.stderr));
    let said = text(&forked.stderr);
    let line = said.lines().find(|l| l.contains("forked from")).expect("the fork named");
    assert!(line.ends_with(&format!("forked from run {run} at #{first_review}")), "{said}");
    let fork = line.split_whitespace().nth(1).expect("the fork's id").to_owned();
    assert_ne!(fork, run);
    let forked = transcript(db, &fork);
    assert_eq!(forked[0]["type"], "run_started");
    assert_eq!(forked[0]["forked_from"], json!({"run_id": run, "seq": first_review}));
    assert_eq!(forked[0]["trigger"], json!({"doc": "Q3"}));
    assert_eq!(started(&forked), ["publish", "end"], "{forked:#?}");
    assert!(
        forked.iter().any(|e| e["type"] == "answer_received" && e["data"] == json!({"action": "approve"}))
    );
    assert_eq!(forked.last().map(|e| &e["type"]), Some(&json!("run_completed")));

    // The run forked from is byte for byte what it was.
    assert_eq!(text(&cli(db, &["--json", "show", &run]).stdout), before);

    // Where no run can go on from, said precisely; nothing is created.
    let last = origin.last().and_then(|e| e["seq"].as_u64()).expect("a last entry");
    for (at, data, says) in [
        (last + 1, None, format!("run {run} has no entry {}: its entries are 1 to {last}", last + 1)),
        (last, None, format!("run {run} cannot be forked at entry {last}: the run was completed there")),
        (1, Some(r#"{"action": "approve"}"#), "the run did not wait for an answer there".to_owned()),
        (first_review, Some(r#"{"action": "maybe"}"#), "answer refused for \"review\"".to_owned()),
    ] {
        let mut args = vec!["fork", run.as_str(), "--at"];
        let at = at.to_string();
        args.push(&at);
        if let Some(data) = data {
            args.extend(["--data", data]);
        }
        let refused = cli(db, &args);
        assert_ne!(refused.status.code(), Some(0), "fork {args:?} was taken");
        assert!(text(&refused.stderr).contains(&says), "{}", text(&refused.stderr));
    }
    let runs = text(&cli(db, &["--json", "runs"]).stdout);
    assert_eq!(runs.lines().count(), 2, "the refused forks created nothing: {runs}");
}

#[test]
fn a_run_forked_at_its_first_review_with_the_other_answer_takes_the_other_branch_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    a_run_forked_at_its_first_review_with_the_other_answer_takes_the_other_branch(
        dir.path().join("runs.db").as_os_str(),
    );
}

#[test]
fn a_run_forked_at_its_first_review_with_the_other_answer_takes_the_other_branch_on_postgres() {
    let url = roomkit_graph_pgtest::database();
    a_run_forked_at_its_first_review_with_the_other_answer_takes_the_other_branch(OsStr::new(&url));
}

/// Polls `GET /v1/runs/{run_id}` until its status is `status` (10 s at most).
async fn until(server: &server::Server, token: &str, run_id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let run: Value = server.get(token, &format!("/v1/runs/{run_id}")).await;
        if run["status"] == status {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "run {run_id} stayed {run}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_a_run_is_looked_at_and_forked_at_any_entry() {
    let server = server::Server::start(&[]);
    let token = server.token("acme");
    let created = server::client()
        .post(server.url("/v1/graphs"))
        .bearer_auth(&token)
        .json(&article())
        .send()
        .await
        .expect("the request is sent");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let started = server.post(&token, "/v1/graphs/article/runs", &json!({"doc": "Q3"})).await;
    let run = started["run_id"].as_str().expect("a run id").to_owned();
    until(&server, &token, &run, "waiting").await;
    let answer = |action: &str| json!({"node_id": "review", "data": {"action": action}});
    server.post(&token, &format!("/v1/runs/{run}/answer"), &answer("reject")).await;
    until(&server, &token, &run, "waiting").await;
    server.post(&token, &format!("/v1/runs/{run}/answer"), &answer("approve")).await;
    until(&server, &token, &run, "completed").await;
    let transcript_path = format!("/v1/runs/{run}/transcript?limit=1000");
    let before: Value = server.get(&token, &transcript_path).await;
    let first_review = before["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["type"] == "node_waiting"))
        .and_then(|e| e["seq"].as_u64())
        .expect("the first review waited");

    let state: Value = server.get(&token, &format!("/v1/runs/{run}/state?at={first_review}")).await;
    assert_eq!(
        (&state["status"], &state["current_node_id"]),
        (&json!("waiting"), &json!("review")),
        "{state}"
    );
    assert_eq!(state["seq"], first_review);
    assert!(state["context"].get("revise").is_none(), "{state}");
    let after_revise: Value =
        server.get(&token, &format!("/v1/runs/{run}/state?at={}", first_review + 3)).await;
    assert_eq!(after_revise["context"]["revise"]["output"], json!({"doc": "Q3 (revised)"}), "{after_revise}");

    let response = server::client()
        .post(server.url(&format!("/v1/runs/{run}/fork")))
        .bearer_auth(&token)
        .json(&json!({"at": first_review, "data": {"action": "approve"}, "by": "ada"}))
        .send()
        .await
        .expect("the request is sent");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let fork: Value = response.json().await.expect("the fork as JSON");
    let fork_id = fork["run_id"].as_str().expect("the fork's id").to_owned();
    let done = until(&server, &token, &fork_id, "completed").await;
    assert_eq!(done["forked_from"], json!({"run_id": run, "seq": first_review}), "{done}");
    let after: Value = server.get(&token, &transcript_path).await;
    assert_eq!(after, before, "the run forked from is unchanged");

    // Refusals: an entry the run does not have, a point no run goes on from.
    for (body, status) in [
        (json!({"at": 10_000}), reqwest::StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"at": before["events"].as_array().map_or(0, Vec::len)}), reqwest::StatusCode::CONFLICT),
    ] {
        let refused = server::client()
            .post(server.url(&format!("/v1/runs/{run}/fork")))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("the request is sent");
        assert_eq!(refused.status(), status, "{body}");
    }
    let missing = server::client()
        .get(server.url(&format!("/v1/runs/{run}/state?at=0")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the request is sent");
    assert_eq!(missing.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
}
