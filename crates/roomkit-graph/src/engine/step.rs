//! One step of a run: the current node runs (within its policy's timeout,
//! failed attempts retried as the policy says), what it returns is checked and
//! stored, and the run moves on: along the edges for a completion, along its
//! error edge for a failure when it has one.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use super::subgraph::ChildWait;
use super::{EngineError, ErrorKind, NodeFailure, StepOutcome, StepStatus, WaitingPoint, WorkflowEngine};
use crate::error_chain::ErrorChain;
use crate::handler::{Emitted, HandlerError, NodeResult, NodeStatus, Scope};
use crate::limits::{LimitError, measure};
use crate::model::NodeType;
use crate::policy::NodePolicy;
use crate::template::TemplateError;

/// A node that failed in a way an error edge may route: what it output and why.
struct Failed {
    output: Value,
    kind: ErrorKind,
    /// The handler's error text as given.
    message: String,
    /// Whether the node's policy may try it again.
    retryable: bool,
    /// The error the run fails with when no error edge takes it.
    error: EngineError,
}

/// What storing an attempt's result led to.
enum Stored {
    /// The node completed; the run may rest this long on it first.
    Completed(Option<std::time::Duration>),
    /// The run waits at these points.
    Waiting(Vec<WaitingPoint>),
    /// The node failed.
    Failed(Failed),
    /// The step cannot go on (a limit passed, a condition error...): never routed nor retried.
    Fatal(EngineError),
}

impl WorkflowEngine {
    /// Runs the current node and moves on. Returns whether the run moved to a
    /// next node (false once it completes or waits, or when there is nothing
    /// to run); a failure the node's error edge takes counts as a move. See
    /// [`step_outcome`](Self::step_outcome) for what the step did.
    pub async fn step(&mut self) -> Result<bool, EngineError> {
        let Some((_, _, status, _)) = self.run_step().await else { return Ok(false) };
        match status {
            StepStatus::Failed { error, .. } => Err(error),
            StepStatus::Completed | StepStatus::Routed(_) => Ok(self.current.is_some()),
            StepStatus::Waiting(_) | StepStatus::Sleeping(_) | StepStatus::Child(_) => Ok(false),
        }
    }

    /// Runs the current node and moves on, as [`step`](Self::step), and says
    /// what happened ([`StepOutcome`]); `None` when there is nothing to run
    /// (the run is complete or waits).
    ///
    /// A failure is retried as the node's policy (`retry`, `timeout` in its
    /// config) says: the engine waits out the backoff on its clock, or, for a
    /// [`parking`](crate::Workflow::parking) workflow, ends the step with the
    /// wait ([`StepStatus::Failed`]'s `retry_in`) and runs the next attempt at
    /// the next step. Once no attempt is left, the node's first error edge
    /// (`{"type": "error"}`) takes the run on ([`StepStatus::Routed`]), or the
    /// run fails.
    pub async fn step_outcome(&mut self) -> Option<StepOutcome> {
        let (node, attempt, status, sent) = self.run_step().await?;
        Some(self.outcome(node, attempt, status, sent))
    }

    /// Runs a step: the node, the attempt, how it ended and what was sent.
    async fn run_step(&mut self) -> Option<(usize, u32, StepStatus, Mutex<Vec<Emitted>>)> {
        let node = self.current?;
        if self.waiting {
            return None;
        }
        // A step that fails stores nothing: no write of an earlier step may pass for its own.
        self.written.clear();
        let plan = Arc::clone(&self.workflow.plan);
        let sent = Mutex::new(Vec::new());
        if let Some(limit) = self.workflow.max_steps
            && self.steps_taken >= limit
        {
            let error = EngineError::StepLimit { node: plan.id(node).to_owned(), limit };
            return Some((node, self.attempt, StepStatus::Failed { error, retry_in: None }, sent));
        }
        self.steps_taken += 1;
        if self.sink.is_some() {
            self.send_lifecycle_start(node);
            // Let the stream deliver what happened so far before the handler runs,
            // even when no handler ever waits on I/O.
            tokio::task::yield_now().await;
        }
        if self.previous.is_some() {
            // Else `input` stays as restored (inferred from the incoming edges).
            Arc::make_mut(&mut self.context).set_input(self.previous);
        }
        let policy = match plan.policy(node) {
            Ok(policy) => policy.clone(),
            Err(problem) => {
                self.send_lifecycle_complete(node, NodeStatus::Failed);
                let error =
                    EngineError::Execution { node: plan.id(node).to_owned(), message: problem.to_owned() };
                return Some((node, self.attempt, StepStatus::Failed { error, retry_in: None }, sent));
            }
        };
        // Where a subgraph node's child waits, if it does.
        let mut child_wait = ChildWait::None;
        let (attempt, status) = loop {
            let attempt = self.attempt;
            self.written.clear();
            let on = Attempt {
                workflow: &self.workflow,
                progress: self.progress.as_deref(),
                context: &self.context,
                sink: self.sink.as_deref(),
                run_id: &self.run_id,
                attempt,
            };
            // The child is driven where it is kept: a step dropped midway
            // (its stream dropped) leaves it as far as it got.
            let run = execute(on, node, &sent, &mut self.child, &mut child_wait);
            let result = match policy.timeout {
                Some(limit) => tokio::time::timeout(limit, run)
                    .await
                    .unwrap_or_else(|_| Err(HandlerError::execution(format!("timed out after {limit:?}")))),
                None => run.await,
            };
            let failed = match self.store(node, result) {
                Stored::Completed(sleep) => match sleep.filter(|wait| !wait.is_zero()) {
                    Some(wait) if self.workflow.parks => {
                        self.waiting = true;
                        self.finish_step(node, NodeStatus::Waiting);
                        break (attempt, StepStatus::Sleeping(wait));
                    }
                    Some(wait) => {
                        self.workflow.clock.sleep(wait).await;
                        break (attempt, self.complete(node));
                    }
                    None => break (attempt, self.complete(node)),
                },
                Stored::Waiting(points) => {
                    self.waiting = true;
                    self.finish_step(node, NodeStatus::Waiting);
                    let status = match std::mem::take(&mut child_wait) {
                        ChildWait::None => StepStatus::Waiting(points),
                        ChildWait::Points(points) => StepStatus::Waiting(points),
                        ChildWait::Request(request) => StepStatus::Child(request),
                    };
                    break (attempt, status);
                }
                Stored::Fatal(error) => {
                    self.send_lifecycle_complete(node, NodeStatus::Failed);
                    break (attempt, StepStatus::Failed { error, retry_in: None });
                }
                Stored::Failed(failed) => failed,
            };
            if let Some(wait) = retry_wait(&policy, &failed, attempt) {
                self.attempt = attempt + 1;
                if self.workflow.parks {
                    self.send_lifecycle_complete(node, NodeStatus::Failed);
                    break (attempt, StepStatus::Failed { error: failed.error, retry_in: Some(wait) });
                }
                // A retry runs a fresh child, as it would after parking.
                self.child = None;
                self.workflow.clock.sleep(wait).await;
                continue;
            }
            break (attempt, self.fail(node, failed, attempt));
        };
        if !matches!(status, StepStatus::Waiting(_)) {
            // A child is kept only while the run waits on it.
            self.child = None;
        }
        Some((node, attempt, status, sent))
    }

    /// The outcome of a step of `node`, from where the run stands now.
    pub(super) fn outcome(
        &self,
        node: usize,
        attempt: u32,
        status: StepStatus,
        sent: Mutex<Vec<Emitted>>,
    ) -> StepOutcome {
        StepOutcome {
            node_id: self.workflow.plan.id(node).to_owned(),
            attempt,
            status,
            writes: self.written_entries(),
            next: self.current_node_id().map(str::to_owned),
            emitted: sent.into_inner().unwrap_or_else(PoisonError::into_inner),
            closed: Vec::new(),
        }
    }

    /// Settles the attempt at subgraph node `node` whose child run the
    /// caller kept, ended with `result`, as a step settles its handler's:
    /// stored and moved on, retried (the run stays on the node for the next
    /// attempt) or failed along the error edge. Gives the attempt and how it
    /// ended.
    pub(super) fn settle_child(
        &mut self,
        node: usize,
        result: Result<NodeResult, HandlerError>,
    ) -> (u32, StepStatus) {
        let attempt = self.attempt;
        let status = match self.store(node, result) {
            // A child's result is a completion or a failure, never a wait.
            Stored::Completed(_) | Stored::Waiting(_) => self.complete(node),
            Stored::Fatal(error) => {
                self.send_lifecycle_complete(node, NodeStatus::Failed);
                StepStatus::Failed { error, retry_in: None }
            }
            Stored::Failed(failed) => {
                let policy = self.workflow.plan.policy(node).ok().cloned().unwrap_or_default();
                match retry_wait(&policy, &failed, attempt) {
                    Some(wait) => {
                        self.attempt = attempt + 1;
                        self.send_lifecycle_complete(node, NodeStatus::Failed);
                        StepStatus::Failed { error: failed.error, retry_in: Some(wait) }
                    }
                    None => self.fail(node, failed, attempt),
                }
            }
        };
        (attempt, status)
    }

    /// Checks and stores what an attempt at `node` returned.
    fn store(&mut self, node: usize, result: Result<NodeResult, HandlerError>) -> Stored {
        let plan = Arc::clone(&self.workflow.plan);
        let id = plan.id(node);
        let result = match result {
            Ok(result) => result,
            Err(error) => {
                let kind = match &error {
                    HandlerError::Template(TemplateError::Limit(_))
                    | HandlerError::Limit(_)
                    | HandlerError::Condition(_) => {
                        return Stored::Fatal(EngineError::from_handler(id, error));
                    }
                    HandlerError::Template(_) => ErrorKind::Template,
                    HandlerError::NoHandler { .. } | HandlerError::Execution { .. } => ErrorKind::Execution,
                };
                let retryable = error.is_retryable();
                let message = ErrorChain(&error).to_string();
                let error = EngineError::from_handler(id, error);
                return Stored::Failed(Failed { output: Value::Null, kind, message, retryable, error });
            }
        };
        if plan.node(node).node_type == NodeType::End {
            // An end node finishes the run whatever its handler returns.
            return Stored::Completed(None);
        }
        let NodeResult { output, status, error, child_outputs, ask, pending, sleep } = result;
        let failed_output = (status == NodeStatus::Failed).then(|| output.clone());
        // Which children wait, checked before anything is stored.
        let mut waiting = Vec::with_capacity(pending.len());
        let mut points = Vec::with_capacity(pending.len());
        if status == NodeStatus::Waiting {
            let children = plan.children(node);
            for (child, ask) in pending {
                let Some(index) = plan.index(&child).filter(|index| children.contains(index)) else {
                    let message =
                        format!("its handler says {child:?} waits, which is not one of its children");
                    return Stored::Fatal(EngineError::Execution { node: id.to_owned(), message });
                };
                waiting.push(index);
                points.push(WaitingPoint::new(child, ask));
            }
            // In node order, as saved.
            waiting.sort_unstable();
            waiting.dedup();
            points.sort_by_key(|point| plan.index(&point.node_id));
            points.dedup_by(|a, b| a.node_id == b.node_id);
        }
        // Check every write before storing anything, so a bad result stores nothing.
        let mut writes = Vec::with_capacity(child_outputs.len() + 1);
        for (child, output) in child_outputs {
            let Some(index) = plan.index(&child) else {
                let message =
                    format!("its handler wrote an output for {child:?}, which is not a node of the graph");
                return Stored::Fatal(EngineError::Execution { node: id.to_owned(), message });
            };
            writes.push((index, output));
        }
        writes.push((node, output));
        writes.retain(|(_, output)| !output.is_null());
        let sizes = match self.check_writes(node, &writes) {
            Ok(sizes) => sizes,
            Err(error) => return Stored::Fatal(error),
        };
        for ((index, output), bytes) in writes.into_iter().zip(sizes) {
            self.context_mut().set_output_at(index, output, bytes);
            self.written.push(index);
        }
        // A node that failed along an error edge before and ran again keeps no old failure.
        if self.context_mut().clear_failure_at(node) && !self.written.contains(&node) {
            self.written.push(node);
        }
        match status {
            NodeStatus::Completed => Stored::Completed(sleep),
            NodeStatus::Failed => {
                let message = error.unwrap_or_else(|| "the handler reported a failure".to_owned());
                Stored::Failed(Failed {
                    output: failed_output.unwrap_or(Value::Null),
                    kind: ErrorKind::Execution,
                    error: EngineError::Execution { node: id.to_owned(), message: message.clone() },
                    message,
                    retryable: true,
                })
            }
            NodeStatus::Waiting if waiting.is_empty() => Stored::Waiting(vec![WaitingPoint::new(id, ask)]),
            NodeStatus::Waiting => {
                self.pending = waiting;
                Stored::Waiting(points)
            }
        }
    }

    /// Moves the run on from `node`, completed: along its edges (none: the
    /// run is complete), with the step's closing events.
    fn complete(&mut self, node: usize) -> StepStatus {
        match self.follow_edges(node) {
            Ok(()) => {
                self.finish_step(node, NodeStatus::Completed);
                StepStatus::Completed
            }
            Err(error) => {
                self.send_lifecycle_complete(node, NodeStatus::Failed);
                StepStatus::Failed { error, retry_in: None }
            }
        }
    }

    /// Puts the run on the node `node`'s edges lead to after it completed
    /// (none for an end node or a node without edges: the run is complete).
    /// On a routing error the run stays on `node`.
    pub(super) fn follow_edges(&mut self, node: usize) -> Result<(), EngineError> {
        let plan = Arc::clone(&self.workflow.plan);
        let next = if plan.node(node).node_type == NodeType::End {
            None
        } else {
            // The run stays where it was on a routing error, `input` as it was
            // (inferred from the incoming edges for a restored run).
            let before = self.context_mut().replace_input(node);
            let routed = plan.route(node, &self.context);
            self.context_mut().restore_input(before);
            routed?
        };
        self.current = next;
        if next.is_some() {
            self.previous = Some(node);
            Arc::make_mut(&mut self.context).set_input(self.previous);
        }
        self.attempt = 1;
        // A child run lives only while the run stands on its subgraph node.
        self.child = None;
        Ok(())
    }

    /// `node` failed with no attempt left: its first error edge takes the run
    /// on, the failure stored under the node's `error`; without one the run
    /// fails, staying on the node.
    fn fail(&mut self, node: usize, failed: Failed, attempts: u32) -> StepStatus {
        self.send_lifecycle_complete(node, NodeStatus::Failed);
        let plan = Arc::clone(&self.workflow.plan);
        let target = match plan.error_route(node) {
            None => return StepStatus::Failed { error: failed.error, retry_in: None },
            Some(Err(error)) => return StepStatus::Failed { error, retry_in: None },
            Some(Ok(target)) => target,
        };
        let failure = NodeFailure { kind: failed.kind, message: failed.message, attempts };
        let error = failure.to_value();
        let bytes = measure(&failed.output).bytes + measure(&error).bytes;
        self.context_mut().set_failure_at(node, failed.output, error, bytes);
        self.written.retain(|&written| written != node);
        self.written.push(node);
        self.previous = Some(node);
        self.current = Some(target);
        Arc::make_mut(&mut self.context).set_input(self.previous);
        self.attempt = 1;
        self.child = None;
        self.send_updates(node);
        self.send_values();
        StepStatus::Routed(failure)
    }

    /// Checks what a step of `node` would store against the limits: each
    /// output's depth and size, and the context's size after them (a step that
    /// shrinks an oversized context, restored from an older state, may go on).
    /// Returns each output's size.
    pub(super) fn check_writes(
        &self,
        node: usize,
        writes: &[(usize, Value)],
    ) -> Result<Vec<usize>, EngineError> {
        let plan = &self.workflow.plan;
        let limits = &*self.workflow.limits;
        let mut sizes = Vec::with_capacity(writes.len());
        let (before, mut after) = (self.context.size(), self.context.size());
        for (index, output) in writes {
            let bytes = if plan.node(*index).node_type == NodeType::Start {
                // The trigger data under `input`: checked when the run started.
                measure(output).bytes
            } else {
                limits.check_value(output).map_err(|source| EngineError::Limit {
                    node: plan.id(node).to_owned(),
                    what: if *index == node {
                        "its output".to_owned()
                    } else {
                        format!("the output it wrote for {:?}", plan.id(*index))
                    },
                    source,
                })?
            };
            after = after - self.context.size_at(*index).min(after) + bytes;
            sizes.push(bytes);
        }
        if after > limits.context_bytes && after > before {
            return Err(EngineError::Limit {
                node: plan.id(node).to_owned(),
                what: "its output".to_owned(),
                source: LimitError::Context { bytes: after, limit: limits.context_bytes },
            });
        }
        Ok(sizes)
    }
}

/// What an attempt at a node runs with: the run's pieces a handler's
/// [`Scope`] borrows, apart from the child run the engine keeps.
struct Attempt<'a> {
    workflow: &'a super::Workflow,
    progress: Option<&'a dyn super::Progress>,
    context: &'a Arc<crate::context::Context>,
    sink: Option<&'a super::EventSink>,
    run_id: &'a str,
    attempt: u32,
}

/// The wait before the next attempt when the node's `policy` retries
/// `failed`, attempt `attempt` at it; none when it does not.
fn retry_wait(policy: &NodePolicy, failed: &Failed, attempt: u32) -> Option<std::time::Duration> {
    (failed.retryable && attempt < policy.max_attempts).then(|| policy.backoff(attempt + 1))
}

/// Runs an attempt at `node`: its handler, or for a subgraph node its child
/// run (in `child`; where it waits, in `child_wait`).
async fn execute(
    on: Attempt<'_>,
    node: usize,
    sent: &Mutex<Vec<Emitted>>,
    child: &mut Option<super::Child>,
    child_wait: &mut ChildWait,
) -> Result<NodeResult, HandlerError> {
    let workflow = on.workflow;
    let plan = &*workflow.plan;
    let scope = Scope {
        plan,
        handlers: &workflow.handlers,
        clock: &*workflow.clock,
        sink: on.sink,
        context: on.context,
        run_id: on.run_id,
        attempt: on.attempt,
        node,
        limits: &workflow.limits,
        sent,
        live: workflow.live.as_deref(),
        progress: on.progress,
    };
    if plan.node(node).node_type == NodeType::Subgraph {
        return super::subgraph::run(workflow, &scope, child, child_wait).await;
    }
    if workflow.hands_out(node) {
        *child_wait = super::subgraph::room_request(&scope);
        return Ok(NodeResult::waiting());
    }
    let handler = workflow.handlers[node]
        .as_ref()
        .ok_or_else(|| HandlerError::NoHandler { node_type: plan.node(node).node_type.to_string() })?;
    crate::handler::execute_guarded(&**handler, plan.node(node), &scope).await
}
