//! Retention rules, and deleting runs and graph versions: their SQL and
//! [`RetentionStore`] for [`SqliteStore`]. Deleting runs gives the file's
//! freed pages back (`PRAGMA incremental_vacuum`, in files made with
//! `auto_vacuum = INCREMENTAL`: every file this store makes).

use async_trait::async_trait;
use roomkit_graph_store::{
    Millis, Result, RetentionRule, RetentionStore, RunStatus, StoreError, Sweep, Swept, latest_kept,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::SqliteStore;
use crate::error::{DbError, sql_int};
use crate::runs::{find_run, not_found_run};

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn set_retention(&self, org: &str, graph_id: Option<&str>, keep: Option<Millis>) -> Result<()> {
        let (org, graph_id) = (org.to_owned(), graph_id.unwrap_or_default().to_owned());
        self.write(move |conn| set_retention(conn, &org, &graph_id, keep)).await
    }

    async fn retention_rules(&self) -> Result<Vec<RetentionRule>> {
        self.read(|conn| retention_rules(conn)).await
    }

    async fn delete_run(&self, run_id: &str) -> Result<usize> {
        let run_id = run_id.to_owned();
        self.write(move |conn| delete_run(conn, &run_id)).await
    }

    async fn delete_finished_runs(&self, sweep: &Sweep) -> Result<Swept> {
        // Found on a reader, so the writer (every commit) waits only for the
        // deletions, each family looked at again there.
        let sweep = sweep.clone();
        let candidates = self.read(move |conn| sweep_candidates(conn, &sweep)).await?;
        let last = candidates.last().cloned();
        let looked_at = candidates.len();
        let run_ids: Vec<String> = candidates.into_iter().map(|(_, run_id)| run_id).collect();
        let deleted = self.write(move |conn| delete_finished_runs(conn, &run_ids)).await?;
        Ok(Swept { deleted, looked_at, last })
    }

    async fn delete_graph_version(&self, org: &str, graph_id: &str, version: u64) -> Result<()> {
        let (org, graph_id) = (org.to_owned(), graph_id.to_owned());
        self.write(move |conn| delete_graph_version(conn, &org, &graph_id, version)).await
    }
}

fn set_retention(conn: &Connection, org: &str, graph_id: &str, keep: Option<Millis>) -> Result<(), DbError> {
    match keep {
        Some(keep) => conn
            .prepare_cached(
                "INSERT INTO retention (org, graph_id, keep) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (org, graph_id) DO UPDATE SET keep = excluded.keep",
            )?
            .execute(params![org, graph_id, keep])?,
        None => conn
            .prepare_cached("DELETE FROM retention WHERE org = ?1 AND graph_id = ?2")?
            .execute(params![org, graph_id])?,
    };
    Ok(())
}

fn retention_rules(conn: &Connection) -> Result<Vec<RetentionRule>, DbError> {
    let mut statement =
        conn.prepare_cached("SELECT org, graph_id, keep FROM retention ORDER BY org, graph_id")?;
    let rows = statement.query_map([], |row| {
        let graph_id: String = row.get(1)?;
        Ok(RetentionRule {
            org: row.get(0)?,
            graph_id: (!graph_id.is_empty()).then_some(graph_id),
            keep: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A run and every run under it (its children, theirs...), each with its
/// status, the run first.
fn family(conn: &Connection, run_id: &str) -> Result<Vec<(String, String)>, DbError> {
    let mut statement = conn.prepare_cached(
        "WITH RECURSIVE family(run_id) AS (SELECT ?1 \
             UNION ALL SELECT runs.run_id FROM runs JOIN family ON runs.parent_run_id = family.run_id) \
         SELECT runs.run_id, runs.status FROM family JOIN runs ON runs.run_id = family.run_id",
    )?;
    let rows = statement.query_map(params![run_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The first of `family` still running or waiting, if any.
fn live_member(family: &[(String, String)]) -> Option<&(String, String)> {
    family.iter().find(|(_, status)| RunStatus::parse(status).is_none_or(|status| !status.is_final()))
}

/// Deletes the runs of `family`, their transcripts and hook deliveries.
fn delete_family(conn: &Connection, family: &[(String, String)]) -> Result<(), DbError> {
    for (run_id, _) in family {
        conn.prepare_cached("DELETE FROM transcript WHERE run_id = ?1")?.execute(params![run_id])?;
        conn.prepare_cached("DELETE FROM hook_deliveries WHERE run_id = ?1")?.execute(params![run_id])?;
        conn.prepare_cached("DELETE FROM runs WHERE run_id = ?1")?.execute(params![run_id])?;
    }
    Ok(())
}

fn delete_run(conn: &Connection, run_id: &str) -> Result<usize, DbError> {
    let run = find_run(conn, run_id)?.ok_or_else(|| not_found_run(run_id))?;
    let conflict =
        |detail: String| -> DbError { StoreError::Conflict { run_id: run_id.to_owned(), detail }.into() };
    if let Some(parent) = &run.parent
        && find_run(conn, &parent.run_id)?.is_some()
    {
        return Err(conflict(format!(
            "it is a child run of {}: it is deleted with its parent",
            parent.run_id
        )));
    }
    let family = family(conn, run_id)?;
    if let Some((live, status)) = live_member(&family) {
        let whose = if live == run_id { "it".to_owned() } else { format!("its child run {live}") };
        return Err(conflict(format!("{whose} is {status}: cancel it first, then delete it")));
    }
    delete_family(conn, &family)?;
    give_space_back(conn)?;
    Ok(family.len())
}

/// The top-level runs `sweep` names, oldest first: their creation time and
/// id.
fn sweep_candidates(conn: &Connection, sweep: &Sweep) -> Result<Vec<(Millis, String)>, DbError> {
    // A run finished before the cutoff was created before it too: the
    // organization's runs are read by creation time from their index.
    let mut sql = String::from(
        "SELECT created_at, run_id FROM runs WHERE org = ?1 AND created_at < ?2 AND updated_at < ?2 \
         AND parent_run_id IS NULL AND status IN ('completed', 'failed', 'cancelled') \
         AND (run_key IS NULL OR key_expires_at IS NULL OR key_expires_at <= ?3) \
         AND NOT EXISTS (SELECT 1 FROM hook_deliveries AS d \
             WHERE d.run_id = runs.run_id AND d.next_attempt_at IS NOT NULL)",
    );
    let mut values = vec![
        SqlValue::Text(sweep.org.clone()),
        SqlValue::Integer(sweep.finished_before),
        SqlValue::Integer(sweep.now),
    ];
    if let Some(graph_id) = &sweep.graph_id {
        values.push(SqlValue::Text(graph_id.clone()));
        sql.push_str(&format!(" AND graph_id = ?{}", values.len()));
    }
    if !sweep.except_graphs.is_empty() {
        values.push(SqlValue::Text(serde_json::to_string(&sweep.except_graphs)?));
        sql.push_str(&format!(" AND graph_id NOT IN (SELECT value FROM json_each(?{}))", values.len()));
    }
    if let Some((created_at, run_id)) = &sweep.after {
        values.push(SqlValue::Integer(*created_at));
        values.push(SqlValue::Text(run_id.clone()));
        let (at, id) = (values.len() - 1, values.len());
        sql.push_str(&format!(" AND (created_at > ?{at} OR (created_at = ?{at} AND run_id > ?{id}))"));
    }
    values.push(SqlValue::Integer(i64::try_from(sweep.limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(" ORDER BY created_at, run_id LIMIT ?{}", values.len()));
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values), |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes each of `run_ids` with its family, unless one of them is live
/// (looked at again here, in the writer): how many runs went.
fn delete_finished_runs(conn: &Connection, run_ids: &[String]) -> Result<usize, DbError> {
    let mut deleted = 0;
    for run_id in run_ids {
        let family = family(conn, run_id)?;
        if !family.is_empty() && live_member(&family).is_none() {
            delete_family(conn, &family)?;
            deleted += family.len();
        }
    }
    if deleted > 0 {
        give_space_back(conn)?;
    }
    Ok(deleted)
}

fn delete_graph_version(conn: &Connection, org: &str, graph_id: &str, version: u64) -> Result<(), DbError> {
    let number = sql_int(version);
    // As PostgreSQL judges: the latest first, then the runs using it.
    let latest: Option<i64> = conn
        .prepare_cached("SELECT max(version) FROM graphs WHERE org = ?1 AND graph_id = ?2")?
        .query_row(params![org, graph_id], |row| row.get(0))?;
    if latest == Some(number) {
        return Err(StoreError::Invalid(latest_kept(graph_id, version)).into());
    }
    let user: Option<String> = conn
        .prepare_cached(
            "SELECT run_id FROM runs WHERE org = ?1 AND graph_id = ?2 AND graph_version = ?3 LIMIT 1",
        )?
        .query_row(params![org, graph_id, number], |row| row.get(0))
        .optional()?;
    if let Some(run_id) = user {
        let detail =
            format!("it uses version {version} of graph {graph_id}, which is kept while a run uses it");
        return Err(StoreError::Conflict { run_id, detail }.into());
    }
    let deleted = conn
        .prepare_cached("DELETE FROM graphs WHERE org = ?1 AND graph_id = ?2 AND version = ?3")?
        .execute(params![org, graph_id, number])?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("graph {graph_id} version {version}")).into());
    }
    Ok(())
}

/// Gives the file's free pages back to the file system. The pragma frees one
/// page per step: it is stepped to its end.
fn give_space_back(conn: &Connection) -> Result<(), DbError> {
    let mut statement = conn.prepare_cached("PRAGMA incremental_vacuum")?;
    let mut freeing = statement.query([])?;
    while freeing.next()?.is_some() {}
    Ok(())
}
