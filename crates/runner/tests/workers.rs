//! Worker ids on a real SQLite file: a live worker keeps its id from a second
//! process, a stopped one frees it at once, and a process that takes over
//! the id of a dead one (once the dead one's registration expired) takes back
//! at once the runs that id held, live leases or not.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use roomkit_graph::{EngineState, Graph, Handlers, Node, Trigger};
use roomkit_graph_runner::{RegisterError, Runner};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Lease, NewRun, RunFilter, RunStatus, WorkerRegistration, now_millis};
use serde_json::{Map, json};

const HEARTBEAT: Duration = Duration::from_millis(100);

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("runs.db")).expect("the database opens")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_worker_keeps_its_id_and_a_stopped_one_frees_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Runner::register(open(&dir), Handlers::builtin(), "w1", HEARTBEAT).await.unwrap();
    assert_eq!(first.owner(), "w1");

    let refused = Runner::register(open(&dir), Handlers::builtin(), "w1", HEARTBEAT).await;
    let Err(error @ RegisterError::Taken { .. }) = refused else {
        panic!("a second live w1 was not refused");
    };
    assert!(error.to_string().contains("worker id \"w1\" is in use by another live process"), "{error}");
    let other = Runner::register(open(&dir), Handlers::builtin(), "w2", HEARTBEAT).await.unwrap();

    first.shutdown().await;
    let again = Runner::register(open(&dir), Handlers::builtin(), "w1", Duration::from_secs(60)).await;
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

/// Opens run `run_id` at `step`, held by `owner` for a minute: what a process
/// of that worker id leaves behind when it dies mid-run.
async fn held_run(store: &dyn Store, run_id: &str, owner: &str) {
    let mut context = Map::new();
    context.insert("start".into(), json!({"output": {}}));
    let state = EngineState {
        context,
        current_node_id: Some("step".into()),
        previous_node_id: Some("start".into()),
        waiting: false,
        run_id: run_id.into(),
        pending: Vec::new(),
    };
    let lease = Lease::new(owner, now_millis(), 60_000);
    let run = NewRun {
        org: DEFAULT_ORG.into(),
        graph_id: "g".into(),
        graph_version: 1,
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
    let store = open(&dir);
    store.save_graph(DEFAULT_ORG, &graph()).await.unwrap();
    // w1 died holding three runs, leases and registration still live.
    for run_id in ["r1", "r2", "r3"] {
        held_run(&store, run_id, "w1").await;
    }
    held_run(&store, "other", "w2").await;
    let dead = WorkerRegistration::new("w1", "host/1/dead", now_millis(), 300);
    assert_eq!(store.register_worker(&dead).await.unwrap(), dead);

    // Anyone else leaves them alone until their leases expire, a minute from now.
    let bystander = Runner::new(open(&dir), Handlers::builtin());
    assert_eq!(bystander.recover().await.unwrap(), 0);

    // The new w1 waits for the dead one's registration to expire (it is
    // never renewed), then takes the id and its runs.
    let runner = Runner::register(open(&dir), Handlers::builtin(), "w1", HEARTBEAT).await.unwrap();
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
