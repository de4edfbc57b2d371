//! A graph file with several mistakes gets all of them reported in one pass:
//! structure first, then reachability (only when the structure is sound), then
//! node configuration, each naming its node and, for configuration, its field.

use roomkit_graph::{Graph, GraphError};

fn load(name: &str) -> Graph {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Graph::from_json(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn report(graph: &Graph) -> Vec<(String, Option<String>, Option<String>)> {
    graph.validate().into_iter().map(|e| (e.code.to_string(), e.node, e.field)).collect()
}

fn row(code: &str, node: &str, field: Option<&str>) -> (String, Option<String>, Option<String>) {
    (code.to_owned(), Some(node.to_owned()), field.map(str::to_owned))
}

#[test]
fn every_mistake_in_one_pass_structure_then_configuration() {
    let graph = load("many-mistakes.json");
    assert_eq!(
        report(&graph),
        vec![
            row("dangling_edge_target", "notify", None),
            row("start_has_incoming", "start", None),
            row("end_has_outgoing", "end", None),
            // No reachability check: the structure is broken. Then node by node, in graph order.
            row("unknown_function_action", "fetch", Some("action")),
            row("missing_template", "reshape", Some("template")),
            row("invalid_duration", "wait", Some("duration")),
            row("malformed_condition", "check", Some("condition")),
            row("malformed_template", "greet", Some("template.text")),
            row("invalid_parent", "scan", Some("parent")),
            row("malformed_condition", "check", Some("edges[4].condition")),
        ]
    );
    let error = graph.validate_or_raise().unwrap_err();
    let text = error.to_string();
    for needle in ["\"notify\"", "fetch_url", "a while", "\"greet\" is a function node", "upper", "equals"] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(matches!(error, GraphError::Invalid(errors) if errors.len() == 10));
}

#[test]
fn reachability_comes_before_configuration_when_the_structure_is_sound() {
    let graph = load("unreachable-and-config.json");
    assert_eq!(
        report(&graph),
        vec![row("unreachable", "island", None), row("invalid_join", "checks", Some("join"))]
    );
}

#[test]
fn a_valid_graph_has_no_errors() {
    let mut graph = load("unreachable-and-config.json");
    graph.edges.retain(|e| e.source != "island");
    let graph = Graph::from_value(
        serde_json::to_value(&graph)
            .map(|mut v| {
                v["nodes"].as_array_mut().unwrap().retain(|n| n["id"] != "island");
                v["nodes"][1]["config"]["join"] = "any".into();
                v
            })
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report(&graph), vec![]);
}

#[test]
fn malformed_retry_and_timeout_settings_are_reported_with_their_field() {
    let graph = Graph::from_value(serde_json::json!({
        "id": "g", "name": "G", "trigger": {"type": "manual"},
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "call", "type": "agent", "config": {"timeout": 30, "retry": {"max_attempts": 3}}},
            {"id": "post", "type": "notification", "config": {"retry": {"max_attempts": 2, "backoff": "later"}}},
            {"id": "end", "type": "end"}
        ],
        "edges": [
            {"source": "start", "target": "call"}, {"source": "call", "target": "post"}, {"source": "post", "target": "end"}
        ]
    }))
    .unwrap();
    assert_eq!(
        report(&graph),
        vec![
            row("invalid_policy", "call", Some("timeout")),
            row("invalid_policy", "post", Some("retry.backoff"))
        ]
    );
}
