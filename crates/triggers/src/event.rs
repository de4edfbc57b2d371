//! Event triggers: firing an event starts every graph of the organization
//! whose trigger listens to it.

use roomkit_graph::Trigger;
use roomkit_graph_runner::{Runner, RunnerError};
use roomkit_graph_store::RunRecord;
use serde_json::Value;

/// Starts a run of the latest version of every graph of `org` whose trigger
/// is the event `name`, with `data` as trigger data. Returns the runs
/// started, by graph id (none when no graph listens).
pub async fn fire_event(
    runner: &Runner,
    org: &str,
    name: &str,
    data: Value,
) -> Result<Vec<RunRecord>, RunnerError> {
    let mut started = Vec::new();
    for stored in runner.store().list_graphs(Some(org)).await? {
        if matches!(&stored.graph.trigger, Trigger::Event { event, .. } if event == name) {
            started.push(runner.start_in(org, &stored.graph.id, data.clone(), None).await?);
        }
    }
    Ok(started)
}
