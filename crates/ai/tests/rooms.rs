//! An orchestration run durably is a child run of its own: its transcript
//! holds each agent's turn as a message from that agent, committed as the
//! turn ends. A worker process killed (SIGKILL) while the third turn is under
//! way costs that turn only: the next worker goes on at the third turn, and
//! the loopback provider (speaking OpenAI's wire protocol) is asked for each
//! committed turn exactly once.
//!
//! The worker is this test binary itself, re-run on the ignored
//! `room_worker` entry point with `ROOMKIT_ROOM_DB` set. The test kills only
//! the child process it started, by its pid. It runs on a SQLite file and on a
//! PostgreSQL database.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomkit_graph::{Condition, Edge, Graph, Handlers, Node, Trigger};
use roomkit_graph_ai::{Agents, register};
use roomkit_graph_postgres::PostgresStore;
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{Entry, RunFilter, RunRecord, RunStatus, TranscriptEvent};
use serde_json::{Value, json};
use support::{Answer, FakeProvider, OPENAI_KEY, Wire};

const DB_VAR: &str = "ROOMKIT_ROOM_DB";
const PROVIDER_VAR: &str = "ROOMKIT_ROOM_PROVIDER";
/// Set for the worker that starts the run.
const START_VAR: &str = "ROOMKIT_ROOM_START";
/// The workers' lease: how long the killed worker's runs wait for the next one.
const LEASE: Duration = Duration::from_millis(300);

/// start → `debate` (a supervisor with two workers) → end.
fn graph() -> Graph {
    let mut graph = Graph::new("debate", "Debate", Trigger::manual());
    graph
        .add_chain([
            Node::new("start", "start"),
            Node::new("debate", "orchestration").with_config(json!({
                "strategy": "supervisor",
                "supervisor": "lead",
                "workers": ["writer", "critic"],
                "prompt_template": "Write about {{trigger.topic}}."
            })),
            Node::new("end", "end"),
        ])
        .unwrap();
    graph
}

/// The agents, each on its own model so the provider's requests say whose they are.
fn agents(base_url: &str) -> Agents {
    let agent = |id: &str| json!({"id": id, "provider": "p", "model": format!("{id}-model")});
    let file = json!({
        "providers": {"p": {"kind": "openai", "base_url": base_url, "api_key_env": "TEST_KEY",
                            "retry": {"max_attempts": 1}}},
        "agents": [agent("lead"), agent("writer"), agent("critic")]
    });
    Agents::from_json(&file.to_string())
        .unwrap()
        .with_env_lookup(|name| (name == "TEST_KEY").then(|| OPENAI_KEY.to_owned()))
}

/// The worker process: starts the run if asked, then drives whatever is left
/// running (as the leases of a killed worker expire) until the run is over.
#[test]
#[ignore = "the worker process of an_orchestration_killed_mid_turn_goes_on_at_that_turn"]
fn room_worker() {
    let (Ok(db), Ok(base_url)) = (std::env::var(DB_VAR), std::env::var(PROVIDER_VAR)) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let handlers = register(Handlers::builtin(), Arc::new(agents(&base_url)));
        let runner = runner_on(&db, handlers).await.with_lease(LEASE);
        if std::env::var(START_VAR).is_ok() {
            runner.save_graph(&graph()).await.unwrap();
            runner.start("debate", json!({"topic": "tides"})).await.unwrap();
        }
        let parents = RunFilter { graph_id: Some("debate".into()), ..RunFilter::default() };
        loop {
            runner.recover().await.unwrap();
            let runs = runner.store().list_runs(&parents).await.unwrap();
            if runs.iter().any(|run| run.parent.is_none() && run.status.is_final()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        runner.shutdown().await;
    });
}

/// A runner on `db`: a PostgreSQL URL, or a SQLite file's path.
async fn runner_on(db: &str, handlers: Handlers) -> Runner {
    if db.starts_with("postgres://") {
        Runner::new(PostgresStore::connect(db).await.unwrap(), handlers)
    } else {
        Runner::new(SqliteStore::open(db).unwrap(), handlers)
    }
}

fn spawn_worker(db: &str, provider: &FakeProvider, start: bool) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["room_worker", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DB_VAR, db)
        .env(PROVIDER_VAR, provider.base_url())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if start {
        command.env(START_VAR, "1");
    }
    command.spawn().unwrap()
}

/// Waits (up to 20 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The parent run and its one child, read from the file.
async fn family(store: &dyn Store) -> (RunRecord, RunRecord) {
    let runs = store.list_runs(&RunFilter::default()).await.unwrap();
    let parent = runs.iter().find(|run| run.parent.is_none()).cloned().unwrap();
    let children: Vec<&RunRecord> = runs.iter().filter(|run| run.parent.is_some()).collect();
    assert_eq!(children.len(), 1, "one child run: {runs:?}");
    (parent, children[0].clone())
}

/// The agents' messages of a transcript: (agent, text).
fn messages(transcript: &[TranscriptEvent]) -> Vec<(String, String)> {
    transcript
        .iter()
        .filter_map(|event| match &event.entry {
            Entry::AgentMessage { agent, text, .. } => Some((agent.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_killed_mid_turn_goes_on_at_that_turn() {
    let dir = tempfile::tempdir().unwrap();
    an_orchestration_killed_mid_turn_goes_on_at_that_turn_on(dir.path().join("runs.db").to_str().unwrap())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_killed_mid_turn_goes_on_at_that_turn_on_postgres() {
    an_orchestration_killed_mid_turn_goes_on_at_that_turn_on(&roomkit_graph_pgtest::database()).await;
}

async fn an_orchestration_killed_mid_turn_goes_on_at_that_turn_on(db: &str) {
    let script = vec![
        Answer::tool("delegate", json!({"worker": "writer", "task": "Draft a line on tides."})),
        Answer::text("The sea breathes twice a day."),
        // The third turn never comes back: the worker is killed waiting for it.
        Answer::Hang,
        Answer::tool("delegate", json!({"worker": "critic", "task": "Judge: The sea breathes twice a day."})),
        Answer::text("Vivid; keep it."),
        Answer::text("Final: The sea breathes twice a day."),
    ];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;

    let mut first = spawn_worker(db, &provider, true);
    until("the third turn is asked for", || provider.requests().len() == 3).await;
    // The two turns before it are committed in the child's room.
    let reader = runner_on(db, Handlers::builtin()).await;
    let store = reader.store();
    let (parent, child) = family(store).await;
    let link = child.parent.clone().unwrap();
    assert_eq!(
        (link.run_id.as_str(), link.node_id.as_str(), link.runs_node),
        (parent.run_id.as_str(), "debate", true)
    );
    let before = store.transcript(&child.run_id, 0, usize::MAX).await.unwrap();
    assert_eq!(messages(&before), [("writer".to_owned(), "The sea breathes twice a day.".to_owned())]);
    let kept = before.iter().filter(|event| matches!(event.entry, Entry::Progress { .. })).count();
    assert_eq!(kept, 2, "each of the first two turns is kept: {before:#?}");

    // SIGKILL, to this child's pid only.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = spawn_worker(db, &provider, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second worker did not finish within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "the second worker failed: {status}");

    // The provider was asked for each turn once, and for the interrupted one twice, the same way.
    let requests = provider.requests();
    let models: Vec<&str> = requests.iter().map(|request| request.model()).collect();
    assert_eq!(
        models,
        ["lead-model", "writer-model", "lead-model", "lead-model", "critic-model", "lead-model"],
        "who was asked, in order"
    );
    assert_eq!(requests[2].body, requests[3].body, "the interrupted turn is asked again as it was");
    assert_eq!(provider.unanswered(), 0);

    // The child's room holds each agent's turn once, in order, and completed.
    let (parent, child) = family(store).await;
    assert_eq!((parent.status, child.status), (RunStatus::Completed, RunStatus::Completed));
    let room = store.transcript(&child.run_id, 0, usize::MAX).await.unwrap();
    let said = |agent: &str, text: &str| (agent.to_owned(), text.to_owned());
    assert_eq!(
        messages(&room),
        [
            said("writer", "The sea breathes twice a day."),
            said("critic", "Vivid; keep it."),
            said("lead", "Final: The sea breathes twice a day."),
        ]
    );
    let count = |kind: fn(&Entry) -> bool| room.iter().filter(|event| kind(&event.entry)).count();
    assert_eq!(count(|entry| matches!(entry, Entry::NodeStarted { .. })), 1, "{room:#?}");
    assert_eq!(count(|entry| matches!(entry, Entry::Progress { .. })), 5, "{room:#?}");
    assert_eq!(room.last().map(|event| &event.entry), Some(&Entry::RunCompleted));

    // The parent took the orchestration's result as the node's output; its
    // own transcript links the room and holds no agent message.
    let (_, state) = store.load_run(&parent.run_id).await.unwrap();
    let output = &state.context["debate"]["output"];
    assert_eq!(output["text"], "Final: The sea breathes twice a day.");
    assert_eq!(output["messages"].as_array().map(Vec::len), Some(3));
    let thread = store.transcript(&parent.run_id, 0, usize::MAX).await.unwrap();
    assert!(messages(&thread).is_empty(), "{thread:#?}");
    let linked = |entry: &Entry| match entry {
        Entry::ChildStarted { run_id, .. } | Entry::ChildFinished { run_id, .. } => *run_id == child.run_id,
        _ => false,
    };
    assert_eq!(thread.iter().filter(|event| linked(&event.entry)).count(), 2, "{thread:#?}");
    let room = |entry: &Entry| matches!(entry, Entry::ChildStarted { runs_node: true, node_id, .. } if node_id == "debate");
    assert!(
        thread.iter().any(|event| room(&event.entry)),
        "the parent says the node went to a room: {thread:#?}"
    );
    let completed: Vec<&Value> = thread
        .iter()
        .filter_map(|event| match &event.entry {
            Entry::NodeCompleted { node_id, output } if node_id == "debate" => Some(output),
            _ => None,
        })
        .collect();
    assert_eq!(completed, [output]);
}

/// A graph whose `debate` node retries once, 10 ms apart, and whose failure
/// is taken by an error edge to `fallback`.
fn retrying_graph() -> Graph {
    let mut graph = graph();
    let mut nodes: Vec<Node> = graph.nodes().to_vec();
    for node in &mut nodes {
        if node.id == "debate" {
            node.config.insert("retry".into(), json!({"max_attempts": 2, "backoff": "10ms"}));
        }
    }
    nodes.push(Node::new("fallback", "end"));
    let mut retrying = Graph::new("debate", "Debate", Trigger::manual());
    retrying.add_nodes(nodes).unwrap();
    retrying.add_edges(graph.edges.drain(..));
    retrying.add_edge(Edge::new("debate", "fallback").when(Condition::error()));
    retrying
}

/// What a run in this process left: its folder, its store, the parent, its
/// child runs and the provider.
type Ran = (tempfile::TempDir, SqliteStore, RunRecord, Vec<RunRecord>, FakeProvider);

/// Runs the retrying graph in this process against `script`.
async fn run_in_process(script: Vec<Answer>) -> Ran {
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let handlers = register(Handlers::builtin(), Arc::new(agents(&provider.base_url())));
    let runner = Runner::new(SqliteStore::open(&db).unwrap(), handlers);
    runner.save_graph(&retrying_graph()).await.unwrap();
    let run = runner.start("debate", json!({"topic": "tides"})).await.unwrap();
    let parent = runner.wait(&run.run_id).await.unwrap();
    runner.shutdown().await;
    drop(runner);
    let store = SqliteStore::open(&db).unwrap();
    let children = store
        .list_runs(&RunFilter { parent_run_id: Some(run.run_id.clone()), ..RunFilter::default() })
        .await
        .unwrap();
    (dir, store, parent, children, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_retries_a_failed_attempt_afresh_in_the_same_room() {
    let script = vec![
        Answer::tool("delegate", json!({"worker": "writer", "task": "Draft."})),
        // The provider fails: a retryable error, so the room tries again.
        Answer::status(503, None, "overloaded"),
        Answer::tool("delegate", json!({"worker": "writer", "task": "Draft."})),
        Answer::text("Tides turn."),
        Answer::text("Final: Tides turn."),
    ];
    let (_dir, store, parent, children, provider) = run_in_process(script).await;
    assert_eq!(parent.status, RunStatus::Completed, "{parent:?}");
    assert_eq!(children.len(), 1, "both attempts ran in one room: {children:?}");
    assert_eq!(provider.requests().len(), 5, "the second attempt went afresh from its first turn");
    let room = store.transcript(&children[0].run_id, 0, usize::MAX).await.unwrap();
    let attempts: Vec<u32> = room
        .iter()
        .filter_map(|event| match event.entry {
            Entry::NodeStarted { attempt, .. } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2], "{room:#?}");
    assert!(room.iter().any(|event| matches!(&event.entry, Entry::RetryScheduled { attempt: 2, .. })));
    let (_, state) = store.load_run(&parent.run_id).await.unwrap();
    assert_eq!(state.context["debate"]["output"]["text"], "Final: Tides turn.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_fails_for_good_fails_its_node_once_and_the_error_edge_takes_it() {
    let script = vec![
        Answer::tool("delegate", json!({"worker": "writer", "task": "Draft."})),
        // A refusal no retry helps with.
        Answer::status(400, None, "the model does not exist"),
    ];
    let (_dir, store, parent, children, provider) = run_in_process(script).await;
    assert_eq!(provider.requests().len(), 2, "no attempt after a refusal");
    assert_eq!(children.len(), 1, "the parent did not retry the room: {children:?}");
    assert_eq!(children[0].status, RunStatus::Failed);
    assert_eq!(parent.status, RunStatus::Completed);
    let thread = store.transcript(&parent.run_id, 0, usize::MAX).await.unwrap();
    let routed = thread
        .iter()
        .filter(|event| matches!(&event.entry, Entry::ErrorRouted { target, .. } if target == "fallback"));
    assert_eq!(routed.count(), 1, "{thread:#?}");
    let (_, state) = store.load_run(&parent.run_id).await.unwrap();
    let error = state.context["debate"]["error"].to_string();
    assert!(error.contains("the model does not exist"), "{error}");
}
