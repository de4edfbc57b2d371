//! Graphs, by version: their SQL and [`GraphStore`] for [`PostgresStore`].

use async_trait::async_trait;
use roomkit_graph::Graph;
use roomkit_graph_store::{GraphStore, Result, StoreError, StoredGraph, VersionInfo, now_millis};

use crate::PostgresStore;
use crate::error::{pg, sql_int, stored_count};
use crate::rows::{self, GRAPH_COLUMNS};

#[async_trait]
impl GraphStore for PostgresStore {
    async fn save_graph(&self, org: &str, graph: &Graph) -> Result<StoredGraph> {
        self.retrying(|| self.save_graph_once(org, graph)).await
    }

    async fn graph(&self, org: &str, graph_id: &str, version: Option<u64>) -> Result<StoredGraph> {
        self.retrying(|| self.graph_once(org, graph_id, version)).await
    }

    async fn latest_graph_version(&self, org: &str, graph_id: &str) -> Result<u64> {
        self.retrying(|| self.latest_graph_version_once(org, graph_id)).await
    }

    async fn list_graphs(&self, org: Option<&str>) -> Result<Vec<StoredGraph>> {
        self.retrying(|| self.list_graphs_once(org)).await
    }

    async fn list_graphs_after(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredGraph>> {
        self.retrying(|| self.list_graphs_after_once(org, after, limit)).await
    }

    async fn graph_versions(
        &self,
        org: &str,
        graph_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<VersionInfo>> {
        self.retrying(|| self.graph_versions_once(org, graph_id, before, limit)).await
    }
}

/// The operations, each tried once; [`PostgresStore::retrying`] tries them
/// again while the database is unavailable.
impl PostgresStore {
    async fn save_graph_once(&self, org: &str, graph: &Graph) -> Result<StoredGraph> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Versions of one graph id are numbered one at a time.
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))", &[&org, &graph.id])
            .await
            .map_err(pg)?;
        let latest: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM roomkit_graph.graphs WHERE org = $1 AND graph_id = $2",
                &[&org, &graph.id],
            )
            .await
            .map_err(pg)?
            .get(0);
        let version = latest + 1;
        let created_at = now_millis();
        tx.execute(
            "INSERT INTO roomkit_graph.graphs (org, graph_id, version, graph_json, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&org, &graph.id, &version, &graph.to_json(), &created_at],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(StoredGraph {
            org: org.to_owned(),
            graph: graph.clone(),
            version: stored_count(version, "graph version")?,
            created_at,
        })
    }

    async fn graph_once(&self, org: &str, graph_id: &str, version: Option<u64>) -> Result<StoredGraph> {
        let client = self.client().await?;
        let row = match version {
            Some(version) => {
                let sql = format!(
                    "SELECT {GRAPH_COLUMNS} FROM roomkit_graph.graphs \
                     WHERE org = $1 AND graph_id = $2 AND version = $3"
                );
                client.query_opt(&sql, &[&org, &graph_id, &sql_int(version)]).await.map_err(pg)?
            }
            None => {
                let sql = format!(
                    "SELECT {GRAPH_COLUMNS} FROM roomkit_graph.graphs \
                     WHERE org = $1 AND graph_id = $2 ORDER BY version DESC LIMIT 1"
                );
                client.query_opt(&sql, &[&org, &graph_id]).await.map_err(pg)?
            }
        };
        match row {
            Some(row) => rows::graph(&row),
            None => Err(StoreError::NotFound(match version {
                Some(version) => format!("graph {graph_id} version {version}"),
                None => format!("graph {graph_id}"),
            })),
        }
    }

    async fn latest_graph_version_once(&self, org: &str, graph_id: &str) -> Result<u64> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT max(version) FROM roomkit_graph.graphs WHERE org = $1 AND graph_id = $2")
            .await
            .map_err(pg)?;
        let latest: Option<i64> = client.query_one(&statement, &[&org, &graph_id]).await.map_err(pg)?.get(0);
        match latest {
            Some(version) => stored_count(version, "graph version"),
            None => Err(StoreError::NotFound(format!("graph {graph_id}"))),
        }
    }

    async fn list_graphs_once(&self, org: Option<&str>) -> Result<Vec<StoredGraph>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT DISTINCT ON (org, graph_id) {GRAPH_COLUMNS} FROM roomkit_graph.graphs \
             WHERE $1::text IS NULL OR org = $1 ORDER BY org, graph_id, version DESC"
        );
        let found = client.query(&sql, &[&org]).await.map_err(pg)?;
        found.iter().map(rows::graph).collect()
    }

    async fn list_graphs_after_once(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredGraph>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT DISTINCT ON (graph_id) {GRAPH_COLUMNS} FROM roomkit_graph.graphs \
             WHERE org = $1 AND ($2::text IS NULL OR graph_id > $2) ORDER BY graph_id, version DESC LIMIT $3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found = client.query(&sql, &[&org, &after, &limit]).await.map_err(pg)?;
        found.iter().map(rows::graph).collect()
    }

    async fn graph_versions_once(
        &self,
        org: &str,
        graph_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<VersionInfo>> {
        let client = self.client().await?;
        let sql = "SELECT version, created_at, coalesce(g->>'name', ''), \
                   coalesce(jsonb_array_length(g->'nodes'), 0)::bigint, coalesce(jsonb_array_length(g->'edges'), 0)::bigint \
                   FROM (SELECT version, created_at, graph_json::jsonb AS g FROM roomkit_graph.graphs \
                         WHERE org = $1 AND graph_id = $2 AND ($3::bigint IS NULL OR version < $3) \
                         ORDER BY version DESC LIMIT $4) AS page ORDER BY version DESC";
        let (before, limit) = (before.map(sql_int), i64::try_from(limit).unwrap_or(i64::MAX));
        let found = client.query(sql, &[&org, &graph_id, &before, &limit]).await.map_err(pg)?;
        found
            .iter()
            .map(|row| {
                Ok(VersionInfo {
                    version: stored_count(row.get(0), "graph version")?,
                    created_at: row.get(1),
                    name: row.get(2),
                    nodes: stored_count(row.get(3), "node count")?,
                    edges: stored_count(row.get(4), "edge count")?,
                })
            })
            .collect()
    }
}
