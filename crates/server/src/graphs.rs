//! Graphs: create, new version, list, get, validate, and the webhook secret.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roomkit_graph::{Graph, GraphError, Validation, ValidationError, ValidationWarning};
use roomkit_graph_runner::Runner;
use roomkit_graph_store::{GraphCursor, StoreError, StoredGraph};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::auth::{Org, Writer};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::graph_schema::GraphSchema;
use crate::runs::{cursor, page_size};

/// The name under which a graph's webhook secret is stored
/// ([`AccessStore::secret`](roomkit_graph_store::AccessStore::secret)).
pub const WEBHOOK_SECRET: &str = "webhook";

/// One stored version of a graph.
#[derive(Serialize, ToSchema)]
pub(crate) struct GraphVersion {
    /// The graph's id.
    pub(crate) graph_id: String,
    /// The version: 1, 2, 3...
    pub(crate) version: u64,
    /// When this version was saved (milliseconds since the epoch).
    pub(crate) created_at: i64,
    /// The graph, as JSON.
    #[schema(value_type = GraphSchema)]
    pub(crate) graph: Value,
}

impl From<StoredGraph> for GraphVersion {
    fn from(stored: StoredGraph) -> Self {
        GraphVersion {
            graph_id: stored.graph.id.clone(),
            version: stored.version,
            created_at: stored.created_at,
            graph: serde_json::to_value(&stored.graph).unwrap_or(Value::Null),
        }
    }
}

/// A version just stored, and what validating it warned about.
#[derive(Serialize, ToSchema)]
pub(crate) struct SavedGraph {
    /// The version stored, its fields at the top level of the answer.
    #[serde(flatten)]
    pub(crate) stored: GraphVersion,
    /// What is allowed but likely wrong in the graph (such as
    /// `cycle_without_exit`), each with its code, node, field and message as
    /// in `errors` of `validate`; empty when nothing.
    #[schema(value_type = Vec<Object>)]
    pub(crate) warnings: Vec<ValidationWarning>,
}

/// A graph in a list: its latest version.
#[derive(Serialize, ToSchema)]
pub(crate) struct GraphSummary {
    /// The graph's id.
    pub(crate) graph_id: String,
    /// Its name.
    pub(crate) name: String,
    /// Its latest version.
    pub(crate) version: u64,
    /// When that version was saved.
    pub(crate) created_at: i64,
    /// What starts it.
    #[schema(value_type = Object)]
    pub(crate) trigger: Value,
}

/// A page of the graphs of the organization.
#[derive(Serialize, ToSchema)]
pub(crate) struct GraphList {
    /// Their latest versions, by id.
    pub(crate) graphs: Vec<GraphSummary>,
    /// The `cursor` of the next page; null on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// Which page of graphs to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct GraphQuery {
    /// The next page: the `next_cursor` of the previous one.
    pub(crate) cursor: Option<String>,
    /// At most this many (100 by default, 1000 at most).
    pub(crate) limit: Option<usize>,
}

/// One version of a graph, in its list of versions.
#[derive(Serialize, ToSchema)]
pub(crate) struct VersionSummary {
    /// The version.
    pub(crate) version: u64,
    /// When it was saved (milliseconds since the epoch).
    pub(crate) created_at: i64,
    /// The graph's name in that version.
    pub(crate) name: String,
    /// How many nodes it has.
    pub(crate) nodes: u64,
    /// How many edges it has.
    pub(crate) edges: u64,
}

/// A page of a graph's versions.
#[derive(Serialize, ToSchema)]
pub(crate) struct VersionList {
    /// The graph.
    pub(crate) graph_id: String,
    /// Newest first.
    pub(crate) versions: Vec<VersionSummary>,
    /// The `before` of the next page; null on the last page.
    pub(crate) next_before: Option<u64>,
}

/// Which page of versions to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionsQuery {
    /// Versions older than this one: the `next_before` of the previous page
    /// (from the latest when absent).
    pub(crate) before: Option<u64>,
    /// At most this many (100 by default, 1000 at most).
    pub(crate) limit: Option<usize>,
}

/// What `validate` found.
#[derive(Serialize, ToSchema)]
pub(crate) struct ValidationReport {
    /// Whether the graph has no mistake (warnings or not).
    pub(crate) valid: bool,
    /// Every mistake, with its code, node and field.
    #[schema(value_type = Vec<Object>)]
    pub(crate) errors: Vec<ValidationError>,
    /// Every warning: what is allowed but likely wrong (such as
    /// `cycle_without_exit`), shaped like the errors.
    #[schema(value_type = Vec<Object>)]
    pub(crate) warnings: Vec<ValidationWarning>,
}

/// Which version to read.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VersionQuery {
    /// A version; the latest when absent.
    pub(crate) version: Option<u64>,
}

/// A graph's webhook secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretBody {
    /// The secret the webhook's sender signs requests with.
    pub(crate) secret: String,
}

/// Reads a graph from a request body: one that is not a JSON object at all
/// is a 422 saying so.
pub(crate) fn graph_from(value: Value) -> Result<Graph, ApiError> {
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_graph",
            "a graph is a JSON object",
        ));
    }
    Ok(Graph::from_value(value)?)
}

/// Reads a graph from a request body and checks it as the runner stores
/// it in `org` ([`Runner::check_graphs_in`]): a graph with mistakes is a 422
/// listing them. Gives the graph and its warnings.
async fn checked_graph(
    value: Value,
    runner: &Runner,
    org: &str,
) -> Result<(Graph, Vec<ValidationWarning>), ApiError> {
    let graph = graph_from(value)?;
    let found = checked(runner, org, &graph).await?;
    if !found.is_valid() {
        return Err(GraphError::Invalid(found.errors).into());
    }
    Ok((graph, found.warnings))
}

/// What storing `graph` in `org` would find ([`Runner::check_graphs_in`]).
async fn checked(runner: &Runner, org: &str, graph: &Graph) -> Result<Validation, ApiError> {
    let mut found = runner.check_graphs_in(org, std::slice::from_ref(graph)).await?;
    Ok(found.remove(0))
}

/// Creates a graph (version 1); a graph with warnings only is stored, and
/// the answer lists them.
#[utoipa::path(post, path = "/v1/graphs", tag = "graphs", operation_id = "createGraph", request_body(content = GraphSchema, description = "The graph"),
    responses((status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody), (status = 201, description = "Stored as version 1, with the graph's warnings", body = SavedGraph), (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 422, description = "The graph has mistakes", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(app): State<App>,
    Writer(org): Writer,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let (graph, warnings) = checked_graph(body, &app.runner, &org).await?;
    match app.runner.store().graph(&org, &graph.id, None).await {
        Ok(_) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "graph_exists",
                format!(
                    "graph {} exists already: PUT /v1/graphs/{} stores a new version",
                    graph.id, graph.id
                ),
            ));
        }
        Err(StoreError::NotFound(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let stored = app.runner.save_graph_in(&org, &graph).await?.into();
    Ok((StatusCode::CREATED, Json(SavedGraph { stored, warnings })).into_response())
}

/// Stores a new version of a graph (or its first), as `createGraph` does.
#[utoipa::path(put, path = "/v1/graphs/{graph_id}", tag = "graphs", operation_id = "putGraphVersion", request_body(content = GraphSchema, description = "The graph"),
    params(("graph_id" = String, Path, description = "The graph's id, as in the body")),
    responses((status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody), (status = 200, description = "Stored as a new version, with the graph's warnings", body = SavedGraph), (status = 422, description = "The graph has mistakes", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn put_version(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams(graph_id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<SavedGraph>, ApiError> {
    let (graph, warnings) = checked_graph(body, &app.runner, &org).await?;
    if graph.id != graph_id {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "id_mismatch",
            format!("the body is graph {:?}, the path names {graph_id:?}", graph.id),
        ));
    }
    let stored = app.runner.save_graph_in(&org, &graph).await?.into();
    Ok(Json(SavedGraph { stored, warnings }))
}

/// The organization's graphs, latest versions, by id, a page at a time: the
/// answer's `next_cursor`, passed as `cursor`, gives the next page.
#[utoipa::path(get, path = "/v1/graphs", tag = "graphs", operation_id = "listGraphs", params(GraphQuery),
    responses((status = 200, description = "A page of graphs", body = GraphList), (status = 400, description = "A bad cursor", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(app): State<App>,
    Org(org): Org,
    QueryParams(query): QueryParams<GraphQuery>,
) -> Result<Json<GraphList>, ApiError> {
    let after = cursor(query.cursor.as_deref(), GraphCursor::decode)?;
    let page = app.runner.store().graph_page(&org, after.as_ref(), page_size(query.limit)?).await?;
    let graphs = page
        .items
        .into_iter()
        .map(|stored| GraphSummary {
            trigger: serde_json::to_value(&stored.graph.trigger).unwrap_or(Value::Null),
            graph_id: stored.graph.id,
            name: stored.graph.name,
            version: stored.version,
            created_at: stored.created_at,
        })
        .collect();
    Ok(Json(GraphList { graphs, next_cursor: page.next_cursor }))
}

/// One version of a graph (the latest by default).
#[utoipa::path(get, path = "/v1/graphs/{graph_id}", tag = "graphs", operation_id = "getGraph",
    params(("graph_id" = String, Path, description = "The graph's id"), VersionQuery),
    responses((status = 200, description = "The version", body = GraphVersion), (status = 404, description = "No such graph or version", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(app): State<App>,
    Org(org): Org,
    PathParams(graph_id): PathParams<String>,
    QueryParams(query): QueryParams<VersionQuery>,
) -> Result<Json<GraphVersion>, ApiError> {
    Ok(Json(app.runner.store().graph(&org, &graph_id, query.version).await?.into()))
}

/// A graph's versions, newest first, a page at a time: the answer's
/// `next_before`, passed as `before`, gives the next page.
#[utoipa::path(get, path = "/v1/graphs/{graph_id}/versions", tag = "graphs", operation_id = "listGraphVersions",
    params(("graph_id" = String, Path, description = "The graph's id"), VersionsQuery),
    responses((status = 200, description = "A page of versions", body = VersionList), (status = 404, description = "No such graph", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn versions(
    State(app): State<App>,
    Org(org): Org,
    PathParams(graph_id): PathParams<String>,
    QueryParams(query): QueryParams<VersionsQuery>,
) -> Result<Json<VersionList>, ApiError> {
    let size = page_size(query.limit)?;
    let store = app.runner.store();
    let mut found = store.graph_versions(&org, &graph_id, query.before, size.saturating_add(1)).await?;
    if found.is_empty() {
        // A graph the organization lacks is a 404, on any page.
        store.latest_graph_version(&org, &graph_id).await?;
    }
    let more = found.len() > size;
    found.truncate(size);
    let next_before = if more { found.last().map(|info| info.version) } else { None };
    let versions = found
        .into_iter()
        .map(|info| VersionSummary {
            version: info.version,
            created_at: info.created_at,
            nodes: info.nodes,
            edges: info.edges,
            name: info.name,
        })
        .collect();
    Ok(Json(VersionList { graph_id, versions, next_before }))
}

/// Deletes a version of a graph that no run uses; the latest is kept
/// (version numbers are never given twice).
#[utoipa::path(delete, path = "/v1/graphs/{graph_id}/versions/{version}", tag = "graphs", operation_id = "deleteGraphVersion",
    params(("graph_id" = String, Path, description = "The graph's id"), ("version" = u64, Path, description = "The version")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "A run uses it (`conflict`)", body = ErrorBody),
        (status = 422, description = "It is the latest (`invalid_request`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_version(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams((graph_id, version)): PathParams<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    app.runner.store().delete_graph_version(&org, &graph_id, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a graph without storing it, as creating it would: every mistake
/// with its node and field, and apart from them every warning.
#[utoipa::path(post, path = "/v1/graphs/validate", tag = "graphs", operation_id = "validateGraph", request_body(content = GraphSchema, description = "The graph"),
    responses((status = 200, description = "Every mistake, none when valid, and every warning", body = ValidationReport), (status = 422, description = "Not a graph at all", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn validate(
    State(app): State<App>,
    Org(org): Org,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<ValidationReport>, ApiError> {
    let found = checked(&app.runner, &org, &graph_from(body)?).await?;
    Ok(Json(ValidationReport { valid: found.is_valid(), errors: found.errors, warnings: found.warnings }))
}

/// Sets the secret that signs the graph's webhook requests. It is stored
/// apart from the graph and never returned.
#[utoipa::path(put, path = "/v1/graphs/{graph_id}/webhook-secret", tag = "graphs", operation_id = "setWebhookSecret", request_body = SecretBody,
    params(("graph_id" = String, Path, description = "The graph's id")),
    responses((status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody), (status = 204, description = "Set"), (status = 404, description = "No such graph", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn set_secret(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams(graph_id): PathParams<String>,
    JsonBody(body): JsonBody<SecretBody>,
) -> Result<StatusCode, ApiError> {
    if body.secret.is_empty() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "the secret is empty"));
    }
    app.runner.store().graph(&org, &graph_id, None).await?;
    app.runner.store().set_secret(&org, &graph_id, WEBHOOK_SECRET, Some(&body.secret)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the graph's webhook secret: its webhook takes no delivery again
/// (unless the server takes unsigned ones).
#[utoipa::path(delete, path = "/v1/graphs/{graph_id}/webhook-secret", tag = "graphs", operation_id = "deleteWebhookSecret",
    params(("graph_id" = String, Path, description = "The graph's id")),
    responses((status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody), (status = 204, description = "Removed"), (status = 404, description = "No such graph", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_secret(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams(graph_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    app.runner.store().graph(&org, &graph_id, None).await?;
    app.runner.store().set_secret(&org, &graph_id, WEBHOOK_SECRET, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
