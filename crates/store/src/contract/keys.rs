//! Run keys: a key is held by one run at a time, for good or until it
//! expires, and a refusal tells a repeated request from another one.

use super::Database;
use super::fixtures::{graph, new_run};
use crate::{DEFAULT_ORG, Millis, NewRun, RunFilter, RunKey, StoreError, now_millis};

/// Run `run_id` of graph `g` of `acme`, asking for `key`.
fn with_key(run_id: &str, key: impl Into<RunKey>) -> NewRun {
    NewRun { key: Some(key.into()), ..new_run("acme", "g", run_id) }
}

/// A second run with a held key is refused, naming the holder, and not kept;
/// other keys and runs without a key are not affected.
pub async fn a_run_key_is_taken_once(database: &dyn Database) {
    let store = database.open().await;
    store.save_graph("acme", &graph("g")).await.unwrap();
    store.create_run(with_key("r1", "schedule:g:1000")).await.unwrap();
    let again = store.create_run(with_key("r2", "schedule:g:1000")).await;
    assert_eq!(
        again,
        Err(StoreError::Duplicate { key: "schedule:g:1000".into(), run_id: "r1".into(), same_request: true })
    );
    assert!(matches!(store.run("r2").await, Err(StoreError::NotFound(_))), "the refused run is not kept");
    store.create_run(with_key("r3", "schedule:g:2000")).await.unwrap();
    store.create_run(new_run("acme", "g", "r4")).await.unwrap();
    store.create_run(new_run("acme", "g", "r5")).await.unwrap();
}

/// The same request hash is a repeat, another one is not; a key held until a
/// time is refused before it and taken over after it, the old run kept.
pub async fn a_run_key_tells_a_repeated_request_from_another_and_an_expired_key_is_taken_over(
    database: &dyn Database,
) {
    let store = database.open().await;
    store.save_graph("acme", &graph("g")).await.unwrap();
    let asked = RunKey::new("request:k").with_request_hash("body-1");
    store.create_run(with_key("r1", asked.clone())).await.unwrap();
    assert!(matches!(
        store.create_run(with_key("r2", asked)).await,
        Err(StoreError::Duplicate { run_id, same_request: true, .. }) if run_id == "r1"
    ));
    let other = RunKey::new("request:k").with_request_hash("body-2");
    assert!(matches!(
        store.create_run(with_key("r2", other)).await,
        Err(StoreError::Duplicate { run_id, same_request: false, .. }) if run_id == "r1"
    ));

    let now = now_millis();
    store.create_run(with_key("h1", RunKey::new("webhook:x").until(now + 60_000))).await.unwrap();
    assert!(matches!(
        store.create_run(with_key("h2", RunKey::new("webhook:x").until(now + 60_000))).await,
        Err(StoreError::Duplicate { run_id, .. }) if run_id == "h1"
    ));
    store.create_run(with_key("e1", RunKey::new("webhook:y").until(now - 1))).await.unwrap();
    store.create_run(with_key("e2", RunKey::new("webhook:y").until(now + 60_000))).await.unwrap();
    assert!(
        matches!(
            store.create_run(with_key("e3", RunKey::new("webhook:y"))).await,
            Err(StoreError::Duplicate { run_id, .. }) if run_id == "e2"
        ),
        "the new run holds the key now"
    );
    assert_eq!(store.run("e1").await.unwrap().run_id, "e1", "the run that let the key go is kept");
}

/// Two processes starting a run with the same key at once: one run starts,
/// the other is refused naming it; a run id that exists and a graph version
/// that does not are refused too, and nothing else is kept.
pub async fn a_run_key_starts_one_run_even_when_two_processes_use_it_at_once(database: &dyn Database) {
    let (a, b) = (database.open().await, database.open().await);
    a.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let keyed = |run_id: &str| NewRun { key: Some("k".into()), ..new_run(DEFAULT_ORG, "g", run_id) };
    let (first, second) = tokio::join!(a.create_run(keyed("r1")), b.create_run(keyed("r2")));
    let (won, lost) = if first.is_ok() { (first, second) } else { (second, first) };
    let holder = won.unwrap().run_id;
    assert!(matches!(lost, Err(StoreError::Duplicate { key, run_id, .. }) if key == "k" && run_id == holder));
    assert!(matches!(a.create_run(new_run(DEFAULT_ORG, "g", &holder)).await, Err(StoreError::Invalid(_))));
    assert!(matches!(
        a.create_run(NewRun { graph_version: 9, ..new_run(DEFAULT_ORG, "g", "r3") }).await,
        Err(StoreError::NotFound(what)) if what == "graph g version 9"
    ));
    assert_eq!(a.list_runs(&RunFilter::default()).await.unwrap().len(), 1, "nothing else was kept");
}

/// A run opens at its creator's time ([`NewRun::at`]), never at the store's
/// own clock: its record and its `run_started` event carry that time, and its
/// key is judged then. A key the wall clock calls expired is refused to a run
/// opened before it expired; one the wall clock calls live is taken by a run
/// opened after it expires.
pub async fn a_run_opens_at_its_creators_time_and_its_key_is_judged_then(database: &dyn Database) {
    const TEN_MINUTES: Millis = 10 * 60_000;
    let store = database.open().await;
    store.save_graph("acme", &graph("g")).await.unwrap();
    let now = now_millis();
    let past = now - TEN_MINUTES;
    let opened = store
        .create_run(NewRun { at: past, ..with_key("r1", RunKey::new("webhook:x").until(past + 60_000)) })
        .await
        .unwrap();
    assert_eq!((opened.created_at, opened.updated_at), (past, past));
    assert_eq!(store.run("r1").await.unwrap(), opened);
    let events = store.transcript("r1", 0, 10).await.unwrap();
    assert_eq!(events.iter().map(|event| event.at).collect::<Vec<_>>(), [past], "run_started at its time");

    let before_expiry = past + 59_999;
    assert!(
        matches!(
            store.create_run(NewRun { at: before_expiry, ..with_key("r2", "webhook:x") }).await,
            Err(StoreError::Duplicate { run_id, .. }) if run_id == "r1"
        ),
        "held at the time the run opens at, though expired by the wall clock"
    );

    store
        .create_run(NewRun { at: now, ..with_key("r3", RunKey::new("webhook:y").until(now + 60_000)) })
        .await
        .unwrap();
    let later = now + TEN_MINUTES;
    let taken = store.create_run(NewRun { at: later, ..with_key("r4", "webhook:y") }).await.unwrap();
    assert_eq!(taken.created_at, later);
    assert!(
        matches!(
            store.create_run(NewRun { at: later, ..with_key("r5", "webhook:y") }).await,
            Err(StoreError::Duplicate { run_id, .. }) if run_id == "r4"
        ),
        "r4 holds the key now"
    );
}
