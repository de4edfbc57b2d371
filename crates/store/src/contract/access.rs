//! Organizations: runs belong to their graph's organization; access tokens
//! and graph secrets are kept per organization.

use super::Database;
use super::fixtures::{graph, new_run};
use crate::{RunFilter, StoreError, TokenRecord};

/// A run belongs to the organization of its graph, and a run of a graph its
/// organization does not have is refused.
pub async fn runs_belong_to_their_graphs_organization(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph("acme", &graph("g")).await.unwrap();
    store.save_graph("globex", &graph("g")).await.unwrap();
    let run = store.create_run(new_run("acme", "g", "r1")).await.unwrap();
    assert_eq!(run.org, "acme");
    store.create_run(new_run("globex", "g", "r2")).await.unwrap();
    assert!(matches!(
        store.create_run(new_run("initech", "g", "r3")).await,
        Err(StoreError::NotFound(what)) if what == "graph g version 1"
    ));

    let acme = RunFilter { org: Some("acme".into()), ..RunFilter::default() };
    let ids: Vec<String> = store.list_runs(&acme).await.unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(ids, ["r1"]);
    assert_eq!(store.run("r2").await.unwrap().org, "globex");
}

/// A token is found by its hash only, by every process, and a second token
/// with the same hash is refused, leaving the first as it was.
pub async fn tokens_are_found_by_hash_only_and_never_replaced(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    let token = TokenRecord {
        token_hash: "ab12".into(),
        org: "acme".into(),
        label: Some("ci".into()),
        created_at: 1,
    };
    store.create_token(&token).await.unwrap();
    assert_eq!(store.token("ab12").await.unwrap(), Some(token.clone()));
    assert_eq!(other.token("ab12").await.unwrap(), Some(token.clone()));
    assert_eq!(store.token("ab13").await.unwrap(), None);
    assert!(matches!(other.create_token(&token).await, Err(StoreError::Invalid(_))));
    let stolen = TokenRecord { org: "globex".into(), ..token.clone() };
    assert!(matches!(store.create_token(&stolen).await, Err(StoreError::Invalid(_))));
    assert_eq!(other.token("ab12").await.unwrap(), Some(token), "the first token is unchanged");
}

/// A secret is kept per organization and graph, replaced and removed, as
/// every process sees.
pub async fn secrets_are_kept_per_organization_and_graph(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    store.set_secret("acme", "g", "webhook", Some("s1")).await.unwrap();
    assert_eq!(store.secret("acme", "g", "webhook").await.unwrap().as_deref(), Some("s1"));
    assert_eq!(store.secret("globex", "g", "webhook").await.unwrap(), None);
    assert_eq!(store.secret("acme", "h", "webhook").await.unwrap(), None);
    store.set_secret("acme", "g", "webhook", Some("s2")).await.unwrap();
    assert_eq!(other.secret("acme", "g", "webhook").await.unwrap().as_deref(), Some("s2"));
    other.set_secret("acme", "g", "webhook", None).await.unwrap();
    assert_eq!(store.secret("acme", "g", "webhook").await.unwrap(), None);
}
