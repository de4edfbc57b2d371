//! Subgraph nodes: a run of another graph (a child run), in memory, inside
//! the parent's step. The child goes as far as it can: it completes (the
//! node completes with its output), fails (the node fails, so retries and
//! error routes apply), or waits, and then its parent waits on it: the
//! child is answered through its parent ([`WorkflowEngine::answer`]), saved
//! with it ([`EngineState::children`](crate::EngineState::children)), and
//! goes on at the parent's next step.

use std::sync::{Arc, PoisonError};

use serde_json::{Value, json};

use super::{
    ChildState, EngineError, Scope, StepOutcome, StepStatus, WaitingPoint, Workflow, WorkflowEngine,
};
use crate::context::Context;
use crate::handler::{Emitted, HandlerError, NodeResult};
use crate::limits::LimitError;
use crate::model::Node;

/// A child run a subgraph node hands to whoever runs the engine, in a
/// [`parking`](Workflow::parking) workflow without [graphs](Workflow::with_graphs)
/// (a durable runner, which keeps child runs as runs of their own): start a
/// run of this graph on `input`, then tell the parent how it ended
/// ([`WorkflowEngine::finish_child`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ChildRequest {
    /// The graph to run.
    pub graph_id: String,
    /// Its version, if the node pins one (else the newest, as the run reaches the node).
    pub version: Option<u32>,
    /// The child run's trigger data: the node's `input` resolved, or the parent's trigger data.
    pub input: Value,
    /// Set for a node [running in its own room](crate::NodeHandler::runs_in_own_room):
    /// the child runs this node of its parent's graph (`graph_id`, at the
    /// version the parent runs) [alone](Workflow::alone), on its parent's
    /// context, and `input` is the parent's trigger data.
    pub node: Option<String>,
}

/// How a child run handed to the caller ended.
#[derive(Debug)]
pub enum ChildEnd {
    /// It completed with this context: the node's `output` is resolved against it.
    Completed(Context),
    /// It failed, for this reason.
    Failed(String),
    /// It was cancelled.
    Cancelled,
}

/// Where a subgraph node's step left its child: nowhere (it completed or
/// failed), waiting at these points (in memory), or handed to the caller.
#[derive(Debug, Default)]
pub(crate) enum ChildWait {
    #[default]
    None,
    Points(Vec<WaitingPoint>),
    Request(ChildRequest),
}

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
        if let Err(too_deep) = workflow.check_child_depth() {
            return Err(refuse(too_deep.to_string()));
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
    /// Whether a child run of this workflow's runs stays within the
    /// nesting limit; the limit it would pass when not.
    fn check_child_depth(&self) -> Result<(), LimitError> {
        let (depth, limit) = (self.depth + 1, self.limits.subgraph_depth);
        if depth > limit { Err(LimitError::Nesting { depth, limit }) } else { Ok(()) }
    }

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
            alone: false,
        }
    }
}

/// Runs the subgraph node of `scope`, in a run of `workflow`: starts its
/// child run (unless `child` holds one under way) and steps it until it
/// completes, fails or waits. A child that waits is left in `child`, where
/// it waits in `wait`. A parking workflow without graphs hands the child to
/// its caller instead: the request is in `wait`.
pub(super) async fn run(
    workflow: &Workflow,
    scope: &Scope<'_>,
    child: &mut Option<Child>,
    wait: &mut ChildWait,
) -> Result<NodeResult, HandlerError> {
    let node = scope.node();
    if child.is_none() && workflow.graphs.is_none() && workflow.parks {
        let Target { graph_id, version } =
            Target::read(node).map_err(|(_, why)| HandlerError::execution(why).permanent())?;
        *wait = ChildWait::Request(ChildRequest { graph_id, version, input: input(scope)?, node: None });
        return Ok(NodeResult::waiting());
    }
    let running = match child {
        Some(running) => running,
        None => child.insert(start_child(workflow, scope)?),
    };
    running.engine.sink = scope.sink.map(|sink| Arc::new(sink.nested(&node.id)));
    let driven = drive(&mut running.engine, scope, wait).await;
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

/// Where the step of a node running in its own room leaves it: handed to
/// the caller, as a child run of that node alone.
pub(super) fn room_request(scope: &Scope<'_>) -> ChildWait {
    ChildWait::Request(ChildRequest {
        graph_id: scope.graph().id.clone(),
        version: None,
        input: scope.context().trigger().cloned().unwrap_or_else(|| json!({})),
        node: Some(scope.node().id.clone()),
    })
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
    workflow.check_child_depth()?;
    let mut engine = workflow.child_workflow(stored).engine();
    engine.start(input(scope)?).map_err(|error| {
        HandlerError::execution(format!("its child run of graph {graph_id:?} cannot start"))
            .with_source(error)
            .permanent()
    })?;
    Ok(Child { graph_id, version, engine: Box::new(engine) })
}

/// A child run's trigger data: the node's `input` resolved, or the parent's
/// trigger data.
fn input(scope: &Scope<'_>) -> Result<Value, HandlerError> {
    Ok(match scope.resolve("input")? {
        Some(input) => input,
        None => scope.context().trigger().cloned().unwrap_or_else(|| json!({})),
    })
}

/// Steps `engine`, a child run, until it completes (false) or waits (true,
/// where it waits in `points`); what its steps send is kept with the
/// parent's step, attributed to the subgraph node.
async fn drive(
    engine: &mut WorkflowEngine,
    scope: &Scope<'_>,
    wait: &mut ChildWait,
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
                *wait = ChildWait::Points(under(node_id, opened));
                return Ok(true);
            }
            StepStatus::Failed { error, .. } => return Err(error),
            // A child waits out its own rests (it does not park) and runs
            // its own children (it has the graphs).
            StepStatus::Sleeping(_) | StepStatus::Child(_) => {}
        }
    }
    Ok(engine.waiting())
}

impl WorkflowEngine {
    /// Whether the run waits on a child run handed to its caller
    /// ([`StepStatus::Child`]), to be ended by
    /// [`finish_child`](Self::finish_child).
    pub fn waits_on_child(&self) -> bool {
        let plan = &self.workflow.plan;
        self.current.is_some_and(|at| {
            self.waiting
                && self.pending.is_empty()
                && self.child.is_none()
                && (plan.node(at).node_type == crate::model::NodeType::Subgraph
                    || self.workflow.hands_out(at))
        })
    }

    /// Ends the wait on a child run handed to the caller
    /// ([`StepStatus::Child`]): a completed child completes the subgraph node
    /// with its `output` (resolved against the child's context; the whole
    /// context when absent) and the run follows the node's edges; a child that
    /// failed or was cancelled fails the node, retried as its policy says
    /// (the next attempt asks for a fresh child) or taken along its error
    /// edge. Refused when the run waits on no child run.
    ///
    /// ```
    /// use roomkit_graph::{ChildEnd, Context, Edge, Graph, Handlers, Node, StepStatus, Trigger, Workflow};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("publish", "Publish", Trigger::manual());
    /// graph.add_nodes([
    ///     Node::new("start", "start"),
    ///     Node::new("check", "subgraph")
    ///         .with_config(json!({"graph_id": "review", "input": {"doc": "{{trigger.doc}}"}, "output": "{{approve.output}}"})),
    ///     Node::new("end", "end"),
    /// ])?;
    /// graph.add_edges([Edge::new("start", "check"), Edge::new("check", "end")]);
    /// let mut engine = Workflow::new(graph, Handlers::builtin()).parking().engine();
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// engine.start(json!({"doc": 7}))?;
    /// engine.step().await?;
    /// let outcome = engine.step_outcome().await.expect("check runs");
    /// let StepStatus::Child(request) = outcome.status else { panic!("{:?}", outcome.status) };
    /// assert_eq!((request.graph_id.as_str(), request.input), ("review", json!({"doc": 7})));
    ///
    /// // The caller ran the child; it completed.
    /// let mut child = Context::new("start");
    /// child.set_output("approve", json!({"action": "approve"}));
    /// let outcome = engine.finish_child(ChildEnd::Completed(child))?;
    /// assert!(matches!(outcome.status, StepStatus::Completed));
    /// assert_eq!(engine.context().get("check.output.action"), Some(&json!("approve")));
    /// assert_eq!(outcome.next.as_deref(), Some("end"));
    /// # Ok::<(), roomkit_graph::EngineError>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish_child(&mut self, end: ChildEnd) -> Result<StepOutcome, EngineError> {
        let plan = Arc::clone(&self.workflow.plan);
        let subgraph = |at: usize| plan.node(at).node_type == crate::model::NodeType::Subgraph;
        let Some(node) = self.current.filter(|_| self.waits_on_child()) else {
            return Err(EngineError::InvalidArgument(format!("run {} waits on no child run", self.run_id)));
        };
        let child = match Target::read(plan.node(node)) {
            Ok(target) if subgraph(node) => format!("its child run of graph {:?}", target.graph_id),
            _ => "its child run".to_owned(),
        };
        let result = match end {
            // A node run alone completed with its own output.
            ChildEnd::Completed(context) if !subgraph(node) => {
                Ok(NodeResult::completed(context.output(plan.id(node)).cloned().unwrap_or(Value::Null)))
            }
            ChildEnd::Completed(context) => match plan.config_template(node, "output") {
                Some(template) => template
                    .resolve_within(&context, self.workflow.limits.output_bytes)
                    .map(NodeResult::completed)
                    .map_err(HandlerError::from),
                None => Ok(NodeResult::completed(Value::Object(context.to_entries()))),
            },
            ChildEnd::Failed(why) => Err(HandlerError::execution(format!("{child} failed: {why}"))),
            ChildEnd::Cancelled => Err(HandlerError::execution(format!("{child} was cancelled"))),
        };
        // A node run alone was retried in its own run already.
        let result = result.map_err(|error| if subgraph(node) { error } else { error.permanent() });
        self.written.clear();
        self.waiting = false;
        let (attempt, status) = self.settle_child(node, result);
        Ok(self.outcome(node, attempt, status, std::sync::Mutex::new(Vec::new())))
    }
}
