//! Flow control, as the PostgreSQL store applies it: a run runs only while
//! its key (of a graph with a concurrency limit) and its organization (with
//! a run limit) have room, and is queued otherwise; a run that stops running
//! lets the oldest queued run that then fits go. Applied in the transaction
//! of the commit that moves the run, under transaction-scoped advisory locks
//! on the organization (when it has a limit) and then on the key, so that
//! two processes never both take a last place; [`QueueStore`] for
//! [`PostgresStore`].

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use roomkit_graph_store::{
    ConcurrencySlot, Millis, QueueDepth, QueueStore, Result, RunRecord, RunStatus, count_releases, now_millis,
};

use crate::PostgresStore;
use crate::error::pg;

#[async_trait]
impl QueueStore for PostgresStore {
    async fn set_running_limit(&self, org: &str, limit: Option<u32>) -> Result<()> {
        self.retrying(|| self.set_running_limit_once(org, limit)).await
    }

    async fn running_limit(&self, org: &str) -> Result<Option<u32>> {
        self.retrying(|| self.running_limit_once(org)).await
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>> {
        self.retrying(|| self.queue_depths_once()).await
    }

    async fn settle_queues(&self, now: Millis) -> Result<usize> {
        self.retrying(|| self.settle_queues_once(now)).await
    }
}

/// The operations, each tried once; [`PostgresStore::retrying`] tries them
/// again while the database is unavailable.
impl PostgresStore {
    async fn set_running_limit_once(&self, org: &str, limit: Option<u32>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_org(&tx, org).await?;
        match limit {
            Some(limit) => {
                tx.execute(
                    "INSERT INTO roomkit_graph.run_limits (org, max_running) VALUES ($1, $2) \
                 ON CONFLICT (org) DO UPDATE SET max_running = excluded.max_running",
                    &[&org, &i64::from(limit)],
                )
                .await
            }
            None => tx.execute("DELETE FROM roomkit_graph.run_limits WHERE org = $1", &[&org]).await,
        }
        .map_err(pg)?;
        settle(&tx, org, limit, now_millis()).await?;
        tx.commit().await.map_err(pg)?;
        Ok(())
    }

    async fn settle_queues_once(&self, now: Millis) -> Result<usize> {
        let client = self.client().await?;
        let orgs = client
            .query("SELECT DISTINCT org FROM roomkit_graph.runs WHERE status = 'queued'", &[])
            .await
            .map_err(pg)?;
        drop(client);
        let mut released = 0;
        // An organization per transaction: its lock held no longer.
        for row in orgs {
            let org: String = row.get(0);
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            lock_org(&tx, &org).await?;
            let limit = running_limit(&tx, &org).await?;
            released += settle(&tx, &org, limit, now).await?;
            tx.commit().await.map_err(pg)?;
        }
        Ok(released)
    }

    async fn running_limit_once(&self, org: &str) -> Result<Option<u32>> {
        running_limit(&self.client().await?, org).await
    }

    async fn queue_depths_once(&self) -> Result<Vec<QueueDepth>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT org, graph_id, coalesce(concurrency_key, ''), count(*) FROM roomkit_graph.runs \
                 WHERE status = 'queued' GROUP BY org, graph_id, concurrency_key \
                 ORDER BY org, graph_id, concurrency_key",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|row| QueueDepth {
                org: row.get(0),
                graph_id: row.get(1),
                key: row.get(2),
                queued: u64::try_from(row.get::<_, i64>(3)).unwrap_or_default(),
            })
            .collect())
    }
}

/// The organization's limit, as `client` (or a transaction) reads it.
async fn running_limit(client: &impl deadpool_postgres::GenericClient, org: &str) -> Result<Option<u32>> {
    let row = client
        .query_opt("SELECT max_running FROM roomkit_graph.run_limits WHERE org = $1", &[&org])
        .await
        .map_err(pg)?;
    Ok(row.map(|row| u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX)))
}

/// Lets go every queued run of `org` that fits under `limit` (its own, held
/// under its lock) and its keys' limits: how many went. Under a limit every
/// move of the organization's runs takes its lock; without one, each key's
/// runs go under the key's lock, and runs without a key are held by nothing.
async fn settle(tx: &Transaction<'_>, org: &str, limit: Option<u32>, now: Millis) -> Result<usize> {
    let mut released = 0;
    if limit.is_some() {
        while release(tx, org, limit, None, now).await? {
            released += 1;
        }
        return Ok(released);
    }
    let keys = tx
        .query(
            "SELECT DISTINCT graph_id, concurrency_key FROM roomkit_graph.runs \
             WHERE org = $1 AND status = 'queued' AND concurrency_key IS NOT NULL",
            &[&org],
        )
        .await
        .map_err(pg)?;
    for row in keys {
        let (graph_id, key): (String, String) = (row.get(0), row.get(1));
        lock_key(tx, org, &graph_id, &key).await?;
        while release(tx, org, None, Some((&graph_id, &key)), now).await? {
            released += 1;
        }
    }
    let unkeyed = tx
        .execute(
            "UPDATE roomkit_graph.runs SET status = 'running', updated_at = $2 \
             WHERE org = $1 AND status = 'queued' AND concurrency_key IS NULL",
            &[&org, &now],
        )
        .await
        .map_err(pg)?;
    count_releases(unkeyed);
    Ok(released + usize::try_from(unkeyed).unwrap_or_default())
}

/// Gives a room (`run_id`) the place of its parent, whose node it runs.
pub(crate) async fn inherit_slot(tx: &Transaction<'_>, run_id: &str, parent_id: &str) -> Result<()> {
    tx.execute(
        "UPDATE roomkit_graph.runs SET (concurrency_key, concurrency_limit) = \
         (SELECT concurrency_key, concurrency_limit FROM roomkit_graph.runs WHERE run_id = $2) WHERE run_id = $1",
        &[&run_id, &parent_id],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

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

/// Waits for the organization's lock, held until the transaction ends.
async fn lock_org(tx: &Transaction<'_>, org: &str) -> Result<()> {
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 8))", &[&org]).await.map_err(pg)?;
    Ok(())
}

/// Waits for the lock of a graph's key, held until the transaction ends.
async fn lock_key(tx: &Transaction<'_>, org: &str, graph_id: &str, key: &str) -> Result<()> {
    tx.execute(
        // Each part after its length: no two keys read alike.
        "SELECT pg_advisory_xact_lock(hashtextextended(length($1) || ':' || $1 || length($2) || ':' || $2 || $3, 7))",
        &[&org, &graph_id, &key],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// How many runs are running: of `org`, or of its graph's key, `except` aside.
async fn running(tx: &Transaction<'_>, org: &str, key: Option<(&str, &str)>, except: &str) -> Result<i64> {
    let row = match key {
        Some((graph_id, key)) => tx.query_one(
            "SELECT count(*) FROM roomkit_graph.runs WHERE org = $1 AND graph_id = $2 AND concurrency_key = $3 \
             AND status = 'running' AND run_id <> $4",
            &[&org, &graph_id, &key, &except],
        )
        .await,
        None => {
            tx.query_one(
                "SELECT count(*) FROM roomkit_graph.runs WHERE org = $1 AND status = 'running' AND run_id <> $2",
                &[&org, &except],
            )
            .await
        }
    }
    .map_err(pg)?;
    Ok(row.get(0))
}

/// `after`, the run as a commit leaves it (coming from `before`), once the
/// limits are applied (see the module's documentation).
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
            "SELECT concurrency_key, concurrency_limit, (SELECT max_running FROM roomkit_graph.run_limits l \
             WHERE l.org = runs.org) FROM roomkit_graph.runs WHERE run_id = $1",
            &[&after.run_id],
        )
        .await
        .map_err(pg)?;
    let slot = row.get::<_, Option<String>>(0).zip(row.get::<_, Option<i64>>(1));
    let mut org_limit = row.get::<_, Option<i64>>(2).map(|limit| u32::try_from(limit).unwrap_or(u32::MAX));
    if slot.is_none() && org_limit.is_none() {
        return Ok(after);
    }
    // The organization's lock first, then the key's: always in that order.
    if org_limit.is_some() {
        lock_org(tx, &after.org).await?;
        // As it stands once no one else changes it.
        org_limit = running_limit(tx, &after.org).await?;
    }
    let key = slot.as_ref().map(|(key, _)| (after.graph_id.as_str(), key.as_str()));
    if let Some((graph_id, key)) = key {
        lock_key(tx, &after.org, graph_id, key).await?;
    }
    if !is_running {
        release(tx, &after.org, org_limit, key, now).await?;
        return Ok(after);
    }
    let key_full = match &slot {
        Some((_, limit)) => running(tx, &after.org, key, &after.run_id).await? >= *limit,
        None => false,
    };
    let org_full = match org_limit {
        Some(limit) => running(tx, &after.org, None, &after.run_id).await? >= i64::from(limit),
        None => false,
    };
    if !key_full && !org_full {
        return Ok(after);
    }
    tx.execute(
        "UPDATE roomkit_graph.runs SET status = 'queued', owner = NULL, lease_until = NULL WHERE run_id = $1",
        &[&after.run_id],
    )
    .await
    .map_err(pg)?;
    Ok(after.queued())
}

/// Lets the oldest queued run of `org` that fits go, after a run of the
/// `stopped` graph and key (if it had one) stopped running; whether one
/// went. Without an organization's limit, only that key's runs can fit now.
async fn release(
    tx: &Transaction<'_>,
    org: &str,
    org_limit: Option<u32>,
    stopped: Option<(&str, &str)>,
    now: Millis,
) -> Result<bool> {
    if let Some(limit) = org_limit
        && running(tx, org, None, "").await? >= i64::from(limit)
    {
        return Ok(false);
    }
    let released = match (org_limit, stopped) {
        (None, Some((graph_id, key))) => tx.execute(
            "UPDATE roomkit_graph.runs SET status = 'running', updated_at = $4 WHERE run_id = (SELECT q.run_id \
             FROM roomkit_graph.runs q WHERE q.org = $1 AND q.graph_id = $2 AND q.concurrency_key = $3 \
             AND q.status = 'queued' AND q.concurrency_limit > (SELECT count(*) FROM roomkit_graph.runs r \
             WHERE r.org = $1 AND r.graph_id = $2 AND r.concurrency_key = $3 AND r.status = 'running') \
             ORDER BY q.created_at, q.run_id LIMIT 1 FOR UPDATE OF q SKIP LOCKED) AND status = 'queued'",
            &[&org, &graph_id, &key, &now],
        )
        .await,
        // The oldest head of a queue that fits: the keys with runs queued
        // found one index seek at a time (a long queue of a full key costs
        // one look), and the oldest run without a key.
        _ => tx.execute(
            "WITH RECURSIVE keys AS ( \
                 (SELECT graph_id, concurrency_key AS k FROM roomkit_graph.runs WHERE org = $1 \
                  AND status = 'queued' AND concurrency_key IS NOT NULL ORDER BY graph_id, concurrency_key LIMIT 1) \
                 UNION ALL \
                 SELECT n.graph_id, n.k FROM keys, LATERAL (SELECT graph_id, concurrency_key AS k \
                  FROM roomkit_graph.runs WHERE org = $1 AND status = 'queued' AND concurrency_key IS NOT NULL \
                  AND (graph_id, concurrency_key) > (keys.graph_id, keys.k) \
                  ORDER BY graph_id, concurrency_key LIMIT 1) n), \
             heads AS ( \
                 SELECT h.run_id, h.created_at FROM keys, LATERAL (SELECT run_id, created_at, concurrency_limit \
                  FROM roomkit_graph.runs WHERE org = $1 AND graph_id = keys.graph_id AND concurrency_key = keys.k \
                  AND status = 'queued' ORDER BY created_at, run_id LIMIT 1) h \
                 WHERE h.concurrency_limit > (SELECT count(*) FROM roomkit_graph.runs r WHERE r.org = $1 \
                  AND r.graph_id = keys.graph_id AND r.concurrency_key = keys.k AND r.status = 'running') \
                 UNION ALL \
                 (SELECT run_id, created_at FROM roomkit_graph.runs WHERE org = $1 AND status = 'queued' \
                  AND concurrency_key IS NULL ORDER BY created_at, run_id LIMIT 1)) \
             UPDATE roomkit_graph.runs SET status = 'running', updated_at = $2 \
             WHERE run_id = (SELECT run_id FROM heads ORDER BY created_at, run_id LIMIT 1) AND status = 'queued'",
            &[&org, &now],
        )
        .await,
    }
    .map_err(pg)?;
    count_releases(released);
    Ok(released > 0)
}
