//! Pictures (SVG, drawn by `roomkit-graph-drawing`): a stored graph
//! version's, a graph sent in the request's (to see one before saving it),
//! and a run's, its path marked on its graph's.
//!
//! A version's layout is computed once, off the async threads, and kept in a
//! cache bounded by the size of what it holds; a run's marks are read from
//! its transcript on each request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::{IntoResponse, Response};
use roomkit_graph::Graph;
use roomkit_graph_drawing::{Layout, layout, render_svg};
use serde_json::Value;

use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::graph_schema::GraphSchema;
use crate::graphs::{VersionQuery, graph_from};
use crate::runs::owned_run;
use crate::{App, marks};

/// About how many bytes the cached layouts hold at most, together.
const CACHE_BYTES: usize = 64 << 20;

/// How many layouts are computed at once, at most; more requests wait.
const LAYING_OUT: usize = 2;

/// Layouts of stored graph versions, by organization, graph and version;
/// the first in are the first out once they hold [`CACHE_BYTES`].
pub(crate) struct Layouts {
    kept: Mutex<Kept>,
    /// A permit for each layout computed at once.
    laying_out: Semaphore,
}

impl Default for Layouts {
    fn default() -> Self {
        Layouts { kept: Mutex::default(), laying_out: Semaphore::new(LAYING_OUT) }
    }
}

#[derive(Default)]
struct Kept {
    layouts: HashMap<(String, String, u64), Arc<Layout>>,
    order: VecDeque<(String, String, u64)>,
    weight: usize,
}

/// About how many bytes `layout` holds.
fn weight(layout: &Layout) -> usize {
    let nodes: usize =
        layout.nodes.iter().map(|node| 96 + node.id.len() + node.kind.len() + node.caption.len()).sum();
    let edges: usize = layout
        .edges
        .iter()
        .map(|edge| {
            let label = edge.label.as_ref().map_or(0, |label| label.text.len() + label.full.len() + 64);
            96 + 16 * edge.points.len() + label
        })
        .sum();
    64 + layout.title.len() + nodes + edges
}

impl Layouts {
    /// The layout of `graph`, version `version` of `org`, computed when not kept.
    async fn of(&self, org: &str, graph: Graph, version: u64) -> Result<Arc<Layout>, ApiError> {
        let key = (org.to_owned(), graph.id.clone(), version);
        if let Some(layout) = self.lock().layouts.get(&key) {
            return Ok(layout.clone());
        }
        let layout = Arc::new(self.laid_out(graph).await?);
        let mut kept = self.lock();
        if kept.layouts.insert(key.clone(), layout.clone()).is_none() {
            kept.order.push_back(key);
            kept.weight += weight(&layout);
        }
        while kept.weight > CACHE_BYTES {
            let Some(oldest) = kept.order.pop_front() else { break };
            if let Some(gone) = kept.layouts.remove(&oldest) {
                kept.weight -= weight(&gone);
            }
        }
        Ok(layout)
    }

    /// Lays `graph` out off the async threads, [`LAYING_OUT`] at a time:
    /// 422 `too_large_to_draw` past the drawing's limits.
    async fn laid_out(&self, graph: Graph) -> Result<Layout, ApiError> {
        let _permit = self.laying_out.acquire().await.map_err(|error| {
            ApiError::fault(crate::Fault::Internal, format!("the layout permits: {error}"))
        })?;
        let laid = tokio::task::spawn_blocking(move || layout(&graph)).await.map_err(|error| {
            ApiError::fault(crate::Fault::Internal, format!("the layout task ended: {error}"))
        })?;
        laid.map_err(|error| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_large_to_draw", error.to_string())
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A panic while holding the lock leaves the map whole (each change is one call).
        self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
#[utoipa::path(post, path = "/v1/drawing", tag = "graphs", operation_id = "drawGraphBody",
    request_body(content = GraphSchema, description = "The graph"),
    responses((status = 200, description = "The picture", content_type = "image/svg+xml", body = String),
        (status = 422, description = "Not a graph, or too large to draw (`too_large_to_draw`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn posted(
    State(app): State<App>,
    Org(_): Org,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let layout = app.layouts.laid_out(graph_from(body)?).await?;
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
    let overlay = marks::of_run(&app, &record, &stored.graph).await?;
    let layout = app.layouts.of(&org, stored.graph, stored.version).await?;
    Ok(svg(render_svg(&layout, Some(&overlay))))
}
