//! A run's marks on its graph's picture ([`Overlay`]): the nodes it
//! finished, the ones it is on or waits on, the ones that failed, and the
//! edges it took, read from its transcript (a fork's from the runs it was
//! forked from too, up to where it went on from them).

use std::collections::{HashMap, HashSet};

use roomkit_graph::{Graph, NodeType};
use roomkit_graph_drawing::Overlay;
use roomkit_graph_store::{Entry, RunRecord, RunStatus};
use serde_json::{Map, Value};

use crate::App;
use crate::error::ApiError;

/// A run's marks are read from at most this many transcript entries, the
/// last ones; where it is now comes from its record.
const MARKED_ENTRIES: u64 = 100_000;

/// At most this many forks back are followed.
const FORK_HOPS: usize = 16;

/// Entries read at a time.
const PAGE: u64 = 1000;

/// `run`'s marks on `graph` (the graph version it runs).
pub(crate) async fn of_run(app: &App, run: &RunRecord, graph: &Graph) -> Result<Overlay, ApiError> {
    let store = app.runner.store();
    // The stretches to read, newest first: the run's, then each origin's up
    // to the entry its fork went on from.
    let mut stretches = vec![(run.run_id.clone(), run.last_seq)];
    while stretches.len() <= FORK_HOPS {
        let Some((run_id, _)) = stretches.last() else { break };
        let first = store.transcript(run_id, 0, 1).await?;
        match first.into_iter().next().map(|event| event.entry) {
            Some(Entry::RunStarted { forked_from: Some(origin), .. }) => {
                stretches.push((origin.run_id, origin.seq))
            }
            _ => break,
        }
    }
    let mut marks = Marks::new(graph);
    let mut budget = MARKED_ENTRIES;
    let mut taken = Vec::new();
    for (run_id, upto) in stretches {
        let from = upto.saturating_sub(budget);
        budget -= upto - from;
        taken.push((run_id, from, upto));
        if budget == 0 {
            break;
        }
    }
    for (run_id, mut after, upto) in taken.into_iter().rev() {
        while after < upto {
            let count = usize::try_from((upto - after).min(PAGE)).unwrap_or(1);
            let events = store.transcript(&run_id, after, count).await?;
            let Some(last) = events.last() else { break };
            after = last.seq;
            for event in events.iter().filter(|event| event.seq <= upto) {
                marks.read(&event.entry);
            }
        }
    }
    // Children of a parallel node under way that finished have no entry of
    // their own: their outputs are in the run's context.
    let live = matches!(run.status, RunStatus::Running | RunStatus::Queued | RunStatus::Waiting);
    let on_parallel =
        run.current_node_id.as_deref().and_then(|id| graph.node(id)).map(|node| node.node_type.clone());
    if let (true, Some(NodeType::Parallel), Some(current)) =
        (live, on_parallel, run.current_node_id.as_deref())
    {
        let (_, state) = store.load_run(&run.run_id).await?;
        marks.finished_inside(current, &state.context);
    }
    Ok(marks.overlay(run))
}

/// A run's marks, read one transcript entry at a time.
pub(crate) struct Marks<'g> {
    overlay: Overlay,
    /// The node the run last finished outside a parallel node: the next node
    /// started came from it.
    left: Option<String>,
    /// By source and target: the edges between them, with whether each is an
    /// error route.
    edges: HashMap<(&'g str, &'g str), Vec<(usize, bool)>>,
    /// By parallel node: the nodes it holds.
    children: HashMap<&'g str, Vec<&'g str>>,
    /// The nodes inside a parallel node.
    inside: HashSet<&'g str>,
}

impl<'g> Marks<'g> {
    pub(crate) fn new(graph: &'g Graph) -> Self {
        let mut edges: HashMap<(&str, &str), Vec<(usize, bool)>> = HashMap::new();
        for (index, edge) in graph.edges.iter().enumerate() {
            let error = edge.condition.as_ref().is_some_and(|condition| condition.is_error());
            edges.entry((edge.source.as_str(), edge.target.as_str())).or_default().push((index, error));
        }
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut inside = HashSet::new();
        for node in graph.nodes() {
            if let Some(parent) = node.parent.as_deref() {
                children.entry(parent).or_default().push(node.id.as_str());
                inside.insert(node.id.as_str());
            }
        }
        Marks { overlay: Overlay::default(), left: None, edges, children, inside }
    }

    pub(crate) fn read(&mut self, entry: &Entry) {
        match entry {
            Entry::NodeStarted { node_id, .. } => {
                if let Some(from) = self.left.take() {
                    self.take(&from, node_id, false);
                }
                self.overlay.failed.remove(node_id);
            }
            // A person's answer ends a node's step as its completion does.
            Entry::NodeCompleted { node_id, .. } | Entry::AnswerReceived { node_id, .. } => {
                self.overlay.failed.remove(node_id);
                self.overlay.done.insert(node_id.clone());
                if !self.inside.contains(node_id.as_str()) {
                    self.left = Some(node_id.clone());
                }
                // A parallel node's output holds each child's that finished.
                if let Entry::NodeCompleted { output: Value::Object(outputs), .. } = entry {
                    self.finished_in_output(node_id, outputs);
                }
            }
            Entry::NodeFailed { node_id, .. } => {
                self.overlay.done.remove(node_id);
                self.overlay.failed.insert(node_id.clone());
            }
            Entry::ErrorRouted { node_id, target } => {
                self.take(node_id, target, true);
                self.left = None;
            }
            _ => {}
        }
    }

    /// Marks the edges from `from` to `to` taken: its error routes, or its
    /// others (all of them, when several join the same two nodes).
    fn take(&mut self, from: &str, to: &str, error: bool) {
        for &(index, is_error) in self.edges.get(&(from, to)).into_iter().flatten() {
            if is_error == error {
                self.overlay.taken.insert(index);
            }
        }
    }

    /// Marks done the nodes inside `parallel` (at any depth) whose outputs
    /// `outputs` holds, as a parallel node's output does: by child, a nested
    /// parallel child's holding its own children's.
    fn finished_in_output(&mut self, parallel: &str, outputs: &Map<String, Value>) {
        let mut stack = vec![(parallel.to_owned(), outputs.clone())];
        while let Some((parent, outputs)) = stack.pop() {
            for &child in self.children.get(parent.as_str()).into_iter().flatten() {
                if let Some(output) = outputs.get(child) {
                    self.overlay.done.insert(child.to_owned());
                    if let (Some(_), Value::Object(inner)) = (self.children.get(child), output) {
                        stack.push((child.to_owned(), inner.clone()));
                    }
                }
            }
        }
    }

    /// Marks done the nodes inside `parallel` (at any depth) that have an
    /// output in `context` (`{node_id: {"output": …}}`), as a run under way
    /// keeps them.
    pub(crate) fn finished_inside(&mut self, parallel: &str, context: &Map<String, Value>) {
        let mut stack = vec![parallel];
        while let Some(parent) = stack.pop() {
            for &child in self.children.get(parent).into_iter().flatten() {
                if context.get(child).is_some_and(|entry| entry.get("output").is_some()) {
                    self.overlay.done.insert(child.to_owned());
                }
                stack.push(child);
            }
        }
    }

    /// The marks, with where `run` is now: the nodes it is on or waits on,
    /// or, when it failed, the node it failed on.
    pub(crate) fn overlay(mut self, run: &RunRecord) -> Overlay {
        match run.status {
            RunStatus::Running | RunStatus::Queued | RunStatus::Waiting => {
                let waiting = run.waiting_on();
                self.overlay.current = if waiting.is_empty() {
                    run.current_node_id.iter().cloned().collect()
                } else {
                    waiting.into_iter().map(str::to_owned).collect()
                };
            }
            RunStatus::Failed => {
                if let Some(node) = &run.current_node_id {
                    self.overlay.done.remove(node);
                    self.overlay.failed.insert(node.clone());
                }
            }
            _ => {}
        }
        self.overlay
    }
}

#[cfg(test)]
mod tests {
    use roomkit_graph::{Condition, Edge, Node, Trigger};
    use serde_json::json;

    use super::*;

    fn entry(value: Value) -> Entry {
        serde_json::from_value(value).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn nested_parallel_children_are_marked_from_their_parents_output() {
        let mut graph = Graph::new("g", "G", Trigger::manual());
        let _ = graph.add_nodes([Node::new("start", "start"), Node::new("outer", "parallel")]);
        let _ = graph.add_nodes([
            Node::new("inner", "parallel").with_parent("outer"),
            Node::new("a", "log").with_parent("outer"),
            Node::new("b", "log").with_parent("inner"),
            Node::new("c", "human").with_parent("inner"),
        ]);
        let mut marks = Marks::new(&graph);
        marks.read(&entry(json!({"type": "node_completed", "node_id": "outer",
            "output": {"a": 1, "inner": {"b": 2}}})));
        let done: Vec<&str> = marks.overlay.done.iter().map(String::as_str).collect();
        assert_eq!(done, ["a", "b", "inner", "outer"], "c has no output: it did not finish");

        let mut live = Marks::new(&graph);
        let context = json!({"start": {"output": {}}, "b": {"output": 2}, "a": {"output": null}});
        live.finished_inside("outer", context.as_object().unwrap_or(&Map::new()));
        let done: Vec<&str> = live.overlay.done.iter().map(String::as_str).collect();
        assert_eq!(done, ["a", "b"]);
    }

    #[test]
    fn a_run_marks_the_nodes_it_finished_and_the_edges_it_took() {
        let mut graph = Graph::new("g", "G", Trigger::manual());
        let nodes = [
            ("start", "start"),
            ("call", "function"),
            ("done", "end"),
            ("recover", "log"),
            ("checks", "parallel"),
        ];
        for (id, kind) in nodes {
            let _ = graph.add_node(Node::new(id, kind));
        }
        let _ = graph.add_node(Node::new("a", "log").with_parent("checks"));
        graph.add_edges([
            Edge::new("start", "checks"),
            Edge::new("checks", "call"),
            Edge::new("call", "done"),
            Edge::new("call", "recover").when(Condition::error()),
            Edge::new("recover", "call"),
        ]);
        let mut marks = Marks::new(&graph);
        for value in [
            json!({"type": "node_started", "node_id": "start", "node_type": "start", "attempt": 1}),
            json!({"type": "node_completed", "node_id": "start", "output": null}),
            json!({"type": "node_started", "node_id": "checks", "node_type": "parallel", "attempt": 1}),
            json!({"type": "node_completed", "node_id": "checks", "output": {"a": {"ok": true}, "start": 1}}),
            json!({"type": "node_started", "node_id": "call", "node_type": "function", "attempt": 1}),
            json!({"type": "node_failed", "node_id": "call", "attempt": 1, "error": "boom"}),
            json!({"type": "error_routed", "node_id": "call", "target": "recover"}),
            json!({"type": "node_started", "node_id": "recover", "node_type": "log", "attempt": 1}),
            json!({"type": "node_completed", "node_id": "recover", "output": null}),
            json!({"type": "node_started", "node_id": "call", "node_type": "function", "attempt": 1}),
        ] {
            marks.read(&entry(value));
        }
        let run: RunRecord = serde_json::from_value(json!({
            "run_id": "r", "org": "default", "graph_id": "g", "graph_version": 1, "status": "running",
            "current_node_id": "call", "previous_node_id": "recover", "error": null, "version": 3,
            "last_seq": 12, "wake_at": null, "created_at": 0, "updated_at": 0,
        }))
        .unwrap_or_else(|error| panic!("{error}"));
        let overlay = marks.overlay(&run);
        let set = |items: &[&str]| items.iter().map(|item| item.to_string()).collect();
        assert_eq!(overlay.done, set(&["a", "checks", "recover", "start"]));
        assert_eq!(overlay.current, set(&["call"]));
        // Started again: no longer failed.
        assert!(overlay.failed.is_empty());
        // start→checks, checks→call, the error route, recover→call; not call→done.
        assert_eq!(overlay.taken, [0, 1, 3, 4].into());
    }
}
