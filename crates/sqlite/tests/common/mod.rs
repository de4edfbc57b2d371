//! Fixtures shared by the store tests: a graph, a run's starting state and
//! steps to commit. Each test file uses its own part of them.
#![allow(dead_code, reason = "each test file uses only some fixtures")]

use std::path::PathBuf;

use roomkit_graph::{EngineState, Graph, Trigger};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Entry, NewRun, RunRecord, RunStatus, StepCommit, TranscriptEvent};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

/// A fresh directory and the path of a database file in it (not created yet).
pub(crate) fn db_path() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("runs.db");
    (dir, path)
}

/// A graph with this id (the store does not need it to be runnable).
pub(crate) fn graph(id: &str) -> Graph {
    Graph::new(id, format!("Graph {id}"), Trigger::manual())
}

/// The state of a run that has just started: the start node stored the trigger.
pub(crate) fn started_state(run_id: &str, trigger: &Value) -> EngineState {
    let mut context = Map::new();
    context.insert("start".into(), json!({ "output": trigger }));
    EngineState {
        context,
        current_node_id: Some("draft".into()),
        previous_node_id: Some("start".into()),
        waiting: false,
        run_id: run_id.into(),
        pending: Vec::new(),
    }
}

/// Opens run `run_id` on version 1 of `graph_id` (saved already), with the
/// trigger `{"topic": run_id}`.
pub(crate) async fn start_run(store: &SqliteStore, graph_id: &str, run_id: &str) -> RunRecord {
    let trigger = json!({ "topic": run_id });
    store
        .create_run(NewRun {
            org: DEFAULT_ORG.into(),
            lease: None,
            key: None,
            first_step: None,
            graph_id: graph_id.into(),
            graph_version: 1,
            trigger: trigger.clone(),
            state: started_state(run_id, &trigger),
        })
        .await
        .expect("the run is created")
}

/// A running step on `node` that writes `output` (as its entry
/// `{"output": output}`) and appends `entries`.
pub(crate) fn step(
    run_id: &str,
    expected_version: u64,
    node: &str,
    output: Value,
    entries: Vec<Entry>,
) -> StepCommit {
    StepCommit {
        wake_at: None,
        lease: None,
        run_id: run_id.into(),
        expected_version,
        writes: vec![(node.into(), json!({ "output": output }))],
        current_node_id: Some(node.into()),
        previous_node_id: Some("start".into()),
        status: RunStatus::Running,
        error: None,
        entries,
        steps: 0,
        pending: Vec::new(),
    }
}

/// A step on `node` with one `node_completed` entry.
pub(crate) fn simple_step(run_id: &str, expected_version: u64, node: &str) -> StepCommit {
    let output = json!({ "node": node });
    step(run_id, expected_version, node, output.clone(), vec![completed(node, output)])
}

/// The step that completes a run.
pub(crate) fn final_step(run_id: &str, expected_version: u64) -> StepCommit {
    StepCommit {
        wake_at: None,
        lease: None,
        run_id: run_id.into(),
        expected_version,
        writes: Vec::new(),
        current_node_id: None,
        previous_node_id: Some("end".into()),
        status: RunStatus::Completed,
        error: None,
        entries: vec![Entry::RunCompleted],
        steps: 0,
        pending: Vec::new(),
    }
}

/// A `node_completed` entry.
pub(crate) fn completed(node: &str, output: Value) -> Entry {
    Entry::NodeCompleted { node_id: node.into(), output }
}

/// The sequence numbers of `events`.
pub(crate) fn seqs(events: &[TranscriptEvent]) -> Vec<u64> {
    events.iter().map(|event| event.seq).collect()
}
