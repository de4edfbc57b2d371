//! Concurrency limits, as the SQLite store applies them: a run of a graph
//! with a limit runs only while fewer than the limit of its key's runs are
//! running, and is queued otherwise; a run that stops running lets the
//! oldest queued run of its key go. Applied in the transaction of the commit
//! that moves the run, under a transaction-scoped advisory lock on the key,
//! so that two processes never both take its last place.

use deadpool_postgres::Transaction;
use roomkit_graph_store::{ConcurrencySlot, Millis, Result, RunRecord, RunStatus};

use crate::error::pg;

/// Records the place a new run takes.
pub(crate) async fn set_slot(tx: &Transaction<'_>, run_id: &str, slot: &ConcurrencySlot) -> Result<()> {
    tx.execute(
        "UPDATE roomkit_graph.runs SET concurrency_key = $2, concurrency_limit = $3 WHERE run_id = $1",
        &[&run_id, &slot.key, &i64::from(slot.limit)],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// `after`, the run as a commit leaves it (coming from `before`), once its
/// graph's limit is applied (see the module's documentation).
pub(crate) async fn applied(
    tx: &Transaction<'_>,
    before: Option<RunStatus>,
    after: RunRecord,
    now: Millis,
) -> Result<RunRecord> {
    let was_running = before == Some(RunStatus::Running);
    let is_running = after.status == RunStatus::Running;
    if was_running == is_running {
        return Ok(after);
    }
    let row = tx
        .query_one(
            "SELECT concurrency_key, concurrency_limit FROM roomkit_graph.runs WHERE run_id = $1",
            &[&after.run_id],
        )
        .await
        .map_err(pg)?;
    let (Some(key), Some(limit)) = (row.get::<_, Option<String>>(0), row.get::<_, Option<i64>>(1)) else {
        return Ok(after);
    };
    tx.execute(
        // Each part after its length: no two keys read alike.
        "SELECT pg_advisory_xact_lock(hashtextextended(length($1) || ':' || $1 || length($2) || ':' || $2 || $3, 7))",
        &[&after.org, &after.graph_id, &key],
    )
    .await
    .map_err(pg)?;
    let running: i64 = tx
        .query_one(
            "SELECT count(*) FROM roomkit_graph.runs WHERE org = $1 AND graph_id = $2 AND concurrency_key = $3 \
             AND status = 'running' AND run_id <> $4",
            &[&after.org, &after.graph_id, &key, &after.run_id],
        )
        .await
        .map_err(pg)?
        .get(0);
    if is_running {
        if running < limit {
            return Ok(after);
        }
        tx.execute(
            "UPDATE roomkit_graph.runs SET status = 'queued', owner = NULL, lease_until = NULL WHERE run_id = $1",
            &[&after.run_id],
        )
        .await
        .map_err(pg)?;
        return Ok(after.queued());
    }
    if running < limit {
        tx.execute(
            "UPDATE roomkit_graph.runs SET status = 'running', updated_at = $4 WHERE run_id = (SELECT run_id \
             FROM roomkit_graph.runs WHERE org = $1 AND graph_id = $2 AND concurrency_key = $3 \
             AND status = 'queued' ORDER BY created_at, run_id LIMIT 1)",
            &[&after.org, &after.graph_id, &key, &now],
        )
        .await
        .map_err(pg)?;
    }
    Ok(after)
}
