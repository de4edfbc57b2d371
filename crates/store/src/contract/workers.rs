//! Worker registrations: a worker id is held by one live process at a time,
//! renewed by it, free again once released or expired; and the runs a
//! worker's leases hold, for its next process to take back.

use std::time::Duration;

use super::Database;
use super::fixtures::{graph, run_ids, start_run};
use crate::{DEFAULT_ORG, Lease, WorkerRegistration, now_millis};

fn registration(instance: &str, ms: i64) -> WorkerRegistration {
    WorkerRegistration::new("w1", instance, now_millis(), ms)
}

/// Two processes asking for a new worker id at once: one gets it, both are
/// told which. The holder renews it; the other may not take or release it,
/// but has another id; once released it is free at once, and once expired
/// another process takes it. Registrations outlive the stores.
pub async fn a_worker_id_is_held_by_one_live_process_until_released_or_expired(database: &dyn Database) {
    let (a, b) = (database.open().await, database.open().await);

    let (first, second) = (registration("a", 60_000), registration("b", 60_000));
    let (to_a, to_b) =
        tokio::join!(a.register_worker(&first, now_millis()), b.register_worker(&second, now_millis()));
    let (to_a, to_b) = (to_a.unwrap(), to_b.unwrap());
    assert_eq!(to_a, to_b, "both are told the same holder");
    assert!(to_a == first || to_a == second);
    let (holder, other) = if to_a == first { (&a, &b) } else { (&b, &a) };
    let (holder_name, other_name) = if to_a == first { ("a", "b") } else { ("b", "a") };
    let refused = other.register_worker(&registration(other_name, 60_000), now_millis()).await.unwrap();
    assert_eq!(refused, to_a, "the other is told who holds it, and nothing changes");

    let renewed = registration(holder_name, 120_000);
    assert_eq!(
        holder.register_worker(&renewed, now_millis()).await.unwrap(),
        renewed,
        "its own process renews it"
    );
    assert_eq!(
        other.register_worker(&registration(other_name, 60_000), now_millis()).await.unwrap(),
        renewed
    );
    let other_id = WorkerRegistration::new("w2", other_name, now_millis(), 60_000);
    assert_eq!(
        other.register_worker(&other_id, now_millis()).await.unwrap(),
        other_id,
        "another id is another worker"
    );

    other.release_worker("w1", other_name).await.unwrap();
    assert_eq!(
        other.register_worker(&registration(other_name, 60_000), now_millis()).await.unwrap(),
        renewed,
        "not the other's to release"
    );
    holder.release_worker("w1", holder_name).await.unwrap();
    let short = registration(other_name, 500);
    assert_eq!(other.register_worker(&short, now_millis()).await.unwrap(), short, "released: free at once");

    // The other process dies: its registration expires, and the first may take the id.
    assert_eq!(
        holder.register_worker(&registration(holder_name, 60_000), now_millis()).await.unwrap(),
        short
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let taken = registration(holder_name, 60_000);
    assert_eq!(holder.register_worker(&taken, now_millis()).await.unwrap(), taken, "expired: taken");

    drop((a, b));
    let reopened = database.open().await;
    assert_eq!(reopened.register_worker(&registration("c", 60_000), now_millis()).await.unwrap(), taken);
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
    store.claim_run("r1", &Lease::new("w1", now, 60_000), now_millis()).await.unwrap().expect("claimed");
    store.claim_run("r2", &Lease::new("w1", now, 1), now_millis()).await.unwrap().expect("claimed");
    store.claim_run("r3", &Lease::new("w2", now, 60_000), now_millis()).await.unwrap().expect("claimed");
    tokio::time::sleep(Duration::from_millis(5)).await;

    let held = store.runs_held_by("w1").await.unwrap();
    let mut held = run_ids(&held);
    held.sort_unstable();
    assert_eq!(held, ["r1", "r2"], "r2's lease expired, but w1 still holds it");
    assert!(store.release_run("r1", "w1").await.unwrap());
    assert_eq!(run_ids(&store.runs_held_by("w1").await.unwrap()), ["r2"]);
    assert!(store.runs_held_by("nobody").await.unwrap().is_empty());
}
