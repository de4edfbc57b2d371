//! Worker registrations ([`WorkerRegistration`]): their table, and taking,
//! renewing and ending one.
//!
//! The table is kept apart from the versioned schema (see `schema`): it is
//! made when missing each time a file is opened, so it needs no migration,
//! and a build that does not know it leaves it alone.

use roomkit_graph_store::WorkerRegistration;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::DbError;

/// The table: one row per worker id, held by one process until `held_until`.
const TABLE: &str = "
CREATE TABLE IF NOT EXISTS workers (
    worker_id  TEXT    NOT NULL PRIMARY KEY,
    instance   TEXT    NOT NULL,
    held_until INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Makes the table when the file has none.
pub(crate) fn create_table(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(TABLE)?;
    Ok(())
}

/// Takes or renews `registration` unless another process holds a live one of
/// its id (at `now`); returns the registration of the id after it.
pub(crate) fn register(
    conn: &Connection,
    registration: &WorkerRegistration,
    now: i64,
) -> Result<WorkerRegistration, DbError> {
    let held = conn
        .prepare_cached("SELECT instance, held_until FROM workers WHERE worker_id = ?1")?
        .query_row(params![registration.worker_id], |row| {
            Ok(WorkerRegistration {
                worker_id: registration.worker_id.clone(),
                instance: row.get(0)?,
                until: row.get(1)?,
            })
        })
        .optional()?;
    let after = registration.taken_over(held.as_ref(), now);
    if held.as_ref() != Some(&after) {
        conn.prepare_cached(
            "INSERT INTO workers (worker_id, instance, held_until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (worker_id) DO UPDATE SET instance = excluded.instance, held_until = excluded.held_until",
        )?
        .execute(params![after.worker_id, after.instance, after.until])?;
    }
    Ok(after)
}

/// Ends `instance`'s registration as `worker_id`, if it holds it.
pub(crate) fn release(conn: &Connection, worker_id: &str, instance: &str) -> Result<(), DbError> {
    conn.prepare_cached("DELETE FROM workers WHERE worker_id = ?1 AND instance = ?2")?
        .execute(params![worker_id, instance])?;
    Ok(())
}
