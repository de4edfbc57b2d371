//! Runs: start, get, list, transcript pages, cancel, answer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roomkit_graph_runner::RunnerError;
use roomkit_graph_store::{
    CursorError, Entry, ParentLink, RunCursor, RunFilter, RunKey, RunRecord, RunStatus, StoreError,
    TranscriptEvent, TriggerField,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::auth::{Org, Writer};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, OptionalJsonBody, PathParams, QueryParams};

/// The most runs or events one page holds.
const MAX_PAGE: usize = 1000;

/// A run: which graph it runs and where it stands.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunView {
    /// The run's id, which is also its room's id.
    pub(crate) run_id: String,
    /// The graph it runs.
    pub(crate) graph_id: String,
    /// The graph version it pinned.
    pub(crate) graph_version: u64,
    /// `running`, `waiting`, `completed`, `failed` or `cancelled`.
    pub(crate) status: String,
    /// The node it is on.
    pub(crate) current_node_id: Option<String>,
    /// The children of the parallel node it is on that still wait for an
    /// answer, each answered by its own node id, in node order; left out when
    /// none wait.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) pending: Vec<String>,
    /// How many steps it has executed (its step limit counts these).
    pub(crate) steps: u64,
    /// Why it failed.
    pub(crate) error: Option<String>,
    /// When the timer it is parked on is due (a delay node).
    pub(crate) wake_at: Option<i64>,
    /// The sequence number of its last transcript event.
    pub(crate) last_seq: u64,
    /// When it started (milliseconds since the epoch).
    pub(crate) created_at: i64,
    /// When it last changed.
    pub(crate) updated_at: i64,
    /// For a child run: the run and the subgraph node that started it; left
    /// out for other runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<RunLink>,
    /// Its child runs, oldest first, each with its parent's node and where it
    /// stands (given by `getRun`; left out when it has none, and in lists).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) children: Vec<ChildRun>,
    /// For a fork: the run and entry it went on from (given by `getRun`;
    /// left out for other runs, and in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) forked_from: Option<ForkOrigin>,
}

/// The run and entry a fork went on from.
#[derive(Serialize, ToSchema)]
pub(crate) struct ForkOrigin {
    /// The run forked from.
    pub(crate) run_id: String,
    /// Its entry the fork went on from.
    pub(crate) seq: u64,
}

/// A child run's link to its parent.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunLink {
    /// The parent run.
    pub(crate) run_id: String,
    /// Its node: a subgraph node, or a node run in a room of its own (an
    /// orchestration), which the child runs itself.
    pub(crate) node_id: String,
    /// Whether the child runs that node itself (a room), rather than a graph
    /// of its own.
    pub(crate) runs_node: bool,
}

impl From<&ParentLink> for RunLink {
    fn from(link: &ParentLink) -> Self {
        RunLink { run_id: link.run_id.clone(), node_id: link.node_id.clone(), runs_node: link.runs_node }
    }
}

/// One of a run's child runs.
#[derive(Serialize, ToSchema)]
pub(crate) struct ChildRun {
    /// The child run.
    pub(crate) run_id: String,
    /// The parent's node that started it: a subgraph node, or a node run
    /// in a room of its own (an orchestration).
    pub(crate) node_id: String,
    /// Whether it runs that node itself (a room), rather than a graph of its own.
    pub(crate) runs_node: bool,
    /// The graph it runs.
    pub(crate) graph_id: String,
    /// `running`, `waiting`, `completed`, `failed` or `cancelled`.
    pub(crate) status: String,
    /// Where it waits, while it waits: the node it is on, or the children
    /// of the parallel node it is on that still wait (its own child run's
    /// wait is its child's to say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) waiting_on: Vec<String>,
}

impl From<RunRecord> for RunView {
    fn from(run: RunRecord) -> Self {
        RunView {
            run_id: run.run_id,
            graph_id: run.graph_id,
            graph_version: run.graph_version,
            status: run.status.as_str().to_owned(),
            current_node_id: run.current_node_id,
            pending: run.pending,
            steps: run.steps,
            error: run.error,
            wake_at: run.wake_at,
            last_seq: run.last_seq,
            created_at: run.created_at,
            updated_at: run.updated_at,
            parent: run.parent.as_ref().map(RunLink::from),
            children: Vec::new(),
            forked_from: None,
        }
    }
}

/// A page of runs.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunList {
    /// Newest first (runs started in the same millisecond by id, greatest first).
    pub(crate) runs: Vec<RunView>,
    /// The `cursor` of the next page; null on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// Which runs to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunQuery {
    /// Only runs of this graph.
    pub(crate) graph_id: Option<String>,
    /// Only runs in this status.
    pub(crate) status: Option<String>,
    /// Only runs started at or after this time (milliseconds since the epoch).
    pub(crate) created_from: Option<i64>,
    /// Only runs started before this time.
    pub(crate) created_until: Option<i64>,
    /// Only runs whose id starts with this.
    pub(crate) run_id_prefix: Option<String>,
    /// Only runs whose trigger data holds `trigger_value` at this dotted
    /// path (`customer`, `order.region`): its keys letters, digits, `_` and `-`.
    pub(crate) trigger_field: Option<String>,
    /// The value `trigger_field` holds: read as JSON when it is a string,
    /// number, `true`, `false` or `null` written as JSON (`3`, `"3"`), else as
    /// the string it is (`acme`).
    pub(crate) trigger_value: Option<String>,
    /// The next page: the `next_cursor` of the previous one (with the same filters).
    pub(crate) cursor: Option<String>,
    /// At most this many (100 by default, 1000 at most).
    pub(crate) limit: Option<usize>,
}

/// Which part of a transcript to read.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// Events after this sequence number (0: from the start).
    pub(crate) after: Option<u64>,
    /// At most this many (100 by default, 1000 at most).
    pub(crate) limit: Option<usize>,
}

/// Which entry of a run to look at.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateQuery {
    /// The entry's sequence number.
    pub(crate) at: u64,
}

/// A run as it stood at one of its transcript entries: as the commit that
/// appended the entry left it.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunStateView {
    /// The run.
    pub(crate) run_id: String,
    /// The entry asked about.
    pub(crate) seq: u64,
    /// The last entry of the commit that appended it.
    pub(crate) commit_seq: u64,
    /// `running`, `waiting`, `completed`, `failed` or `cancelled`, then.
    pub(crate) status: String,
    /// The node it was on.
    pub(crate) current_node_id: Option<String>,
    /// The node it had last left along an edge.
    pub(crate) previous_node_id: Option<String>,
    /// The children of the parallel node it waited on that still waited.
    pub(crate) pending: Vec<String>,
    /// How many steps it had taken.
    pub(crate) steps: u64,
    /// When the timer it rested on was due (a delay node), if it did.
    pub(crate) wake_at: Option<i64>,
    /// Its context then: `{node_id: {"output": ...}}`.
    #[schema(value_type = Object)]
    pub(crate) context: Value,
}

/// Where to fork a run from.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForkBody {
    /// The entry to go on from (its sequence number).
    pub(crate) at: u64,
    /// An answer for the node the run waited on there: the fork goes on as it says.
    #[schema(value_type = Option<Object>)]
    pub(crate) data: Option<Value>,
    /// Who answers.
    pub(crate) by: Option<String>,
}

/// A page of a run's transcript.
#[derive(Serialize, ToSchema)]
pub(crate) struct TranscriptPage {
    /// The events, in order.
    #[schema(value_type = Vec<Object>)]
    pub(crate) events: Vec<TranscriptEvent>,
    /// The `after` of the next page, when this one was full.
    pub(crate) next_after: Option<u64>,
}

/// An answer to the node a run waits on.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerBody {
    /// The node the run waits on; while children of a parallel node wait
    /// (the run's `pending`), one of those children.
    pub(crate) node_id: String,
    /// The answer: an object, with an `action` among the node's actions when it declares some.
    #[schema(value_type = Object)]
    pub(crate) data: Value,
    /// Who answers.
    pub(crate) by: Option<String>,
}

/// Why a run is cancelled.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    /// Why.
    pub(crate) reason: Option<String>,
}

/// The run `run_id` if it belongs to `org`; 404 otherwise, the same as for a
/// run that does not exist.
pub(crate) async fn owned_run(app: &App, org: &str, run_id: &str) -> Result<RunRecord, ApiError> {
    match app.runner.store().run(run_id).await {
        Ok(run) if run.org == org => Ok(run),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(ApiError::not_found(format!("run {run_id}"))),
        Err(error) => Err(error.into()),
    }
}

/// Reads a `cursor` query parameter with `decode`: 400 when it is not one a
/// list gave.
pub(crate) fn cursor<T>(
    text: Option<&str>,
    decode: impl Fn(&str) -> Result<T, CursorError>,
) -> Result<Option<T>, ApiError> {
    text.map(|text| decode(text).map_err(|error| ApiError::bad_request("bad_cursor", error.to_string())))
        .transpose()
}

/// The size of a page: `limit`, 100 by default, at most [`MAX_PAGE`]; 0 is refused.
pub(crate) fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(100) {
        0 => Err(ApiError::bad_request("bad_query", "limit must be at least 1")),
        limit => Ok(limit.min(MAX_PAGE)),
    }
}

/// Starts a run of the latest version of a graph; the body is the trigger
/// data (`{}` when empty). With an `Idempotency-Key` header, repeating the
/// request gives the run the first one started (200 instead of 201); the
/// same key with another body (as JSON) is refused with 422.
#[utoipa::path(post, path = "/v1/graphs/{graph_id}/runs", tag = "runs", operation_id = "startRun",
    request_body(content = Object, description = "The trigger data"),
    params(("graph_id" = String, Path, description = "The graph"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes repeating the request safe")),
    responses((status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody), (status = 201, description = "Started", body = RunView), (status = 200, description = "Started before with this key", body = RunView),
        (status = 404, description = "No such graph", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with another body (`idempotency_key_reused`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn start(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams(graph_id): PathParams<String>,
    headers: HeaderMap,
    OptionalJsonBody(trigger): OptionalJsonBody<Value>,
) -> Result<Response, ApiError> {
    let trigger = trigger.unwrap_or_else(|| json!({}));
    let key = match headers.get("idempotency-key") {
        Some(value) => {
            let value = value.to_str().ok().filter(|v| !v.is_empty() && v.len() <= 255).ok_or_else(|| {
                ApiError::bad_request(
                    "bad_header",
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                )
            })?;
            let key = RunKey::new(format!("request:{org}:{graph_id}:{value}"));
            Some(key.with_request_hash(request_hash(&graph_id, &trigger)))
        }
        None => None,
    };
    match app.runner.start_in(&org, &graph_id, trigger, key).await {
        Ok(run) => Ok((StatusCode::CREATED, Json(RunView::from(run))).into_response()),
        Err(RunnerError::Store(StoreError::Duplicate { run_id, same_request: true, .. })) => {
            Ok((StatusCode::OK, Json(RunView::from(owned_run(&app, &org, &run_id).await?))).into_response())
        }
        Err(RunnerError::Store(StoreError::Duplicate { run_id, same_request: false, .. })) => {
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!(
                    "this Idempotency-Key started run {run_id} with another body: \
                     a new request needs a new key"
                ),
            ))
        }
        Err(error) => Err(error.into()),
    }
}

/// The hash of a request to start a run: its graph and its trigger data as
/// JSON with sorted keys (so the same data spelled with other spaces, or its
/// keys in another order, is the same request).
fn request_hash(graph_id: &str, trigger: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(graph_id.as_bytes());
    hash.update([0]);
    hash_canonical(&mut hash, trigger);
    hex::encode(hash.finalize())
}

/// Feeds `value` to `hash` as compact JSON with every object's keys sorted.
/// (The body passed the depth limit, so the recursion is bounded.)
fn hash_canonical(hash: &mut Sha256, value: &Value) {
    match value {
        Value::Array(items) => {
            hash.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    hash.update(b",");
                }
                hash_canonical(hash, item);
            }
            hash.update(b"]");
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            hash.update(b"{");
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    hash.update(b",");
                }
                hash.update(Value::from(key.as_str()).to_string().as_bytes());
                hash.update(b":");
                hash_canonical(hash, item);
            }
            hash.update(b"}");
        }
        scalar => hash.update(scalar.to_string().as_bytes()),
    }
}

/// The organization's runs, newest first, a page at a time: the answer's
/// `next_cursor`, passed as `cursor`, gives the next page (every run that
/// existed at the first page once, whatever starts meanwhile).
#[utoipa::path(get, path = "/v1/runs", tag = "runs", operation_id = "listRuns", params(RunQuery),
    responses((status = 200, description = "A page of runs", body = RunList), (status = 400, description = "A bad filter or cursor", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(app): State<App>,
    Org(org): Org,
    QueryParams(query): QueryParams<RunQuery>,
) -> Result<Json<RunList>, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "bad_query",
                format!("unknown status {text:?}: one of {}", RunStatus::NAMES),
            )
        })?),
    };
    let trigger = match (query.trigger_field.as_deref(), query.trigger_value) {
        (None, None) => None,
        (Some(path), Some(value)) => {
            let value = match serde_json::from_str::<Value>(&value) {
                Ok(json) if !json.is_object() && !json.is_array() => json,
                _ => Value::String(value),
            };
            Some(
                TriggerField::new(path, value)
                    .map_err(|reason| ApiError::bad_request("bad_query", reason))?,
            )
        }
        _ => {
            return Err(ApiError::bad_request(
                "bad_query",
                "trigger_field and trigger_value go together: the field's path and the value it holds",
            ));
        }
    };
    let filter = RunFilter {
        parent_run_id: None,
        org: Some(org),
        graph_id: query.graph_id,
        status,
        created_from: query.created_from,
        created_until: query.created_until,
        due_by: None,
        run_id_prefix: query.run_id_prefix.filter(|prefix| !prefix.is_empty()),
        trigger,
        after: cursor(query.cursor.as_deref(), RunCursor::decode)?,
        limit: None,
    };
    let page = app.runner.store().run_page(&filter, page_size(query.limit)?).await?;
    let runs = page.items.into_iter().map(RunView::from).collect();
    Ok(Json(RunList { runs, next_cursor: page.next_cursor }))
}

/// A run.
#[utoipa::path(get, path = "/v1/runs/{run_id}", tag = "runs", operation_id = "getRun",
    params(("run_id" = String, Path, description = "The run")),
    responses((status = 200, description = "The run, with its parent and child runs", body = RunView), (status = 404, description = "No such run", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(app): State<App>,
    Org(org): Org,
    PathParams(run_id): PathParams<String>,
) -> Result<Json<RunView>, ApiError> {
    let mut view = RunView::from(owned_run(&app, &org, &run_id).await?);
    let started = app.runner.store().transcript(&run_id, 0, 1).await?;
    if let Some(Entry::RunStarted { forked_from: Some(origin), .. }) =
        started.first().map(|event| &event.entry)
    {
        view.forked_from = Some(ForkOrigin { run_id: origin.run_id.clone(), seq: origin.seq });
    }
    view.children = app
        .runner
        .children(&run_id)
        .await?
        .into_iter()
        .map(|child| ChildRun {
            waiting_on: child.waiting_on().into_iter().map(str::to_owned).collect(),
            runs_node: child.parent.as_ref().is_some_and(|link| link.runs_node),
            node_id: child.parent.map(|link| link.node_id).unwrap_or_default(),
            run_id: child.run_id,
            graph_id: child.graph_id,
            status: child.status.as_str().to_owned(),
        })
        .collect();
    Ok(Json(view))
}

/// A page of a run's transcript.
#[utoipa::path(get, path = "/v1/runs/{run_id}/transcript", tag = "runs", operation_id = "getTranscript",
    params(("run_id" = String, Path, description = "The run"), PageQuery),
    responses((status = 200, description = "A page of events", body = TranscriptPage), (status = 404, description = "No such run", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn transcript(
    State(app): State<App>,
    Org(org): Org,
    PathParams(run_id): PathParams<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<TranscriptPage>, ApiError> {
    owned_run(&app, &org, &run_id).await?;
    let limit = page_size(query.limit)?;
    let events = app.runner.store().transcript(&run_id, query.after.unwrap_or(0), limit).await?;
    let next_after = (events.len() == limit).then(|| events.last().map_or(0, |event| event.seq));
    Ok(Json(TranscriptPage { events, next_after }))
}

/// The run as it stood at one of its transcript entries: its status, node
/// and context as committed with the entry.
#[utoipa::path(get, path = "/v1/runs/{run_id}/state", tag = "runs", operation_id = "getRunState",
    params(("run_id" = String, Path, description = "The run"), StateQuery),
    responses((status = 200, description = "The run at that entry", body = RunStateView), (status = 404, description = "No such run", body = ErrorBody),
        (status = 422, description = "No such entry, or where the run stood there was not kept", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn state(
    State(app): State<App>,
    Org(org): Org,
    PathParams(run_id): PathParams<String>,
    QueryParams(query): QueryParams<StateQuery>,
) -> Result<Json<RunStateView>, ApiError> {
    owned_run(&app, &org, &run_id).await?;
    let at = app.runner.store().run_at(&run_id, query.at).await?;
    Ok(Json(RunStateView {
        run_id,
        seq: at.seq,
        commit_seq: at.commit_seq,
        status: at.position.status.as_str().to_owned(),
        current_node_id: at.position.current_node_id,
        previous_node_id: at.position.previous_node_id,
        pending: at.position.pending,
        steps: at.position.steps,
        wake_at: at.position.wake_at,
        context: Value::Object(at.context),
    }))
}

/// Starts a new run of the run's graph version from where the run stood at
/// one of its entries (answering the node it waited on there, with `data`);
/// the run forked from is never changed.
#[utoipa::path(post, path = "/v1/runs/{run_id}/fork", tag = "runs", operation_id = "forkRun", request_body = ForkBody,
    params(("run_id" = String, Path, description = "The run to fork")),
    responses((status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody), (status = 201, description = "The fork, under way", body = RunView), (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "No run can go on from that entry", body = ErrorBody),
        (status = 422, description = "No such entry, or the answer does not fit the node", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn fork(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams(run_id): PathParams<String>,
    JsonBody(body): JsonBody<ForkBody>,
) -> Result<Response, ApiError> {
    owned_run(&app, &org, &run_id).await?;
    let fork = app.runner.fork(&run_id, body.at, body.data, body.by.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(RunView::from(fork))).into_response())
}

/// Cancels a run that is not over.
#[utoipa::path(post, path = "/v1/runs/{run_id}/cancel", tag = "runs", operation_id = "cancelRun", request_body(content = Option<CancelBody>),
    params(("run_id" = String, Path, description = "The run")),
    responses((status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody), (status = 200, description = "Cancelled", body = RunView), (status = 404, description = "No such run", body = ErrorBody), (status = 409, description = "Over already", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn cancel(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams(run_id): PathParams<String>,
    OptionalJsonBody(body): OptionalJsonBody<CancelBody>,
) -> Result<Json<RunView>, ApiError> {
    owned_run(&app, &org, &run_id).await?;
    let reason = body.and_then(|body| body.reason);
    Ok(Json(app.runner.cancel(&run_id, reason.as_deref()).await?.into()))
}

/// How many runs a deletion took.
#[derive(Serialize, ToSchema)]
pub(crate) struct Deleted {
    /// The run and its child runs.
    deleted_runs: usize,
}

/// Deletes a finished run with everything of it: its transcript, its child
/// runs, its hook deliveries, its key. A run still running or waiting is
/// refused (cancel it first), and so is a child run on its own (it goes with
/// its parent).
#[utoipa::path(delete, path = "/v1/runs/{run_id}", tag = "runs", operation_id = "deleteRun",
    params(("run_id" = String, Path, description = "The run")),
    responses((status = 200, description = "Deleted", body = Deleted),
        (status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Running or waiting, or a child run (`conflict`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams(run_id): PathParams<String>,
) -> Result<Json<Deleted>, ApiError> {
    owned_run(&app, &org, &run_id).await?;
    Ok(Json(Deleted { deleted_runs: app.runner.store().delete_run(&run_id).await? }))
}

/// Answers the node a run waits on, and the run goes on.
#[utoipa::path(post, path = "/v1/runs/{run_id}/answer", tag = "runs", operation_id = "answerRun", request_body = AnswerBody,
    params(("run_id" = String, Path, description = "The run")),
    responses((status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody), (status = 200, description = "Answered: the run goes on", body = RunView), (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Not waiting there", body = ErrorBody),
        (status = 422, description = "The answer does not fit the node", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn answer(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams(run_id): PathParams<String>,
    JsonBody(body): JsonBody<AnswerBody>,
) -> Result<Json<RunView>, ApiError> {
    owned_run(&app, &org, &run_id).await?;
    let run = app.runner.answer(&run_id, &body.node_id, body.data, body.by.as_deref()).await?;
    Ok(Json(run.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_trigger_with_its_keys_in_another_order_is_the_same_request() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "z"}"#).unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"a": "z", "b": [1, {"x": 1, "y": 2}]}"#).unwrap_or_default();
        let c: Value = serde_json::from_str(r#"{"a": "z", "b": [{"x": 1, "y": 2}, 1]}"#).unwrap_or_default();
        assert_eq!(request_hash("g", &a), request_hash("g", &b));
        assert_ne!(request_hash("g", &a), request_hash("g", &c));
        assert_ne!(request_hash("g", &a), request_hash("h", &a));
    }
}
