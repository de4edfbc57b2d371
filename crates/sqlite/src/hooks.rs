//! Run-event hooks and their deliveries: their SQL, the outbox a commit
//! writes ([`deliver_events`]) and [`HookStore`] for [`SqliteStore`].

use async_trait::async_trait;
use roomkit_graph_store::{
    ClaimedDelivery, DeliveryCursor, DeliveryFilter, DeliveryStatus, Hook, HookAttempt, HookDelivery,
    HookEvent, HookStore, Millis, Result, RunRecord, StoreError, TranscriptEvent, hook_payload,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::SqliteStore;
use crate::error::DbError;
use crate::error::sql_int;

#[async_trait]
impl HookStore for SqliteStore {
    async fn add_hook(&self, hook: &Hook) -> Result<()> {
        let hook = hook.clone();
        self.write(move |conn| add_hook(conn, &hook)).await
    }

    async fn hooks(&self, org: &str) -> Result<Vec<Hook>> {
        let org = org.to_owned();
        self.read(move |conn| hooks(conn, &org)).await
    }

    async fn remove_hook(&self, org: &str, hook_id: &str) -> Result<bool> {
        let (org, hook_id) = (org.to_owned(), hook_id.to_owned());
        self.write(move |conn| remove_hook(conn, &org, &hook_id)).await
    }

    async fn claim_deliveries(
        &self,
        now: Millis,
        hold: Millis,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>> {
        // Most polls find nothing due: a read says so without the write lock.
        if !self.read(move |conn| any_due(conn, now)).await? {
            return Ok(Vec::new());
        }
        self.write(move |conn| claim_deliveries(conn, now, hold, limit)).await
    }

    async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: &HookAttempt,
        next_attempt_at: Option<Millis>,
    ) -> Result<bool> {
        let (delivery_id, held_until, attempt) =
            (claimed.delivery.delivery_id.clone(), claimed.held_until, attempt.clone());
        self.write(move |conn| record_attempt(conn, &delivery_id, held_until, &attempt, next_attempt_at))
            .await
    }

    async fn delete_old_deliveries(&self, before: Millis, limit: usize) -> Result<usize> {
        self.write(move |conn| delete_old_deliveries(conn, before, limit)).await
    }

    async fn deliveries(
        &self,
        org: &str,
        filter: &DeliveryFilter,
        limit: usize,
    ) -> Result<Vec<HookDelivery>> {
        let (org, filter) = (org.to_owned(), filter.clone());
        self.read(move |conn| deliveries(conn, &org, &filter, limit)).await
    }
}

/// Writes, for each of `events` a hook hears, a pending delivery to every
/// hook of the run's organization (and graph) that hears it: in the
/// transaction of the commit that appends the events. A commit with no such
/// event runs no statement.
pub(crate) fn deliver_events(
    conn: &Connection,
    events: &[TranscriptEvent],
    run: &RunRecord,
) -> Result<(), DbError> {
    for event in events {
        let Some(kind) = HookEvent::of(&event.entry) else { continue };
        let payload = hook_payload(kind, event, run).to_string();
        conn.prepare_cached(
            "INSERT INTO hook_deliveries (delivery_id, org, hook_id, event, run_id, seq, payload, created_at, \
             status, next_attempt_at) \
             SELECT hook_id || ':' || ?3 || ':' || ?4, org, hook_id, ?5, ?3, ?4, ?6, ?7, 'pending', ?7 \
             FROM hooks WHERE org = ?1 AND (graph_id IS NULL OR graph_id = ?2) \
             AND instr(events, ',' || ?5 || ',') > 0",
        )?
        .execute(params![run.org, run.graph_id, event.run_id, sql_int(event.seq), kind.as_str(), payload, event.at])?;
    }
    Ok(())
}

/// The columns of a hook, in the order [`hook_row`] reads them.
const HOOK_COLUMNS: &str = "hook_id, org, url, events, graph_id, secret, created_at";

/// The columns of a delivery, in the order [`delivery_row`] reads them.
const DELIVERY_COLUMNS: &str = "d.delivery_id, d.org, d.hook_id, d.event, d.run_id, d.seq, d.payload, \
     d.created_at, d.status, d.next_attempt_at, d.attempts_json";

fn add_hook(conn: &Connection, hook: &Hook) -> Result<(), DbError> {
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO hooks ({HOOK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"
        ))?
        .execute(params![
            hook.hook_id,
            hook.org,
            hook.url,
            Hook::events_text(&hook.events),
            hook.graph_id,
            hook.secret,
            hook.created_at
        ])?;
    if inserted == 0 {
        return Err(StoreError::Invalid(format!("a hook {} exists already", hook.hook_id)).into());
    }
    Ok(())
}

fn hooks(conn: &Connection, org: &str) -> Result<Vec<Hook>, DbError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {HOOK_COLUMNS} FROM hooks WHERE org = ?1 ORDER BY created_at, hook_id"
    ))?;
    let rows = statement.query_map(params![org], hook_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn remove_hook(conn: &Connection, org: &str, hook_id: &str) -> Result<bool, DbError> {
    let removed = conn
        .prepare_cached("DELETE FROM hooks WHERE org = ?1 AND hook_id = ?2")?
        .execute(params![org, hook_id])?;
    conn.prepare_cached(
        "UPDATE hook_deliveries SET status = 'failed', next_attempt_at = NULL \
         WHERE org = ?1 AND hook_id = ?2 AND status = 'pending'",
    )?
    .execute(params![org, hook_id])?;
    Ok(removed > 0)
}

/// Whether a delivery is due at `now`.
fn any_due(conn: &Connection, now: Millis) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM hook_deliveries WHERE next_attempt_at <= ?1 LIMIT 1")?
        .query_row(params![now], |_| Ok(()))
        .optional()?
        .is_some())
}

fn claim_deliveries(
    conn: &Connection,
    now: Millis,
    hold: Millis,
    limit: usize,
) -> Result<Vec<ClaimedDelivery>, DbError> {
    conn.prepare_cached(
        "UPDATE hook_deliveries SET status = 'failed', next_attempt_at = NULL \
         WHERE next_attempt_at <= ?1 AND NOT EXISTS \
         (SELECT 1 FROM hooks WHERE hooks.org = hook_deliveries.org AND hooks.hook_id = hook_deliveries.hook_id)",
    )?
    .execute(params![now])?;
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS}, h.url, h.secret FROM hook_deliveries AS d \
         JOIN hooks AS h ON h.org = d.org AND h.hook_id = d.hook_id \
         WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?1 \
         ORDER BY d.next_attempt_at, d.created_at, d.delivery_id LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let held_until = now.saturating_add(hold);
    let claimed: Vec<ClaimedDelivery> = statement
        .query_map(params![now, limit], |row| {
            Ok(ClaimedDelivery {
                delivery: delivery_row(row)?,
                url: row.get(11)?,
                secret: row.get(12)?,
                held_until,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut hold_it =
        conn.prepare_cached("UPDATE hook_deliveries SET next_attempt_at = ?2 WHERE delivery_id = ?1")?;
    for claimed in &claimed {
        hold_it.execute(params![claimed.delivery.delivery_id, held_until])?;
    }
    Ok(claimed)
}

fn record_attempt(
    conn: &Connection,
    delivery_id: &str,
    held_until: Millis,
    attempt: &HookAttempt,
    next_attempt_at: Option<Millis>,
) -> Result<bool, DbError> {
    let status = DeliveryStatus::after(attempt, next_attempt_at);
    let next = next_attempt_at.filter(|_| status == DeliveryStatus::Pending);
    let recorded = conn
        .prepare_cached(
            "UPDATE hook_deliveries SET status = ?3, next_attempt_at = ?4, \
             attempts_json = json_insert(attempts_json, '$[#]', json(?5)) \
             WHERE delivery_id = ?1 AND status = 'pending' AND next_attempt_at = ?2",
        )?
        .execute(params![delivery_id, held_until, status.as_str(), next, serde_json::to_string(attempt)?])?;
    Ok(recorded > 0)
}

fn delete_old_deliveries(conn: &Connection, before: Millis, limit: usize) -> Result<usize, DbError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(conn
        .prepare_cached(
            "DELETE FROM hook_deliveries WHERE delivery_id IN (SELECT delivery_id FROM hook_deliveries \
             WHERE next_attempt_at IS NULL AND created_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}

fn deliveries(
    conn: &Connection,
    org: &str,
    filter: &DeliveryFilter,
    limit: usize,
) -> Result<Vec<HookDelivery>, DbError> {
    let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM hook_deliveries AS d WHERE d.org = ?1");
    let mut values = vec![SqlValue::Text(org.to_owned())];
    let mut bind = |sql: &mut String, clause: &str, value: SqlValue| {
        values.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(hook_id) = &filter.hook_id {
        bind(&mut sql, " AND d.hook_id = ?", SqlValue::Text(hook_id.clone()));
    }
    if let Some(run_id) = &filter.run_id {
        bind(&mut sql, " AND d.run_id = ?", SqlValue::Text(run_id.clone()));
    }
    if let Some(status) = filter.status {
        bind(&mut sql, " AND d.status = ?", SqlValue::Text(status.as_str().to_owned()));
    }
    if let Some(DeliveryCursor { created_at, delivery_id }) = &filter.before {
        bind(&mut sql, " AND (d.created_at, d.delivery_id) < (?", SqlValue::Integer(*created_at));
        bind(&mut sql, ", ?)", SqlValue::Text(delivery_id.clone()));
    }
    bind(
        &mut sql,
        " ORDER BY d.created_at DESC, d.delivery_id DESC LIMIT ?",
        SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)),
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values), delivery_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn hook_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Hook> {
    let events: String = row.get(3)?;
    Ok(Hook {
        hook_id: row.get(0)?,
        org: row.get(1)?,
        url: row.get(2)?,
        events: Hook::read_events(&events),
        graph_id: row.get(4)?,
        secret: row.get(5)?,
        created_at: row.get(6)?,
    })
}

/// A delivery read with [`DELIVERY_COLUMNS`]; stored JSON that does not
/// read back is a conversion error naming the column.
fn delivery_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HookDelivery> {
    fn json<T: serde::de::DeserializeOwned>(index: usize, text: String) -> rusqlite::Result<T> {
        serde_json::from_str(&text).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(err))
        })
    }
    let event: String = row.get(3)?;
    let status: String = row.get(8)?;
    let unknown = |index: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.into())
    };
    Ok(HookDelivery {
        delivery_id: row.get(0)?,
        org: row.get(1)?,
        hook_id: row.get(2)?,
        event: HookEvent::parse(&event).ok_or_else(|| unknown(3, format!("unknown hook event {event:?}")))?,
        run_id: row.get(4)?,
        seq: u64::try_from(row.get::<_, i64>(5)?).unwrap_or_default(),
        payload: json(6, row.get(6)?)?,
        created_at: row.get(7)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| unknown(8, format!("unknown delivery status {status:?}")))?,
        next_attempt_at: row.get(9)?,
        attempts: json(10, row.get(10)?)?,
    })
}
