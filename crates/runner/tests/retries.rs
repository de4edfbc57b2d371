//! Per-node retries and timeouts from the node's configuration: every attempt
//! in the transcript, each with its own idempotency key.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use roomkit_graph::{
    Edge, Graph, HandlerError, Handlers, ManualClock, Node, NodeHandler, NodeResult, Scope, Trigger,
};
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Entry, RunRecord, RunStatus};
use serde_json::{Value, json};

/// Fails its first `failures` attempts, records every idempotency key it sees.
struct Flaky {
    failures: u32,
    keys: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl NodeHandler for Flaky {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        self.keys.lock().unwrap().push(scope.idempotency_key());
        if scope.attempt() <= self.failures {
            return Ok(NodeResult::failed(format!("flaked on attempt {}", scope.attempt())));
        }
        Ok(NodeResult::completed(json!({"attempt": scope.attempt()})))
    }
}

/// Takes far longer than any timeout here.
struct Slow;

#[async_trait]
impl NodeHandler for Slow {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        Ok(NodeResult::completed(json!({})))
    }
}

fn one_node(node_type: &str, config: Value) -> Graph {
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("call", node_type).with_config(config),
            Node::new("end", "end"),
        ])
        .unwrap();
    graph.add_edges([Edge::new("start", "call"), Edge::new("call", "end")]);
    graph
}

async fn run(graph: Graph, handlers: Handlers) -> (RunRecord, Vec<Entry>) {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(SqliteStore::open(dir.path().join("r.db")).unwrap(), handlers);
    runner.save_graph(&graph).await.unwrap();
    let run = runner.start("g", json!({})).await.unwrap();
    let done = runner.wait(&run.run_id).await.unwrap();
    let events = runner.store().transcript(&run.run_id, 0, 100).await.unwrap();
    (done, events.into_iter().map(|e| e.entry).filter(|e| node_of(e) == Some("call")).collect())
}

fn node_of(entry: &Entry) -> Option<&str> {
    match entry {
        Entry::NodeStarted { node_id, .. }
        | Entry::NodeCompleted { node_id, .. }
        | Entry::NodeFailed { node_id, .. }
        | Entry::RetryScheduled { node_id, .. } => Some(node_id),
        _ => None,
    }
}

fn kind(entry: &Entry) -> String {
    let json = serde_json::to_value(entry).unwrap();
    match json.get("attempt") {
        Some(attempt) => format!("{}#{attempt}", json["type"].as_str().unwrap()),
        None => json["type"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flaky_node_is_retried_until_it_succeeds() {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let graph = one_node("flaky", json!({"retry": {"max_attempts": 3, "backoff": "10ms"}}));
    let handlers = Handlers::builtin().with("flaky", Flaky { failures: 2, keys: Arc::clone(&keys) });
    let (done, entries) = run(graph, handlers).await;
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(
        entries.iter().map(kind).collect::<Vec<_>>(),
        [
            "node_started#1",
            "node_failed#1",
            "retry_scheduled#2",
            "node_started#2",
            "node_failed#2",
            "retry_scheduled#3",
            "node_started#3",
            "node_completed",
        ]
    );
    let keys = keys.lock().unwrap().clone();
    let expected: Vec<String> = (1..=3).map(|a| format!("{}/call/{a}", done.run_id)).collect();
    assert_eq!(keys, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_run_out_and_the_run_fails_with_the_last_error() {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let graph =
        one_node("flaky", json!({"retry": {"max_attempts": 2, "backoff": {"initial": "5ms", "factor": 2}}}));
    let (done, entries) = run(graph, Handlers::builtin().with("flaky", Flaky { failures: 5, keys })).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert!(done.error.as_deref().unwrap_or("").contains("flaked on attempt 2"), "{:?}", done.error);
    assert_eq!(
        entries.iter().map(kind).collect::<Vec<_>>(),
        ["node_started#1", "node_failed#1", "retry_scheduled#2", "node_started#2", "node_failed#2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_that_takes_too_long_is_cut_off_and_retried() {
    let graph = one_node("slow", json!({"timeout": "50ms", "retry": {"max_attempts": 2, "backoff": "5ms"}}));
    let started = std::time::Instant::now();
    let (done, entries) = run(graph, Handlers::builtin().with("slow", Slow)).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(done.status, RunStatus::Failed);
    let failures: Vec<&str> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::NodeFailed { error, .. } => Some(error.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 2);
    assert!(failures.iter().all(|e| e.contains("timed out after 50ms")), "{failures:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_policy_fails_the_run_naming_the_field() {
    let graph = one_node("flaky", json!({"retry": {"max_attempts": 0}}));
    // Stored without validation, as a graph saved by an older version might be.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("r.db")).unwrap();
    store.save_graph(DEFAULT_ORG, &graph).await.unwrap();
    let keys = Arc::new(Mutex::new(Vec::new()));
    let runner =
        Runner::new(store, Handlers::builtin().with("flaky", Flaky { failures: 0, keys: Arc::clone(&keys) }));
    let run = runner.start("g", json!({})).await.unwrap();
    let done = runner.wait(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert!(done.error.as_deref().unwrap_or("").contains("retry.max_attempts"), "{:?}", done.error);
    assert!(keys.lock().unwrap().is_empty(), "the node ran despite its malformed policy");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_retry_survives_a_restart_with_its_attempt_number() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    // The retry is due when the test moves the clock, never by waiting.
    let clock = ManualClock::new(std::time::SystemTime::now());
    let graph = one_node("flaky", json!({"retry": {"max_attempts": 3, "backoff": "300ms"}}));
    let first_keys = Arc::new(Mutex::new(Vec::new()));
    let first = Runner::builder(
        SqliteStore::open(&db).unwrap(),
        Handlers::builtin().with("flaky", Flaky { failures: 1, keys: Arc::clone(&first_keys) }),
    )
    .clock(clock.clone())
    .build();
    first.save_graph(&graph).await.unwrap();
    let run = first.start("g", json!({})).await.unwrap();
    // Wait for the first attempt's failure and the retry it schedules, then stop.
    scheduled(first.store(), &run.run_id).await;
    first.shutdown().await;
    drop(first);

    let second_keys = Arc::new(Mutex::new(Vec::new()));
    let second = Runner::builder(
        SqliteStore::open(&db).unwrap(),
        Handlers::builtin().with("flaky", Flaky { failures: 1, keys: Arc::clone(&second_keys) }),
    )
    .clock(clock.clone())
    .build();
    second.recover().await.unwrap();
    clock.advance(std::time::Duration::from_millis(300));
    let done = second.wait(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(first_keys.lock().unwrap().clone(), [format!("{}/call/1", run.run_id)]);
    assert_eq!(second_keys.lock().unwrap().clone(), [format!("{}/call/2", run.run_id)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_cuts_a_retry_wait_short_and_leaves_the_retry_scheduled() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let keys = Arc::new(Mutex::new(Vec::new()));
    let graph = one_node("flaky", json!({"retry": {"max_attempts": 2, "backoff": "60s"}}));
    let flaky = || Handlers::builtin().with("flaky", Flaky { failures: 1, keys: Arc::clone(&keys) });
    let runner = Runner::new(SqliteStore::open(&db).unwrap(), flaky());
    runner.save_graph(&graph).await.unwrap();
    let run = runner.start("g", json!({})).await.unwrap();
    scheduled(runner.store(), &run.run_id).await;

    // The stop does not wait out the 60 s before the retry.
    tokio::time::timeout(std::time::Duration::from_secs(5), runner.shutdown()).await.unwrap();
    let left = runner.store().run(&run.run_id).await.unwrap();
    assert_eq!((left.status, left.owner), (RunStatus::Running, None), "let go, still to run");
    assert_eq!(keys.lock().unwrap().len(), 1, "attempt 2 did not run");
}

/// Looks every millisecond, for 30 s at most, until the run's first failure
/// has scheduled its retry: the commit that does comes at once.
async fn scheduled(store: &dyn Store, run_id: &str) {
    let looking = async {
        loop {
            let events = store.transcript(run_id, 0, 100).await.unwrap();
            if events.iter().any(|event| matches!(event.entry, Entry::RetryScheduled { attempt: 2, .. })) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    let hang = std::time::Duration::from_secs(30);
    tokio::time::timeout(hang, looking).await.expect("no retry was scheduled");
}
