//! Worker ids on a real SQLite file: a live worker keeps its id from a second
//! process, a stopped one frees it at once, and a process that takes over
//! the id of a dead one (once the dead one's registration expired) takes back
//! at once the runs that id held, live leases or not.
//!
//! The processes share a [`ManualClock`]: registrations expire and heartbeats
//! come only as the test moves it, never by waiting.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use roomkit_graph::{Clock, EngineState, Graph, Handlers, ManualClock, Node, Trigger};
use roomkit_graph_runner::{RegisterError, Runner};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Lease, Millis, NewRun, RunFilter, RunStatus, WorkerRegistration};
use serde_json::{Map, json};

/// A registration lasts three heartbeats.
const HEARTBEAT: Duration = Duration::from_secs(1);

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("runs.db")).expect("the database opens")
}

/// Milliseconds since the Unix epoch on `clock`, as the store keeps times.
fn millis(clock: &ManualClock) -> Millis {
    let since = clock.now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    Millis::try_from(since.as_millis()).unwrap()
}

/// Registers worker `id` on `clock`, moving the clock a twentieth of a
/// heartbeat at a time while the registration waits to see whether the
/// holder of the id is alive (a live one renews it every heartbeat), for 30 s
/// at most.
async fn register(dir: &tempfile::TempDir, clock: &ManualClock, id: &str) -> Result<Runner, RegisterError> {
    let builder = Runner::builder(open(dir), Handlers::builtin()).clock(clock.clone());
    let mut registering = tokio::spawn({
        let id = id.to_owned();
        async move { builder.register(&id, HEARTBEAT).await }
    });
    let ticking = async {
        loop {
            tokio::select! {
                registered = &mut registering => return registered.unwrap(),
                () = tokio::time::sleep(Duration::from_millis(2)) => clock.advance(HEARTBEAT / 20),
            }
        }
    };
    let hang = Duration::from_secs(30);
    let registered = tokio::time::timeout(hang, ticking).await;
    registered.unwrap_or_else(|_| panic!("the registration of {id} neither ended nor was refused"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_worker_keeps_its_id_and_a_stopped_one_frees_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemTime::now());
    let first = register(&dir, &clock, "w1").await.unwrap();
    assert_eq!(first.owner(), "w1");

    // The second waits, sees the first renew its registration, and is refused.
    let refused = register(&dir, &clock, "w1").await;
    let Err(error @ RegisterError::Taken { .. }) = refused else {
        panic!("a second live w1 was not refused");
    };
    assert!(error.to_string().contains("worker id \"w1\" is in use by another live process"), "{error}");
    let other = register(&dir, &clock, "w2").await.unwrap();

    first.shutdown().await;
    let builder = Runner::builder(open(&dir), Handlers::builtin()).clock(clock.clone());
    let again = builder.register("w1", HEARTBEAT).await;
    assert_eq!(again.unwrap().owner(), "w1", "freed by the shutdown: taken without waiting");
    other.shutdown().await;

    for bad in ["", "w 1", "w\n1"] {
        let refused = Runner::register(open(&dir), Handlers::builtin(), bad, HEARTBEAT).await;
        assert!(matches!(refused, Err(RegisterError::InvalidId(_))), "{bad:?}");
    }
}

/// start → step → end, `step` setting a value.
fn graph() -> Graph {
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("step", "function")
                .with_config(json!({"action": "set_context", "values": {"done": true}})),
            Node::new("end", "end"),
        ])
        .unwrap();
    graph.add_edges([roomkit_graph::Edge::new("start", "step"), roomkit_graph::Edge::new("step", "end")]);
    graph
}

/// Opens run `run_id` at `step`, held by `owner` for a minute from `now`:
/// what a process of that worker id leaves behind when it dies mid-run.
async fn held_run(store: &dyn Store, run_id: &str, owner: &str, now: Millis) {
    let mut context = Map::new();
    context.insert("start".into(), json!({"output": {}}));
    let state = EngineState {
        context,
        current_node_id: Some("step".into()),
        previous_node_id: Some("start".into()),
        waiting: false,
        run_id: run_id.into(),
        pending: Vec::new(),
        children: Default::default(),
    };
    let lease = Lease::new(owner, now, 60_000);
    let run = NewRun {
        origin: None,
        parent: None,
        concurrency: None,
        org: DEFAULT_ORG.into(),
        graph_id: "g".into(),
        graph_version: 1,
        at: now,
        trigger: json!({}),
        state,
        key: None,
        first_step: None,
        lease: Some(lease),
    };
    store.create_run(run).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_takes_over_a_dead_ones_id_takes_back_its_runs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemTime::now());
    let store = open(&dir);
    store.save_graph(DEFAULT_ORG, &graph()).await.unwrap();
    // w1 died holding three runs, leases and registration still live.
    let now = millis(&clock);
    for run_id in ["r1", "r2", "r3"] {
        held_run(&store, run_id, "w1", now).await;
    }
    held_run(&store, "other", "w2", now).await;
    let dead = WorkerRegistration::new("w1", "host/1/dead", now, 3_000);
    assert_eq!(store.register_worker(&dead, now).await.unwrap(), dead);

    // Anyone else leaves them alone until their leases expire, a minute from now.
    let bystander = Runner::builder(open(&dir), Handlers::builtin()).clock(clock.clone()).build();
    assert_eq!(bystander.recover().await.unwrap(), 0);

    // The new w1 waits for the dead one's registration to expire (it is
    // never renewed), then takes the id and its runs.
    let runner = register(&dir, &clock, "w1").await.unwrap();
    assert!(millis(&clock) >= dead.until, "w1 taken before the dead one's registration expired");
    assert_eq!(runner.recover().await.unwrap(), 3);
    for run_id in ["r1", "r2", "r3"] {
        let done = runner.wait(run_id).await.unwrap();
        assert_eq!((done.status, done.owner), (RunStatus::Completed, None), "{run_id}");
    }
    let other = store.run("other").await.unwrap();
    assert_eq!((other.status, other.owner.as_deref()), (RunStatus::Running, Some("w2")), "w2's stays w2's");
    let running = RunFilter { status: Some(RunStatus::Running), ..Default::default() };
    assert_eq!(store.list_runs(&running).await.unwrap().len(), 1);
    runner.shutdown().await;
    bystander.shutdown().await;
}
