//! Runs that wait on several things, fail along error routes, rest on
//! timers and keep to a step limit: in memory, carried across processes
//! through their saved state.

use async_trait::async_trait;
use roomkit_graph::{
    Condition, Edge, EngineError, EngineState, EngineStatus, ErrorKind, Graph, HandlerError, Handlers,
    HumanHandler, NoWaitClock, Node, NodeHandler, NodeResult, Scope, StepStatus, Trigger, Workflow,
    WorkflowEngine,
};
use serde_json::{Value, json};

/// The approval most teams start with: legal and security both approve, a
/// lint check runs beside them.
fn approvals(join: &str) -> Graph {
    let mut graph = Graph::new("release", "Release", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("approvals", "parallel").with_config(json!({"join": join})),
            Node::new("legal", "human").with_parent("approvals").with_config(
                json!({"prompt": "Legal review of {{trigger.title}}", "actions": ["approve", "reject"]}),
            ),
            Node::new("security", "human")
                .with_parent("approvals")
                .with_config(json!({"actions": ["approve"]})),
            Node::new("lint", "function")
                .with_parent("approvals")
                .with_config(json!({"action": "set_context", "values": {"clean": true}})),
            Node::new("ship", "function").with_config(json!({
                "action": "json_transform",
                "template": {"legal": "{{legal.output.action | default(\"none\")}}", "checks": "{{steps.approvals}}"}
            })),
            Node::new("end", "end"),
        ])
        .expect("unique ids");
    graph.add_edges([
        Edge::new("start", "approvals"),
        Edge::new("approvals", "ship"),
        Edge::new("ship", "end"),
    ]);
    graph
}

fn workflow(graph: Graph) -> Workflow {
    Workflow::new(graph, Handlers::builtin().with("human", HumanHandler)).with_clock(NoWaitClock)
}

/// The engine of another process, carrying on from `engine`'s saved state.
fn carried(workflow: &Workflow, engine: &WorkflowEngine) -> WorkflowEngine {
    let text = serde_json::to_string(&engine.to_state()).expect("a state is JSON");
    let state: EngineState = serde_json::from_str(&text).expect("a state reads back");
    workflow.restore(state).expect("the state fits its graph")
}

#[tokio::test]
async fn parallel_children_that_wait_are_answered_one_by_one_across_processes() {
    let workflow = workflow(approvals("all"));
    assert_eq!(workflow.graph().validate(), []);
    let mut engine = workflow.engine();
    engine.start(json!({"title": "v2"})).unwrap();
    engine.step().await.unwrap();
    let outcome = engine.step_outcome().await.expect("the parallel node runs");
    let StepStatus::Waiting(points) = &outcome.status else { panic!("{:?}", outcome.status) };
    let asked: Vec<_> = points.iter().map(|p| (p.node_id.as_str(), p.ask.prompt.as_deref())).collect();
    assert_eq!(asked, [("legal", Some("Legal review of v2")), ("security", None)]);
    assert_eq!(points[0].ask.actions, ["approve", "reject"]);
    // The child that completed keeps its output; the aggregate waits.
    assert_eq!(outcome.writes, [("lint".to_owned(), json!({"output": {"clean": true}}))]);
    assert_eq!(engine.status(), EngineStatus::Waiting);
    let state = serde_json::to_value(engine.to_state()).unwrap();
    assert_eq!(state["pending"], json!(["legal", "security"]));
    assert_eq!(state["current_node_id"], "approvals");

    let mut engine = carried(&workflow, &engine);
    for refused in [("approvals", json!({})), ("legal", json!({"action": "maybe"})), ("ship", json!({}))] {
        let error = engine.answer(refused.0, refused.1).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{error}");
    }
    let error = engine.answer("approvals", json!({})).unwrap_err().to_string();
    assert!(error.contains("\"legal\" or \"security\""), "{error}");
    assert_eq!(engine.pending(), ["legal", "security"], "a refusal changes nothing");

    let outcome = engine.answer("legal", json!({"action": "approve"})).unwrap();
    assert!(matches!(&outcome.status, StepStatus::Waiting(opened) if opened.is_empty()));
    assert_eq!(engine.status(), EngineStatus::Waiting);

    let mut engine = carried(&workflow, &engine);
    assert_eq!(engine.pending(), ["security"]);
    let outcome = engine.answer("security", json!({"action": "approve"})).unwrap();
    assert!(matches!(outcome.status, StepStatus::Completed));
    assert_eq!(outcome.next.as_deref(), Some("ship"));
    assert!(serde_json::to_value(engine.to_state()).unwrap().get("pending").is_none());
    assert_eq!(engine.advance().await.unwrap(), EngineStatus::Completed);
    assert_eq!(
        engine.context().get("approvals.output"),
        Some(
            &json!({"legal": {"action": "approve"}, "security": {"action": "approve"}, "lint": {"clean": true}})
        )
    );
    assert_eq!(engine.context().get("ship.output.legal"), Some(&json!("approve")));
    assert_eq!(engine.previous_node_id(), Some("ship"));
}

#[tokio::test]
async fn with_join_any_the_first_answer_wins_and_closes_the_other_waits() {
    let mut graph = approvals("any");
    // Without the lint child no child completes at once: both wait.
    let nodes: Vec<Node> = graph.nodes().iter().filter(|n| n.id != "lint").cloned().collect();
    let edges = graph.edges.clone();
    graph = Graph::new("release", "Release", Trigger::manual());
    graph.add_nodes(nodes).unwrap();
    graph.add_edges(edges);
    let workflow = workflow(graph);
    let mut engine = workflow.engine();
    assert_eq!(engine.run(json!({"title": "v3"})).await.unwrap(), EngineStatus::Waiting);
    assert_eq!(engine.pending(), ["legal", "security"]);

    let mut engine = carried(&workflow, &engine);
    let outcome = engine.answer("security", json!({"action": "approve"})).unwrap();
    assert_eq!(outcome.closed, ["legal"]);
    assert_eq!(engine.context().get("approvals.output"), Some(&json!({"security": {"action": "approve"}})));
    assert!(engine.pending().is_empty());
    assert_eq!(engine.advance().await.unwrap(), EngineStatus::Completed);
    // The closed wait can no longer be answered.
    assert!(engine.answer("legal", json!({"action": "approve"})).is_err());
}

#[tokio::test]
async fn a_failed_child_still_fails_a_join_all_node_at_once() {
    let mut graph = approvals("all");
    graph.add_node(Node::new("broken", "function").with_parent("approvals")).unwrap();
    let mut engine = workflow(graph).engine();
    let error = engine.run(json!({})).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Execution, "{error}");
    assert!(engine.pending().is_empty());
}

/// Fails every attempt, with a partial output.
struct Flaky;

#[async_trait]
impl NodeHandler for Flaky {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Ok(NodeResult::failed(format!("provider answered 500 (attempt {})", scope.attempt()))
            .with_output(json!({"partial": scope.attempt()})))
    }
}

/// triage (fails) -> apology (reads the failure), or -> use on success.
fn fallback(triage_config: Value) -> Graph {
    let mut graph = Graph::new("fallback", "Fallback", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("triage", "flaky").with_config(triage_config),
            Node::new("use", "log"),
            Node::new("apology", "function").with_config(json!({
                "action": "json_transform",
                "template": {"text": "sorry: {{triage.error.message}}", "attempts": "{{triage.error.attempts}}", "seen": "{{input.partial | default(0)}}"}
            })),
            Node::new("end", "end"),
        ])
        .expect("unique ids");
    graph.add_edges([
        Edge::new("start", "triage"),
        Edge::new("triage", "apology").when(Condition::error()),
        Edge::new("triage", "use"),
        Edge::new("use", "end"),
        Edge::new("apology", "end"),
    ]);
    graph
}

#[tokio::test]
async fn a_failure_after_its_retries_takes_the_error_route() {
    let config = json!({"retry": {"max_attempts": 3, "backoff": {"initial": "1s"}}});
    let handlers = Handlers::builtin().with("flaky", Flaky);
    let workflow = Workflow::new(fallback(config.clone()), handlers.clone()).with_clock(NoWaitClock);
    let mut engine = workflow.engine();
    assert_eq!(engine.run(json!({})).await.unwrap(), EngineStatus::Completed);
    assert_eq!(
        engine.context().entry("triage"),
        Some(
            &json!({"output": {"partial": 3}, "error": {"kind": "execution", "message": "provider answered 500 (attempt 3)", "attempts": 3}})
        )
    );
    // `input` and `steps` read the output only.
    assert_eq!(
        engine.context().get("apology.output"),
        Some(&json!({"text": "sorry: provider answered 500 (attempt 3)", "attempts": 3, "seen": 3}))
    );
    assert_eq!(engine.context().get("steps.triage"), Some(&json!({"partial": 3})));

    // A parking engine hands each retry's wait over, then routes.
    let mut engine = Workflow::new(fallback(config), handlers).parking().engine();
    engine.start(json!({})).unwrap();
    engine.step().await.unwrap();
    let mut waits = Vec::new();
    let routed = loop {
        let outcome = engine.step_outcome().await.expect("triage runs");
        match outcome.status {
            StepStatus::Failed { retry_in: Some(wait), .. } => waits.push((outcome.attempt, wait.as_secs())),
            StepStatus::Routed(failure) => break (outcome.attempt, failure, outcome.next),
            other => panic!("{other:?}"),
        }
        // Saved between attempts, as a durable runner commits each.
        assert_eq!(engine.current_node_id(), Some("triage"));
    };
    assert_eq!(waits, [(1, 1), (2, 2)]);
    assert_eq!(routed.0, 3);
    assert_eq!(routed.1.attempts, 3);
    assert_eq!(routed.2.as_deref(), Some("apology"));
}

/// Fails reading a file that is not there: retryable or not, as told.
struct Unreadable {
    permanent: bool,
}

#[async_trait]
impl NodeHandler for Unreadable {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = HandlerError::execution("cannot read prompts.txt").with_source(missing);
        Err(if self.permanent { error.permanent() } else { error })
    }
}

#[tokio::test]
async fn a_failure_keeps_its_cause_in_its_message_and_a_permanent_one_is_not_retried() {
    let config = json!({"retry": {"max_attempts": 3, "backoff": {"initial": "1s"}}});
    for (permanent, attempts) in [(false, 3), (true, 1)] {
        let handlers = Handlers::builtin().with("flaky", Unreadable { permanent });
        let mut engine = Workflow::new(fallback(config.clone()), handlers).with_clock(NoWaitClock).engine();
        assert_eq!(engine.run(json!({})).await.unwrap(), EngineStatus::Completed);
        assert_eq!(
            engine.context().get("triage.error"),
            Some(
                &json!({"kind": "execution", "message": "cannot read prompts.txt: no such file", "attempts": attempts})
            ),
            "permanent: {permanent}"
        );
    }
}

#[tokio::test]
async fn error_edges_are_never_taken_on_success_and_a_failure_without_one_fails_the_run() {
    // On success the error edge is not an edge: the run goes on to `use`.
    let mut engine = WorkflowEngine::new(fallback(json!({})), Handlers::builtin().with("flaky", EchoOk));
    assert_eq!(engine.run(json!({})).await.unwrap(), EngineStatus::Completed);
    assert!(engine.context().get("use.output").is_some());
    assert!(engine.context().get("apology").is_none());
    assert!(engine.context().get("triage.error").is_none());

    // Without an error edge the failure fails the run, storing no error.
    let mut bare = fallback(json!({}));
    bare.edges.retain(|edge| !edge.condition.as_ref().is_some_and(Condition::is_error));
    let mut engine = WorkflowEngine::new(bare, Handlers::builtin().with("flaky", Flaky));
    let error = engine.run(json!({})).await.unwrap_err();
    assert!(matches!(error, EngineError::Execution { ref node, .. } if node == "triage"), "{error}");
    assert_eq!(engine.current_node_id(), Some("triage"));
    assert!(engine.context().get("triage.error").is_none());
}

/// Waits for any answer.
struct Pause;

#[async_trait]
impl NodeHandler for Pause {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Ok(NodeResult::waiting())
    }
}

/// Completes with `{"ok": true}`.
struct EchoOk;

#[async_trait]
impl NodeHandler for EchoOk {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Ok(NodeResult::completed(json!({"ok": true})))
    }
}

#[tokio::test]
async fn a_template_error_is_routed_with_its_kind_and_a_step_limit_never_is() {
    let mut graph = fallback(json!({}));
    let nodes: Vec<Node> = graph
        .nodes()
        .iter()
        .map(|node| match node.id.as_str() {
            "triage" => Node::new("triage", "function")
                .with_config(json!({"action": "json_transform", "template": {"x": "{{trigger.missing}}"}})),
            _ => node.clone(),
        })
        .collect();
    let edges = graph.edges.clone();
    graph = Graph::new("fallback", "Fallback", Trigger::manual());
    graph.add_nodes(nodes).unwrap();
    graph.add_edges(edges);
    let mut engine = WorkflowEngine::new(graph.clone(), Handlers::builtin());
    assert_eq!(engine.run(json!({})).await.unwrap(), EngineStatus::Completed);
    assert_eq!(engine.context().get("triage.error.kind"), Some(&json!("template")));
    assert_eq!(engine.context().get("triage.output"), Some(&Value::Null));

    // The graph's own limit wins over the workflow's: 2 steps, then the limit.
    graph.max_steps = Some(2);
    let mut engine = Workflow::new(graph, Handlers::builtin()).with_max_steps(100).engine();
    let error = engine.run(json!({})).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StepLimit);
    assert_eq!(engine.current_node_id(), Some("apology"));
}

#[tokio::test]
async fn a_parking_engine_hands_a_delay_over_and_wakes_past_it() {
    let mut graph = Graph::new("later", "Later", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("pause", "function").with_config(json!({"action": "delay", "duration": 90})),
            Node::new("end", "end"),
        ])
        .unwrap();
    graph.add_edges([Edge::new("start", "pause"), Edge::new("pause", "end")]);
    let workflow = Workflow::new(graph.clone(), Handlers::builtin()).parking();
    let mut engine = workflow.engine();
    assert_eq!(engine.run(json!({})).await.unwrap(), EngineStatus::Waiting);
    // The output is stored when the run parks.
    assert_eq!(engine.context().get("pause.output"), Some(&json!({"delayed": 90})));
    // Carried to another process, it still rests there.
    let engine = carried(&workflow, &engine);
    assert_eq!((engine.status(), engine.current_node_id()), (EngineStatus::Waiting, Some("pause")));

    let mut engine = workflow.engine();
    engine.run(json!({})).await.unwrap();
    let outcome = engine.wake().unwrap();
    assert_eq!(outcome.next.as_deref(), Some("end"));
    assert_eq!(engine.advance().await.unwrap(), EngineStatus::Completed);
    assert!(engine.wake().is_err(), "nothing rests any more");

    // In memory the engine rests on its clock and goes on.
    let mut engine = Workflow::new(graph, Handlers::builtin()).with_clock(NoWaitClock).engine();
    assert_eq!(engine.run(json!({})).await.unwrap(), EngineStatus::Completed);
}

#[tokio::test]
async fn the_reference_details_of_start_end_and_resume() {
    // The trigger is kept under `start` too when the start node has another id.
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph
        .add_nodes([Node::new("begin", "start"), Node::new("ask", "pause"), Node::new("end", "end")])
        .unwrap();
    graph.add_edges([Edge::new("begin", "ask"), Edge::new("ask", "end")]);
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with("pause", Pause));
    assert_eq!(engine.run(json!({"n": 1})).await.unwrap(), EngineStatus::Waiting);
    assert_eq!(engine.context().get("start.output.input.n"), Some(&json!(1)));
    assert_eq!(engine.context().get("begin.output.input.n"), Some(&json!(1)));
    // resume(node, null) stores null.
    engine.resume("ask", Value::Null).unwrap();
    assert_eq!(engine.context().entry("ask"), Some(&json!({"output": null})));

    // An end node's handler runs, but what it returns is ignored.
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")]).unwrap();
    graph.add_edge(Edge::new("start", "end"));
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with("end", Flaky));
    assert_eq!(engine.run(json!({})).await.unwrap(), EngineStatus::Completed);
    assert!(engine.context().get("end").is_none());
}

/// Fails on its first run, completes with nothing on the next.
struct FailsOnce(std::sync::atomic::AtomicBool);

#[async_trait]
impl NodeHandler for FailsOnce {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        if self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Ok(NodeResult::completed(Value::Null))
        } else {
            Ok(NodeResult::failed("first time"))
        }
    }
}

#[tokio::test]
async fn a_node_that_completes_after_failing_along_its_error_route_keeps_no_error() {
    // triage fails, its error route leads back to it; the second time it completes.
    let mut graph = Graph::new("again", "Again", Trigger::manual());
    graph
        .add_nodes([Node::new("start", "start"), Node::new("triage", "once"), Node::new("end", "end")])
        .expect("unique ids");
    graph.add_edges([
        Edge::new("start", "triage"),
        Edge::new("triage", "triage").when(Condition::error()),
        Edge::new("triage", "end"),
    ]);
    let handler = FailsOnce(std::sync::atomic::AtomicBool::new(false));
    let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with("once", handler));
    engine.start(json!({})).unwrap();
    engine.step().await.unwrap();
    assert!(matches!(engine.step_outcome().await.unwrap().status, StepStatus::Routed(_)));
    assert_eq!(engine.context().get("triage.error.message"), Some(&json!("first time")));
    let outcome = engine.step_outcome().await.unwrap();
    // What a store must write: the entry without its old failure.
    assert_eq!(outcome.writes, [("triage".to_owned(), json!({"output": null}))]);
    assert_eq!(engine.advance().await.unwrap(), EngineStatus::Completed);
    assert_eq!(engine.context().entry("triage"), Some(&json!({"output": null})));
}

#[tokio::test]
async fn a_last_answer_whose_aggregate_passes_the_limit_is_refused_changing_nothing() {
    let limits = roomkit_graph::Limits { output_bytes: 100, ..roomkit_graph::Limits::default() };
    let workflow = workflow(approvals("all")).with_limits(limits);
    let mut engine = workflow.engine();
    assert_eq!(engine.run(json!({"title": "v4"})).await.unwrap(), EngineStatus::Waiting);
    let note = "x".repeat(40);
    engine.answer("legal", json!({"action": "approve", "note": note})).unwrap();
    let error = engine.answer("security", json!({"action": "approve", "note": note})).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Limit, "{error}");
    assert_eq!(engine.pending(), ["security"]);
    assert_eq!(engine.status(), EngineStatus::Waiting);
    assert!(engine.context().get("security").is_none());
    assert!(engine.context().get("approvals").is_none());
    // The parallel node is still not the one to answer.
    assert!(engine.answer("approvals", json!({})).is_err());
}

#[tokio::test]
async fn input_inferred_on_restore_outlives_a_routing_error() {
    let mut graph = Graph::new("infer", "Infer", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("a", "function")
                .with_config(json!({"action": "json_transform", "template": {"x": "{{input.foo}}"}})),
            Node::new("end", "end"),
        ])
        .expect("unique ids");
    graph.add_edges([
        Edge::new("start", "a"),
        Edge::new("a", "end").when(Condition::field("steps.a.x").equals("go")),
    ]);
    let workflow = Workflow::new(graph, Handlers::builtin());
    // Saved without the node the run came from: `input` comes from a's one incoming edge.
    let state: EngineState = serde_json::from_value(json!({
        "context": {"start": {"output": {"input": {"foo": "stay"}}}},
        "current_node_id": "a", "previous_node_id": null, "waiting": false
    }))
    .unwrap();
    let mut engine = workflow.restore(state).unwrap();
    for _ in 0..2 {
        // No edge takes "stay": the run stays on `a`, and `a` still reads the trigger.
        let error = engine.step().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NoTransition, "{error}");
        assert_eq!(engine.context().get("a.output.x"), Some(&json!("stay")));
    }
}
