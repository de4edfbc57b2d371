//! Triggers over HTTP: a webhook endpoint per graph, and events fired by name.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roomkit_graph::Trigger;
use roomkit_graph_runner::RunnerError;
use roomkit_graph_store::{RunKey, StoreError, now_millis};
use roomkit_graph_triggers::{
    Delivery, ROOMKIT_SIGNATURE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, fire_event, verify_delivery,
};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::App;
use crate::auth::Writer;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{OptionalJsonBody, parse};
use crate::graphs::WEBHOOK_SECRET;
use crate::runs::{RunView, owned_run};

/// The runs an event started.
#[derive(Serialize, ToSchema)]
pub(crate) struct StartedRuns {
    /// One per graph listening to the event.
    pub(crate) runs: Vec<RunView>,
}

/// How long a webhook delivery is remembered: a replay of it within this
/// time starts no second run.
const REPLAY_WINDOW_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// A webhook delivery: starts a run of the graph with the request body as
/// trigger data. No bearer token: the request must be signed with the graph's
/// webhook secret, with our scheme (`X-Roomkit-Timestamp` and
/// `X-Roomkit-Signature: sha256=<HMAC of "{timestamp}.{body}">`, within 5
/// minutes of the server's clock) or GitHub's (`X-Hub-Signature-256:
/// sha256=<HMAC of the body>`). A delivery whose signed content was seen in
/// the last 24 hours starts no second run: it answers the first one (200). A
/// graph without a secret takes no delivery (401) unless the server runs
/// with `--allow-unsigned-webhooks`; unsigned deliveries are never taken for
/// one another.
#[utoipa::path(post, path = "/v1/hooks/{org}/{graph_id}", tag = "triggers", operation_id = "deliverWebhook",
    request_body(content = Object, description = "The trigger data"),
    params(("org" = String, Path, description = "The graph's organization"), ("graph_id" = String, Path, description = "The graph"),
        ("X-Roomkit-Timestamp" = Option<String>, Header, description = "When the delivery was signed, in Unix seconds"),
        ("X-Roomkit-Signature" = Option<String>, Header, description = "sha256=<hex HMAC-SHA256 of \"{timestamp}.{body}\" with the graph's secret>"),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "sha256=<hex HMAC-SHA256 of the body with the graph's secret>")),
    responses((status = 202, description = "Started", body = RunView), (status = 200, description = "A replayed delivery: the run it started", body = RunView),
        (status = 401, description = "Missing, wrong or stale signature, or a graph without a webhook secret", body = ErrorBody),
        (status = 404, description = "No such graph, or it is not started by webhooks", body = ErrorBody)))]
pub(crate) async fn webhook(
    State(app): State<App>,
    Path((org, graph_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let no_webhook = || ApiError::not_found(format!("webhook for graph {graph_id}"));
    let stored = match app.runner.store().graph(&org, &graph_id, None).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound(_)) => return Err(no_webhook()),
        Err(error) => return Err(error.into()),
    };
    if !matches!(stored.graph.trigger, Trigger::Webhook { .. }) {
        return Err(no_webhook());
    }
    let key = match app.runner.store().secret(&org, &graph_id, WEBHOOK_SECRET).await? {
        Some(secret) => {
            let header = |name| headers.get(name).map(|value| value.to_str().unwrap_or_default());
            let delivery = Delivery {
                timestamp: header(TIMESTAMP_HEADER),
                roomkit_signature: header(ROOMKIT_SIGNATURE_HEADER),
                hub_signature: header(SIGNATURE_HEADER),
            };
            let now = now_millis();
            let verified = verify_delivery(secret.as_bytes(), &body, delivery, now.div_euclid(1000))
                .map_err(|error| {
                    ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", error.to_string())
                })?;
            let key = format!("webhook:{org}:{graph_id}:{}", verified.replay_key);
            Some(RunKey::new(key).until(now.saturating_add(REPLAY_WINDOW_MILLIS)))
        }
        None if app.unsigned_webhooks => None,
        None => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no_webhook_secret",
                format!(
                    "graph {graph_id} has no webhook secret, so its webhook takes no delivery: set one with \
                     PUT /v1/graphs/{graph_id}/webhook-secret (or `roomkit-graph webhook-secret {graph_id}`) \
                     and sign deliveries with it"
                ),
            ));
        }
    };
    let data: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse(&body, &app.runner.limits())?
    };
    match app.runner.start_in(&org, &graph_id, data, key).await {
        Ok(run) => Ok((StatusCode::ACCEPTED, Json(RunView::from(run))).into_response()),
        Err(RunnerError::Store(StoreError::Duplicate { run_id, .. })) => {
            Ok((StatusCode::OK, Json(RunView::from(owned_run(&app, &org, &run_id).await?))).into_response())
        }
        Err(error) => Err(error.into()),
    }
}

/// Fires an event: starts every graph of the organization whose trigger is
/// this event, with the body as trigger data.
#[utoipa::path(post, path = "/v1/events/{name}", tag = "triggers", operation_id = "fireEvent",
    request_body(content = Object, description = "The trigger data"),
    params(("name" = String, Path, description = "The event")),
    responses((status = 403, description = "The token is read-only (`read_only_token`)", body = ErrorBody), (status = 202, description = "The runs it started", body = StartedRuns)),
    security(("bearer" = [])))]
pub(crate) async fn event(
    State(app): State<App>,
    Writer(org): Writer,
    Path(name): Path<String>,
    OptionalJsonBody(data): OptionalJsonBody<Value>,
) -> Result<(StatusCode, Json<StartedRuns>), ApiError> {
    let runs = fire_event(&app.runner, &org, &name, data.unwrap_or_else(|| json!({}))).await?;
    Ok((StatusCode::ACCEPTED, Json(StartedRuns { runs: runs.into_iter().map(RunView::from).collect() })))
}
