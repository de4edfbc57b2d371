//! Saved states (after a first line holding the answer to give): any text is
//! read as a state or refused; a state read is restored into a graph with
//! every built-in node type or refused; a state restored runs on (and answers
//! the nodes it waits on) within its limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roomkit_graph::{EngineState, Graph};
use roomkit_graph_fuzz::{block_on, drive, workflow};
use serde_json::Value;

/// A graph with a log loop, a parallel node, a condition, a switch, a transform and a person's step.
const GRAPH: &str = r#"{
  "id": "fuzz", "name": "Fuzz", "trigger": {"type": "manual"},
  "nodes": [
    {"id": "start", "type": "start"},
    {"id": "checks", "type": "parallel", "config": {"join": "all"}},
    {"id": "lint", "type": "log", "parent": "checks", "config": {"paths": ["trigger.title"]}},
    {"id": "tag", "type": "function", "parent": "checks",
     "config": {"action": "set_context", "values": {"tags": ["a"]}}},
    {"id": "decide", "type": "condition",
     "config": {"condition": {"type": "field", "path": "trigger.n", "op": "gt", "value": 2}}},
    {"id": "route", "type": "switch", "config": {"path": "decide.output.result"}},
    {"id": "shape", "type": "function",
     "config": {"action": "json_transform", "template": {"t": "{{trigger.title | default(\"none\")}}", "all": "{{steps.shape}}"}}},
    {"id": "review", "type": "human", "config": {"prompt": "Ok?", "actions": ["approve", "reject"]}},
    {"id": "dump", "type": "log"},
    {"id": "end", "type": "end"}
  ],
  "edges": [
    {"source": "start", "target": "checks"},
    {"source": "checks", "target": "decide"},
    {"source": "decide", "target": "route"},
    {"source": "route", "target": "shape"},
    {"source": "shape", "target": "review"},
    {"source": "review", "target": "dump",
     "condition": {"type": "field", "path": "review.output.action", "op": "eq", "value": "reject"}},
    {"source": "review", "target": "end", "condition": {"type": "otherwise"}},
    {"source": "dump", "target": "shape"}
  ]
}"#;

fuzz_target!(|data: &[u8]| {
    // The answer given to each node the run waits on, on the first line; the saved state after it.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (answer, state) = text.split_once('\n').unwrap_or(("null", text));
    let Ok(state) = serde_json::from_str::<EngineState>(state) else { return };
    let graph = Graph::from_json(GRAPH).expect("the fuzz graph reads");
    let workflow = workflow(graph);
    let Ok(mut engine) = workflow.restore(state) else { return };
    let answer = serde_json::from_str(answer).unwrap_or(Value::Null);
    block_on(drive(&workflow, &mut engine, &answer));
});
