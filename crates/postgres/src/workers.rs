//! Worker registrations ([`WorkerRegistration`]): their table, and taking,
//! renewing and ending one.
//!
//! The table is kept apart from the versioned tables (see `schema`): it is
//! made when missing each time a store connects (under an advisory lock, as
//! two processes may connect at once), so it needs no migration, and a build
//! that does not know it leaves it alone.

use deadpool_postgres::{ClientWrapper, Object};
use roomkit_graph_store::{Millis, RunRecord, StoreError, WorkerRegistration};

use crate::error::pg;
use crate::rows::{self, RUN_COLUMNS};

/// The key of the advisory lock held while the table is made: "RKGW".
const CREATION_LOCK: i64 = 0x524B_4757;

/// Makes the table when the database has none.
pub(crate) async fn create_table(client: &mut Object) -> Result<(), StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('roomkit_graph.workers') IS NOT NULL", &[])
        .await
        .map_err(pg)?
        .get(0);
    if exists {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATION_LOCK]).await.map_err(pg)?;
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

/// Takes or renews `registration` unless another process holds a live one of
/// its id (at `now`); returns the registration of the id after it.
pub(crate) async fn register(
    client: &mut Object,
    registration: &WorkerRegistration,
    now: Millis,
) -> Result<WorkerRegistration, StoreError> {
    let WorkerRegistration { worker_id, instance, until } = registration;
    let tx = client.transaction().await.map_err(pg)?;
    // A new id is taken by whoever inserts it first.
    let inserted = tx
        .execute(
            "INSERT INTO roomkit_graph.workers (worker_id, instance, held_until) VALUES ($1, $2, $3) \
             ON CONFLICT (worker_id) DO NOTHING",
            &[worker_id, instance, until],
        )
        .await
        .map_err(pg)?;
    if inserted == 1 {
        tx.commit().await.map_err(pg)?;
        return Ok(registration.clone());
    }
    let row = tx
        .query_one(
            "SELECT instance, held_until FROM roomkit_graph.workers WHERE worker_id = $1 FOR UPDATE",
            &[worker_id],
        )
        .await
        .map_err(pg)?;
    let held = WorkerRegistration { worker_id: worker_id.clone(), instance: row.get(0), until: row.get(1) };
    let after = registration.taken_over(Some(&held), now);
    if after != held {
        tx.execute(
            "UPDATE roomkit_graph.workers SET instance = $2, held_until = $3 WHERE worker_id = $1",
            &[&after.worker_id, &after.instance, &after.until],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
    }
    Ok(after)
}

/// Ends `instance`'s registration as `worker_id`, if it holds it.
pub(crate) async fn release(
    client: &ClientWrapper,
    worker_id: &str,
    instance: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM roomkit_graph.workers WHERE worker_id = $1 AND instance = $2",
            &[&worker_id, &instance],
        )
        .await
        .map_err(pg)?;
    Ok(())
}

/// The running runs whose lease `owner` holds, live or expired.
pub(crate) async fn runs_held_by(client: &ClientWrapper, owner: &str) -> Result<Vec<RunRecord>, StoreError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM roomkit_graph.runs WHERE status = 'running' AND owner = $1");
    let found = client.query(&sql, &[&owner]).await.map_err(pg)?;
    found.iter().map(rows::run).collect()
}
