//! Lists read a page at a time: every run listed once through the cursor,
//! even thousands created in the same millisecond and new runs started
//! while the pages are read; graphs by id, their latest versions.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::collections::HashSet;

use common::{db_path, graph, started_state};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{DEFAULT_ORG, GraphCursor, NewRun, RunCursor, RunFilter};
use serde_json::json;

/// Opens run `run_id` of graph `g` through the store's API.
async fn create(store: &SqliteStore, run_id: String) {
    let run = NewRun {
        org: DEFAULT_ORG.into(),
        graph_id: "g".into(),
        graph_version: 1,
        trigger: json!({}),
        state: started_state(&run_id, &json!({})),
        key: None,
        lease: None,
        first_step: None,
    };
    store.create_run(run).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_the_same_millisecond_are_each_listed_once_through_the_cursor() {
    const RUNS: usize = 2_500;
    const PAGE: usize = 100;
    const TIE: i64 = 1_700_000_000_000;
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    // Ids in no particular order, created at once (the writer groups them).
    let ids: Vec<String> = (0..RUNS).map(|i| format!("run-{:05}", (i * 7_919) % 100_003)).collect();
    let mut creating = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let store = store.clone();
        creating.spawn(async move { create(&store, id).await });
    }
    creating.join_all().await;
    // All of them in one millisecond, where `created_until` paging lost runs.
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(conn.execute("UPDATE runs SET created_at = ?1", [TIE]).unwrap(), RUNS);

    let mut filter = RunFilter { org: Some(DEFAULT_ORG.into()), ..RunFilter::default() };
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.run_page(&filter, PAGE).await.unwrap();
        pages += 1;
        listed.extend(page.items.iter().map(|run| run.run_id.clone()));
        // Runs started while the list is read come before its first page.
        create(&store, format!("new-{pages}")).await;
        let Some(next) = page.next_cursor else { break };
        filter.after = Some(RunCursor::decode(&next).unwrap());
    }
    assert_eq!(pages, RUNS / PAGE, "the last full page says there is no more");
    assert_eq!(listed.len(), RUNS, "no run twice");
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected, "runs of one millisecond by id, each once");

    // A new listing shows the runs started meanwhile first.
    let first = store.run_page(&RunFilter::default(), 3).await.unwrap();
    assert!(first.items.iter().all(|run| run.run_id.starts_with("new-")), "{:?}", first.items);
    assert_eq!(
        store.list_runs(&RunFilter::default()).await.unwrap().len(),
        RUNS + pages,
        "nothing else was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn graphs_are_listed_by_id_a_page_at_a_time_with_their_latest_versions() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    for id in (0..25).rev() {
        store.save_graph(DEFAULT_ORG, &graph(&format!("g{id:02}"))).await.unwrap();
    }
    store.save_graph(DEFAULT_ORG, &graph("g03")).await.unwrap();
    store.save_graph("acme", &graph("a")).await.unwrap();

    let mut after: Option<GraphCursor> = None;
    let mut listed = Vec::new();
    loop {
        let page = store.graph_page(DEFAULT_ORG, after.as_ref(), 10).await.unwrap();
        listed.extend(page.items.iter().map(|stored| (stored.graph.id.clone(), stored.version)));
        match page.next_cursor {
            Some(next) => after = Some(GraphCursor::decode(&next).unwrap()),
            None => break,
        }
    }
    let expected: Vec<(String, u64)> =
        (0..25).map(|id| (format!("g{id:02}"), if id == 3 { 2 } else { 1 })).collect();
    assert_eq!(listed, expected, "by id, once each, the latest version, only this organization's");
    let unique: HashSet<_> = listed.iter().collect();
    assert_eq!(unique.len(), 25);
}
