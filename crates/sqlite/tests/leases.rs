//! Leases on runs: who may drive a running run, on a real SQLite file, with two
//! stores on the file as two processes would have.

mod common;

use common::{db_path, final_step, graph, simple_step, start_run, started_state};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Entry, Lease, NewRun, RunStatus, StepCommit, StoreError, now_millis};
use serde_json::json;

fn lease(owner: &str, ms: i64) -> Lease {
    Lease::new(owner, now_millis(), ms)
}

fn with_lease(commit: StepCommit, lease: &Lease) -> StepCommit {
    StepCommit { lease: Some(lease.clone()), ..commit }
}

fn claimable_ids(runs: &[roomkit_graph_store::RunRecord]) -> Vec<&str> {
    runs.iter().map(|run| run.run_id.as_str()).collect()
}

/// Two stores on one new file, as two processes (a and b), with graph `g`
/// saved and run `r1` started, unclaimed.
async fn two_stores_with_a_run() -> (tempfile::TempDir, SqliteStore, SqliteStore) {
    let (dir, path) = db_path();
    let a = SqliteStore::open(&path).expect("a opens the file");
    let b = SqliteStore::open(&path).expect("b opens the file");
    a.save_graph(DEFAULT_ORG, &graph("g")).await.expect("the graph is saved");
    start_run(&a, "g", "r1").await;
    (dir, a, b)
}

#[tokio::test]
async fn a_claimed_run_is_only_claimable_again_by_its_owner_until_its_lease_expires() {
    let (_dir, a, b) = two_stores_with_a_run().await;
    assert_eq!(claimable_ids(&b.claimable_runs(now_millis(), 10).await.unwrap()), ["r1"]);

    let held = a.claim_run("r1", &lease("a", 300)).await.unwrap().expect("an unowned run is claimed");
    assert_eq!((held.owner.as_deref(), held.version), (Some("a"), 1), "a claim leaves the version");
    assert_eq!(b.claim_run("r1", &lease("b", 300)).await.unwrap(), None);
    assert!(b.claimable_runs(now_millis(), 10).await.unwrap().is_empty());
    assert_eq!(b.run("r1").await.unwrap().owner.as_deref(), Some("a"), "a refused claim changes nothing");
    // Its owner claims it again: a renewal, never shorter.
    let again = a.claim_run("r1", &lease("a", 10)).await.unwrap().expect("its own run");
    assert_eq!(again.lease_until, held.lease_until);

    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(claimable_ids(&b.claimable_runs(now_millis(), 10).await.unwrap()), ["r1"]);
    let taken = b.claim_run("r1", &lease("b", 60_000)).await.unwrap().expect("an expired lease");
    assert_eq!(taken.owner.as_deref(), Some("b"));
    assert!(matches!(a.renew_lease("r1", &lease("a", 60_000)).await, Err(StoreError::Conflict { .. })));
    assert!(matches!(b.claim_run("nope", &lease("b", 1)).await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn a_commit_is_refused_while_another_owner_holds_a_live_lease_and_parking_releases() {
    let (_dir, a, b) = two_stores_with_a_run().await;
    let la = lease("a", 60_000);
    a.claim_run("r1", &la).await.unwrap().expect("claimed");

    let refused = b.commit_step(with_lease(simple_step("r1", 1, "x"), &lease("b", 60_000))).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict { detail, .. }) if detail.contains("a holds the run")),
        "{refused:?}"
    );
    assert_eq!(b.run("r1").await.unwrap().version, 1);

    // The owner's commit keeps its lease and renews it when it names a later time.
    let later = Lease { until: la.until + 1_000, ..la.clone() };
    let (run, _) = a.commit_step(with_lease(simple_step("r1", 1, "x"), &later)).await.unwrap();
    assert_eq!((run.owner.as_deref(), run.lease_until, run.version), (Some("a"), Some(later.until), 2));
    assert_eq!(b.run("r1").await.unwrap(), run);
    let renewed = a.renew_lease("r1", &Lease { until: later.until + 5, ..la.clone() }).await.unwrap();
    assert_eq!(renewed.lease_until, Some(later.until + 5));

    // Parking releases the lease: it is nobody's, and waiting runs are not claimable.
    let park = StepCommit { status: RunStatus::Waiting, ..simple_step("r1", 2, "y") };
    let (run, _) = a.commit_step(with_lease(park, &la)).await.unwrap();
    assert_eq!((run.owner, run.lease_until), (None, None));
    assert!(a.claimable_runs(now_millis(), 10).await.unwrap().is_empty());
    assert_eq!(b.claim_run("r1", &lease("b", 60_000)).await.unwrap(), None);
    assert!(matches!(a.renew_lease("r1", &la).await, Err(StoreError::Conflict { .. })));

    // A commit with a lease that sets the run going takes it (an answer, a timer).
    let resume = StepCommit { status: RunStatus::Running, ..simple_step("r1", 3, "z") };
    let lb = lease("b", 60_000);
    let (run, _) = b.commit_step(with_lease(resume, &lb)).await.unwrap();
    assert_eq!(run.owner.as_deref(), Some("b"));
}

#[tokio::test]
async fn a_cancel_without_a_lease_wins_and_releases() {
    let (_dir, a, b) = two_stores_with_a_run().await;
    let la = lease("a", 60_000);
    a.claim_run("r1", &la).await.unwrap().expect("claimed");

    // A commit without a lease that keeps the run going leaves the lease as it is.
    let (run, _) = b.commit_step(simple_step("r1", 1, "x")).await.unwrap();
    assert_eq!(run.lease(), Some(la.clone()));
    let cancel = StepCommit {
        status: RunStatus::Cancelled,
        entries: vec![Entry::RunCancelled { reason: None }],
        ..final_step("r1", 2)
    };
    let (run, _) = b.commit_step(cancel).await.unwrap();
    assert_eq!((run.status, run.owner), (RunStatus::Cancelled, None));
    // The driver's next commit and renewal are refused.
    assert!(matches!(
        a.commit_step(with_lease(simple_step("r1", 2, "y"), &la)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(a.renew_lease("r1", &la).await, Err(StoreError::Conflict { .. })));
}

#[tokio::test]
async fn a_release_lets_another_owner_take_the_run_at_once() {
    let (_dir, a, b) = two_stores_with_a_run().await;
    start_run(&a, "g", "r2").await;
    a.claim_run("r1", &lease("a", 60_000)).await.unwrap().expect("claimed");
    assert_eq!(claimable_ids(&b.claimable_runs(now_millis(), 10).await.unwrap()), ["r2"]);

    assert!(!b.release_run("r1", "b").await.unwrap(), "b holds nothing");
    assert!(a.release_run("r1", "a").await.unwrap());
    assert!(!a.release_run("r1", "a").await.unwrap(), "released already");
    let claimable = b.claimable_runs(now_millis(), 10).await.unwrap();
    let mut ids = claimable_ids(&claimable);
    ids.sort_unstable();
    assert_eq!(ids, ["r1", "r2"]);
    assert_eq!(b.claimable_runs(now_millis(), 1).await.unwrap().len(), 1);
    assert!(b.claim_run("r1", &lease("b", 60_000)).await.unwrap().is_some());
}

#[tokio::test]
async fn a_run_created_with_a_lease_is_held_by_its_creator_while_it_runs() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let new_run = |run_id: &str, waiting: bool| NewRun {
        org: DEFAULT_ORG.into(),
        lease: Some(lease("a", 60_000)),
        key: None,
        first_step: None,
        graph_id: "g".into(),
        graph_version: 1,
        trigger: json!({}),
        state: roomkit_graph::EngineState { waiting, ..started_state(run_id, &json!({})) },
    };
    let running = store.create_run(new_run("r1", false)).await.unwrap();
    assert_eq!(running.owner.as_deref(), Some("a"));
    assert_eq!(store.run("r1").await.unwrap(), running);
    assert!(store.claimable_runs(now_millis(), 10).await.unwrap().is_empty());
    let waiting = store.create_run(new_run("r2", true)).await.unwrap();
    assert_eq!((waiting.status, waiting.owner), (RunStatus::Waiting, None));
}
