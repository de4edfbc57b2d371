//! Concurrency limits: a run of a graph with a limit runs only while fewer
//! than the limit of its key's runs are running, and is queued otherwise; a
//! run that stops running lets the oldest queued run of its key go. Applied
//! in the transaction of the commit that moves the run (the writer thread
//! makes them one at a time).

use roomkit_graph_store::{ConcurrencySlot, Millis, RunRecord, RunStatus};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::DbError;

/// Records the place a new run takes.
pub(crate) fn set_slot(conn: &Connection, run_id: &str, slot: &ConcurrencySlot) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE runs SET concurrency_key = ?2, concurrency_limit = ?3 WHERE run_id = ?1")?
        .execute(params![run_id, slot.key, slot.limit])?;
    Ok(())
}

/// The place a run holds, if its graph has a limit.
fn slot_of(conn: &Connection, run_id: &str) -> Result<Option<ConcurrencySlot>, DbError> {
    let found: Option<(Option<String>, Option<u32>)> = conn
        .prepare_cached("SELECT concurrency_key, concurrency_limit FROM runs WHERE run_id = ?1")?
        .query_row(params![run_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(match found {
        Some((Some(key), Some(limit))) => Some(ConcurrencySlot { key, limit }),
        _ => None,
    })
}

/// How many runs of `run`'s graph and `key` are running, `run` aside.
fn running(conn: &Connection, run: &RunRecord, key: &str) -> Result<u64, DbError> {
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM runs WHERE org = ?1 AND graph_id = ?2 AND concurrency_key = ?3 \
             AND status = 'running' AND run_id != ?4",
        )?
        .query_row(params![run.org, run.graph_id, key, run.run_id], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// `after`, the run as a commit leaves it (coming from `before`), once its
/// graph's limit is applied: a run that would start running while its key
/// is full is queued instead, and a run that stops running lets the oldest
/// queued run of its key go.
pub(crate) fn applied(
    conn: &Connection,
    before: Option<RunStatus>,
    after: RunRecord,
    now: Millis,
) -> Result<RunRecord, DbError> {
    let was_running = before == Some(RunStatus::Running);
    let is_running = after.status == RunStatus::Running;
    if was_running == is_running {
        return Ok(after);
    }
    let Some(slot) = slot_of(conn, &after.run_id)? else { return Ok(after) };
    if is_running {
        if running(conn, &after, &slot.key)? < u64::from(slot.limit) {
            return Ok(after);
        }
        conn.prepare_cached(
            "UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL WHERE run_id = ?1",
        )?
        .execute(params![after.run_id])?;
        return Ok(after.queued());
    }
    if running(conn, &after, &slot.key)? < u64::from(slot.limit) {
        conn.prepare_cached(
            "UPDATE runs SET status = 'running', updated_at = ?4 WHERE run_id = (SELECT run_id FROM runs \
             WHERE org = ?1 AND graph_id = ?2 AND concurrency_key = ?3 AND status = 'queued' \
             ORDER BY created_at, run_id LIMIT 1)",
        )?
        .execute(params![after.org, after.graph_id, slot.key, now])?;
    }
    Ok(after)
}
