//! Details pinned by the reference implementation, outside the step loop: the
//! `input` scope, templates, lenient conditions and the built-in handlers.

use roomkit_graph::{
    EngineError, EngineState, EngineStatus, ErrorKind, Graph, Handlers, HumanHandler, Workflow,
    WorkflowEngine,
};
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
    assert_eq!(engine.run(trigger).await.expect("the run completes"), EngineStatus::Completed);
    engine
}

#[tokio::test]
async fn input_is_the_trigger_data_after_start_and_null_after_a_node_that_stored_nothing() {
    let graph = graph(
        json!([
            {"id": "start", "type": "start"},
            transform("first", json!({"whole": "{{input}}", "title": "{{input.title}}"})),
            {"id": "quiet", "type": "function", "config": {"action": "set_context", "values": null}},
            transform("after", json!({
                "whole": "{{input | default(\"unused\")}}",
                "field": "{{input.x | default(\"missing\")}}"
            })),
            {"id": "end", "type": "end"}
        ]),
        json!([
            {"source": "start", "target": "first",
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

/// A condition node `check` reading `condition`, between start and end.
fn condition_node(condition: Value) -> Graph {
    graph(
        json!([
            {"id": "start", "type": "start"},
            {"id": "check", "type": "condition", "config": {"condition": condition}},
            {"id": "end", "type": "end"}
        ]),
        json!([{"source": "start", "target": "check"}, {"source": "check", "target": "end"}]),
    )
}

/// What the condition node `check` gives for `condition` on trigger `{"n": 1}`.
async fn check(condition: Value) -> bool {
    let engine = run(condition_node(condition.clone()), json!({"n": 1})).await;
    match engine.context().get("check.output.result") {
        Some(Value::Bool(result)) => *result,
        other => panic!("{condition}: result {other:?}"),
    }
}

#[tokio::test]
async fn conditions_are_read_leniently_and_validate_still_reports_them() {
    let n_is_1 = json!({"type": "field", "path": "trigger.n", "op": "eq", "value": 1});
    let cases = [
        (json!({"path": "trigger.n", "op": "eq", "value": 1}), true),
        (json!({"path": "trigger.n", "op": "eq", "value": 2}), false),
        (json!({"type": "all"}), true),
        (json!({"type": "any"}), false),
        (json!({"type": "not", "conditions": [n_is_1, {"type": "otherwise"}]}), false),
        (json!({"type": "not", "conditions": [{"type": "any", "conditions": []}, n_is_1]}), true),
        (json!({"type": "all", "conditions": [n_is_1, {"type": "otherwise"}]}), true),
        (json!({"type": "otherwise"}), true),
        (json!({"type": "field", "path": null, "op": "exists"}), false),
        (json!({"type": "not", "conditions": [{"type": "field", "path": null, "op": "exists"}]}), true),
    ];
    for (condition, expected) in cases {
        assert_eq!(check(condition.clone()).await, expected, "{condition}");
        let errors = condition_node(condition.clone()).validate();
        let codes: Vec<_> = errors.iter().map(|e| (e.code.as_str(), e.field.as_deref())).collect();
        assert_eq!(codes, [("malformed_condition", Some("condition"))], "{condition}");
    }
    // Written back as read.
    for condition in [json!({"path": "a", "op": "eq", "value": 1}), json!({"type": "all"})] {
        let graph = condition_node(json!(null));
        let mut value = serde_json::to_value(&graph).expect("written");
        value["edges"][1]["condition"] = condition.clone();
        let graph = Graph::from_value(value.clone()).expect("read");
        assert_eq!(serde_json::to_value(&graph).expect("written"), value);
    }
}

#[tokio::test]
async fn an_empty_edge_condition_is_unconditional() {
    // The empty condition is tried after the conditional edge, as an unconditional edge is.
    let graph = |n: i64| {
        let graph = graph(
            json!([
                {"id": "start", "type": "start"},
                transform("plain", json!({"took": "plain"})),
                transform("matched", json!({"took": "matched"})),
                {"id": "end", "type": "end"}
            ]),
            json!([
                {"source": "start", "target": "plain", "condition": {}},
                {"source": "start", "target": "matched",
                 "condition": {"type": "field", "path": "input.n", "op": "eq", "value": 1}},
                {"source": "plain", "target": "end"},
                {"source": "matched", "target": "end"}
            ]),
        );
        (graph, json!({"n": n}))
    };
    let (g, trigger) = graph(1);
    let errors = g.validate();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].code.as_str(), errors[0].field.as_deref()),
        ("malformed_condition", Some("edges[0].condition"))
    );
    assert_eq!(run(g, trigger).await.context().get("matched.output.took"), Some(&json!("matched")));
    let (g, trigger) = graph(2);
    assert_eq!(run(g, trigger).await.context().get("plain.output.took"), Some(&json!("plain")));
}

#[tokio::test]
async fn an_unknown_op_in_a_condition_node_is_a_condition_error() {
    let graph = condition_node(json!({"type": "field", "path": "trigger.n", "op": "like", "value": 1}));
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin());
    let error = engine.run(json!({"n": 1})).await.expect_err("the condition node fails");
    assert_eq!(error.kind(), ErrorKind::Condition);
    assert!(error.to_string().contains("like"), "{error}");
    // A malformed condition still gives false.
    assert!(!check(json!({"type": "field", "path": "trigger.n"})).await);
}

#[test]
fn error_conditions_out_of_place_are_configuration_errors() {
    let graph = graph(
        json!([
            {"id": "start", "type": "start"},
            {"id": "fan", "type": "parallel"},
            {"id": "child", "type": "log", "parent": "fan"},
            {"id": "check", "type": "condition", "config": {"condition": {"type": "error"}}},
            {"id": "end", "type": "end"}
        ]),
        json!([
            {"source": "start", "target": "fan"},
            {"source": "fan", "target": "check"},
            {"source": "fan", "target": "end", "condition": {"type": "error"}},
            {"source": "check", "target": "end",
             "condition": {"type": "any", "conditions": [{"type": "not", "conditions": [{"type": "error"}]}]}},
            {"source": "child", "target": "end", "condition": {"type": "error"}}
        ]),
    );
    let report: Vec<_> = graph.validate().into_iter().map(|e| (e.code.as_str(), e.node, e.field)).collect();
    let row = |code, node: &str, field: &str| (code, Some(node.to_owned()), Some(field.to_owned()));
    assert_eq!(
        report,
        [
            row("nested_error_condition", "check", "condition"),
            row("nested_error_condition", "check", "edges[3].condition"),
            row("error_route_from_child", "child", "edges[4].condition"),
        ]
    );
}

#[tokio::test]
async fn the_built_in_set_is_the_reference_s_seven_handlers() {
    let handlers = Handlers::builtin();
    for node_type in ["start", "end", "function", "condition", "switch", "log", "parallel"] {
        assert!(handlers.has_type(node_type), "{node_type}");
    }
    for node_type in ["human", "agent", "notification", "orchestration"] {
        assert!(!handlers.has_type(node_type), "{node_type}");
    }
    let graph = graph(
        json!([
            {"id": "start", "type": "start"},
            {"id": "review", "type": "human", "config": {"prompt": "Ok?"}},
            {"id": "end", "type": "end"}
        ]),
        json!([{"source": "start", "target": "review"}, {"source": "review", "target": "end"}]),
    );
    let mut engine = WorkflowEngine::new(graph.clone(), Handlers::builtin());
    let error = engine.run(json!({})).await.expect_err("no handler for human");
    assert_eq!(error.kind(), ErrorKind::Execution);
    assert!(
        matches!(&error, EngineError::NoHandler { node, node_type } if node == "review" && node_type == "human"),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "node \"review\" failed: No handler registered for node type 'human'");
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with("human", HumanHandler));
    assert_eq!(engine.run(json!({})).await.expect("waits"), EngineStatus::Waiting);
}

#[tokio::test]
async fn the_log_dump_leaves_out_ids_that_begin_with_an_underscore() {
    let graph = graph(
        json!([
            {"id": "start", "type": "start"},
            transform("_internal", json!({"secret": 1})),
            transform("visible", json!({"n": 2})),
            {"id": "dump", "type": "log", "config": {"message": "all", "paths": [""]}},
            {"id": "end", "type": "end"}
        ]),
        json!([
            {"source": "start", "target": "_internal"},
            {"source": "_internal", "target": "visible"},
            {"source": "visible", "target": "dump"},
            {"source": "dump", "target": "end"}
        ]),
    );
    let engine = run(graph, json!({"k": "v"})).await;
    assert_eq!(
        engine.context().get("dump.output"),
        Some(&json!({"message": "all", "values": {
            "start": {"output": {"input": {"k": "v"}}},
            "visible": {"output": {"n": 2}}
        }}))
    );
    assert_eq!(engine.context().get("_internal.output.secret"), Some(&json!(1)));
}
