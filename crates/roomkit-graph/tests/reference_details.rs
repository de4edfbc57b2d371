//! Details pinned by the reference implementation, outside the step loop: the
//! `input` scope, templates, lenient conditions and the built-in handlers.

use roomkit_graph::{EngineState, Graph, Handlers, RunStatus, Workflow, WorkflowEngine};
use serde_json::{Value, json};

fn graph(nodes: Value, edges: Value) -> Graph {
    Graph::from_value(json!({
        "id": "g", "name": "G", "trigger": {"type": "manual"}, "nodes": nodes, "edges": edges
    }))
    .expect("test graphs are well formed")
}

fn transform(id: &str, template: Value) -> Value {
    json!({"id": id, "type": "function", "config": {"action": "json_transform", "template": template}})
}

async fn run(graph: Graph, trigger: Value) -> WorkflowEngine {
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin());
    assert_eq!(engine.run(trigger).await.expect("the run completes"), RunStatus::Completed);
    engine
}

#[tokio::test]
async fn input_is_the_trigger_data_after_start_and_null_after_a_node_that_stored_nothing() {
    let graph = graph(
        json!([
            {"id": "begin", "type": "start"},
            transform("first", json!({"whole": "{{input}}", "title": "{{input.title}}"})),
            {"id": "quiet", "type": "function", "config": {"action": "set_context", "values": null}},
            transform("after", json!({
                "whole": "{{input | default(\"unused\")}}",
                "field": "{{input.x | default(\"missing\")}}"
            })),
            {"id": "end", "type": "end"}
        ]),
        json!([
            {"source": "begin", "target": "first",
             "condition": {"type": "field", "path": "input.title", "op": "eq", "value": "DB down"}},
            {"source": "first", "target": "quiet"},
            {"source": "quiet", "target": "after",
             "condition": {"type": "field", "path": "input", "op": "exists"}},
            {"source": "after", "target": "end"}
        ]),
    );
    let engine = run(graph, json!({"title": "DB down"})).await;
    let context = engine.context();
    assert_eq!(
        context.get("first.output"),
        Some(&json!({"whole": {"title": "DB down"}, "title": "DB down"}))
    );
    assert_eq!(context.get("quiet"), None);
    assert_eq!(context.get("after.output"), Some(&json!({"whole": null, "field": "missing"})));
}

#[tokio::test]
async fn a_state_restored_without_its_previous_node_reads_input_from_the_incoming_edges() {
    let workflow = Workflow::new(
        graph(
            json!([
                {"id": "start", "type": "start"},
                transform("a", json!({"n": 1})),
                transform("b", json!({"n": 2})),
                transform("join", json!("{{input}}")),
                {"id": "end", "type": "end"}
            ]),
            json!([
                {"source": "start", "target": "a"},
                {"source": "a", "target": "join"},
                {"source": "b", "target": "join"},
                {"source": "join", "target": "end"}
            ]),
        ),
        Handlers::builtin(),
    );
    let state = |current: &str| -> EngineState {
        serde_json::from_value(json!({
            "context": {"start": {"output": {"input": {"k": "v"}}}, "a": {"output": {"n": 1}}},
            "current_node_id": current,
            "waiting": false
        }))
        .expect("a saved state")
    };
    // One incoming edge: its source's output (the trigger data for start).
    let engine = workflow.restore(state("a")).expect("restored");
    assert_eq!(engine.context().get("input"), Some(&json!({"k": "v"})));
    // Several: {source_id: steps.SOURCE}, null for a source without output.
    let engine = workflow.restore(state("join")).expect("restored");
    assert_eq!(engine.context().get("input"), Some(&json!({"a": {"n": 1}, "b": null})));
    // None: input names nothing.
    let engine = workflow.restore(state("start")).expect("restored");
    assert_eq!(engine.context().get("input"), None);
    // With the previous node saved, that node's output.
    let mut saved = state("join");
    saved.previous_node_id = Some("a".into());
    let engine = workflow.restore(saved).expect("restored");
    assert_eq!(engine.context().get("input"), Some(&json!({"n": 1})));
}
