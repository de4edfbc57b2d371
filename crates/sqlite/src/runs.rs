//! Runs: opening one, committing its steps, its lease, reading and listing
//! runs; their SQL and [`RunStore`] for [`SqliteStore`].

use std::time::Instant;

use async_trait::async_trait;
use roomkit_graph::EngineState;
use roomkit_graph_store::metrics;
use roomkit_graph_store::{
    Dialect, FilterValue, HeldKey, Lease, LiveRunCounts, Millis, NewRun, Result, RunFilter, RunKey,
    RunRecord, RunStore, StepCommit, StoreError, TranscriptEvent, pending_text, read_stored,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use crate::SqliteStore;
use crate::error::{DbError, sql_int};
use crate::queue;
use crate::rows::{RUN_COLUMNS, RunRow};

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, run: NewRun) -> Result<RunRecord> {
        let asked = Instant::now();
        let created = self.write_appending(move |conn| create_run(conn, &run)).await;
        metrics::commit_took(BACKEND, asked.elapsed(), &created);
        let (record, events) = created?;
        metrics::committed(&events, &record);
        Ok(record)
    }

    async fn commit_step(&self, commit: StepCommit) -> Result<(RunRecord, Vec<TranscriptEvent>)> {
        let run_id = commit.run_id.clone();
        let asked = Instant::now();
        let committed = self.write_appending(move |conn| commit_step(conn, &commit)).await;
        metrics::commit_took(BACKEND, asked.elapsed(), &committed);
        let (record, mut events) = committed?;
        metrics::committed(&events, &record);
        // A parent's event it woke went to the followers; the caller gets the run's own.
        events.retain(|event| event.run_id == run_id);
        Ok((record, events))
    }

    async fn claim_run(&self, run_id: &str, lease: &Lease, now: Millis) -> Result<Option<RunRecord>> {
        let (run_id, lease) = (run_id.to_owned(), lease.clone());
        self.write(move |conn| claim_run(conn, &run_id, &lease, now)).await
    }

    async fn renew_lease(&self, run_id: &str, lease: &Lease) -> Result<RunRecord> {
        let (run_id, lease) = (run_id.to_owned(), lease.clone());
        self.write(move |conn| renew_lease(conn, &run_id, &lease)).await
    }

    async fn release_run(&self, run_id: &str, owner: &str) -> Result<bool> {
        let (run_id, owner) = (run_id.to_owned(), owner.to_owned());
        self.write(move |conn| release_run(conn, &run_id, &owner)).await
    }

    async fn claimable_runs(&self, now: Millis, limit: usize) -> Result<Vec<RunRecord>> {
        self.read(move |conn| claimable_runs(conn, now, limit)).await
    }

    async fn run(&self, run_id: &str) -> Result<RunRecord> {
        let run_id = run_id.to_owned();
        self.read(move |conn| run(conn, &run_id)).await
    }

    async fn load_run(&self, run_id: &str) -> Result<(RunRecord, EngineState)> {
        let run_id = run_id.to_owned();
        self.read(move |conn| load_run(conn, &run_id)).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let filter = filter.clone();
        self.read(move |conn| list_runs(conn, &filter)).await
    }

    async fn live_run_counts(&self) -> Result<LiveRunCounts> {
        self.read(|conn| live_run_counts(conn)).await
    }
}

/// How many runs are running and waiting.
fn live_run_counts(conn: &Connection) -> Result<LiveRunCounts, DbError> {
    let count = |status: &str| -> Result<u64, DbError> {
        let count: i64 = conn
            .prepare_cached("SELECT count(*) FROM runs WHERE status = ?1")?
            .query_row(params![status], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or_default())
    };
    Ok(LiveRunCounts { running: count("running")?, waiting: count("waiting")?, queued: count("queued")? })
}

/// Opens a run: its row, its initial outputs and its `run_started` entry,
/// then its first step when it comes with one. Returns the run as it then
/// stands and the events appended, for followers.
pub(crate) fn create_run(
    conn: &Connection,
    run: &NewRun,
) -> Result<(RunRecord, Vec<TranscriptEvent>), DbError> {
    let run_id = &run.state.run_id;
    if run_id.is_empty() {
        return Err(StoreError::Invalid("the run has no id (state.run_id is empty)".into()).into());
    }
    let graph_exists = conn
        .prepare_cached("SELECT 1 FROM graphs WHERE org = ?1 AND graph_id = ?2 AND version = ?3")?
        .query_row(params![run.org, run.graph_id, sql_int(run.graph_version)], |_| Ok(()))
        .optional()?
        .is_some();
    if !graph_exists {
        return Err(
            StoreError::NotFound(format!("graph {} version {}", run.graph_id, run.graph_version)).into()
        );
    }
    if find_run(conn, run_id)?.is_some() {
        return Err(StoreError::Invalid(format!("run {run_id} already exists")).into());
    }
    let now = run.at;
    if let Some(key) = &run.key {
        take_key(conn, key, now)?;
    }

    let record = run.opening_record();
    conn.prepare_cached(
        "INSERT INTO runs (run_id, org, graph_id, graph_version, status, current_node_id, \
         previous_node_id, error, version, last_seq, created_at, updated_at, run_key, owner, lease_until, \
         key_hash, key_expires_at, steps, pending, parent_run_id, parent_node_id, parent_runs_node) \
         VALUES (?1, ?9, ?2, ?3, ?4, ?5, ?6, NULL, 1, 1, ?7, ?7, ?8, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        record.run_id,
        record.graph_id,
        sql_int(record.graph_version),
        record.status.as_str(),
        record.current_node_id,
        record.previous_node_id,
        now,
        run.key.as_ref().map(|key| &key.key),
        record.org,
        record.owner,
        record.lease_until,
        run.key.as_ref().and_then(|key| key.request_hash.as_ref()),
        run.key.as_ref().and_then(|key| key.expires_at),
        sql_int(record.steps),
        pending_text(&record.pending),
        record.parent.as_ref().map(|link| &link.run_id),
        record.parent.as_ref().map(|link| &link.node_id),
        record.parent.as_ref().is_some_and(|link| link.runs_node),
    ])?;
    if let Some(slot) = &run.concurrency {
        queue::set_slot(conn, &record.run_id, slot)?;
    } else if let Some(parent) = run.parent.as_ref().filter(|parent| parent.runs_node) {
        queue::inherit_slot(conn, &record.run_id, &parent.commit.run_id)?;
    }
    let started = run.started_event();
    // The context the run starts with is kept on its first event.
    let context = run.starting_context().map(|context| Value::Object(context.clone()).to_string());
    append(conn, std::slice::from_ref(&started), context, &record)?;
    // The parent's step that starts the run: refused with it (a parent that
    // moved meanwhile opens no child). Its events go with the run's own, for
    // the parent's followers.
    let parent_events = match &run.parent {
        Some(parent) => commit_step(conn, &parent.commit)?.1,
        None => Vec::new(),
    };
    let (record, mut events) = match &run.first_step {
        None => (record, vec![started]),
        Some(step) => {
            let (record, mut events) = commit_step(conn, step)?;
            events.insert(0, started);
            (record, events)
        }
    };
    // Opened running while its key is full: it waits for its turn.
    let record = queue::applied(conn, None, record, run.at)?;
    events.extend(parent_events);
    Ok((record, events))
}

/// Makes `key` free for a new run at `now`: refused with
/// [`StoreError::Duplicate`] while another run holds it, taken from a run
/// that let it go.
fn take_key(conn: &Connection, key: &RunKey, now: Millis) -> Result<(), DbError> {
    let holder = conn
        .prepare_cached("SELECT run_id, key_hash, key_expires_at FROM runs WHERE run_key = ?1")?
        .query_row(params![key.key], |row| {
            Ok(HeldKey { run_id: row.get(0)?, request_hash: row.get(1)?, expires_at: row.get(2)? })
        })
        .optional()?;
    match holder {
        None => Ok(()),
        Some(holder) if holder.is_free_at(now) => {
            conn.prepare_cached(
                "UPDATE runs SET run_key = NULL, key_hash = NULL, key_expires_at = NULL WHERE run_id = ?1",
            )?
            .execute(params![holder.run_id])?;
            Ok(())
        }
        Some(holder) => Err(key.taken_by(holder).into()),
    }
}

/// Commits one step, refused with [`StoreError::Conflict`] when the run moved
/// or, for a commit with a lease, when another owner holds a live one.
pub(crate) fn commit_step(
    conn: &Connection,
    commit: &StepCommit,
) -> Result<(RunRecord, Vec<TranscriptEvent>), DbError> {
    let run_id = &commit.run_id;
    let before = find_run(conn, run_id)?.ok_or_else(|| not_found_run(run_id))?;
    let now = commit.at;
    commit.check(&before, now)?;
    let writes = commit.written_context().map(|written| Value::Object(written).to_string());
    let events: Vec<TranscriptEvent> = (before.last_seq + 1..)
        .zip(&commit.entries)
        .map(|(seq, entry)| TranscriptEvent { run_id: run_id.clone(), seq, at: now, entry: entry.clone() })
        .collect();
    let last_seq = events.last().map_or(before.last_seq, |event| event.seq);
    let (status_before, wake_before) = (before.status, before.wake_at);
    let lease_before = (before.owner.clone(), before.lease_until);
    let pending_changed = commit.pending != before.pending;
    let after = commit.applied_to(before, last_seq, now);
    append(conn, &events, writes, &after)?;
    let status_changed = after.status != status_before;
    let wake_changed = after.wake_at != wake_before;
    let lease_changed = (&after.owner, after.lease_until) != (&lease_before.0, lease_before.1);
    // Columns with an index (status, wake_at, lease_until) are set only when
    // they change, so a step does not rewrite their index pages; `pending`
    // too, which most steps leave as it was (empty), so no JSON is written.
    let mut sql = String::from(
        "UPDATE runs SET current_node_id = ?2, previous_node_id = ?3, error = ?4, version = ?5, \
         last_seq = ?6, updated_at = ?7, steps = ?12",
    );
    if status_changed {
        sql.push_str(", status = ?8");
    }
    if wake_changed {
        sql.push_str(", wake_at = ?9");
    }
    if lease_changed {
        sql.push_str(", owner = ?10, lease_until = ?11");
    }
    if pending_changed {
        sql.push_str(", pending = ?13");
    }
    sql.push_str(" WHERE run_id = ?1");
    let mut update = conn.prepare_cached(&sql)?;
    let mut bind = vec![
        (1, SqlValue::Text(run_id.clone())),
        (2, after.current_node_id.clone().map_or(SqlValue::Null, SqlValue::Text)),
        (3, after.previous_node_id.clone().map_or(SqlValue::Null, SqlValue::Text)),
        (4, after.error.clone().map_or(SqlValue::Null, SqlValue::Text)),
        (5, SqlValue::Integer(sql_int(after.version))),
        (6, SqlValue::Integer(sql_int(after.last_seq))),
        (7, SqlValue::Integer(now)),
        (12, SqlValue::Integer(sql_int(after.steps))),
    ];
    if status_changed {
        bind.push((8, SqlValue::Text(after.status.as_str().to_owned())));
    }
    if wake_changed {
        bind.push((9, after.wake_at.map_or(SqlValue::Null, SqlValue::Integer)));
    }
    if lease_changed {
        bind.push((10, after.owner.clone().map_or(SqlValue::Null, SqlValue::Text)));
        bind.push((11, after.lease_until.map_or(SqlValue::Null, SqlValue::Integer)));
    }
    if pending_changed {
        bind.push((13, pending_text(&after.pending).map_or(SqlValue::Null, SqlValue::Text)));
    }
    for (index, value) in bind {
        update.raw_bind_parameter(index, value)?;
    }
    update.raw_execute()?;
    // A child run that is over sets its parent going, in the same
    // transaction; the parent's event goes with the child's, for followers.
    let mut events = events;
    if status_changed
        && after.status.is_final()
        && let Some(link) = &after.parent
        && let Some(parent) = find_run(conn, &link.run_id)?
        && let Some(wake) = parent.woken_by(&after, now)
    {
        events.extend(commit_step(conn, &wake)?.1);
    }
    // The parent set going took its place first: a room's parent goes on at once.
    let after = queue::applied(conn, Some(status_before), after, now)?;
    Ok((after, events))
}

/// Sets the lease columns of a run.
fn set_lease(
    conn: &Connection,
    run_id: &str,
    owner: Option<&str>,
    until: Option<Millis>,
) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE runs SET owner = ?2, lease_until = ?3 WHERE run_id = ?1")?
        .execute(params![run_id, owner, until])?;
    Ok(())
}

/// Takes the lease on a running run nobody else holds; `None` when it is not
/// running or held by another owner.
pub(crate) fn claim_run(
    conn: &Connection,
    run_id: &str,
    lease: &Lease,
    now: Millis,
) -> Result<Option<RunRecord>, DbError> {
    let before = run(conn, run_id)?;
    let Some(claimed) = before.claimed_by(lease, now) else { return Ok(None) };
    if before.lease().as_ref() != Some(&claimed) {
        set_lease(conn, run_id, Some(&claimed.owner), Some(claimed.until))?;
    }
    Ok(Some(before.held_by(claimed)))
}

/// Extends the lease its owner holds on a running run, refused with
/// [`StoreError::Conflict`] when the run is not running or not held by it.
pub(crate) fn renew_lease(conn: &Connection, run_id: &str, lease: &Lease) -> Result<RunRecord, DbError> {
    let before = run(conn, run_id)?;
    let until = before.renewal(lease)?;
    if before.lease_until != Some(until) {
        set_lease(conn, run_id, Some(&lease.owner), Some(until))?;
    }
    Ok(RunRecord { lease_until: Some(until), ..before })
}

/// Releases the lease `owner` holds on a run; whether it held one.
pub(crate) fn release_run(conn: &Connection, run_id: &str, owner: &str) -> Result<bool, DbError> {
    let released = conn
        .prepare_cached("UPDATE runs SET owner = NULL, lease_until = NULL WHERE run_id = ?1 AND owner = ?2")?
        .execute(params![run_id, owner])?;
    Ok(released > 0)
}

/// Appends events to their run's transcript, with, on the last of them, the
/// context entries their commit wrote (a JSON object, if any) and where the
/// commit left the run (`after`); the events hooks hear go to their outbox.
fn append(
    conn: &Connection,
    events: &[TranscriptEvent],
    writes: Option<String>,
    after: &RunRecord,
) -> Result<(), DbError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO transcript (run_id, seq, at, entry_json, writes_json, position_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut writes = writes;
    for (index, event) in events.iter().enumerate() {
        let last = index + 1 == events.len();
        let (on_this, position) =
            if last { (writes.take(), Some(after.position().to_text())) } else { (None, None) };
        insert.execute(params![
            event.run_id,
            sql_int(event.seq),
            event.at,
            serde_json::to_string(&event.entry)?,
            on_this,
            position
        ])?;
    }
    crate::hooks::deliver_events(conn, events, after)
}

/// The backend, as metrics name it.
const BACKEND: &str = "sqlite";

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
    let context = context_through(&tx, run_id, record.last_seq)?;
    tx.commit()?;
    let state = record.engine_state(context);
    Ok((record, state))
}

/// The context of run `run_id` as its commits up to entry `last` left it:
/// the context entries each wrote, merged in order (an entry keeps its
/// first place and its last value).
pub(crate) fn context_through(
    conn: &Connection,
    run_id: &str,
    last: u64,
) -> Result<Map<String, Value>, DbError> {
    let mut context = Map::new();
    let mut statement = conn.prepare_cached(
        "SELECT writes_json FROM transcript \
         WHERE run_id = ?1 AND seq <= ?2 AND writes_json IS NOT NULL ORDER BY seq",
    )?;
    let mut rows = statement.query(params![run_id, sql_int(last)])?;
    while let Some(row) = rows.next()? {
        let writes: String = row.get(0)?;
        context.extend(read_stored::<Map<String, Value>>(&writes)?);
    }
    Ok(context)
}

/// Runs matching `filter`, in the order of [`RunFilter::ORDER_BY`].
pub(crate) fn list_runs(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunRecord>, DbError> {
    let (clause, values) = filter.where_clause(Dialect::Sqlite);
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

/// [`StoreError::NotFound`] for a run.
pub(crate) fn not_found_run(run_id: &str) -> DbError {
    StoreError::NotFound(format!("run {run_id}")).into()
}
