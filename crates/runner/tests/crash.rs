//! The crash test: a worker process runs hundreds of runs and is killed with
//! SIGKILL at random moments, several times, then restarted. After the last
//! restart every run finishes, and in every transcript each step is committed
//! exactly once, in order, with no gap. A restarted worker picks up the runs a
//! killed one drove once their (short) leases expire.
//!
//! The worker is this test binary itself, re-run with `ROOMKIT_CRASH_DB` set
//! on the ignored `crash_worker` entry point. The test kills only the child
//! processes it started, by their pid. It runs on a SQLite file, and on a
//! PostgreSQL database.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use roomkit_graph::{Edge, Graph, HandlerError, Handlers, Node, NodeHandler, NodeResult, Scope, Trigger};
use roomkit_graph_postgres::PostgresStore;
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{Entry, RunFilter, RunStatus};
use serde_json::json;

const RUNS: usize = 400;
const WORK_NODES: usize = 6;
const KILLS: usize = 5;
const DB_VAR: &str = "ROOMKIT_CRASH_DB";
/// The workers' lease: how long a killed worker's runs wait for the next one.
const LEASE: Duration = Duration::from_millis(400);

fn graph() -> Graph {
    let mut graph = Graph::new("crash", "Crash", Trigger::manual());
    let work: Vec<String> = (1..=WORK_NODES).map(|i| format!("w{i}")).collect();
    graph.add_node(Node::new("start", "start")).expect("unique");
    graph.add_nodes(work.iter().map(|id| Node::new(id, "work"))).expect("unique");
    graph.add_node(Node::new("end", "end")).expect("unique");
    let order: Vec<&str> =
        std::iter::once("start").chain(work.iter().map(String::as_str)).chain(["end"]).collect();
    graph.add_edges(order.windows(2).map(|pair| Edge::new(pair[0], pair[1])));
    graph
}

/// A step that takes a little time, so kills land in the middle of steps.
struct Work;

#[async_trait]
impl NodeHandler for Work {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let seen = scope.context().get("trigger.n").cloned();
        Ok(NodeResult::completed(json!({"node": node.id, "n": seen})))
    }
}

/// A runner on `db`: a PostgreSQL URL, or a SQLite file's path.
async fn runner(db: &str) -> Runner {
    let handlers = Handlers::builtin().with("work", Work);
    let runner = if db.starts_with("postgres://") {
        Runner::new(PostgresStore::connect(db).await.expect("the worker opens the database"), handlers)
    } else {
        Runner::new(SqliteStore::open(db).expect("the worker opens the database"), handlers)
    };
    runner.with_lease(LEASE)
}

/// The worker process: picks up the runs left running (as their leases
/// expire), starts the missing ones, and exits once every run is over.
#[test]
#[ignore = "the crash test's worker process, started by killed_workers_lose_no_committed_step"]
fn crash_worker() {
    let Ok(db) = std::env::var(DB_VAR) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let runner = runner(&db).await;
        runner.recover().await.expect("recovery");
        let all = RunFilter { graph_id: Some("crash".into()), ..Default::default() };
        let started = runner.store().list_runs(&all).await.expect("listing").len();
        for n in started..RUNS {
            runner.start("crash", json!({"n": n})).await.expect("start");
        }
        let running = RunFilter { status: Some(RunStatus::Running), ..all };
        while !runner.store().list_runs(&running).await.expect("listing").is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            runner.recover().await.expect("recovery");
        }
    });
}

fn spawn_worker(db: &str) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args(["crash_worker", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DB_VAR, db)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the worker starts")
}

/// A pseudo-random delay in [min, max) ms, seeded from the clock.
fn random_ms(min: u64, max: u64) -> Duration {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(7, |d| d.subsec_nanos());
    Duration::from_millis(min + u64::from(nanos) % (max - min))
}

/// How many runs were started, how many are over, and how many transcript
/// events were committed in all.
async fn progress(db: &str) -> (usize, usize, u64) {
    let runner = runner(db).await;
    let runs = runner.store().list_runs(&RunFilter::default()).await.expect("listing");
    let finished = runs.iter().filter(|r| r.status.is_final()).count();
    (runs.len(), finished, runs.iter().map(|r| r.last_seq).sum())
}

#[test]
fn killed_workers_lose_no_committed_step() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    killed_workers_lose_no_committed_step_on(db.to_str().expect("a UTF-8 path"));
}

#[test]
fn killed_workers_lose_no_committed_step_on_postgres() {
    killed_workers_lose_no_committed_step_on(&roomkit_graph_pgtest::database());
}

fn killed_workers_lose_no_committed_step_on(db: &str) {
    let setup = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    setup.block_on(async { runner(db).await.save_graph(&graph()).await.unwrap() });

    let mut interrupted = 0;
    for kill in 0..KILLS {
        let (_, _, committed_before) = setup.block_on(progress(db));
        let mut worker = spawn_worker(db);
        // Let the worker commit something, then kill it a random moment later.
        let waiting_since = Instant::now();
        while setup.block_on(progress(db)).2 == committed_before
            && waiting_since.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(random_ms(0, 80));
        // SIGKILL, to this child's pid only.
        worker.kill().unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        worker.wait().unwrap();
        let (started, finished, committed) = setup.block_on(progress(db));
        eprintln!("kill {kill}: {started} runs started, {finished} finished, {committed} events committed");
        if finished < RUNS {
            interrupted += 1;
        }
    }
    // Every kill must cut work short, or the test proves nothing.
    assert_eq!(interrupted, KILLS, "some kills came after the work was done");
    let mut last = spawn_worker(db);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = last.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = last.kill();
            panic!("the last worker did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the last worker failed: {status}");

    let expected: Vec<String> = std::iter::once("start".to_owned())
        .chain((1..=WORK_NODES).map(|i| format!("w{i}")))
        .chain(["end".to_owned()])
        .collect();
    setup.block_on(async {
        let runner = runner(db).await;
        let store = runner.store();
        let runs = store.list_runs(&RunFilter::default()).await.unwrap();
        assert_eq!(runs.len(), RUNS);
        let mut seen_inputs = Vec::new();
        for run in runs {
            assert_eq!(run.status, RunStatus::Completed, "run {} is {:?}", run.run_id, run.status);
            let events = store.transcript(&run.run_id, 0, 1000).await.unwrap();
            let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>(), "gap in run {}", run.run_id);
            let completed: Vec<&str> = events
                .iter()
                .filter_map(|e| match &e.entry {
                    Entry::NodeCompleted { node_id, .. } => Some(node_id.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(completed, expected, "steps of run {}", run.run_id);
            let starts = events.iter().filter(|e| matches!(e.entry, Entry::RunStarted { .. })).count();
            let ends = events.iter().filter(|e| e.entry == Entry::RunCompleted).count();
            assert_eq!((starts, ends), (1, 1), "run {}", run.run_id);
            let (_, state) = store.load_run(&run.run_id).await.unwrap();
            seen_inputs.push(state.context["start"]["output"]["input"]["n"].as_u64().unwrap());
        }
        seen_inputs.sort_unstable();
        assert_eq!(seen_inputs, (0..RUNS as u64).collect::<Vec<_>>(), "every run started exactly once");
    });
}
