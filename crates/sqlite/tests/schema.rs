//! The file's schema: how a run is kept in it, and files of older schema
//! versions migrated with everything in them (what every store does is in
//! `contract.rs`).

mod common;

use common::db_path;
use roomkit_graph_sqlite::{SCHEMA_VERSION, SqliteStore};
use roomkit_graph_store::contract::fixtures::{self, completed, graph, simple_step, start_run, step};
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{
    DEFAULT_ORG, Entry, Lease, NewRun, RunKey, RunStatus, StepCommit, StoreError, now_millis,
};
use serde_json::json;

fn new_run(org: &str, graph_id: &str, run_id: &str, key: Option<&str>) -> NewRun {
    NewRun { key: key.map(RunKey::from), ..fixtures::new_run(org, graph_id, run_id) }
}

/// A run's children that still wait are kept as a JSON list, and as null
/// when none is left.
#[tokio::test]
async fn pending_children_are_kept_as_a_json_list_or_null() {
    let (_dir, path) = db_path();
    let store = SqliteStore::open(&path).unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    start_run(&store, "g", "r").await;
    let fan_out = StepCommit {
        status: RunStatus::Waiting,
        current_node_id: Some("reviews".into()),
        steps: 7,
        pending: vec!["legal".into(), "security".into()],
        ..simple_step("r", 1, "draft")
    };
    store.commit_step(fan_out).await.unwrap();
    assert_eq!(pending_column(&path, "r").as_deref(), Some(r#"["legal","security"]"#));

    let joined = StepCommit {
        current_node_id: Some("publish".into()),
        steps: 8,
        pending: Vec::new(),
        ..simple_step("r", 2, "security")
    };
    store.commit_step(joined).await.unwrap();
    assert_eq!(pending_column(&path, "r"), None, "no child left is stored as null");
}

/// The `pending` column of run `run_id` as the file holds it.
fn pending_column(path: &std::path::Path, run_id: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(path).expect("the file opens");
    conn.query_row("SELECT pending FROM runs WHERE run_id = ?1", [run_id], |row| row.get(0))
        .expect("the run's row")
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
    // Where the run stood at its old entries was not kept: asked, the store says so.
    let unkept = store.run_at("r1", 1).await.unwrap_err();
    assert!(unkept.to_string().contains("was not kept"), "{unkept}");

    // The migrated file works as a new one: new versions, runs, keys, leases.
    assert_eq!(store.save_graph(DEFAULT_ORG, &graph("review")).await.unwrap().version, 2);
    store.create_run(new_run(DEFAULT_ORG, "review", "r2", Some("k"))).await.unwrap();
    assert_eq!(store.run_at("r2", 1).await.unwrap().position.status, RunStatus::Running);
    let claimed = store.claim_run("r2", &Lease::new("me", now_millis(), 60_000), now_millis()).await.unwrap();
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
    let token = store.token("ab12").await.unwrap().unwrap();
    assert_eq!(
        (token.id.as_str(), token.org.as_str(), token.label.as_deref()),
        ("tok_ab12", "acme", Some("ci")),
        "a token from before ids gets one from its hash"
    );
    assert_eq!((token.expires_at, token.read_only, token.last_used_at), (None, false, None));
    assert_eq!(store.secret("acme", "review", "webhook").await.unwrap().as_deref(), Some("s1"));
    assert!(matches!(
        store.create_run(new_run("acme", "review", "r3", Some("key-1"))).await,
        Err(StoreError::Duplicate { run_id, .. }) if run_id == "r1"
    ));

    // The running run is nobody's: it can be claimed.
    let claimable = store.claimable_runs(now_millis(), 10).await.unwrap();
    assert_eq!(claimable.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["r1"]);
    let claimed = store.claim_run("r1", &Lease::new("me", now_millis(), 60_000), now_millis()).await.unwrap();
    assert_eq!(claimed.map(|run| run.version), Some(3));

    // The context keeps the order its entries were first written in, across
    // the migration and after it.
    let keys = |state: &roomkit_graph::EngineState| state.context.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&state), ["start", "zeta", "alpha"]);
    let mut next = step("r1", 3, "beta", json!(3), vec![completed("beta", json!(3))]);
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
    let mut next = step("r1", 4, "beta", json!(3), vec![completed("beta", json!(3))]);
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

    let mut next = step("r1", 3, "legal", json!(1), vec![completed("legal", json!(1))]);
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
