//! Child runs: a subgraph node's child, or a node run in a room of its own
//! (an orchestration, run alone in its parent's graph), started as a run of
//! its own, opened
//! in the transaction of the parent's step that waits on it and driven at
//! once; its end taken by the parent once the store has set the parent
//! going again; a cancelled parent's live children cancelled with it.

use std::sync::Arc;

use roomkit_graph::{ChildEnd, ChildRequest, EngineState, LimitError, StepOutcome, WorkflowEngine};
use roomkit_graph_store::{
    Entry, Lease, NewRun, ParentStep, RunFilter, RunRecord, RunStatus, StepCommit, StoreError,
};

use crate::commit::{self, Cause};
use crate::error::RunnerError;
use crate::shared::Shared;

/// What became of a parent's step that asked for a child.
pub(crate) enum Asked {
    /// The child was opened with the parent's waiting step (its record and
    /// its engine, to drive): the parent parks.
    Opened(Box<(RunRecord, WorkflowEngine)>),
    /// The child cannot start (no such graph, nested too deep...): the
    /// parent's node failed with that, committed (the record after it).
    Failed(Box<(RunRecord, StepOutcome)>),
    /// The parent moved meanwhile (cancelled, say): nothing was opened.
    Moved,
}

/// Opens the child run `request` asks for, the parent `parent` standing at
/// `version` on the node of `outcome` (its `engine`, driven under
/// `lease`), with the parent's step that waits on it, for the supervisor to
/// drive. A child that cannot start fails the parent's node instead
/// (retried or routed as its policy and edges say), committed.
pub(crate) async fn open(
    shared: &Arc<Shared>,
    parent: &RunRecord,
    version: u64,
    lease: Lease,
    outcome: &StepOutcome,
    engine: &mut WorkflowEngine,
    request: &ChildRequest,
) -> Result<Asked, RunnerError> {
    let now = shared.now();
    let (child, graph_version) = match started(shared, parent, request, engine).await? {
        Ok(started) => started,
        Err(why) => {
            let failed = engine.finish_child(ChildEnd::Failed(why))?;
            let commit = commit::of_outcome(&failed, engine, Cause::Step, &parent.run_id, version, now);
            let commit = StepCommit { lease: Some(lease), ..commit };
            return match shared.store.commit_step(commit).await {
                Ok((record, _)) => Ok(Asked::Failed(Box::new((record, failed)))),
                Err(StoreError::Conflict { .. }) => Ok(Asked::Moved),
                Err(error) => Err(error.into()),
            };
        }
    };
    // A node run alone runs in its parent's graph.
    let graph_id = if request.node.is_some() { &parent.graph_id } else { &request.graph_id };
    let mut waits = commit::of_outcome(outcome, engine, Cause::Step, &parent.run_id, version, now);
    waits.lease = Some(lease);
    waits.entries.push(Entry::ChildStarted {
        node_id: outcome.node_id.clone(),
        run_id: child.run_id().to_owned(),
        graph_id: graph_id.clone(),
        graph_version,
        runs_node: request.node.is_some(),
    });
    let child_lease = shared.leases.taken_at(now);
    let opened = shared
        .store
        .create_run(NewRun {
            origin: None,
            org: parent.org.clone(),
            graph_id: graph_id.clone(),
            graph_version,
            at: now,
            trigger: request.input.clone(),
            state: child.to_state(),
            key: None,
            lease: Some(child_lease),
            first_step: None,
            parent: Some(ParentStep {
                node_id: outcome.node_id.clone(),
                runs_node: request.node.is_some(),
                commit: waits,
            }),
            // A room runs its parent's node: the store gives it its parent's place.
            concurrency: if request.node.is_some() { None } else { commit::slot(&child, &request.input) },
        })
        .await;
    match opened {
        Ok(record) => Ok(Asked::Opened(Box::new((record, child)))),
        Err(StoreError::Conflict { .. }) => Ok(Asked::Moved),
        Err(error) => Err(error.into()),
    }
}

/// The child's engine, started on its trigger data (or, for a node run
/// alone, at that node on a copy of the context of `engine`, its parent's),
/// and the graph version it runs; or why it cannot start, in words for the
/// parent's node failure.
async fn started(
    shared: &Arc<Shared>,
    parent: &RunRecord,
    request: &ChildRequest,
    engine: &WorkflowEngine,
) -> Result<Result<(WorkflowEngine, u64), String>, RunnerError> {
    let graph_id = &request.graph_id;
    // A node run alone nests nothing: only graphs count towards the limit.
    let limit = shared.graphs.limits().subgraph_depth;
    let depth = match request.node {
        Some(_) => 0,
        None => depth_of(shared, parent, limit).await? + 1,
    };
    if depth > limit {
        return Ok(Err(format!("its child run {}", LimitError::Nesting { depth, limit })));
    }
    if let Some(node) = &request.node {
        let workflow = shared.workflow(&parent.org, &parent.graph_id, parent.graph_version).await?;
        let state = EngineState {
            run_id: String::new(),
            current_node_id: Some(node.clone()),
            waiting: false,
            pending: Vec::new(),
            children: Default::default(),
            ..engine.to_state()
        };
        let child = workflow.alone(node).and_then(|alone| alone.restore(state));
        return Ok(match child {
            Ok(child) => Ok((child, parent.graph_version)),
            Err(error) => Err(format!("its child run cannot start: {error}")),
        });
    }
    let version = match request.version {
        Some(version) => u64::from(version),
        None => match shared.store.latest_graph_version(&parent.org, graph_id).await {
            Ok(version) => version,
            Err(StoreError::NotFound(_)) => return Ok(Err(format!("graph {graph_id:?} is not stored"))),
            Err(error) => return Err(error.into()),
        },
    };
    let workflow = match shared.workflow(&parent.org, graph_id, version).await {
        Ok(workflow) => workflow,
        Err(RunnerError::Store(StoreError::NotFound(_))) => {
            return Ok(Err(format!("graph {graph_id:?} has no version {version}")));
        }
        Err(error) => return Err(error),
    };
    let mut engine = workflow.engine();
    Ok(match engine.start(request.input.clone()) {
        Ok(()) => Ok((engine, version)),
        Err(error) => Err(format!("its child run of graph {graph_id:?} cannot start: {error}")),
    })
}

/// How many runs `run` is nested in (0: it is no child run), counted up to
/// `limit` at most (a chain of parents is never walked further).
async fn depth_of(shared: &Shared, run: &RunRecord, limit: usize) -> Result<usize, RunnerError> {
    let mut depth = 0;
    let mut parent = run.parent.clone();
    while let Some(link) = parent.filter(|_| depth < limit) {
        depth += 1;
        parent = shared.store.run(&link.run_id).await?.parent;
    }
    Ok(depth)
}

/// How child `run_id`, over with `status`, ended, as its parent's engine
/// takes it: a completed child's context, a failed child's error. A child
/// that cannot be read back (its graph does not compile here, say) is a
/// failure of its parent's node, saying why, rather than a parent stuck.
pub(crate) async fn end_of(shared: &Shared, run_id: &str, status: RunStatus) -> ChildEnd {
    match read_end(shared, run_id, status).await {
        Ok(end) => end,
        Err(error) => ChildEnd::Failed(format!("run {run_id} cannot be read back: {error}")),
    }
}

async fn read_end(shared: &Shared, run_id: &str, status: RunStatus) -> Result<ChildEnd, RunnerError> {
    Ok(match status {
        RunStatus::Completed => {
            let (record, state) = shared.store.load_run(run_id).await?;
            let workflow = shared.workflow_of(&record).await?;
            ChildEnd::Completed(workflow.restore(state)?.context().clone())
        }
        RunStatus::Cancelled => ChildEnd::Cancelled,
        RunStatus::Failed | RunStatus::Running | RunStatus::Queued | RunStatus::Waiting => {
            let error = shared.store.run(run_id).await?.error;
            ChildEnd::Failed(format!("run {run_id}: {}", error.as_deref().unwrap_or("it failed")))
        }
    })
}

/// The child runs of `run_id`, oldest first.
pub(crate) async fn of(shared: &Shared, run_id: &str) -> Result<Vec<RunRecord>, RunnerError> {
    let filter = RunFilter { parent_run_id: Some(run_id.to_owned()), ..RunFilter::default() };
    let mut children = shared.store.list_runs(&filter).await?;
    children.reverse();
    Ok(children)
}

/// The child runs of `run_id` that are not over yet, oldest first.
pub(crate) async fn live(shared: &Shared, run_id: &str) -> Result<Vec<RunRecord>, RunnerError> {
    Ok(of(shared, run_id).await?.into_iter().filter(|child| !child.status.is_final()).collect())
}
