//! The engine's behaviour beyond the shared conformance cases: real delays,
//! join "any" cancellation, step limits, streaming a resumed run, custom
//! functions, and carrying a run across processes through its saved state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use roomkit_graph::{
    Condition, Edge, EngineError, EngineState, EngineStatus, ErrorKind, Event, FunctionRegistry, Graph,
    HandlerError, Handlers, Node, NodeHandler, NodeResult, Scope, StepStatus, StreamMode, Trigger, Workflow,
    WorkflowEngine,
};
use serde_json::{Value, json};

/// A graph of `nodes` chained in order between start and end.
fn chain(nodes: Vec<Node>) -> Graph {
    let mut graph = Graph::new("g", "G", Trigger::manual());
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let all = std::iter::once(Node::new("start", "start")).chain(nodes).chain([Node::new("end", "end")]);
    graph.add_nodes(all).expect("test graphs have unique ids");
    let mut prev = "start".to_owned();
    for id in ids.into_iter().chain(["end".to_owned()]) {
        graph.add_edge(Edge::new(prev, id.clone()));
        prev = id;
    }
    graph
}

fn function(id: &str, config: Value) -> Node {
    Node::new(id, "function").with_config(config)
}

/// Waits for outside input.
struct Human;

#[async_trait]
impl NodeHandler for Human {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Ok(NodeResult::waiting())
    }
}

/// Emits progress, then completes with the node's `reply` config.
struct Chatty;

#[async_trait]
impl NodeHandler for Chatty {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        scope.emit(json!({"kind": "token", "text": node.id}));
        Ok(NodeResult::completed(json!({"reply": scope.render("reply")?})))
    }
}

/// Sleeps for `config.ms` on tokio's clock and records whether it was cancelled.
struct Sleeper {
    cancelled: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>, bool);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl NodeHandler for Sleeper {
    async fn execute(&self, node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let mut guard = SetOnDrop(Arc::clone(&self.cancelled), false);
        let ms = node.config["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        guard.1 = true;
        Ok(NodeResult::completed(json!({"slept": ms})))
    }
}

#[tokio::test(start_paused = true)]
async fn delay_waits_on_the_clock() {
    let graph = chain(vec![function("wait", json!({"action": "delay", "duration": "30m"}))]);
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin());
    let before = tokio::time::Instant::now();
    assert_eq!(engine.run(Value::Null).await.unwrap(), EngineStatus::Completed);
    assert!(before.elapsed() >= Duration::from_secs(30 * 60));
    assert_eq!(engine.context().get("wait.output"), Some(&json!({"delayed": "30m"})));
}

#[tokio::test(start_paused = true)]
async fn join_any_keeps_the_first_child_and_cancels_the_others() {
    let cancelled = Arc::new(AtomicBool::new(false));
    let mut graph = chain(vec![Node::new("race", "parallel").with_config(json!({"join": "any"}))]);
    graph
        .add_nodes([
            Node::new("slow", "sleeper").with_config(json!({"ms": 60_000})).with_parent("race"),
            Node::new("fast", "sleeper").with_config(json!({"ms": 10})).with_parent("race"),
        ])
        .unwrap();
    let handlers = Handlers::builtin().with("sleeper", Sleeper { cancelled: Arc::clone(&cancelled) });
    let mut engine = WorkflowEngine::new(graph, handlers);
    let before = tokio::time::Instant::now();
    assert_eq!(engine.run(json!({})).await.unwrap(), EngineStatus::Completed);
    assert!(before.elapsed() < Duration::from_secs(60), "the slow child was awaited");
    assert!(cancelled.load(Ordering::SeqCst), "the slow child was not cancelled");
    assert_eq!(engine.context().get("race.output"), Some(&json!({"fast": {"slept": 10}})));
    assert_eq!(engine.context().get("fast.output"), Some(&json!({"slept": 10})));
    assert_eq!(engine.context().get("slow"), None);
}

#[tokio::test]
async fn a_step_limit_stops_a_runaway_loop_where_it_would_go_next() {
    let mut graph = Graph::new("loop", "Loop", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            function("ping", json!({"action": "set_context", "values": {"p": 1}})),
            function("pong", json!({"action": "set_context", "values": {"p": 2}})),
            Node::new("end", "end"),
        ])
        .unwrap();
    graph.add_edges([
        Edge::new("start", "ping"),
        Edge::new("ping", "pong"),
        Edge::new("pong", "end").when(Condition::field("trigger.stop").equals(true)),
        Edge::new("pong", "ping").when(Condition::otherwise()),
    ]);
    let workflow = Workflow::new(graph, Handlers::builtin()).with_max_steps(10);
    let mut engine = workflow.engine();
    let error = engine.run(json!({"stop": false})).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StepLimit);
    // start + 9 loop steps: start, ping, pong, ping, pong, ping, pong, ping, pong, ping -> next is pong.
    assert!(matches!(&error, EngineError::StepLimit { node, limit: 10 } if node == "pong"), "{error}");
    assert_eq!(engine.current_node_id(), Some("pong"));
    assert!(error.to_string().contains("pong"));
}

fn review_graph() -> Graph {
    let mut graph = Graph::new("review", "Review", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("draft", "chatty").with_config(json!({"reply": "draft about {{trigger.topic}}"})),
            Node::new("review", "human")
                .with_config(json!({"prompt": "Approve?", "actions": ["approve", "reject"]})),
            Node::new("publish", "chatty").with_config(json!({"reply": "published: {{input.note}}"})),
            Node::new("end", "end"),
        ])
        .expect("unique ids");
    graph.add_edges([
        Edge::new("start", "draft"),
        Edge::new("draft", "review"),
        Edge::new("review", "publish").when(Condition::field("review.output.action").equals("approve")),
        Edge::new("review", "draft").when(Condition::field("review.output.action").equals("reject")),
        Edge::new("publish", "end"),
    ]);
    graph
}

fn review_handlers() -> Handlers {
    Handlers::builtin().with("chatty", Chatty).with("human", Human)
}

async fn collect(stream: roomkit_graph::EventStream<'_>) -> (Vec<Event>, Option<EngineError>) {
    let mut events = Vec::new();
    let mut error = None;
    let mut stream = stream;
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(e) => error = Some(e),
        }
    }
    (events, error)
}

#[tokio::test]
async fn a_resumed_run_streams_its_continuation_in_another_process() {
    let workflow = Workflow::new(review_graph(), review_handlers());
    let mut first = workflow.engine();
    let (events, error) = collect(first.stream(json!({"topic": "rust"}), &StreamMode::ALL)).await;
    assert!(error.is_none());
    assert_eq!(first.status(), EngineStatus::Waiting);
    let custom: Vec<_> = events.iter().filter(|e| e.mode == StreamMode::Custom).collect();
    assert_eq!(custom.len(), 1);
    assert_eq!(custom[0].node_id.as_deref(), Some("draft"));

    // Another process: the state goes through JSON text.
    let saved = serde_json::to_string(&first.to_state()).unwrap();
    let state: EngineState = serde_json::from_str(&saved).unwrap();
    let mut second = workflow.restore(state).unwrap();
    assert_eq!(second.run_id(), first.run_id());

    let modes = [StreamMode::Updates, StreamMode::Lifecycle];
    let (events, error) =
        collect(second.stream_resume("review", json!({"action": "approve", "note": "ok"}), &modes)).await;
    assert!(error.is_none());
    assert_eq!(second.status(), EngineStatus::Completed);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..events.len() as u64).collect::<Vec<_>>());
    assert_eq!(events[0].mode, StreamMode::Updates);
    assert_eq!(events[0].payload, json!({"review": {"output": {"action": "approve", "note": "ok"}}}));
    let started: Vec<_> = events
        .iter()
        .filter(|e| e.mode == StreamMode::Lifecycle && e.payload["phase"] == "start")
        .map(|e| e.node_id.clone().unwrap())
        .collect();
    assert_eq!(started, ["publish", "end"]);
    assert_eq!(second.context().get("publish.output.reply"), Some(&json!("published: ok")));
}

#[tokio::test]
async fn resume_refuses_what_it_cannot_do_and_changes_nothing() {
    let workflow = Workflow::new(review_graph(), review_handlers());
    let mut engine = workflow.engine();
    engine.run(json!({"topic": "x"})).await.unwrap();
    let before = engine.to_state();
    for node in ["start", "ghost"] {
        let error = engine.resume(node, json!({"action": "approve"})).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{node}: {error}");
        assert_eq!(engine.to_state(), before);
    }
    // An answer no edge accepts: no transition, the answer is kept, the run stays on review.
    let error = engine.resume("review", json!({"action": "maybe"})).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoTransition);
    assert_eq!(engine.current_node_id(), Some("review"));

    engine.resume("review", json!({"action": "approve", "note": "fine"})).unwrap();
    assert_eq!(engine.advance().await.unwrap(), EngineStatus::Completed);
    let error = engine.resume("review", json!({})).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(error.to_string().contains("has completed"), "{error}");
}

#[tokio::test]
async fn emit_outside_a_stream_does_nothing_and_parallel_children_emit_as_themselves() {
    let mut graph = chain(vec![Node::new("fan", "parallel")]);
    graph
        .add_nodes([
            Node::new("a", "chatty").with_config(json!({"reply": "A"})).with_parent("fan"),
            Node::new("b", "chatty").with_config(json!({"reply": "B"})).with_parent("fan"),
        ])
        .unwrap();
    let workflow = Workflow::new(graph, Handlers::builtin().with("chatty", Chatty));
    assert_eq!(workflow.engine().run(json!({})).await.unwrap(), EngineStatus::Completed);

    let mut engine = workflow.engine();
    let (events, error) = collect(engine.stream(json!({}), &[StreamMode::Custom])).await;
    assert!(error.is_none());
    let mut emitters: Vec<_> = events.iter().map(|e| e.node_id.clone().unwrap()).collect();
    emitters.sort();
    assert_eq!(emitters, ["a", "b"]);
    assert_eq!(engine.context().get("fan.output"), Some(&json!({"a": {"reply": "A"}, "b": {"reply": "B"}})));
}

#[tokio::test]
async fn custom_functions_sync_and_async_and_missing_ones() {
    let mut functions = FunctionRegistry::new();
    functions.register("priority", |context, _config| {
        let critical = context.get("trigger.severity") == Some(&json!("critical"));
        Ok(json!({"priority": if critical { "P1" } else { "P2" }}))
    });
    functions.register_async("owner", |context, config| {
        let team = context.get("trigger.team").cloned().unwrap_or(Value::Null);
        let fallback = config.get("fallback").cloned().unwrap_or(Value::Null);
        async move {
            tokio::task::yield_now().await;
            Ok(json!({"owner": if team.is_null() { fallback } else { team }}))
        }
    });
    functions.register("broken", |_, _| Err("the lookup service is down".into()));
    let graph = chain(vec![
        function("prio", json!({"action": "custom", "function": "priority"})),
        function("own", json!({"action": "custom", "function": "owner", "fallback": "triage"})),
    ]);
    let handlers = Handlers::builtin().with_functions(functions.clone());
    let mut engine = WorkflowEngine::new(graph, handlers);
    engine.run(json!({"severity": "critical"})).await.unwrap();
    assert_eq!(engine.context().get("prio.output.priority"), Some(&json!("P1")));
    assert_eq!(engine.context().get("own.output.owner"), Some(&json!("triage")));

    for (name, expected) in
        [("broken", "the lookup service is down"), ("nope", "Unknown custom function: 'nope'")]
    {
        let graph = chain(vec![function("f", json!({"action": "custom", "function": name}))]);
        let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with_functions(functions.clone()));
        let error = engine.run(json!({})).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Execution);
        assert!(error.to_string().contains(expected), "{error}");
        assert_eq!(engine.current_node_id(), Some("f"));
    }
}

#[tokio::test]
async fn configuration_mistakes_still_fail_at_run_time() {
    let cases = [
        (function("f", json!({"action": "delay", "duration": "soon"})), ErrorKind::Execution),
        (
            function("f", json!({"action": "json_transform", "template": {"x": "{{a | upper}}"}})),
            ErrorKind::Template,
        ),
        (Node::new("f", "parallel").with_config(json!({"join": "first"})), ErrorKind::Execution),
    ];
    for (node, kind) in cases {
        let mut engine = WorkflowEngine::new(chain(vec![node]), Handlers::builtin());
        let error = engine.run(json!({})).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{error}");
        assert_eq!(error.node(), Some("f"));
    }
    // An edge condition with an unknown op is a condition error on its source node.
    let mut graph = chain(vec![function("f", json!({"action": "set_context", "values": {}}))]);
    graph.edges.retain(|e| e.source != "f");
    graph.add_edge(Edge::new("f", "end").when(Condition::from_value(
        &json!({"type": "field", "path": "f.output", "op": "like", "value": 1}),
    )));
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin());
    let error = engine.run(json!({})).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Condition);
    assert_eq!(engine.current_node_id(), Some("f"));
}

#[tokio::test]
async fn graphs_without_a_proper_start_are_refused_at_start_and_restore() {
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph
        .add_nodes([Node::new("begin", "start"), Node::new("start", "agent"), Node::new("end", "end")])
        .unwrap();
    let workflow = Workflow::new(graph, Handlers::builtin());
    let error = workflow.engine().run(json!({})).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    let state = EngineState {
        context: Default::default(),
        current_node_id: Some("end".into()),
        previous_node_id: None,
        waiting: false,
        run_id: "r1".into(),
        pending: Vec::new(),
        children: Default::default(),
    };
    assert_eq!(workflow.restore(state).err().map(|e| e.kind()), Some(ErrorKind::InvalidArgument));
}

/// Completes only when the test says so.
struct Gate(Arc<tokio::sync::Notify>);

#[async_trait]
impl NodeHandler for Gate {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        scope.emit(json!({"waiting_for": "gate"}));
        self.0.notified().await;
        Ok(NodeResult::completed(json!({"passed": node.id})))
    }
}

#[tokio::test]
async fn streamed_events_arrive_while_the_node_is_still_running() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let graph = chain(vec![Node::new("slow", "gate")]);
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with("gate", Gate(Arc::clone(&gate))));
    let mut stream = engine.stream(json!({}), &[StreamMode::Lifecycle, StreamMode::Custom]);
    let mut seen = Vec::new();
    while seen.last() != Some(&("slow".to_owned(), StreamMode::Custom)) {
        let event = stream.next().await.unwrap().unwrap();
        seen.push((event.node_id.unwrap(), event.mode));
    }
    // The handler is blocked on the gate, yet its start and progress are out.
    assert_eq!(seen.len(), 4);
    gate.notify_one();
    let rest: Vec<_> = stream.map(|e| e.unwrap().node_id.unwrap()).collect().await;
    assert_eq!(rest, ["slow", "end", "end"]);
    assert_eq!(engine.status(), EngineStatus::Completed);
}

/// Completes with the outputs of nodes it names in `config.writes`, as a
/// parallel node reports its children's.
struct Writer;

#[async_trait]
impl NodeHandler for Writer {
    async fn execute(&self, node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let mut result = NodeResult::failed("partial").with_output(json!({"own": 1}));
        for id in node.config["writes"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            result.child_outputs.push((id.to_owned(), json!({"by": node.id})));
        }
        Ok(result)
    }
}

#[tokio::test]
async fn a_step_outcome_names_what_it_stored_whatever_its_status() {
    let mut graph = chain(vec![Node::new("w", "writer").with_config(json!({"writes": ["x"]}))]);
    graph.add_node(Node::new("x", "function").with_parent("w")).expect("unique");
    let workflow = Workflow::new(graph, Handlers::builtin().with("writer", Writer));
    let mut engine = workflow.engine();
    engine.start(json!({"k": 1})).unwrap();
    let outcome = engine.step_outcome().await.unwrap();
    assert_eq!(outcome.writes, [("start".to_owned(), json!({"output": {"input": {"k": 1}}}))]);

    // The step fails, yet it stored the child's output and its own: both are named.
    let outcome = engine.step_outcome().await.unwrap();
    assert!(
        matches!(outcome.status, StepStatus::Failed { ref error, retry_in: None } if error.kind() == ErrorKind::Execution)
    );
    assert_eq!(
        outcome.writes,
        [("x".to_owned(), json!({"output": {"by": "w"}})), ("w".to_owned(), json!({"output": {"own": 1}}))]
    );

    // A result naming a node the graph does not have stores nothing at all.
    let graph = chain(vec![Node::new("w", "writer").with_config(json!({"writes": ["ghost"]}))]);
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with("writer", Writer));
    let error = engine.run(json!({})).await.unwrap_err();
    assert!(error.to_string().contains("ghost"), "{error}");
    assert_eq!(engine.context().output("w"), None);
    assert_eq!(engine.context().get("ghost"), None);
}

/// Keeps the context it was given as it was when its step began.
struct Keeper {
    kept: std::sync::Mutex<Vec<Arc<roomkit_graph::Context>>>,
}

#[async_trait]
impl NodeHandler for Keeper {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        self.kept.lock().expect("not poisoned").push(scope.shared_context());
        Ok(NodeResult::completed(json!({"kept": node.id})))
    }
}

#[tokio::test]
async fn a_handler_may_keep_the_context_of_its_step_while_the_run_goes_on() {
    let keeper = Arc::new(Keeper { kept: std::sync::Mutex::new(Vec::new()) });
    let graph = chain(vec![Node::new("a", "keep"), Node::new("b", "keep")]);
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with_arc("keep", keeper.clone()));
    engine.run(json!({"n": 1})).await.expect("the run completes");
    assert_eq!(engine.context().get("b.output.kept"), Some(&json!("b")));
    let kept = keeper.kept.lock().expect("not poisoned");
    // Each kept context is the one its step began with: b's has a's output, not its own.
    assert_eq!(kept[0].get("a"), None);
    assert_eq!(kept[1].get("a.output.kept"), Some(&json!("a")));
    assert_eq!(kept[1].get("b"), None);
    assert_eq!(kept[1].get("input.kept"), Some(&json!("a")));
}

#[tokio::test]
async fn evaluate_edges_judges_the_context_as_it_stands_without_moving_the_run() {
    let mut graph = chain(vec![]);
    graph.add_nodes([Node::new("check", "log"), Node::new("other", "end")]).expect("unique ids");
    graph.add_edges([
        Edge::new("check", "end").when(Condition::field("input.ok").equals(true)),
        Edge::new("check", "other").when(Condition::field("input.ok").equals(false)),
    ]);
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin());
    engine.start(json!({})).expect("starts");
    engine.set_output("check", json!({"ok": false})).expect("within the limits");
    assert_eq!(engine.evaluate_edges("check").expect("routes").as_deref(), Some("other"));
    engine.set_output("check", json!({"ok": "neither"})).expect("within the limits");
    let error = engine.evaluate_edges("check").expect_err("no edge matches");
    assert_eq!(error.kind(), ErrorKind::NoTransition);
    assert_eq!(engine.evaluate_edges("end").expect("an end node has no edges"), None);
    assert_eq!(engine.evaluate_edges("ghost").expect_err("not a node").kind(), ErrorKind::InvalidArgument);
    // The run has not moved, and `input` reads what it read before.
    assert_eq!(engine.current_node_id(), Some("start"));
    assert_eq!(engine.context().get("input"), None);
}

/// A handler that panics on its first `fails` calls, then completes.
struct Panics {
    calls: std::sync::atomic::AtomicU32,
    fails: u32,
}

#[async_trait]
impl NodeHandler for Panics {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::task::yield_now().await;
        assert!(call > self.fails, "call {call} of a handler that breaks");
        Ok(NodeResult::completed(json!({"call": call})))
    }
}

#[tokio::test]
async fn a_handler_that_panics_fails_its_attempt_and_the_retry_policy_applies() {
    let flaky =
        Node::new("flaky", "panics").with_config(json!({"retry": {"max_attempts": 2, "backoff": "1ms"}}));
    let handlers = Handlers::builtin().with("panics", Panics { calls: 0.into(), fails: 1 });
    let mut engine = WorkflowEngine::new(chain(vec![flaky]), handlers);
    assert_eq!(engine.run(json!({})).await.unwrap(), EngineStatus::Completed);
    assert_eq!(engine.context().get("flaky.output"), Some(&json!({"call": 2})));

    let broken = Node::new("broken", "panics");
    let handlers = Handlers::builtin().with("panics", Panics { calls: 0.into(), fails: u32::MAX });
    let mut engine = WorkflowEngine::new(chain(vec![broken]), handlers);
    let error = engine.run(json!({})).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Execution, "{error}");
    assert!(
        error.to_string().contains("the panics node's handler panicked: call 1 of a handler that breaks"),
        "{error}"
    );
}
