//! Flow control, as the SQLite store applies it: a run runs only while its
//! key (of a graph with a concurrency limit) and its organization (with a
//! run limit) have room, and is queued otherwise; a run that stops running
//! lets the oldest queued run that then fits go. Applied in the transaction
//! of the commit that moves the run (the writer thread makes them one at a
//! time); [`QueueStore`] for [`SqliteStore`].

use async_trait::async_trait;
use roomkit_graph_store::{
    ConcurrencySlot, Millis, QueueDepth, QueueStore, Result, RunRecord, RunStatus, count_releases, now_millis,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::error::DbError;

#[async_trait]
impl QueueStore for SqliteStore {
    async fn set_running_limit(&self, org: &str, limit: Option<u32>) -> Result<()> {
        let org = org.to_owned();
        self.write(move |conn| set_running_limit(conn, &org, limit, now_millis())).await
    }

    async fn running_limit(&self, org: &str) -> Result<Option<u32>> {
        let org = org.to_owned();
        self.read(move |conn| running_limit(conn, &org)).await
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>> {
        self.read(|conn| queue_depths(conn)).await
    }

    async fn settle_queues(&self, now: Millis) -> Result<usize> {
        self.write(move |conn| settle_queues(conn, now)).await
    }
}

/// Records the place a new run takes.
pub(crate) fn set_slot(conn: &Connection, run_id: &str, slot: &ConcurrencySlot) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE runs SET concurrency_key = ?2, concurrency_limit = ?3 WHERE run_id = ?1")?
        .execute(params![run_id, slot.key, slot.limit])?;
    Ok(())
}

/// Gives a room (`run_id`) the place of its parent, whose node it runs.
pub(crate) fn inherit_slot(conn: &Connection, run_id: &str, parent_id: &str) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE runs SET (concurrency_key, concurrency_limit) = \
         (SELECT concurrency_key, concurrency_limit FROM runs WHERE run_id = ?2) WHERE run_id = ?1",
    )?
    .execute(params![run_id, parent_id])?;
    Ok(())
}

/// The limits a run is held to: its place (when its graph has a limit) and
/// its organization's limit.
struct Limits {
    slot: Option<ConcurrencySlot>,
    org: Option<u32>,
}

fn limits_of(conn: &Connection, run_id: &str) -> Result<Limits, DbError> {
    let found: Option<(Option<String>, Option<u32>, Option<u32>)> = conn
        .prepare_cached(
            "SELECT concurrency_key, concurrency_limit, \
             (SELECT max_running FROM run_limits WHERE run_limits.org = runs.org) FROM runs WHERE run_id = ?1",
        )?
        .query_row(params![run_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let Some((key, limit, org)) = found else { return Ok(Limits { slot: None, org: None }) };
    let slot = key.zip(limit).map(|(key, limit)| ConcurrencySlot { key, limit });
    Ok(Limits { slot, org })
}

fn running_limit(conn: &Connection, org: &str) -> Result<Option<u32>, DbError> {
    Ok(conn
        .prepare_cached("SELECT max_running FROM run_limits WHERE org = ?1")?
        .query_row(params![org], |row| row.get(0))
        .optional()?)
}

/// How many runs of `graph_id`'s `key` are running, `except` aside.
fn running_of_key(
    conn: &Connection,
    org: &str,
    graph_id: &str,
    key: &str,
    except: &str,
) -> Result<u32, DbError> {
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM runs WHERE org = ?1 AND graph_id = ?2 AND concurrency_key = ?3 \
             AND status = 'running' AND run_id != ?4",
        )?
        .query_row(params![org, graph_id, key, except], |row| row.get(0))?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// How many runs of `org` are running, `except` aside.
fn running_of_org(conn: &Connection, org: &str, except: &str) -> Result<u32, DbError> {
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM runs WHERE org = ?1 AND status = 'running' AND run_id != ?2")?
        .query_row(params![org, except], |row| row.get(0))?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// `after`, the run as a commit leaves it (coming from `before`), once the
/// limits are applied: a run that would start running while its key or its
/// organization is full is queued instead, and a run that stops running
/// lets the oldest queued run that then fits go.
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
    let limits = limits_of(conn, &after.run_id)?;
    if limits.slot.is_none() && limits.org.is_none() {
        return Ok(after);
    }
    if !is_running {
        let stopped = limits.slot.as_ref().map(|slot| (after.graph_id.as_str(), slot.key.as_str()));
        release(conn, &after.org, limits.org, stopped, now)?;
        return Ok(after);
    }
    let (org, graph_id, run_id) = (&after.org, &after.graph_id, &after.run_id);
    let key_full = match &limits.slot {
        Some(slot) => running_of_key(conn, org, graph_id, &slot.key, run_id)? >= slot.limit,
        None => false,
    };
    let org_full = match limits.org {
        Some(limit) => running_of_org(conn, org, run_id)? >= limit,
        None => false,
    };
    if !key_full && !org_full {
        return Ok(after);
    }
    conn.prepare_cached(
        "UPDATE runs SET status = 'queued', owner = NULL, lease_until = NULL WHERE run_id = ?1",
    )?
    .execute(params![run_id])?;
    Ok(after.queued())
}

/// Lets the oldest queued run of `org` that fits go, after a run of the
/// `stopped` graph and key (if it had one) stopped running; whether one
/// went. Without an organization's limit, only that key's runs can fit now.
fn release(
    conn: &Connection,
    org: &str,
    org_limit: Option<u32>,
    stopped: Option<(&str, &str)>,
    now: Millis,
) -> Result<bool, DbError> {
    if let Some(limit) = org_limit
        && running_of_org(conn, org, "")? >= limit
    {
        return Ok(false);
    }
    let released = match (org_limit, stopped) {
        (None, Some((graph_id, key))) => conn
            .prepare_cached(
                "UPDATE runs SET status = 'running', updated_at = ?4 WHERE run_id = (SELECT q.run_id FROM runs q \
                 WHERE q.org = ?1 AND q.graph_id = ?2 AND q.concurrency_key = ?3 AND q.status = 'queued' \
                 AND q.concurrency_limit > (SELECT count(*) FROM runs r WHERE r.org = ?1 AND r.graph_id = ?2 \
                 AND r.concurrency_key = ?3 AND r.status = 'running') \
                 ORDER BY q.created_at, q.run_id LIMIT 1)",
            )?
            .execute(params![org, graph_id, key, now])?,
        _ => match oldest_fitting(conn, org)? {
            Some(run_id) => conn
                .prepare_cached("UPDATE runs SET status = 'running', updated_at = ?2 WHERE run_id = ?1")?
                .execute(params![run_id, now])?,
            None => 0,
        },
    };
    count_releases(u64::try_from(released).unwrap_or_default());
    Ok(released > 0)
}

/// The oldest queued run of `org` that its key lets go (any run without a
/// key): the head of each key's queue looked at, the keys with runs queued
/// found one index seek at a time, so that a long queue of a full key costs
/// one look, not one per run in it.
fn oldest_fitting(conn: &Connection, org: &str) -> Result<Option<String>, DbError> {
    let mut best: Option<(Millis, String)> = conn
        .prepare_cached(
            // The planner would walk every queued run by status otherwise.
            "SELECT created_at, run_id FROM runs INDEXED BY runs_queued_unkeyed WHERE org = ?1 \
             AND status = 'queued' AND concurrency_key IS NULL ORDER BY created_at, run_id LIMIT 1",
        )?
        .query_row(params![org], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    // The next key with runs queued, after (graph, key): of the same graph,
    // or of the next graph. Two ranges on single columns of the queued runs'
    // index, so that each is a seek (a row-value range would walk the runs of
    // the key it passes; the planner, without statistics, an index of every run).
    let mut next_of_graph = conn.prepare_cached(
        "SELECT graph_id, concurrency_key FROM runs INDEXED BY runs_queued_by_key WHERE org = ?1 \
         AND graph_id = ?2 AND concurrency_key > ?3 AND status = 'queued' ORDER BY concurrency_key LIMIT 1",
    )?;
    let mut next_graph = conn.prepare_cached(
        "SELECT graph_id, concurrency_key FROM runs INDEXED BY runs_queued_by_key WHERE org = ?1 \
         AND graph_id > ?2 AND concurrency_key IS NOT NULL AND status = 'queued' \
         ORDER BY graph_id, concurrency_key LIMIT 1",
    )?;
    let pair = |row: &rusqlite::Row<'_>| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?));
    let mut next_key = |after: &(String, String)| -> Result<Option<(String, String)>, DbError> {
        if let Some(found) = next_of_graph.query_row(params![org, after.0, after.1], pair).optional()? {
            return Ok(Some(found));
        }
        Ok(next_graph.query_row(params![org, after.0], pair).optional()?)
    };
    let mut head = conn.prepare_cached(
        "SELECT created_at, run_id, concurrency_limit FROM runs INDEXED BY runs_queued_by_key WHERE org = ?1 \
         AND graph_id = ?2 AND concurrency_key = ?3 AND status = 'queued' ORDER BY created_at, run_id LIMIT 1",
    )?;
    // Graph ids are never empty: ("", "") comes before every key.
    let mut after = (String::new(), String::new());
    while let Some((graph_id, key)) = next_key(&after)? {
        let (created_at, run_id, limit): (Millis, String, u32) =
            head.query_row(params![org, graph_id, key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        let older = best.as_ref().is_none_or(|best| (created_at, &run_id) < (best.0, &best.1));
        if older && running_of_key(conn, org, &graph_id, &key, "")? < limit {
            best = Some((created_at, run_id));
        }
        after = (graph_id, key);
    }
    Ok(best.map(|(_, run_id)| run_id))
}

/// Sets the organization's limit, then lets go every queued run that fits.
fn set_running_limit(conn: &Connection, org: &str, limit: Option<u32>, now: Millis) -> Result<(), DbError> {
    match limit {
        Some(limit) => conn
            .prepare_cached(
                "INSERT INTO run_limits (org, max_running) VALUES (?1, ?2) \
                 ON CONFLICT (org) DO UPDATE SET max_running = excluded.max_running",
            )?
            .execute(params![org, limit])?,
        None => conn.prepare_cached("DELETE FROM run_limits WHERE org = ?1")?.execute(params![org])?,
    };
    settle(conn, org, limit, now)?;
    Ok(())
}

/// Lets go every queued run of `org` that fits under `limit` and its keys'
/// limits, oldest first: how many went.
fn settle(conn: &Connection, org: &str, limit: Option<u32>, now: Millis) -> Result<usize, DbError> {
    let mut released = 0;
    while release(conn, org, limit, None, now)? {
        released += 1;
    }
    Ok(released)
}

/// Lets go every queued run that fits, organization by organization.
fn settle_queues(conn: &Connection, now: Millis) -> Result<usize, DbError> {
    let orgs: Vec<String> = conn
        .prepare_cached("SELECT DISTINCT org FROM runs WHERE status = 'queued'")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut released = 0;
    for org in orgs {
        released += settle(conn, &org, running_limit(conn, &org)?, now)?;
    }
    Ok(released)
}

fn queue_depths(conn: &Connection) -> Result<Vec<QueueDepth>, DbError> {
    let mut statement = conn.prepare_cached(
        "SELECT org, graph_id, coalesce(concurrency_key, ''), count(*) FROM runs WHERE status = 'queued' \
         GROUP BY org, graph_id, concurrency_key ORDER BY org, graph_id, concurrency_key",
    )?;
    let rows = statement.query_map([], |row| {
        let queued: i64 = row.get(3)?;
        Ok(QueueDepth {
            org: row.get(0)?,
            graph_id: row.get(1)?,
            key: row.get(2)?,
            queued: u64::try_from(queued).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
