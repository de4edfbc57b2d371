//! Graphs: stored by version, per organization, listed by id a page at a time.

use std::collections::HashSet;

use roomkit_graph::Node;

use super::Database;
use super::fixtures::graph;
use crate::{DEFAULT_ORG, GraphCursor, StoreError};

/// Versions count up per graph id, whichever process saves them; the latest
/// is what a read without a version gives.
pub async fn versions_count_up_per_id_and_the_latest_is_the_default(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    let first = graph("review");
    let mut second = graph("review");
    second.name = "Review, second draft".into();

    assert_eq!(store.save_graph(DEFAULT_ORG, &first).await.unwrap().version, 1);
    assert_eq!(store.save_graph(DEFAULT_ORG, &graph("other")).await.unwrap().version, 1);
    assert_eq!(other.save_graph(DEFAULT_ORG, &second).await.unwrap().version, 2, "saved by another process");

    let latest = store.graph(DEFAULT_ORG, "review", None).await.unwrap();
    assert_eq!((latest.version, latest.graph), (2, second));
    assert_eq!(store.latest_graph_version(DEFAULT_ORG, "review").await.unwrap(), 2);
    assert_eq!(other.graph(DEFAULT_ORG, "review", Some(1)).await.unwrap().graph, first);
    assert_eq!(store.graph(DEFAULT_ORG, "other", None).await.unwrap().version, 1);
    assert!(
        matches!(store.graph(DEFAULT_ORG, "review", Some(3)).await, Err(StoreError::NotFound(what)) if what == "graph review version 3")
    );
    assert!(
        matches!(store.graph(DEFAULT_ORG, "nope", None).await, Err(StoreError::NotFound(what)) if what == "graph nope")
    );
}

/// The same id in two organizations is two graphs, each with its versions;
/// lists give the latest version of each, by organization and id.
pub async fn the_same_graph_id_in_two_organizations_is_two_graphs(database: &dyn Database) {
    let store = database.open().await;
    let acme = graph("triage");
    let mut globex = graph("triage");
    globex.name = "Globex triage".into();
    assert_eq!(store.save_graph("acme", &acme).await.unwrap().version, 1);
    assert_eq!(store.save_graph("acme", &acme).await.unwrap().version, 2);
    assert_eq!(store.save_graph("globex", &globex).await.unwrap().version, 1, "per organization");

    assert_eq!(store.graph("globex", "triage", None).await.unwrap().graph.name, "Globex triage");
    assert_eq!(store.graph("acme", "triage", None).await.unwrap().version, 2);
    assert!(matches!(store.graph("initech", "triage", None).await, Err(StoreError::NotFound(_))));

    store.save_graph("acme", &graph("billing")).await.unwrap();
    let listed = |graphs: Vec<crate::StoredGraph>| {
        graphs.into_iter().map(|stored| (stored.org, stored.graph.id, stored.version)).collect::<Vec<_>>()
    };
    assert_eq!(
        listed(store.list_graphs(Some("acme")).await.unwrap()),
        [("acme".into(), "billing".into(), 1), ("acme".into(), "triage".into(), 2)]
    );
    assert_eq!(
        listed(store.list_graphs(None).await.unwrap()),
        [
            ("acme".into(), "billing".into(), 1),
            ("acme".into(), "triage".into(), 2),
            ("globex".into(), "triage".into(), 1)
        ]
    );
    assert!(store.list_graphs(Some("initech")).await.unwrap().is_empty());
}

/// Graphs of one organization are listed by id, a page at a time, once each
/// with their latest version; a last page that is full says there is no more.
pub async fn graphs_are_listed_by_id_a_page_at_a_time_with_their_latest_versions(database: &dyn Database) {
    let store = database.open().await;
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

    for id in ["b", "a", "c", "g"] {
        store.save_graph("initech", &graph(id)).await.unwrap();
    }
    let ids = |page: &crate::Page<crate::StoredGraph>| {
        page.items.iter().map(|stored| stored.graph.id.clone()).collect::<Vec<_>>()
    };
    let first = store.graph_page("initech", None, 2).await.unwrap();
    assert_eq!(ids(&first), ["a", "b"]);
    let after = GraphCursor::decode(&first.next_cursor.unwrap()).unwrap();
    let second = store.graph_page("initech", Some(&after), 2).await.unwrap();
    assert_eq!((ids(&second), second.next_cursor), (vec!["c".to_owned(), "g".to_owned()], None));
}

/// A graph's versions are listed newest first, a page at a time, each once;
/// only its organization's, and none for a graph it lacks.
pub async fn a_graphs_versions_are_listed_newest_first_a_page_at_a_time(database: &dyn Database) {
    let store = database.open().await;
    for draft in 1..=7 {
        let mut review = graph("review");
        review.name = format!("draft {draft}");
        review.add_chain([Node::new("start", "start"), Node::new("end", "end")]).unwrap();
        store.save_graph(DEFAULT_ORG, &review).await.unwrap();
    }
    store.save_graph(DEFAULT_ORG, &graph("other")).await.unwrap();
    store.save_graph("acme", &graph("review")).await.unwrap();

    let mut before = None;
    let mut listed = Vec::new();
    loop {
        let page = store.graph_versions(DEFAULT_ORG, "review", before, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.version);
        assert!(page.iter().all(|version| (version.nodes, version.edges) == (2, 1)), "{page:?}");
        listed.extend(page.iter().map(|version| (version.version, version.name.clone())));
    }
    let expected: Vec<(u64, String)> = (1..=7).rev().map(|v| (v, format!("draft {v}"))).collect();
    assert_eq!(listed, expected);
    let acme = store.graph_versions("acme", "review", None, 10).await.unwrap();
    assert_eq!(acme.iter().map(|version| version.version).collect::<Vec<_>>(), [1]);
    assert!(store.graph_versions(DEFAULT_ORG, "nope", None, 10).await.unwrap().is_empty());
    assert!(store.graph_versions(DEFAULT_ORG, "review", Some(1), 10).await.unwrap().is_empty());
}
