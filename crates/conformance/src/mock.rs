//! The test handler that answers a node from the case's scripted results.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use roomkit_graph::{HandlerError, Node, NodeHandler, NodeResult, Scope};
use serde_json::Value;

/// Answers its n-th call (from 0) with `results[min(n, len - 1)]`: a result is
/// `{"output", "status", "error", "emit": [payload, ...]}`, every field optional.
pub(crate) struct MockHandler {
    results: Vec<Value>,
    calls: AtomicUsize,
}

impl MockHandler {
    pub(crate) fn new(results: Vec<Value>) -> Self {
        MockHandler { results, calls: AtomicUsize::new(0) }
    }
}

#[async_trait]
impl NodeHandler for MockHandler {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let Some(result) = self.results.get(call.min(self.results.len().saturating_sub(1))) else {
            return Err(HandlerError::execution(format!("node {:?} has an empty mock list", node.id)));
        };
        for payload in result.get("emit").and_then(Value::as_array).into_iter().flatten() {
            scope.emit(payload.clone());
        }
        let error = result.get("error").and_then(Value::as_str).unwrap_or_default();
        let answer = match result.get("status").and_then(Value::as_str).unwrap_or("completed") {
            "completed" => NodeResult::completed(Value::Null),
            "waiting" => NodeResult::waiting(),
            "failed" => NodeResult {
                error: result.get("error").map(|_| error.to_owned()),
                ..NodeResult::failed(error)
            },
            other => return Err(HandlerError::execution(format!("mock status {other:?} is not a status"))),
        };
        Ok(answer.with_output(result.get("output").cloned().unwrap_or(Value::Null)))
    }
}
