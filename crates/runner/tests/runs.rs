//! Durable runs against a real SQLite file: a human-in-the-loop run answered
//! after it parks, answers refused without changing anything, a run picked up
//! after its process died mid-step (once its lease expired), graph versions
//! pinned by runs in flight, and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use async_trait::async_trait;
use roomkit_graph::{
    Clock, Condition, Edge, Graph, HandlerError, Handlers, HumanHandler, ManualClock, Node, NodeHandler,
    NodeResult, Scope, Signal, Trigger,
};
use roomkit_graph_runner::{Runner, RunnerError};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{Entry, RunFilter, RunStatus, Store};
use serde_json::{Value, json};

fn set(id: &str, values: Value) -> Node {
    Node::new(id, "function").with_config(json!({"action": "set_context", "values": values}))
}

fn review_graph(publish_note: &str) -> Graph {
    let mut graph = Graph::new("review", "Review", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            set("draft", json!({"body": "v1"})),
            Node::new("review", "human")
                .with_config(json!({"prompt": "Approve the draft on {{trigger.topic}}?", "actions": ["approve", "reject"]})),
            set("publish", json!({"note": publish_note})),
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

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("runs.db")).expect("the database opens")
}

fn kinds(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| serde_json::to_value(e).expect("entries are JSON")["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_parks_on_a_person_and_an_answer_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(open(&dir), Handlers::builtin().with("human", HumanHandler));
    runner.save_graph(&review_graph("live")).await.unwrap();

    let run = runner.start("review", json!({"topic": "rust"})).await.unwrap();
    let parked = runner.wait(&run.run_id).await.unwrap();
    assert_eq!(parked.status, RunStatus::Waiting);
    assert_eq!(parked.current_node_id.as_deref(), Some("review"));

    // Refused answers change nothing.
    let wrong_action = runner.answer(&run.run_id, "review", json!({"action": "maybe"}), Some("ada")).await;
    assert!(
        matches!(&wrong_action, Err(RunnerError::InvalidAnswer { reason, .. }) if reason.contains("approve, reject"))
    );
    let not_an_object = runner.answer(&run.run_id, "review", json!("yes"), None).await;
    assert!(matches!(not_an_object, Err(RunnerError::InvalidAnswer { .. })));
    let wrong_node = runner.answer(&run.run_id, "draft", json!({"action": "approve"}), None).await;
    assert!(matches!(wrong_node, Err(RunnerError::NotWaiting { .. })));
    assert_eq!(runner.store().run(&run.run_id).await.unwrap(), parked);

    runner
        .answer(&run.run_id, "review", json!({"action": "approve", "note": "ship it"}), Some("ada"))
        .await
        .unwrap();
    let done = runner.wait(&run.run_id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.current_node_id, None);

    let events = runner.store().transcript(&run.run_id, 0, 100).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let entries: Vec<Entry> = events.iter().map(|e| e.entry.clone()).collect();
    assert_eq!(
        kinds(&entries),
        [
            "run_started",
            "node_started",
            "node_completed",
            "node_started",
            "node_completed",
            "node_started",
            "node_waiting",
            "answer_received",
            "node_started",
            "node_completed",
            "node_started",
            "node_completed",
            "run_completed",
        ]
    );
    assert!(events.iter().any(|event| event.entry
        == Entry::NodeWaiting {
            node_id: "review".into(),
            prompt: Some("Approve the draft on rust?".into()),
            actions: vec!["approve".into(), "reject".into()],
        }));
    assert!(events.iter().any(|event| event.entry
        == Entry::AnswerReceived {
            node_id: "review".into(),
            by: Some("ada".into()),
            data: json!({"action": "approve", "note": "ship it"}),
        }));

    let (_, state) = runner.store().load_run(&run.run_id).await.unwrap();
    assert_eq!(state.context["review"], json!({"output": {"action": "approve", "note": "ship it"}}));
    assert_eq!(state.context["publish"], json!({"output": {"note": "live"}}));

    let answered_again = runner.answer(&run.run_id, "review", json!({"action": "approve"}), None).await;
    assert!(matches!(answered_again, Err(RunnerError::NotWaiting { status: RunStatus::Completed, .. })));
}

/// Tells the test it was entered, then never completes (the process "dies" here).
struct Stuck(mpsc::Sender<()>);

#[async_trait]
impl NodeHandler for Stuck {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let _ = self.0.send(());
        std::future::pending().await
    }
}

/// Completes at once.
struct Quick;

#[async_trait]
impl NodeHandler for Quick {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        Ok(NodeResult::completed(json!({"done": node.id, "run": scope.run_id()})))
    }
}

#[test]
fn a_run_cut_off_mid_step_is_finished_by_the_next_process_with_every_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut graph = Graph::new("long", "Long", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            set("one", json!({"n": 1})),
            Node::new("slow", "work"),
            set("two", json!({"n": 2})),
            Node::new("end", "end"),
        ])
        .unwrap();
    graph.add_edges([
        Edge::new("start", "one"),
        Edge::new("one", "slow"),
        Edge::new("slow", "two"),
        Edge::new("two", "end"),
    ]);

    // Both processes read the time from one clock, which moves only when told.
    let clock = ManualClock::new(std::time::SystemTime::now());
    let lease = std::time::Duration::from_millis(500);

    // The first process reaches the slow node, then dies: its tasks are
    // dropped, its lease is never released.
    let (entered, entered_rx) = mpsc::channel();
    let first = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let run_id = first.block_on(async {
        let handlers = Handlers::builtin().with("work", Stuck(entered));
        let runner = Runner::builder(open(&dir), handlers).clock(clock.clone()).build().with_lease(lease);
        runner.save_graph(&graph).await.unwrap();
        runner.start("long", json!({})).await.unwrap().run_id
    });
    entered_rx.recv().unwrap();
    first.shutdown_timeout(std::time::Duration::from_secs(5));

    // The next process picks the run up where its last commit left it, once
    // the lease of the dead one has expired: not a millisecond before.
    let second = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    second.block_on(async {
        let handlers = Handlers::builtin().with("work", Quick);
        let runner = Runner::builder(open(&dir), handlers).clock(clock.clone()).build();
        let expires = runner.store().run(&run_id).await.unwrap().lease_until.expect("a lease");
        assert_eq!(runner.recover().await.unwrap(), 0, "the dead process's lease still holds");
        clock.advance(lease - std::time::Duration::from_millis(1));
        assert_eq!(runner.recover().await.unwrap(), 0, "the lease holds to its last millisecond");
        clock.advance(std::time::Duration::from_millis(1));
        assert_eq!(runner.recover().await.unwrap(), 1, "the expired lease is taken");
        let now = clock.now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        assert_eq!(now, u128::try_from(expires).unwrap(), "picked up as the lease expired");
        let done = runner.wait(&run_id).await.unwrap();
        assert_eq!(done.status, RunStatus::Completed);
        let events = runner.store().transcript(&run_id, 0, 100).await.unwrap();
        let completed: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.entry {
                Entry::NodeCompleted { node_id, .. } => Some(node_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(completed, ["start", "one", "slow", "two", "end"]);
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
        let (_, state) = runner.store().load_run(&run_id).await.unwrap();
        assert_eq!(state.context["slow"], json!({"output": {"done": "slow", "run": run_id}}));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_keep_the_graph_version_they_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(open(&dir), Handlers::builtin().with("human", HumanHandler));
    assert_eq!(runner.save_graph(&review_graph("from v1")).await.unwrap().version, 1);
    let run = runner.start("review", json!({})).await.unwrap();
    assert_eq!(runner.wait(&run.run_id).await.unwrap().status, RunStatus::Waiting);

    assert_eq!(runner.save_graph(&review_graph("from v2")).await.unwrap().version, 2);
    runner.answer(&run.run_id, "review", json!({"action": "approve"}), None).await.unwrap();
    let done = runner.wait(&run.run_id).await.unwrap();
    assert_eq!((done.status, done.graph_version), (RunStatus::Completed, 1));
    let (_, state) = runner.store().load_run(&run.run_id).await.unwrap();
    assert_eq!(state.context["publish"], json!({"output": {"note": "from v1"}}));

    let newer = runner.start("review", json!({})).await.unwrap();
    assert_eq!(newer.graph_version, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_runs_take_no_answer_and_listing_filters_them() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(open(&dir), Handlers::builtin().with("human", HumanHandler));
    runner.save_graph(&review_graph("x")).await.unwrap();
    let a = runner.start("review", json!({"n": 1})).await.unwrap();
    let b = runner.start("review", json!({"n": 2})).await.unwrap();
    runner.wait(&a.run_id).await.unwrap();
    runner.wait(&b.run_id).await.unwrap();

    let cancelled = runner.cancel(&a.run_id, Some("duplicate request")).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(matches!(
        runner.answer(&a.run_id, "review", json!({"action": "approve"}), None).await,
        Err(RunnerError::NotWaiting { status: RunStatus::Cancelled, .. })
    ));
    assert!(matches!(runner.cancel(&a.run_id, None).await, Err(RunnerError::Finished { .. })));
    let last = runner.store().transcript(&a.run_id, 0, 100).await.unwrap();
    assert_eq!(
        last.last().map(|e| &e.entry),
        Some(&Entry::RunCancelled { reason: Some("duplicate request".into()) })
    );

    let store: Arc<dyn Store> = Arc::new(open(&dir));
    let waiting = store
        .list_runs(&RunFilter {
            graph_id: Some("review".into()),
            status: Some(RunStatus::Waiting),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(waiting.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), [b.run_id.as_str()]);
}

/// Sets a flag when dropped: the handler future holding it was dropped.
struct DropGuard(Arc<AtomicBool>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A step that never ends: it says it began, then waits forever.
struct Forever {
    began: mpsc::Sender<()>,
    dropped: Arc<AtomicBool>,
}

#[async_trait]
impl NodeHandler for Forever {
    async fn execute(&self, _node: &Node, _scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let _guard = DropGuard(Arc::clone(&self.dropped));
        let _ = self.began.send(());
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_run_drops_its_step_in_progress_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (began, step_began) = mpsc::channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let handlers = Handlers::builtin().with("forever", Forever { began, dropped: Arc::clone(&dropped) });
    // A lease far longer than the test: only the cancel can end the step.
    let runner = Runner::new(open(&dir), handlers).with_lease(std::time::Duration::from_secs(600));
    let mut graph = Graph::new("stuck", "Stuck", Trigger::manual());
    graph
        .add_nodes([Node::new("start", "start"), Node::new("spin", "forever"), Node::new("end", "end")])
        .unwrap();
    graph.add_edges([Edge::new("start", "spin"), Edge::new("spin", "end")]);
    runner.save_graph(&graph).await.unwrap();
    let run = runner.start("stuck", json!({})).await.unwrap();
    tokio::task::spawn_blocking(move || step_began.recv_timeout(std::time::Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the step began");
    assert_eq!(runner.active_runs(), 1);
    assert!(!dropped.load(Ordering::SeqCst));

    runner.cancel(&run.run_id, Some("runaway")).await.unwrap();
    // `wait` returns once the run's task has let go of it: at once, not
    // after the step (which never ends) or a lease renewal (minutes away).
    let waited = tokio::time::timeout(std::time::Duration::from_secs(10), runner.wait(&run.run_id));
    assert_eq!(waited.await.expect("the task let go").unwrap().status, RunStatus::Cancelled);
    assert_eq!(runner.active_runs(), 0, "the task is gone");
    assert!(dropped.load(Ordering::SeqCst), "the step in progress was dropped");
    let events = runner.store().transcript(&run.run_id, 0, 100).await.unwrap();
    let entries: Vec<Entry> = events.into_iter().map(|event| event.entry).collect();
    // The start node's step, then the cancel: nothing of the dropped step.
    assert_eq!(kinds(&entries), ["run_started", "node_started", "node_completed", "run_cancelled"]);
    runner.shutdown().await;
}

/// Sends what agents and notifications send: tokens, a finished reply, a
/// notification sent, and a payload of its own.
struct Talker;

#[async_trait]
impl NodeHandler for Talker {
    async fn execute(&self, _node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        for token in ["Hel", "lo"] {
            scope.signal(Signal::Token { agent: "writer".into(), text: token.into() });
        }
        let usage = Some(json!({"output_tokens": 2}));
        scope.signal(Signal::AgentMessage { agent: "writer".into(), text: "Hello".into(), usage });
        scope.signal(Signal::NotificationSent { channel: "slack".into(), text: "Hello sent".into() });
        scope.emit(json!({"kind": "progress", "done": 1}));
        Ok(NodeResult::completed(json!({"text": "Hello"})))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_and_notifications_are_typed_entries_and_tokens_only_go_out_live() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(open(&dir), Handlers::builtin().with("talker", Talker));
    let mut graph = Graph::new("talk", "Talk", Trigger::manual());
    graph
        .add_nodes([Node::new("start", "start"), Node::new("talk", "talker"), Node::new("end", "end")])
        .unwrap();
    graph.add_edges([Edge::new("start", "talk"), Edge::new("talk", "end")]);
    runner.save_graph(&graph).await.unwrap();
    let mut live = runner.live();

    let run = runner.start("talk", json!({})).await.unwrap();
    assert_eq!(runner.wait(&run.run_id).await.unwrap().status, RunStatus::Completed);

    let entries: Vec<Entry> =
        runner.store().transcript(&run.run_id, 0, 100).await.unwrap().into_iter().map(|e| e.entry).collect();
    let talk: Vec<&Entry> =
        entries.iter().filter(|e| serde_json::to_value(e).unwrap()["node_id"] == "talk").collect();
    assert_eq!(
        talk[1..4],
        [
            &Entry::AgentMessage {
                node_id: "talk".into(),
                agent: "writer".into(),
                text: "Hello".into(),
                usage: Some(json!({"output_tokens": 2})),
            },
            &Entry::NotificationSent {
                node_id: "talk".into(),
                channel: "slack".into(),
                text: "Hello sent".into()
            },
            &Entry::Custom { node_id: "talk".into(), payload: json!({"kind": "progress", "done": 1}) },
        ]
    );
    assert!(matches!(talk[4], Entry::NodeCompleted { .. }), "{talk:?}");
    assert_eq!(talk.len(), 5, "the tokens are not in the transcript: {talk:?}");
    let tokens: Vec<String> = (0..2)
        .map(|_| {
            let event = live.try_recv().expect("a live token");
            assert_eq!((event.run_id.as_str(), event.node_id.as_str()), (run.run_id.as_str(), "talk"));
            event.payload["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(tokens, ["Hel", "lo"]);
    assert!(live.try_recv().is_err(), "only tokens go out live");
}
