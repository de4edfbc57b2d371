//! Records read out of rows, checked on the way.

use roomkit_graph::Graph;
use roomkit_graph_store::{Cause, ParentLink, RunRecord, RunStatus, StoreError, StoredGraph, read_pending};
use rusqlite::Row;

use crate::error::{DbError, stored_count};

/// The columns [`RunRow::read`] reads, in its order.
pub(crate) const RUN_COLUMNS: &str = "run_id, graph_id, graph_version, status, current_node_id, \
     previous_node_id, error, version, last_seq, created_at, updated_at, wake_at, org, owner, lease_until, \
     steps, pending, parent_run_id, parent_node_id, parent_runs_node";

/// A `runs` row as SQLite gives it, checked by [`RunRow::into_record`].
pub(crate) struct RunRow {
    run_id: String,
    graph_id: String,
    graph_version: i64,
    status: String,
    current_node_id: Option<String>,
    previous_node_id: Option<String>,
    error: Option<String>,
    version: i64,
    last_seq: i64,
    created_at: i64,
    updated_at: i64,
    wake_at: Option<i64>,
    org: String,
    owner: Option<String>,
    lease_until: Option<i64>,
    steps: i64,
    pending: Option<String>,
    parent_run_id: Option<String>,
    parent_node_id: Option<String>,
    parent_runs_node: bool,
}

impl RunRow {
    /// Reads the columns of [`RUN_COLUMNS`].
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RunRow {
            run_id: row.get(0)?,
            graph_id: row.get(1)?,
            graph_version: row.get(2)?,
            status: row.get(3)?,
            current_node_id: row.get(4)?,
            previous_node_id: row.get(5)?,
            error: row.get(6)?,
            version: row.get(7)?,
            last_seq: row.get(8)?,
            created_at: row.get(9)?,
            updated_at: row.get(10)?,
            wake_at: row.get(11)?,
            org: row.get(12)?,
            owner: row.get(13)?,
            lease_until: row.get(14)?,
            steps: row.get(15)?,
            pending: row.get(16)?,
            parent_run_id: row.get(17)?,
            parent_node_id: row.get(18)?,
            parent_runs_node: row.get(19)?,
        })
    }

    pub(crate) fn into_record(self) -> Result<RunRecord, DbError> {
        let status = RunStatus::parse(&self.status).ok_or_else(|| {
            StoreError::Backend(format!("run {} has an unknown status {:?}", self.run_id, self.status).into())
        })?;
        let parent = match (self.parent_run_id, self.parent_node_id) {
            (Some(run_id), Some(node_id)) => {
                Some(ParentLink { run_id, node_id, runs_node: self.parent_runs_node })
            }
            _ => None,
        };
        Ok(RunRecord {
            parent,
            graph_version: stored_count(self.graph_version, "graph version")?,
            version: stored_count(self.version, "run version")?,
            last_seq: stored_count(self.last_seq, "sequence number")?,
            steps: stored_count(self.steps, "step count")?,
            pending: read_pending(&self.run_id, self.pending.as_deref())?,
            run_id: self.run_id,
            org: self.org,
            graph_id: self.graph_id,
            status,
            current_node_id: self.current_node_id,
            previous_node_id: self.previous_node_id,
            error: self.error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            wake_at: self.wake_at,
            owner: self.owner,
            lease_until: self.lease_until,
        })
    }
}

/// A `graphs` row as SQLite gives it.
pub(crate) struct GraphRow {
    org: String,
    graph_id: String,
    version: i64,
    json: String,
    created_at: i64,
}

impl GraphRow {
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(GraphRow {
            org: row.get(0)?,
            graph_id: row.get(1)?,
            version: row.get(2)?,
            json: row.get(3)?,
            created_at: row.get(4)?,
        })
    }

    pub(crate) fn into_stored(self) -> Result<StoredGraph, DbError> {
        let graph = Graph::from_json(&self.json).map_err(|err| {
            StoreError::Backend(
                Cause::new(format!(
                    "stored graph {} version {} is not valid: {err}",
                    self.graph_id, self.version
                ))
                .with_source(err),
            )
        })?;
        Ok(StoredGraph {
            org: self.org,
            graph,
            version: stored_count(self.version, "graph version")?,
            created_at: self.created_at,
        })
    }
}
