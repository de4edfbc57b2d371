//! Leases: a running run is driven by one process at a time, the holder of
//! its lease, until it parks, ends, lets it go or its lease expires. Two
//! stores on one database stand for two processes.

use std::sync::Arc;

use serde_json::json;

use super::Database;
use super::fixtures::{final_step, graph, new_run, run_ids, simple_step, start_run, started_state};
use crate::{
    DEFAULT_ORG, Entry, Lease, Millis, NewRun, RunStatus, StepCommit, Store, StoreError, now_millis,
};

/// Ten minutes, in milliseconds: how far from the wall clock the tests of
/// the caller's time judge claims and commits.
const TEN_MINUTES: Millis = 10 * 60_000;

fn lease(owner: &str, ms: i64) -> Lease {
    Lease::new(owner, now_millis(), ms)
}

fn with_lease(commit: StepCommit, lease: &Lease) -> StepCommit {
    StepCommit { lease: Some(lease.clone()), ..commit }
}

/// Two stores on the database, as two processes (a and b), with graph `g`
/// saved and run `r1` started, unclaimed.
async fn two_stores_with_a_run(database: &dyn Database) -> (Arc<dyn Store>, Arc<dyn Store>) {
    let (a, b) = (database.open().await, database.open().await);
    a.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&*a, "g", "r1").await;
    (a, b)
}

/// A claimed run is refused to others (and not listed as claimable) while
/// its lease lives; its owner's claim renews it, never shorter. Once the lease
/// expires, the run is listed after the runs nobody holds, another process
/// takes it, and the first has lost it.
pub async fn a_claimed_run_is_only_claimable_again_by_its_owner_until_its_lease_expires(
    database: &dyn Database,
) {
    let (a, b) = two_stores_with_a_run(database).await;
    let now = now_millis();
    assert_eq!(run_ids(&b.claimable_runs(now, 10).await.unwrap()), ["r1"]);

    let held = a
        .claim_run("r1", &Lease::new("a", now, 1_000), now)
        .await
        .unwrap()
        .expect("an unowned run is claimed");
    assert_eq!((held.owner.as_deref(), held.version), (Some("a"), 1), "a claim leaves the version");
    start_run(&*a, "g", "idle").await;
    assert_eq!(b.claim_run("r1", &Lease::new("b", now, 1_000), now).await.unwrap(), None);
    assert_eq!(run_ids(&b.claimable_runs(now, 10).await.unwrap()), ["idle"]);
    assert_eq!(b.run("r1").await.unwrap().owner.as_deref(), Some("a"), "a refused claim changes nothing");
    // Its owner claims it again: a renewal, never shorter.
    let again = a.claim_run("r1", &Lease::new("a", now, 10), now).await.unwrap().expect("its own run");
    assert_eq!(again.lease_until, held.lease_until);

    // The lease expires at its end.
    let later = now + 1_000;
    assert_eq!(
        run_ids(&b.claimable_runs(later, 10).await.unwrap()),
        ["idle", "r1"],
        "runs nobody holds first, then expired leases"
    );
    let taken =
        b.claim_run("r1", &Lease::new("b", later, 60_000), later).await.unwrap().expect("an expired lease");
    assert_eq!(taken.owner.as_deref(), Some("b"));
    assert!(matches!(
        a.renew_lease("r1", &Lease::new("a", later, 60_000)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(!a.release_run("r1", "a").await.unwrap(), "not a's any more");
    let renewed = b.renew_lease("r1", &Lease::new("b", later + 10, 60_000)).await.unwrap();
    assert_eq!(renewed.lease_until, Some(later + 60_010));
    assert!(matches!(b.claim_run("nope", &lease("b", 1), now_millis()).await, Err(StoreError::NotFound(_))));
}

/// A claim is judged at the time its caller passes, never at the store's own
/// clock: ten minutes on, a lease the wall clock still calls live has
/// expired and the run is taken; a moment before its expiry it is refused.
pub async fn a_claim_is_judged_at_the_callers_time(database: &dyn Database) {
    let (a, b) = two_stores_with_a_run(database).await;
    let now = now_millis();
    let held = Lease::new("a", now, 60_000);
    a.claim_run("r1", &held, now).await.unwrap().expect("claimed");

    let before_expiry = held.until - 1;
    assert_eq!(
        b.claim_run("r1", &Lease::new("b", before_expiry, 60_000), before_expiry).await.unwrap(),
        None
    );
    assert!(b.claimable_runs(before_expiry, 10).await.unwrap().is_empty(), "still held then");
    assert_eq!(b.run("r1").await.unwrap().lease(), Some(held.clone()), "a refused claim changes nothing");

    let later = now + TEN_MINUTES;
    assert_eq!(run_ids(&b.claimable_runs(later, 10).await.unwrap()), ["r1"], "expired by then");
    let taken = b
        .claim_run("r1", &Lease::new("b", later, 60_000), later)
        .await
        .unwrap()
        .expect("expired at the time claimed at, though live by the wall clock");
    assert_eq!(taken.lease(), Some(Lease::new("b", later, 60_000)));
    assert_eq!(a.run("r1").await.unwrap(), taken);
}

/// A commit with a lease is judged at its own time ([`StepCommit::at`]), never
/// at the store's clock: against another owner's lease, a commit a moment
/// before the lease expires is refused and one at its expiry is accepted and
/// takes the run, though the wall clock still calls the lease live.
pub async fn a_commit_is_judged_at_its_own_time(database: &dyn Database) {
    let (a, b) = two_stores_with_a_run(database).await;
    let now = now_millis();
    let held = Lease::new("a", now, 60_000);
    a.claim_run("r1", &held, now).await.unwrap().expect("claimed");

    let at = |at: Millis| StepCommit { at, ..simple_step("r1", 1, "x") };
    let lb = Lease::new("b", held.until, 60_000);
    let refused = b.commit_step(with_lease(at(held.until - 1), &lb)).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict { detail, .. }) if detail.contains("a holds the run")),
        "{refused:?}"
    );
    assert_eq!(b.run("r1").await.unwrap().version, 1, "a refused commit changes nothing");

    let (run, events) = b.commit_step(with_lease(at(held.until), &lb)).await.unwrap();
    assert_eq!((run.version, run.owner.as_deref(), run.lease_until), (2, Some("b"), Some(lb.until)));
    assert_eq!(run.updated_at, held.until, "the run is updated at the commit's time");
    assert!(events.iter().all(|event| event.at == held.until), "{events:?}");
    assert!(matches!(
        a.commit_step(with_lease(StepCommit { at: now + 1, ..simple_step("r1", 2, "y") }, &held)).await,
        Err(StoreError::Conflict { .. })
    ));
}

/// A commit with a lease is refused while another owner holds a live one;
/// the owner's commits keep and renew its lease; parking releases it, and a
/// commit with a lease that sets the run going again takes it.
pub async fn a_commit_is_refused_while_another_owner_holds_a_live_lease_and_parking_releases(
    database: &dyn Database,
) {
    let (a, b) = two_stores_with_a_run(database).await;
    let la = lease("a", 60_000);
    a.claim_run("r1", &la, now_millis()).await.unwrap().expect("claimed");

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
    assert_eq!(b.claim_run("r1", &lease("b", 60_000), now_millis()).await.unwrap(), None);
    assert!(matches!(a.renew_lease("r1", &la).await, Err(StoreError::Conflict { .. })));

    // A commit with a lease that sets the run going takes it (an answer, a timer).
    let resume = StepCommit { status: RunStatus::Running, ..simple_step("r1", 3, "z") };
    let lb = lease("b", 60_000);
    let (run, _) = b.commit_step(with_lease(resume, &lb)).await.unwrap();
    assert_eq!(run.owner.as_deref(), Some("b"));
}

/// A commit without a lease (a cancel) checks nobody's: one that keeps the
/// run going leaves the lease as it is, one that ends it releases it, and
/// the driver has lost the run.
pub async fn a_cancel_without_a_lease_wins_and_releases(database: &dyn Database) {
    let (a, b) = two_stores_with_a_run(database).await;
    let la = lease("a", 60_000);
    a.claim_run("r1", &la, now_millis()).await.unwrap().expect("claimed");

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

/// Releasing a lease lets another process take the run at once; only its
/// owner releases it.
pub async fn a_release_lets_another_owner_take_the_run_at_once(database: &dyn Database) {
    let (a, b) = two_stores_with_a_run(database).await;
    start_run(&*a, "g", "r2").await;
    a.claim_run("r1", &lease("a", 60_000), now_millis()).await.unwrap().expect("claimed");
    assert_eq!(run_ids(&b.claimable_runs(now_millis(), 10).await.unwrap()), ["r2"]);

    assert!(!b.release_run("r1", "b").await.unwrap(), "b holds nothing");
    assert!(a.release_run("r1", "a").await.unwrap());
    assert!(!a.release_run("r1", "a").await.unwrap(), "released already");
    let claimable = b.claimable_runs(now_millis(), 10).await.unwrap();
    let mut ids = run_ids(&claimable);
    ids.sort_unstable();
    assert_eq!(ids, ["r1", "r2"]);
    assert_eq!(b.claimable_runs(now_millis(), 1).await.unwrap().len(), 1);
    assert!(b.claim_run("r1", &lease("b", 60_000), now_millis()).await.unwrap().is_some());
}

/// A run created running with a lease is its creator's from the start; one
/// created waiting holds none.
pub async fn a_run_created_with_a_lease_is_held_by_its_creator_while_it_runs(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let created = |run_id: &str, waiting: bool| NewRun {
        lease: Some(lease("a", 60_000)),
        trigger: json!({}),
        state: roomkit_graph::EngineState { waiting, ..started_state(run_id, &json!({})) },
        ..new_run(DEFAULT_ORG, "g", run_id)
    };
    let running = store.create_run(created("r1", false)).await.unwrap();
    assert_eq!(running.owner.as_deref(), Some("a"));
    assert_eq!(store.run("r1").await.unwrap(), running);
    assert!(store.claimable_runs(now_millis(), 10).await.unwrap().is_empty());
    let waiting = store.create_run(created("r2", true)).await.unwrap();
    assert_eq!((waiting.status, waiting.owner), (RunStatus::Waiting, None));
}
