//! Delay nodes park their run on a durable timer: no task waits, and the timer
//! fires in whichever process runs the store's timers, also after a restart.
//! The runners run on a [`ManualClock`]: a timer comes due when the test
//! moves the clock, never by waiting.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use roomkit_graph::{Edge, Graph, Handlers, ManualClock, Node, Trigger};
use roomkit_graph_runner::{Runner, RunnerError};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{Entry, RunRecord, RunStatus};
use serde_json::json;

/// How long the delay node waits.
const DELAY: Duration = Duration::from_millis(300);

/// How often a runner's timer loop looks for due timers.
const TICK: Duration = Duration::from_millis(100);

/// A guard against a hang only: a test that passes takes a fraction of it.
const HANG: Duration = Duration::from_secs(30);

/// Moves the clock a tick at a time, letting the timer loop look each time,
/// until the run is over ([`HANG`] at most), and returns it.
async fn over(runner: &Runner, clock: &ManualClock, run_id: &str) -> RunRecord {
    let ticking = async {
        loop {
            clock.advance(TICK);
            tokio::time::sleep(Duration::from_millis(5)).await;
            let run = runner.store().run(run_id).await.unwrap();
            if run.status.is_final() {
                return run;
            }
        }
    };
    tokio::time::timeout(HANG, ticking).await.expect("the timer never fired")
}

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

fn runner(db: &Path, clock: &ManualClock) -> Runner {
    Runner::builder(SqliteStore::open(db).unwrap(), Handlers::builtin()).clock(clock.clone()).build()
}

/// Looks every millisecond, for [`HANG`] at most, until the run is parked on
/// its timer: the commit that parks it comes at once.
async fn parked(runner: &Runner, run_id: &str) -> RunRecord {
    let looking = async {
        loop {
            let run = runner.store().run(run_id).await.unwrap();
            if run.status == RunStatus::Waiting && run.wake_at.is_some() {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(HANG, looking).await.expect("the run never parked")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delay_parks_the_run_without_a_task_and_its_timer_wakes_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemTime::now());
    let runner = runner(&dir.path().join("t.db"), &clock);
    runner.save_graph(&delayed()).await.unwrap();
    let run = runner.start("later", json!({})).await.unwrap();
    let waiting = parked(&runner, &run.run_id).await;
    assert_eq!(waiting.current_node_id.as_deref(), Some("pause"));
    // The task lets the run go just after the commit that parks it.
    let let_go = tokio::time::timeout(HANG, async {
        while runner.active_runs() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(let_go.is_ok(), "a task is held while the run waits");
    let answer = runner.answer(&run.run_id, "pause", json!({}), None).await;
    assert!(matches!(answer, Err(RunnerError::InvalidAnswer { reason, .. }) if reason.contains("timer")));

    // Not due a millisecond early.
    clock.advance(DELAY - Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(runner.store().run(&run.run_id).await.unwrap().status, RunStatus::Waiting);
    let done = over(&runner, &clock, &run.run_id).await;
    assert_eq!(done.status, RunStatus::Completed);
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
    // Woken on the clock's time, once due.
    let at = |wanted: fn(&Entry) -> bool| events.iter().find(|e| wanted(&e.entry)).map(|e| e.at).unwrap();
    let parked_at = at(|e| matches!(e, Entry::NodeWaiting { node_id, .. } if node_id == "pause"));
    let woken_at = at(|e| matches!(e, Entry::NodeCompleted { node_id, .. } if node_id == "pause"));
    assert!(woken_at - parked_at >= 300, "woken {} ms after parking", woken_at - parked_at);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_fires_after_the_process_that_set_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let clock = ManualClock::new(SystemTime::now());
    let first = runner(&db, &clock);
    first.save_graph(&delayed()).await.unwrap();
    let run = first.start("later", json!({})).await.unwrap();
    parked(&first, &run.run_id).await;
    first.shutdown().await;
    drop(first);

    let second = runner(&db, &clock);
    assert_eq!(second.recover().await.unwrap(), 0, "nothing is running: the run waits on its timer");
    let done = over(&second, &clock, &run.run_id).await;
    assert_eq!(done.status, RunStatus::Completed);
}
