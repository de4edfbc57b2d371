//! The PostgreSQL store's own behaviour against a real PostgreSQL server of
//! the test's own (what every store does is in `contract.rs`): databases that
//! are not ours, URLs and TLS, connection limits, outages, and databases of
//! older schema versions migrated.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use roomkit_graph_postgres::{Options, PostgresStore};
use roomkit_graph_store::contract::fixtures::{graph, two_entry_step};
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Entry, NewRun, RunFilter, RunKey, StoreError, now_millis};
use serde_json::json;

/// Run `run_id` of graph `g` (saved already), asking for `key`.
fn new_run(run_id: &str, key: Option<RunKey>) -> NewRun {
    NewRun { key, ..roomkit_graph_store::contract::fixtures::new_run(DEFAULT_ORG, "g", run_id) }
}

/// A plain client on the database at `url`.
async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_is_not_ours_is_refused_and_left_as_it_was() {
    let url = roomkit_graph_pgtest::database();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE SCHEMA roomkit_graph; CREATE TABLE roomkit_graph.runs (id int)")
        .await
        .unwrap();
    let refused = PostgresStore::connect(&url).await.map(drop).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Foreign { detail, .. } if detail.contains("not a roomkit-graph store")),
        "{refused:?}"
    );
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'roomkit_graph'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "nothing created beside it");

    // A store of a newer version is refused too.
    let url = roomkit_graph_pgtest::database();
    drop(PostgresStore::connect(&url).await.unwrap());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute("UPDATE roomkit_graph.meta SET schema_version = 99").await.unwrap();
    let refused = PostgresStore::connect(&url).await.map(drop).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Foreign { detail, .. } if detail.contains("newer")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_url_or_an_unknown_database_is_a_clear_error() {
    let refused = PostgresStore::connect("postgres://app@host:notaport/db").await.map(drop).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Invalid(detail) if detail.contains("not a PostgreSQL URL")),
        "{refused:?}"
    );
    let missing =
        PostgresStore::connect(&roomkit_graph_pgtest::missing_database()).await.map(drop).unwrap_err();
    let text = missing.to_string();
    assert!(text.contains("no_such_database") && text.contains("3D000"), "{text}");
    let nobody = PostgresStore::connect("postgres://app@127.0.0.1:1/runs").await.map(drop).unwrap_err();
    assert!(
        matches!(&nobody, StoreError::Unavailable(detail) if detail.message().contains("runs on 127.0.0.1:1 as app")),
        "{nobody:?}"
    );
    // The driver's error lies under the store's, for logs that show causes.
    let driver = std::error::Error::source(&nobody).and_then(std::error::Error::source);
    assert!(driver.is_some_and(|cause| cause.is::<tokio_postgres::Error>()), "{nobody:?}");
}

/// How many connections to the database of `url` are encrypted and how many
/// are not, leaving out the one asking.
async fn connections_by_tls(url: &str) -> (i64, i64) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_encrypted_as_sslmode_asks() {
    let url = roomkit_graph_pgtest::database();
    let required = PostgresStore::connect(&format!("{url}?sslmode=require")).await.unwrap();
    required.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let (encrypted, plain) = connections_by_tls(&url).await;
    assert!(encrypted >= 1 && plain == 0, "{encrypted} encrypted, {plain} plain");
    drop(required);

    let url = roomkit_graph_pgtest::database();
    let disabled = PostgresStore::connect(&format!("{url}?sslmode=disable")).await.unwrap();
    disabled.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let (encrypted, plain) = connections_by_tls(&url).await;
    assert!(encrypted == 0 && plain >= 1, "{encrypted} encrypted, {plain} plain");
}

#[tokio::test(flavor = "multi_thread")]
async fn steps_go_on_while_the_server_keeps_dropping_connections_each_committed_once() {
    let url = roomkit_graph_pgtest::database();
    let store = PostgresStore::connect(&url).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    store.create_run(new_run("r", None)).await.unwrap();

    // Every 50 ms, the server ends every other session on the database.
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let dropping = tokio::spawn({
        let ended = std::sync::Arc::clone(&ended);
        async move {
            loop {
                let row = admin
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                    .unwrap();
                ended.fetch_add(row.get::<_, i64>(0), std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    // At least 60 steps, and on until the server has ended a few sessions
    // under them (a fast machine may commit 60 before it ends any).
    let ended_enough = || ended.load(std::sync::atomic::Ordering::SeqCst) >= 3;
    let mut version = 1;
    while version <= 60 || (!ended_enough() && version <= 3_000) {
        match store.commit_step(two_entry_step("r", version, &format!("n{version}"), json!(version))).await {
            Ok((record, _)) => version = record.version,
            // Applied, but the answer was lost with its connection: the run moved.
            Err(StoreError::Conflict { .. }) => version = store.run("r").await.unwrap().version,
            Err(other) => panic!("step {version}: {other}"),
        }
    }
    dropping.abort();
    let ended = ended.load(std::sync::atomic::Ordering::SeqCst);
    assert!(ended >= 3, "only {ended} sessions were ended: the test did not drop connections");

    let steps = version - 1;
    let events = store.transcript("r", 0, 10_000).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=2 * steps + 1).collect::<Vec<_>>(), "no gap");
    let completed: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::NodeCompleted { node_id, .. } => Some(node_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(completed, (1..=steps).map(|n| format!("n{n}")).collect::<Vec<_>>(), "each step once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_keeps_to_its_number_of_connections() {
    let url = roomkit_graph_pgtest::database();
    let zero = PostgresStore::connect_with(&url, Options { max_connections: 0 }).await.map(drop).unwrap_err();
    assert!(matches!(zero, StoreError::Invalid(_)), "{zero:?}");
    let store = PostgresStore::connect_with(&url, Options { max_connections: 2 }).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let runs = (0..12).map(|n| {
        let store = store.clone();
        async move {
            let run_id = format!("r{n}");
            store.create_run(new_run(&run_id, None)).await.unwrap();
            for version in 1..=5 {
                store
                    .commit_step(two_entry_step(&run_id, version, &format!("s{version}"), json!(version)))
                    .await
                    .unwrap();
            }
        }
    });
    futures_util::future::join_all(runs).await;
    let (encrypted, plain) = connections_by_tls(&url).await;
    assert!(encrypted + plain <= 3, "two for the operations and one listening: {}", encrypted + plain);
    assert_eq!(store.list_runs(&RunFilter::default()).await.unwrap().len(), 12);
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

#[tokio::test(flavor = "multi_thread")]
async fn a_database_of_schema_version_4_marks_its_entries_positions_as_not_kept() {
    let url = roomkit_graph_pgtest::database();
    let store = PostgresStore::connect(&url).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    store.create_run(new_run("r1", None)).await.unwrap();
    drop(store);
    // Back to version 4: no positions, no runs that run their parent's node.
    let store = reopened_after(
        &url,
        "ALTER TABLE roomkit_graph.runs DROP COLUMN parent_runs_node; \
         ALTER TABLE roomkit_graph.transcript DROP COLUMN position_json; \
         UPDATE roomkit_graph.meta SET schema_version = 4",
    )
    .await;
    let unkept = store.run_at("r1", 1).await.unwrap_err();
    assert!(unkept.to_string().contains("was not kept"), "{unkept}");
    assert_eq!(store.run("r1").await.unwrap().parent, None);
    store.create_run(new_run("r2", None)).await.unwrap();
    assert_eq!(store.run_at("r2", 1).await.unwrap().position.current_node_id.as_deref(), Some("draft"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_of_schema_version_5_gives_its_tokens_ids_and_keeps_them_working() {
    let url = roomkit_graph_pgtest::database();
    drop(PostgresStore::connect(&url).await.unwrap());
    // Back to version 5: tokens with neither id, expiry, read-only flag nor last use.
    let store = reopened_after(
        &url,
        "DROP INDEX roomkit_graph.tokens_by_id; \
         ALTER TABLE roomkit_graph.tokens DROP COLUMN id, DROP COLUMN expires_at, DROP COLUMN read_only, \
             DROP COLUMN last_used_at; \
         INSERT INTO roomkit_graph.tokens VALUES ('ab12cd34ef56ab78cd90', 'acme', 'ci', 7); \
         UPDATE roomkit_graph.meta SET schema_version = 5",
    )
    .await;
    let token = store.token("ab12cd34ef56ab78cd90").await.unwrap().unwrap();
    assert_eq!(
        (token.id.as_str(), token.org.as_str(), token.label.as_deref(), token.created_at),
        ("tok_ab12cd34ef56ab78", "acme", Some("ci"), 7)
    );
    assert_eq!((token.expires_at, token.read_only, token.last_used_at), (None, false, None));
    assert!(store.revoke_token("acme", "tok_ab12cd34ef56ab78").await.unwrap());
    assert_eq!(store.tokens("acme").await.unwrap(), []);
}
