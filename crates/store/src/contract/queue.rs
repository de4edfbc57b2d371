//! Concurrency limits: at most the limit of a key's runs are running; the
//! others are queued, and go in the order they were created as places free.

use serde_json::json;

use super::Database;
use super::fixtures::{final_step, graph, new_run, step};
use crate::{ConcurrencySlot, Entry, NewRun, ParentStep, QueueDepth, RunFilter, RunStatus, Store};

/// Run `run_id` of graph `g` holding its place by `key`, limit 2.
fn keyed(run_id: &str, key: &str, at: i64) -> NewRun {
    NewRun {
        at,
        concurrency: Some(ConcurrencySlot { key: key.into(), limit: 2 }),
        ..new_run("acme", "g", run_id)
    }
}

async fn status(store: &dyn Store, run_id: &str) -> RunStatus {
    store.run(run_id).await.unwrap().status
}

/// A run past its key's limit opens queued (held by nobody); a run that
/// stops running lets the oldest queued run of its key go; a run answered
/// while its key is full is queued again; other keys and runs without a
/// limit are not held back.
pub async fn runs_past_their_keys_limit_wait_their_turn_in_order(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    store.save_graph("acme", &graph("g")).await.unwrap();
    for (n, (run_id, key)) in
        [("r1", "a"), ("r2", "a"), ("r3", "a"), ("r4", "a"), ("r5", "b")].into_iter().enumerate()
    {
        let opened = other.create_run(keyed(run_id, key, 1_000 + n as i64)).await.unwrap();
        let expected = if n == 2 || n == 3 { RunStatus::Queued } else { RunStatus::Running };
        assert_eq!(opened.status, expected, "{run_id}");
        if expected == RunStatus::Queued {
            assert_eq!((opened.owner, opened.lease_until), (None, None));
        }
    }
    store.create_run(new_run("acme", "g", "free")).await.unwrap();
    assert_eq!(status(&*store, "free").await, RunStatus::Running, "no limit, no queue");
    let queued = RunFilter { status: Some(RunStatus::Queued), ..RunFilter::default() };
    assert_eq!(store.list_runs(&queued).await.unwrap().len(), 2);
    assert!(
        store.claimable_runs(i64::MAX, 100).await.unwrap().iter().all(|run| run.status == RunStatus::Running)
    );

    // r1 waits for a person: the oldest queued of its key, r3, goes.
    let mut parked = step(
        "r1",
        1,
        "review",
        json!(1),
        vec![Entry::NodeWaiting { node_id: "review".into(), prompt: None, actions: vec![] }],
    );
    parked.status = RunStatus::Waiting;
    store.commit_step(parked).await.unwrap();
    assert_eq!(
        (status(&*store, "r3").await, status(&*store, "r4").await),
        (RunStatus::Running, RunStatus::Queued)
    );

    // Answered while r2 and r3 run: r1 is queued, before r4 (created first).
    let answer = Entry::AnswerReceived { node_id: "review".into(), by: None, data: json!({"action": "ok"}) };
    let answered = step("r1", 2, "review", json!(2), vec![answer]);
    let (record, _) = other.commit_step(answered).await.unwrap();
    assert_eq!((record.status, record.owner), (RunStatus::Queued, None));
    other.commit_step(final_step("r2", 1)).await.unwrap();
    assert_eq!(
        (status(&*store, "r1").await, status(&*store, "r4").await),
        (RunStatus::Running, RunStatus::Queued),
        "in the order they were created"
    );
    let version = store.run("r3").await.unwrap().version;
    store.commit_step(final_step("r3", version)).await.unwrap();
    assert_eq!(status(&*store, "r4").await, RunStatus::Running);
    assert_eq!(status(&*store, "r5").await, RunStatus::Running, "another key is not held back");
}

/// Ends a running run.
async fn end(store: &dyn Store, run_id: &str) {
    let version = store.run(run_id).await.unwrap().version;
    store.commit_step(final_step(run_id, version)).await.unwrap();
}

/// An organization's limit holds its runs of every graph, each still held
/// to its key's limit too, and leaves other organizations alone; raised, it
/// lets go at once as many queued runs as then fit, oldest first; lowered,
/// it stops none; removed, it lets go those their keys allow.
pub async fn an_organizations_limit_holds_all_its_runs_with_their_keys(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    for (org, graph_id) in [("acme", "g"), ("acme", "h"), ("globex", "h")] {
        store.save_graph(org, &graph(graph_id)).await.unwrap();
    }
    store.set_running_limit("acme", Some(2)).await.unwrap();
    assert_eq!(other.running_limit("acme").await.unwrap(), Some(2));
    assert_eq!(other.running_limit("globex").await.unwrap(), None);
    let plain = |org: &str, run_id: &str, at: i64| NewRun { at, ..new_run(org, "h", run_id) };
    let opened = [
        other.create_run(keyed("r1", "a", 1_000)).await.unwrap(),
        other.create_run(plain("acme", "r2", 1_001)).await.unwrap(),
        other.create_run(plain("acme", "r3", 1_002)).await.unwrap(),
        other.create_run(keyed("r4", "a", 1_003)).await.unwrap(),
        other.create_run(keyed("r5", "a", 1_004)).await.unwrap(),
        other.create_run(plain("globex", "x1", 1_005)).await.unwrap(),
    ];
    let statuses: Vec<_> = opened.iter().map(|run| run.status).collect();
    use RunStatus::{Queued, Running};
    assert_eq!(statuses, [Running, Running, Queued, Queued, Queued, Running]);
    let depth = |graph_id: &str, key: &str, queued: u64| QueueDepth {
        org: "acme".into(),
        graph_id: graph_id.into(),
        key: key.into(),
        queued,
    };
    assert_eq!(store.queue_depths().await.unwrap(), [depth("g", "a", 2), depth("h", "", 1)]);

    // r2 ends: the oldest that fits, r3, goes.
    end(&*store, "r2").await;
    assert_eq!((status(&*store, "r3").await, status(&*store, "r4").await), (Running, Queued));

    // Raised to 4: r4 goes; r5 stays, its key full (r1, r4).
    other.set_running_limit("acme", Some(4)).await.unwrap();
    assert_eq!((status(&*store, "r4").await, status(&*store, "r5").await), (Running, Queued));

    // Lowered to 1: nobody stops, and r3 ending lets nobody go.
    store.set_running_limit("acme", Some(1)).await.unwrap();
    end(&*store, "r3").await;
    assert_eq!(status(&*store, "r5").await, Queued);
    assert_eq!((status(&*store, "r1").await, status(&*store, "r4").await), (Running, Running));
    let r6 = other.create_run(plain("acme", "r6", 1_006)).await.unwrap();
    assert_eq!(r6.status, Queued);

    // Removed: r6 goes; r5's key is still full, and r1 ending lets it go.
    store.set_running_limit("acme", None).await.unwrap();
    assert_eq!(store.running_limit("acme").await.unwrap(), None);
    assert_eq!((status(&*store, "r5").await, status(&*store, "r6").await), (Queued, Running));
    end(&*other, "r1").await;
    assert_eq!(status(&*store, "r5").await, Running);
    assert_eq!(store.queue_depths().await.unwrap(), []);
}

/// A room (a child run that runs its parent's node) holds its parent's
/// place while the parent waits on it, and gives it back to the parent, not
/// to a queued run, when it ends; a settling lets nothing go past a limit.
pub async fn a_room_holds_its_parents_place_and_gives_it_back_to_its_parent(database: &dyn Database) {
    use RunStatus::{Queued, Running, Waiting};
    let store = database.open().await;
    store.save_graph("acme", &graph("g")).await.unwrap();
    for (run_id, at) in [("p1", 1_000), ("p2", 1_001), ("q1", 1_002)] {
        store.create_run(keyed(run_id, "a", at)).await.unwrap();
    }
    assert_eq!(status(&*store, "q1").await, Queued);
    assert_eq!(store.settle_queues(2_000).await.unwrap(), 0, "nothing fits");
    assert_eq!(status(&*store, "q1").await, Queued);

    let commit = super::children::starting_step("p1", 1, "c1");
    let room = NewRun {
        at: 1_003,
        parent: Some(ParentStep { node_id: "check".into(), runs_node: true, commit }),
        ..new_run("acme", "g", "c1")
    };
    let room = store.create_run(room).await.unwrap();
    assert_eq!(room.status, Running, "in its parent's place");
    assert_eq!((status(&*store, "p1").await, status(&*store, "q1").await), (Waiting, Queued));

    store.commit_step(final_step("c1", 1)).await.unwrap();
    assert_eq!((status(&*store, "p1").await, status(&*store, "q1").await), (Running, Queued), "back to p1");
    end(&*store, "p1").await;
    assert_eq!(status(&*store, "q1").await, Running);
}
