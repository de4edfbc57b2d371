//! The queries: graphs, runs, a run's state and its transcript. Each takes a
//! connection; those that read more than one table open a read transaction so
//! they see one snapshot.

use roomkit_graph::{EngineState, Graph};
use roomkit_graph_store::{
    Entry, FilterValue, RunFilter, RunRecord, RunStatus, StoreError, StoredGraph, TokenRecord,
    TranscriptEvent, read_pending, read_stored,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use crate::error::{DbError, sql_int, stored_count};

/// The columns [`run_from_row`] reads, in its order.
pub(crate) const RUN_COLUMNS: &str = "run_id, graph_id, graph_version, status, current_node_id, \
     previous_node_id, error, version, last_seq, created_at, updated_at, wake_at, org, owner, lease_until, \
     steps, pending";

/// A stored graph of `org`: the given version, or the latest.
pub(crate) fn graph(
    conn: &Connection,
    org: &str,
    graph_id: &str,
    version: Option<u64>,
) -> Result<StoredGraph, DbError> {
    let row = match version {
        Some(version) => conn
            .prepare_cached(
                "SELECT org, graph_id, version, graph_json, created_at FROM graphs \
                 WHERE org = ?1 AND graph_id = ?2 AND version = ?3",
            )?
            .query_row(params![org, graph_id, sql_int(version)], GraphRow::read)
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT org, graph_id, version, graph_json, created_at FROM graphs \
                 WHERE org = ?1 AND graph_id = ?2 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![org, graph_id], GraphRow::read)
            .optional()?,
    };
    let Some(row) = row else {
        return Err(StoreError::NotFound(match version {
            Some(version) => format!("graph {graph_id} version {version}"),
            None => format!("graph {graph_id}"),
        })
        .into());
    };
    row.into_stored()
}

/// The number of the latest version of a graph of `org`.
pub(crate) fn latest_graph_version(conn: &Connection, org: &str, graph_id: &str) -> Result<u64, DbError> {
    let version: Option<i64> = conn
        .prepare_cached("SELECT max(version) FROM graphs WHERE org = ?1 AND graph_id = ?2")?
        .query_row(params![org, graph_id], |row| row.get(0))?;
    match version {
        Some(version) => stored_count(version, "graph version"),
        None => Err(StoreError::NotFound(format!("graph {graph_id}")).into()),
    }
}

/// The latest version of each graph of `org` (of all when `None`).
pub(crate) fn list_graphs(conn: &Connection, org: Option<&str>) -> Result<Vec<StoredGraph>, DbError> {
    // SQLite returns the other columns of the row holding max(version).
    let mut statement = conn.prepare_cached(
        "SELECT org, graph_id, max(version), graph_json, created_at FROM graphs \
         WHERE ?1 IS NULL OR org = ?1 GROUP BY org, graph_id ORDER BY org, graph_id",
    )?;
    let rows = statement.query_map(params![org], GraphRow::read)?;
    rows.map(|row| row.map_err(DbError::from).and_then(GraphRow::into_stored)).collect()
}

/// Up to `limit` graphs of `org` whose id sorts after `after`, by id: the
/// latest version of each.
pub(crate) fn list_graphs_after(
    conn: &Connection,
    org: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredGraph>, DbError> {
    // SQLite returns the other columns of the row holding max(version).
    let mut statement = conn.prepare_cached(
        "SELECT org, graph_id, max(version), graph_json, created_at FROM graphs \
         WHERE org = ?1 AND (?2 IS NULL OR graph_id > ?2) GROUP BY graph_id ORDER BY graph_id LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![org, after, limit], GraphRow::read)?;
    rows.map(|row| row.map_err(DbError::from).and_then(GraphRow::into_stored)).collect()
}

/// A `graphs` row as SQLite gives it.
struct GraphRow {
    org: String,
    graph_id: String,
    version: i64,
    json: String,
    created_at: i64,
}

impl GraphRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(GraphRow {
            org: row.get(0)?,
            graph_id: row.get(1)?,
            version: row.get(2)?,
            json: row.get(3)?,
            created_at: row.get(4)?,
        })
    }

    fn into_stored(self) -> Result<StoredGraph, DbError> {
        let graph = Graph::from_json(&self.json).map_err(|err| {
            StoreError::Backend(format!(
                "stored graph {} version {} is not valid: {err}",
                self.graph_id, self.version
            ))
        })?;
        Ok(StoredGraph {
            org: self.org,
            graph,
            version: stored_count(self.version, "graph version")?,
            created_at: self.created_at,
        })
    }
}

/// The token with this hash, if any.
pub(crate) fn token(conn: &Connection, token_hash: &str) -> Result<Option<TokenRecord>, DbError> {
    Ok(conn
        .prepare_cached("SELECT token_hash, org, label, created_at FROM tokens WHERE token_hash = ?1")?
        .query_row(params![token_hash], |row| {
            Ok(TokenRecord {
                token_hash: row.get(0)?,
                org: row.get(1)?,
                label: row.get(2)?,
                created_at: row.get(3)?,
            })
        })
        .optional()?)
}

/// A graph's secret, if set.
pub(crate) fn secret(
    conn: &Connection,
    org: &str,
    graph_id: &str,
    name: &str,
) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT value FROM secrets WHERE org = ?1 AND graph_id = ?2 AND name = ?3")?
        .query_row(params![org, graph_id, name], |row| row.get(0))
        .optional()?)
}

/// A run's record, if it exists.
pub(crate) fn find_run(conn: &Connection, run_id: &str) -> Result<Option<RunRecord>, DbError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1");
    let row = conn.prepare_cached(&sql)?.query_row(params![run_id], RunRow::read).optional()?;
    row.map(RunRow::into_record).transpose()
}

/// A run's record, or [`StoreError::NotFound`].
pub(crate) fn run(conn: &Connection, run_id: &str) -> Result<RunRecord, DbError> {
    find_run(conn, run_id)?.ok_or_else(|| not_found_run(run_id))
}

/// A run's record and the engine state to continue it from, from one snapshot.
pub(crate) fn load_run(conn: &mut Connection, run_id: &str) -> Result<(RunRecord, EngineState), DbError> {
    let tx = conn.transaction()?;
    let record = run(&tx, run_id)?;
    // The context entries each commit wrote, merged in order: an entry keeps
    // its first place and its last value.
    let mut context = Map::new();
    {
        let mut statement = tx.prepare_cached(
            "SELECT writes_json FROM transcript WHERE run_id = ?1 AND writes_json IS NOT NULL ORDER BY seq",
        )?;
        let mut rows = statement.query(params![run_id])?;
        while let Some(row) = rows.next()? {
            let writes: String = row.get(0)?;
            context.extend(read_stored::<Map<String, Value>>(&writes)?);
        }
    }
    tx.commit()?;
    let state = record.engine_state(context);
    Ok((record, state))
}

/// Runs matching `filter`, in the order of [`RunFilter::ORDER_BY`].
pub(crate) fn list_runs(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunRecord>, DbError> {
    let (clause, values) = filter.where_clause(|n| format!("?{n}"));
    let mut values: Vec<SqlValue> = values
        .into_iter()
        .map(|value| match value {
            FilterValue::Text(text) => SqlValue::Text(text),
            FilterValue::Millis(millis) => SqlValue::Integer(millis),
        })
        .collect();
    // LIMIT -1 is SQLite for "no limit".
    values.push(SqlValue::Integer(filter.limit.map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX))));
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs{clause} ORDER BY {} LIMIT ?{}",
        RunFilter::ORDER_BY,
        values.len()
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values), RunRow::read)?;
    rows.map(|row| row.map_err(DbError::from).and_then(RunRow::into_record)).collect()
}

/// Up to `limit` running runs nobody holds a live lease on at `now`: those
/// without a lease, then those whose lease expired (by expiry). Each half is
/// one range of `runs_by_lease`.
pub(crate) fn claimable_runs(conn: &Connection, now: i64, limit: usize) -> Result<Vec<RunRecord>, DbError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND lease_until IS NULL \
         UNION ALL \
         SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND lease_until <= ?1 \
         LIMIT ?2"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![now, limit], RunRow::read)?;
    rows.map(|row| row.map_err(DbError::from).and_then(RunRow::into_record)).collect()
}

/// The running runs whose lease `owner` holds, live or expired.
pub(crate) fn runs_held_by(conn: &Connection, owner: &str) -> Result<Vec<RunRecord>, DbError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND owner = ?1");
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params![owner], RunRow::read)?;
    rows.map(|row| row.map_err(DbError::from).and_then(RunRow::into_record)).collect()
}

/// Up to `limit` events of a run after sequence number `after`, with the run's
/// record, from one snapshot.
pub(crate) fn transcript_page(
    conn: &mut Connection,
    run_id: &str,
    after: u64,
    limit: usize,
) -> Result<(RunRecord, Vec<TranscriptEvent>), DbError> {
    let tx = conn.transaction()?;
    let record = run(&tx, run_id)?;
    let events = events_after(&tx, run_id, after, limit)?;
    tx.commit()?;
    Ok((record, events))
}

/// Up to `limit` events of a run after sequence number `after`, in order.
fn events_after(
    conn: &Connection,
    run_id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<TranscriptEvent>, DbError> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, at, entry_json FROM transcript WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = statement.query(params![run_id, sql_int(after), limit])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let entry: String = row.get(2)?;
        events.push(TranscriptEvent {
            run_id: run_id.to_owned(),
            seq: stored_count(row.get(0)?, "sequence number")?,
            at: row.get(1)?,
            entry: read_stored::<Entry>(&entry)?,
        });
    }
    Ok(events)
}

/// [`StoreError::NotFound`] for a run.
pub(crate) fn not_found_run(run_id: &str) -> DbError {
    StoreError::NotFound(format!("run {run_id}")).into()
}

/// A `runs` row as SQLite gives it, checked by [`RunRow::into_record`].
struct RunRow {
    run_id: String,
    graph_id: String,
    graph_version: i64,
    status: String,
    current_node_id: Option<String>,
    previous_node_id: Option<String>,
    error: Option<String>,
    version: i64,
    last_seq: i64,
    created_at: i64,
    updated_at: i64,
    wake_at: Option<i64>,
    org: String,
    owner: Option<String>,
    lease_until: Option<i64>,
    steps: i64,
    pending: Option<String>,
}

impl RunRow {
    /// Reads the columns of [`RUN_COLUMNS`].
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RunRow {
            run_id: row.get(0)?,
            graph_id: row.get(1)?,
            graph_version: row.get(2)?,
            status: row.get(3)?,
            current_node_id: row.get(4)?,
            previous_node_id: row.get(5)?,
            error: row.get(6)?,
            version: row.get(7)?,
            last_seq: row.get(8)?,
            created_at: row.get(9)?,
            updated_at: row.get(10)?,
            wake_at: row.get(11)?,
            org: row.get(12)?,
            owner: row.get(13)?,
            lease_until: row.get(14)?,
            steps: row.get(15)?,
            pending: row.get(16)?,
        })
    }

    fn into_record(self) -> Result<RunRecord, DbError> {
        let status = RunStatus::parse(&self.status).ok_or_else(|| {
            StoreError::Backend(format!("run {} has an unknown status {:?}", self.run_id, self.status))
        })?;
        Ok(RunRecord {
            graph_version: stored_count(self.graph_version, "graph version")?,
            version: stored_count(self.version, "run version")?,
            last_seq: stored_count(self.last_seq, "sequence number")?,
            steps: stored_count(self.steps, "step count")?,
            pending: read_pending(&self.run_id, self.pending.as_deref())?,
            run_id: self.run_id,
            org: self.org,
            graph_id: self.graph_id,
            status,
            current_node_id: self.current_node_id,
            previous_node_id: self.previous_node_id,
            error: self.error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            wake_at: self.wake_at,
            owner: self.owner,
            lease_until: self.lease_until,
        })
    }
}
