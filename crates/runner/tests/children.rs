//! Child runs on a real SQLite file: a subgraph node starts a run of its own,
//! linked to its parent; the parent waits without a task, its child is
//! answered on its own, and the parent completes with the child's output;
//! a failed child takes its parent's error route; cancelling a parent
//! cancels its child; runs nest within the limit.

#![allow(clippy::unwrap_used, reason = "test code: a failed call fails the test")]

use roomkit_graph::{Condition, Edge, Graph, Handlers, HumanHandler, Limits, Node, Trigger};
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{Entry, ParentLink, RunFilter, RunRecord, RunStatus};
use serde_json::{Value, json};

/// `start -> middle... -> end`, each middle node (id, type, config).
fn chain(id: &str, middle: &[(&str, &str, Value)]) -> Graph {
    let mut graph = Graph::new(id, id, Trigger::manual());
    let middle =
        middle.iter().map(|(node, kind, config)| Node::new(*node, *kind).with_config(config.clone()));
    let nodes = std::iter::once(Node::new("start", "start")).chain(middle).chain([Node::new("end", "end")]);
    graph.add_chain(nodes).unwrap();
    graph
}

fn review() -> Graph {
    chain(
        "review",
        &[("approve", "human", json!({"prompt": "Publish {{trigger.doc}}?", "actions": ["yes", "no"]}))],
    )
}

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

fn runner(dir: &tempfile::TempDir) -> Runner {
    let store = SqliteStore::open(dir.path().join("runs.db")).unwrap();
    Runner::new(store, Handlers::builtin().with("human", HumanHandler))
}

async fn children(runner: &Runner, run_id: &str) -> Vec<RunRecord> {
    let filter = RunFilter { parent_run_id: Some(run_id.to_owned()), ..RunFilter::default() };
    runner.store().list_runs(&filter).await.unwrap()
}

async fn entries(runner: &Runner, run_id: &str) -> Vec<Entry> {
    runner.store().transcript(run_id, 0, 100).await.unwrap().into_iter().map(|event| event.entry).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_waits_on_its_child_run_which_is_answered_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(&dir);
    runner.save_graphs_in("default", &[review(), publish()]).await.unwrap();
    let parent = runner.start("publish", json!({"title": "Q3"})).await.unwrap();

    // The parent waits for a person, in its child.
    let waiting = runner.wait(&parent.run_id).await.unwrap();
    assert_eq!((waiting.status, waiting.current_node_id.as_deref()), (RunStatus::Waiting, Some("check")));
    let [child] = children(&runner, &parent.run_id).await.try_into().unwrap();
    assert_eq!(
        child.parent,
        Some(ParentLink { run_id: parent.run_id.clone(), node_id: "check".into(), runs_node: false })
    );
    assert_eq!((child.status, child.current_node_id.as_deref()), (RunStatus::Waiting, Some("approve")));
    assert!(entries(&runner, &parent.run_id).await.contains(&Entry::ChildStarted {
        runs_node: false,
        node_id: "check".into(),
        run_id: child.run_id.clone(),
        graph_id: "review".into(),
        graph_version: 1,
    }));
    let asked = entries(&runner, &child.run_id).await;
    assert!(
        asked
            .iter()
            .any(|entry| matches!(entry, Entry::NodeWaiting { prompt: Some(p), .. } if p == "Publish Q3?"))
    );

    // The parent's node is not answered: its child is.
    let refused = runner.answer(&parent.run_id, "check", json!({"action": "yes"}), None).await.unwrap_err();
    assert!(refused.to_string().contains("answer the child run"), "{refused}");
    runner.answer(&child.run_id, "approve", json!({"action": "yes"}), Some("ada")).await.unwrap();

    let done = runner.wait(&parent.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let (_, state) = runner.store().load_run(&parent.run_id).await.unwrap();
    assert_eq!(state.context["check"]["output"], json!({"action": "yes"}));
    assert_eq!(state.context["done"]["output"], json!({"verdict": "yes"}));
    let transcript = entries(&runner, &parent.run_id).await;
    let finished = Entry::ChildFinished {
        node_id: "check".into(),
        run_id: child.run_id.clone(),
        status: RunStatus::Completed,
    };
    assert_eq!(transcript.iter().filter(|entry| **entry == finished).count(), 1, "{transcript:?}");
    assert_eq!(runner.store().run(&child.run_id).await.unwrap().status, RunStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_child_takes_its_parents_error_route_and_a_cancelled_parent_its_child() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(&dir);
    let mut guarded = publish();
    guarded.id = "guarded".into();
    guarded
        .add_node(
            Node::new("fallback", "function")
                .with_config(json!({"action": "set_context", "values": {"ok": false}})),
        )
        .unwrap();
    guarded.add_edge(Edge::new("check", "fallback").when(Condition::error()));
    runner.save_graphs_in("default", &[review(), publish(), guarded]).await.unwrap();

    let parent = runner.start("guarded", json!({"title": "a"})).await.unwrap();
    runner.wait(&parent.run_id).await.unwrap();
    let [child] = children(&runner, &parent.run_id).await.try_into().unwrap();
    runner.cancel(&child.run_id, Some("withdrawn")).await.unwrap();
    let routed = runner.wait(&parent.run_id).await.unwrap();
    assert_eq!(routed.status, RunStatus::Completed, "{routed:?}");
    let (_, state) = runner.store().load_run(&parent.run_id).await.unwrap();
    assert_eq!(state.context["check"]["error"]["message"], "its child run of graph \"review\" was cancelled");
    assert_eq!(state.context["fallback"]["output"], json!({"ok": false}));

    let parent = runner.start("publish", json!({"title": "b"})).await.unwrap();
    runner.wait(&parent.run_id).await.unwrap();
    let [child] = children(&runner, &parent.run_id).await.try_into().unwrap();
    runner.cancel(&parent.run_id, None).await.unwrap();
    let child = runner.store().run(&child.run_id).await.unwrap();
    assert_eq!(child.status, RunStatus::Cancelled);
    assert!(
        entries(&runner, &child.run_id)
            .await
            .contains(&Entry::RunCancelled { reason: Some("its parent run was cancelled".into()) })
    );
    assert_eq!(runner.store().run(&parent.run_id).await.unwrap().status, RunStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_start_each_other_stop_at_the_nesting_limit() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(&dir).with_limits(Limits { subgraph_depth: 2, ..Limits::default() });
    let ping = chain("ping", &[("to_pong", "subgraph", json!({"graph_id": "pong"}))]);
    let pong = chain("pong", &[("to_ping", "subgraph", json!({"graph_id": "ping"}))]);
    runner.save_graphs_in("default", &[ping, pong]).await.unwrap();
    let top = runner.start("ping", json!({})).await.unwrap();
    let failed = runner.wait(&top.run_id).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let error = failed.error.unwrap();
    assert!(error.contains("would nest runs 3 deep, more than the limit of 2"), "{error}");
    // Two levels of children were opened, each failed in turn.
    let [child] = children(&runner, &top.run_id).await.try_into().unwrap();
    let [grandchild] = children(&runner, &child.run_id).await.try_into().unwrap();
    assert_eq!((child.status, grandchild.status), (RunStatus::Failed, RunStatus::Failed));
    assert!(children(&runner, &grandchild.run_id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgraph_node_retried_after_its_children_were_cancelled_stops_at_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(&dir);
    let retried = chain(
        "retried",
        &[(
            "check",
            "subgraph",
            json!({"graph_id": "review", "retry": {"max_attempts": 2, "backoff": "1ms"}}),
        )],
    );
    runner.save_graphs_in("default", &[review(), retried]).await.unwrap();
    let parent = runner.start("retried", json!({})).await.unwrap();
    for attempt in 1..=2 {
        runner.wait(&parent.run_id).await.unwrap();
        let live: Vec<RunRecord> =
            children(&runner, &parent.run_id).await.into_iter().filter(|c| !c.status.is_final()).collect();
        assert_eq!(live.len(), 1, "attempt {attempt}: {live:?}");
        runner.cancel(&live[0].run_id, None).await.unwrap();
    }
    let failed = runner.wait(&parent.run_id).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    assert!(failed.error.unwrap().contains("its child run of graph \"review\" was cancelled"));
    assert_eq!(children(&runner, &parent.run_id).await.len(), 2, "one child per attempt");
    let attempts: Vec<u32> = entries(&runner, &parent.run_id)
        .await
        .into_iter()
        .filter_map(|entry| match entry {
            Entry::NodeStarted { node_id, attempt, .. } if node_id == "check" => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_an_answer_ends_sets_its_parent_going_and_another_process_waits_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(&dir);
    // The answer ends the child: its human node has no edge of its own.
    let mut quick = Graph::new("review", "Review", Trigger::manual());
    quick
        .add_nodes([Node::new("start", "start"), Node::new("approve", "human"), Node::new("end", "end")])
        .unwrap();
    quick.add_edges([
        Edge::new("start", "end").when(Condition::field("trigger.skip").equals(true)),
        Edge::new("start", "approve").when(Condition::otherwise()),
    ]);
    runner.save_graphs_in("default", &[quick, publish()]).await.unwrap();
    let parent = runner.start("publish", json!({"title": "t"})).await.unwrap();

    // Another process on the same file waits on the parent: it waits for a person, in its child.
    let other = self::runner(&dir);
    let waiting = tokio::time::timeout(std::time::Duration::from_secs(10), other.wait(&parent.run_id))
        .await
        .expect("the other process sees the parent wait")
        .unwrap();
    assert_eq!(waiting.status, RunStatus::Waiting);

    let [child] = children(&runner, &parent.run_id).await.try_into().unwrap();
    let answered = runner.answer(&child.run_id, "approve", json!({"action": "yes"}), None).await.unwrap();
    assert_eq!(answered.status, RunStatus::Completed);
    let done = tokio::time::timeout(std::time::Duration::from_secs(10), runner.wait(&parent.run_id))
        .await
        .expect("the parent goes on once its child is over")
        .unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
}
