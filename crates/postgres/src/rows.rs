//! Records read out of rows, checked on the way.

use roomkit_graph::Graph;
use roomkit_graph_store::{
    Cause, Entry, ParentLink, RunRecord, RunStatus, StoreError, StoredGraph, TranscriptEvent, read_pending,
    read_stored,
};
use tokio_postgres::Row;

use crate::error::stored_count;

/// The columns [`run`] reads, in its order.
pub(crate) const RUN_COLUMNS: &str = "run_id, graph_id, graph_version, status, current_node_id, \
     previous_node_id, error, version, last_seq, created_at, updated_at, wake_at, org, owner, lease_until, \
     steps, pending, parent_run_id, parent_node_id, parent_runs_node";

/// The columns [`graph`] reads, in its order.
pub(crate) const GRAPH_COLUMNS: &str = "org, graph_id, version, graph_json, created_at";

/// A run's record from the columns of [`RUN_COLUMNS`].
pub(crate) fn run(row: &Row) -> Result<RunRecord, StoreError> {
    let run_id: String = row.try_get(0).map_err(column)?;
    let status: String = row.try_get(3).map_err(column)?;
    let status = RunStatus::parse(&status).ok_or_else(|| {
        StoreError::Backend(format!("run {run_id} has an unknown status {status:?}").into())
    })?;
    let parent_run_id: Option<String> = row.try_get(17).map_err(column)?;
    let parent_node_id: Option<String> = row.try_get(18).map_err(column)?;
    let runs_node: bool = row.try_get(19).map_err(column)?;
    let parent = match (parent_run_id, parent_node_id) {
        (Some(run_id), Some(node_id)) => Some(ParentLink { run_id, node_id, runs_node }),
        _ => None,
    };
    Ok(RunRecord {
        parent,
        graph_id: row.try_get(1).map_err(column)?,
        graph_version: stored_count(row.try_get(2).map_err(column)?, "graph version")?,
        status,
        current_node_id: row.try_get(4).map_err(column)?,
        previous_node_id: row.try_get(5).map_err(column)?,
        error: row.try_get(6).map_err(column)?,
        version: stored_count(row.try_get(7).map_err(column)?, "run version")?,
        last_seq: stored_count(row.try_get(8).map_err(column)?, "sequence number")?,
        created_at: row.try_get(9).map_err(column)?,
        updated_at: row.try_get(10).map_err(column)?,
        wake_at: row.try_get(11).map_err(column)?,
        org: row.try_get(12).map_err(column)?,
        owner: row.try_get(13).map_err(column)?,
        lease_until: row.try_get(14).map_err(column)?,
        steps: stored_count(row.try_get(15).map_err(column)?, "step count")?,
        pending: read_pending(&run_id, row.try_get::<_, Option<&str>>(16).map_err(column)?)?,
        run_id,
    })
}

/// A stored graph from the columns of [`GRAPH_COLUMNS`].
pub(crate) fn graph(row: &Row) -> Result<StoredGraph, StoreError> {
    let graph_id: String = row.try_get(1).map_err(column)?;
    let json: String = row.try_get(3).map_err(column)?;
    let graph = Graph::from_json(&json).map_err(|err| {
        StoreError::Backend(
            Cause::new(format!("stored graph {graph_id} does not read back: {err}")).with_source(err),
        )
    })?;
    Ok(StoredGraph {
        org: row.try_get(0).map_err(column)?,
        graph,
        version: stored_count(row.try_get(2).map_err(column)?, "graph version")?,
        created_at: row.try_get(4).map_err(column)?,
    })
}

/// A transcript event of `run_id` from the columns `seq, at, entry_json`.
pub(crate) fn event(run_id: &str, row: &Row) -> Result<TranscriptEvent, StoreError> {
    let entry: String = row.try_get(2).map_err(column)?;
    let seq = stored_count(row.try_get(0).map_err(column)?, "sequence number")?;
    Ok(TranscriptEvent {
        run_id: run_id.to_owned(),
        seq,
        at: row.try_get(1).map_err(column)?,
        entry: read_stored::<Entry>(&entry).map_err(|err| {
            StoreError::Backend(
                Cause::new(format!("event {seq} of run {run_id} does not read back: {err}")).with_source(err),
            )
        })?,
    })
}

/// A column that is not of the type the store wrote.
fn column(err: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(Cause::new(format!("a stored column does not read back: {err}")).with_source(err))
}
