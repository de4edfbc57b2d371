//! Lists and run keys on a real PostgreSQL server of the test's own: every
//! run listed once through the cursor, even thousands created in the same
//! millisecond, while another process starts runs; graphs by id; keys that
//! tell a repeated request from another and expire; databases of older
//! schema versions migrated.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use roomkit_graph::{EngineState, Graph, Trigger};
use roomkit_graph_postgres::PostgresStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{
    DEFAULT_ORG, GraphCursor, NewRun, RunCursor, RunFilter, RunKey, StoreError, now_millis,
};
use serde_json::{Map, json};

fn graph(id: &str) -> Graph {
    Graph::new(id, format!("Graph {id}"), Trigger::manual())
}

fn new_run(run_id: &str, key: Option<RunKey>) -> NewRun {
    NewRun {
        org: DEFAULT_ORG.into(),
        graph_id: "g".into(),
        graph_version: 1,
        trigger: json!({}),
        state: EngineState {
            context: Map::new(),
            current_node_id: Some("draft".into()),
            previous_node_id: Some("start".into()),
            waiting: false,
            run_id: run_id.into(),
            pending: Vec::new(),
        },
        key,
        first_step: None,
        lease: None,
    }
}

/// A plain client on the database at `url`.
async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_the_same_millisecond_are_each_listed_once_through_the_cursor() {
    const RUNS: usize = 2_500;
    const PAGE: usize = 100;
    let url = roomkit_graph_pgtest::database();
    let (store, other) =
        (PostgresStore::connect(&url).await.unwrap(), PostgresStore::connect(&url).await.unwrap());
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let ids: Vec<String> = (0..RUNS).map(|i| format!("run-{:05}", (i * 7_919) % 100_003)).collect();
    let mut creating = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let store = store.clone();
        creating.spawn(async move { store.create_run(new_run(&id, None)).await.unwrap() });
    }
    creating.join_all().await;
    let tied = client(&url)
        .await
        .execute("UPDATE roomkit_graph.runs SET created_at = 1700000000000", &[])
        .await
        .unwrap();
    assert_eq!(tied, RUNS as u64);

    let mut filter = RunFilter { org: Some(DEFAULT_ORG.into()), ..RunFilter::default() };
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.run_page(&filter, PAGE).await.unwrap();
        pages += 1;
        listed.extend(page.items.iter().map(|run| run.run_id.clone()));
        // Another process starts a run while the list is read.
        other.create_run(new_run(&format!("new-{pages}"), None)).await.unwrap();
        let Some(next) = page.next_cursor else { break };
        filter.after = Some(RunCursor::decode(&next).unwrap());
    }
    assert_eq!(pages, RUNS / PAGE);
    let mut expected = ids;
    expected.sort();
    assert_eq!(listed, expected, "runs of one millisecond by id, each once");

    // Graphs by id, a page at a time.
    for id in ["b", "a", "c"] {
        store.save_graph(DEFAULT_ORG, &graph(id)).await.unwrap();
    }
    let first = store.graph_page(DEFAULT_ORG, None, 2).await.unwrap();
    let ids: Vec<&str> = first.items.iter().map(|stored| stored.graph.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    let after = GraphCursor::decode(&first.next_cursor.unwrap()).unwrap();
    let second = store.graph_page(DEFAULT_ORG, Some(&after), 2).await.unwrap();
    let ids: Vec<&str> = second.items.iter().map(|stored| stored.graph.id.as_str()).collect();
    assert_eq!((ids, second.next_cursor), (vec!["c", "g"], None));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_key_tells_a_repeated_request_from_another_and_an_expired_key_is_taken_over() {
    let url = roomkit_graph_pgtest::database();
    let store = PostgresStore::connect(&url).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let asked = RunKey::new("request:k").with_request_hash("body-1");
    store.create_run(new_run("r1", Some(asked.clone()))).await.unwrap();
    assert!(matches!(
        store.create_run(new_run("r2", Some(asked))).await,
        Err(StoreError::Duplicate { run_id, same_request: true, .. }) if run_id == "r1"
    ));
    let other = RunKey::new("request:k").with_request_hash("body-2");
    assert!(matches!(
        store.create_run(new_run("r2", Some(other))).await,
        Err(StoreError::Duplicate { run_id, same_request: false, .. }) if run_id == "r1"
    ));

    let now = now_millis();
    store.create_run(new_run("e1", Some(RunKey::new("webhook:y").until(now - 1)))).await.unwrap();
    store.create_run(new_run("e2", Some(RunKey::new("webhook:y").until(now + 60_000)))).await.unwrap();
    assert!(matches!(
        store.create_run(new_run("e3", Some(RunKey::new("webhook:y")))).await,
        Err(StoreError::Duplicate { run_id, .. }) if run_id == "e2"
    ));
    assert_eq!(store.run("e1").await.unwrap().run_id, "e1", "the run that let the key go is kept");
}

/// The store of `url` connected again after `downgrade` (SQL that takes the
/// database back to an older schema) ran: its schema is the current one.
async fn reopened_after(url: &str, downgrade: &str) -> PostgresStore {
    client(url).await.batch_execute(downgrade).await.expect("the database is taken back");
    let store = PostgresStore::connect(url).await.expect("the store connects and migrates");
    let version: i32 = client(url)
        .await
        .query_one("SELECT schema_version FROM roomkit_graph.meta", &[])
        .await
        .expect("the schema version reads")
        .get(0);
    assert_eq!(version, roomkit_graph_postgres::SCHEMA_VERSION);
    store
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_of_the_first_schema_version_is_migrated_and_keeps_its_keys() {
    let url = roomkit_graph_pgtest::database();
    let store = PostgresStore::connect(&url).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    store.create_run(new_run("r1", Some(RunKey::new("schedule:g:1")))).await.unwrap();
    drop(store);
    // Back to version 1: the runs table without the key's hash and expiry.
    let store = reopened_after(
        &url,
        "ALTER TABLE roomkit_graph.runs DROP COLUMN key_hash, DROP COLUMN key_expires_at; \
         UPDATE roomkit_graph.meta SET schema_version = 1",
    )
    .await;
    assert!(
        matches!(
            store.create_run(new_run("r2", Some(RunKey::new("schedule:g:1")))).await,
            Err(StoreError::Duplicate { run_id, .. }) if run_id == "r1"
        ),
        "a key held before the migration is held for good"
    );
    store.create_run(new_run("r3", Some(RunKey::new("k").until(now_millis() + 1_000)))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_of_schema_version_2_gains_step_counts_and_pending_children() {
    let url = roomkit_graph_pgtest::database();
    let store = PostgresStore::connect(&url).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    store.create_run(new_run("r1", None)).await.unwrap();
    drop(store);
    // Back to version 2: the runs table without the step count and pending
    // children.
    let store = reopened_after(
        &url,
        "ALTER TABLE roomkit_graph.runs DROP COLUMN steps, DROP COLUMN pending; \
         UPDATE roomkit_graph.meta SET schema_version = 2",
    )
    .await;
    let (record, state) = store.load_run("r1").await.unwrap();
    assert_eq!((record.version, record.steps, record.pending.len()), (1, 0, 0));
    assert_eq!(state.pending.len(), 0);

    let mut parked = new_run("r2", None);
    parked.state.waiting = true;
    parked.state.pending = vec!["legal".into()];
    store.create_run(parked).await.unwrap();
    assert_eq!(store.load_run("r2").await.unwrap().1.pending, ["legal"]);
}
