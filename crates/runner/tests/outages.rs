//! A store that fails for a while (a database locked by another process
//! longer than the busy timeout): the run it interrupted is driven again once
//! the store answers, and completes with each step committed once.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use roomkit_graph::{Edge, Graph, HandlerError, Handlers, Node, NodeHandler, NodeResult, Scope, Trigger};
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::{Options, SqliteStore};
use roomkit_graph_store::{Entry, RunStatus};
use serde_json::json;
use tokio::sync::Notify;

/// A step that, the first time, says it started and waits to be let through.
struct Gate {
    runs: Arc<AtomicUsize>,
    entered: Arc<Notify>,
    proceed: Arc<Notify>,
}

#[async_trait]
impl NodeHandler for Gate {
    async fn execute(&self, node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            self.entered.notify_one();
            self.proceed.notified().await;
        }
        Ok(NodeResult::completed(json!({"node": node.id})))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_store_was_locked_for_a_while_is_driven_again_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let options = Options { busy_timeout: Duration::from_millis(100), ..Options::default() };
    let store = SqliteStore::open_with(&db, options).unwrap();
    let gate = Gate { runs: Arc::default(), entered: Arc::default(), proceed: Arc::default() };
    let (runs, entered, proceed) =
        (Arc::clone(&gate.runs), Arc::clone(&gate.entered), Arc::clone(&gate.proceed));
    let runner = Runner::new(store, Handlers::builtin().with("gate", gate));

    let mut graph = Graph::new("gated", "Gated", Trigger::manual());
    graph.add_node(Node::new("start", "start")).unwrap();
    graph.add_node(Node::new("hold", "gate")).unwrap();
    graph.add_node(Node::new("after", "log")).unwrap();
    graph.add_node(Node::new("end", "end")).unwrap();
    graph.add_edges([Edge::new("start", "hold"), Edge::new("hold", "after"), Edge::new("after", "end")]);
    runner.save_graph(&graph).await.unwrap();
    let run = runner.start("gated", json!({})).await.unwrap();
    entered.notified().await;

    // Another process takes the write lock while the step finishes: its
    // commit fails (locked past the busy timeout), and the lock is let go a
    // moment later.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    proceed.notify_one();
    tokio::time::sleep(Duration::from_millis(600)).await;
    locker.execute_batch("ROLLBACK").unwrap();

    let done =
        tokio::time::timeout(Duration::from_secs(20), runner.wait(&run.run_id)).await.unwrap().unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the interrupted step ran again (at least once)");
    let events = runner.store().transcript(&run.run_id, 0, 100).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>(), "no gap");
    let holds = events
        .iter()
        .filter(|event| matches!(&event.entry, Entry::NodeCompleted { node_id, .. } if node_id == "hold"))
        .count();
    assert_eq!(holds, 1, "the step is committed once");
}
