//! Following a run's transcript live: replay then new events, with no gap and
//! no duplicate at the seam, from this store's commits and another's.

mod common;

use std::time::Duration;

use common::{completed, db_path, final_step, graph, seqs, simple_step, start_run, step};
use futures_util::{Stream, StreamExt};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Entry, StoreError, TranscriptEvent};
use serde_json::json;

/// Every item of a follow stream, which must end (after its final entry) in time.
async fn collect(stream: impl Stream<Item = Result<TranscriptEvent, StoreError>>) -> Vec<TranscriptEvent> {
    let items = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .expect("the stream ends after the final entry");
    items.into_iter().map(|item| item.expect("no error while following")).collect()
}

/// A step with two entries (started, completed) on `node`.
fn two_entry_step(run_id: &str, expected_version: u64, node: &str) -> roomkit_graph_store::StepCommit {
    let entries = vec![
        Entry::NodeStarted { node_id: node.into(), node_type: "function".into(), attempt: 1 },
        completed(node, json!(node)),
    ];
    step(run_id, expected_version, node, json!(node), entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn following_from_the_middle_while_steps_commit_misses_and_repeats_nothing() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    for version in 1..=4 {
        store.commit_step(simple_step("r", version, &format!("before-{version}"))).await.unwrap();
    }

    // The committer starts first, so commits land while the followers replay;
    // followers join one after another, each crossing its seam at another point.
    let committer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                store.commit_step(two_entry_step("r", 5 + i, &format!("n{i}"))).await.unwrap();
                tokio::task::yield_now().await;
            }
            store.commit_step(final_step("r", 35)).await.unwrap();
        })
    };
    let mut followers = Vec::new();
    for after in [3_usize, 0, 5, 9, 14, 20, 27] {
        followers.push((after, tokio::spawn(collect(store.follow("r", after as u64)))));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    committer.await.unwrap();

    let last = 1 + 4 + 30 * 2 + 1;
    let stored = store.transcript("r", 0, 1000).await.unwrap();
    assert_eq!(seqs(&stored), (1..=last).collect::<Vec<_>>());
    assert!(stored.last().unwrap().entry.is_final());
    for (after, follower) in followers {
        let followed = follower.await.unwrap();
        // What was followed is exactly what was stored after `after`.
        assert_eq!(seqs(&followed), seqs(&stored[after..]), "following after {after}");
        assert_eq!(followed, stored[after..]);
    }
}

/// Another process on the same file: its commits reach this store's followers
/// through the database poll, since this store's broadcast never sees them,
/// while this store's own commits come through the broadcast. Both write the
/// run in turn, so the broadcast runs ahead of what the follower has seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sees_commits_made_through_another_store_on_the_file() {
    let (_dir, path) = db_path();
    let here = SqliteStore::open(&path).unwrap();
    let elsewhere = SqliteStore::open(&path).unwrap();
    here.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&here, "g", "r").await;

    let followed = tokio::spawn(collect(here.follow("r", 0)));
    for version in 1..=6 {
        let writer = if version % 2 == 1 { &elsewhere } else { &here };
        writer.commit_step(simple_step("r", version, &format!("n{version}"))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    elsewhere.commit_step(final_step("r", 7)).await.unwrap();

    let followed = followed.await.unwrap();
    assert_eq!(seqs(&followed), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(followed, elsewhere.transcript("r", 0, 100).await.unwrap());
}

/// A follower that falls more than the broadcast holds behind catches up from
/// the database.
#[tokio::test]
async fn a_follower_that_lags_behind_the_broadcast_catches_up_from_the_database() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    // Subscribed now, read only after 1200 more events were broadcast.
    let stream = store.follow("r", 0);
    for version in 1..=12 {
        let entries = (0..100).map(|i| completed(&format!("n{version}-{i}"), json!(i))).collect();
        store.commit_step(step("r", version, "n", json!(version), entries)).await.unwrap();
    }
    store.commit_step(final_step("r", 13)).await.unwrap();

    let followed = collect(stream).await;
    assert_eq!(seqs(&followed), (1..=1202).collect::<Vec<_>>());
}

#[tokio::test]
async fn following_an_unknown_or_finished_run() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    store.commit_step(simple_step("r", 1, "a")).await.unwrap();
    store.commit_step(final_step("r", 2)).await.unwrap();

    let unknown: Vec<_> = store.follow("nope", 0).collect().await;
    assert!(matches!(unknown.as_slice(), [Err(StoreError::NotFound(what))] if what == "run nope"));
    assert_eq!(seqs(&collect(store.follow("r", 1)).await), [2, 3]);
    assert!(collect(store.follow("r", 3)).await.is_empty(), "nothing more will come after the end");
}
