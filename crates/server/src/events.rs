//! A run's live event stream over Server-Sent Events.
//!
//! Each committed transcript event is sent with its sequence number as the
//! SSE `id` and its type as the SSE `event`, so a client that reconnects with
//! `Last-Event-ID` gets exactly the events after the last one it saw: no gap,
//! no duplicate. Tokens of agents' replies, which are not kept, are sent as
//! `token` events without an id as they are written. The stream ends after the
//! run's final event.
//!
//! A stream ends within half a minute of its token being revoked or
//! expiring. Each open stream follows the store and the runner's live events, so a
//! server keeps at most [`Limits::max_event_streams`](crate::Limits) open at
//! once: beyond that a new one is refused with 503 until another ends.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use roomkit_graph_runner::LiveEvent;
use roomkit_graph_store::{StoreError, TranscriptEvent};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_stream::wrappers::BroadcastStream;
use utoipa::IntoParams;

use crate::App;
use crate::auth::{Token, still_valid};
use crate::error::{ApiError, ErrorBody, Fault};
use crate::extract::{PathParams, QueryParams};
use crate::hygiene::REQUEST_ID;
use crate::runs::owned_run;

/// How many live event streams a server keeps open at once unless
/// [`Limits::max_event_streams`](crate::Limits) says otherwise.
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 1024;

/// Where to start when there is no `Last-Event-ID` header.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Events after this sequence number (0: the whole transcript).
    pub(crate) after: Option<u64>,
}

/// Follows a run: its transcript from `Last-Event-ID` (or `after`), then every
/// event as it is committed, until the run is over.
#[utoipa::path(get, path = "/v1/runs/{run_id}/events", tag = "runs", operation_id = "followRunEvents",
    params(("run_id" = String, Path, description = "The run"), EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The last sequence number seen")),
    responses((status = 200, description = "A stream of Server-Sent Events", content_type = "text/event-stream"),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 503, description = "Too many event streams are open", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn events(
    State(app): State<App>,
    Token(token): Token,
    PathParams(run_id): PathParams<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    owned_run(&app, &token.org, &run_id).await?;
    let after = match headers.get("last-event-id") {
        Some(value) => {
            value.to_str().ok().and_then(|text| text.trim().parse::<u64>().ok()).ok_or_else(|| {
                ApiError::bad_request(
                    "bad_header",
                    "Last-Event-ID must be a sequence number (a whole number)",
                )
            })?
        }
        None => query.after.unwrap_or(0),
    };
    let request_id = headers.get(REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or_default().to_owned();
    let slot = Arc::clone(&app.streams).try_acquire_owned().map_err(|_| {
        ApiError::fault(
            Fault::TooManyStreams,
            format!("{} event streams are open, the most this server allows", app.limits.max_event_streams),
        )
    })?;
    let follow = Follow {
        _slot: slot,
        token_check: tokio::time::interval_at(tokio::time::Instant::now() + TOKEN_CHECK, TOKEN_CHECK),
        token_hash: token.token_hash,
        app: app.clone(),
        committed: app.runner.store().follow(&run_id, after),
        live: Some(BroadcastStream::new(app.runner.live())),
        stopping: app.stopping(),
        run_id,
        request_id,
        over: false,
    };
    Ok(Sse::new(stream::unfold(follow, Follow::next)).keep_alive(KeepAlive::default()))
}

/// How often a stream checks that its token is still taken: a token
/// revoked or expired ends the streams it opened within this time.
const TOKEN_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// The state of one client's stream.
struct Follow {
    /// Its place among the streams open, given back when it ends.
    _slot: OwnedSemaphorePermit,
    /// When the token is checked again.
    token_check: tokio::time::Interval,
    /// The hash of the token that opened the stream.
    token_hash: String,
    app: App,
    committed: BoxStream<'static, Result<TranscriptEvent, StoreError>>,
    /// `None` once the runner's live channel is closed.
    live: Option<BroadcastStream<LiveEvent>>,
    stopping: watch::Receiver<bool>,
    run_id: String,
    /// The request's id, told with a failure (whose detail is only logged).
    request_id: String,
    over: bool,
}

impl Follow {
    /// The next event to send; `None` ends the stream (the run is over, or
    /// the server is shutting down).
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Follow)> {
        if self.over {
            return None;
        }
        loop {
            let next = tokio::select! {
                biased;
                _ = self.stopping.wait_for(|stopping| *stopping) => return None,
                _ = self.token_check.tick() => Next::TokenCheck,
                item = self.committed.next() => Next::Committed(item?),
                item = next_live(&mut self.live) => Next::Live(item),
            };
            let event = match next {
                Next::TokenCheck if still_valid(&self.app, &self.token_hash).await => continue,
                Next::TokenCheck => return None,
                Next::Committed(Ok(event)) => {
                    self.over = event.entry.is_final();
                    committed_event(&event)
                }
                Next::Committed(Err(error)) => {
                    self.over = true;
                    tracing::error!(request_id = %self.request_id, run_id = %self.run_id, %error,
                        "the event stream failed");
                    Event::default()
                        .event("error")
                        .data(format!("internal error (request {})", self.request_id))
                }
                Next::Live(Some(live)) if live.run_id == self.run_id => {
                    let data = serde_json::json!({"node_id": live.node_id, "payload": live.payload});
                    Event::default().event("token").data(data.to_string())
                }
                // Another run's, or missed by a slow client: tokens are not kept.
                Next::Live(_) => continue,
            };
            return Some((Ok(event), self));
        }
    }
}

/// What woke a stream up.
enum Next {
    /// Time to check the token again.
    TokenCheck,
    Committed(Result<TranscriptEvent, StoreError>),
    Live(Option<LiveEvent>),
}

/// The next live event; pending forever once the channel is closed.
async fn next_live(live: &mut Option<BroadcastStream<LiveEvent>>) -> Option<LiveEvent> {
    let Some(stream) = live else { return std::future::pending().await };
    match stream.next().await {
        Some(Ok(event)) => Some(event),
        // Lagged: some tokens were missed.
        Some(Err(_)) => None,
        None => {
            *live = None;
            None
        }
    }
}

/// A committed event: its sequence number as the id, its type as the event name.
fn committed_event(event: &TranscriptEvent) -> Event {
    let data = serde_json::to_value(event).unwrap_or_default();
    let kind = data["type"].as_str().unwrap_or("event").to_owned();
    Event::default().id(event.seq.to_string()).event(kind).data(data.to_string())
}
