//! Runs and their steps: a step committed whole, guarded by the run's version,
//! read back as the engine state it leaves, by every process and after the
//! store is opened again.

use roomkit_graph::EngineState;
use serde_json::{Map, json};

use super::Database;
use super::fixtures::{
    completed, graph, new_run, seqs, simple_step, start_run, started_state, step, two_entry_step,
};
use crate::{DEFAULT_ORG, Entry, NewRun, RunFilter, RunStatus, StepCommit, StoreError};

/// Commits a run through a wait and to its end, and checks after each step
/// that `load_run` gives back exactly the state the engine would hold (key
/// order included: the context is compared as JSON text).
pub async fn load_run_reproduces_the_engine_state_after_every_step(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("review")).await.unwrap();
    let trigger = json!({"topic": "rust"});
    let record = store
        .create_run(NewRun {
            trigger: trigger.clone(),
            state: started_state("r1", &trigger),
            ..new_run(DEFAULT_ORG, "review", "r1")
        })
        .await
        .unwrap();
    assert_eq!((record.status, record.version, record.last_seq), (RunStatus::Running, 1, 1));

    let (record, events) = store
        .commit_step(StepCommit {
            writes: vec![("draft".into(), json!({"output": "v1"}))],
            current_node_id: Some("review".into()),
            previous_node_id: Some("draft".into()),
            status: RunStatus::Waiting,
            entries: vec![
                Entry::NodeStarted { node_id: "draft".into(), node_type: "agent".into(), attempt: 1 },
                completed("draft", json!("v1")),
                Entry::NodeWaiting { node_id: "review".into(), prompt: Some("OK?".into()), actions: vec![] },
            ],
            ..step("r1", 1, "draft", json!("v1"), Vec::new())
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
        children: Default::default(),
    };
    expected.context.insert("start".into(), json!({"output": {"topic": "rust"}}));
    expected.context.insert("draft".into(), json!({"output": "v1"}));
    let (loaded, state) = store.load_run("r1").await.unwrap();
    assert_eq!(loaded, record);
    assert_eq!(serde_json::to_string(&state).unwrap(), serde_json::to_string(&expected).unwrap());

    // The answer, and a rewrite of an earlier output: it keeps its place.
    store
        .commit_step(StepCommit {
            writes: vec![
                ("review".into(), json!({"output": {"action": "approve"}})),
                ("draft".into(), json!({"output": "v2"})),
            ],
            current_node_id: Some("publish".into()),
            previous_node_id: Some("review".into()),
            entries: vec![Entry::AnswerReceived {
                node_id: "review".into(),
                by: Some("ada".into()),
                data: json!({"action": "approve"}),
            }],
            ..step("r1", 2, "review", json!(null), Vec::new())
        })
        .await
        .unwrap();
    let (record, _) = store
        .commit_step(StepCommit {
            writes: vec![("publish".into(), json!({"output": {"url": "https://example.test/1"}}))],
            current_node_id: None,
            previous_node_id: Some("publish".into()),
            status: RunStatus::Completed,
            entries: vec![
                completed("publish", json!({"url": "https://example.test/1"})),
                Entry::RunCompleted,
            ],
            ..step("r1", 3, "publish", json!(null), Vec::new())
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
        children: Default::default(),
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

/// Steps committed by two processes: the context keeps each entry where it
/// was first written (an overwritten one keeps its place) and its JSON as
/// written, key order included.
pub async fn a_runs_context_keeps_the_order_its_entries_were_first_written_in(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    store.save_graph(DEFAULT_ORG, &graph("review")).await.unwrap();
    let run = store.create_run(new_run(DEFAULT_ORG, "review", "r1")).await.unwrap();
    assert_eq!((run.status, run.version, run.last_seq, run.graph_version), (RunStatus::Running, 1, 1, 1));
    store.commit_step(two_entry_step("r1", 1, "zeta", json!(1))).await.unwrap();
    store.commit_step(two_entry_step("r1", 2, "alpha", json!({"b": 2, "a": 1}))).await.unwrap();
    let (record, events) = other.commit_step(two_entry_step("r1", 3, "zeta", json!(3))).await.unwrap();
    assert_eq!((record.version, record.last_seq), (4, 7));
    assert_eq!(seqs(&events), [6, 7]);

    let (record, state) = other.load_run("r1").await.unwrap();
    assert_eq!(record.current_node_id.as_deref(), Some("zeta"));
    assert_eq!(state.context.keys().collect::<Vec<_>>(), ["start", "zeta", "alpha"]);
    assert_eq!(state.context["zeta"], json!({"output": 3}), "the last value, at the first place");
    assert_eq!(
        serde_json::to_string(&state.context["alpha"]).unwrap(),
        r#"{"output":{"b":2,"a":1}}"#,
        "JSON kept as written"
    );
    assert_eq!(seqs(&store.transcript("r1", 2, 3).await.unwrap()), [3, 4, 5]);
}

/// A commit from a version the run has left is refused and changes nothing;
/// so are a commit to an unknown run, a run id that exists and a graph
/// version that does not.
pub async fn a_stale_commit_conflicts_and_changes_nothing(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r1").await;
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
        trigger: json!({}),
        state: started_state("r1", &json!({})),
        ..new_run(DEFAULT_ORG, "g", "r1")
    };
    assert!(matches!(store.create_run(duplicate.clone()).await, Err(StoreError::Invalid(_))));
    assert_eq!(store.load_run("r1").await.unwrap(), before, "a refused duplicate changes nothing");
    let unknown_version = NewRun { graph_version: 2, state: started_state("r2", &json!({})), ..duplicate };
    assert!(
        matches!(store.create_run(unknown_version).await, Err(StoreError::NotFound(what)) if what == "graph g version 2")
    );
    assert!(matches!(store.run("r2").await, Err(StoreError::NotFound(_))));
}

/// A step that writes outputs must append a transcript entry to keep them on:
/// without one it is refused, and nothing of it is kept.
pub async fn a_commit_that_writes_outputs_without_an_entry_is_refused_and_changes_nothing(
    database: &dyn Database,
) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r").await;
    let silent = step("r", 1, "draft", json!("v1"), Vec::new());
    let err = store.commit_step(silent).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(detail) if detail.contains("appends no transcript entry")),
        "{err:?}"
    );
    let (record, state) = store.load_run("r").await.unwrap();
    assert_eq!((record.version, record.last_seq), (1, 1));
    assert!(!state.context.contains_key("draft"));

    // The same after a step went through.
    store.commit_step(two_entry_step("r", 1, "a", json!(1))).await.unwrap();
    let refused =
        store.commit_step(StepCommit { entries: Vec::new(), ..two_entry_step("r", 2, "c", json!(1)) }).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
    assert_eq!(store.run("r").await.unwrap().version, 2, "a refused commit changes nothing");
}

/// Graphs, runs, steps and transcripts are all there once the store is
/// closed and opened again, and the run goes on where it was.
pub async fn committed_steps_survive_closing_and_reopening_the_store(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r").await;
    store.commit_step(simple_step("r", 1, "a")).await.unwrap();
    store.commit_step(simple_step("r", 2, "b")).await.unwrap();
    let loaded = store.load_run("r").await.unwrap();
    let transcript = store.transcript("r", 0, 100).await.unwrap();
    let stored_graph = store.graph(DEFAULT_ORG, "g", None).await.unwrap();
    drop(store);

    let store = database.open().await;
    assert_eq!(store.load_run("r").await.unwrap(), loaded);
    assert_eq!(store.transcript("r", 0, 100).await.unwrap(), transcript);
    assert_eq!(store.graph(DEFAULT_ORG, "g", None).await.unwrap(), stored_graph);
    let (record, events) = store.commit_step(simple_step("r", 3, "c")).await.unwrap();
    assert_eq!((record.version, seqs(&events)), (4, vec![4]));
    assert_eq!(store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap().version, 2);
}

/// Commits on many runs at once all land, each whole.
pub async fn sixty_four_concurrent_commits_on_sixty_four_runs_all_land(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let run_ids: Vec<String> = (0..64).map(|i| format!("run-{i:02}")).collect();
    for run_id in &run_ids {
        start_run(&*store, "g", run_id).await;
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
/// exactly one through, whichever handle or group they land in; two processes
/// racing for the same step of a run, twenty times: one commit each time, the
/// other a conflict, the transcript with no gap and nothing twice.
pub async fn racing_commits_on_one_run_let_exactly_one_through(database: &dyn Database) {
    let (first, second) = (database.open().await, database.open().await);
    first.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*first, "g", "r").await;

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = if i % 2 == 0 { first.clone() } else { second.clone() };
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
    let (record, state) = first.load_run("r").await.unwrap();
    assert_eq!((record.version, record.last_seq, state.context.len()), (2, 2, 2));

    for n in 0..20 {
        let run_id = format!("r{n}");
        start_run(&*first, "g", &run_id).await;
        let (a, b) = tokio::join!(
            first.commit_step(two_entry_step(&run_id, 1, "a", json!("first"))),
            second.commit_step(two_entry_step(&run_id, 1, "b", json!("second")))
        );
        let won = [&a, &b].iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(won, 1, "exactly one commit of version 1: {a:?} {b:?}");
        let lost = if a.is_ok() { b } else { a };
        assert!(matches!(lost, Err(StoreError::Conflict { .. })), "{lost:?}");
        let events = second.transcript(&run_id, 0, 100).await.unwrap();
        assert_eq!(seqs(&events), [1, 2, 3], "no gap, nothing twice");
    }
}

/// A run waiting on two children of a parallel node: its step count and the
/// children that still wait are on its record (for another process too, and
/// after the store is opened again) and in the state `load_run` gives the
/// engine; a later commit with no child left clears them.
pub async fn a_runs_step_count_and_pending_children_are_kept_and_cleared(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r").await;
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
    let other = database.open().await;
    let (record, state) = other.load_run("r").await.unwrap();
    assert_eq!(record, committed);
    assert!(state.waiting);
    assert_eq!(state.pending, ["legal", "security"]);
    drop((store, other));

    let store = database.open().await;
    let (record, state) = store.load_run("r").await.unwrap();
    assert_eq!(record, committed);
    assert!(state.waiting);
    assert_eq!(state.pending, ["legal", "security"]);
    assert_eq!(store.list_runs(&RunFilter::default()).await.unwrap(), [committed]);

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
pub async fn a_run_opened_on_pending_children_keeps_them(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let mut state = started_state("parked", &json!({}));
    state.waiting = true;
    state.pending = vec!["legal".into(), "security".into()];
    let parked = NewRun { trigger: json!({}), state, ..new_run(DEFAULT_ORG, "g", "parked") };
    let opened = store.create_run(parked.clone()).await.unwrap();
    assert_eq!((opened.status, opened.steps, opened.pending.len()), (RunStatus::Waiting, 0, 2));
    let (record, state) = other.load_run("parked").await.unwrap();
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
    assert_eq!(other.run("stepped").await.unwrap(), opened);
}

/// A step that failed and took its error edge writes its entry with `error`
/// beside `output`: the context gives both back, as written.
pub async fn an_entry_with_an_error_beside_its_output_reads_back_whole(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r").await;
    let mut failed = simple_step("r", 1, "charge");
    failed.writes = vec![("charge".into(), json!({"output": null, "error": "card declined"}))];
    store.commit_step(failed).await.unwrap();
    let (_, state) = database.open().await.load_run("r").await.unwrap();
    assert_eq!(
        serde_json::to_string(&state.context["charge"]).unwrap(),
        r#"{"output":null,"error":"card declined"}"#
    );
}
