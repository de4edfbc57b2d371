//! The store's semantics on a real SQLite file: graph versions, runs and their
//! steps, conflicts, transcripts, listing, durability and concurrent commits.

mod common;

use std::time::Duration;

use common::{completed, db_path, final_step, graph, seqs, simple_step, start_run, started_state, step};
use roomkit_graph::EngineState;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Entry, NewRun, RunFilter, RunStatus, StepCommit, StoreError};
use serde_json::{Map, json};

#[tokio::test]
async fn graph_versions_count_up_per_id_and_the_latest_is_the_default() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    let first = graph("review");
    let mut second = graph("review");
    second.name = "Review, second draft".into();

    assert_eq!(store.save_graph(DEFAULT_ORG, &first).await.unwrap().version, 1);
    assert_eq!(store.save_graph(DEFAULT_ORG, &graph("other")).await.unwrap().version, 1);
    assert_eq!(store.save_graph(DEFAULT_ORG, &second).await.unwrap().version, 2);

    let latest = store.graph(DEFAULT_ORG, "review", None).await.unwrap();
    assert_eq!((latest.version, latest.graph), (2, second));
    assert_eq!(store.graph(DEFAULT_ORG, "review", Some(1)).await.unwrap().graph, first);
    assert_eq!(store.graph(DEFAULT_ORG, "other", None).await.unwrap().version, 1);
    assert!(
        matches!(store.graph(DEFAULT_ORG, "review", Some(3)).await, Err(StoreError::NotFound(what)) if what == "graph review version 3")
    );
    assert!(
        matches!(store.graph(DEFAULT_ORG, "nope", None).await, Err(StoreError::NotFound(what)) if what == "graph nope")
    );
}

/// Commits a run through a wait and to its end, and checks after each step
/// that `load_run` gives back exactly the state the engine would hold (key
/// order included: the context is compared as JSON text).
#[tokio::test]
async fn load_run_reproduces_the_engine_state_after_every_step() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("review")).await.unwrap();
    let trigger = json!({"topic": "rust"});
    let record = store
        .create_run(NewRun {
            org: DEFAULT_ORG.into(),
            lease: None,
            key: None,
            first_step: None,
            graph_id: "review".into(),
            graph_version: 1,
            trigger: trigger.clone(),
            state: started_state("r1", &trigger),
        })
        .await
        .unwrap();
    assert_eq!((record.status, record.version, record.last_seq), (RunStatus::Running, 1, 1));

    let (record, events) = store
        .commit_step(StepCommit {
            wake_at: None,
            lease: None,
            run_id: "r1".into(),
            expected_version: 1,
            writes: vec![("draft".into(), json!({"output": "v1"}))],
            current_node_id: Some("review".into()),
            previous_node_id: Some("draft".into()),
            status: RunStatus::Waiting,
            error: None,
            entries: vec![
                Entry::NodeStarted { node_id: "draft".into(), node_type: "agent".into(), attempt: 1 },
                completed("draft", json!("v1")),
                Entry::NodeWaiting { node_id: "review".into(), prompt: Some("OK?".into()), actions: vec![] },
            ],
            steps: 0,
            pending: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(seqs(&events), [2, 3, 4]);
    assert_eq!((record.status, record.version, record.last_seq), (RunStatus::Waiting, 2, 4));
    let mut expected = EngineState {
        context: Map::new(),
        current_node_id: Some("review".into()),
        previous_node_id: Some("draft".into()),
        waiting: true,
        run_id: "r1".into(),
        pending: Vec::new(),
    };
    expected.context.insert("start".into(), json!({"output": {"topic": "rust"}}));
    expected.context.insert("draft".into(), json!({"output": "v1"}));
    let (loaded, state) = store.load_run("r1").await.unwrap();
    assert_eq!(loaded, record);
    assert_eq!(serde_json::to_string(&state).unwrap(), serde_json::to_string(&expected).unwrap());

    // The answer, and a rewrite of an earlier output: it keeps its place.
    store
        .commit_step(StepCommit {
            wake_at: None,
            lease: None,
            run_id: "r1".into(),
            expected_version: 2,
            writes: vec![
                ("review".into(), json!({"output": {"action": "approve"}})),
                ("draft".into(), json!({"output": "v2"})),
            ],
            current_node_id: Some("publish".into()),
            previous_node_id: Some("review".into()),
            status: RunStatus::Running,
            error: None,
            entries: vec![Entry::AnswerReceived {
                node_id: "review".into(),
                by: Some("ada".into()),
                data: json!({"action": "approve"}),
            }],
            steps: 0,
            pending: Vec::new(),
        })
        .await
        .unwrap();
    let (record, _) = store
        .commit_step(StepCommit {
            wake_at: None,
            lease: None,
            run_id: "r1".into(),
            expected_version: 3,
            writes: vec![("publish".into(), json!({"output": {"url": "https://example.test/1"}}))],
            current_node_id: None,
            previous_node_id: Some("publish".into()),
            status: RunStatus::Completed,
            error: None,
            entries: vec![
                completed("publish", json!({"url": "https://example.test/1"})),
                Entry::RunCompleted,
            ],
            steps: 0,
            pending: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!((record.status, record.version, record.last_seq), (RunStatus::Completed, 4, 7));

    let mut expected = EngineState {
        context: Map::new(),
        current_node_id: None,
        previous_node_id: Some("publish".into()),
        waiting: false,
        run_id: "r1".into(),
        pending: Vec::new(),
    };
    expected.context.insert("start".into(), json!({"output": {"topic": "rust"}}));
    expected.context.insert("draft".into(), json!({"output": "v2"}));
    expected.context.insert("review".into(), json!({"output": {"action": "approve"}}));
    expected.context.insert("publish".into(), json!({"output": {"url": "https://example.test/1"}}));
    let (loaded, state) = store.load_run("r1").await.unwrap();
    assert_eq!(loaded, record);
    assert_eq!(store.run("r1").await.unwrap(), record);
    assert_eq!(serde_json::to_string(&state).unwrap(), serde_json::to_string(&expected).unwrap());
}

#[tokio::test]
async fn a_stale_commit_conflicts_and_changes_nothing() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r1").await;
    store.commit_step(simple_step("r1", 1, "a")).await.unwrap();
    let before = store.load_run("r1").await.unwrap();
    let transcript_before = store.transcript("r1", 0, 100).await.unwrap();

    let stale = store.commit_step(simple_step("r1", 1, "b")).await;
    assert!(
        matches!(&stale, Err(StoreError::Conflict { run_id, detail }) if run_id == "r1" && detail.contains("expected version 1, found 2")),
        "{stale:?}"
    );
    assert_eq!(store.load_run("r1").await.unwrap(), before);
    assert_eq!(store.transcript("r1", 0, 100).await.unwrap(), transcript_before);

    assert!(matches!(store.commit_step(simple_step("nope", 1, "a")).await, Err(StoreError::NotFound(_))));
    let duplicate = NewRun {
        org: DEFAULT_ORG.into(),
        lease: None,
        key: None,
        first_step: None,
        graph_id: "g".into(),
        graph_version: 1,
        trigger: json!({}),
        state: started_state("r1", &json!({})),
    };
    assert!(matches!(store.create_run(duplicate.clone()).await, Err(StoreError::Invalid(_))));
    assert_eq!(store.load_run("r1").await.unwrap(), before, "a refused duplicate changes nothing");
    let unknown_version = NewRun { graph_version: 2, state: started_state("r2", &json!({})), ..duplicate };
    assert!(
        matches!(store.create_run(unknown_version).await, Err(StoreError::NotFound(what)) if what == "graph g version 2")
    );
    assert!(matches!(store.run("r2").await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn transcripts_page_by_sequence_number_and_read_back_in_order() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    store
        .commit_step(step(
            "r",
            1,
            "review",
            json!(null),
            vec![
                Entry::NodeWaiting {
                    node_id: "review".into(),
                    prompt: Some("Approve?".into()),
                    actions: vec!["approve".into(), "reject".into()],
                },
                Entry::AnswerReceived {
                    node_id: "review".into(),
                    by: Some("ada".into()),
                    data: json!("approve"),
                },
                completed("review", json!(null)),
                Entry::NotificationSent {
                    node_id: "tell".into(),
                    channel: "slack".into(),
                    text: "done".into(),
                },
            ],
        ))
        .await
        .unwrap();
    store.commit_step(final_step("r", 2)).await.unwrap();

    assert_eq!(seqs(&store.transcript("r", 0, 2).await.unwrap()), [1, 2]);
    assert_eq!(seqs(&store.transcript("r", 2, 2).await.unwrap()), [3, 4]);
    assert_eq!(seqs(&store.transcript("r", 4, 100).await.unwrap()), [5, 6]);
    assert!(store.transcript("r", 6, 100).await.unwrap().is_empty());
    assert!(store.transcript("r", 0, 0).await.unwrap().is_empty());
    assert!(
        matches!(store.transcript("nope", 0, 10).await, Err(StoreError::NotFound(what)) if what == "run nope")
    );

    let all = store.transcript("r", 0, 100).await.unwrap();
    let entries: Vec<Entry> = all.into_iter().map(|event| event.entry).collect();
    assert_eq!(
        entries,
        [
            Entry::RunStarted { graph_id: "g".into(), graph_version: 1, trigger: json!({"topic": "r"}) },
            Entry::NodeWaiting {
                node_id: "review".into(),
                prompt: Some("Approve?".into()),
                actions: vec!["approve".into(), "reject".into()],
            },
            Entry::AnswerReceived {
                node_id: "review".into(),
                by: Some("ada".into()),
                data: json!("approve")
            },
            completed("review", json!(null)),
            Entry::NotificationSent { node_id: "tell".into(), channel: "slack".into(), text: "done".into() },
            Entry::RunCompleted,
        ]
    );
}

#[tokio::test]
async fn list_runs_filters_by_graph_status_and_time_newest_first() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("a")).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("b")).await.unwrap();
    let mut created = Vec::new();
    for (graph_id, run_id) in [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1")] {
        // Distinct creation times, so the order and the windows are exact.
        tokio::time::sleep(Duration::from_millis(3)).await;
        created.push(start_run(&store, graph_id, run_id).await.created_at);
    }
    store.commit_step(final_step("a2", 1)).await.unwrap();

    let ids =
        |runs: Vec<roomkit_graph_store::RunRecord>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    let list = |filter: RunFilter| {
        let store = store.clone();
        async move { ids(store.list_runs(&filter).await.unwrap()) }
    };
    assert_eq!(list(RunFilter::default()).await, ["b1", "a3", "a2", "a1"]);
    assert_eq!(
        list(RunFilter { graph_id: Some("a".into()), ..RunFilter::default() }).await,
        ["a3", "a2", "a1"]
    );
    assert_eq!(list(RunFilter { status: Some(RunStatus::Completed), ..RunFilter::default() }).await, ["a2"]);
    assert_eq!(
        list(RunFilter {
            graph_id: Some("a".into()),
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        })
        .await,
        ["a3", "a1"]
    );
    // From is inclusive, until exclusive.
    let window =
        RunFilter { created_from: Some(created[1]), created_until: Some(created[3]), ..RunFilter::default() };
    assert_eq!(list(window).await, ["a3", "a2"]);
    assert_eq!(list(RunFilter { limit: Some(2), ..RunFilter::default() }).await, ["b1", "a3"]);
    assert!(list(RunFilter { graph_id: Some("c".into()), ..RunFilter::default() }).await.is_empty());
}

#[tokio::test]
async fn committed_steps_survive_closing_and_reopening_the_file() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    store.commit_step(simple_step("r", 1, "a")).await.unwrap();
    store.commit_step(simple_step("r", 2, "b")).await.unwrap();
    let loaded = store.load_run("r").await.unwrap();
    let transcript = store.transcript("r", 0, 100).await.unwrap();
    let stored_graph = store.graph(DEFAULT_ORG, "g", None).await.unwrap();
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.load_run("r").await.unwrap(), loaded);
    assert_eq!(store.transcript("r", 0, 100).await.unwrap(), transcript);
    assert_eq!(store.graph(DEFAULT_ORG, "g", None).await.unwrap(), stored_graph);
    // And the run goes on where it was.
    let (record, events) = store.commit_step(simple_step("r", 3, "c")).await.unwrap();
    assert_eq!((record.version, seqs(&events)), (4, vec![4]));
    assert_eq!(store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap().version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_commits_on_sixty_four_runs_all_land() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let run_ids: Vec<String> = (0..64).map(|i| format!("run-{i:02}")).collect();
    for run_id in &run_ids {
        start_run(&store, "g", run_id).await;
    }

    let tasks: Vec<_> = run_ids
        .iter()
        .map(|run_id| {
            let (store, run_id) = (store.clone(), run_id.clone());
            tokio::spawn(async move {
                store.commit_step(simple_step(&run_id, 1, &format!("node-{run_id}"))).await
            })
        })
        .collect();
    for task in tasks {
        let (record, events) = task.await.unwrap().unwrap();
        assert_eq!((record.version, seqs(&events)), (2, vec![2]));
    }

    for run_id in &run_ids {
        let (record, state) = store.load_run(run_id).await.unwrap();
        assert_eq!(record.version, 2);
        assert_eq!(
            state.context[&format!("node-{run_id}")],
            json!({"output": {"node": format!("node-{run_id}")}})
        );
        assert_eq!(seqs(&store.transcript(run_id, 0, 10).await.unwrap()), [1, 2]);
    }
    assert_eq!(store.list_runs(&RunFilter::default()).await.unwrap().len(), 64);
}

/// Many processes' worth of racing commits on one run: the version guard lets
/// exactly one through, whichever groups they land in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_commits_on_one_run_let_exactly_one_through() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.commit_step(simple_step("r", 1, &format!("n{i}"))).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(won, 1);
    let (record, state) = store.load_run("r").await.unwrap();
    assert_eq!((record.version, record.last_seq, state.context.len()), (2, 2, 2));
}

#[tokio::test]
async fn a_commit_that_writes_outputs_without_an_entry_is_refused_and_changes_nothing() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    let silent = step("r", 1, "draft", json!("v1"), Vec::new());
    let err = store.commit_step(silent).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(detail) if detail.contains("appends no transcript entry")),
        "{err:?}"
    );
    let (record, state) = store.load_run("r").await.unwrap();
    assert_eq!((record.version, record.last_seq), (1, 1));
    assert!(!state.context.contains_key("draft"));
}

/// A run waiting on two children of a parallel node: its step count and the
/// children that still wait are on its record (kept in the file, read back
/// after reopening it) and in the state `load_run` gives the engine; a later
/// commit with no child left clears them.
#[tokio::test]
async fn a_runs_step_count_and_pending_children_are_kept_and_cleared() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    let fan_out = StepCommit {
        status: RunStatus::Waiting,
        current_node_id: Some("reviews".into()),
        steps: 7,
        pending: vec!["legal".into(), "security".into()],
        ..simple_step("r", 1, "draft")
    };
    let (committed, _) = store.commit_step(fan_out).await.unwrap();
    assert_eq!(committed.steps, 7);
    assert_eq!(committed.pending, ["legal", "security"]);
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    let (record, state) = store.load_run("r").await.unwrap();
    assert_eq!(record, committed);
    assert!(state.waiting);
    assert_eq!(state.pending, ["legal", "security"]);
    assert_eq!(store.list_runs(&RunFilter::default()).await.unwrap(), [committed]);
    assert_eq!(pending_column(&path, "r").as_deref(), Some(r#"["legal","security"]"#));

    let joined = StepCommit {
        current_node_id: Some("publish".into()),
        steps: 8,
        pending: Vec::new(),
        ..simple_step("r", 2, "security")
    };
    let (committed, _) = store.commit_step(joined).await.unwrap();
    assert_eq!((committed.steps, committed.pending.len()), (8, 0));
    let (record, state) = store.load_run("r").await.unwrap();
    assert_eq!(record, committed);
    assert_eq!((record.steps, state.waiting, state.pending.len()), (8, false, 0));
    assert_eq!(pending_column(&path, "r"), None, "no child left is stored as null");

    // A commit that leaves the children as they are keeps them.
    store
        .commit_step(StepCommit { steps: 9, pending: vec!["legal".into()], ..simple_step("r", 3, "a") })
        .await
        .unwrap();
    let (record, _) = store
        .commit_step(StepCommit { steps: 10, pending: vec!["legal".into()], ..simple_step("r", 4, "b") })
        .await
        .unwrap();
    assert_eq!(store.run("r").await.unwrap(), record);
    assert_eq!(record.steps, 10);
    assert_eq!(record.pending, ["legal"]);
}

/// A run opened waiting on a parallel node's children, with its first step or
/// without, keeps them and its step count from the start.
#[tokio::test]
async fn a_run_opened_on_pending_children_keeps_them() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let mut state = started_state("parked", &json!({}));
    state.waiting = true;
    state.pending = vec!["legal".into(), "security".into()];
    let parked = NewRun {
        org: DEFAULT_ORG.into(),
        lease: None,
        key: None,
        first_step: None,
        graph_id: "g".into(),
        graph_version: 1,
        trigger: json!({}),
        state,
    };
    let opened = store.create_run(parked.clone()).await.unwrap();
    assert_eq!((opened.status, opened.steps, opened.pending.len()), (RunStatus::Waiting, 0, 2));
    let (record, state) = store.load_run("parked").await.unwrap();
    assert_eq!(record, opened);
    assert_eq!(state.pending, ["legal", "security"]);

    let first_step = StepCommit {
        status: RunStatus::Waiting,
        steps: 1,
        pending: vec!["security".into()],
        ..simple_step("stepped", 1, "legal")
    };
    let stepped =
        NewRun { state: started_state("stepped", &json!({})), first_step: Some(first_step), ..parked };
    let opened = store.create_run(stepped).await.unwrap();
    assert_eq!((opened.version, opened.steps), (2, 1));
    assert_eq!(opened.pending, ["security"]);
    assert_eq!(store.run("stepped").await.unwrap(), opened);
}

/// A step that failed and took its error edge writes its entry with `error`
/// beside `output`: the context gives both back, as written.
#[tokio::test]
async fn an_entry_with_an_error_beside_its_output_reads_back_whole() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    let mut failed = simple_step("r", 1, "charge");
    failed.writes = vec![("charge".into(), json!({"output": null, "error": "card declined"}))];
    store.commit_step(failed).await.unwrap();
    let (_, state) = store.load_run("r").await.unwrap();
    assert_eq!(
        serde_json::to_string(&state.context["charge"]).unwrap(),
        r#"{"output":null,"error":"card declined"}"#
    );
}

/// The `pending` column of run `run_id` as the file holds it.
fn pending_column(path: &std::path::Path, run_id: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(path).expect("the file opens");
    conn.query_row("SELECT pending FROM runs WHERE run_id = ?1", [run_id], |row| row.get(0))
        .expect("the run's row")
}
