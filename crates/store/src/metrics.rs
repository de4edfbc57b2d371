//! What a store counts, through the `metrics` facade (nothing is kept
//! unless the process installs a recorder, as `serve --metrics-listen`
//! does): runs started and finished, by graph, counted from the entries a
//! commit made durable; and how long commits take.

use std::time::Duration;

use crate::{Entry, RunRecord, TranscriptEvent};

/// Runs started, by organization and graph.
pub const RUNS_STARTED: &str = "roomkit_runs_started_total";

/// Runs over, by organization, graph and status (completed, failed,
/// cancelled).
pub const RUNS_FINISHED: &str = "roomkit_runs_finished_total";

/// How long a commit takes, from asking to its answer, by backend and
/// outcome (committed, refused, error).
pub const COMMIT_SECONDS: &str = "roomkit_store_commit_seconds";

/// Counts the runs `events` start and end, `run` being the run committed to
/// (the events of another run, a parent woken by its child, neither start
/// nor end one).
pub fn committed(events: &[TranscriptEvent], run: &RunRecord) {
    for event in events.iter().filter(|event| event.run_id == run.run_id) {
        let labels = [("org", run.org.clone()), ("graph", run.graph_id.clone())];
        match &event.entry {
            Entry::RunStarted { .. } => metrics::counter!(RUNS_STARTED, &labels).increment(1),
            entry if entry.is_final() => {
                let status = match entry {
                    Entry::RunCompleted => "completed",
                    Entry::RunFailed { .. } => "failed",
                    _ => "cancelled",
                };
                metrics::counter!(RUNS_FINISHED, "org" => run.org.clone(), "graph" => run.graph_id.clone(),
                    "status" => status)
                .increment(1);
            }
            _ => {}
        }
    }
}

/// Records how long a commit of `backend` took and how it ended.
pub fn commit_took<T>(backend: &'static str, elapsed: Duration, outcome: &crate::Result<T>) {
    let outcome = match outcome {
        Ok(_) => "committed",
        Err(crate::StoreError::Conflict { .. } | crate::StoreError::Duplicate { .. }) => "refused",
        Err(_) => "error",
    };
    metrics::histogram!(COMMIT_SECONDS, "backend" => backend, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}
