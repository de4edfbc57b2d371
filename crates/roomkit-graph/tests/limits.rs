//! What no graph, trigger or answer may do: exhaust memory or the stack. Each
//! test is a shape that once did, asserted by counts and bytes allocated
//! (this binary counts every allocation), never by time.

use std::alloc::System;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_util::StreamExt;
use roomkit_graph::{
    Condition, Edge, EngineError, EngineState, ErrorKind, Graph, Handlers, HumanHandler, LimitError, Limits,
    Node, StreamMode, Trigger, ValidationCode, Workflow,
};
use serde_json::{Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The tests of this binary measure allocations one at a time.
static MEASURING: Mutex<()> = Mutex::new(());

fn measuring() -> MutexGuard<'static, ()> {
    MEASURING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bytes allocated while `work` runs.
fn allocated_by<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let region = Region::new(GLOBAL);
    let result = work();
    (result, region.change().bytes_allocated)
}

fn block_on<T>(work: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime").block_on(work)
}

/// `start` then `nodes`, with `edges` between them (ids).
fn graph(nodes: Vec<Node>, edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph.add_nodes(std::iter::once(Node::new("start", "start")).chain(nodes)).expect("unique ids");
    graph.add_edges(edges.iter().map(|(from, to)| Edge::new(*from, *to)));
    graph
}

/// Runs `graph` to its end (at most `max_steps` steps), returning the error and how many steps ran.
fn run_to_error(graph: Graph, max_steps: u64) -> (EngineError, EngineState) {
    let workflow = Workflow::new(graph, Handlers::builtin()).with_max_steps(max_steps);
    let mut engine = workflow.engine();
    let error = block_on(engine.run(json!({"n": 1}))).expect_err("the run fails");
    (error, engine.to_state())
}

#[test]
fn two_log_nodes_in_a_loop_fail_on_a_limit_instead_of_doubling_forever() {
    let _guard = measuring();
    // Each log node dumps the whole context, which holds the other's dump.
    let looping = graph(
        vec![Node::new("a", "log"), Node::new("b", "log"), Node::new("end", "end")],
        &[("start", "a"), ("a", "b"), ("b", "a")],
    );
    let ((error, state), bytes) = allocated_by(|| run_to_error(looping, 1_000));
    assert_eq!(error.kind(), ErrorKind::Limit, "{error}");
    // In all, for the whole run: 24 doubling steps once took 575 MB, and more after.
    assert!(bytes < 128 << 20, "{bytes} bytes allocated");
    // What was saved reads back: its JSON nests no deeper than a reader accepts.
    let text = serde_json::to_string(&state).expect("a state is JSON");
    let back: EngineState = serde_json::from_str(&text).expect("the saved state reads back");
    assert_eq!(back, state);
}

#[test]
fn a_log_node_looping_on_itself_stops_at_the_depth_limit() {
    let _guard = measuring();
    let looping = graph(vec![Node::new("a", "log"), Node::new("end", "end")], &[("start", "a"), ("a", "a")]);
    let ((error, state), bytes) = allocated_by(|| run_to_error(looping, 1_600));
    assert!(matches!(error, EngineError::Limit { ref node, .. } if node == "a"), "{error}");
    let depth = roomkit_graph::measure(&state.context["a"]).depth;
    assert!(depth <= Limits::default().json_depth + 1, "the stored dump nests {depth} levels");
    assert!(bytes < 64 << 20, "{bytes} bytes allocated");
}

#[test]
fn a_transform_doubling_its_own_output_fails_on_the_size_limit_and_stores_nothing_past_it() {
    let _guard = measuring();
    let template =
        json!({"left": "{{steps.grow | default(\"seed\")}}", "right": "{{steps.grow | default(\"seed\")}}"});
    let grow =
        Node::new("grow", "function").with_config(json!({"action": "json_transform", "template": template}));
    let looping = graph(vec![grow, Node::new("end", "end")], &[("start", "grow"), ("grow", "grow")]);
    // Shallow limits keep the depth out of the way: the size is what grows.
    let limits = Limits { json_depth: 100, output_bytes: 64 << 10, ..Limits::default() };
    let workflow = Workflow::new(looping, Handlers::builtin()).with_max_steps(1_000).with_limits(limits);
    let mut engine = workflow.engine();
    let (error, bytes) = allocated_by(|| block_on(engine.run(json!({}))).expect_err("the run fails"));
    // Refused while resolving, as soon as the copies add up to more than the limit.
    let EngineError::Limit { node, source: LimitError::Exceeds { limit }, .. } = &error else {
        panic!("expected a size limit, got {error}");
    };
    assert_eq!((node.as_str(), *limit), ("grow", 64 << 10));
    let stored =
        roomkit_graph::measure(engine.context().output("grow").expect("the last output that fit")).bytes;
    assert!(stored <= 64 << 10, "{stored} bytes stored");
    // Far under what 24 doubling steps took (over 3 GiB).
    assert!(bytes < 64 << 20, "{bytes} bytes allocated");
}

#[test]
fn a_context_past_its_limit_fails_the_step_that_would_grow_it() {
    let _guard = measuring();
    let text = "x".repeat(30_000);
    let node = |id: &str| {
        Node::new(id, "function").with_config(json!({"action": "set_context", "values": {"text": text}}))
    };
    let chain = graph(
        vec![node("a"), node("b"), node("c"), Node::new("end", "end")],
        &[("start", "a"), ("a", "b"), ("b", "c"), ("c", "end")],
    );
    let limits = Limits { context_bytes: 70_000, ..Limits::default() };
    let mut engine = Workflow::new(chain, Handlers::builtin()).with_limits(limits).engine();
    let error = block_on(engine.run(json!({}))).expect_err("the third output does not fit");
    assert!(
        matches!(&error, EngineError::Limit { node, source: LimitError::Context { .. }, .. } if node == "c")
    );
    assert_eq!(engine.current_node_id(), Some("c"));
    assert_eq!(engine.context().output("c"), None);
    assert!(engine.context().size() <= 70_000);
}

#[test]
fn a_limit_failure_is_not_taken_by_an_error_edge() {
    let _guard = measuring();
    let routed = |action: &str| {
        let node = Node::new("node", "function")
            .with_config(json!({"action": action, "values": {"text": "x".repeat(2_000)}}));
        let fallback = Node::new("fallback", "function")
            .with_config(json!({"action": "set_context", "values": {"routed": true}}));
        let mut g = graph(
            vec![node, fallback, Node::new("end", "end")],
            &[("start", "node"), ("node", "end"), ("fallback", "end")],
        );
        g.add_edge(Edge::new("node", "fallback").when(Condition::error()));
        let limits = Limits { output_bytes: 1_000, ..Limits::default() };
        let mut engine = Workflow::new(g, Handlers::builtin()).with_limits(limits).engine();
        let ran = block_on(engine.run(json!({})));
        (ran, engine)
    };
    // A failure the node reports is routed...
    let (ran, engine) = routed("no_such_action");
    ran.expect("the error edge is taken");
    assert_eq!(engine.context().get("fallback.output.routed"), Some(&json!(true)));
    // ...an output past the limit is not: the run stops on the node.
    let (ran, engine) = routed("set_context");
    let error = ran.expect_err("the output is over the limit");
    assert_eq!(error.kind(), ErrorKind::Limit, "{error}");
    assert_eq!(engine.current_node_id(), Some("node"));
    assert_eq!(engine.context().get("fallback"), None);
    assert_eq!(engine.context().get("node"), None);
}

#[test]
fn parallel_nodes_nested_past_the_limit_are_refused() {
    let nested = |levels: usize| {
        let mut nodes: Vec<Node> = (0..levels)
            .map(|i| {
                let node = Node::new(format!("p{i}"), "parallel");
                if i == 0 { node } else { node.with_parent(format!("p{}", i - 1)) }
            })
            .collect();
        nodes.push(Node::new("end", "end"));
        graph(nodes, &[("start", "p0"), ("p0", "end")])
    };
    let too_deep = |g: &Graph| -> Vec<String> {
        g.validate()
            .into_iter()
            .filter(|e| e.code == ValidationCode::LimitExceeded)
            .map(|e| e.message)
            .collect()
    };
    // p0 holds p1 ... p16: sixteen levels under the top one are allowed.
    assert_eq!(too_deep(&nested(17)), Vec::<String>::new());
    assert_eq!(
        too_deep(&nested(18)),
        vec!["node \"p17\": parallel nodes nest more than 16 levels deep".to_owned()]
    );
}

#[test]
fn trigger_data_and_answers_past_the_limits_are_refused_whole() {
    let _guard = measuring();
    let mut deep = json!("leaf");
    for _ in 0..70 {
        deep = json!([deep]);
    }
    let review = Node::new("review", "human").with_config(json!({"actions": ["approve"]}));
    let g = graph(vec![review, Node::new("end", "end")], &[("start", "review"), ("review", "end")]);
    let workflow = Workflow::new(g, Handlers::builtin().with("human", HumanHandler));
    let mut engine = workflow.engine();
    let error = block_on(engine.run(deep.clone())).expect_err("too deep");
    assert_eq!(
        error.to_string(),
        "node \"start\": the trigger data nests 70 levels deep, more than the limit of 64"
    );
    assert_eq!(engine.current_node_id(), None);

    block_on(engine.run(json!({"ok": true}))).expect("a trigger that fits");
    let error = engine.resume("review", json!({"action": "approve", "notes": deep})).expect_err("too deep");
    assert_eq!(error.kind(), ErrorKind::Limit);
    assert!(error.to_string().starts_with("node \"review\": the answer nests 71 levels"), "{error}");
    assert!(engine.waiting());
    assert_eq!(engine.context().output("review"), None);
}

#[test]
fn parallel_nodes_that_parent_themselves_are_refused_and_never_recurse() {
    let _guard = measuring();
    for parents in [vec![("p", "p")], vec![("p", "q"), ("q", "p")]] {
        let mut nodes = vec![Node::new("p", "parallel"), Node::new("q", "parallel"), Node::new("end", "end")];
        for (child, parent) in &parents {
            let at = nodes.iter().position(|n| n.id == *child).expect("a node");
            nodes[at] = nodes[at].clone().with_parent(*parent);
        }
        let g = graph(nodes, &[("start", "p"), ("p", "end")]);
        let invalid: Vec<_> =
            g.validate().into_iter().filter(|e| e.code == ValidationCode::InvalidParent).collect();
        assert_eq!(invalid.len(), parents.len(), "{invalid:?}");
        // Run anyway (running does not validate): the cycle is not followed.
        let mut engine = Workflow::new(g, Handlers::builtin()).engine();
        block_on(engine.run(json!({}))).expect("the run completes");
        assert_eq!(engine.context().get("p.output"), Some(&json!({})));
    }
}

#[test]
fn values_snapshots_cost_what_the_context_holds_not_what_the_graph_has() {
    let _guard = measuring();
    // 20,000 nodes, of which the run stores two entries, streamed 300 times.
    let mut nodes: Vec<Node> = (0..20_000).map(|i| Node::new(format!("n{i}"), "log")).collect();
    let looping =
        Node::new("loop", "function").with_config(json!({"action": "set_context", "values": {"k": 1}}));
    nodes.push(looping);
    let g = graph(nodes, &[("start", "loop"), ("loop", "loop")]);
    let workflow = Workflow::new(g, Handlers::builtin()).with_max_steps(300);
    let (events, bytes) = allocated_by(|| {
        block_on(async {
            let mut engine = workflow.engine();
            engine.stream(json!({}), &[StreamMode::Values]).collect::<Vec<_>>().await
        })
    });
    assert_eq!(events.len(), 302, "301 snapshots and the step limit");
    // The graph's compiled form is allocated before; 738 MB were allocated here once.
    assert!(bytes < 32 << 20, "{bytes} bytes allocated");
}

#[test]
fn conditions_are_written_copying_each_part_once() {
    let _guard = measuring();
    let big: Vec<Value> = (0..300_000).map(Value::from).collect();
    let (copy, one_copy) = allocated_by(|| Value::Array(big.clone()));
    drop(copy);
    let mut condition = Condition::field("x").in_(big);
    for _ in 0..32 {
        condition = Condition::not(condition);
    }
    let (value, bytes) = allocated_by(|| condition.to_value());
    assert_eq!(roomkit_graph::measure(&value).depth, 32 * 2 + 2);
    // Once 32 copies; now one, and the few objects around it.
    assert!(bytes < 2 * one_copy, "{bytes} bytes allocated for a {one_copy}-byte array");
}

/// Takes a deep value apart level by level (dropping it whole recurses as deep).
fn dismantle(mut value: Value) {
    loop {
        value = match value {
            Value::Array(mut items) => items.pop().unwrap_or(Value::Null),
            Value::Object(map) => map.into_iter().next_back().map_or(Value::Null, |(_, v)| v),
            _ => return,
        };
    }
}

/// Takes a deep condition apart level by level.
fn dismantle_condition(mut condition: Condition) {
    while let Condition::All(mut items) | Condition::Any(mut items) | Condition::Not(mut items) = condition {
        condition = items.pop().unwrap_or(Condition::Otherwise);
    }
}

#[test]
fn conditions_ten_thousand_levels_deep_neither_overflow_nor_read_back_wrong() {
    let _guard = measuring();
    // As JSON built in code: read as malformed, without recursing through it.
    let mut value = json!({"type": "otherwise"});
    for _ in 0..10_000 {
        // Not `json!`, which copies what it holds recursively.
        let mut not = serde_json::Map::new();
        not.insert("type".to_owned(), json!("not"));
        not.insert("conditions".to_owned(), Value::Array(vec![value]));
        value = Value::Object(not);
    }
    let read = Condition::from_value(&value);
    assert!(read.problem().expect("malformed").contains("nested more than 40 levels"), "{read:?}");
    assert!(serde_json::to_string(&read).is_ok());
    dismantle(value);

    // Built in code: written without recursion; refused by serde, whose output could not be read back.
    let mut condition = Condition::otherwise();
    for _ in 0..10_000 {
        condition = Condition::not(condition);
    }
    assert_eq!(condition.nesting(), 10_001);
    let error = serde_json::to_string(&condition).expect_err("too deep to write");
    assert!(error.to_string().contains("nested 10001 levels deep"), "{error}");
    let value = condition.to_value();
    assert_eq!(roomkit_graph::measure(&value).depth, 20_001);
    dismantle(value);
    dismantle_condition(condition);
}

#[test]
fn graphs_too_deep_for_json_text_are_refused_when_read_from_values() {
    let _guard = measuring();
    let mut config = json!(1);
    for _ in 0..10_000 {
        config = Value::Object([("a".to_owned(), config)].into_iter().collect());
    }
    let mut value = json!({
        "id": "g", "name": "G", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"}], "edges": []
    });
    value["nodes"][0]["config"] = config;
    // Taken and let go of without recursing through it.
    let error = Graph::from_value(value).expect_err("too deep");
    assert_eq!(
        error.to_string(),
        "the graph nests 10003 levels deep, more than the 127 levels JSON text may"
    );
    let error = Graph::from_json("[1, 2]").expect_err("not a graph");
    assert!(!error.to_string().contains("GraphJson"), "{error}");
}

#[test]
fn graph_limits_and_human_nodes_are_validated() {
    let _guard = measuring();
    let mut g = Graph::new("", "G", Trigger::manual());
    let review = Node::new("re.view", "human").with_config(json!({"actions": "approve", "prompt": 5}));
    g.add_nodes([Node::new("start", "start"), review, Node::new("end", "end")]).expect("unique ids");
    g.add_edges([Edge::new("start", "re.view"), Edge::new("re.view", "end")]);
    let codes: Vec<(ValidationCode, Option<String>)> =
        g.validate().into_iter().map(|e| (e.code, e.field)).collect();
    assert_eq!(
        codes,
        [
            (ValidationCode::InvalidPrompt, Some("prompt".to_owned())),
            (ValidationCode::InvalidActions, Some("actions".to_owned())),
            (ValidationCode::InvalidId, None),
            (ValidationCode::InvalidId, None),
        ]
    );
    let long = Graph::new("x".repeat(500_000), "G", Trigger::manual());
    let message =
        &long.validate_with(&Limits::default()).into_iter().find(|e| e.code == ValidationCode::InvalidId);
    let message = &message.as_ref().expect("the id is refused").message;
    assert!(message.len() < 200 && message.contains("500000 characters"), "{message}");
}

/// A step whose templates or log paths read one large value many times: the
/// output would be many times the limit, and is refused before it is built.
fn amplifying_step_allocation(node: Node) -> (EngineError, usize) {
    let g = graph(vec![node, Node::new("end", "end")], &[("start", "copy"), ("copy", "end")]);
    let limits = Limits { output_bytes: 64 << 10, ..Limits::default() };
    let mut engine = Workflow::new(g, Handlers::builtin()).with_limits(limits).engine();
    engine.start(json!({"text": "x".repeat(60_000)})).expect("the trigger fits");
    block_on(engine.step()).expect("the start node runs");
    let (error, bytes) = allocated_by(|| block_on(engine.step()).expect_err("the output does not fit"));
    assert_eq!(engine.context().output("copy"), None);
    (error, bytes)
}

#[test]
fn a_template_repeating_a_large_value_is_refused_before_it_is_built() {
    let _guard = measuring();
    // 1,000 copies of a 60 KB string: 60 MB, from a valid 16 KB template.
    let text = "{{trigger.text}}".repeat(1_000);
    let copy =
        Node::new("copy", "function").with_config(json!({"action": "json_transform", "template": text}));
    let (error, bytes) = amplifying_step_allocation(copy);
    assert_eq!(error.kind(), ErrorKind::Limit, "{error}");
    assert_eq!(error.to_string(), "node \"copy\": its output would be more than the limit of 65536 bytes");
    assert!(bytes < 1 << 20, "{bytes} bytes allocated");

    // The same, as 1,000 keys each holding the value.
    let keys: serde_json::Map<String, Value> =
        (0..1_000).map(|i| (format!("k{i}"), json!("{{trigger.text}}"))).collect();
    let copy =
        Node::new("copy", "function").with_config(json!({"action": "json_transform", "template": keys}));
    let (error, bytes) = amplifying_step_allocation(copy);
    assert_eq!(error.kind(), ErrorKind::Limit, "{error}");
    assert!(bytes < 1 << 20, "{bytes} bytes allocated");
}

#[test]
fn a_log_node_reading_a_large_value_under_many_paths_is_refused_before_it_copies_them() {
    let _guard = measuring();
    // Three ways to the trigger's 60 KB text, each many times: copied once per path, 60 MB.
    let paths: Vec<&str> = ["trigger.text", "steps.start.output.input.text", "start.output.input.text"]
        .into_iter()
        .cycle()
        .take(1_000)
        .collect();
    let copy = Node::new("copy", "log").with_config(json!({"paths": paths}));
    let (error, bytes) = amplifying_step_allocation(copy);
    assert!(
        matches!(&error, EngineError::Limit { source: LimitError::Size { limit: 65_536, .. }, .. }),
        "{error}"
    );
    assert!(bytes < 1 << 20, "{bytes} bytes allocated");
}

#[test]
fn a_parallel_node_whose_children_add_up_past_the_limit_stops_running_them() {
    let _guard = measuring();
    // 200 children each copying the trigger's 60 KB text: 12 MB for an output limit of 64 KiB.
    let mut nodes = vec![Node::new("copy", "parallel")];
    nodes.extend((0..200).map(|i| {
        Node::new(format!("c{i}"), "function")
            .with_config(json!({"action": "json_transform", "template": {"t": "{{trigger.text}}"}}))
            .with_parent("copy")
    }));
    let g = graph(nodes, &[("start", "copy")]);
    let limits = Limits { output_bytes: 64 << 10, ..Limits::default() };
    let mut engine = Workflow::new(g, Handlers::builtin()).with_limits(limits).engine();
    engine.start(json!({"text": "x".repeat(60_000)})).expect("the trigger fits");
    block_on(engine.step()).expect("the start node runs");
    let (error, bytes) = allocated_by(|| block_on(engine.step()).expect_err("the output does not fit"));
    assert_eq!(error.to_string(), "node \"copy\": its output would be more than the limit of 65536 bytes");
    assert_eq!(engine.context().output("c0"), None);
    assert!(bytes < 2 << 20, "{bytes} bytes allocated");
}
