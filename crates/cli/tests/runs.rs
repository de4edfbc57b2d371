//! The run commands through the real binary on a real SQLite file: a human
//! step answered from another invocation, refused answers, listing, showing and
//! cancelling runs, and an agent node run without its agents file.

use std::path::Path;

use serde_json::Value;
use server::{cli, text};

mod server;

const REVIEW: &str = r#"{"id": "review", "name": "Review", "trigger": {"type": "manual"},
 "nodes": [
  {"id": "start", "type": "start"},
  {"id": "draft", "type": "function", "config": {"action": "json_transform", "template": {"title": "About {{trigger.topic}}"}}},
  {"id": "review", "type": "human", "config": {"prompt": "Publish this draft?", "actions": ["approve", "reject"]}},
  {"id": "publish", "type": "function", "config": {"action": "set_context", "values": {"published": true}}},
  {"id": "end", "type": "end"}],
 "edges": [
  {"source": "start", "target": "draft"}, {"source": "draft", "target": "review"},
  {"source": "review", "target": "publish", "condition": {"type": "field", "path": "review.output.action", "op": "eq", "value": "approve"}},
  {"source": "review", "target": "draft", "condition": {"type": "otherwise"}},
  {"source": "publish", "target": "end"}]}"#;

/// Starts a review run; it parks on the human step. Returns its id.
fn start_review(dir: &Path, db: &Path) -> String {
    let graph = dir.join("review.json");
    std::fs::write(&graph, REVIEW).expect("the graph file is written");
    let graph = graph.to_str().expect("a UTF-8 temp path");
    let output = cli(db, &["run", graph, "--input", r#"{"topic": "rust"}"#]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("draft ✓ {\"title\":\"About rust\"}"), "{stdout}");
    assert!(stdout.contains("review ⏸ Publish this draft? [approve / reject]"), "{stdout}");
    let stderr = text(&output.stderr);
    let hint = stderr.lines().find(|l| l.contains("roomkit-graph answer")).expect("how to answer");
    hint.split_whitespace().nth(2).expect("the run id").to_owned()
}

#[test]
fn a_run_waits_for_a_person_and_an_answer_from_another_invocation_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = start_review(dir.path(), &db);

    let refused = cli(&db, &["answer", &run, "review", "--data", r#"{"action": "maybe"}"#]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("action \"maybe\" is not one of approve, reject"));
    let not_json = cli(&db, &["answer", &run, "review", "--data", "approve"]);
    assert_eq!(not_json.status.code(), Some(2));
    assert!(text(&not_json.stderr).contains("--data is not JSON"));

    let answered = cli(&db, &["answer", &run, "review", "--data", r#"{"action": "approve"}"#]);
    assert_eq!(answered.status.code(), Some(0), "{}", text(&answered.stderr));
    assert!(text(&answered.stdout).contains("cli → review: {\"action\":\"approve\"}"));
    assert!(text(&answered.stdout).contains("■ run completed"));

    let shown = text(&cli(&db, &["show", &run]).stdout);
    assert_eq!(shown.lines().count(), 13, "{shown}");
    let listed = cli(&db, &["--json", "runs", "--status", "completed"]);
    let runs: Vec<Value> = text(&listed.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["run_id"], run.as_str());
}

#[test]
fn a_waiting_run_can_be_cancelled_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = start_review(dir.path(), &db);
    let cancelled = cli(&db, &["cancel", &run, "--reason", "not needed"]);
    assert_eq!(cancelled.status.code(), Some(0), "{}", text(&cancelled.stderr));
    assert!(text(&cancelled.stdout).contains("cancelled"));
    let again = cli(&db, &["cancel", &run]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("already cancelled"));
    let bad_filter = cli(&db, &["runs", "--status", "paused"]);
    assert_eq!(bad_filter.status.code(), Some(2));
    assert!(
        text(&bad_filter.stderr)
            .contains("is not one of running, queued, waiting, completed, failed, cancelled")
    );
}

#[test]
fn an_agent_node_without_an_agents_file_fails_saying_which_option_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let graph = dir.path().join("triage.json");
    std::fs::write(
        &graph,
        r#"{"id": "triage", "name": "Triage", "trigger": {"type": "manual"},
            "nodes": [{"id": "start", "type": "start"},
                      {"id": "triage", "type": "agent", "config": {"agent_id": "triage-agent", "prompt_template": "Triage"}},
                      {"id": "end", "type": "end"}],
            "edges": [{"source": "start", "target": "triage"}, {"source": "triage", "target": "end"}]}"#,
    )
    .unwrap();
    let output = cli(&db, &["run", graph.to_str().expect("a UTF-8 temp path")]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(
            "triage ✗ attempt 1: node \"triage\" failed: agent nodes need an agents file: pass --agents FILE (or set ROOMKIT_GRAPH_AGENTS)"
        ),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn a_database_url_of_an_unknown_kind_is_refused_by_name_and_a_sqlite_url_is_a_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let refused = cli(Path::new("mysql://app@db.internal/runs"), &["runs"]);
    assert_eq!(refused.status.code(), Some(2), "an error, not a refused answer");
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("mysql:// is not a database this build opens"), "{stderr}");
    assert!(!Path::new("mysql:").exists(), "no file made of the URL");

    let file = dir.path().join("runs.db");
    let url = format!("sqlite://{}", file.display());
    let listed = cli(Path::new(&url), &["runs"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(file.exists(), "the SQLite file is created at the URL's path");
}
