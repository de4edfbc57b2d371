//! Worker registrations on a real SQLite file, with two stores on the file as
//! two processes would have: a live registration keeps its id from others,
//! its own process renews it, and it is free again once released or expired.

mod common;

use std::time::Duration;

use common::{db_path, graph, start_run};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Lease, WorkerRegistration, now_millis};

fn registration(instance: &str, ms: i64) -> WorkerRegistration {
    WorkerRegistration::new("w1", instance, now_millis(), ms)
}

#[tokio::test]
async fn a_worker_id_is_held_by_one_live_process_until_released_or_expired() {
    let (_dir, path) = db_path();
    let a = SqliteStore::open(&path).expect("a opens the file");
    let b = SqliteStore::open(&path).expect("b opens the file");

    let first = registration("a", 60_000);
    assert_eq!(a.register_worker(&first).await.unwrap(), first, "a free id is taken");
    let refused = b.register_worker(&registration("b", 60_000)).await.unwrap();
    assert_eq!(refused, first, "b is told who holds it, and nothing changes");
    let renewed = registration("a", 120_000);
    assert_eq!(a.register_worker(&renewed).await.unwrap(), renewed, "its own process renews it");
    let other_id = WorkerRegistration::new("w2", "b", now_millis(), 60_000);
    assert_eq!(b.register_worker(&other_id).await.unwrap(), other_id, "another id is another worker");

    b.release_worker("w1", "b").await.unwrap();
    assert_eq!(b.register_worker(&registration("b", 60_000)).await.unwrap(), renewed, "not b's to release");
    a.release_worker("w1", "a").await.unwrap();
    let short = registration("b", 100);
    assert_eq!(b.register_worker(&short).await.unwrap(), short, "released: free at once");

    // b dies: its registration expires, and a may take the id.
    assert_eq!(a.register_worker(&registration("a", 60_000)).await.unwrap(), short);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let taken = registration("a", 60_000);
    assert_eq!(a.register_worker(&taken).await.unwrap(), taken, "expired: taken");

    // The registrations outlive the stores, in the file.
    drop((a, b));
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.register_worker(&registration("c", 60_000)).await.unwrap(), taken);
}

#[tokio::test]
async fn the_running_runs_an_owner_holds_are_listed_live_lease_or_not() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    for run in ["r1", "r2", "r3"] {
        start_run(&store, "g", run).await;
    }
    let now = now_millis();
    store.claim_run("r1", &Lease::new("w1", now, 60_000)).await.unwrap().expect("claimed");
    store.claim_run("r2", &Lease::new("w1", now, 1)).await.unwrap().expect("claimed");
    store.claim_run("r3", &Lease::new("w2", now, 60_000)).await.unwrap().expect("claimed");
    tokio::time::sleep(Duration::from_millis(5)).await;

    let mut held: Vec<String> =
        store.runs_held_by("w1").await.unwrap().into_iter().map(|run| run.run_id).collect();
    held.sort();
    assert_eq!(held, ["r1", "r2"], "r2's lease expired, but w1 still holds it");
    assert!(store.release_run("r1", "w1").await.unwrap());
    let held = store.runs_held_by("w1").await.unwrap();
    assert_eq!(held.iter().map(|run| run.run_id.as_str()).collect::<Vec<_>>(), ["r2"]);
    assert!(store.runs_held_by("nobody").await.unwrap().is_empty());
}
