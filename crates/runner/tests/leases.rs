//! Several runners on one database: each run is driven by one runner at a
//! time (the one holding its lease), so every step's handler runs once; a run
//! whose runner stopped without letting go is picked up once its lease
//! expired; a cancel from another runner wins over the one driving.
//!
//! The runners share a [`ManualClock`]: a lease expires, and a long step
//! takes its time, only when the test moves the clock, never by waiting.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use roomkit_graph::{
    Clock, Edge, Graph, HandlerError, Handlers, ManualClock, Node, NodeHandler, NodeResult, Scope, Trigger,
};
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{Entry, RunFilter, RunStatus, Store};
use serde_json::json;

/// Every execution of a handler: (run, node, attempt).
type Executions = Arc<Mutex<Vec<(String, String, u32)>>>;

/// A step that records that it ran and takes some time.
struct Work {
    ran: Executions,
    takes: Takes,
}

/// How long a step takes.
#[derive(Clone, Copy)]
enum Takes {
    /// On the runner's clock: the step ends once the test has moved the clock
    /// that far on.
    Clock(Duration),
    /// Really, the clock standing still: steps that overlap other work.
    Really(Duration),
}

#[async_trait]
impl NodeHandler for Work {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        // The wait starts before the step is seen to run, so that a test
        // moving the clock once it sees it moves it past the wait's end.
        let wait = match self.takes {
            Takes::Clock(takes) => scope.clock().sleep(takes),
            Takes::Really(takes) => Box::pin(tokio::time::sleep(takes)),
        };
        self.ran.lock().unwrap().push((scope.run_id().to_owned(), node.id.clone(), scope.attempt()));
        wait.await;
        Ok(NodeResult::completed(json!({"node": node.id})))
    }
}

/// start → w1 → ... → w`steps` → end, every w a `work` node.
fn chain(steps: usize) -> Graph {
    let mut graph = Graph::new("chain", "Chain", Trigger::manual());
    let work: Vec<String> = (1..=steps).map(|i| format!("w{i}")).collect();
    graph.add_node(Node::new("start", "start")).unwrap();
    graph.add_nodes(work.iter().map(|id| Node::new(id, "work"))).unwrap();
    graph.add_node(Node::new("end", "end")).unwrap();
    let order: Vec<&str> =
        std::iter::once("start").chain(work.iter().map(String::as_str)).chain(["end"]).collect();
    graph.add_edges(order.windows(2).map(|pair| Edge::new(pair[0], pair[1])));
    graph
}

/// A runner on `db`, on `clock`, whose `work` steps take `takes`.
fn runner(db: &Path, clock: &ManualClock, ran: &Executions, takes: Takes) -> Runner {
    let store = SqliteStore::open(db).unwrap();
    let handlers = Handlers::builtin().with("work", Work { ran: Arc::clone(ran), takes });
    Runner::builder(store, handlers).clock(clock.clone()).build()
}

/// A clock standing at the system's time, moved only by the test.
fn clock() -> ManualClock {
    ManualClock::new(SystemTime::now())
}

/// Milliseconds since the Unix epoch on `clock`, as the store keeps times.
fn millis(clock: &ManualClock) -> i64 {
    let since = clock.now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// A guard against a hang only: a test that passes takes a fraction of it.
const HANG: Duration = Duration::from_secs(30);

/// Looks whether `until` holds every millisecond, for [`HANG`] at most: for
/// what another task does at once (a commit), not for time to pass.
async fn eventually(what: &str, mut until: impl AsyncFnMut() -> bool) {
    let looking = async {
        while !until().await {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    if tokio::time::timeout(HANG, looking).await.is_err() {
        panic!("{what}");
    }
}

/// Whether every run of the database is over.
async fn all_over(store: &dyn Store) -> bool {
    store.list_runs(&RunFilter::default()).await.unwrap().iter().all(|run| run.status.is_final())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_recovering_all_the_time_run_every_step_once() {
    const RUNS: usize = 24;
    const STEPS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let ran: Executions = Arc::default();
    // The clock stands still, so no lease ever expires: only a runner's own
    // tasks may drive its runs, whoever tries to take them.
    let clock = clock();
    let first = runner(&db, &clock, &ran, Takes::Really(Duration::from_millis(15)));
    let second = runner(&db, &clock, &ran, Takes::Really(Duration::from_millis(15)));
    first.save_graph(&chain(STEPS)).await.unwrap();

    let mut runs = Vec::new();
    for n in 0..RUNS {
        let starter = if n % 2 == 0 { &first } else { &second };
        runs.push(starter.start("chain", json!({"n": n})).await.unwrap().run_id);
    }
    // Both keep trying to take every run while the runs go on.
    let recovering = async {
        while !all_over(first.store()).await {
            first.recover().await.unwrap();
            second.recover().await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    let waiting = async {
        for run_id in &runs {
            first.wait(run_id).await.unwrap();
        }
    };
    tokio::time::timeout(HANG, async { tokio::join!(recovering, waiting) }).await.expect("the runs finish");

    let mut executions = ran.lock().unwrap().clone();
    executions.sort();
    let total = executions.len();
    executions.dedup();
    assert_eq!(total, executions.len(), "some steps ran more than once");
    assert_eq!(total, RUNS * STEPS);
    for run in first.store().list_runs(&RunFilter::default()).await.unwrap() {
        assert_eq!(run.status, RunStatus::Completed, "run {}", run.run_id);
        let events = first.store().transcript(&run.run_id, 0, 100).await.unwrap();
        let completed = events.iter().filter(|e| matches!(e.entry, Entry::NodeCompleted { .. })).count();
        assert_eq!(completed, STEPS + 2, "run {}", run.run_id);
    }
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_longer_than_the_lease_keeps_its_run_by_renewing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let ran: Executions = Arc::default();
    let clock = clock();
    let lease = Duration::from_millis(300);
    let step = Takes::Clock(Duration::from_millis(1_000));
    let first = runner(&db, &clock, &ran, step).with_lease(lease);
    let second = runner(&db, &clock, &ran, step).with_lease(lease);
    first.save_graph(&chain(2)).await.unwrap();
    let run = first.start("chain", json!({})).await.unwrap();

    // Each step takes more than three leases. The clock moves a sixth of a
    // lease at a time, but never while less than half of it is left (the
    // driver renews it once a third has passed); the other runner tries to
    // take the run all along.
    let mut moves = 0;
    while !first.store().run(&run.run_id).await.unwrap().status.is_final() {
        assert!(moves < 100, "the run did not finish");
        assert_eq!(second.recover().await.unwrap(), 0, "the run was taken from the runner driving it");
        eventually("the driver did not renew its lease", async || {
            let held = first.store().run(&run.run_id).await.unwrap();
            held.status.is_final() || held.lease_until.is_some_and(|until| until - millis(&clock) >= 150)
        })
        .await;
        clock.advance(lease / 6);
        moves += 1;
    }
    let done = first.wait(&run.run_id).await.unwrap();
    assert_eq!((done.status, done.owner), (RunStatus::Completed, None), "finishing releases the lease");
    let nodes: Vec<String> = ran.lock().unwrap().iter().map(|(_, node, _)| node.clone()).collect();
    assert_eq!(nodes, ["w1", "w2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_another_runner_wins_and_the_driver_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let ran: Executions = Arc::default();
    let clock = clock();
    let step = Takes::Clock(Duration::from_secs(30));
    let driver = runner(&db, &clock, &ran, step).with_lease(Duration::from_millis(300));
    let other = runner(&db, &clock, &ran, step);
    driver.save_graph(&chain(2)).await.unwrap();
    let run = driver.start("chain", json!({})).await.unwrap();
    eventually("the first step never began", async || !ran.lock().unwrap().is_empty()).await;
    assert_eq!(driver.active_runs(), 1);

    let cancelled = other.cancel(&run.run_id, Some("not needed")).await.unwrap();
    assert_eq!((cancelled.status, cancelled.owner), (RunStatus::Cancelled, None));
    // The driver sees its lease is gone at its next renewal (a third of the
    // lease on) and drops the step.
    clock.advance(Duration::from_millis(100));
    eventually("the driver kept the run", async || driver.active_runs() == 0).await;
    let done = other.store().run(&run.run_id).await.unwrap();
    assert_eq!((done.status, done.version), (RunStatus::Cancelled, cancelled.version));
    let events = other.store().transcript(&run.run_id, 0, 100).await.unwrap();
    assert_eq!(
        events.last().map(|e| &e.entry),
        Some(&Entry::RunCancelled { reason: Some("not needed".into()) })
    );
    assert_eq!(ran.lock().unwrap().len(), 1, "nothing ran after the cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_its_runs_for_another_runner_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let ran: Executions = Arc::default();
    // The default lease (30 s), and a clock that stands still but for the
    // steps: only a release lets the other runner in.
    let clock = clock();
    let first = runner(&db, &clock, &ran, Takes::Clock(Duration::from_millis(200)));
    let second = runner(&db, &clock, &ran, Takes::Clock(Duration::ZERO));
    first.save_graph(&chain(3)).await.unwrap();
    let run = first.start("chain", json!({})).await.unwrap();
    eventually("the first step never began", async || !ran.lock().unwrap().is_empty()).await;
    assert_eq!(second.recover().await.unwrap(), 0);

    // The shutdown waits for the step in progress, which ends as the clock moves.
    let (_, ()) = tokio::join!(first.shutdown(), async { clock.advance(Duration::from_millis(200)) });
    let left = second.store().run(&run.run_id).await.unwrap();
    assert_eq!((left.status, left.owner), (RunStatus::Running, None), "stopped after a step, released");
    assert_eq!(second.recover().await.unwrap(), 1);
    assert_eq!(second.wait(&run.run_id).await.unwrap().status, RunStatus::Completed);
    let mut executions = ran.lock().unwrap().clone();
    let total = executions.len();
    executions.dedup();
    assert_eq!((total, executions.len()), (3, 3), "every step ran once: {executions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_nobody_drives_is_resumed_at_once_and_a_held_one_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let ran: Executions = Arc::default();
    let clock = clock();
    let first = runner(&db, &clock, &ran, Takes::Clock(Duration::from_millis(30)));
    first.save_graph(&chain(4)).await.unwrap();
    let run = first.start("chain", json!({})).await.unwrap();
    eventually("the first step never began", async || !ran.lock().unwrap().is_empty()).await;

    // Driven by the first runner: the second leaves it alone.
    let second = runner(&db, &clock, &ran, Takes::Clock(Duration::ZERO));
    assert!(!second.adopt(&run.run_id).await.unwrap(), "held by the first runner");

    // The first stops after its step and lets the run go: the second takes it
    // at once, with no lease to wait out (the clock moves only the step's 30 ms).
    let (_, ()) = tokio::join!(first.shutdown(), async { clock.advance(Duration::from_millis(30)) });
    let left = second.store().run(&run.run_id).await.unwrap();
    assert_eq!((left.status, left.owner.as_deref()), (RunStatus::Running, None));
    assert!(second.adopt(&run.run_id).await.unwrap());
    assert!(!second.adopt(&run.run_id).await.unwrap(), "driven already");
    let done = second.wait(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert!(!second.adopt(&run.run_id).await.unwrap(), "over");

    let events = second.store().transcript(&run.run_id, 0, 100).await.unwrap();
    let completed: Vec<&str> = events
        .iter()
        .filter_map(|event| match &event.entry {
            Entry::NodeCompleted { node_id, .. } => Some(node_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(completed, ["start", "w1", "w2", "w3", "w4", "end"], "every step once");
}
