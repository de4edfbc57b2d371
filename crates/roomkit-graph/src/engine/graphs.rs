//! [`Graphs`]: the graphs subgraph nodes may run, by id and version.

use std::collections::HashMap;
use std::fmt;

use super::Workflow;

/// The graphs a run's subgraph nodes may run: each graph id with its
/// versions (1, 2, ... in the order added), each compiled with its handlers.
///
/// Hand it to the parent's workflow with [`Workflow::with_graphs`]. A child
/// run keeps its own graph's handlers and step limit, and takes its parent's
/// clock, limits, live hook and graphs.
///
/// ```
/// use roomkit_graph::{Graph, Graphs, Handlers, Trigger, Workflow};
///
/// let mut graphs = Graphs::new();
/// let review = Graph::new("review", "Review", Trigger::manual());
/// assert_eq!(graphs.add(Workflow::new(review.clone(), Handlers::builtin())), 1);
/// assert_eq!(graphs.add(Workflow::new(review, Handlers::builtin())), 2);
/// assert_eq!(graphs.get("review", None).map(|(version, _)| version), Some(2));
/// assert_eq!(graphs.get("review", Some(1)).map(|(version, _)| version), Some(1));
/// assert!(graphs.get("review", Some(3)).is_none() && graphs.get("other", None).is_none());
/// ```
#[derive(Clone, Default)]
pub struct Graphs {
    by_id: HashMap<String, Vec<Workflow>>,
}

impl Graphs {
    /// No graphs.
    pub fn new() -> Self {
        Graphs::default()
    }

    /// Adds `workflow` as the next version of its graph's id; returns that
    /// version.
    pub fn add(&mut self, workflow: Workflow) -> u32 {
        let versions = self.by_id.entry(workflow.graph().id.clone()).or_default();
        versions.push(workflow);
        u32::try_from(versions.len()).unwrap_or(u32::MAX)
    }

    /// Version `version` of graph `graph_id` (the newest when `None`), with
    /// its number.
    pub fn get(&self, graph_id: &str, version: Option<u32>) -> Option<(u32, &Workflow)> {
        let versions = self.by_id.get(graph_id)?;
        let version = match version {
            Some(version) => version,
            None => u32::try_from(versions.len()).ok()?,
        };
        let at = usize::try_from(version).ok()?.checked_sub(1)?;
        versions.get(at).map(|workflow| (version, workflow))
    }
}

impl fmt::Debug for Graphs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<(&String, usize)> =
            self.by_id.iter().map(|(id, versions)| (id, versions.len())).collect();
        ids.sort();
        f.debug_struct("Graphs").field("versions", &ids).finish()
    }
}
