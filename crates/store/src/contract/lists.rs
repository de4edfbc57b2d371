//! Runs listed by filter, newest first, and a page at a time through a cursor
//! that stays right whatever is inserted meanwhile.

use serde_json::json;

use super::Database;
use super::fixtures::{final_step, graph, new_run, run_ids, started_state};
use crate::{DEFAULT_ORG, Millis, NewRun, RunCursor, RunFilter, RunStatus, now_millis};

/// Runs are listed newest first, filtered by organization, graph, status and
/// creation time (from inclusive, until exclusive), up to a limit.
pub async fn list_runs_filters_by_organization_graph_status_and_time_newest_first(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("a")).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("b")).await.unwrap();
    let mut created = Vec::new();
    let runs = [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1")];
    // Distinct creation times, so the order and the windows are exact.
    for (at, (graph_id, run_id)) in (now_millis()..).step_by(3).zip(runs) {
        let run = NewRun { at, ..new_run(DEFAULT_ORG, graph_id, run_id) };
        created.push(store.create_run(run).await.unwrap().created_at);
    }
    store.commit_step(final_step("a2", 1)).await.unwrap();

    let list = |filter: RunFilter| {
        let store = store.clone();
        async move {
            let runs = store.list_runs(&filter).await.unwrap();
            run_ids(&runs).into_iter().map(str::to_owned).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(RunFilter::default()).await, ["b1", "a3", "a2", "a1"]);
    assert_eq!(list(RunFilter { org: Some(DEFAULT_ORG.into()), ..RunFilter::default() }).await.len(), 4);
    assert!(list(RunFilter { org: Some("acme".into()), ..RunFilter::default() }).await.is_empty());
    assert_eq!(
        list(RunFilter { graph_id: Some("a".into()), ..RunFilter::default() }).await,
        ["a3", "a2", "a1"]
    );
    assert_eq!(list(RunFilter { status: Some(RunStatus::Completed), ..RunFilter::default() }).await, ["a2"]);
    assert_eq!(
        list(RunFilter {
            graph_id: Some("a".into()),
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        })
        .await,
        ["a3", "a1"]
    );
    // From is inclusive, until exclusive.
    let window =
        RunFilter { created_from: Some(created[1]), created_until: Some(created[3]), ..RunFilter::default() };
    assert_eq!(list(window).await, ["a3", "a2"]);
    assert_eq!(list(RunFilter { limit: Some(2), ..RunFilter::default() }).await, ["b1", "a3"]);
    let since = RunFilter { created_from: Some(created[1]), limit: Some(1), ..RunFilter::default() };
    assert_eq!(list(since).await, ["b1"]);
    assert!(list(RunFilter { graph_id: Some("c".into()), ..RunFilter::default() }).await.is_empty());
}

/// Runs are found by the start of their id and by a value in their trigger
/// data (strings, numbers and booleans as JSON compares them), with the
/// other filters and the cursor.
pub async fn runs_are_found_by_id_prefix_and_trigger_field(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let triggers = [
        ("0a1", json!({"customer": "acme", "order": {"region": "eu", "count": 3}, "rush": true})),
        ("0a2", json!({"customer": "acme", "order": {"region": "us", "count": 3.0}})),
        ("0b1", json!({"customer": "globex", "order": {"region": "eu"}, "rush": false})),
        ("1a1", json!({"customer": "acme's \"best\"", "tags": ["x"], "big": 9_007_199_254_740_993_u64})),
        ("1b1", json!({"customer": "a\u{0}b", "big": 9_007_199_254_740_992_u64})),
    ];
    for (at, (run_id, trigger)) in (now_millis()..).step_by(3).zip(triggers) {
        let run = NewRun { at, trigger: trigger.clone(), ..new_run(DEFAULT_ORG, "g", run_id) };
        store.create_run(run).await.unwrap();
    }
    let list = |filter: RunFilter| {
        let store = store.clone();
        async move {
            let runs = store.list_runs(&filter).await.unwrap();
            run_ids(&runs).into_iter().map(str::to_owned).collect::<Vec<_>>()
        }
    };
    let prefix = |prefix: &str| RunFilter { run_id_prefix: Some(prefix.into()), ..RunFilter::default() };
    assert_eq!(list(prefix("0a")).await, ["0a2", "0a1"]);
    assert_eq!(list(prefix("0")).await, ["0b1", "0a2", "0a1"]);
    assert_eq!(list(prefix("1")).await, ["1b1", "1a1"]);
    assert!(list(prefix("0a1x")).await.is_empty());
    assert!(list(prefix("%")).await.is_empty(), "no wildcard");
    let field = |path: &str, value: serde_json::Value| RunFilter {
        trigger: Some(crate::TriggerField::new(path, value).unwrap()),
        ..RunFilter::default()
    };
    assert_eq!(list(field("customer", json!("acme"))).await, ["0a2", "0a1"]);
    assert_eq!(list(field("order.region", json!("eu"))).await, ["0b1", "0a1"]);
    assert_eq!(list(field("order.count", json!(3))).await, ["0a2", "0a1"], "3 and 3.0 are one number");
    assert_eq!(list(field("rush", json!(true))).await, ["0a1"]);
    assert_eq!(list(field("rush", json!(false))).await, ["0b1"]);
    assert_eq!(list(field("customer", json!("acme's \"best\""))).await, ["1a1"]);
    assert!(list(field("customer", json!("ACME"))).await.is_empty());
    assert!(list(field("order.count", json!("3"))).await.is_empty(), "a string is not a number");
    assert!(list(field("missing", json!(null))).await.is_empty());
    // Integers past 2^53 compare exactly (not 1b1's, one less); a U+0000 in a
    // run's trigger breaks no search (PostgreSQL cannot read such a trigger:
    // it finds that run by none of its fields).
    assert_eq!(list(field("big", json!(9_007_199_254_740_993_u64))).await, ["1a1"]);
    // With the other filters and the cursor.
    let both = RunFilter { run_id_prefix: Some("0a".into()), ..field("order.region", json!("eu")) };
    assert_eq!(list(both).await, ["0a1"]);
    let first = store.run_page(&field("customer", json!("acme")), 1).await.unwrap();
    assert_eq!(run_ids(&first.items), ["0a2"]);
    let after = RunCursor::decode(&first.next_cursor.unwrap()).unwrap();
    let second = RunFilter { after: Some(after), ..field("customer", json!("acme")) };
    assert_eq!(list(second).await, ["0a1"]);
}

/// Thousands of runs created in one millisecond are each listed once through
/// the cursor, by id, while another process starts runs; those come first in
/// a new listing.
pub async fn runs_of_the_same_millisecond_are_each_listed_once_through_the_cursor(database: &dyn Database) {
    const RUNS: usize = 2_500;
    const PAGE: usize = 100;
    const TIE: i64 = 1_700_000_000_000;
    let (store, other) = (database.open().await, database.open().await);
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let create = |run_id: &str, at: Millis| NewRun {
        at,
        trigger: json!({}),
        state: started_state(run_id, &json!({})),
        ..new_run(DEFAULT_ORG, "g", run_id)
    };
    // Ids in no particular order, all created in one millisecond, where
    // `created_until` paging lost runs.
    let ids: Vec<String> = (0..RUNS).map(|i| format!("run-{:05}", (i * 7_919) % 100_003)).collect();
    let mut creating = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let (store, run) = (store.clone(), create(&id, TIE));
        creating.spawn(async move { store.create_run(run).await.unwrap() });
    }
    creating.join_all().await;

    let mut filter = RunFilter { org: Some(DEFAULT_ORG.into()), ..RunFilter::default() };
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.run_page(&filter, PAGE).await.unwrap();
        pages += 1;
        listed.extend(page.items.iter().map(|run| run.run_id.clone()));
        // Another process starts a run while the list is read: it comes
        // before the first page.
        other.create_run(create(&format!("new-{pages}"), now_millis())).await.unwrap();
        let Some(next) = page.next_cursor else { break };
        filter.after = Some(RunCursor::decode(&next).unwrap());
    }
    assert_eq!(pages, RUNS / PAGE, "the last full page says there is no more");
    assert_eq!(listed.len(), RUNS, "no run twice");
    let mut expected = ids;
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, expected, "runs of one millisecond by id (greatest first), each once");

    // A new listing shows the runs started meanwhile first.
    let first = store.run_page(&RunFilter::default(), 3).await.unwrap();
    assert!(first.items.iter().all(|run| run.run_id.starts_with("new-")), "{:?}", first.items);
    assert_eq!(
        store.list_runs(&RunFilter::default()).await.unwrap().len(),
        RUNS + pages,
        "nothing else was stored"
    );
}
