//! Runs past a concurrency limit, on a real SQLite file: queued, and driven
//! by the runner as soon as a run of theirs stops, with no poll
//! ([`Runner::recover`] is never called here), one at a time under a limit
//! of one, in the order they were started; a run whose handler panics fails
//! and lets the next go.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed call fails the test")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use roomkit_graph::{Graph, HandlerError, Handlers, Node, NodeHandler, NodeResult, Scope};
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{RunFilter, RunStatus};
use serde_json::json;

/// A step that takes a little time, counting how many run at once and in
/// which order the runs came.
#[derive(Default)]
struct Work {
    running: AtomicUsize,
    most: AtomicUsize,
    order: Mutex<Vec<u64>>,
}

struct Shared(Arc<Work>);

#[async_trait]
impl NodeHandler for Shared {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let work = &self.0;
        let now = work.running.fetch_add(1, Ordering::SeqCst) + 1;
        work.most.fetch_max(now, Ordering::SeqCst);
        let n = scope.context().get("trigger.n").and_then(|n| n.as_u64()).unwrap_or_default();
        work.order.lock().unwrap().push(n);
        tokio::time::sleep(Duration::from_millis(20)).await;
        work.running.fetch_sub(1, Ordering::SeqCst);
        Ok(NodeResult::completed(json!({"n": n})))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_runs_go_on_as_soon_as_a_run_of_their_key_stops_without_a_poll() {
    const RUNS: u64 = 6;
    let dir = tempfile::tempdir().unwrap();
    let work = Arc::new(Work::default());
    let handlers = Handlers::builtin().with("work", Shared(Arc::clone(&work)));
    let runner = Runner::new(SqliteStore::open(dir.path().join("runs.db")).unwrap(), handlers);
    let graph: Graph = serde_json::from_value(json!({"id": "one", "name": "One at a time",
        "trigger": {"type": "manual"}, "concurrency": {"limit": 1},
        "nodes": [{"id": "start", "type": "start"}, {"id": "work", "type": "work"}, {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "work"}, {"source": "work", "target": "end"}]}))
    .unwrap();
    runner.save_graph(&graph).await.unwrap();
    let mut statuses = Vec::new();
    for n in 0..RUNS {
        statuses.push(runner.start("one", json!({"n": n})).await.unwrap().status);
    }
    assert_eq!(statuses[0], RunStatus::Running);
    assert!(statuses[1..].iter().all(|status| *status == RunStatus::Queued), "{statuses:?}");

    let completed = RunFilter { status: Some(RunStatus::Completed), ..RunFilter::default() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while runner.store().list_runs(&completed).await.unwrap().len() < RUNS as usize {
        assert!(Instant::now() < deadline, "queued runs left waiting: {:?}", work.order.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(work.most.load(Ordering::SeqCst), 1, "one at a time");
    assert_eq!(*work.order.lock().unwrap(), (0..RUNS).collect::<Vec<_>>(), "in the order they were started");
    runner.shutdown().await;
}

/// A handler that panics.
struct Breaks;

#[async_trait]
impl NodeHandler for Breaks {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        panic!("the handler broke")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_that_panics_fails_its_run_and_frees_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let handlers = Handlers::builtin().with("breaks", Breaks);
    let runner = Runner::new(SqliteStore::open(dir.path().join("runs.db")).unwrap(), handlers);
    let graph: Graph = serde_json::from_value(json!({"id": "broken", "name": "Broken",
        "trigger": {"type": "manual"}, "concurrency": {"limit": 1},
        "nodes": [{"id": "start", "type": "start"}, {"id": "boom", "type": "breaks"}, {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "boom"}, {"source": "boom", "target": "end"}]}))
    .unwrap();
    runner.save_graph(&graph).await.unwrap();
    let first = runner.start("broken", json!({})).await.unwrap();
    let second = runner.start("broken", json!({})).await.unwrap();
    assert_eq!(second.status, RunStatus::Queued);
    for run in [first, second] {
        let deadline = Instant::now() + Duration::from_secs(20);
        let failed = loop {
            let record = runner.store().run(&run.run_id).await.unwrap();
            if record.status.is_final() {
                break record;
            }
            assert!(Instant::now() < deadline, "the run is stuck: {record:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(failed.status, RunStatus::Failed);
        let error = failed.error.unwrap_or_default();
        assert!(error.contains("the breaks node's handler panicked: the handler broke"), "{error}");
    }
    runner.shutdown().await;
}
