//! The file's layout and how a connection to it is opened: pragmas, the
//! schema marker (application id and schema version) and the tables.

use std::path::Path;

use roomkit_graph_store::StoreError;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::Options;
use crate::error::DbError;

/// The `PRAGMA application_id` of a roomkit-graph database: "RKGR".
///
/// ```
/// assert_eq!(roomkit_graph_sqlite::APPLICATION_ID.to_be_bytes(), *b"RKGR");
/// ```
pub const APPLICATION_ID: i32 = 0x524B_4752;

/// The schema version this build writes and reads (`PRAGMA user_version`).
/// A file of an older version is migrated when opened; one with a newer
/// version is refused as foreign rather than misread.
///
/// ```
/// assert_eq!(roomkit_graph_sqlite::SCHEMA_VERSION, 10);
/// ```
pub const SCHEMA_VERSION: i32 = 10;

/// The runs table of schema version 10 under the name `$name` (the 9 to 10
/// migration builds it aside, then gives it the name).
macro_rules! runs_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE ",
            $name,
            " (
    run_id           TEXT    NOT NULL PRIMARY KEY,
    org              TEXT    NOT NULL,
    graph_id         TEXT    NOT NULL,
    graph_version    INTEGER NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('running', 'queued', 'waiting', 'completed', 'failed', 'cancelled')),
    current_node_id  TEXT,
    previous_node_id TEXT,
    error            TEXT,
    version          INTEGER NOT NULL,
    last_seq         INTEGER NOT NULL,
    wake_at          INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    run_key          TEXT,
    owner            TEXT,
    lease_until      INTEGER,
    key_hash         TEXT,
    key_expires_at   INTEGER,
    steps            INTEGER NOT NULL DEFAULT 0,
    pending          TEXT,
    parent_run_id    TEXT,
    parent_node_id   TEXT,
    parent_runs_node INTEGER NOT NULL DEFAULT 0,
    concurrency_key   TEXT,
    concurrency_limit INTEGER,
    FOREIGN KEY (org, graph_id, graph_version) REFERENCES graphs (org, graph_id, version)
);
"
        )
    };
}

/// The runs table's indexes, as of schema version 10.
macro_rules! runs_indexes {
    () => {
        "CREATE INDEX runs_by_concurrency ON runs (org, graph_id, concurrency_key, status, created_at)
    WHERE concurrency_key IS NOT NULL;
CREATE INDEX runs_live_by_org ON runs (org, status, created_at) WHERE status IN ('running', 'queued');
CREATE INDEX runs_queued_by_key ON runs (org, graph_id, concurrency_key, created_at) WHERE status = 'queued';
CREATE INDEX runs_queued_unkeyed ON runs (org, created_at) WHERE status = 'queued' AND concurrency_key IS NULL;
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_by_graph ON runs (org, graph_id, created_at);
CREATE INDEX runs_by_org ON runs (org, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX runs_by_created ON runs (created_at);
CREATE UNIQUE INDEX runs_by_key ON runs (run_key) WHERE run_key IS NOT NULL;
CREATE INDEX runs_by_lease ON runs (status, lease_until);
"
    };
}

/// The tables schema version 10 adds: hooks and their deliveries, retention
/// rules and organizations' run limits.
macro_rules! tables_of_10 {
    () => {
        "CREATE TABLE hooks (
    org        TEXT    NOT NULL,
    hook_id    TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    events     TEXT    NOT NULL,
    graph_id   TEXT,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org, hook_id)
) WITHOUT ROWID;

CREATE TABLE hook_deliveries (
    delivery_id     TEXT    NOT NULL PRIMARY KEY,
    org             TEXT    NOT NULL,
    hook_id         TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    run_id          TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    next_attempt_at INTEGER,
    attempts_json   TEXT    NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE INDEX hook_deliveries_due ON hook_deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX hook_deliveries_by_org ON hook_deliveries (org, created_at, delivery_id);
CREATE INDEX hook_deliveries_by_run ON hook_deliveries (run_id);
CREATE INDEX hook_deliveries_over ON hook_deliveries (created_at) WHERE next_attempt_at IS NULL;
CREATE INDEX hook_deliveries_by_hook ON hook_deliveries (org, hook_id, created_at);

CREATE TABLE retention (
    org      TEXT    NOT NULL,
    graph_id TEXT    NOT NULL,
    keep     INTEGER NOT NULL,
    PRIMARY KEY (org, graph_id)
) WITHOUT ROWID;

CREATE TABLE run_limits (
    org         TEXT    NOT NULL PRIMARY KEY,
    max_running INTEGER NOT NULL
) WITHOUT ROWID;
"
    };
}

/// The tables of this schema version. JSON is stored as TEXT; times are
/// milliseconds since the Unix epoch.
///
/// A run's context is kept in its transcript: the last event a commit appends
/// holds, in `writes_json`, the context entries the commit wrote
/// (`{node_id: entry}`, in the order written). The context is these objects
/// merged in `seq` order: an entry keeps the place it was first written at
/// and the value it was last written with, as the engine keeps it. So a step
/// writes one table besides its run's row. The same event holds, in
/// `position_json`, where the commit left the run (`Position`), so that the
/// run can be looked at as it stood at any event (`RunAt`); events committed
/// before schema 9 hold `UNKEPT_POSITION` instead.
///
/// `owner` and `lease_until` hold the lease of the process driving a running
/// run (both set or both null); `runs_by_lease` finds the runs nobody holds.
///
/// `run_key` is the key a run holds (see `RunKey`), `key_hash` the hash of
/// the request it was asked with and `key_expires_at` when the run lets it go.
///
/// `steps` counts the steps a run has executed; `pending` holds the children
/// of the parallel node a waiting run waits on that still wait, as a JSON
/// array of node ids in node order (null when there are none).
///
/// `parent_run_id` and `parent_node_id` link a child run to the run and the
/// node that started it (both null for other runs); `parent_runs_node` is 1
/// when the child runs that node itself (see `ParentLink::runs_node`).
/// `concurrency_key` and `concurrency_limit` are the key a run of a graph
/// with a concurrency limit holds its place by, and that limit (see
/// `Concurrency`); `runs_by_concurrency` counts the runs of a key,
/// `runs_live_by_org` an organization's runs running and queued, against
/// its `run_limits`; `runs_queued_by_key` and `runs_queued_unkeyed` find the
/// head of each queue.
///
/// A hook's `events` are their names each between commas (`Hook::events_text`).
/// A delivery's `payload` is what it says but its id; `next_attempt_at` is
/// set while it is pending (a claimed one's is when its claim lapses), and
/// `attempts_json` is its attempts, a JSON array oldest first.
///
/// A retention rule's `graph_id` is empty for its organization's rule;
/// `keep` is how long finished runs are kept, in milliseconds.
const SCHEMA: &str = concat!(
    "
CREATE TABLE graphs (
    org        TEXT    NOT NULL,
    graph_id   TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    graph_json TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org, graph_id, version)
) WITHOUT ROWID;

",
    runs_table!("runs"),
    runs_indexes!(),
    "
CREATE TABLE transcript (
    run_id      TEXT    NOT NULL REFERENCES runs (run_id),
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    entry_json  TEXT    NOT NULL,
    writes_json TEXT,
    position_json TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE tokens (
    token_hash   TEXT    NOT NULL PRIMARY KEY,
    org          TEXT    NOT NULL,
    label        TEXT,
    created_at   INTEGER NOT NULL,
    id           TEXT    NOT NULL,
    expires_at   INTEGER,
    read_only    INTEGER NOT NULL DEFAULT 0,
    last_used_at INTEGER
) WITHOUT ROWID;
CREATE UNIQUE INDEX tokens_by_id ON tokens (org, id);

",
    tables_of_10!(),
    "
CREATE TABLE secrets (
    org        TEXT    NOT NULL,
    graph_id   TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org, graph_id, name)
) WITHOUT ROWID;
"
);

/// From schema version 1 (no organizations) to 2: every graph and run goes to
/// [`DEFAULT_ORG`](roomkit_graph_store::DEFAULT_ORG). The graph and run tables
/// are rebuilt (their keys change); outputs and transcripts stay as they are.
const MIGRATE_1_TO_2: &str = "
CREATE TABLE graphs_v2 (
    org        TEXT    NOT NULL,
    graph_id   TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    graph_json TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org, graph_id, version)
) WITHOUT ROWID;
INSERT INTO graphs_v2 SELECT 'default', graph_id, version, graph_json, created_at FROM graphs;

CREATE TABLE runs_v2 (
    run_id           TEXT    NOT NULL PRIMARY KEY,
    org              TEXT    NOT NULL,
    graph_id         TEXT    NOT NULL,
    graph_version    INTEGER NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
    current_node_id  TEXT,
    previous_node_id TEXT,
    error            TEXT,
    version          INTEGER NOT NULL,
    last_seq         INTEGER NOT NULL,
    wake_at          INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    run_key          TEXT,
    FOREIGN KEY (org, graph_id, graph_version) REFERENCES graphs (org, graph_id, version)
);
INSERT INTO runs_v2 SELECT run_id, 'default', graph_id, graph_version, status, current_node_id,
    previous_node_id, error, version, last_seq, wake_at, created_at, updated_at, NULL FROM runs;

DROP TABLE runs;
DROP TABLE graphs;
ALTER TABLE graphs_v2 RENAME TO graphs;
ALTER TABLE runs_v2 RENAME TO runs;
CREATE INDEX runs_by_graph ON runs (org, graph_id, created_at);
CREATE INDEX runs_by_org ON runs (org, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX runs_by_created ON runs (created_at);
CREATE UNIQUE INDEX runs_by_key ON runs (run_key) WHERE run_key IS NOT NULL;

CREATE TABLE tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    org        TEXT    NOT NULL,
    label      TEXT,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE secrets (
    org        TEXT    NOT NULL,
    graph_id   TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org, graph_id, name)
) WITHOUT ROWID;
";

/// From schema version 2 to 3: runs get a lease (`owner`, `lease_until`),
/// none at first. Every row stays as it is.
const MIGRATE_2_TO_3: &str = "
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until INTEGER;
CREATE INDEX runs_by_lease ON runs (status, lease_until);
";

/// From schema version 3 to 4: `outputs` loses its rowid (one page less to
/// write per step) and keeps the order of first writes in `pos` instead.
const MIGRATE_3_TO_4: &str = "
CREATE TABLE outputs_v4 (
    run_id     TEXT    NOT NULL REFERENCES runs (run_id),
    node_id    TEXT    NOT NULL,
    pos        INTEGER NOT NULL,
    entry_json TEXT    NOT NULL,
    PRIMARY KEY (run_id, node_id)
) WITHOUT ROWID;
INSERT INTO outputs_v4
    SELECT run_id, node_id, row_number() OVER (PARTITION BY run_id ORDER BY rowid), entry_json FROM outputs;
DROP TABLE outputs;
ALTER TABLE outputs_v4 RENAME TO outputs;
";

/// From schema version 4 to 5: the `outputs` table goes; each run's context
/// moves, whole and in order, onto its last transcript event (the one every
/// later commit appends after). A run with outputs but no transcript event
/// (which no version of this store writes) stops the migration rather than
/// losing them.
const MIGRATE_4_TO_5: &str = "
CREATE TEMP TABLE orphan_outputs (runs INTEGER NOT NULL);
CREATE TEMP TRIGGER orphan_outputs_refused BEFORE INSERT ON orphan_outputs WHEN NEW.runs > 0
BEGIN
    SELECT RAISE(ABORT, 'some runs have outputs but no transcript event to keep them on');
END;
INSERT INTO orphan_outputs
    SELECT count(DISTINCT run_id) FROM outputs WHERE run_id NOT IN (SELECT run_id FROM transcript);
DROP TABLE orphan_outputs;

ALTER TABLE transcript ADD COLUMN writes_json TEXT;
UPDATE transcript SET writes_json = (
        SELECT json_group_object(node_id, json(entry_json) ORDER BY pos) FROM outputs
        WHERE outputs.run_id = transcript.run_id)
    WHERE run_id IN (SELECT run_id FROM outputs)
      AND seq = (SELECT max(seq) FROM transcript AS last WHERE last.run_id = transcript.run_id);
DROP TABLE outputs;
";

/// From schema version 5 to 6: a run's key gets the hash of the request it
/// was asked with and an expiry, none for the keys already held (held for good,
/// as before).
const MIGRATE_5_TO_6: &str = "
ALTER TABLE runs ADD COLUMN key_hash TEXT;
ALTER TABLE runs ADD COLUMN key_expires_at INTEGER;
";

/// From schema version 6 to 7: runs get their step count (`steps`) and the
/// children of a parallel node they wait on (`pending`). The runs already
/// stored count no steps and wait on no children.
const MIGRATE_6_TO_7: &str = "
ALTER TABLE runs ADD COLUMN steps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN pending TEXT;
";

/// From schema version 7 to 8: a child run's link to its parent run and
/// subgraph node. The runs already stored have no parent.
const MIGRATE_7_TO_8: &str = "
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_node_id TEXT;
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
";

/// From schema version 8 to 9: whether a child run runs its parent's node
/// itself (the child runs already stored run graphs of their own), and where
/// each commit left its run, kept with the commit's last event. The events
/// already stored read as marked (`UNKEPT_POSITION`: where they left their
/// run was not kept) through the column's default, without rewriting them;
/// every insert gives the column its value.
const MIGRATE_8_TO_9: &str = "
ALTER TABLE runs ADD COLUMN parent_runs_node INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transcript ADD COLUMN position_json TEXT DEFAULT '\"unkept\"';
";

/// From schema version 9 to 10: tokens get a public id (the tokens already
/// stored take `tok_` and the first 16 hex digits of their hash), an expiry,
/// a read-only flag and their last use (none for the tokens already stored:
/// they never expire and may change things, as before); run-event hooks,
/// their deliveries, retention rules and organizations' run limits get
/// their tables; runs may be queued and get their concurrency key and limit
/// (none for the runs already stored), the table rebuilt for its status
/// check.
const MIGRATE_9_TO_10: &str = concat!(
    "
",
    runs_table!("runs_v10"),
    "INSERT INTO runs_v10 SELECT run_id, org, graph_id, graph_version, status, current_node_id, previous_node_id,
    error, version, last_seq, wake_at, created_at, updated_at, run_key, owner, lease_until, key_hash,
    key_expires_at, steps, pending, parent_run_id, parent_node_id, parent_runs_node, NULL, NULL FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v10 RENAME TO runs;
",
    runs_indexes!(),
    "
ALTER TABLE tokens ADD COLUMN id TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE tokens ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
UPDATE tokens SET id = 'tok_' || substr(token_hash, 1, 16);
CREATE UNIQUE INDEX tokens_by_id ON tokens (org, id);

",
    tables_of_10!(),
);

/// The migrations, by the schema version they start from: a file is migrated
/// one version at a time up to [`SCHEMA_VERSION`].
const MIGRATIONS: [(i32, &str); 9] = [
    (1, MIGRATE_1_TO_2),
    (2, MIGRATE_2_TO_3),
    (3, MIGRATE_3_TO_4),
    (4, MIGRATE_4_TO_5),
    (5, MIGRATE_5_TO_6),
    (6, MIGRATE_6_TO_7),
    (7, MIGRATE_7_TO_8),
    (8, MIGRATE_8_TO_9),
    (9, MIGRATE_9_TO_10),
];

/// The workers table: one row per worker id, held by one process until
/// `held_until`. It is kept apart from the versioned schema: it is made when
/// missing each time a file is opened, so it needs no migration, and a build
/// that does not know it leaves it alone.
const WORKERS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS workers (
    worker_id  TEXT    NOT NULL PRIMARY KEY,
    instance   TEXT    NOT NULL,
    held_until INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Makes the workers table when the file has none.
pub(crate) fn create_workers_table(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(WORKERS_TABLE)?;
    Ok(())
}

/// Opens the connection that writes: checks the file is ours (or empty, and
/// then creates the schema), switches it to WAL and sets the pragmas.
///
/// The file is inspected before anything is written to it, so a file that is
/// not ours is left exactly as it was.
pub(crate) fn open_writer(path: &Path, options: &Options) -> Result<Connection, StoreError> {
    open_writer_inner(path, options).map_err(|err| err.into_store(path))
}

fn open_writer_inner(path: &Path, options: &Options) -> Result<Connection, DbError> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    let found = inspect(&conn, path)?;
    if found == Found::Empty {
        // Freed pages go back to the file system (`PRAGMA incremental_vacuum`
        // after deletions); only an empty file takes it, before WAL.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }

    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(
            format!("cannot switch {} to WAL (journal mode {mode})", path.display()).into(),
        )
        .into());
    }
    // FULL: a commit is on disk (WAL fsynced) before it is acknowledged.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Checkpoint the WAL every ~4 MB (SQLite's default), so that it is reset
    // often and overwritten in place: a commit that appends past the WAL's end
    // pays for growing the file at its fsync (measured: ~10% fewer durable
    // steps per second with a 40 MB WAL).
    conn.pragma_update(None, "wal_autocheckpoint", 1_000)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;

    match found {
        Found::Empty => create_schema(&mut conn, path)?,
        Found::Older(_) => migrate(&mut conn, path)?,
        Found::Ours => {}
    }
    if let Some(bytes) = options.max_size_bytes {
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
        let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1);
        conn.pragma_update_and_check(None, "max_page_count", pages.max(1), |row| row.get::<_, i64>(0))?;
    }
    Ok(conn)
}

/// Opens a connection that only reads (the schema is already checked).
pub(crate) fn open_reader(path: &Path, options: &Options) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// What [`inspect`] found in a database that can be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// A new, empty database: the schema must be created.
    Empty,
    /// One of ours, of an older schema version: it is migrated.
    Older(i32),
    /// One of ours, of this schema version.
    Ours,
}

/// Reads the schema marker. A file that is not SQLite fails here with
/// SQLITE_NOTADB; a database of someone else is [`StoreError::Foreign`].
fn inspect(conn: &Connection, path: &Path) -> Result<Found, DbError> {
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let user_version: i32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
    let foreign = |detail: String| -> DbError {
        StoreError::Foreign { path: path.display().to_string(), detail }.into()
    };
    match application_id {
        APPLICATION_ID if user_version == SCHEMA_VERSION => Ok(Found::Ours),
        APPLICATION_ID if (1..SCHEMA_VERSION).contains(&user_version) => Ok(Found::Older(user_version)),
        APPLICATION_ID if user_version > SCHEMA_VERSION => Err(foreign(format!(
            "its schema version {user_version} is newer than this build's {SCHEMA_VERSION}"
        ))),
        APPLICATION_ID => Err(foreign(format!("unknown schema version {user_version}"))),
        0 if tables == 0 => Ok(Found::Empty),
        0 => Err(foreign(format!("it has {tables} schema objects but no application id"))),
        other => Err(foreign(format!("application id {other:#010x}, expected {APPLICATION_ID:#010x}"))),
    }
}

/// Creates the tables and the marker in one transaction. Another process may
/// have done it since [`inspect`]: then there is nothing to do.
fn create_schema(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if inspect(&tx, path)? == Found::Ours {
        return Ok(());
    }
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Migrates a file of an older schema version, step by step, in one
/// transaction: all of it or nothing. Another process may have done it since
/// [`inspect`]: then there is nothing to do (or less). Foreign keys are off
/// meanwhile (some steps rebuild the tables they join) and checked before the
/// commit.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated =
        (|| -> Result<(), DbError> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Found::Older(from) = inspect(&tx, path)? else {
                return Ok(());
            };
            for (_, step) in MIGRATIONS.iter().filter(|(start, _)| *start >= from) {
                tx.execute_batch(step)?;
            }
            let broken: i64 =
                tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| row.get(0))?;
            if broken > 0 {
                return Err(StoreError::Backend(format!(
                "migrating {} to schema version {SCHEMA_VERSION}: {broken} rows lost their references",
                path.display()
            ).into())
            .into());
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
            Ok(())
        })();
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrated
}
