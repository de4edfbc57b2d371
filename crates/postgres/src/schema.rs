//! The tables, in the schema [`SCHEMA`], and creating them once: the first
//! process to connect creates them under an advisory lock; the others find
//! them made.

use roomkit_graph_store::StoreError;
use tokio_postgres::Client;

use crate::error::pg;

/// The PostgreSQL schema (namespace) holding every table of the store.
pub const SCHEMA: &str = "roomkit_graph";

/// The version of the tables this build reads and writes (in
/// `roomkit_graph.meta`); a database of an older version is migrated, one of a
/// newer version is refused.
///
/// ```
/// assert_eq!(roomkit_graph_postgres::SCHEMA_VERSION, 6);
/// ```
pub const SCHEMA_VERSION: i32 = 6;

/// The key of the advisory lock held while the tables are created: "RKGR".
const CREATION_LOCK: i64 = 0x524B_4752;

/// The tables. JSON is stored as TEXT (kept byte for byte, key order
/// included); times are milliseconds since the Unix epoch. A run's context is
/// kept with its transcript, as in the SQLite store: the last event a commit
/// appends holds the context entries the commit wrote in `writes_json`, and
/// where the commit left the run in `position_json` (events committed before
/// version 5 hold `UNKEPT_POSITION` there). A
/// run's key (`run_key`) comes with the hash of the request it was asked with
/// (`key_hash`) and when the run lets it go (`key_expires_at`). `steps` counts
/// the steps a run has executed; `pending` holds the children of the parallel
/// node a waiting run waits on that still wait, as a JSON array of node ids in
/// node order (null when there are none). `parent_run_id` and
/// `parent_node_id` link a child run to the run and the node that started
/// it; `parent_runs_node` says whether the child runs that node itself (see
/// `ParentLink::runs_node`). Hooks and their deliveries are kept as in the
/// SQLite store.
const TABLES: &str = "
CREATE SCHEMA roomkit_graph;

CREATE TABLE roomkit_graph.meta (
    one            BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    schema_version INTEGER NOT NULL
);

CREATE TABLE roomkit_graph.graphs (
    org        TEXT   NOT NULL,
    graph_id   TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    graph_json TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, graph_id, version)
);

CREATE TABLE roomkit_graph.runs (
    run_id           TEXT   NOT NULL PRIMARY KEY,
    org              TEXT   NOT NULL,
    graph_id         TEXT   NOT NULL,
    graph_version    BIGINT NOT NULL,
    status           TEXT   NOT NULL
        CHECK (status IN ('running', 'queued', 'waiting', 'completed', 'failed', 'cancelled')),
    current_node_id  TEXT,
    previous_node_id TEXT,
    error            TEXT,
    version          BIGINT NOT NULL,
    last_seq         BIGINT NOT NULL,
    wake_at          BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    run_key          TEXT,
    owner            TEXT,
    lease_until      BIGINT,
    key_hash         TEXT,
    key_expires_at   BIGINT,
    steps            BIGINT NOT NULL DEFAULT 0,
    pending          TEXT,
    parent_run_id    TEXT,
    parent_node_id   TEXT,
    parent_runs_node BOOLEAN NOT NULL DEFAULT FALSE,
    concurrency_key   TEXT,
    concurrency_limit BIGINT,
    FOREIGN KEY (org, graph_id, graph_version) REFERENCES roomkit_graph.graphs (org, graph_id, version)
);
CREATE INDEX runs_by_concurrency ON roomkit_graph.runs (org, graph_id, concurrency_key, status, created_at)
    WHERE concurrency_key IS NOT NULL;
CREATE INDEX runs_live_by_org ON roomkit_graph.runs (org, status, created_at) WHERE status IN ('running', 'queued');
CREATE INDEX runs_queued_by_key ON roomkit_graph.runs (org, graph_id, concurrency_key, created_at)
    WHERE status = 'queued';
CREATE INDEX runs_queued_unkeyed ON roomkit_graph.runs (org, created_at)
    WHERE status = 'queued' AND concurrency_key IS NULL;
CREATE INDEX runs_by_parent ON roomkit_graph.runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_by_graph ON roomkit_graph.runs (org, graph_id, created_at);
CREATE INDEX runs_by_org ON roomkit_graph.runs (org, created_at);
CREATE INDEX runs_by_status ON roomkit_graph.runs (status, created_at);
CREATE INDEX runs_by_wake ON roomkit_graph.runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX runs_by_created ON roomkit_graph.runs (created_at);
CREATE UNIQUE INDEX runs_by_key ON roomkit_graph.runs (run_key) WHERE run_key IS NOT NULL;
CREATE INDEX runs_by_lease ON roomkit_graph.runs (status, lease_until);

CREATE TABLE roomkit_graph.transcript (
    run_id      TEXT   NOT NULL REFERENCES roomkit_graph.runs (run_id),
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    entry_json  TEXT   NOT NULL,
    writes_json TEXT,
    position_json TEXT,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE roomkit_graph.tokens (
    token_hash   TEXT    NOT NULL PRIMARY KEY,
    org          TEXT    NOT NULL,
    label        TEXT,
    created_at   BIGINT  NOT NULL,
    id           TEXT    NOT NULL,
    expires_at   BIGINT,
    read_only    BOOLEAN NOT NULL DEFAULT FALSE,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX tokens_by_id ON roomkit_graph.tokens (org, id);

CREATE TABLE roomkit_graph.hooks (
    org        TEXT   NOT NULL,
    hook_id    TEXT   NOT NULL,
    url        TEXT   NOT NULL,
    events     TEXT   NOT NULL,
    graph_id   TEXT,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, hook_id)
);

CREATE TABLE roomkit_graph.hook_deliveries (
    delivery_id     TEXT   NOT NULL PRIMARY KEY,
    org             TEXT   NOT NULL,
    hook_id         TEXT   NOT NULL,
    event           TEXT   NOT NULL,
    run_id          TEXT   NOT NULL,
    seq             BIGINT NOT NULL,
    payload         TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    next_attempt_at BIGINT,
    attempts_json   TEXT   NOT NULL DEFAULT '[]'
);
CREATE INDEX hook_deliveries_due ON roomkit_graph.hook_deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX hook_deliveries_by_org ON roomkit_graph.hook_deliveries (org, created_at, delivery_id);
CREATE INDEX hook_deliveries_by_run ON roomkit_graph.hook_deliveries (run_id);
CREATE INDEX hook_deliveries_over ON roomkit_graph.hook_deliveries (created_at) WHERE next_attempt_at IS NULL;
CREATE INDEX hook_deliveries_by_hook ON roomkit_graph.hook_deliveries (org, hook_id, created_at);

CREATE TABLE roomkit_graph.retention (
    org      TEXT   NOT NULL,
    graph_id TEXT   NOT NULL,
    keep     BIGINT NOT NULL,
    PRIMARY KEY (org, graph_id)
);

CREATE TABLE roomkit_graph.run_limits (
    org         TEXT   NOT NULL PRIMARY KEY,
    max_running BIGINT NOT NULL
);

CREATE TABLE roomkit_graph.secrets (
    org        TEXT   NOT NULL,
    graph_id   TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org, graph_id, name)
);
";

/// From version 5 to 6: tokens get a public id (the tokens already stored
/// take `tok_` and the first 16 hex digits of their hash), an expiry, a
/// read-only flag and their last use (none for the tokens already stored:
/// they never expire and may change things, as before); run-event hooks,
/// their deliveries, retention rules and organizations' run limits get
/// their tables; runs may be queued and get their concurrency key and limit.
const MIGRATE_5_TO_6: &str = "
ALTER TABLE roomkit_graph.runs DROP CONSTRAINT IF EXISTS runs_status_check;
ALTER TABLE roomkit_graph.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'queued', 'waiting', 'completed', 'failed', 'cancelled'));
ALTER TABLE roomkit_graph.runs ADD COLUMN IF NOT EXISTS concurrency_key TEXT,
    ADD COLUMN IF NOT EXISTS concurrency_limit BIGINT;
CREATE INDEX IF NOT EXISTS runs_by_concurrency ON roomkit_graph.runs (org, graph_id, concurrency_key, status, created_at)
    WHERE concurrency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_live_by_org ON roomkit_graph.runs (org, status, created_at)
    WHERE status IN ('running', 'queued');
CREATE INDEX IF NOT EXISTS runs_queued_by_key ON roomkit_graph.runs (org, graph_id, concurrency_key, created_at)
    WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS runs_queued_unkeyed ON roomkit_graph.runs (org, created_at)
    WHERE status = 'queued' AND concurrency_key IS NULL;
ALTER TABLE roomkit_graph.tokens ADD COLUMN IF NOT EXISTS id TEXT,
    ADD COLUMN IF NOT EXISTS expires_at BIGINT,
    ADD COLUMN IF NOT EXISTS read_only BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN IF NOT EXISTS last_used_at BIGINT;
UPDATE roomkit_graph.tokens SET id = 'tok_' || substr(token_hash, 1, 16) WHERE id IS NULL;
ALTER TABLE roomkit_graph.tokens ALTER COLUMN id SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS tokens_by_id ON roomkit_graph.tokens (org, id);

CREATE TABLE IF NOT EXISTS roomkit_graph.hooks (
    org        TEXT   NOT NULL,
    hook_id    TEXT   NOT NULL,
    url        TEXT   NOT NULL,
    events     TEXT   NOT NULL,
    graph_id   TEXT,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, hook_id)
);

CREATE TABLE IF NOT EXISTS roomkit_graph.hook_deliveries (
    delivery_id     TEXT   NOT NULL PRIMARY KEY,
    org             TEXT   NOT NULL,
    hook_id         TEXT   NOT NULL,
    event           TEXT   NOT NULL,
    run_id          TEXT   NOT NULL,
    seq             BIGINT NOT NULL,
    payload         TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    next_attempt_at BIGINT,
    attempts_json   TEXT   NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS hook_deliveries_due ON roomkit_graph.hook_deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS hook_deliveries_by_org ON roomkit_graph.hook_deliveries (org, created_at, delivery_id);
CREATE INDEX IF NOT EXISTS hook_deliveries_by_run ON roomkit_graph.hook_deliveries (run_id);
CREATE INDEX IF NOT EXISTS hook_deliveries_over ON roomkit_graph.hook_deliveries (created_at) WHERE next_attempt_at IS NULL;
CREATE INDEX IF NOT EXISTS hook_deliveries_by_hook ON roomkit_graph.hook_deliveries (org, hook_id, created_at);

CREATE TABLE IF NOT EXISTS roomkit_graph.retention (
    org      TEXT   NOT NULL,
    graph_id TEXT   NOT NULL,
    keep     BIGINT NOT NULL,
    PRIMARY KEY (org, graph_id)
);
CREATE TABLE IF NOT EXISTS roomkit_graph.run_limits (
    org         TEXT   NOT NULL PRIMARY KEY,
    max_running BIGINT NOT NULL
);
";

/// The migrations, by the version they start from: a database is migrated
/// one version at a time up to [`SCHEMA_VERSION`].
const MIGRATIONS: [(i32, &str); 5] = [
    (
        // Version 2: a run's key gets a request hash and an expiry, none for
        // the keys already held (held for good, as before).
        1,
        "ALTER TABLE roomkit_graph.runs ADD COLUMN key_hash TEXT, ADD COLUMN key_expires_at BIGINT;",
    ),
    (
        // Version 3: runs get their step count and the children of a parallel
        // node they wait on; the runs already stored count no steps and wait
        // on no children.
        2,
        "ALTER TABLE roomkit_graph.runs ADD COLUMN IF NOT EXISTS steps BIGINT NOT NULL DEFAULT 0, \
         ADD COLUMN IF NOT EXISTS pending TEXT;",
    ),
    (
        // Version 4: a child run's link to its parent run and subgraph node;
        // the runs already stored have no parent.
        3,
        "ALTER TABLE roomkit_graph.runs ADD COLUMN IF NOT EXISTS parent_run_id TEXT, \
         ADD COLUMN IF NOT EXISTS parent_node_id TEXT; \
         CREATE INDEX IF NOT EXISTS runs_by_parent ON roomkit_graph.runs (parent_run_id) \
         WHERE parent_run_id IS NOT NULL;",
    ),
    (
        // Version 5: whether a child run runs its parent's node itself (the
        // child runs already stored run graphs of their own), and where each
        // commit left its run, kept with its last event. The events already
        // stored take the marker `UNKEPT_POSITION` from the column's default,
        // without being rewritten (the default is dropped at once: every
        // insert gives the column its value).
        4,
        "ALTER TABLE roomkit_graph.runs ADD COLUMN IF NOT EXISTS parent_runs_node BOOLEAN NOT NULL DEFAULT FALSE; \
         ALTER TABLE roomkit_graph.transcript ADD COLUMN IF NOT EXISTS position_json TEXT DEFAULT '\"unkept\"'; \
         ALTER TABLE roomkit_graph.transcript ALTER COLUMN position_json DROP DEFAULT;",
    ),
    (
        // Version 6: tokens get a public id, an expiry, a read-only flag and
        // their last use; run-event hooks and their deliveries get their
        // tables.
        5,
        MIGRATE_5_TO_6,
    ),
];

/// What a database holds of ours.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// No schema `roomkit_graph`: the tables must be made.
    Nothing,
    /// Ours, of an older version: it is migrated.
    Older(i32),
    /// Ours, of this version.
    Ours,
}

/// Makes sure the database holds the tables of this version: creates them
/// when there are none, migrates those of an older version; refuses a schema `roomkit_graph` that is not ours or
/// is of another version ([`StoreError::Foreign`], naming `target`), leaving
/// it untouched.
pub(crate) async fn prepare(client: &mut Client, target: &str) -> Result<(), StoreError> {
    if inspect(client, target).await? == Found::Ours {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATION_LOCK]).await.map_err(pg)?;
    // Another process may have made or migrated them while we waited for the lock.
    match inspect(&tx, target).await? {
        Found::Nothing => {
            tx.batch_execute(TABLES).await.map_err(pg)?;
            tx.execute("INSERT INTO roomkit_graph.meta (schema_version) VALUES ($1)", &[&SCHEMA_VERSION])
                .await
                .map_err(pg)?;
        }
        Found::Older(from) => {
            for (_, step) in MIGRATIONS.iter().filter(|(start, _)| *start >= from) {
                tx.batch_execute(step).await.map_err(pg)?;
            }
            tx.execute("UPDATE roomkit_graph.meta SET schema_version = $1", &[&SCHEMA_VERSION])
                .await
                .map_err(pg)?;
        }
        Found::Ours => {}
    }
    tx.commit().await.map_err(pg)
}

/// The key of the advisory lock held while the workers table is made: "RKGW".
const WORKERS_CREATION_LOCK: i64 = 0x524B_4757;

/// Makes the workers table when the database has none. It is kept apart
/// from the versioned tables: it is made when missing each time a store
/// connects (under an advisory lock, as two processes may connect at once),
/// so it needs no migration, and a build that does not know it leaves it
/// alone.
pub(crate) async fn create_workers_table(client: &mut Client) -> Result<(), StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('roomkit_graph.workers') IS NOT NULL", &[])
        .await
        .map_err(pg)?
        .get(0);
    if exists {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WORKERS_CREATION_LOCK]).await.map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS roomkit_graph.workers (
            worker_id  TEXT   NOT NULL PRIMARY KEY,
            instance   TEXT   NOT NULL,
            held_until BIGINT NOT NULL
        )",
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)
}

/// Looks at what the database holds under the schema `roomkit_graph`.
async fn inspect(client: &impl tokio_postgres::GenericClient, target: &str) -> Result<Found, StoreError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
             to_regclass('roomkit_graph.meta') IS NOT NULL",
            &[&SCHEMA],
        )
        .await
        .map_err(pg)?;
    let (schema, meta): (bool, bool) = (row.get(0), row.get(1));
    let foreign = |detail: String| StoreError::Foreign { path: target.to_owned(), detail };
    match (schema, meta) {
        (false, _) => Ok(Found::Nothing),
        (true, false) => Err(foreign(format!("its schema {SCHEMA} exists but is not a roomkit-graph store"))),
        (true, true) => {
            let versions =
                client.query("SELECT schema_version FROM roomkit_graph.meta", &[]).await.map_err(pg)?;
            match versions.first().map(|row| row.get::<_, i32>(0)) {
                Some(SCHEMA_VERSION) => Ok(Found::Ours),
                Some(older) if (1..SCHEMA_VERSION).contains(&older) => Ok(Found::Older(older)),
                Some(newer) if newer > SCHEMA_VERSION => Err(foreign(format!(
                    "its schema version {newer} is newer than this build's {SCHEMA_VERSION}"
                ))),
                Some(other) => Err(foreign(format!("unknown schema version {other}"))),
                None => Err(foreign(format!("{SCHEMA}.meta holds no schema version"))),
            }
        }
    }
}
