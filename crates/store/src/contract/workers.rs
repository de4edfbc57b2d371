//! Worker registrations: a worker id is held by one live process at a time,
//! renewed by it, free again once released or expired; and the runs a
//! worker's leases hold, for its next process to take back.

use super::Database;
use super::fixtures::{graph, run_ids, start_run};
use crate::{DEFAULT_ORG, Lease, Millis, WorkerRegistration, now_millis};

/// Worker id `w1` for process `instance`, taken at `now` for `ms`.
fn registration(instance: &str, now: Millis, ms: i64) -> WorkerRegistration {
    WorkerRegistration::new("w1", instance, now, ms)
}

/// Two processes asking for a new worker id at once: one gets it, both are
/// told which. The holder renews it; the other may not take or release it,
/// but has another id; once released it is free at once, and once expired
/// another process takes it. Registrations outlive the stores.
pub async fn a_worker_id_is_held_by_one_live_process_until_released_or_expired(database: &dyn Database) {
    let (a, b) = (database.open().await, database.open().await);
    let now = now_millis();

    let (first, second) = (registration("a", now, 60_000), registration("b", now, 60_000));
    let (to_a, to_b) = tokio::join!(a.register_worker(&first, now), b.register_worker(&second, now));
    let (to_a, to_b) = (to_a.unwrap(), to_b.unwrap());
    assert_eq!(to_a, to_b, "both are told the same holder");
    assert!(to_a == first || to_a == second);
    let (holder, other) = if to_a == first { (&a, &b) } else { (&b, &a) };
    let (holder_name, other_name) = if to_a == first { ("a", "b") } else { ("b", "a") };
    let refused = other.register_worker(&registration(other_name, now, 60_000), now).await.unwrap();
    assert_eq!(refused, to_a, "the other is told who holds it, and nothing changes");

    let renewed = registration(holder_name, now, 120_000);
    assert_eq!(holder.register_worker(&renewed, now).await.unwrap(), renewed, "its own process renews it");
    assert_eq!(other.register_worker(&registration(other_name, now, 60_000), now).await.unwrap(), renewed);
    let other_id = WorkerRegistration::new("w2", other_name, now, 60_000);
    assert_eq!(
        other.register_worker(&other_id, now).await.unwrap(),
        other_id,
        "another id is another worker"
    );

    other.release_worker("w1", other_name).await.unwrap();
    assert_eq!(
        other.register_worker(&registration(other_name, now, 60_000), now).await.unwrap(),
        renewed,
        "not the other's to release"
    );
    holder.release_worker("w1", holder_name).await.unwrap();
    let short = registration(other_name, now, 500);
    assert_eq!(other.register_worker(&short, now).await.unwrap(), short, "released: free at once");

    // The other process dies: its registration expires, and the first may take the id.
    assert_eq!(holder.register_worker(&registration(holder_name, now, 60_000), now).await.unwrap(), short);
    let expired = short.until;
    let taken = registration(holder_name, expired, 60_000);
    assert_eq!(holder.register_worker(&taken, expired).await.unwrap(), taken, "expired: taken");

    drop((a, b));
    let reopened = database.open().await;
    assert_eq!(reopened.register_worker(&registration("c", expired, 60_000), expired).await.unwrap(), taken);
}

/// A registration is judged at the time its caller passes, never at the
/// store's own clock: one the wall clock calls expired still holds the id at
/// a time before its end, and one the wall clock calls live has expired ten
/// minutes on, when another process takes the id.
pub async fn a_worker_registration_is_judged_at_the_callers_time(database: &dyn Database) {
    const TEN_MINUTES: Millis = 10 * 60_000;
    let (a, b) = (database.open().await, database.open().await);
    let now = now_millis();

    let past = now - TEN_MINUTES;
    let old = registration("a", past, 60_000);
    assert_eq!(a.register_worker(&old, past).await.unwrap(), old);
    let before_expiry = old.until - 1;
    assert_eq!(
        b.register_worker(&registration("b", before_expiry, 60_000), before_expiry).await.unwrap(),
        old,
        "held at the time asked at, though expired by the wall clock"
    );

    let live = registration("a", now, 60_000);
    assert_eq!(a.register_worker(&live, now).await.unwrap(), live, "its own process renews it");
    let later = now + TEN_MINUTES;
    let taken = registration("b", later, 60_000);
    assert_eq!(
        b.register_worker(&taken, later).await.unwrap(),
        taken,
        "expired at the time asked at, though live by the wall clock"
    );
    assert_eq!(a.register_worker(&live, now + 1).await.unwrap(), taken, "the first has lost it");
}

/// The running runs whose lease an owner holds are listed whether the lease
/// lives or expired, until released.
pub async fn the_running_runs_an_owner_holds_are_listed_live_lease_or_not(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    for run in ["r1", "r2", "r3"] {
        start_run(&*store, "g", run).await;
    }
    let now = now_millis();
    let long_ago = now - 60_000;
    store.claim_run("r1", &Lease::new("w1", now, 60_000), now).await.unwrap().expect("claimed");
    store.claim_run("r2", &Lease::new("w1", long_ago, 1), long_ago).await.unwrap().expect("claimed");
    store.claim_run("r3", &Lease::new("w2", now, 60_000), now).await.unwrap().expect("claimed");

    let held = store.runs_held_by("w1").await.unwrap();
    let mut held = run_ids(&held);
    held.sort_unstable();
    assert_eq!(held, ["r1", "r2"], "r2's lease expired, but w1 still holds it");
    assert!(store.release_run("r1", "w1").await.unwrap());
    assert_eq!(run_ids(&store.runs_held_by("w1").await.unwrap()), ["r2"]);
    assert!(store.runs_held_by("nobody").await.unwrap().is_empty());
}
