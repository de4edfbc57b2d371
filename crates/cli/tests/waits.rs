//! Runs that wait on several things, through the real binary on a real
//! SQLite file (and PostgreSQL for the step limit): parallel approvals answered
//! child by child from separate invocations, `join: "any"`, an agent whose
//! provider keeps failing taking its error route to a notification, and the
//! step limit that stops a loop with no exit.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use server::{approvals_graph, cli, serve_on_loopback, text};

mod server;

/// Writes `graph` in `dir` and returns its path.
fn graph_file(dir: &Path, graph: &Value) -> PathBuf {
    let path = dir.join(format!("{}.json", graph["id"].as_str().expect("an id")));
    std::fs::write(&path, graph.to_string()).expect("the graph file is written");
    path
}

/// The run id in `run`'s hint to answer it.
fn run_id(output: &Output) -> String {
    let stderr = text(&output.stderr);
    let hint = stderr.lines().find(|l| l.contains("roomkit-graph answer")).expect("how to answer");
    hint.split_whitespace().nth(2).expect("the run id").to_owned()
}

/// The run's transcript entries, as `show --json` prints them.
fn entries(db: &str, run: &str) -> Vec<Value> {
    let shown = cli(db, &["--json", "show", run]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    text(&shown.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .collect()
}

fn kinds(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|entry| entry["type"].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn legal_and_security_approve_child_by_child_from_separate_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let db = db.to_str().unwrap();
    let graph = graph_file(dir.path(), &approvals_graph("release-all", "all"));
    let graph = graph.to_str().unwrap();
    let valid = cli(db, &["validate", graph]);
    assert_eq!(valid.status.code(), Some(0), "{}{}", text(&valid.stdout), text(&valid.stderr));

    let started = cli(db, &["run", graph, "--input", r#"{"release": "v2"}"#]);
    assert_eq!(started.status.code(), Some(3), "{}", text(&started.stderr));
    let stdout = text(&started.stdout);
    assert!(stdout.contains("legal ⏸ Legal: ship v2? [approve / reject]"), "{stdout}");
    assert!(stdout.contains("security ⏸ Security: ship v2? [approve / reject]"), "{stdout}");
    let stderr = text(&started.stderr);
    let run = run_id(&started);
    assert!(stderr.contains(&format!("roomkit-graph answer {run} legal")), "{stderr}");
    assert!(stderr.contains(&format!("roomkit-graph answer {run} security")), "{stderr}");

    // The parallel node itself is not answered, nor with an action its child does not offer.
    let refused = cli(db, &["answer", &run, "approvals", "--data", r#"{"action": "approve"}"#]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("answer \"legal\" or \"security\""), "{}", text(&refused.stderr));
    let refused = cli(db, &["answer", &run, "legal", "--data", r#"{"action": "ship"}"#]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("action \"ship\" is not one of approve, reject"));

    let first = cli(db, &["answer", &run, "legal", "--data", r#"{"action": "approve"}"#]);
    assert_eq!(first.status.code(), Some(3), "still waiting: {}", text(&first.stderr));
    assert!(text(&first.stderr).contains(&format!("roomkit-graph answer {run} security")));
    assert!(!text(&first.stderr).contains(&format!("roomkit-graph answer {run} legal")));

    let second = cli(db, &["answer", &run, "security", "--data", r#"{"action": "approve"}"#]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert!(text(&second.stdout).contains("■ run completed"));
    let entries = entries(db, &run);
    let completed = entries.iter().find(|e| e["type"] == "node_completed" && e["node_id"] == "approvals");
    assert_eq!(
        completed.expect("the parallel node completed")["output"],
        json!({"legal": {"action": "approve"}, "security": {"action": "approve"}, "lint": {"clean": true}})
    );
}

#[test]
fn with_join_any_the_first_answer_wins_and_the_other_wait_closes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let db = db.to_str().unwrap();
    let graph = graph_file(dir.path(), &approvals_graph("release-any", "any"));
    let started = cli(db, &["run", graph.to_str().unwrap(), "--input", r#"{"release": "v3"}"#]);
    assert_eq!(started.status.code(), Some(3), "{}", text(&started.stderr));
    let run = run_id(&started);

    let answered = cli(db, &["answer", &run, "security", "--data", r#"{"action": "approve"}"#]);
    assert_eq!(answered.status.code(), Some(0), "{}", text(&answered.stderr));
    let entries = entries(db, &run);
    let closed: Vec<&Value> = entries.iter().filter(|e| e["type"] == "waiting_closed").collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["node_id"], "legal");
    let late = cli(db, &["answer", &run, "legal", "--data", r#"{"action": "approve"}"#]);
    assert_ne!(late.status.code(), Some(0), "the closed wait takes no answer");
}

/// A provider that always answers 500, counting the calls, and a Slack webhook
/// that keeps what it is posted.
struct Loopback {
    base: String,
    calls: Arc<AtomicUsize>,
    posts: Arc<Mutex<Vec<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct Seen {
    calls: Arc<AtomicUsize>,
    posts: Arc<Mutex<Vec<Value>>>,
}

async fn failing_completions(State(seen): State<Seen>) -> (axum::http::StatusCode, &'static str) {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, r#"{"error": {"message": "the model is down"}}"#)
}

async fn slack(State(seen): State<Seen>, axum::Json(post): axum::Json<Value>) -> &'static str {
    seen.posts.lock().expect("the posts lock").push(post);
    "ok"
}

impl Loopback {
    fn start() -> Loopback {
        let seen = Seen { calls: Arc::default(), posts: Arc::default() };
        let app = Router::new()
            .route("/v1/chat/completions", post(failing_completions))
            .route("/slack", post(slack))
            .with_state(seen.clone());
        let (base, runtime) = serve_on_loopback(app);
        Loopback { base, calls: seen.calls, posts: seen.posts, _runtime: runtime }
    }
}

#[test]
fn an_agent_failing_past_its_retries_takes_its_error_route_to_a_notification() {
    let loopback = Loopback::start();
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.json");
    let provider = json!({"kind": "openai", "base_url": format!("{}/v1", loopback.base),
                          "retry": {"max_attempts": 2, "initial_backoff": "10ms", "max_backoff": "10ms"}});
    std::fs::write(
        &agents,
        json!({"providers": {"local": provider},
        "agents": [{"id": "triage-agent", "provider": "local", "model": "m"}]})
        .to_string(),
    )
    .unwrap();
    let channels = dir.path().join("channels.json");
    let slack = json!({"kind": "slack", "webhook_url": format!("{}/slack", loopback.base)});
    std::fs::write(&channels, json!({"channels": {"team-slack": slack}}).to_string()).unwrap();
    let graph = graph_file(
        dir.path(),
        &json!({"id": "triage", "name": "Triage", "trigger": {"type": "manual"},
            "nodes": [
                {"id": "start", "type": "start"},
                {"id": "triage", "type": "agent", "config": {"agent_id": "triage-agent", "prompt_template": "Triage {{trigger.title}}",
                                                              "retry": {"max_attempts": 2, "backoff": {"initial": "0s"}}}},
                {"id": "sorry", "type": "notification", "config": {"channel": "slack", "template": "Triage failed: {{triage.error.message}}"}},
                {"id": "end", "type": "end"}],
            "edges": [
                {"source": "start", "target": "triage"},
                {"source": "triage", "target": "end"},
                {"source": "triage", "target": "sorry", "condition": {"type": "error"}},
                {"source": "sorry", "target": "end"}]}),
    );
    let db = dir.path().join("runs.db");
    let db = db.to_str().unwrap();
    let (agents, channels) = (agents.to_str().unwrap(), channels.to_str().unwrap());
    let ran = cli(
        db,
        &[
            "--agents",
            agents,
            "--channels",
            channels,
            "run",
            graph.to_str().unwrap(),
            "--input",
            r#"{"title": "login fails"}"#,
        ],
    );
    assert_eq!(ran.status.code(), Some(0), "{}\n{}", text(&ran.stdout), text(&ran.stderr));

    // Two attempts of the node, two requests each.
    assert_eq!(loopback.calls.load(Ordering::SeqCst), 4);
    let posts = loopback.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let posted = posts[0]["text"].as_str().unwrap_or_default();
    assert!(posted.starts_with("Triage failed: ") && posted.contains("500"), "{posted}");

    let run = text(&cli(db, &["--json", "runs"]).stdout);
    let run: Value = serde_json::from_str(run.lines().next().expect("one run")).unwrap();
    let entries = entries(db, run["run_id"].as_str().unwrap());
    let kinds = kinds(&entries);
    let failed = kinds.iter().rposition(|k| k == "node_failed").expect("the failure is in the transcript");
    assert_eq!(kinds[failed + 1], "error_routed", "{kinds:?}");
    assert_eq!(entries[failed + 1]["target"], "sorry");
    assert_eq!(kinds.iter().filter(|k| *k == "retry_scheduled").count(), 1, "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("run_completed"));
}

/// Runs a loop of two nodes that never takes its exit on `db`, with `args` before `run`;
/// returns how many steps ran and the run's last entry.
fn run_loop(dir: &Path, db: &str, graph_steps: Option<u64>, args: &[&str]) -> (usize, Value) {
    let mut graph = json!({"id": "spin", "name": "Spin", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "ping", "type": "function", "config": {"action": "set_context", "values": {"n": 1}}},
                  {"id": "pong", "type": "function", "config": {"action": "set_context", "values": {"n": 2}}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "ping"}, {"source": "ping", "target": "pong"},
                  {"source": "pong", "target": "end", "condition": {"type": "field", "path": "trigger.stop", "op": "exists"}},
                  {"source": "pong", "target": "ping"}]});
    if let Some(steps) = graph_steps {
        graph["max_steps"] = json!(steps);
    }
    let path = graph_file(dir, &graph);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["run", path.to_str().expect("a UTF-8 path")]);
    let ran = cli(db, &all);
    assert_eq!(ran.status.code(), Some(1), "{}\n{}", text(&ran.stdout), text(&ran.stderr));
    let listed = text(&cli(db, &["--json", "runs", "--status", "failed", "--limit", "1"]).stdout);
    let run: Value =
        serde_json::from_str(listed.lines().next().expect("a failed run")).expect("a run as JSON");
    let entries = entries(db, run["run_id"].as_str().expect("a run id"));
    let steps = kinds(&entries).iter().filter(|k| *k == "node_started").count();
    (steps, entries.last().cloned().unwrap_or_default())
}

fn step_limits_hold(db: &str, dir: &Path) {
    let (steps, last) = run_loop(dir, db, None, &["--max-steps", "7"]);
    assert_eq!(steps, 7);
    assert_eq!(last["type"], "run_failed");
    let error = last["error"].as_str().unwrap_or_default();
    assert!(error.contains("step limit of 7") && error.contains("\"ping\""), "{error}");
    // The graph's own max_steps wins over the default...
    let (steps, _) = run_loop(dir, db, Some(5), &["--max-steps", "7"]);
    assert_eq!(steps, 5);
    // ...up to the ceiling.
    let (steps, _) = run_loop(dir, db, Some(50), &["--max-steps", "7", "--step-ceiling", "9"]);
    assert_eq!(steps, 9);
}

#[test]
fn a_loop_with_no_exit_fails_on_the_step_limit_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    step_limits_hold(db.to_str().unwrap(), dir.path());
}

#[test]
fn a_loop_with_no_exit_fails_on_the_step_limit_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    step_limits_hold(&roomkit_graph_pgtest::database(), dir.path());
}
