//! Delay nodes park their run on a durable timer: no task waits, and the timer
//! fires in whichever process runs the store's timers, also after a restart.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use roomkit_graph::{Edge, Graph, Handlers, Node, Trigger};
use roomkit_graph_runner::{Runner, RunnerError};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{Entry, RunRecord, RunStatus};
use serde_json::json;

fn delayed() -> Graph {
    let mut graph = Graph::new("later", "Later", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("pause", "function").with_config(json!({"action": "delay", "duration": "300ms"})),
            Node::new("end", "end"),
        ])
        .unwrap();
    graph.add_edges([Edge::new("start", "pause"), Edge::new("pause", "end")]);
    graph
}

fn runner(db: &Path) -> Runner {
    Runner::new(SqliteStore::open(db).unwrap(), Handlers::builtin())
}

/// Polls until the run is parked on its timer.
async fn parked(runner: &Runner, run_id: &str) -> RunRecord {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let run = runner.store().run(run_id).await.unwrap();
        if run.status == RunStatus::Waiting && run.wake_at.is_some() {
            return run;
        }
        assert!(Instant::now() < deadline, "the run never parked: {run:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delay_parks_the_run_without_a_task_and_its_timer_wakes_it() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(&dir.path().join("t.db"));
    runner.save_graph(&delayed()).await.unwrap();
    let started = Instant::now();
    let run = runner.start("later", json!({})).await.unwrap();
    let waiting = parked(&runner, &run.run_id).await;
    assert_eq!(waiting.current_node_id.as_deref(), Some("pause"));
    // The task lets the run go just after the commit that parks it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while runner.active_runs() > 0 {
        assert!(Instant::now() < deadline, "a task is held while the run waits");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = runner.answer(&run.run_id, "pause", json!({}), None).await;
    assert!(matches!(answer, Err(RunnerError::InvalidAnswer { reason, .. }) if reason.contains("timer")));

    let done = runner.wait(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(done.wake_at, None);
    let (_, state) = runner.store().load_run(&run.run_id).await.unwrap();
    assert_eq!(state.context["pause"], json!({"output": {"delayed": "300ms"}}));
    let events = runner.store().transcript(&run.run_id, 0, 100).await.unwrap();
    let pause: Vec<&Entry> = events
        .iter()
        .map(|e| &e.entry)
        .filter(|e| matches!(e, Entry::NodeWaiting { node_id, .. } | Entry::NodeCompleted { node_id, .. } if node_id == "pause"))
        .collect();
    assert_eq!(pause.len(), 2, "{pause:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_fires_after_the_process_that_set_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let first = runner(&db);
    first.save_graph(&delayed()).await.unwrap();
    let run = first.start("later", json!({})).await.unwrap();
    parked(&first, &run.run_id).await;
    first.shutdown().await;
    drop(first);

    let second = runner(&db);
    assert_eq!(second.recover().await.unwrap(), 0, "nothing is running: the run waits on its timer");
    let done = second.wait(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
}
