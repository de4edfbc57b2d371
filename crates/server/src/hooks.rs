//! Triggers over HTTP: a webhook endpoint per graph, and events fired by name.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roomkit_graph::Trigger;
use roomkit_graph_runner::RunnerError;
use roomkit_graph_store::{RunKey, StoreError};
use roomkit_graph_triggers::{SIGNATURE_HEADER, fire_event, verify_signature};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::App;
use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{OptionalJsonBody, parse};
use crate::graphs::WEBHOOK_SECRET;
use crate::runs::RunView;

/// The runs an event started.
#[derive(Serialize, ToSchema)]
pub(crate) struct StartedRuns {
    /// One per graph listening to the event.
    pub(crate) runs: Vec<RunView>,
}

/// A webhook delivery: starts a run of the graph with the request body as
/// trigger data. No bearer token: when the graph has a webhook secret, the
/// request must be signed with it (`X-Hub-Signature-256`, as GitHub signs).
/// A repeated delivery (same `X-GitHub-Delivery`) gives the run the first
/// one started.
#[utoipa::path(post, path = "/v1/hooks/{org}/{graph_id}", tag = "triggers",
    request_body(content = Object, description = "The trigger data"),
    params(("org" = String, Path, description = "The graph's organization"), ("graph_id" = String, Path, description = "The graph"),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "sha256=<HMAC of the body with the graph's secret>")),
    responses((status = 202, body = RunView), (status = 200, description = "A repeated delivery", body = RunView),
        (status = 401, description = "Missing or wrong signature", body = ErrorBody),
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
    if let Some(secret) = app.runner.store().secret(&org, &graph_id, WEBHOOK_SECRET).await? {
        let signature = headers.get(SIGNATURE_HEADER).map(|value| value.to_str().unwrap_or_default());
        verify_signature(secret.as_bytes(), &body, signature)
            .map_err(|error| ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", error.to_string()))?;
    }
    let data: Value = if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse(&body)? };
    let key = headers
        .get("x-github-delivery")
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty() && value.len() <= 255)
        .map(|delivery| RunKey::new(format!("webhook:{org}:{graph_id}:{delivery}")));
    match app.runner.start_in(&org, &graph_id, data, key).await {
        Ok(run) => Ok((StatusCode::ACCEPTED, Json(RunView::from(run))).into_response()),
        Err(RunnerError::Store(StoreError::Duplicate { run_id, .. })) => {
            Ok((StatusCode::OK, Json(RunView::from(app.runner.store().run(&run_id).await?))).into_response())
        }
        Err(error) => Err(error.into()),
    }
}

/// Fires an event: starts every graph of the organization whose trigger is
/// this event, with the body as trigger data.
#[utoipa::path(post, path = "/v1/events/{name}", tag = "triggers",
    request_body(content = Object, description = "The trigger data"),
    params(("name" = String, Path, description = "The event")),
    responses((status = 202, body = StartedRuns)),
    security(("bearer" = [])))]
pub(crate) async fn event(
    State(app): State<App>,
    Org(org): Org,
    Path(name): Path<String>,
    OptionalJsonBody(data): OptionalJsonBody<Value>,
) -> Result<(StatusCode, Json<StartedRuns>), ApiError> {
    let runs = fire_event(&app.runner, &org, &name, data.unwrap_or_else(|| json!({}))).await?;
    Ok((StatusCode::ACCEPTED, Json(StartedRuns { runs: runs.into_iter().map(RunView::from).collect() })))
}
