//! Forks at the points where a run stands between things: between two
//! attempts at a node (the fork makes the next one, not the first again),
//! at a person's step without an answer (the fork asks again), and where
//! the run was over (refused, nothing created).

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use roomkit_graph::{
    Edge, Graph, HandlerError, Handlers, HumanHandler, Node, NodeHandler, NodeResult, Scope, Trigger,
};
use roomkit_graph_runner::{Runner, RunnerError};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{Entry, RunFilter, RunStatus};
use serde_json::json;

/// Always fails.
struct Broken;

#[async_trait]
impl NodeHandler for Broken {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Ok(NodeResult::failed(format!("broken on attempt {}", scope.attempt())))
    }
}

fn graph() -> Graph {
    let mut graph = Graph::new("g", "G", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("ask", "human").with_config(json!({"prompt": "Go on?", "actions": ["yes"]})),
            Node::new("call", "broken").with_config(json!({"retry": {"max_attempts": 3, "backoff": "10ms"}})),
            Node::new("end", "end"),
        ])
        .unwrap();
    graph.add_edges([Edge::new("start", "ask"), Edge::new("ask", "call"), Edge::new("call", "end")]);
    graph
}

fn entries_of(events: &[roomkit_graph_store::TranscriptEvent]) -> Vec<&Entry> {
    events.iter().map(|event| &event.entry).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_go_on_between_attempts_ask_again_and_refuse_where_the_run_was_over() {
    let dir = tempfile::tempdir().unwrap();
    let handlers = Handlers::builtin().with("human", HumanHandler).with("broken", Broken);
    let runner = Runner::new(SqliteStore::open(dir.path().join("runs.db")).unwrap(), handlers);
    runner.save_graph(&graph()).await.unwrap();
    let run = runner.start("g", json!({"n": 1})).await.unwrap();
    assert_eq!(runner.wait(&run.run_id).await.unwrap().status, RunStatus::Waiting);
    runner.answer(&run.run_id, "ask", json!({"action": "yes"}), None).await.unwrap();
    assert_eq!(runner.wait(&run.run_id).await.unwrap().status, RunStatus::Failed);
    let origin = runner.store().transcript(&run.run_id, 0, usize::MAX).await.unwrap();
    let seq_of = |find: &dyn Fn(&Entry) -> bool| origin.iter().find(|event| find(&event.entry)).unwrap().seq;

    // Between attempts 1 and 2: the fork makes attempts 2 and 3, counting on from the origin's steps.
    let between = seq_of(&|entry| matches!(entry, Entry::RetryScheduled { attempt: 2, .. }));
    let steps_then = runner.store().run_at(&run.run_id, between).await.unwrap().position.steps;
    let fork = runner.fork(&run.run_id, between, None, None).await.unwrap();
    let ended = runner.wait(&fork.run_id).await.unwrap();
    assert_eq!(ended.status, RunStatus::Failed);
    assert_eq!(ended.steps, steps_then + 2, "two more attempts, counted on");
    let forked = runner.store().transcript(&fork.run_id, 0, usize::MAX).await.unwrap();
    let attempts: Vec<u32> = forked
        .iter()
        .filter_map(|event| match event.entry {
            Entry::NodeStarted { attempt, .. } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [2, 3], "{:#?}", entries_of(&forked));

    // At the person's step, without an answer: the fork asks again.
    let asked = seq_of(&|entry| matches!(entry, Entry::NodeWaiting { node_id, .. } if node_id == "ask"));
    let fork = runner.fork(&run.run_id, asked, None, None).await.unwrap();
    assert_eq!((fork.status, fork.current_node_id.as_deref()), (RunStatus::Waiting, Some("ask")));
    let forked = runner.store().transcript(&fork.run_id, 0, usize::MAX).await.unwrap();
    assert!(
        matches!(forked.last().map(|event| &event.entry), Some(Entry::NodeWaiting { node_id, prompt, .. }) if node_id == "ask" && prompt.as_deref() == Some("Go on?")),
        "{:#?}",
        entries_of(&forked)
    );
    runner.answer(&fork.run_id, "ask", json!({"action": "yes"}), None).await.unwrap();
    assert_eq!(runner.wait(&fork.run_id).await.unwrap().status, RunStatus::Failed);

    // Where the run was over: refused, and nothing is created.
    let runs_before = runner.store().list_runs(&RunFilter::default()).await.unwrap().len();
    let over = origin.last().unwrap().seq;
    let refused = runner.fork(&run.run_id, over, None, None).await.unwrap_err();
    assert!(matches!(refused, RunnerError::CannotFork { .. }), "{refused}");
    assert!(refused.to_string().ends_with("the run was failed there: nothing goes on from it"), "{refused}");
    assert_eq!(runner.store().list_runs(&RunFilter::default()).await.unwrap().len(), runs_before);
    runner.shutdown().await;
}
