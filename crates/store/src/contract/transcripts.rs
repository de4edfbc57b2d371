//! Transcripts: a run's entries in order, read a page at a time by sequence
//! number.

use serde_json::json;

use super::Database;
use super::fixtures::{completed, final_step, graph, seqs, start_run, step};
use crate::{DEFAULT_ORG, Entry, StoreError};

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
    let mut expected =
        vec![Entry::RunStarted { graph_id: "g".into(), graph_version: 1, trigger: json!({"topic": "r"}) }];
    expected.extend(entries);
    expected.push(Entry::RunCompleted);
    assert_eq!(all.into_iter().map(|event| event.entry).collect::<Vec<_>>(), expected);
}
