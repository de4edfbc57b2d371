//! Worker registrations ([`WorkerRegistration`]): taking, renewing and
//! ending one, and the runs a worker id holds; [`WorkerStore`] for
//! [`SqliteStore`]. (Their table is made in `schema`.)

use async_trait::async_trait;
use roomkit_graph_store::{Millis, Result, RunRecord, WorkerRegistration, WorkerStore};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::error::DbError;
use crate::rows::{RUN_COLUMNS, RunRow};

#[async_trait]
impl WorkerStore for SqliteStore {
    async fn register_worker(
        &self,
        registration: &WorkerRegistration,
        now: Millis,
    ) -> Result<WorkerRegistration> {
        let registration = registration.clone();
        self.write(move |conn| register(conn, &registration, now)).await
    }

    async fn release_worker(&self, worker_id: &str, instance: &str) -> Result<()> {
        let (worker_id, instance) = (worker_id.to_owned(), instance.to_owned());
        self.write(move |conn| release(conn, &worker_id, &instance)).await
    }

    async fn runs_held_by(&self, owner: &str) -> Result<Vec<RunRecord>> {
        let owner = owner.to_owned();
        self.read(move |conn| runs_held_by(conn, &owner)).await
    }
}

/// Takes or renews `registration` unless another process holds a live one of
/// its id (at `now`); returns the registration of the id after it.
fn register(
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
fn release(conn: &Connection, worker_id: &str, instance: &str) -> Result<(), DbError> {
    conn.prepare_cached("DELETE FROM workers WHERE worker_id = ?1 AND instance = ?2")?
        .execute(params![worker_id, instance])?;
    Ok(())
}

/// The running runs whose lease `owner` holds, live or expired.
fn runs_held_by(conn: &Connection, owner: &str) -> Result<Vec<RunRecord>, DbError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND owner = ?1");
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params![owner], RunRow::read)?;
    rows.map(|row| row.map_err(DbError::from).and_then(RunRow::into_record)).collect()
}
