//! Organizations: graphs, runs, tokens and secrets kept apart per
//! organization, run keys, and files of older schema versions migrated.

mod common;

use common::{db_path, graph, started_state};
use roomkit_graph_sqlite::{SCHEMA_VERSION, SqliteStore};
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{
    DEFAULT_ORG, Entry, Lease, NewRun, RunFilter, RunKey, RunStatus, StoreError, TokenRecord, now_millis,
};
use serde_json::json;

fn new_run(org: &str, graph_id: &str, run_id: &str, key: Option<&str>) -> NewRun {
    NewRun {
        org: org.into(),
        lease: None,
        graph_id: graph_id.into(),
        graph_version: 1,
        trigger: json!({}),
        state: started_state(run_id, &json!({})),
        key: key.map(RunKey::from),
        first_step: None,
    }
}

#[tokio::test]
async fn the_same_graph_id_in_two_organizations_is_two_graphs() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    let acme = graph("triage");
    let mut globex = graph("triage");
    globex.name = "Globex triage".into();
    assert_eq!(store.save_graph("acme", &acme).await.unwrap().version, 1);
    assert_eq!(store.save_graph("acme", &acme).await.unwrap().version, 2);
    assert_eq!(store.save_graph("globex", &globex).await.unwrap().version, 1);

    assert_eq!(store.graph("globex", "triage", None).await.unwrap().graph.name, "Globex triage");
    assert_eq!(store.graph("acme", "triage", None).await.unwrap().version, 2);
    assert!(matches!(store.graph("initech", "triage", None).await, Err(StoreError::NotFound(_))));

    store.save_graph("acme", &graph("billing")).await.unwrap();
    let listed: Vec<(String, String, u64)> = store
        .list_graphs(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .map(|stored| (stored.org, stored.graph.id, stored.version))
        .collect();
    assert_eq!(listed, [("acme".into(), "billing".into(), 1), ("acme".into(), "triage".into(), 2)]);
    assert_eq!(store.list_graphs(None).await.unwrap().len(), 3);
    assert!(store.list_graphs(Some("initech")).await.unwrap().is_empty());
}

#[tokio::test]
async fn runs_belong_to_their_graphs_organization() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph("acme", &graph("g")).await.unwrap();
    store.save_graph("globex", &graph("g")).await.unwrap();
    let run = store.create_run(new_run("acme", "g", "r1", None)).await.unwrap();
    assert_eq!(run.org, "acme");
    store.create_run(new_run("globex", "g", "r2", None)).await.unwrap();
    // A run of a graph its organization does not have is refused.
    assert!(matches!(
        store.create_run(new_run("initech", "g", "r3", None)).await,
        Err(StoreError::NotFound(what)) if what == "graph g version 1"
    ));

    let acme = RunFilter { org: Some("acme".into()), ..Default::default() };
    let ids: Vec<String> = store.list_runs(&acme).await.unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(ids, ["r1"]);
    assert_eq!(store.run("r2").await.unwrap().org, "globex");
}

#[tokio::test]
async fn a_run_key_is_taken_once() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph("acme", &graph("g")).await.unwrap();
    store.create_run(new_run("acme", "g", "r1", Some("schedule:g:1000"))).await.unwrap();
    let again = store.create_run(new_run("acme", "g", "r2", Some("schedule:g:1000"))).await;
    assert_eq!(
        again,
        Err(StoreError::Duplicate { key: "schedule:g:1000".into(), run_id: "r1".into(), same_request: true })
    );
    assert!(matches!(store.run("r2").await, Err(StoreError::NotFound(_))), "the refused run is not kept");
    // Other keys and runs without a key are not affected.
    store.create_run(new_run("acme", "g", "r3", Some("schedule:g:2000"))).await.unwrap();
    store.create_run(new_run("acme", "g", "r4", None)).await.unwrap();
    store.create_run(new_run("acme", "g", "r5", None)).await.unwrap();
}

#[tokio::test]
async fn a_run_key_tells_a_repeated_request_from_another_and_an_expired_key_is_taken_over() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph("acme", &graph("g")).await.unwrap();
    let with = |run_id: &str, key: RunKey| NewRun { key: Some(key), ..new_run("acme", "g", run_id, None) };
    let asked = RunKey::new("request:k").with_request_hash("body-1");
    store.create_run(with("r1", asked.clone())).await.unwrap();
    assert!(matches!(
        store.create_run(with("r2", asked)).await,
        Err(StoreError::Duplicate { run_id, same_request: true, .. }) if run_id == "r1"
    ));
    let other = RunKey::new("request:k").with_request_hash("body-2");
    assert!(matches!(
        store.create_run(with("r2", other)).await,
        Err(StoreError::Duplicate { run_id, same_request: false, .. }) if run_id == "r1"
    ));

    // A key held until a time: refused before it, taken over after it.
    let now = now_millis();
    store.create_run(with("h1", RunKey::new("webhook:x").until(now + 60_000))).await.unwrap();
    assert!(matches!(
        store.create_run(with("h2", RunKey::new("webhook:x").until(now + 60_000))).await,
        Err(StoreError::Duplicate { run_id, .. }) if run_id == "h1"
    ));
    store.create_run(with("e1", RunKey::new("webhook:y").until(now - 1))).await.unwrap();
    store.create_run(with("e2", RunKey::new("webhook:y").until(now + 60_000))).await.unwrap();
    assert!(
        matches!(
            store.create_run(with("e3", RunKey::new("webhook:y"))).await,
            Err(StoreError::Duplicate { run_id, .. }) if run_id == "e2"
        ),
        "the new run holds the key now"
    );
    assert_eq!(store.run("e1").await.unwrap().run_id, "e1", "the run that let the key go is kept");
}

#[tokio::test]
async fn tokens_are_found_by_hash_only_and_never_replaced() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    let token = TokenRecord {
        token_hash: "ab12".into(),
        org: "acme".into(),
        label: Some("ci".into()),
        created_at: 1,
    };
    store.create_token(&token).await.unwrap();
    assert_eq!(store.token("ab12").await.unwrap(), Some(token.clone()));
    assert_eq!(store.token("ab13").await.unwrap(), None);
    let stolen = TokenRecord { org: "globex".into(), ..token.clone() };
    assert!(matches!(store.create_token(&stolen).await, Err(StoreError::Invalid(_))));
    assert_eq!(store.token("ab12").await.unwrap(), Some(token), "the first token is unchanged");
}

#[tokio::test]
async fn secrets_are_kept_per_organization_and_graph() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.set_secret("acme", "g", "webhook", Some("s1")).await.unwrap();
    assert_eq!(store.secret("acme", "g", "webhook").await.unwrap().as_deref(), Some("s1"));
    assert_eq!(store.secret("globex", "g", "webhook").await.unwrap(), None);
    assert_eq!(store.secret("acme", "h", "webhook").await.unwrap(), None);
    store.set_secret("acme", "g", "webhook", Some("s2")).await.unwrap();
    assert_eq!(store.secret("acme", "g", "webhook").await.unwrap().as_deref(), Some("s2"));
    store.set_secret("acme", "g", "webhook", None).await.unwrap();
    assert_eq!(store.secret("acme", "g", "webhook").await.unwrap(), None);
}

/// The tables of schema version 1, as that version created them.
const SCHEMA_1: &str = "
CREATE TABLE graphs (graph_id TEXT NOT NULL, version INTEGER NOT NULL, graph_json TEXT NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (graph_id, version)) WITHOUT ROWID;
CREATE TABLE runs (run_id TEXT NOT NULL PRIMARY KEY, graph_id TEXT NOT NULL, graph_version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
    current_node_id TEXT, previous_node_id TEXT, error TEXT, version INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, wake_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    FOREIGN KEY (graph_id, graph_version) REFERENCES graphs (graph_id, version));
CREATE INDEX runs_by_graph ON runs (graph_id, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX runs_by_created ON runs (created_at);
CREATE TABLE outputs (run_id TEXT NOT NULL REFERENCES runs (run_id), node_id TEXT NOT NULL,
    entry_json TEXT NOT NULL, PRIMARY KEY (run_id, node_id));
CREATE TABLE transcript (run_id TEXT NOT NULL REFERENCES runs (run_id), seq INTEGER NOT NULL,
    at INTEGER NOT NULL, entry_json TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
PRAGMA application_id = 1380665170;
PRAGMA user_version = 1;
";

#[tokio::test]
async fn a_file_of_schema_version_1_is_migrated_with_everything_in_it() {
    let (_dir, path) = db_path();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_1).unwrap();
        let graph_json = graph("review").to_json();
        conn.execute("INSERT INTO graphs VALUES ('review', 1, ?1, 5)", [&graph_json]).unwrap();
        conn.execute_batch(
            "INSERT INTO runs VALUES ('r1', 'review', 1, 'waiting', 'draft', 'start', NULL, 3, 2, NULL, 10, 20);
             INSERT INTO outputs VALUES ('r1', 'start', '{\"output\":{\"input\":{\"topic\":\"x\"}}}');
             INSERT INTO transcript VALUES ('r1', 1, 10,
                 '{\"type\":\"run_started\",\"graph_id\":\"review\",\"graph_version\":1,\"trigger\":{\"topic\":\"x\"}}');
             INSERT INTO transcript VALUES ('r1', 2, 20, '{\"type\":\"run_completed\"}');",
        )
        .unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();
    let (record, state) = store.load_run("r1").await.unwrap();
    assert_eq!(
        (record.org.as_str(), record.status, record.version, record.last_seq),
        (DEFAULT_ORG, RunStatus::Waiting, 3, 2)
    );
    assert_eq!(state.context["start"], json!({"output": {"input": {"topic": "x"}}}));
    let transcript = store.transcript("r1", 0, 10).await.unwrap();
    assert_eq!(transcript.len(), 2);
    assert_eq!(transcript[1].entry, Entry::RunCompleted);
    assert!(matches!(&transcript[0].entry, Entry::RunStarted { graph_id, .. } if graph_id == "review"));
    assert_eq!(store.graph(DEFAULT_ORG, "review", None).await.unwrap().created_at, 5);

    // The migrated file works as a new one: new versions, runs, keys, leases.
    assert_eq!(store.save_graph(DEFAULT_ORG, &graph("review")).await.unwrap().version, 2);
    store.create_run(new_run(DEFAULT_ORG, "review", "r2", Some("k"))).await.unwrap();
    let claimed = store.claim_run("r2", &Lease::new("me", now_millis(), 60_000)).await.unwrap();
    assert_eq!(claimed.and_then(|run| run.owner).as_deref(), Some("me"));
    drop(store);
    assert_is_current(&path);
}

/// Checks the file at `path` is of this schema version, with every reference
/// intact and the lease index in place.
fn assert_is_current(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).expect("the file opens");
    let version: i32 =
        conn.pragma_query_value(None, "user_version", |row| row.get(0)).expect("a schema version");
    assert_eq!(version, SCHEMA_VERSION);
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))
        .expect("a foreign key check");
    assert_eq!(broken, 0);
    let lease_index: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'runs_by_lease'", [], |r| r.get(0))
        .expect("a look at the schema");
    assert_eq!(lease_index, 1);
}

/// The tables of schema version 2, as that version created them.
const SCHEMA_2: &str = "
CREATE TABLE graphs (org TEXT NOT NULL, graph_id TEXT NOT NULL, version INTEGER NOT NULL,
    graph_json TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (org, graph_id, version)) WITHOUT ROWID;
CREATE TABLE runs (run_id TEXT NOT NULL PRIMARY KEY, org TEXT NOT NULL, graph_id TEXT NOT NULL,
    graph_version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
    current_node_id TEXT, previous_node_id TEXT, error TEXT, version INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, wake_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    run_key TEXT,
    FOREIGN KEY (org, graph_id, graph_version) REFERENCES graphs (org, graph_id, version));
CREATE INDEX runs_by_graph ON runs (org, graph_id, created_at);
CREATE INDEX runs_by_org ON runs (org, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX runs_by_created ON runs (created_at);
CREATE UNIQUE INDEX runs_by_key ON runs (run_key) WHERE run_key IS NOT NULL;
CREATE TABLE outputs (run_id TEXT NOT NULL REFERENCES runs (run_id), node_id TEXT NOT NULL,
    entry_json TEXT NOT NULL, PRIMARY KEY (run_id, node_id));
CREATE TABLE transcript (run_id TEXT NOT NULL REFERENCES runs (run_id), seq INTEGER NOT NULL,
    at INTEGER NOT NULL, entry_json TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE TABLE tokens (token_hash TEXT NOT NULL PRIMARY KEY, org TEXT NOT NULL, label TEXT,
    created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE secrets (org TEXT NOT NULL, graph_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    updated_at INTEGER NOT NULL, PRIMARY KEY (org, graph_id, name)) WITHOUT ROWID;
PRAGMA application_id = 1380665170;
PRAGMA user_version = 2;
";

#[tokio::test]
async fn a_file_of_schema_version_2_is_migrated_with_everything_in_it() {
    let (_dir, path) = db_path();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_2).unwrap();
        let graph_json = graph("review").to_json();
        conn.execute("INSERT INTO graphs VALUES ('acme', 'review', 1, ?1, 5)", [&graph_json]).unwrap();
        conn.execute_batch(
            "INSERT INTO runs VALUES ('r1', 'acme', 'review', 1, 'running', 'draft', 'start', NULL, 3, 2, NULL,
                 10, 20, 'key-1');
             INSERT INTO runs VALUES ('r2', 'acme', 'review', 1, 'waiting', 'pause', 'draft', NULL, 4, 3, 99,
                 11, 21, NULL);
             INSERT INTO outputs VALUES ('r1', 'start', '{\"output\":{\"input\":{\"topic\":\"x\"}}}');
             INSERT INTO outputs VALUES ('r1', 'zeta', '{\"output\":1}');
             INSERT INTO outputs VALUES ('r1', 'alpha', '{\"output\":2}');
             INSERT INTO transcript VALUES ('r1', 1, 10,
                 '{\"type\":\"run_started\",\"graph_id\":\"review\",\"graph_version\":1,\"trigger\":{\"topic\":\"x\"}}');
             INSERT INTO transcript VALUES ('r1', 2, 20, '{\"type\":\"run_completed\"}');
             INSERT INTO tokens VALUES ('ab12', 'acme', 'ci', 7);
             INSERT INTO secrets VALUES ('acme', 'review', 'webhook', 's1', 8);",
        )
        .unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();
    let (record, state) = store.load_run("r1").await.unwrap();
    assert_eq!(
        (record.org.as_str(), record.status, record.version, record.last_seq, record.owner),
        ("acme", RunStatus::Running, 3, 2, None)
    );
    assert_eq!(state.context["start"], json!({"output": {"input": {"topic": "x"}}}));
    assert_eq!(store.transcript("r1", 0, 10).await.unwrap().len(), 2);
    let parked = store.run("r2").await.unwrap();
    assert_eq!(
        (parked.status, parked.wake_at, parked.current_node_id.as_deref()),
        (RunStatus::Waiting, Some(99), Some("pause"))
    );
    assert_eq!(store.token("ab12").await.unwrap().map(|t| t.org).as_deref(), Some("acme"));
    assert_eq!(store.secret("acme", "review", "webhook").await.unwrap().as_deref(), Some("s1"));
    assert!(matches!(
        store.create_run(new_run("acme", "review", "r3", Some("key-1"))).await,
        Err(StoreError::Duplicate { run_id, .. }) if run_id == "r1"
    ));

    // The running run is nobody's: it can be claimed.
    let claimable = store.claimable_runs(now_millis(), 10).await.unwrap();
    assert_eq!(claimable.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["r1"]);
    let claimed = store.claim_run("r1", &Lease::new("me", now_millis(), 60_000)).await.unwrap();
    assert_eq!(claimed.map(|run| run.version), Some(3));

    // The context keeps the order its entries were first written in, across
    // the migration and after it.
    let keys = |state: &roomkit_graph::EngineState| state.context.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&state), ["start", "zeta", "alpha"]);
    let mut next = common::step("r1", 3, "beta", json!(3), vec![common::completed("beta", json!(3))]);
    next.writes.push(("zeta".into(), json!({"output": 4})));
    store.commit_step(next).await.unwrap();
    let (_, state) = store.load_run("r1").await.unwrap();
    assert_eq!(keys(&state), ["start", "zeta", "alpha", "beta"]);
    assert_eq!(state.context["zeta"], json!({"output": 4}));
    drop(store);
    assert_is_current(&path);
}

/// The tables of schema version 4 that the migration to 5 reads, as that
/// version created them (with the lease columns of version 3).
const SCHEMA_4: &str = "
CREATE TABLE graphs (org TEXT NOT NULL, graph_id TEXT NOT NULL, version INTEGER NOT NULL,
    graph_json TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (org, graph_id, version)) WITHOUT ROWID;
CREATE TABLE runs (run_id TEXT NOT NULL PRIMARY KEY, org TEXT NOT NULL, graph_id TEXT NOT NULL,
    graph_version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
    current_node_id TEXT, previous_node_id TEXT, error TEXT, version INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, wake_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    run_key TEXT, owner TEXT, lease_until INTEGER,
    FOREIGN KEY (org, graph_id, graph_version) REFERENCES graphs (org, graph_id, version));
CREATE INDEX runs_by_graph ON runs (org, graph_id, created_at);
CREATE INDEX runs_by_org ON runs (org, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX runs_by_created ON runs (created_at);
CREATE UNIQUE INDEX runs_by_key ON runs (run_key) WHERE run_key IS NOT NULL;
CREATE INDEX runs_by_lease ON runs (status, lease_until);
CREATE TABLE outputs (run_id TEXT NOT NULL REFERENCES runs (run_id), node_id TEXT NOT NULL,
    pos INTEGER NOT NULL, entry_json TEXT NOT NULL, PRIMARY KEY (run_id, node_id)) WITHOUT ROWID;
CREATE TABLE transcript (run_id TEXT NOT NULL REFERENCES runs (run_id), seq INTEGER NOT NULL,
    at INTEGER NOT NULL, entry_json TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE TABLE tokens (token_hash TEXT NOT NULL PRIMARY KEY, org TEXT NOT NULL, label TEXT,
    created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE secrets (org TEXT NOT NULL, graph_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    updated_at INTEGER NOT NULL, PRIMARY KEY (org, graph_id, name)) WITHOUT ROWID;
PRAGMA application_id = 1380665170;
PRAGMA user_version = 4;
";

/// A file of schema version 4 with run `r1` (three outputs, written in the
/// order start, zeta, alpha; zeta overwritten since) and run `r2` (none).
fn schema_4_file(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).expect("the file opens");
    conn.execute_batch(SCHEMA_4).expect("the schema is created");
    let graph_json = graph("review").to_json();
    conn.execute("INSERT INTO graphs VALUES ('acme', 'review', 1, ?1, 5)", [&graph_json])
        .expect("the graph is stored");
    conn.execute_batch(
        "INSERT INTO runs VALUES ('r1', 'acme', 'review', 1, 'running', 'draft', 'start', NULL, 4, 3, NULL,
             10, 20, NULL, NULL, NULL);
         INSERT INTO runs VALUES ('r2', 'acme', 'review', 1, 'waiting', 'pause', 'start', NULL, 2, 1, 99,
             11, 21, NULL, NULL, NULL);
         INSERT INTO outputs VALUES ('r1', 'alpha', 196608, '{\"output\":2}');
         INSERT INTO outputs VALUES ('r1', 'start', 65536, '{\"output\":{\"input\":{\"topic\":\"x\"}}}');
         INSERT INTO outputs VALUES ('r1', 'zeta', 131072, '{\"output\":[1,{\"b\":2,\"a\":1}]}');
         INSERT INTO transcript VALUES ('r1', 1, 10,
             '{\"type\":\"run_started\",\"graph_id\":\"review\",\"graph_version\":1,\"trigger\":{\"topic\":\"x\"}}');
         INSERT INTO transcript VALUES ('r1', 2, 12, '{\"type\":\"node_completed\",\"node_id\":\"zeta\",\"output\":1}');
         INSERT INTO transcript VALUES ('r1', 3, 14, '{\"type\":\"node_completed\",\"node_id\":\"alpha\",\"output\":2}');
         INSERT INTO transcript VALUES ('r2', 1, 11,
             '{\"type\":\"run_started\",\"graph_id\":\"review\",\"graph_version\":1,\"trigger\":{}}');",
    )
    .expect("the runs are stored");
}

#[tokio::test]
async fn a_file_of_schema_version_4_keeps_each_runs_context_in_order_in_its_transcript() {
    let (_dir, path) = db_path();
    schema_4_file(&path);

    let store = SqliteStore::open(&path).unwrap();
    let keys = |state: &roomkit_graph::EngineState| state.context.keys().cloned().collect::<Vec<_>>();
    let (record, state) = store.load_run("r1").await.unwrap();
    assert_eq!((record.version, record.last_seq), (4, 3));
    assert_eq!(keys(&state), ["start", "zeta", "alpha"]);
    assert_eq!(state.context["zeta"], json!({"output": [1, {"b": 2, "a": 1}]}));
    assert_eq!(state.context["start"], json!({"output": {"input": {"topic": "x"}}}));
    let (_, empty) = store.load_run("r2").await.unwrap();
    assert!(empty.context.is_empty());
    // The transcript reads as before.
    let transcript = store.transcript("r1", 0, 10).await.unwrap();
    assert_eq!(transcript.iter().map(|event| event.seq).collect::<Vec<_>>(), [1, 2, 3]);

    // Later commits write after the migrated context: new entries go last,
    // an overwritten one keeps its place.
    let mut next = common::step("r1", 4, "beta", json!(3), vec![common::completed("beta", json!(3))]);
    next.writes.push(("zeta".into(), json!({"output": 4})));
    store.commit_step(next).await.unwrap();
    let (_, state) = store.load_run("r1").await.unwrap();
    assert_eq!(keys(&state), ["start", "zeta", "alpha", "beta"]);
    assert_eq!(state.context["zeta"], json!({"output": 4}));
    drop(store);
    assert_is_current(&path);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let outputs: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'outputs'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(outputs, 0, "the outputs table is gone");
}

#[tokio::test]
async fn a_file_of_schema_version_4_with_outputs_of_a_run_without_transcript_is_left_as_it_was() {
    let (_dir, path) = db_path();
    schema_4_file(&path);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("DELETE FROM transcript WHERE run_id = 'r1'", []).unwrap();
    }
    let before = std::fs::read(&path).unwrap();

    let err = SqliteStore::open(&path).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("outputs but no transcript event"), "{err}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i32 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    let outputs: i64 = conn.query_row("SELECT count(*) FROM outputs", [], |row| row.get(0)).unwrap();
    assert_eq!((version, outputs), (4, 3), "nothing migrated, nothing lost");
    drop(conn);
    assert_eq!(std::fs::read(&path).unwrap().len(), before.len());
}

/// The tables of schema version 6, as that version created them.
const SCHEMA_6: &str = "
CREATE TABLE graphs (org TEXT NOT NULL, graph_id TEXT NOT NULL, version INTEGER NOT NULL,
    graph_json TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (org, graph_id, version)) WITHOUT ROWID;
CREATE TABLE runs (run_id TEXT NOT NULL PRIMARY KEY, org TEXT NOT NULL, graph_id TEXT NOT NULL,
    graph_version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
    current_node_id TEXT, previous_node_id TEXT, error TEXT, version INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, wake_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    run_key TEXT, owner TEXT, lease_until INTEGER, key_hash TEXT, key_expires_at INTEGER,
    FOREIGN KEY (org, graph_id, graph_version) REFERENCES graphs (org, graph_id, version));
CREATE INDEX runs_by_graph ON runs (org, graph_id, created_at);
CREATE INDEX runs_by_org ON runs (org, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX runs_by_created ON runs (created_at);
CREATE UNIQUE INDEX runs_by_key ON runs (run_key) WHERE run_key IS NOT NULL;
CREATE INDEX runs_by_lease ON runs (status, lease_until);
CREATE TABLE transcript (run_id TEXT NOT NULL REFERENCES runs (run_id), seq INTEGER NOT NULL,
    at INTEGER NOT NULL, entry_json TEXT NOT NULL, writes_json TEXT, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE TABLE tokens (token_hash TEXT NOT NULL PRIMARY KEY, org TEXT NOT NULL, label TEXT,
    created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE secrets (org TEXT NOT NULL, graph_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    updated_at INTEGER NOT NULL, PRIMARY KEY (org, graph_id, name)) WITHOUT ROWID;
PRAGMA application_id = 1380665170;
PRAGMA user_version = 6;
";

/// A file of schema version 6 gains each run's step count (none counted yet)
/// and pending children (none), keeping everything else; its runs then count
/// steps and wait on children as new ones do.
#[tokio::test]
async fn a_file_of_schema_version_6_gains_step_counts_and_pending_children() {
    let (_dir, path) = db_path();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_6).unwrap();
        let graph_json = graph("review").to_json();
        conn.execute("INSERT INTO graphs VALUES ('acme', 'review', 1, ?1, 5)", [&graph_json]).unwrap();
        conn.execute_batch(
            "INSERT INTO runs VALUES ('r1', 'acme', 'review', 1, 'waiting', 'approve', 'draft', NULL, 3, 2, NULL,
                 10, 20, 'key-1', NULL, NULL, 'hash-1', NULL);
             INSERT INTO transcript VALUES ('r1', 1, 10,
                 '{\"type\":\"run_started\",\"graph_id\":\"review\",\"graph_version\":1,\"trigger\":{}}',
                 '{\"start\":{\"output\":{\"topic\":\"x\"}}}');
             INSERT INTO transcript VALUES ('r1', 2, 12,
                 '{\"type\":\"node_completed\",\"node_id\":\"draft\",\"output\":\"v1\"}',
                 '{\"draft\":{\"output\":\"v1\"}}');",
        )
        .unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();
    let (record, state) = store.load_run("r1").await.unwrap();
    assert_eq!(
        (record.status, record.version, record.last_seq, record.steps, record.pending.len()),
        (RunStatus::Waiting, 3, 2, 0, 0)
    );
    assert_eq!((state.waiting, state.pending.len()), (true, 0));
    assert_eq!(state.context.keys().collect::<Vec<_>>(), ["start", "draft"]);
    assert!(matches!(
        store.create_run(new_run("acme", "review", "r2", Some("key-1"))).await,
        Err(StoreError::Duplicate { run_id, .. }) if run_id == "r1"
    ));

    let mut next = common::step("r1", 3, "legal", json!(1), vec![common::completed("legal", json!(1))]);
    next.status = RunStatus::Waiting;
    next.steps = 4;
    next.pending = vec!["security".into()];
    store.commit_step(next).await.unwrap();
    let (record, state) = store.load_run("r1").await.unwrap();
    assert_eq!(record.steps, 4);
    assert_eq!(state.pending, ["security"]);
    drop(store);
    assert_is_current(&path);
}
