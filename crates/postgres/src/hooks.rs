//! Run-event hooks and their deliveries: their SQL, the outbox a commit
//! writes ([`deliver_events`]) and [`HookStore`] for [`PostgresStore`].

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use roomkit_graph_store::{
    ClaimedDelivery, DeliveryCursor, DeliveryFilter, DeliveryStatus, Hook, HookAttempt, HookDelivery,
    HookEvent, HookStore, Millis, Result, RunRecord, StoreError, TranscriptEvent, hook_payload,
};
use tokio_postgres::types::ToSql;

use crate::PostgresStore;
use crate::error::{pg, sql_int};

#[async_trait]
impl HookStore for PostgresStore {
    async fn add_hook(&self, hook: &Hook) -> Result<()> {
        self.retrying(|| self.add_hook_once(hook)).await
    }

    async fn hooks(&self, org: &str) -> Result<Vec<Hook>> {
        self.retrying(|| self.hooks_once(org)).await
    }

    async fn remove_hook(&self, org: &str, hook_id: &str) -> Result<bool> {
        self.retrying(|| self.remove_hook_once(org, hook_id)).await
    }

    async fn claim_deliveries(
        &self,
        now: Millis,
        hold: Millis,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>> {
        self.retrying(|| self.claim_deliveries_once(now, hold, limit)).await
    }

    async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: &HookAttempt,
        next_attempt_at: Option<Millis>,
    ) -> Result<bool> {
        self.retrying(|| self.record_attempt_once(claimed, attempt, next_attempt_at)).await
    }

    async fn delete_old_deliveries(&self, before: Millis, limit: usize) -> Result<usize> {
        self.retrying(|| self.delete_old_deliveries_once(before, limit)).await
    }

    async fn deliveries(
        &self,
        org: &str,
        filter: &DeliveryFilter,
        limit: usize,
    ) -> Result<Vec<HookDelivery>> {
        self.retrying(|| self.deliveries_once(org, filter, limit)).await
    }
}

/// Writes, for each of `events` a hook hears, a pending delivery to every
/// hook of the run's organization (and graph) that hears it: in the
/// transaction of the commit that appends the events. A commit with no such
/// event sends no statement.
pub(crate) async fn deliver_events(
    tx: &Transaction<'_>,
    events: &[TranscriptEvent],
    run: &RunRecord,
) -> Result<()> {
    for event in events {
        let Some(kind) = HookEvent::of(&event.entry) else { continue };
        let payload = hook_payload(kind, event, run).to_string();
        let insert = tx
            .prepare_cached(
                "INSERT INTO roomkit_graph.hook_deliveries (delivery_id, org, hook_id, event, run_id, seq, payload, \
                 created_at, status, next_attempt_at) \
                 SELECT hook_id || ':' || $3 || ':' || $4::bigint, org, hook_id, $5, $3, $4, $6, $7, 'pending', $7 \
                 FROM roomkit_graph.hooks WHERE org = $1 AND (graph_id IS NULL OR graph_id = $2) \
                 AND position(',' || $5 || ',' in events) > 0",
            )
            .await
            .map_err(pg)?;
        let seq = sql_int(event.seq);
        tx.execute(
            &insert,
            &[&run.org, &run.graph_id, &event.run_id, &seq, &kind.as_str(), &payload, &event.at],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// The columns of a hook, in the order [`hook_row`] reads them.
const HOOK_COLUMNS: &str = "hook_id, org, url, events, graph_id, secret, created_at";

/// The columns of a delivery, in the order [`delivery_row`] reads them.
const DELIVERY_COLUMNS: &str = "d.delivery_id, d.org, d.hook_id, d.event, d.run_id, d.seq, d.payload, \
     d.created_at, d.status, d.next_attempt_at, d.attempts_json";

/// The operations, each tried once; [`PostgresStore::retrying`] tries them
/// again while the database is unavailable.
impl PostgresStore {
    async fn add_hook_once(&self, hook: &Hook) -> Result<()> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO roomkit_graph.hooks ({HOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    &hook.hook_id,
                    &hook.org,
                    &hook.url,
                    &Hook::events_text(&hook.events),
                    &hook.graph_id,
                    &hook.secret,
                    &hook.created_at,
                ],
            )
            .await
            .map_err(pg)?;
        if inserted == 0 {
            return Err(StoreError::Invalid(format!("a hook {} exists already", hook.hook_id)));
        }
        Ok(())
    }

    async fn hooks_once(&self, org: &str) -> Result<Vec<Hook>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {HOOK_COLUMNS} FROM roomkit_graph.hooks WHERE org = $1 ORDER BY created_at, hook_id"),
                &[&org],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(hook_row).collect())
    }

    async fn remove_hook_once(&self, org: &str, hook_id: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let removed = tx
            .execute("DELETE FROM roomkit_graph.hooks WHERE org = $1 AND hook_id = $2", &[&org, &hook_id])
            .await
            .map_err(pg)?;
        tx.execute(
            "UPDATE roomkit_graph.hook_deliveries SET status = 'failed', next_attempt_at = NULL \
             WHERE org = $1 AND hook_id = $2 AND status = 'pending'",
            &[&org, &hook_id],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(removed > 0)
    }

    async fn claim_deliveries_once(
        &self,
        now: Millis,
        hold: Millis,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let held_until = now.saturating_add(hold);
        client
            .execute(
                "UPDATE roomkit_graph.hook_deliveries AS d SET status = 'failed', next_attempt_at = NULL \
                 WHERE next_attempt_at <= $1 AND NOT EXISTS \
                 (SELECT 1 FROM roomkit_graph.hooks AS h WHERE h.org = d.org AND h.hook_id = d.hook_id)",
                &[&now],
            )
            .await
            .map_err(pg)?;
        // Locked rows are skipped: another process is taking them.
        let rows = client
            .query(
                &format!(
                    "WITH due AS (SELECT delivery_id FROM roomkit_graph.hook_deliveries \
                         WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1 \
                         ORDER BY next_attempt_at, created_at, delivery_id LIMIT $2 FOR UPDATE SKIP LOCKED), \
                     held AS (UPDATE roomkit_graph.hook_deliveries AS d SET next_attempt_at = $3 \
                         FROM due WHERE d.delivery_id = due.delivery_id RETURNING d.*) \
                     SELECT {DELIVERY_COLUMNS}, h.url, h.secret FROM held AS d \
                     JOIN roomkit_graph.hooks AS h ON h.org = d.org AND h.hook_id = d.hook_id \
                     ORDER BY d.created_at, d.delivery_id"
                ),
                &[&now, &limit, &held_until],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedDelivery {
                    delivery: delivery_row(row)?,
                    url: row.get(11),
                    secret: row.get(12),
                    held_until,
                })
            })
            .collect()
    }

    async fn record_attempt_once(
        &self,
        claimed: &ClaimedDelivery,
        attempt: &HookAttempt,
        next_attempt_at: Option<Millis>,
    ) -> Result<bool> {
        let status = DeliveryStatus::after(attempt, next_attempt_at);
        let next = next_attempt_at.filter(|_| status == DeliveryStatus::Pending);
        let attempt = serde_json::to_string(attempt)
            .map_err(|err| StoreError::Invalid(format!("an attempt cannot be written as JSON: {err}")))?;
        let client = self.client().await?;
        let recorded = client
            .execute(
                "UPDATE roomkit_graph.hook_deliveries SET status = $3, next_attempt_at = $4, \
                 attempts_json = (attempts_json::jsonb || jsonb_build_array($5::text::jsonb))::text \
                 WHERE delivery_id = $1 AND status = 'pending' AND next_attempt_at = $2",
                &[&claimed.delivery.delivery_id, &claimed.held_until, &status.as_str(), &next, &attempt],
            )
            .await
            .map_err(pg)?;
        Ok(recorded > 0)
    }

    async fn delete_old_deliveries_once(&self, before: Millis, limit: usize) -> Result<usize> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let deleted = client
            .execute(
                "DELETE FROM roomkit_graph.hook_deliveries WHERE delivery_id IN \
                 (SELECT delivery_id FROM roomkit_graph.hook_deliveries \
                 WHERE next_attempt_at IS NULL AND created_at < $1 LIMIT $2)",
                &[&before, &limit],
            )
            .await
            .map_err(pg)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    async fn deliveries_once(
        &self,
        org: &str,
        filter: &DeliveryFilter,
        limit: usize,
    ) -> Result<Vec<HookDelivery>> {
        let mut sql =
            format!("SELECT {DELIVERY_COLUMNS} FROM roomkit_graph.hook_deliveries AS d WHERE d.org = $1");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let status = filter.status.map(DeliveryStatus::as_str);
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&org];
        if let Some(hook_id) = &filter.hook_id {
            bind(&mut sql, &mut values, " AND d.hook_id = $", hook_id);
        }
        if let Some(run_id) = &filter.run_id {
            bind(&mut sql, &mut values, " AND d.run_id = $", run_id);
        }
        if let Some(status) = &status {
            bind(&mut sql, &mut values, " AND d.status = $", status);
        }
        if let Some(DeliveryCursor { created_at, delivery_id }) = &filter.before {
            bind(&mut sql, &mut values, " AND (d.created_at, d.delivery_id) < ($", created_at);
            bind(&mut sql, &mut values, ", $)", delivery_id);
        }
        bind(&mut sql, &mut values, " ORDER BY d.created_at DESC, d.delivery_id DESC LIMIT $", &limit);
        let client = self.client().await?;
        let rows = client.query(&sql, &values).await.map_err(pg)?;
        rows.iter().map(delivery_row).collect()
    }
}

fn hook_row(row: &tokio_postgres::Row) -> Hook {
    Hook {
        hook_id: row.get(0),
        org: row.get(1),
        url: row.get(2),
        events: Hook::read_events(row.get(3)),
        graph_id: row.get(4),
        secret: row.get(5),
        created_at: row.get(6),
    }
}

/// A delivery read with [`DELIVERY_COLUMNS`]; stored text that does not read
/// back is [`StoreError::Invalid`], naming the delivery.
fn delivery_row(row: &tokio_postgres::Row) -> Result<HookDelivery> {
    let delivery_id: String = row.get(0);
    let unreadable = |what: String| StoreError::Invalid(format!("delivery {delivery_id}: {what}"));
    let event: String = row.get(3);
    let status: String = row.get(8);
    let payload: String = row.get(6);
    let attempts: String = row.get(10);
    Ok(HookDelivery {
        org: row.get(1),
        hook_id: row.get(2),
        event: HookEvent::parse(&event).ok_or_else(|| unreadable(format!("unknown hook event {event:?}")))?,
        run_id: row.get(4),
        seq: u64::try_from(row.get::<_, i64>(5)).unwrap_or_default(),
        payload: serde_json::from_str(&payload).map_err(|err| unreadable(format!("its payload: {err}")))?,
        created_at: row.get(7),
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| unreadable(format!("unknown status {status:?}")))?,
        next_attempt_at: row.get(9),
        attempts: serde_json::from_str(&attempts)
            .map_err(|err| unreadable(format!("its attempts: {err}")))?,
        delivery_id,
    })
}

/// Appends `clause` to `sql` with its `$` numbered as the next of `values`,
/// which gets `value`.
fn bind<'a>(
    sql: &mut String,
    values: &mut Vec<&'a (dyn ToSql + Sync)>,
    clause: &str,
    value: &'a (dyn ToSql + Sync),
) {
    values.push(value);
    sql.push_str(&clause.replace('$', &format!("${}", values.len())));
}
