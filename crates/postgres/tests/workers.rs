//! Worker registrations against a real PostgreSQL server of the test's own,
//! two stores on one database standing for two processes: a live registration
//! keeps its id from others, its own process renews it, and it is free again
//! once released or expired.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use roomkit_graph::{EngineState, Graph, Trigger};
use roomkit_graph_postgres::PostgresStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Lease, NewRun, WorkerRegistration, now_millis};
use serde_json::{Map, json};

fn registration(instance: &str, ms: i64) -> WorkerRegistration {
    WorkerRegistration::new("w1", instance, now_millis(), ms)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_id_is_held_by_one_live_process_until_released_or_expired() {
    let url = roomkit_graph_pgtest::database();
    let (a, b) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());

    // Two processes asking for a new id at once: one gets it.
    let (first, second) = (registration("a", 60_000), registration("b", 60_000));
    let (to_a, to_b) = tokio::join!(a.register_worker(&first), b.register_worker(&second));
    let (to_a, to_b) = (to_a.unwrap(), to_b.unwrap());
    assert_eq!(to_a, to_b, "both are told the same holder");
    assert!(to_a == first || to_a == second);
    let (holder, other) = if to_a == first { (&a, &b) } else { (&b, &a) };
    let (holder_name, other_name) = if to_a == first { ("a", "b") } else { ("b", "a") };

    let renewed = registration(holder_name, 120_000);
    assert_eq!(holder.register_worker(&renewed).await.unwrap(), renewed, "its own process renews it");
    assert_eq!(other.register_worker(&registration(other_name, 60_000)).await.unwrap(), renewed);
    other.release_worker("w1", other_name).await.unwrap();
    assert_eq!(other.register_worker(&registration(other_name, 60_000)).await.unwrap(), renewed);

    holder.release_worker("w1", holder_name).await.unwrap();
    let short = registration(other_name, 100);
    assert_eq!(other.register_worker(&short).await.unwrap(), short, "released: free at once");
    assert_eq!(holder.register_worker(&registration(holder_name, 60_000)).await.unwrap(), short);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let taken = registration(holder_name, 60_000);
    assert_eq!(holder.register_worker(&taken).await.unwrap(), taken, "expired: taken");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_running_runs_an_owner_holds_are_listed_live_lease_or_not() {
    let store = PostgresStore::connect(&roomkit_graph_pgtest::database()).await.unwrap();
    store.save_graph(DEFAULT_ORG, &Graph::new("g", "G", Trigger::manual())).await.unwrap();
    for run_id in ["r1", "r2", "r3"] {
        let state = EngineState {
            context: Map::new(),
            current_node_id: Some("draft".into()),
            previous_node_id: None,
            waiting: false,
            run_id: run_id.into(),
            pending: Vec::new(),
        };
        let run = NewRun {
            org: DEFAULT_ORG.into(),
            graph_id: "g".into(),
            graph_version: 1,
            trigger: json!({}),
            state,
            key: None,
            first_step: None,
            lease: None,
        };
        store.create_run(run).await.unwrap();
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
