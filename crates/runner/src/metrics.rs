//! What the runner counts, through the `metrics` facade (kept only when the
//! process installs a recorder): steps by node type and how they ended, how
//! long they took, and runs taken over from a process whose lease lapsed.

use std::time::Duration;

use roomkit_graph::{NodeType, StepStatus};

/// Steps executed, by node type and outcome.
pub const STEPS: &str = "roomkit_steps_total";

/// How long a step's node took, by node type.
pub const STEP_SECONDS: &str = "roomkit_step_duration_seconds";

/// Runs picked up from another process whose lease had lapsed.
pub const LEASE_TAKEOVERS: &str = "roomkit_lease_takeovers_total";

/// Records a step of a `node_type` node that ended as `status` after
/// `elapsed`. Custom node types, which any graph may name, are counted
/// together as `custom`: a label never takes a value from a graph.
pub(crate) fn step(node_type: Option<&NodeType>, status: &StepStatus, elapsed: Duration) {
    let node_type = match node_type {
        Some(NodeType::Custom(_)) => "custom".to_owned(),
        Some(known) => known.to_string(),
        None => "unknown".to_owned(),
    };
    metrics::counter!(STEPS, "node_type" => node_type.clone(), "outcome" => outcome(status)).increment(1);
    metrics::histogram!(STEP_SECONDS, "node_type" => node_type).record(elapsed.as_secs_f64());
}

/// How a step ended, in a word: `completed`, `failed`, `retrying`,
/// `error_routed`, `waiting`, `sleeping` or `child` (a child run started).
pub(crate) fn outcome(status: &StepStatus) -> &'static str {
    match status {
        StepStatus::Completed => "completed",
        StepStatus::Failed { retry_in: None, .. } => "failed",
        StepStatus::Failed { retry_in: Some(_), .. } => "retrying",
        StepStatus::Routed(_) => "error_routed",
        StepStatus::Waiting(_) => "waiting",
        StepStatus::Sleeping(_) => "sleeping",
        StepStatus::Child(_) => "child",
    }
}

/// Records a run taken over from another process.
pub(crate) fn takeover() {
    metrics::counter!(LEASE_TAKEOVERS).increment(1);
}
