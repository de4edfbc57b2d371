//! A graph file with several mistakes gets all of them reported in one pass:
//! structure first, then reachability (only when the structure is sound), then
//! node configuration, each naming its node and, for configuration, its field.

use roomkit_graph::{
    Checks, Graph, GraphCheck, GraphError, Limits, Validation, ValidationCode, ValidationError, WarningCode,
};

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

/// A graph whose `review` node loops back to `draft` and, with `exit`, on to
/// the end (which `check` reaches from the start either way).
fn review_loop(max_steps: Option<u64>, exit: bool) -> Graph {
    let mut value = serde_json::json!({
        "id": "g", "name": "G", "trigger": {"type": "manual"},
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "check", "type": "log"},
            {"id": "draft", "type": "log"},
            {"id": "review", "type": "log"},
            {"id": "end", "type": "end"}
        ],
        "edges": [
            {"source": "start", "target": "check"},
            {"source": "check", "target": "end", "condition": {"type": "field", "path": "trigger.skip", "op": "exists"}},
            {"source": "check", "target": "draft"},
            {"source": "draft", "target": "review"}, {"source": "review", "target": "draft"}
        ]
    });
    if exit {
        value["edges"].as_array_mut().expect("edges is a list").push(serde_json::json!(
            {"source": "review", "target": "end", "condition": {"type": "error"}}
        ));
    }
    if let Some(max_steps) = max_steps {
        value["max_steps"] = max_steps.into();
    }
    Graph::from_value(value).expect("the graph reads")
}

#[test]
fn a_max_steps_of_0_is_a_mistake_of_the_graph_and_1_or_more_is_not() {
    let errors = review_loop(Some(0), true).validate();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].code, ValidationCode::InvalidMaxSteps);
    assert_eq!(errors[0].code.as_str(), "invalid_max_steps");
    assert_eq!((errors[0].node.as_deref(), errors[0].field.as_deref()), (None, Some("max_steps")));
    assert!(errors[0].message.starts_with("max_steps is 0"), "{}", errors[0].message);
    for max_steps in [None, Some(1), Some(u64::MAX)] {
        assert_eq!(review_loop(max_steps, true).validate(), vec![], "{max_steps:?}");
    }
}

#[test]
fn a_concurrency_limit_of_0_or_a_key_that_is_not_a_template_is_a_mistake() {
    let with = |concurrency: serde_json::Value| {
        let mut value = serde_json::to_value(review_loop(None, true)).unwrap();
        value["concurrency"] = concurrency;
        Graph::from_value(value).expect("the graph reads")
    };
    let errors = with(serde_json::json!({"limit": 0, "key": "{{trigger.customer | upper}}"})).validate();
    let found: Vec<_> =
        errors.iter().map(|e| (e.code.as_str(), e.field.as_deref(), e.node.as_deref())).collect();
    assert_eq!(
        found,
        [
            ("invalid_concurrency", Some("concurrency.limit"), None),
            ("invalid_concurrency", Some("concurrency.key"), None)
        ]
    );
    assert!(errors[0].message.starts_with("concurrency.limit is 0"), "{}", errors[0].message);
    assert_eq!(with(serde_json::json!({"limit": 1})).validate(), vec![]);
    assert_eq!(with(serde_json::json!({"limit": 3, "key": "{{trigger.customer}}"})).validate(), vec![]);
    // Anything else is not read at all.
    let mut value = serde_json::to_value(review_loop(None, true)).unwrap();
    value["concurrency"] = serde_json::json!({"limit": 3, "per": "customer"});
    assert!(Graph::from_value(value).is_err());
}

#[test]
fn warnings_are_apart_from_errors_and_do_not_make_a_graph_invalid() {
    let trapped = review_loop(None, false);
    // validate() gives errors only: the loop is allowed.
    assert_eq!(trapped.validate(), vec![]);
    trapped.validate_or_raise().unwrap();
    let found = trapped.check();
    assert!(found.is_valid());
    assert_eq!(found.errors, vec![]);
    assert_eq!(found.warnings.len(), 1);
    let warning = &found.warnings[0];
    assert_eq!(warning.code, WarningCode::CycleWithoutExit);
    assert_eq!((warning.node.as_deref(), warning.field.as_deref()), (Some("draft"), None));
    assert_eq!(
        warning.to_string(),
        "[cycle_without_exit] nodes \"draft\", \"review\" lead only to each other: a run that gets \
         there ends only at its step limit; give one of them an edge out"
    );
    assert_eq!(
        serde_json::to_value(warning).unwrap(),
        serde_json::json!({"code": "cycle_without_exit", "node": "draft", "field": null, "message": warning.message})
    );

    // An error edge out is a way out.
    assert_eq!(review_loop(None, true).check(), Validation::default());

    // Errors and warnings together: each in its list.
    let found = review_loop(Some(0), false).check();
    assert_eq!(found.errors.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(), ["invalid_max_steps"]);
    assert_eq!(found.warnings.iter().map(|w| w.code.as_str()).collect::<Vec<_>>(), ["cycle_without_exit"]);
    assert!(!found.is_valid());

    // A graph too large to look into gets that one mistake and no warning.
    let found = trapped.check_with(&Limits { nodes: 3, ..Limits::default() });
    assert_eq!(found.errors.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(), ["limit_exceeded"]);
    assert_eq!(found.warnings, vec![]);
}

/// A check of an application's: every log node is a mistake, named with its node.
struct NoLogs(&'static str);

impl GraphCheck for NoLogs {
    fn check(&self, graph: &Graph) -> Vec<ValidationError> {
        let logs = graph.nodes().iter().filter(|node| node.node_type.as_str() == "log");
        logs.map(|node| ValidationError {
            code: ValidationCode::Custom("no_logs"),
            node: Some(node.id.clone()),
            field: None,
            message: format!("{}: {}", self.0, node.id),
        })
        .collect()
    }
}

#[test]
fn registered_checks_follow_the_core_mistakes_in_order_and_keep_its_warnings() {
    let graph = review_loop(Some(0), false);
    assert_eq!(Checks::new().check(&graph, &Limits::default()), graph.check());

    let checks = Checks::new().with(NoLogs("first")).with(NoLogs("second"));
    let found = checks.check(&graph, &Limits::default());
    let messages: Vec<&str> = found.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages[1..],
        ["first: check", "first: draft", "first: review", "second: check", "second: draft", "second: review"]
    );
    assert_eq!(found.errors[0].code, ValidationCode::InvalidMaxSteps);
    assert_eq!(
        serde_json::to_value(&found.errors[1]).unwrap(),
        serde_json::json!({"code": "no_logs", "node": "check", "field": null, "message": "first: check"})
    );
    assert_eq!(found.warnings, graph.check().warnings);
    assert_eq!(found.warnings.len(), 1);

    // A graph too large to look into gets the core's one mistake: no check runs.
    let found = checks.check(&graph, &Limits { nodes: 3, ..Limits::default() });
    assert_eq!(found.errors.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(), ["limit_exceeded"]);
    assert_eq!(found.warnings, vec![]);
}
