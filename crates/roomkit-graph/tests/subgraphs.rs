//! Subgraph nodes in memory: a child run of another graph inside the
//! parent's step, waiting with its parent, answered and saved through it,
//! streamed with a path, failing along the parent's error routes, nested
//! within a limit; handed to a runner that keeps child runs itself.

#![allow(clippy::unwrap_used, reason = "test code: a failed step fails the test")]

use futures_util::StreamExt;
use roomkit_graph::{
    Edge, EngineError, EngineState, EngineStatus, Graph, Graphs, Handlers, HumanHandler, Limits, Node,
    StepStatus, StreamMode, Trigger, ValidationCode, Workflow,
};
use serde_json::{Value, json};

fn handlers() -> Handlers {
    Handlers::builtin().with("human", HumanHandler)
}

/// `start -> middle... -> end`, each middle node given as (id, type, config).
fn chain(id: &str, middle: &[(&str, &str, Value)]) -> Graph {
    let mut graph = Graph::new(id, id, Trigger::manual());
    let middle =
        middle.iter().map(|(node, kind, config)| Node::new(*node, *kind).with_config(config.clone()));
    let nodes = std::iter::once(Node::new("start", "start")).chain(middle).chain([Node::new("end", "end")]);
    graph.add_chain(nodes).expect("unique ids");
    graph
}

/// A review: a person approves the document the run was started on.
fn review() -> Graph {
    chain(
        "review",
        &[
            ("note", "function", json!({"action": "json_transform", "template": {"doc": "{{trigger.doc}}"}})),
            (
                "approve",
                "human",
                json!({"prompt": "Approve {{trigger.doc}}?", "actions": ["approve", "reject"]}),
            ),
        ],
    )
}

/// Publishing: the review runs as a child, its answer is the node's output.
fn publish() -> Graph {
    chain(
        "publish",
        &[
            (
                "check",
                "subgraph",
                json!({"graph_id": "review", "input": {"doc": "{{trigger.title}}"}, "output": "{{approve.output}}"}),
            ),
            (
                "done",
                "function",
                json!({"action": "json_transform", "template": {"verdict": "{{check.output.action}}"}}),
            ),
        ],
    )
}

fn graphs(graphs: impl IntoIterator<Item = Graph>) -> Graphs {
    let mut registry = Graphs::new();
    for graph in graphs {
        registry.add(Workflow::new(graph, handlers()));
    }
    registry
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime").block_on(future)
}

#[test]
fn a_waiting_child_makes_its_parent_wait_is_saved_with_it_and_answered_through_it() {
    let workflow = Workflow::new(publish(), handlers()).with_graphs(graphs([review()]));
    let mut engine = workflow.engine();
    block_on(async {
        engine.start(json!({"title": "Q3 report"})).unwrap();
        engine.step().await.unwrap();
        let outcome = engine.step_outcome().await.expect("check runs");
        let StepStatus::Waiting(points) = outcome.status else { panic!("{:?}", outcome.status) };
        assert_eq!(points.len(), 1);
        assert_eq!(
            (points[0].path.as_slice(), points[0].node_id.as_str()),
            (&["check".to_owned()][..], "approve")
        );
        assert_eq!(points[0].ask.prompt.as_deref(), Some("Approve Q3 report?"));
        assert!(outcome.writes.is_empty(), "the parent stores nothing while its child waits");
    });
    assert_eq!(engine.status(), EngineStatus::Waiting);

    // Saved and carried to another engine as JSON: the child goes with it.
    let saved = serde_json::to_value(engine.to_state()).unwrap();
    assert_eq!(saved["children"]["check"]["graph_id"], "review");
    assert_eq!(saved["children"]["check"]["version"], 1);
    assert_eq!(saved["children"]["check"]["state"]["current_node_id"], "approve");
    assert_eq!(saved["children"]["check"]["state"]["context"]["note"]["output"], json!({"doc": "Q3 report"}));
    let state: EngineState = serde_json::from_value(saved).unwrap();
    let mut engine = workflow.restore(state).unwrap();

    // A wrong answer is the child's refusal; nothing moves.
    let refused = engine.answer("approve", json!({"action": "maybe"})).unwrap_err();
    assert!(matches!(refused, EngineError::AnswerRefused { ref node, .. } if node == "approve"), "{refused}");
    assert_eq!(engine.status(), EngineStatus::Waiting);

    let answered = engine.answer("approve", json!({"action": "approve"})).unwrap();
    assert!(matches!(answered.status, StepStatus::Completed));
    assert_eq!((answered.node_id.as_str(), answered.next.as_deref()), ("approve", Some("check")));
    assert!(answered.writes.is_empty());
    assert_eq!(engine.status(), EngineStatus::Running);
    // Answered but not yet gone on: still saved with the parent.
    assert!(engine.to_state().children.contains_key("check"));

    assert_eq!(block_on(engine.advance()).unwrap(), EngineStatus::Completed);
    assert_eq!(engine.context().get("check.output"), Some(&json!({"action": "approve"})));
    assert_eq!(engine.context().get("done.output.verdict"), Some(&json!("approve")));
    assert!(engine.to_state().children.is_empty(), "no child under way once it completed");
    assert!(serde_json::to_value(engine.to_state()).unwrap().get("children").is_none());
}

#[test]
fn without_input_and_output_the_child_gets_the_trigger_data_and_gives_its_whole_context() {
    let child = chain(
        "child",
        &[("seen", "function", json!({"action": "json_transform", "template": {"n": "{{trigger.n}}"}}))],
    );
    let parent = chain("parent", &[("sub", "subgraph", json!({"graph_id": "child"}))]);
    let mut engine = Workflow::new(parent, handlers()).with_graphs(graphs([child])).engine();
    assert_eq!(block_on(engine.run(json!({"n": 4}))).unwrap(), EngineStatus::Completed);
    assert_eq!(
        engine.context().get("sub.output"),
        Some(&json!({"start": {"output": {"input": {"n": 4}}}, "seen": {"output": {"n": 4}}})),
    );
}

#[test]
fn the_childs_events_come_in_the_parents_stream_with_their_path() {
    let workflow = Workflow::new(publish(), handlers()).with_graphs(graphs([review()]));
    let mut engine = workflow.engine();
    let events: Vec<_> = block_on(
        engine
            .stream(json!({"title": "Q3"}), &[StreamMode::Lifecycle, StreamMode::Updates])
            .collect::<Vec<_>>(),
    );
    let events: Vec<_> = events.into_iter().map(|event| event.unwrap()).collect();
    assert!(events.iter().enumerate().all(|(at, event)| event.seq == at as u64), "numbered as one stream");
    let seen: Vec<(String, Vec<String>)> = events
        .iter()
        .filter(|event| event.mode == StreamMode::Lifecycle)
        .map(|event| {
            (
                format!("{} {}", event.payload["phase"].as_str().unwrap(), event.node_id.as_deref().unwrap()),
                event.path.clone(),
            )
        })
        .collect();
    let path = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        seen,
        [
            ("start start".to_owned(), path(&[])),
            ("complete start".to_owned(), path(&[])),
            ("start check".to_owned(), path(&[])),
            ("start start".to_owned(), path(&["check", "start"])),
            ("complete start".to_owned(), path(&["check", "start"])),
            ("start note".to_owned(), path(&["check", "note"])),
            ("complete note".to_owned(), path(&["check", "note"])),
            ("start approve".to_owned(), path(&["check", "approve"])),
            ("complete approve".to_owned(), path(&["check", "approve"])),
            ("complete check".to_owned(), path(&[])),
        ]
    );
    let child_update = events
        .iter()
        .find(|event| event.mode == StreamMode::Updates && event.node_id.as_deref() == Some("note"))
        .expect("the child's update");
    assert_eq!(serde_json::to_value(child_update).unwrap()["path"], json!(["check", "note"]));
    let own = events.iter().find(|event| event.node_id.as_deref() == Some("check")).unwrap();
    assert!(serde_json::to_value(own).unwrap().get("path").is_none(), "absent on the run's own events");

    // The answer's events come with their path too.
    let events: Vec<_> = block_on(
        engine
            .stream_resume("approve", json!({"action": "reject"}), &[StreamMode::Lifecycle])
            .collect::<Vec<_>>(),
    );
    let phases: Vec<_> = events
        .iter()
        .map(|event| {
            let event = event.as_ref().unwrap();
            (event.payload["phase"].as_str().unwrap().to_owned(), event.path.clone())
        })
        .collect();
    assert_eq!(phases[0], ("start".to_owned(), vec![]), "{phases:?}");
    assert!(phases.contains(&("complete".to_owned(), path(&["check", "end"]))), "{phases:?}");
    assert_eq!(engine.context().get("done.output.verdict"), Some(&json!("reject")));
}

#[test]
fn a_failed_child_fails_its_node_and_the_parents_error_route_takes_it() {
    let child = chain("flaky", &[("boom", "function", json!({"action": "custom", "function": "missing"}))]);
    let mut parent = chain("parent", &[("sub", "subgraph", json!({"graph_id": "flaky"}))]);
    parent
        .add_node(
            Node::new("recover", "function")
                .with_config(json!({"action": "set_context", "values": {"ok": false}})),
        )
        .unwrap();
    parent.add_edge(Edge::new("sub", "recover").when(roomkit_graph::Condition::error()));
    let workflow = Workflow::new(parent, handlers()).with_graphs(graphs([child.clone()]));
    let mut engine = workflow.engine();
    assert_eq!(block_on(engine.run(json!({}))).unwrap(), EngineStatus::Completed);
    let error = engine.context().get("sub.error").expect("the failure is stored").clone();
    assert_eq!(error["kind"], "execution");
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("its child run of graph \"flaky\" failed: node \"boom\""), "{message}");
    assert_eq!(engine.context().get("recover.output.ok"), Some(&json!(false)));

    // Without an error route the parent fails, naming its node.
    let parent = chain("parent", &[("sub", "subgraph", json!({"graph_id": "flaky"}))]);
    let mut engine = Workflow::new(parent, handlers()).with_graphs(graphs([child])).engine();
    let error = block_on(engine.run(json!({}))).unwrap_err();
    assert!(matches!(error, EngineError::Execution { ref node, .. } if node == "sub"), "{error}");
}

#[test]
fn a_graph_it_cannot_find_fails_the_node_precisely() {
    let parent = chain("parent", &[("sub", "subgraph", json!({"graph_id": "nope"}))]);
    let mut engine = Workflow::new(parent.clone(), handlers()).with_graphs(graphs([review()])).engine();
    let error = block_on(engine.run(json!({}))).unwrap_err();
    assert_eq!(error.to_string(), "node \"sub\" failed: graph \"nope\" is not among the workflow's graphs");

    let mut engine = Workflow::new(parent, handlers()).engine();
    let error = block_on(engine.run(json!({}))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "node \"sub\" failed: no graphs are given for subgraph nodes to run (Workflow::with_graphs)"
    );

    let pinned = chain("parent", &[("sub", "subgraph", json!({"graph_id": "review", "version": 2}))]);
    let mut engine = Workflow::new(pinned, handlers()).with_graphs(graphs([review()])).engine();
    let error = block_on(engine.run(json!({}))).unwrap_err();
    assert_eq!(error.to_string(), "node \"sub\" failed: graph \"review\" has no version 2");
}

#[test]
fn a_waiting_child_keeps_the_version_it_started_with() {
    let mut registry = graphs([review()]);
    let workflow = Workflow::new(publish(), handlers()).with_graphs(registry.clone());
    let mut engine = workflow.engine();
    assert_eq!(block_on(engine.run(json!({"title": "a"}))).unwrap(), EngineStatus::Waiting);
    let state = engine.to_state();
    assert_eq!(state.children["check"].version, 1);

    // A second version, whose approval has another id, is added meanwhile.
    let renamed = chain("review", &[("sign", "human", json!({}))]);
    assert_eq!(registry.add(Workflow::new(renamed, handlers())), 2);
    let newer = Workflow::new(publish(), handlers()).with_graphs(registry);
    let mut engine = newer.restore(state.clone()).unwrap();
    engine.answer("approve", json!({"action": "approve"})).unwrap();
    assert_eq!(block_on(engine.advance()).unwrap(), EngineStatus::Completed);
    // A new run takes the newest.
    let mut engine = newer.engine();
    assert_eq!(block_on(engine.run(json!({"title": "b"}))).unwrap(), EngineStatus::Waiting);
    assert_eq!(engine.to_state().children["check"].version, 2);

    // A saved child whose graph is not given is refused, precisely.
    let error = Workflow::new(publish(), handlers()).restore(state).err().expect("refused");
    assert_eq!(
        error.to_string(),
        "the saved state's child run of \"check\" runs graph \"review\" version 1, \
         which is not among the workflow's graphs"
    );
}

#[test]
fn a_grandchild_waits_with_its_whole_path_and_is_answered_from_the_top() {
    let middle = chain(
        "middle",
        &[("inner", "subgraph", json!({"graph_id": "review", "output": "{{approve.output}}"}))],
    );
    let top =
        chain("top", &[("outer", "subgraph", json!({"graph_id": "middle", "output": "{{inner.output}}"}))]);
    let workflow = Workflow::new(top, handlers()).with_graphs(graphs([review(), middle]));
    let mut engine = workflow.engine();
    block_on(async {
        engine.start(json!({"doc": "d"})).unwrap();
        engine.step().await.unwrap();
        let outcome = engine.step_outcome().await.unwrap();
        let StepStatus::Waiting(points) = outcome.status else { panic!("{:?}", outcome.status) };
        assert_eq!(points[0].path, ["outer", "inner"]);
        assert_eq!(points[0].node_id, "approve");
    });
    let saved = serde_json::to_value(engine.to_state()).unwrap();
    let inner = &saved["children"]["outer"]["state"]["children"]["inner"];
    assert_eq!(inner["state"]["current_node_id"], "approve");
    let mut engine = workflow.restore(serde_json::from_value(saved).unwrap()).unwrap();
    engine.answer("approve", json!({"action": "approve"})).unwrap();
    assert_eq!(block_on(engine.advance()).unwrap(), EngineStatus::Completed);
    assert_eq!(engine.context().get("outer.output"), Some(&json!({"action": "approve"})));
}

#[test]
fn graphs_that_run_each_other_stop_at_the_nesting_limit() {
    let ping = chain("ping", &[("to_pong", "subgraph", json!({"graph_id": "pong"}))]);
    let pong = chain("pong", &[("to_ping", "subgraph", json!({"graph_id": "ping"}))]);
    let mut with_route = ping.clone();
    with_route
        .add_node(Node::new("caught", "function").with_config(json!({"action": "set_context", "values": {}})))
        .unwrap();
    with_route.add_edge(Edge::new("to_pong", "caught").when(roomkit_graph::Condition::error()));
    let registry = graphs([ping.clone(), pong]);

    let mut engine = Workflow::new(ping.clone(), handlers()).with_graphs(registry.clone()).engine();
    let error = block_on(engine.run(json!({}))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "node \"to_pong\": its subgraph would nest runs 9 deep, more than the limit of 8"
    );
    assert!(matches!(error, EngineError::Limit { .. }));

    // Never routed: the limit is the graph family's, not one node's failure.
    let mut engine = Workflow::new(with_route, handlers()).with_graphs(registry.clone()).engine();
    assert!(matches!(block_on(engine.run(json!({}))), Err(EngineError::Limit { .. })));

    let shallow = Limits { subgraph_depth: 2, ..Limits::default() };
    let mut engine = Workflow::new(ping, handlers()).with_graphs(registry).with_limits(shallow).engine();
    let error = block_on(engine.run(json!({}))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "node \"to_pong\": its subgraph would nest runs 3 deep, more than the limit of 2"
    );
}

#[test]
fn validate_refuses_a_subgraph_node_it_could_not_run() {
    let codes = |graph: &Graph| -> Vec<(ValidationCode, String, String)> {
        graph.validate().into_iter().map(|e| (e.code, e.field.unwrap_or_default(), e.message)).collect()
    };
    let itself = chain("loop", &[("again", "subgraph", json!({"graph_id": "loop"}))]);
    assert_eq!(
        codes(&itself),
        [(
            ValidationCode::InvalidSubgraph,
            "graph_id".to_owned(),
            "node \"again\": graph \"loop\" may not run itself as a subgraph".to_owned()
        )]
    );
    let unnamed = chain("g", &[("sub", "subgraph", json!({"version": 1}))]);
    assert_eq!(codes(&unnamed)[0].2, "node \"sub\": a subgraph node needs \"graph_id\", the graph it runs");
    let bad_version = chain("g", &[("sub", "subgraph", json!({"graph_id": "review", "version": 0}))]);
    assert_eq!(codes(&bad_version)[0].1, "version");
    assert_eq!(codes(&bad_version)[0].2, "node \"sub\": version 0 is not a graph version (1, 2, ...)");
    assert_eq!(ValidationCode::InvalidSubgraph.as_str(), "invalid_subgraph");

    let mut in_parallel = chain("g", &[("both", "parallel", json!({}))]);
    in_parallel
        .add_node(Node::new("sub", "subgraph").with_parent("both").with_config(json!({"graph_id": "review"})))
        .unwrap();
    assert_eq!(
        codes(&in_parallel),
        [(
            ValidationCode::InvalidSubgraph,
            "parent".to_owned(),
            "node \"sub\": a subgraph node cannot be a child of parallel node \"both\"".to_owned()
        )]
    );
    assert!(codes(&publish()).is_empty());
}

#[test]
fn while_a_child_is_under_way_every_answer_is_its_own_and_no_timer_wakes_the_parent() {
    let workflow = Workflow::new(publish(), handlers()).with_graphs(graphs([review()]));
    let mut engine = workflow.engine();
    assert_eq!(block_on(engine.run(json!({"title": "t"}))).unwrap(), EngineStatus::Waiting);
    let error = engine.wake().unwrap_err();
    assert!(error.to_string().contains("rests on no node"), "{error}");
    // The subgraph node itself is no node of the child: refused, nothing moves.
    let error = engine.answer("check", json!({"bypass": true})).unwrap_err();
    assert!(error.to_string().contains("no such node in graph \"review\""), "{error}");
    assert_eq!(engine.context().get("check"), None);

    engine.answer("approve", json!({"action": "approve"})).unwrap();
    // Answered, not gone on yet: still the child's.
    let error = engine.answer("check", json!({"bypass": true})).unwrap_err();
    assert!(error.to_string().contains("no such node in graph \"review\""), "{error}");
    assert_eq!(block_on(engine.advance()).unwrap(), EngineStatus::Completed);
    assert_eq!(engine.context().get("check.output"), Some(&json!({"action": "approve"})));
}

#[test]
fn a_stream_dropped_while_the_child_goes_on_leaves_the_child_as_far_as_it_got() {
    let workflow = Workflow::new(publish(), handlers()).with_graphs(graphs([review()]));
    let mut engine = workflow.engine();
    assert_eq!(block_on(engine.run(json!({"title": "t"}))).unwrap(), EngineStatus::Waiting);
    engine.answer("approve", json!({"action": "reject"})).unwrap();
    block_on(async {
        let mut stream = engine.stream_continue(&[StreamMode::Lifecycle]);
        // Dropped inside the child's step, before the child is done.
        loop {
            let event = stream.next().await.unwrap().unwrap();
            if !event.path.is_empty() {
                assert_eq!(event.path, ["check", "end"]);
                break;
            }
        }
    });
    assert!(engine.to_state().children.contains_key("check"), "the answered child is kept");
    assert_eq!(block_on(engine.advance()).unwrap(), EngineStatus::Completed, "not asked again");
    assert_eq!(engine.context().get("done.output.verdict"), Some(&json!("reject")));
}

/// A child whose `count` node counts its runs and whose `flaky` node fails
/// its first run.
fn flaky_child() -> (Graphs, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let runs = Arc::new(AtomicU32::new(0));
    let mut functions = roomkit_graph::FunctionRegistry::new();
    let counted = Arc::clone(&runs);
    functions.register("count", move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(json!({}))
    });
    let failed = Arc::new(AtomicU32::new(0));
    functions.register("flaky", move |_, _| match failed.fetch_add(1, Ordering::SeqCst) {
        0 => Err("down".into()),
        _ => Ok(json!({"up": true})),
    });
    let child = chain(
        "child",
        &[
            ("count", "function", json!({"action": "custom", "function": "count"})),
            ("flaky", "function", json!({"action": "custom", "function": "flaky"})),
        ],
    );
    let mut registry = Graphs::new();
    registry.add(Workflow::new(child, Handlers::builtin().with_functions(functions)));
    (registry, runs)
}

#[test]
fn a_retried_subgraph_node_runs_a_fresh_child_parked_or_not() {
    use std::sync::atomic::Ordering;
    let parent = chain(
        "parent",
        &[("sub", "subgraph", json!({"graph_id": "child", "retry": {"max_attempts": 2, "backoff": "1ms"}}))],
    );
    let (registry, runs) = flaky_child();
    let mut engine = Workflow::new(parent.clone(), handlers()).with_graphs(registry).engine();
    assert_eq!(block_on(engine.run(json!({}))).unwrap(), EngineStatus::Completed);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the second attempt ran the child from its start");

    let (registry, runs) = flaky_child();
    let mut engine = Workflow::new(parent, handlers()).with_graphs(registry).parking().engine();
    block_on(async {
        engine.start(json!({})).unwrap();
        engine.step().await.unwrap();
        let failed = engine.step_outcome().await.unwrap();
        assert!(matches!(failed.status, StepStatus::Failed { retry_in: Some(_), .. }), "{:?}", failed.status);
        assert!(engine.to_state().children.is_empty(), "no child kept between attempts");
        let retried = engine.step_outcome().await.unwrap();
        assert!(matches!(retried.status, StepStatus::Completed), "{:?}", retried.status);
    });
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn a_child_never_takes_more_steps_than_its_parent_may() {
    let child = chain("child", &[("a", "log", json!({"paths": []})), ("b", "log", json!({"paths": []}))]);
    let parent = chain("parent", &[("sub", "subgraph", json!({"graph_id": "child"}))]);
    let mut engine =
        Workflow::new(parent, handlers()).with_graphs(graphs([child])).with_step_ceiling(3).engine();
    let error = block_on(engine.run(json!({}))).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("its child run of graph \"child\" failed"), "{message}");
    assert!(message.contains("step limit of 3"), "{message}");
}

#[test]
fn a_saved_child_that_does_not_fit_its_parent_is_refused() {
    let workflow = Workflow::new(publish(), handlers()).with_graphs(graphs([review()]));
    let mut engine = workflow.engine();
    assert_eq!(block_on(engine.run(json!({"title": "t"}))).unwrap(), EngineStatus::Waiting);
    let saved = engine.to_state();
    let refused =
        |state: EngineState, workflow: &Workflow| workflow.restore(state).err().expect("refused").to_string();

    let mut other = saved.clone();
    other.children.get_mut("check").unwrap().graph_id = "publish".into();
    assert!(refused(other, &workflow).ends_with("runs graph \"publish\", not the one the node names"));
    let mut done = saved.clone();
    done.children.get_mut("check").unwrap().state.current_node_id = None;
    assert!(refused(done, &workflow).ends_with("has completed: its parent would never go on"));
    let mut not_waiting = saved.clone();
    not_waiting.children.get_mut("check").unwrap().state.waiting = false;
    assert!(refused(not_waiting, &workflow).ends_with("does not wait as its parent does"));
    let mut elsewhere = saved.clone();
    elsewhere.current_node_id = Some("done".into());
    assert!(refused(elsewhere, &workflow).contains("is not on the subgraph node the run stands on"));

    let shallow = Workflow::new(publish(), handlers())
        .with_graphs(graphs([review()]))
        .with_limits(Limits { subgraph_depth: 0, ..Limits::default() });
    assert!(refused(saved, &shallow).ends_with("would nest runs 1 deep, more than the limit of 0"));
}

/// Steps a parking engine of `graph` to its subgraph node and gives the request.
fn handed_over(graph: Graph) -> (roomkit_graph::WorkflowEngine, roomkit_graph::ChildRequest) {
    let mut engine = Workflow::new(graph, handlers()).parking().engine();
    let request = block_on(async {
        engine.start(json!({"title": "t"})).unwrap();
        engine.step().await.unwrap();
        let outcome = engine.step_outcome().await.unwrap();
        match outcome.status {
            StepStatus::Child(request) => request,
            other => panic!("{other:?}"),
        }
    });
    (engine, request)
}

#[test]
fn a_parking_workflow_without_graphs_hands_the_child_to_its_caller() {
    let (engine, request) = handed_over(publish());
    assert_eq!(
        request,
        roomkit_graph::ChildRequest {
            graph_id: "review".into(),
            version: None,
            input: json!({"doc": "t"}),
            node: None
        }
    );
    assert_eq!(engine.status(), EngineStatus::Waiting);
    // Nothing of the child is in the parent's state: the caller keeps it.
    let state = engine.to_state();
    assert!(state.children.is_empty());
    assert_eq!(state.current_node_id.as_deref(), Some("check"));

    // Carried to another process, it is finished there.
    let workflow = Workflow::new(publish(), handlers()).parking();
    let mut engine = workflow.restore(state).unwrap();
    let refused = engine.answer("approve", json!({})).unwrap_err();
    assert!(refused.to_string().contains("no such node"), "{refused}");
    let mut child = roomkit_graph::Context::new("start");
    child.set_output("approve", json!({"action": "reject"}));
    let outcome = engine.finish_child(roomkit_graph::ChildEnd::Completed(child)).unwrap();
    assert_eq!(outcome.writes, [("check".to_owned(), json!({"output": {"action": "reject"}}))]);
    assert_eq!(block_on(engine.advance()).unwrap(), EngineStatus::Completed);
    assert_eq!(engine.context().get("done.output.verdict"), Some(&json!("reject")));
    let error = engine.finish_child(roomkit_graph::ChildEnd::Cancelled).unwrap_err();
    assert!(error.to_string().contains("waits on no child run"), "{error}");
}

#[test]
fn a_child_the_caller_saw_fail_is_retried_with_a_fresh_one_then_routed() {
    let mut graph = chain(
        "parent",
        &[("sub", "subgraph", json!({"graph_id": "review", "retry": {"max_attempts": 2, "backoff": "5s"}}))],
    );
    graph
        .add_node(
            Node::new("recover", "function").with_config(json!({"action": "set_context", "values": {}})),
        )
        .unwrap();
    graph.add_edge(Edge::new("sub", "recover").when(roomkit_graph::Condition::error()));
    let (mut engine, _) = handed_over(graph);

    let outcome =
        engine.finish_child(roomkit_graph::ChildEnd::Failed("node \"approve\": boom".into())).unwrap();
    let StepStatus::Failed { error, retry_in } = outcome.status else { panic!("{:?}", outcome.status) };
    assert_eq!(retry_in, Some(std::time::Duration::from_secs(5)));
    assert_eq!(
        error.to_string(),
        "node \"sub\" failed: its child run of graph \"review\" failed: node \"approve\": boom"
    );
    assert_eq!((outcome.attempt, engine.status()), (1, EngineStatus::Running));
    // The next attempt asks for a fresh child.
    let again = block_on(engine.step_outcome()).unwrap();
    assert!(matches!(again.status, StepStatus::Child(_)), "{:?}", again.status);
    assert_eq!(again.attempt, 2);
    let routed = engine.finish_child(roomkit_graph::ChildEnd::Cancelled).unwrap();
    let StepStatus::Routed(failure) = routed.status else { panic!("{:?}", routed.status) };
    assert_eq!(failure.message, "its child run of graph \"review\" was cancelled");
    assert_eq!((failure.attempts, routed.next.as_deref()), (2, Some("recover")));
}
