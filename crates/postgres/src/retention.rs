//! Retention rules, and deleting runs and graph versions: their SQL and
//! [`RetentionStore`] for [`PostgresStore`] (freed space is reused through
//! autovacuum).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use roomkit_graph_store::{
    Millis, Result, RetentionRule, RetentionStore, RunStatus, StoreError, Sweep, Swept, latest_kept,
};
use tokio_postgres::types::ToSql;

use crate::PostgresStore;
use crate::error::{pg, sql_int};
use crate::runs::lock_run;

#[async_trait]
impl RetentionStore for PostgresStore {
    async fn set_retention(&self, org: &str, graph_id: Option<&str>, keep: Option<Millis>) -> Result<()> {
        self.retrying(|| self.set_retention_once(org, graph_id.unwrap_or_default(), keep)).await
    }

    async fn retention_rules(&self) -> Result<Vec<RetentionRule>> {
        self.retrying(|| self.retention_rules_once()).await
    }

    async fn delete_run(&self, run_id: &str) -> Result<usize> {
        self.retrying(|| self.delete_run_once(run_id)).await
    }

    async fn delete_finished_runs(&self, sweep: &Sweep) -> Result<Swept> {
        self.retrying(|| self.delete_finished_runs_once(sweep)).await
    }

    async fn delete_graph_version(&self, org: &str, graph_id: &str, version: u64) -> Result<()> {
        self.retrying(|| self.delete_graph_version_once(org, graph_id, version)).await
    }
}

/// The operations, each tried once; [`PostgresStore::retrying`] tries them
/// again while the database is unavailable.
impl PostgresStore {
    async fn set_retention_once(&self, org: &str, graph_id: &str, keep: Option<Millis>) -> Result<()> {
        let client = self.client().await?;
        match keep {
            Some(keep) => {
                client
                    .execute(
                        "INSERT INTO roomkit_graph.retention (org, graph_id, keep) VALUES ($1, $2, $3) \
                         ON CONFLICT (org, graph_id) DO UPDATE SET keep = excluded.keep",
                        &[&org, &graph_id, &keep],
                    )
                    .await
            }
            None => {
                client
                    .execute(
                        "DELETE FROM roomkit_graph.retention WHERE org = $1 AND graph_id = $2",
                        &[&org, &graph_id],
                    )
                    .await
            }
        }
        .map_err(pg)?;
        Ok(())
    }

    async fn retention_rules_once(&self) -> Result<Vec<RetentionRule>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT org, graph_id, keep FROM roomkit_graph.retention ORDER BY org, graph_id", &[])
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|row| {
                let graph_id: String = row.get(1);
                RetentionRule {
                    org: row.get(0),
                    graph_id: (!graph_id.is_empty()).then_some(graph_id),
                    keep: row.get(2),
                }
            })
            .collect())
    }

    async fn delete_run_once(&self, run_id: &str) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let run = lock_run(&tx, run_id).await?;
        let conflict = |detail: String| StoreError::Conflict { run_id: run_id.to_owned(), detail };
        if let Some(parent) = &run.parent {
            let parent_kept = tx
                .query_opt("SELECT 1 FROM roomkit_graph.runs WHERE run_id = $1", &[&parent.run_id])
                .await
                .map_err(pg)?
                .is_some();
            if parent_kept {
                return Err(conflict(format!(
                    "it is a child run of {}: it is deleted with its parent",
                    parent.run_id
                )));
            }
        }
        let family = family(&tx, run_id).await?;
        if let Some((live, status)) = live_member(&family) {
            let whose = if live == run_id { "it".to_owned() } else { format!("its child run {live}") };
            return Err(conflict(format!("{whose} is {status}: cancel it first, then delete it")));
        }
        delete_family(&tx, &family).await?;
        tx.commit().await.map_err(pg)?;
        Ok(family.len())
    }

    async fn delete_finished_runs_once(&self, sweep: &Sweep) -> Result<Swept> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let limit = i64::try_from(sweep.limit).unwrap_or(i64::MAX);
        let mut sql = String::from(
            "SELECT created_at, run_id FROM roomkit_graph.runs AS r WHERE org = $1 AND created_at < $2 \
             AND updated_at < $2 AND parent_run_id IS NULL AND status IN ('completed', 'failed', 'cancelled') \
             AND (run_key IS NULL OR key_expires_at IS NULL OR key_expires_at <= $3) \
             AND NOT EXISTS (SELECT 1 FROM roomkit_graph.hook_deliveries AS d \
                 WHERE d.run_id = r.run_id AND d.next_attempt_at IS NOT NULL)",
        );
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&sweep.org, &sweep.finished_before, &sweep.now];
        if let Some(graph_id) = &sweep.graph_id {
            values.push(graph_id);
            sql.push_str(&format!(" AND graph_id = ${}", values.len()));
        }
        if !sweep.except_graphs.is_empty() {
            values.push(&sweep.except_graphs);
            sql.push_str(&format!(" AND graph_id <> ALL(${})", values.len()));
        }
        if let Some((created_at, run_id)) = &sweep.after {
            values.push(created_at);
            values.push(run_id);
            let (at, id) = (values.len() - 1, values.len());
            sql.push_str(&format!(" AND (created_at, run_id) > (${at}, ${id})"));
        }
        values.push(&limit);
        // Runs another process is deleting (or committing to) are left to it.
        sql.push_str(&format!(" ORDER BY created_at, run_id LIMIT ${} FOR UPDATE SKIP LOCKED", values.len()));
        let candidates: Vec<(Millis, String)> =
            tx.query(&sql, &values).await.map_err(pg)?.iter().map(|row| (row.get(0), row.get(1))).collect();
        let mut deleted = 0;
        for (_, run_id) in &candidates {
            let family = family(&tx, run_id).await?;
            if live_member(&family).is_none() {
                delete_family(&tx, &family).await?;
                deleted += family.len();
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(Swept { deleted, looked_at: candidates.len(), last: candidates.last().cloned() })
    }

    async fn delete_graph_version_once(&self, org: &str, graph_id: &str, version: u64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let number = sql_int(version);
        // Locked first: a run starting on this version waits, then finds it gone.
        let exists = tx
            .query_opt(
                "SELECT 1 FROM roomkit_graph.graphs WHERE org = $1 AND graph_id = $2 AND version = $3 FOR UPDATE",
                &[&org, &graph_id, &number],
            )
            .await
            .map_err(pg)?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("graph {graph_id} version {version}")));
        }
        let latest: Option<i64> = tx
            .query_one(
                "SELECT max(version) FROM roomkit_graph.graphs WHERE org = $1 AND graph_id = $2",
                &[&org, &graph_id],
            )
            .await
            .map_err(pg)?
            .get(0);
        if latest == Some(number) {
            return Err(StoreError::Invalid(latest_kept(graph_id, version)));
        }
        let user = tx
            .query_opt(
                "SELECT run_id FROM roomkit_graph.runs WHERE org = $1 AND graph_id = $2 AND graph_version = $3 LIMIT 1",
                &[&org, &graph_id, &number],
            )
            .await
            .map_err(pg)?;
        if let Some(row) = user {
            let detail =
                format!("it uses version {version} of graph {graph_id}, which is kept while a run uses it");
            return Err(StoreError::Conflict { run_id: row.get(0), detail });
        }
        tx.execute(
            "DELETE FROM roomkit_graph.graphs WHERE org = $1 AND graph_id = $2 AND version = $3",
            &[&org, &graph_id, &number],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}

/// A run and every run under it, each with its status, the run first.
async fn family(tx: &Transaction<'_>, run_id: &str) -> Result<Vec<(String, String)>> {
    let rows = tx
        .query(
            "WITH RECURSIVE family(run_id) AS (SELECT $1::text \
                 UNION ALL SELECT r.run_id FROM roomkit_graph.runs AS r JOIN family ON r.parent_run_id = family.run_id) \
             SELECT r.run_id, r.status FROM family JOIN roomkit_graph.runs AS r ON r.run_id = family.run_id",
            &[&run_id],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// The first of `family` still running or waiting, if any.
fn live_member(family: &[(String, String)]) -> Option<&(String, String)> {
    family.iter().find(|(_, status)| RunStatus::parse(status).is_none_or(|status| !status.is_final()))
}

/// Deletes the runs of `family`, their transcripts and hook deliveries.
async fn delete_family(tx: &Transaction<'_>, family: &[(String, String)]) -> Result<()> {
    let ids: Vec<&str> = family.iter().map(|(run_id, _)| run_id.as_str()).collect();
    for sql in [
        "DELETE FROM roomkit_graph.transcript WHERE run_id = ANY($1)",
        "DELETE FROM roomkit_graph.hook_deliveries WHERE run_id = ANY($1)",
        "DELETE FROM roomkit_graph.runs WHERE run_id = ANY($1)",
    ] {
        tx.execute(sql, &[&ids]).await.map_err(pg)?;
    }
    Ok(())
}
