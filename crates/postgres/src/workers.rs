//! Worker registrations ([`WorkerRegistration`]): taking, renewing and
//! ending one, and the runs a worker id holds; [`WorkerStore`] for
//! [`PostgresStore`]. (Their table is made in `schema`.)

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Object};
use roomkit_graph_store::{Millis, Result, RunRecord, WorkerRegistration, WorkerStore};

use crate::PostgresStore;
use crate::error::pg;
use crate::rows::{self, RUN_COLUMNS};

#[async_trait]
impl WorkerStore for PostgresStore {
    async fn register_worker(
        &self,
        registration: &WorkerRegistration,
        now: Millis,
    ) -> Result<WorkerRegistration> {
        self.retrying(|| async { register(&mut self.client().await?, registration, now).await }).await
    }

    async fn release_worker(&self, worker_id: &str, instance: &str) -> Result<()> {
        self.retrying(|| async { release(&*self.client().await?, worker_id, instance).await }).await
    }

    async fn runs_held_by(&self, owner: &str) -> Result<Vec<RunRecord>> {
        self.retrying(|| async { runs_held_by(&*self.client().await?, owner).await }).await
    }
}

/// Takes or renews `registration` unless another process holds a live one of
/// its id (at `now`); returns the registration of the id after it.
async fn register(
    client: &mut Object,
    registration: &WorkerRegistration,
    now: Millis,
) -> Result<WorkerRegistration> {
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
async fn release(client: &ClientWrapper, worker_id: &str, instance: &str) -> Result<()> {
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
async fn runs_held_by(client: &ClientWrapper, owner: &str) -> Result<Vec<RunRecord>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM roomkit_graph.runs WHERE status = 'running' AND owner = $1");
    let found = client.query(&sql, &[&owner]).await.map_err(pg)?;
    found.iter().map(rows::run).collect()
}
