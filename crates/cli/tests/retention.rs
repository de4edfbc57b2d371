//! Retention and deletion through the real binary: 10,000 finished runs
//! older than the organization's retention are deleted by `serve` (the live
//! and recent ones stay) and the SQLite file gives the space back; a live
//! run cannot be deleted, a finished one can, over HTTP and with `runs
//! delete`; a graph version is deleted only when no run uses it.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::contract::fixtures::{final_step, graph, new_run, step};
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, Entry, NewRun, RunFilter, RunStatus, now_millis};
use serde_json::json;
use server::{Server, cli, client, text};

/// How many old finished runs are made.
const OLD: usize = 10_000;

/// The size of the database file with its write-ahead log folded in.
fn file_size(path: &Path) -> u64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    drop(conn);
    std::fs::metadata(path).unwrap().len()
}

/// Makes `OLD` runs finished 40 days ago, with a kilobyte of trigger data
/// each, three runs waiting since then and two finished today.
async fn fill(path: &Path) {
    let store = std::sync::Arc::new(SqliteStore::open(path).unwrap());
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let long_ago = now_millis() - 40 * 24 * 60 * 60 * 1_000;
    let mut making = tokio::task::JoinSet::new();
    for n in 0..OLD + 5 {
        let store = std::sync::Arc::clone(&store);
        making.spawn(async move {
            let (run_id, at, live) = match n {
                n if n < OLD => (format!("old-{n:05}"), long_ago, false),
                n if n < OLD + 3 => (format!("live-{n}"), long_ago, true),
                n => (format!("recent-{n}"), now_millis(), false),
            };
            let trigger = json!({"notes": "x".repeat(1_000)});
            store.create_run(NewRun { at, trigger, ..new_run(DEFAULT_ORG, "g", &run_id) }).await.unwrap();
            let mut commit =
                if live { step(&run_id, 1, "draft", json!(1), vec![]) } else { final_step(&run_id, 1) };
            if live {
                commit.status = RunStatus::Waiting;
                commit.entries =
                    vec![Entry::NodeWaiting { node_id: "draft".into(), prompt: None, actions: vec![] }];
            }
            commit.at = at;
            store.commit_step(commit).await.unwrap();
        });
        if making.len() >= 64 {
            making.join_next().await.unwrap().unwrap();
        }
    }
    making.join_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_runs_past_their_retention_go_and_the_file_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    fill(&db).await;
    let before = file_size(&db);
    let set = cli(&db, &["retention", "set", "30d"]);
    assert!(set.status.success(), "{}", text(&set.stderr));
    let shown = cli(&db, &["retention", "show"]);
    assert_eq!(text(&shown.stdout).trim(), "organization  30days");

    let server = Server::start_on(db.clone(), &[], "warn", dir);
    let store = SqliteStore::open(&db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let left = loop {
        let left = store.list_runs(&RunFilter::default()).await.unwrap();
        if left.len() == 5 {
            break left;
        }
        assert!(Instant::now() < deadline, "{} runs left", left.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut ids: Vec<&str> = left.iter().map(|run| run.run_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["live-10000", "live-10001", "live-10002", "recent-10003", "recent-10004"]);
    assert_eq!(store.transcript("old-00000", 0, 10).await.unwrap_or_default(), []);
    drop(store);

    // A live run is refused, on the command line and over HTTP; a finished one goes.
    let refused = cli(&server.db, &["runs", "delete", "live-10000"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("it is waiting: cancel it first"), "{}", text(&refused.stderr));
    let token = server.token(DEFAULT_ORG);
    let delete =
        |run_id: &str| client().delete(server.url(&format!("/v1/runs/{run_id}"))).bearer_auth(&token).send();
    let conflict = delete("live-10001").await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let deleted = delete("recent-10003").await.unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(deleted.json::<serde_json::Value>().await.unwrap(), json!({"deleted_runs": 1}));
    assert_eq!(delete("recent-10003").await.unwrap().status(), StatusCode::NOT_FOUND);
    let other = server.token("globex");
    let theirs =
        client().delete(server.url("/v1/runs/recent-10004")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "another organization's run is not found");
    let gone = cli(&server.db, &["--json", "runs", "delete", "recent-10004"]);
    assert!(gone.status.success(), "{}", text(&gone.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&gone.stdout).unwrap()["deleted_runs"], 1);

    let mut server = server;
    assert!(server.stop().success());
    let after = file_size(&server.db);
    eprintln!("the database file: {before} bytes with {OLD} old runs, {after} after they went");
    assert!(after * 4 < before, "the file gave its space back: {before} bytes before, {after} after");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graph_version_goes_only_when_no_run_uses_it() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    let graph = server::review_graph("Review");
    let stored =
        client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&graph).send().await.unwrap();
    assert_eq!(stored.status(), StatusCode::CREATED);
    server.post(&token, "/v1/graphs/review/runs", &json!({"topic": "x"})).await;
    for _ in 0..2 {
        let put = client()
            .put(server.url("/v1/graphs/review"))
            .bearer_auth(&token)
            .json(&graph)
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    }
    let delete = |version: u64| {
        client()
            .delete(server.url(&format!("/v1/graphs/review/versions/{version}")))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(delete(3).await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY, "the latest is kept");
    assert_eq!(delete(2).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(delete(2).await.unwrap().status(), StatusCode::NOT_FOUND);
    let used = cli(&server.db, &["--org", "acme", "graph", "delete", "review", "--version", "1"]);
    assert!(!used.status.success());
    assert!(text(&used.stderr).contains("uses version 1 of graph review"), "{}", text(&used.stderr));
}
