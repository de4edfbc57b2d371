use roomkit_graph::{EngineError, GraphError};
use roomkit_graph_store::{RunStatus, StoreError};

/// What a runner operation can fail with. A failed operation commits nothing.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The graph is invalid (every mistake is listed).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The engine refused (a graph without start node, a state that does not fit its graph...).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The run is not waiting on that node.
    #[error("run {run_id} is not waiting on {node_id:?}: it is {}", standing(*status, current.as_deref()))]
    NotWaiting {
        /// The run.
        run_id: String,
        /// The node the answer was for.
        node_id: String,
        /// Where the run stands.
        status: RunStatus,
        /// The node it is on.
        current: Option<String>,
    },
    /// The answer does not fit what the node asks.
    #[error("answer refused for {node_id:?} of run {run_id}: {reason}")]
    InvalidAnswer {
        /// The run.
        run_id: String,
        /// The node.
        node_id: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// No run can be forked from that entry.
    #[error("run {run_id} cannot be forked at entry {seq}: {reason}")]
    CannotFork {
        /// The run.
        run_id: String,
        /// The entry.
        seq: u64,
        /// Why not.
        reason: String,
    },
    /// The run is over: nothing more can happen to it.
    #[error("run {run_id} is already {status}", status = status.as_str())]
    Finished {
        /// The run.
        run_id: String,
        /// How it ended.
        status: RunStatus,
    },
}

/// Where a run stands, in words: `waiting on "review"`, `completed`.
fn standing(status: RunStatus, current: Option<&str>) -> String {
    match current {
        Some(node) => format!("{} on {node:?}", status.as_str()),
        None => status.as_str().to_owned(),
    }
}
