//! What the contract tests build on, and backends' own tests too: a graph, a
//! run's starting state and steps to commit.

use roomkit_graph::{EngineState, Graph, Trigger};
use serde_json::{Map, Value, json};

use crate::{
    DEFAULT_ORG, Entry, NewRun, RunRecord, RunStatus, StepCommit, Store, TranscriptEvent, now_millis,
};

/// A graph with this id (the store does not need it to be runnable).
pub fn graph(id: &str) -> Graph {
    Graph::new(id, format!("Graph {id}"), Trigger::manual())
}

/// The state of a run that has just started: the start node stored the
/// trigger, and the run is on `draft`.
pub fn started_state(run_id: &str, trigger: &Value) -> EngineState {
    let mut context = Map::new();
    context.insert("start".into(), json!({ "output": trigger }));
    EngineState {
        context,
        current_node_id: Some("draft".into()),
        previous_node_id: Some("start".into()),
        waiting: false,
        run_id: run_id.into(),
        pending: Vec::new(),
        children: Default::default(),
    }
}

/// Run `run_id` of `org` on version 1 of `graph_id`, with the trigger
/// `{"topic": run_id}`, started now, with no key, no lease and no first step.
pub fn new_run(org: &str, graph_id: &str, run_id: &str) -> NewRun {
    let trigger = json!({ "topic": run_id });
    NewRun {
        org: org.into(),
        graph_id: graph_id.into(),
        graph_version: 1,
        at: now_millis(),
        state: started_state(run_id, &trigger),
        trigger,
        key: None,
        lease: None,
        first_step: None,
        parent: None,
        origin: None,
        concurrency: None,
    }
}

/// Opens run `run_id` on version 1 of `graph_id` of the default organization
/// (saved already), with the trigger `{"topic": run_id}`.
///
/// # Panics
///
/// When the store refuses it.
pub async fn start_run(store: &dyn Store, graph_id: &str, run_id: &str) -> RunRecord {
    store.create_run(new_run(DEFAULT_ORG, graph_id, run_id)).await.expect("the run is created")
}

/// A running step on `node` that writes `output` (as its entry
/// `{"output": output}`) and appends `entries`.
pub fn step(
    run_id: &str,
    expected_version: u64,
    node: &str,
    output: Value,
    entries: Vec<Entry>,
) -> StepCommit {
    StepCommit {
        at: now_millis(),
        run_id: run_id.into(),
        expected_version,
        writes: vec![(node.into(), json!({ "output": output }))],
        current_node_id: Some(node.into()),
        previous_node_id: Some("start".into()),
        status: RunStatus::Running,
        error: None,
        entries,
        wake_at: None,
        lease: None,
        steps: 0,
        pending: Vec::new(),
    }
}

/// A step on `node` with one `node_completed` entry, the output `{"node": node}`.
pub fn simple_step(run_id: &str, expected_version: u64, node: &str) -> StepCommit {
    let output = json!({ "node": node });
    step(run_id, expected_version, node, output.clone(), vec![completed(node, output)])
}

/// A step on `node` that writes `output` with two entries: `node_started`
/// (a function node, attempt 1) and `node_completed`.
pub fn two_entry_step(run_id: &str, expected_version: u64, node: &str, output: Value) -> StepCommit {
    let entries = vec![
        Entry::NodeStarted { node_id: node.into(), node_type: "function".into(), attempt: 1 },
        completed(node, output.clone()),
    ];
    step(run_id, expected_version, node, output, entries)
}

/// The step that completes a run.
pub fn final_step(run_id: &str, expected_version: u64) -> StepCommit {
    StepCommit {
        writes: Vec::new(),
        current_node_id: None,
        previous_node_id: Some("end".into()),
        status: RunStatus::Completed,
        entries: vec![Entry::RunCompleted],
        ..step(run_id, expected_version, "end", Value::Null, Vec::new())
    }
}

/// A `node_completed` entry.
pub fn completed(node: &str, output: Value) -> Entry {
    Entry::NodeCompleted { node_id: node.into(), output }
}

/// The sequence numbers of `events`.
pub fn seqs(events: &[TranscriptEvent]) -> Vec<u64> {
    events.iter().map(|event| event.seq).collect()
}

/// The ids of `runs`, in order.
pub fn run_ids(runs: &[RunRecord]) -> Vec<&str> {
    runs.iter().map(|run| run.run_id.as_str()).collect()
}
