//! Following a run's transcript live: what was committed, then each new event
//! as it is committed, by this store or another on the database, with no gap
//! and no duplicate at the seam; the stream ends after the run does.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::json;

use super::Database;
use super::fixtures::{completed, final_step, graph, seqs, simple_step, start_run, step, two_entry_step};
use crate::{DEFAULT_ORG, StoreError, TranscriptEvent};

/// How long a follower may wait for its next event before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// Every item of a follow stream, which must end (after its final entry) in time.
async fn collect(stream: impl Stream<Item = Result<TranscriptEvent, StoreError>>) -> Vec<TranscriptEvent> {
    let items = tokio::time::timeout(PATIENCE, stream.collect::<Vec<_>>())
        .await
        .expect("the stream ends after the final entry");
    items.into_iter().map(|item| item.expect("no error while following")).collect()
}

/// Followers joining one after another while steps commit, each crossing its
/// seam between replay and live events at another point, follow exactly
/// what was stored after where they started.
pub async fn following_from_the_middle_while_steps_commit_misses_and_repeats_nothing(
    database: &dyn Database,
) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r").await;
    for version in 1..=4 {
        store.commit_step(simple_step("r", version, &format!("before-{version}"))).await.unwrap();
    }

    // The committer starts first, so commits land while the followers replay.
    let committer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                let node = format!("n{i}");
                store.commit_step(two_entry_step("r", 5 + i, &node, json!(node))).await.unwrap();
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
        assert_eq!(seqs(&followed), seqs(&stored[after..]), "following after {after}");
        assert_eq!(followed, stored[after..]);
    }
}

/// Another process writes the run in turn with this one: its commits reach
/// this store's followers as this store's own do.
pub async fn a_follower_sees_commits_made_through_another_store(database: &dyn Database) {
    let (here, elsewhere) = (database.open().await, database.open().await);
    here.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*here, "g", "r").await;

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

/// A follower in one process, started from the middle, first replays what
/// was committed, then follows what another process commits in quick
/// succession, to the run's end.
pub async fn a_follower_in_one_process_replays_then_follows_another_processs_commits(
    database: &dyn Database,
) {
    let (writer, reader) = (database.open().await, database.open().await);
    writer.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*writer, "g", "r").await;
    writer.commit_step(two_entry_step("r", 1, "s1", json!(1))).await.unwrap();

    // From position 2: replays 3 (committed already), then what comes.
    let mut followed = reader.follow("r", 2);
    let first = tokio::time::timeout(PATIENCE, followed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.seq, 3);
    let committing = tokio::spawn({
        let writer = writer.clone();
        async move {
            for version in 2..=30 {
                let step = two_entry_step("r", version, &format!("s{version}"), json!(version));
                writer.commit_step(step).await.unwrap();
            }
            writer.commit_step(final_step("r", 31)).await.unwrap();
        }
    });
    let mut followed_seqs = vec![first.seq];
    while let Some(event) = tokio::time::timeout(PATIENCE, followed.next()).await.unwrap() {
        followed_seqs.push(event.unwrap().seq);
    }
    committing.await.unwrap();
    assert_eq!(
        followed_seqs,
        (3..=62).collect::<Vec<_>>(),
        "every event once, in order, ending with the run"
    );
}

/// A follower that reads nothing while 1200 events are committed, more than
/// any buffer of live events holds, still gets every one of them.
pub async fn a_follower_that_lags_behind_catches_up(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r").await;
    // Subscribed now, read only after 1200 more events were committed.
    let stream = store.follow("r", 0);
    for version in 1..=12 {
        let entries = (0..100).map(|i| completed(&format!("n{version}-{i}"), json!(i))).collect();
        store.commit_step(step("r", version, "n", json!(version), entries)).await.unwrap();
    }
    store.commit_step(final_step("r", 13)).await.unwrap();

    let followed = collect(stream).await;
    assert_eq!(seqs(&followed), (1..=1202).collect::<Vec<_>>());
}

/// Following an unknown run yields its error and ends; following a finished
/// run gives what is left and ends, nothing when nothing is.
pub async fn following_an_unknown_or_finished_run(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*store, "g", "r").await;
    store.commit_step(simple_step("r", 1, "a")).await.unwrap();
    store.commit_step(final_step("r", 2)).await.unwrap();

    let unknown: Vec<_> = store.follow("nope", 0).collect().await;
    assert!(matches!(unknown.as_slice(), [Err(StoreError::NotFound(what))] if what == "run nope"));
    assert_eq!(seqs(&collect(store.follow("r", 1)).await), [2, 3]);
    assert!(collect(store.follow("r", 3)).await.is_empty(), "nothing more will come after the end");
}
