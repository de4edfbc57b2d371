//! Pictures (SVG, drawn by `roomkit-graph-drawing`): a stored graph
//! version's, a graph sent in the request's (to see one before saving it),
//! and a run's, its path marked on its graph's.
//!
//! A version's layout is computed once, off the async threads, and kept in a
//! cache bounded by the size of what it holds; a run's marks are read from
//! its transcript on each request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::{IntoResponse, Response};
use roomkit_graph::Graph;
use roomkit_graph_drawing::{Layout, Overlay, layout, render_svg};
use roomkit_graph_store::{Entry, RunRecord, RunStatus};
use serde_json::Value;

use crate::App;
use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::graph_schema::GraphSchema;
use crate::graphs::{VersionQuery, graph_from};
use crate::runs::owned_run;

/// How many nodes and edges the cached layouts hold at most, together.
const CACHE_WEIGHT: usize = 200_000;

/// A run's marks are read from at most this many of its transcript entries
/// (its first ones); where it is now comes from its record.
const MARKED_ENTRIES: u64 = 100_000;

/// Layouts of stored graph versions, by organization, graph and version;
/// the first in are the first out once they hold [`CACHE_WEIGHT`].
#[derive(Default)]
pub(crate) struct Layouts {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    layouts: HashMap<(String, String, u64), Arc<Layout>>,
    order: VecDeque<(String, String, u64)>,
    weight: usize,
}

fn weight(layout: &Layout) -> usize {
    layout.nodes.len() + layout.edges.len() + 1
}

impl Layouts {
    /// The layout of `graph`, version `version` of `org`, computed when not kept.
    async fn of(&self, org: &str, graph: Graph, version: u64) -> Result<Arc<Layout>, ApiError> {
        let key = (org.to_owned(), graph.id.clone(), version);
        if let Some(layout) = self.lock().layouts.get(&key) {
            return Ok(layout.clone());
        }
        let layout = Arc::new(laid_out(graph).await?);
        let mut kept = self.lock();
        if kept.layouts.insert(key.clone(), layout.clone()).is_none() {
            kept.order.push_back(key);
            kept.weight += weight(&layout);
        }
        while kept.weight > CACHE_WEIGHT {
            let Some(oldest) = kept.order.pop_front() else { break };
            if let Some(gone) = kept.layouts.remove(&oldest) {
                kept.weight -= weight(&gone);
            }
        }
        Ok(layout)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A panic while holding the lock leaves the map whole (each change is one call).
        self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Lays `graph` out off the async threads: 422 `too_large_to_draw` past the
/// drawing's limits.
async fn laid_out(graph: Graph) -> Result<Layout, ApiError> {
    let laid = tokio::task::spawn_blocking(move || layout(&graph)).await.map_err(|error| {
        ApiError::fault(crate::Fault::Internal, format!("the layout task ended: {error}"))
    })?;
    laid.map_err(|error| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_large_to_draw", error.to_string())
    })
}

/// An SVG answer: it runs nothing and loads nothing.
fn svg(picture: String) -> Response {
    (
        [
            (CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, "default-src 'none'"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CACHE_CONTROL, "no-cache"),
        ],
        picture,
    )
        .into_response()
}

/// A picture of one version of a graph (the latest by default): each node a
/// box with its id and type (`data-node` its id), each edge a line with its
/// condition in short (`data-edge` its index in the graph's edges).
#[utoipa::path(get, path = "/v1/graphs/{graph_id}/drawing", tag = "graphs", operation_id = "drawGraph",
    params(("graph_id" = String, Path, description = "The graph's id"), VersionQuery),
    responses((status = 200, description = "The picture", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such graph or version", body = ErrorBody),
        (status = 422, description = "Too large to draw (`too_large_to_draw`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn graph(
    State(app): State<App>,
    Org(org): Org,
    PathParams(graph_id): PathParams<String>,
    QueryParams(query): QueryParams<VersionQuery>,
) -> Result<Response, ApiError> {
    let stored = app.runner.store().graph(&org, &graph_id, query.version).await?;
    let layout = app.layouts.of(&org, stored.graph, stored.version).await?;
    Ok(svg(render_svg(&layout, None)))
}

/// A picture of the graph in the body, stored or not, valid or not (as long
/// as it reads as a graph): to see a graph before saving it.
#[utoipa::path(post, path = "/v1/graphs/drawing", tag = "graphs", operation_id = "drawGraphBody",
    request_body(content = GraphSchema, description = "The graph"),
    responses((status = 200, description = "The picture", content_type = "image/svg+xml", body = String),
        (status = 422, description = "Not a graph, or too large to draw (`too_large_to_draw`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn posted(Org(_): Org, JsonBody(body): JsonBody<Value>) -> Result<Response, ApiError> {
    let layout = laid_out(graph_from(body)?).await?;
    Ok(svg(render_svg(&layout, None)))
}

/// A picture of a run: its graph version's, with the nodes it finished
/// (class `done`, ✓), the nodes it is on or waits on (`current`, ●), the
/// nodes that failed (`failed`, ✕) and the edges it took (`taken`) marked.
#[utoipa::path(get, path = "/v1/runs/{run_id}/drawing", tag = "runs", operation_id = "drawRun",
    params(("run_id" = String, Path, description = "The run")),
    responses((status = 200, description = "The picture", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 422, description = "Its graph is too large to draw (`too_large_to_draw`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn run(
    State(app): State<App>,
    Org(org): Org,
    PathParams(run_id): PathParams<String>,
) -> Result<Response, ApiError> {
    let record = owned_run(&app, &org, &run_id).await?;
    let stored = app.runner.store().graph(&org, &record.graph_id, Some(record.graph_version)).await?;
    let mut marks = Marks::new(&stored.graph);
    let mut after = 0;
    while after < MARKED_ENTRIES {
        let events = app.runner.store().transcript(&run_id, after, 1000).await?;
        let Some(last) = events.last() else { break };
        after = last.seq;
        for event in &events {
            marks.read(&event.entry);
        }
    }
    let overlay = marks.overlay(&record);
    let layout = app.layouts.of(&org, stored.graph, stored.version).await?;
    Ok(svg(render_svg(&layout, Some(&overlay))))
}

/// A run's marks, read from its transcript one entry at a time.
struct Marks<'g> {
    graph: &'g Graph,
    overlay: Overlay,
    /// The node the run last finished outside a parallel node: the next node
    /// started came from it.
    left: Option<String>,
}

impl<'g> Marks<'g> {
    fn new(graph: &'g Graph) -> Self {
        Marks { graph, overlay: Overlay::default(), left: None }
    }

    fn read(&mut self, entry: &Entry) {
        let overlay = &mut self.overlay;
        match entry {
            Entry::NodeStarted { node_id, .. } => {
                if let Some(from) = self.left.take() {
                    take(self.graph, overlay, &from, node_id, false);
                }
                overlay.failed.remove(node_id);
            }
            // A person's answer ends a node's step as its completion does.
            Entry::NodeCompleted { node_id, .. } | Entry::AnswerReceived { node_id, .. } => {
                overlay.failed.remove(node_id);
                overlay.done.insert(node_id.clone());
                let inside = self.graph.node(node_id).is_some_and(|node| node.parent.is_some());
                if !inside {
                    self.left = Some(node_id.clone());
                }
                // A parallel node's output holds each child's that finished.
                if let Entry::NodeCompleted { output: Value::Object(outputs), .. } = entry {
                    let children =
                        self.graph.nodes().iter().filter(|node| node.parent.as_ref() == Some(node_id));
                    for child in children.filter(|child| outputs.contains_key(&child.id)) {
                        overlay.done.insert(child.id.clone());
                    }
                }
            }
            Entry::NodeFailed { node_id, .. } => {
                overlay.done.remove(node_id);
                overlay.failed.insert(node_id.clone());
            }
            Entry::ErrorRouted { node_id, target } => {
                take(self.graph, overlay, node_id, target, true);
                self.left = None;
            }
            _ => {}
        }
    }

    /// The marks, with where `run` is now.
    fn overlay(mut self, run: &RunRecord) -> Overlay {
        if matches!(run.status, RunStatus::Running | RunStatus::Waiting) {
            let waiting = run.waiting_on();
            self.overlay.current = if waiting.is_empty() {
                run.current_node_id.iter().cloned().collect()
            } else {
                waiting.into_iter().map(str::to_owned).collect()
            };
        }
        self.overlay
    }
}

/// Marks the edges from `from` to `to` taken: its error routes, or its others.
fn take(graph: &Graph, overlay: &mut Overlay, from: &str, to: &str, error: bool) {
    for (index, edge) in graph.edges.iter().enumerate() {
        let is_error = edge.condition.as_ref().is_some_and(|condition| condition.is_error());
        if edge.source == from && edge.target == to && is_error == error {
            overlay.taken.insert(index);
        }
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
