use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};

use super::{HandlerError, NodeHandler, NodeResult, NodeStatus, Scope};
use crate::limits::{LimitError, measure};
use crate::model::Node;

/// The parallel node: runs its children (the nodes whose `parent` it is)
/// concurrently, stores each child's output under the child's id and outputs
/// `{child_id: output}`.
///
/// - `join: "all"` (the default) waits for every child. A child that fails or
///   has no handler fails the parallel node; the aggregate is still stored (a
///   failed child's entry is its output or null, a child without handler or
///   whose handler raised an error is left out). Otherwise, children that wait
///   make the node wait on each of them (see
///   [`WorkflowEngine::answer`](crate::WorkflowEngine::answer)), those that
///   completed keeping their outputs. Children whose outputs add up to more
///   than the run's output limit fail the node with a limit error, the rest
///   cancelled.
/// - `join: "any"`: the first child to complete wins, the others are cancelled
///   and store nothing; the output is `{winner_id: output}`. With none
///   completed, children that wait make the node wait (the first answered
///   wins); else the node fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct ParallelHandler;

/// The join modes a parallel node knows.
pub(crate) const PARALLEL_JOINS: [&str; 2] = ["all", "any"];

/// Whether a parallel node completes with its first child (`join: "any"`).
pub(crate) fn joins_any(node: &Node) -> bool {
    node.config.get("join").and_then(Value::as_str) == Some("any")
}

#[async_trait]
impl NodeHandler for ParallelHandler {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let children: Vec<&Node> = scope.children().collect();
        match node.config.get("join").map(|join| join.as_str()) {
            None | Some(Some("all")) => join_all_children(scope, &children).await,
            Some(Some("any")) => join_any_child(scope, &children).await,
            Some(_) => Ok(NodeResult::failed(format!(
                "node {:?}: unknown join {} (expected \"all\" or \"any\")",
                node.id, node.config["join"]
            ))),
        }
    }
}

async fn join_all_children(scope: &Scope<'_>, children: &[&Node]) -> Result<NodeResult, HandlerError> {
    let results = run_within_limit(scope, children).await?;
    let mut aggregate = Map::with_capacity(children.len());
    let mut writes = Vec::new();
    let mut failures = Vec::new();
    let mut waiting = Vec::new();
    for (child, result) in children.iter().zip(results) {
        match result {
            Ok(result) => {
                match result.status {
                    NodeStatus::Completed => {}
                    NodeStatus::Waiting => waiting.push((child.id.clone(), result.ask)),
                    NodeStatus::Failed => failures.push(match &result.error {
                        Some(error) => format!("{:?} failed: {error}", child.id),
                        None => format!("{:?} failed", child.id),
                    }),
                }
                aggregate.insert(child.id.clone(), result.output.clone());
                writes.extend(result.child_outputs);
                writes.push((child.id.clone(), result.output));
            }
            Err(HandlerError::NoHandler { node_type }) => {
                failures.push(format!("No handler registered for child '{}' (type={node_type})", child.id));
            }
            // A child past a limit puts its parallel node past it: never routed nor retried.
            Err(limit @ HandlerError::Limit(_)) => return Err(limit),
            Err(error) => failures.push(format!("{:?} failed: {error}", child.id)),
        }
    }
    let mut result = if !failures.is_empty() {
        NodeResult::failed(format!("parallel children failed: {}", failures.join("; ")))
            .with_output(Value::Object(aggregate))
    } else if !waiting.is_empty() {
        // The aggregate is stored once the last waiting child is answered.
        NodeResult { pending: waiting, ..NodeResult::waiting() }
    } else {
        NodeResult::completed(Value::Object(aggregate))
    };
    result.child_outputs = writes;
    Ok(result)
}

/// Runs every child at once and returns their results in the children's
/// order. As soon as the outputs of those done add up to more than the run's
/// output limit (the aggregate is the parallel node's output), the others are
/// cancelled and the node fails with a limit error: many children copying a
/// large value never build more than the limit and one output.
async fn run_within_limit(
    scope: &Scope<'_>,
    children: &[&Node],
) -> Result<Vec<Result<NodeResult, HandlerError>>, HandlerError> {
    let limit = scope.limits().output_bytes;
    let mut running: FuturesUnordered<_> = children
        .iter()
        .enumerate()
        .map(|(at, child)| async move { (at, scope.execute_child(child).await) })
        .collect();
    let mut results: Vec<Option<Result<NodeResult, HandlerError>>> = children.iter().map(|_| None).collect();
    let mut bytes = 0usize;
    while let Some((at, result)) = running.next().await {
        if let Ok(result) = &result {
            let outputs = std::iter::once(&result.output).chain(result.child_outputs.iter().map(|(_, o)| o));
            bytes = outputs.fold(bytes, |sum, output| sum.saturating_add(measure(output).bytes));
            if bytes > limit {
                return Err(LimitError::Exceeds { limit }.into());
            }
        }
        results[at] = Some(result);
    }
    // Every child ran to its end, so each has its result.
    Ok(results.into_iter().flatten().collect())
}

async fn join_any_child(scope: &Scope<'_>, children: &[&Node]) -> Result<NodeResult, HandlerError> {
    let mut running: FuturesUnordered<_> =
        children.iter().map(|child| async move { (*child, scope.execute_child(child).await) }).collect();
    let mut failures = Vec::new();
    let mut waiting = Vec::new();
    let mut writes = Vec::new();
    while let Some((child, result)) = running.next().await {
        match result {
            Ok(result) if result.status == NodeStatus::Completed => {
                // Dropping the others cancels them: they store nothing.
                drop(running);
                let mut aggregate = Map::with_capacity(1);
                aggregate.insert(child.id.clone(), result.output.clone());
                let mut winner = NodeResult::completed(Value::Object(aggregate));
                winner.child_outputs = result.child_outputs;
                winner.child_outputs.push((child.id.clone(), result.output));
                return Ok(winner);
            }
            Ok(result) => {
                if result.status == NodeStatus::Waiting {
                    waiting.push((child.id.clone(), result.ask));
                } else {
                    failures.push(format!(
                        "{:?} failed{}",
                        child.id,
                        result.error.map(|e| format!(": {e}")).unwrap_or_default()
                    ));
                }
                writes.extend(result.child_outputs);
                writes.push((child.id.clone(), result.output));
            }
            // A child past a limit puts its parallel node past it: never routed nor retried.
            Err(limit @ HandlerError::Limit(_)) => return Err(limit),
            Err(error) => failures.push(format!("{:?} failed: {error}", child.id)),
        }
    }
    if !waiting.is_empty() {
        // In node order, as the run waits on them.
        waiting.sort_by_key(|(id, _)| children.iter().position(|child| child.id == *id));
        let mut result = NodeResult { pending: waiting, ..NodeResult::waiting() };
        result.child_outputs = writes;
        return Ok(result);
    }
    Ok(NodeResult::failed(if failures.is_empty() {
        "a parallel node with join \"any\" needs at least one child".to_owned()
    } else {
        format!("no parallel child completed: {}", failures.join("; "))
    })
    .with_output(Value::Object(Map::new())))
}
