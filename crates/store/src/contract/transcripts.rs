//! Transcripts: a run's entries in order, read a page at a time by sequence
//! number, and the run as it stood at any of them.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Database;
use super::fixtures::{completed, final_step, graph, new_run, seqs, start_run, step, two_entry_step};
use crate::{DEFAULT_ORG, Entry, Origin, RunStatus, StepCommit, StoreError};

/// A transcript reads a page at a time after a sequence number, its entries
/// exactly as committed; an unknown run's is not found.
pub async fn transcripts_page_by_sequence_number_and_keep_their_entries(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r").await;
    let entries = vec![
        Entry::NodeWaiting {
            node_id: "review".into(),
            prompt: Some("Approve?".into()),
            actions: vec!["approve".into(), "reject".into()],
        },
        Entry::AnswerReceived { node_id: "review".into(), by: Some("ada".into()), data: json!("approve") },
        completed("review", json!(null)),
        Entry::NotificationSent { node_id: "tell".into(), channel: "slack".into(), text: "done".into() },
    ];
    store.commit_step(step("r", 1, "review", json!(null), entries.clone())).await.unwrap();
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
    assert!(all.iter().all(|event| event.run_id == "r"));
    let mut expected = vec![Entry::RunStarted {
        graph_id: "g".into(),
        graph_version: 1,
        trigger: json!({"topic": "r"}),
        forked_from: None,
    }];
    expected.extend(entries);
    expected.push(Entry::RunCompleted);
    assert_eq!(all.into_iter().map(|event| event.entry).collect::<Vec<_>>(), expected);
}

/// Each entry reads back as the run stood once the commit that appended it
/// applied: its status, position and the outputs written up to then; an
/// entry the run does not have is refused, and a fork records its origin.
pub async fn a_run_reads_back_as_it_stood_at_any_entry(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r").await;
    // #2-3: draft ran; the run goes on to review.
    let drafted = StepCommit {
        current_node_id: Some("review".into()),
        previous_node_id: Some("draft".into()),
        steps: 1,
        ..two_entry_step("r", 1, "draft", json!("v1"))
    };
    store.commit_step(drafted).await.unwrap();
    // #4-5: review waits for an answer.
    let waits = StepCommit {
        writes: Vec::new(),
        current_node_id: Some("review".into()),
        previous_node_id: Some("draft".into()),
        status: RunStatus::Waiting,
        steps: 2,
        entries: vec![
            Entry::NodeStarted { node_id: "review".into(), node_type: "human".into(), attempt: 1 },
            Entry::NodeWaiting { node_id: "review".into(), prompt: None, actions: vec![] },
        ],
        ..step("r", 2, "review", json!(null), Vec::new())
    };
    store.commit_step(waits).await.unwrap();
    // #6: the answer; the run goes on to publish.
    let answered = StepCommit {
        current_node_id: Some("publish".into()),
        previous_node_id: Some("review".into()),
        steps: 2,
        entries: vec![Entry::AnswerReceived { node_id: "review".into(), by: None, data: json!("yes") }],
        ..step("r", 3, "review", json!("yes"), Vec::new())
    };
    store.commit_step(answered).await.unwrap();

    let at = |seq| {
        let store = Arc::clone(&store);
        async move { store.run_at("r", seq).await.unwrap() }
    };
    let first = at(1).await;
    assert_eq!((first.seq, first.commit_seq, first.position.status), (1, 1, RunStatus::Running));
    assert_eq!(first.position.current_node_id.as_deref(), Some("draft"));
    assert_eq!(Value::Object(first.context), json!({"start": {"output": {"topic": "r"}}}));
    for seq in [2, 3] {
        let drafted = at(seq).await;
        assert_eq!((drafted.commit_seq, drafted.position.steps), (3, 1));
        assert_eq!(drafted.position.current_node_id.as_deref(), Some("review"));
        assert_eq!(drafted.context["draft"], json!({"output": "v1"}));
    }
    let waiting = at(4).await;
    assert_eq!((waiting.commit_seq, waiting.position.status), (5, RunStatus::Waiting));
    assert!(waiting.engine_state("f").waiting);
    assert!(!waiting.context.contains_key("review"));
    let last = at(6).await;
    assert_eq!(last.position.current_node_id.as_deref(), Some("publish"));
    assert_eq!(last.context["review"], json!({"output": "yes"}));
    // The same context as the run's, entries in the same order.
    let loaded = store.load_run("r").await.unwrap().1.context;
    assert_eq!(serde_json::to_string(&last.context).unwrap(), serde_json::to_string(&loaded).unwrap());

    for seq in [0, 7] {
        let refused = store.run_at("r", seq).await.unwrap_err();
        assert!(matches!(&refused, StoreError::Invalid(why) if why.contains("has no entry")), "{refused:?}");
    }
    assert!(matches!(store.run_at("nope", 1).await, Err(StoreError::NotFound(_))));

    // A fork opens on the state it goes on from and names its origin.
    let origin = Origin { run_id: "r".into(), seq: 4 };
    let mut fork = new_run(DEFAULT_ORG, "g", "f");
    fork.state = waiting.engine_state("f");
    fork.origin = Some(origin.clone());
    let opened = store.create_run(fork).await.unwrap();
    assert_eq!((opened.status, opened.current_node_id.as_deref()), (RunStatus::Waiting, Some("review")));
    let started = &store.transcript("f", 0, 1).await.unwrap()[0].entry;
    assert!(
        matches!(started, Entry::RunStarted { forked_from: Some(from), .. } if *from == origin),
        "{started:?}"
    );
    assert_eq!(store.run_at("f", 1).await.unwrap().context, waiting.context);
}
