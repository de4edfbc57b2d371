//! Run-event hooks over HTTP: an organization's subscriptions made, listed
//! and removed, and their deliveries with every attempt.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use roomkit_graph_hooks::new_hook;
use roomkit_graph_store::{
    DeliveryCursor, DeliveryFilter, DeliveryStatus, Hook, HookAttempt, HookDelivery, HookEvent, Millis,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::auth::Writer;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::runs::{cursor, page_size};

/// A hook to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewHookBody {
    /// Where the events go: an http or https URL.
    url: String,
    /// The events it hears: run.completed, run.failed, run.waiting, run.cancelled, node.failed.
    events: Vec<String>,
    /// Only the runs of this graph, when given.
    #[serde(default)]
    graph_id: Option<String>,
}

/// A hook, without its secret.
#[derive(Serialize, ToSchema)]
pub(crate) struct HookView {
    /// Names the hook.
    hook_id: String,
    /// Where the events go.
    url: String,
    /// The events it hears.
    #[schema(value_type = Vec<String>)]
    events: Vec<HookEvent>,
    /// Only the runs of this graph, when set.
    graph_id: Option<String>,
    /// When it was made (ms since the Unix epoch).
    created_at: Millis,
}

impl From<Hook> for HookView {
    fn from(hook: Hook) -> Self {
        HookView {
            hook_id: hook.hook_id,
            url: hook.url,
            events: hook.events,
            graph_id: hook.graph_id,
            created_at: hook.created_at,
        }
    }
}

/// A hook just made, with its secret: shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct MadeHook {
    #[serde(flatten)]
    hook: HookView,
    /// The key of its deliveries' signatures (`X-Roomkit-Signature`:
    /// `sha256=` and the hex HMAC-SHA256 of `"{X-Roomkit-Timestamp}.{body}"`).
    secret: String,
}

/// The organization's hooks.
#[derive(Serialize, ToSchema)]
pub(crate) struct HookList {
    /// Oldest first.
    hooks: Vec<HookView>,
}

/// One attempt at a delivery.
#[derive(Serialize, ToSchema)]
pub(crate) struct AttemptView {
    /// When (ms since the Unix epoch).
    at: Millis,
    /// The receiver's HTTP status, when it answered.
    status_code: Option<u16>,
    /// Why it did not count, when it did not.
    error: Option<String>,
    /// How long it took, in ms.
    duration_ms: u64,
}

impl From<HookAttempt> for AttemptView {
    fn from(attempt: HookAttempt) -> Self {
        AttemptView {
            at: attempt.at,
            status_code: attempt.status_code,
            error: attempt.error,
            duration_ms: attempt.duration_ms,
        }
    }
}

/// A delivery of an event to a hook.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    /// The same on every attempt: receivers drop the ones they have seen.
    delivery_id: String,
    /// The hook.
    hook_id: String,
    /// The event.
    #[schema(value_type = String)]
    event: HookEvent,
    /// The run.
    run_id: String,
    /// The transcript entry that is the event.
    seq: u64,
    /// pending, delivered or failed.
    #[schema(value_type = String)]
    status: DeliveryStatus,
    /// When the event was committed (ms since the Unix epoch).
    created_at: Millis,
    /// When it is tried next, while pending.
    next_attempt_at: Option<Millis>,
    /// The body POSTed.
    #[schema(value_type = Object)]
    body: Value,
    /// Every attempt, oldest first.
    attempts: Vec<AttemptView>,
}

impl From<HookDelivery> for DeliveryView {
    fn from(delivery: HookDelivery) -> Self {
        let body = serde_json::from_str(&delivery.body()).unwrap_or(Value::Null);
        DeliveryView {
            body,
            delivery_id: delivery.delivery_id,
            hook_id: delivery.hook_id,
            event: delivery.event,
            run_id: delivery.run_id,
            seq: delivery.seq,
            status: delivery.status,
            created_at: delivery.created_at,
            next_attempt_at: delivery.next_attempt_at,
            attempts: delivery.attempts.into_iter().map(AttemptView::from).collect(),
        }
    }
}

/// A page of deliveries.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryList {
    /// Newest first.
    deliveries: Vec<DeliveryView>,
    /// The cursor of the next page, when there is one.
    next_cursor: Option<String>,
}

/// Which deliveries to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveriesQuery {
    /// Only this hook's.
    hook_id: Option<String>,
    /// Only this run's.
    run_id: Option<String>,
    /// Only those pending, delivered or failed.
    status: Option<String>,
    /// The next_cursor of the previous page.
    cursor: Option<String>,
    /// At most this many (100 by default, 1,000 at most).
    limit: Option<usize>,
}

/// Makes a hook: each event it hears, of the organization's runs (of one
/// graph when `graph_id` is given), is POSTed to its URL, signed with its
/// secret, which this answer shows once.
#[utoipa::path(post, path = "/v1/hooks", tag = "hooks", operation_id = "createHook", request_body = NewHookBody,
    responses((status = 201, description = "Made, with its secret", body = MadeHook),
        (status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody),
        (status = 404, description = "No such graph", body = ErrorBody),
        (status = 422, description = "A URL that is not http(s), or an unknown event (`invalid_hook`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(app): State<App>,
    Writer(org): Writer,
    JsonBody(body): JsonBody<NewHookBody>,
) -> Result<(StatusCode, Json<MadeHook>), ApiError> {
    let events: Vec<&str> = body.events.iter().map(String::as_str).collect();
    let hook = new_hook(&org, &body.url, &events, body.graph_id.as_deref()).map_err(|error| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_hook", error.to_string())
    })?;
    if let Some(graph_id) = &hook.graph_id {
        app.runner.store().latest_graph_version(&org, graph_id).await?;
    }
    app.runner.store().add_hook(&hook).await?;
    let secret = hook.secret.clone();
    Ok((StatusCode::CREATED, Json(MadeHook { hook: hook.into(), secret })))
}

/// The organization's hooks, oldest first, without their secrets. Their
/// URLs may hold credentials: read-only tokens do not see them.
#[utoipa::path(get, path = "/v1/hooks", tag = "hooks", operation_id = "listHooks",
    responses((status = 200, description = "The hooks", body = HookList),
        (status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(State(app): State<App>, Writer(org): Writer) -> Result<Json<HookList>, ApiError> {
    let hooks = app.runner.store().hooks(&org).await?;
    Ok(Json(HookList { hooks: hooks.into_iter().map(HookView::from).collect() }))
}

/// Removes a hook: it hears nothing more, and its pending deliveries fail
/// (they stay listed).
#[utoipa::path(delete, path = "/v1/hooks/{hook_id}", tag = "hooks", operation_id = "deleteHook",
    params(("hook_id" = String, Path, description = "The hook")),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody),
        (status = 404, description = "No such hook", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn remove(
    State(app): State<App>,
    Writer(org): Writer,
    PathParams(hook_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    if app.runner.store().remove_hook(&org, &hook_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("hook {hook_id}")))
    }
}

/// The deliveries of the organization's hooks, newest first, each with its
/// body and every attempt, a page at a time (not to read-only tokens).
#[utoipa::path(get, path = "/v1/hooks/deliveries", tag = "hooks", operation_id = "listHookDeliveries",
    params(DeliveriesQuery),
    responses((status = 200, description = "A page of deliveries", body = DeliveryList),
        (status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody),
        (status = 400, description = "A bad status or cursor", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn deliveries(
    State(app): State<App>,
    Writer(org): Writer,
    QueryParams(query): QueryParams<DeliveriesQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let size = page_size(query.limit)?;
    let status = query
        .status
        .map(|status| {
            DeliveryStatus::parse(&status).ok_or_else(|| {
                ApiError::bad_request(
                    "bad_query",
                    format!("status {status:?} is not pending, delivered or failed"),
                )
            })
        })
        .transpose()?;
    let filter = DeliveryFilter {
        hook_id: query.hook_id,
        run_id: query.run_id,
        status,
        before: cursor(query.cursor.as_deref(), DeliveryCursor::decode)?,
    };
    let mut found = app.runner.store().deliveries(&org, &filter, size.saturating_add(1)).await?;
    let more = found.len() > size;
    found.truncate(size);
    let next_cursor = found.last().filter(|_| more).map(|last| last.cursor().encode());
    Ok(Json(DeliveryList { deliveries: found.into_iter().map(DeliveryView::from).collect(), next_cursor }))
}
