//! Graphs, by version: their SQL and [`GraphStore`] for [`SqliteStore`].

use async_trait::async_trait;
use roomkit_graph::Graph;
use roomkit_graph_store::{GraphStore, Result, StoreError, StoredGraph, VersionInfo, now_millis};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::error::{DbError, sql_int, stored_count};
use crate::rows::GraphRow;

#[async_trait]
impl GraphStore for SqliteStore {
    async fn save_graph(&self, org: &str, graph: &Graph) -> Result<StoredGraph> {
        let (org, graph) = (org.to_owned(), graph.clone());
        self.write(move |conn| save_graph(conn, &org, &graph)).await
    }

    async fn graph(&self, org: &str, graph_id: &str, version: Option<u64>) -> Result<StoredGraph> {
        let (org, graph_id) = (org.to_owned(), graph_id.to_owned());
        self.read(move |conn| graph(conn, &org, &graph_id, version)).await
    }

    async fn latest_graph_version(&self, org: &str, graph_id: &str) -> Result<u64> {
        let (org, graph_id) = (org.to_owned(), graph_id.to_owned());
        self.read(move |conn| latest_graph_version(conn, &org, &graph_id)).await
    }

    async fn list_graphs(&self, org: Option<&str>) -> Result<Vec<StoredGraph>> {
        let org = org.map(str::to_owned);
        self.read(move |conn| list_graphs(conn, org.as_deref())).await
    }

    async fn list_graphs_after(&self, org: &str, after: Option<&str>, n: usize) -> Result<Vec<StoredGraph>> {
        let (org, after) = (org.to_owned(), after.map(str::to_owned));
        self.read(move |conn| list_graphs_after(conn, &org, after.as_deref(), n)).await
    }

    async fn graph_versions(
        &self,
        org: &str,
        graph_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<VersionInfo>> {
        let (org, graph_id) = (org.to_owned(), graph_id.to_owned());
        self.read(move |conn| graph_versions(conn, &org, &graph_id, before, limit)).await
    }
}

/// Stores `graph` as the next version of its id in `org`.
pub(crate) fn save_graph(conn: &Connection, org: &str, graph: &Graph) -> Result<StoredGraph, DbError> {
    let latest: i64 = conn
        .prepare_cached("SELECT coalesce(max(version), 0) FROM graphs WHERE org = ?1 AND graph_id = ?2")?
        .query_row(params![org, graph.id], |row| row.get(0))?;
    let version = latest + 1;
    let created_at = now_millis();
    conn.prepare_cached(
        "INSERT INTO graphs (org, graph_id, version, graph_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![org, graph.id, version, graph.to_json(), created_at])?;
    Ok(StoredGraph {
        org: org.to_owned(),
        graph: graph.clone(),
        version: stored_count(version, "graph version")?,
        created_at,
    })
}

/// A stored graph of `org`: the given version, or the latest.
pub(crate) fn graph(
    conn: &Connection,
    org: &str,
    graph_id: &str,
    version: Option<u64>,
) -> Result<StoredGraph, DbError> {
    let row = match version {
        Some(version) => conn
            .prepare_cached(
                "SELECT org, graph_id, version, graph_json, created_at FROM graphs \
                 WHERE org = ?1 AND graph_id = ?2 AND version = ?3",
            )?
            .query_row(params![org, graph_id, sql_int(version)], GraphRow::read)
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT org, graph_id, version, graph_json, created_at FROM graphs \
                 WHERE org = ?1 AND graph_id = ?2 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![org, graph_id], GraphRow::read)
            .optional()?,
    };
    let Some(row) = row else {
        return Err(StoreError::NotFound(match version {
            Some(version) => format!("graph {graph_id} version {version}"),
            None => format!("graph {graph_id}"),
        })
        .into());
    };
    row.into_stored()
}

/// The number of the latest version of a graph of `org`.
pub(crate) fn latest_graph_version(conn: &Connection, org: &str, graph_id: &str) -> Result<u64, DbError> {
    let version: Option<i64> = conn
        .prepare_cached("SELECT max(version) FROM graphs WHERE org = ?1 AND graph_id = ?2")?
        .query_row(params![org, graph_id], |row| row.get(0))?;
    match version {
        Some(version) => stored_count(version, "graph version"),
        None => Err(StoreError::NotFound(format!("graph {graph_id}")).into()),
    }
}

/// The latest version of each graph of `org` (of all when `None`).
pub(crate) fn list_graphs(conn: &Connection, org: Option<&str>) -> Result<Vec<StoredGraph>, DbError> {
    // SQLite returns the other columns of the row holding max(version).
    let mut statement = conn.prepare_cached(
        "SELECT org, graph_id, max(version), graph_json, created_at FROM graphs \
         WHERE ?1 IS NULL OR org = ?1 GROUP BY org, graph_id ORDER BY org, graph_id",
    )?;
    let rows = statement.query_map(params![org], GraphRow::read)?;
    rows.map(|row| row.map_err(DbError::from).and_then(GraphRow::into_stored)).collect()
}

/// Up to `limit` graphs of `org` whose id sorts after `after`, by id: the
/// latest version of each.
pub(crate) fn list_graphs_after(
    conn: &Connection,
    org: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredGraph>, DbError> {
    // SQLite returns the other columns of the row holding max(version).
    let mut statement = conn.prepare_cached(
        "SELECT org, graph_id, max(version), graph_json, created_at FROM graphs \
         WHERE org = ?1 AND (?2 IS NULL OR graph_id > ?2) GROUP BY graph_id ORDER BY graph_id LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![org, after, limit], GraphRow::read)?;
    rows.map(|row| row.map_err(DbError::from).and_then(GraphRow::into_stored)).collect()
}

/// Up to `limit` versions of a graph of `org` older than `before`, newest
/// first, in short (their counts read by SQLite, the graphs not parsed here).
pub(crate) fn graph_versions(
    conn: &Connection,
    org: &str,
    graph_id: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<VersionInfo>, DbError> {
    let mut statement = conn.prepare_cached(
        "SELECT version, created_at, coalesce(json_extract(graph_json, '$.name'), ''), \
         coalesce(json_array_length(graph_json, '$.nodes'), 0), coalesce(json_array_length(graph_json, '$.edges'), 0) \
         FROM graphs WHERE org = ?1 AND graph_id = ?2 AND (?3 IS NULL OR version < ?3) ORDER BY version DESC LIMIT ?4",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![org, graph_id, before.map(sql_int), limit], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (version, created_at, name, nodes, edges) = row?;
        Ok(VersionInfo {
            version: stored_count(version, "graph version")?,
            created_at,
            name,
            nodes: stored_count(nodes, "node count")?,
            edges: stored_count(edges, "edge count")?,
        })
    })
    .collect()
}
