//! Faults, each with its precise error and nothing already committed lost: a
//! file that is not a database, another application's database, a file held
//! locked by another connection, a full disk (a file-size limit).

mod common;

use std::time::{Duration, Instant};

use common::db_path;
use roomkit_graph_sqlite::{APPLICATION_ID, Options, SCHEMA_VERSION, SqliteStore};
use roomkit_graph_store::contract::fixtures::{completed, graph, seqs, simple_step, start_run, step};
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, StoreError};
use rusqlite::Connection;
use serde_json::json;

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let (dir, _) = db_path();
    for (name, content) in [
        ("notes.txt", b"Shopping list:\n- eggs\n- milk\n".repeat(40)),
        ("garbage.bin", (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).unwrap();
        let opened = SqliteStore::open(&path);
        assert!(
            matches!(&opened, Err(StoreError::NotADatabase { path: p, .. }) if *p == path.display().to_string()),
            "{name}: {opened:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), content, "{name} is unchanged");
    }
}

#[test]
fn another_applications_database_is_refused_and_left_alone() {
    let (dir, _) = db_path();
    let notes = "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');";
    let cases = [
        ("tables-no-id.db", notes.to_owned()),
        ("other-id.db", format!("{notes} PRAGMA application_id = 42;")),
        (
            "newer-schema.db",
            format!(
                "{notes} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {};",
                SCHEMA_VERSION + 1
            ),
        ),
    ];
    for (name, sql) in cases {
        let path = dir.path().join(name);
        Connection::open(&path).unwrap().execute_batch(&sql).unwrap();

        let opened = SqliteStore::open(&path);
        assert!(matches!(&opened, Err(StoreError::Foreign { .. })), "{name}: {opened:?}");

        let conn = Connection::open(&path).unwrap();
        let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
        assert_eq!(mode, "delete", "{name}: the journal mode is untouched");
        let body: String = conn.query_row("SELECT body FROM notes", [], |row| row.get(0)).unwrap();
        assert_eq!(body, "keep me");
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0)).unwrap();
        assert_eq!(tables, 1, "{name}: none of our tables were added");
    }
}

#[tokio::test]
async fn a_file_locked_by_another_connection_gives_locked_then_works_once_released() {
    let (_dir, path) = db_path();
    let options = Options { busy_timeout: Duration::from_millis(100), ..Options::default() };
    let store = SqliteStore::open_with(&path, options).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    let before = store.load_run("r").await.unwrap();

    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let refused = store.commit_step(simple_step("r", 1, "a")).await;
    assert!(matches!(refused, Err(StoreError::Locked(_))), "{refused:?}");
    assert!(started.elapsed() >= Duration::from_millis(100), "it waited for the busy timeout first");
    // Readers are not blocked by a writer in WAL mode, and nothing changed.
    assert_eq!(store.load_run("r").await.unwrap(), before);

    holder.execute_batch("COMMIT").unwrap();
    let (record, events) = store.commit_step(simple_step("r", 1, "a")).await.unwrap();
    assert_eq!((record.version, seqs(&events)), (2, vec![2]));
}

#[tokio::test]
async fn a_full_file_refuses_the_step_and_keeps_every_earlier_one() {
    let (_dir, path) = db_path();
    let limited = Options { max_size_bytes: Some(256 * 1024), ..Options::default() };
    let store = SqliteStore::open_with(&path, limited).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;

    let big = |i: u64| json!({"step": i, "text": "x".repeat(3000)});
    let mut committed = 0;
    let failure = loop {
        let version = committed + 1;
        assert!(version < 200, "a 256 KiB limit must be reached by 200 steps of 3 KB");
        let commit =
            step("r", version, &format!("n{version}"), big(version), vec![completed("n", big(version))]);
        match store.commit_step(commit).await {
            Ok(_) => committed += 1,
            Err(err) => break err,
        }
    };
    assert!(matches!(failure, StoreError::Full(_)), "{failure:?}");
    assert!(committed > 0);
    // Still readable, and still at the last good step.
    assert_eq!(store.run("r").await.unwrap().version, committed + 1);
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    let (record, state) = store.load_run("r").await.unwrap();
    assert_eq!((record.version, record.last_seq), (committed + 1, committed + 1));
    for version in 1..=committed {
        assert_eq!(state.context[&format!("n{version}")]["output"], big(version));
    }
    assert!(!state.context.contains_key(&format!("n{}", committed + 1)), "nothing of the failed step");
    let transcript = store.transcript("r", 0, 1000).await.unwrap();
    assert_eq!(seqs(&transcript), (1..=committed + 1).collect::<Vec<_>>());
    // Without the limit the same step now goes through.
    let retry = step("r", committed + 1, "again", big(0), vec![completed("again", big(0))]);
    assert_eq!(store.commit_step(retry).await.unwrap().0.version, committed + 2);
}
