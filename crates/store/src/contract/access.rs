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
        label: Some("ci".into()),
        expires_at: Some(9_000),
        read_only: true,
        ..TokenRecord::new("ab12", "tok_ab12", "acme", 1)
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

/// An organization's tokens are listed oldest first, never another's; one
/// revoked is gone for every process at once (and for its organization
/// only); a use is recorded, and an older one never replaces a later.
pub async fn tokens_are_listed_revoked_and_their_use_recorded(database: &dyn Database) {
    let (store, other) = (database.open().await, database.open().await);
    let first = TokenRecord::new("h1", "tok_1", "acme", 10);
    let second = TokenRecord { label: Some("ops".into()), ..TokenRecord::new("h2", "tok_2", "acme", 20) };
    let theirs = TokenRecord::new("h3", "tok_3", "globex", 5);
    for token in [&second, &theirs, &first] {
        store.create_token(token).await.unwrap();
    }
    assert_eq!(other.tokens("acme").await.unwrap(), [first.clone(), second.clone()]);
    assert_eq!(other.tokens("initech").await.unwrap(), []);

    other.record_token_use("h1", 500).await.unwrap();
    other.record_token_use("h1", 400).await.unwrap();
    store.record_token_use("unknown", 400).await.unwrap();
    assert_eq!(store.token("h1").await.unwrap().unwrap().last_used_at, Some(500), "the later use stays");

    assert!(!store.revoke_token("globex", "tok_1").await.unwrap(), "not theirs to revoke");
    assert!(store.token("h1").await.unwrap().is_some());
    // The other process reads the token first, as a server would on a request.
    assert!(other.token("h1").await.unwrap().is_some());
    assert!(store.revoke_token("acme", "tok_1").await.unwrap());
    assert_eq!(other.token("h1").await.unwrap(), None, "revoked for every process at once");
    assert!(!store.revoke_token("acme", "tok_1").await.unwrap(), "revoked already");
    let ids: Vec<String> = other.tokens("acme").await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["tok_2"]);
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
