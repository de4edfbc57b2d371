//! Subgraph nodes: a run of another graph (a child run), in memory, inside
//! the parent's step. The child goes as far as it can: it completes (the
//! node completes with its output), fails (the node fails, so retries and
//! error routes apply), or waits, and then its parent waits on it: the
//! child is answered through its parent ([`WorkflowEngine::answer`]), saved
//! with it ([`EngineState::children`](crate::EngineState::children)), and
//! goes on at the parent's next step.

use std::sync::{Arc, PoisonError};

use serde_json::{Value, json};

use super::{ChildState, EngineError, Scope, StepStatus, WaitingPoint, Workflow, WorkflowEngine};
use crate::handler::{Emitted, HandlerError, NodeResult};
use crate::limits::LimitError;
use crate::model::Node;

/// What a subgraph node's configuration names: `graph_id` and, optionally,
/// `version` (the newest when the run reaches the node, when absent).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) graph_id: String,
    pub(crate) version: Option<u32>,
}

impl Target {
    /// Reads a subgraph node's target, or says which field is wrong and why.
    ///
    /// The one reading of it: [`Graph::validate`](crate::Graph::validate)
    /// reports what a run would fail on.
    pub(crate) fn read(node: &Node) -> Result<Target, (&'static str, String)> {
        let id = &node.id;
        let graph_id = match node.config.get("graph_id") {
            Some(Value::String(graph_id)) if !graph_id.is_empty() => graph_id.clone(),
            Some(other) => {
                return Err(("graph_id", format!("node {id:?}: graph_id {other} is not a graph id")));
            }
            None => {
                let why = format!("node {id:?}: a subgraph node needs \"graph_id\", the graph it runs");
                return Err(("graph_id", why));
            }
        };
        let version = match node.config.get("version") {
            None | Some(Value::Null) => None,
            Some(version) => match version.as_u64().and_then(|v| u32::try_from(v).ok()).filter(|&v| v > 0) {
                Some(version) => Some(version),
                None => {
                    let why = format!("node {id:?}: version {version} is not a graph version (1, 2, ...)");
                    return Err(("version", why));
                }
            },
        };
        Ok(Target { graph_id, version })
    }
}

/// A subgraph node's child run under way: it waits, or was answered and
/// goes on at the parent's next step.
pub(crate) struct Child {
    graph_id: String,
    version: u32,
    engine: Box<WorkflowEngine>,
}

impl Child {
    /// The child as saved.
    pub(crate) fn to_state(&self) -> ChildState {
        ChildState {
            graph_id: self.graph_id.clone(),
            version: self.version,
            state: Box::new(self.engine.to_state()),
        }
    }

    /// The child `saved` for subgraph node `node` of `workflow`'s graph,
    /// restored; its parent waits (`waiting`) exactly when it does.
    pub(crate) fn restore(
        workflow: &Workflow,
        node: &Node,
        waiting: bool,
        saved: ChildState,
    ) -> Result<Child, EngineError> {
        let ChildState { graph_id, version, state } = saved;
        let refuse = |why: String| {
            EngineError::InvalidArgument(format!("the saved state's child run of {:?} {why}", node.id))
        };
        if Target::read(node).is_ok_and(|target| target.graph_id != graph_id) {
            return Err(refuse(format!("runs graph {graph_id:?}, not the one the node names")));
        }
        if state.current_node_id.is_none() {
            return Err(refuse("has completed: its parent would never go on".to_owned()));
        }
        if state.waiting != waiting {
            return Err(refuse("does not wait as its parent does".to_owned()));
        }
        let (depth, limit) = (workflow.depth + 1, workflow.limits.subgraph_depth);
        if depth > limit {
            return Err(refuse(format!("would nest runs {depth} deep, more than the limit of {limit}")));
        }
        let stored = workflow.graphs.as_deref().and_then(|graphs| graphs.get(&graph_id, Some(version)));
        let Some((_, stored)) = stored else {
            return Err(refuse(format!(
                "runs graph {graph_id:?} version {version}, which is not among the workflow's graphs"
            )));
        };
        let engine = workflow.child_workflow(stored).restore(*state)?;
        Ok(Child { graph_id, version, engine: Box::new(engine) })
    }

    /// The child's engine.
    pub(crate) fn engine_mut(&mut self) -> &mut WorkflowEngine {
        &mut self.engine
    }
}

/// `points` of the child run of subgraph node `node_id`, as its parent's.
pub(crate) fn under(node_id: &str, points: Vec<WaitingPoint>) -> Vec<WaitingPoint> {
    points
        .into_iter()
        .map(|mut point| {
            point.path.insert(0, node_id.to_owned());
            point
        })
        .collect()
}

impl Workflow {
    /// The workflow a child run of `stored` runs with: its graph, handlers
    /// and step limit (never above the parent's), the parent's
    /// clock, limits, live hook and graphs, one level deeper. A child waits
    /// out its own delays and retries.
    pub(crate) fn child_workflow(&self, stored: &Workflow) -> Workflow {
        Workflow {
            plan: Arc::clone(&stored.plan),
            handlers: Arc::clone(&stored.handlers),
            clock: Arc::clone(&self.clock),
            // Its own graph's limit, never above its parent's.
            max_steps: match (stored.max_steps, self.max_steps) {
                (Some(own), Some(parent)) => Some(own.min(parent)),
                (own, parent) => own.or(parent),
            },
            limits: Arc::clone(&self.limits),
            live: self.live.clone(),
            parks: false,
            graphs: self.graphs.clone(),
            depth: self.depth + 1,
        }
    }
}

/// Runs the subgraph node of `scope`, in a run of `workflow`: starts its
/// child run (unless `child` holds one under way) and steps it until it
/// completes, fails or waits. A child that waits is left in `child`, where
/// it waits in `points`.
pub(super) async fn run(
    workflow: &Workflow,
    scope: &Scope<'_>,
    child: &mut Option<Child>,
    points: &mut Vec<WaitingPoint>,
) -> Result<NodeResult, HandlerError> {
    let node = scope.node();
    let running = match child {
        Some(running) => running,
        None => child.insert(start_child(workflow, scope)?),
    };
    running.engine.sink = scope.sink.map(|sink| Arc::new(sink.nested(&node.id)));
    let driven = drive(&mut running.engine, scope, points).await;
    running.engine.sink = None;
    match driven {
        Ok(true) => Ok(NodeResult::waiting()),
        Ok(false) => {
            let output = match scope.plan.config_template(scope.node, "output") {
                Some(template) => {
                    template.resolve_within(running.engine.context(), scope.limits.output_bytes)?
                }
                None => Value::Object(running.engine.context().to_entries()),
            };
            *child = None;
            Ok(NodeResult::completed(output))
        }
        Err(error) => {
            let graph_id = running.graph_id.clone();
            *child = None;
            match error {
                // Nested too deep somewhere below: so is this node.
                EngineError::Limit { source: source @ LimitError::Nesting { .. }, .. } => {
                    Err(HandlerError::Limit(source))
                }
                error => Err(HandlerError::execution(format!("its child run of graph {graph_id:?} failed"))
                    .with_source(error)),
            }
        }
    }
}

/// A new child run for the subgraph node of `scope`, in a run of
/// `workflow`, started on its `input` (the parent's trigger data when it has
/// none).
fn start_child(workflow: &Workflow, scope: &Scope<'_>) -> Result<Child, HandlerError> {
    let target = Target::read(scope.node()).map_err(|(_, why)| HandlerError::execution(why).permanent())?;
    let Target { graph_id, version } = target;
    let graphs = workflow.graphs.as_deref().ok_or_else(|| {
        HandlerError::execution("no graphs are given for subgraph nodes to run (Workflow::with_graphs)")
            .permanent()
    })?;
    let Some((version, stored)) = graphs.get(&graph_id, version) else {
        let why = match version {
            Some(version) => format!("graph {graph_id:?} has no version {version}"),
            None => format!("graph {graph_id:?} is not among the workflow's graphs"),
        };
        return Err(HandlerError::execution(why).permanent());
    };
    let (depth, limit) = (workflow.depth + 1, workflow.limits.subgraph_depth);
    if depth > limit {
        return Err(LimitError::Nesting { depth, limit }.into());
    }
    let input = match scope.resolve("input")? {
        Some(input) => input,
        None => scope.context().trigger().cloned().unwrap_or_else(|| json!({})),
    };
    let mut engine = workflow.child_workflow(stored).engine();
    engine.start(input).map_err(|error| {
        HandlerError::execution(format!("its child run of graph {graph_id:?} cannot start"))
            .with_source(error)
            .permanent()
    })?;
    Ok(Child { graph_id, version, engine: Box::new(engine) })
}

/// Steps `engine`, a child run, until it completes (false) or waits (true,
/// where it waits in `points`); what its steps send is kept with the
/// parent's step, attributed to the subgraph node.
async fn drive(
    engine: &mut WorkflowEngine,
    scope: &Scope<'_>,
    points: &mut Vec<WaitingPoint>,
) -> Result<bool, EngineError> {
    let node_id = &scope.node().id;
    // Boxed: the child's step runs this again for a subgraph node of its own.
    while let Some(outcome) = Box::pin(engine.step_outcome()).await {
        scope.sent.lock().unwrap_or_else(PoisonError::into_inner).extend(
            outcome
                .emitted
                .into_iter()
                .map(|emitted| Emitted { node_id: node_id.clone(), sent: emitted.sent }),
        );
        match outcome.status {
            StepStatus::Completed | StepStatus::Routed(_) => {}
            StepStatus::Waiting(opened) => {
                *points = under(node_id, opened);
                return Ok(true);
            }
            StepStatus::Failed { error, .. } => return Err(error),
            // A child waits out its own rests (it does not park).
            StepStatus::Sleeping(_) => {}
        }
    }
    Ok(engine.waiting())
}
