//! Child runs through the real binary, on a SQLite file and on a PostgreSQL
//! database: a parent graph whose subgraph node runs a child graph that asks
//! a person; the parent waits, the child is answered from another
//! invocation, and the parent completes with the child's output. `show`
//! lists a parent's children; cancelling a parent cancels its child.

use std::ffi::OsStr;
use std::path::Path;

use serde_json::{Value, json};
use server::{cli, text};

mod server;

fn write(dir: &Path, file: &str, graph: &Value) -> String {
    let path = dir.join(file);
    std::fs::write(&path, graph.to_string()).expect("the graph file is written");
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

fn review() -> Value {
    json!({"id": "review", "name": "Review", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "approve", "type": "human", "config": {"prompt": "Publish {{trigger.doc}}?", "actions": ["yes", "no"]}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "approve"}, {"source": "approve", "target": "end"}]})
}

fn publish() -> Value {
    json!({"id": "publish", "name": "Publish", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "check", "type": "subgraph",
                   "config": {"graph_id": "review", "input": {"doc": "{{trigger.title}}"}, "output": "{{approve.output}}"}},
                  {"id": "done", "type": "function",
                   "config": {"action": "json_transform", "template": {"verdict": "{{check.output.action}}"}}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "check"}, {"source": "check", "target": "done"},
                  {"source": "done", "target": "end"}]})
}

/// Runs `publish` until its child asks; returns the parent's and the child's ids.
fn parent_waiting_on_its_child(db: &OsStr, dir: &Path) -> (String, String) {
    let publish = write(dir, "publish.json", &publish());
    let output = cli(db, &["run", &publish, "--input", r#"{"title": "Q3"}"#]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("approve ⏸ Publish Q3? [yes / no]"), "{stdout}");
    let stderr = text(&output.stderr);
    let started = stderr.lines().find(|l| l.contains("runs child run")).expect("the child named");
    let parent = started.split_whitespace().nth(1).expect("the parent id").trim_end_matches(':').to_owned();
    let hint = stderr.lines().find(|l| l.contains("roomkit-graph answer")).expect("how to answer");
    let child = hint.split_whitespace().nth(2).expect("the child id").to_owned();
    assert!(hint.contains(&format!("answer {child} approve")), "{stderr}");
    assert_ne!(parent, child);
    (parent, child)
}

fn a_parent_completes_with_the_output_of_its_answered_child(db: &OsStr) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let review = write(dir.path(), "review.json", &review());
    assert_eq!(cli(db, &["graph", "put", &review]).status.code(), Some(0));
    let (parent, child) = parent_waiting_on_its_child(db, dir.path());

    let listed = text(&cli(db, &["--json", "runs"]).stdout);
    let runs: Vec<Value> = listed.lines().map(|line| serde_json::from_str(line).expect("JSON")).collect();
    let child_run = runs.iter().find(|run| run["run_id"] == child.as_str()).expect("the child is a run");
    assert_eq!(child_run["parent"], json!({"run_id": parent, "node_id": "check", "runs_node": false}));
    assert_eq!(child_run["status"], "waiting");
    let shown = text(&cli(db, &["show", &parent]).stdout);
    assert!(shown.contains(&format!("check ⤵ child run {child}: review v1")), "{shown}");
    assert!(shown.contains(&format!("child run {child} (check): review waiting on approve")), "{shown}");

    // The parent's node is not for answers; the child's is, and the parent goes on.
    let refused = cli(db, &["answer", &parent, "check", "--data", r#"{"action": "yes"}"#]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("answer the child run"), "{}", text(&refused.stderr));
    let answered = cli(db, &["answer", &child, "approve", "--data", r#"{"action": "no"}"#]);
    assert_eq!(answered.status.code(), Some(0), "{}", text(&answered.stderr));
    let stdout = text(&answered.stdout);
    assert!(stdout.contains(&format!("check ⤴ child run {child} completed")), "{stdout}");
    assert!(stdout.contains("done ✓ {\"verdict\":\"no\"}"), "{stdout}");

    let listed = text(&cli(db, &["--json", "runs", "--status", "completed"]).stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let shown = text(&cli(db, &["show", &parent]).stdout);
    assert!(shown.contains(&format!("child run {child} (check): review completed")), "{shown}");

    // Cancelling a parent cancels its child.
    let (parent, child) = parent_waiting_on_its_child(db, dir.path());
    assert_eq!(cli(db, &["cancel", &parent]).status.code(), Some(0));
    let shown = text(&cli(db, &["show", &child]).stdout);
    assert!(shown.contains("■ run cancelled: its parent run was cancelled"), "{shown}");

    // Cancelling a child fails its parent's node, driven by that same command.
    let (parent, child) = parent_waiting_on_its_child(db, dir.path());
    assert_eq!(cli(db, &["cancel", &child]).status.code(), Some(0));
    let shown = text(&cli(db, &["show", &parent]).stdout);
    assert!(shown.contains(&format!("check ⤴ child run {child} cancelled")), "{shown}");
    assert!(
        shown
            .contains("■ run failed: node \"check\" failed: its child run of graph \"review\" was cancelled"),
        "{shown}"
    );
}

#[test]
fn a_parent_completes_with_the_output_of_its_answered_child_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    a_parent_completes_with_the_output_of_its_answered_child(dir.path().join("runs.db").as_os_str());
}

#[test]
fn a_parent_completes_with_the_output_of_its_answered_child_on_postgres() {
    let url = roomkit_graph_pgtest::database();
    a_parent_completes_with_the_output_of_its_answered_child(OsStr::new(&url));
}

/// Polls `GET /v1/runs/{run_id}` until `done` holds (10 s at most).
async fn until(server: &server::Server, token: &str, run_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let run: Value = server.get(token, &format!("/v1/runs/{run_id}")).await;
        if done(&run) {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "run {run_id} stayed {run}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_a_run_shows_its_parent_and_its_children() {
    let server = server::Server::start(&[]);
    let token = server.token("acme");
    for graph in [review(), publish()] {
        let created = server::client()
            .post(server.url("/v1/graphs"))
            .bearer_auth(&token)
            .json(&graph)
            .send()
            .await
            .expect("the request is sent");
        assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    }
    let started = server.post(&token, "/v1/graphs/publish/runs", &json!({"title": "Q3"})).await;
    let parent = started["run_id"].as_str().expect("a run id").to_owned();
    let waiting = until(&server, &token, &parent, |run| run["children"][0]["status"] == "waiting").await;
    assert_eq!(waiting["status"], "waiting");
    assert_eq!(
        (&waiting["children"][0]["node_id"], &waiting["children"][0]["graph_id"]),
        (&json!("check"), &json!("review"))
    );
    assert!(waiting.get("parent").is_none(), "{waiting}");
    // Where its child waits, for a person to answer there.
    assert_eq!(waiting["children"][0]["waiting_on"], json!(["approve"]));
    assert_eq!(waiting["children"][0]["runs_node"], json!(false));
    let child = waiting["children"][0]["run_id"].as_str().expect("the child's id").to_owned();
    let child_run: Value = server.get(&token, &format!("/v1/runs/{child}")).await;
    assert_eq!(child_run["parent"], json!({"run_id": parent, "node_id": "check", "runs_node": false}));

    server
        .post(
            &token,
            &format!("/v1/runs/{child}/answer"),
            &json!({"node_id": "approve", "data": {"action": "yes"}}),
        )
        .await;
    let done = until(&server, &token, &parent, |run| run["status"] == "completed").await;
    assert_eq!(done["children"][0]["status"], "completed", "{done}");
    assert!(done["children"][0].get("waiting_on").is_none(), "{done}");
}
