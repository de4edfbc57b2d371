//! The HTTP API of roomkit-graph (axum): graphs (create, new version, list,
//! get, validate), runs (start, get, list, transcript pages, cancel, answer),
//! each run's live events over Server-Sent Events (resuming from
//! `Last-Event-ID`), webhook and event triggers, and the OpenAPI document at
//! `/v1/openapi.json`; and at `/` a web page to watch runs, answer their
//! people's steps, cancel and start runs (one HTML file, nothing loaded from
//! elsewhere).
//!
//! Every route but the webhooks, the document and the page needs `Authorization:
//! Bearer <token>`; a token acts for one organization ([`new_token`]) and sees
//! only its graphs and runs: another organization's answer 404, exactly like
//! ids that do not exist. Every refusal is a 4xx with a JSON body naming what
//! is wrong ([`ApiError`]).
//!
//! ```no_run
//! use roomkit_graph::Handlers;
//! use roomkit_graph_runner::Runner;
//! use roomkit_graph_server::{App, Limits, serve};
//! use roomkit_graph_sqlite::SqliteStore;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let runner = Runner::new(SqliteStore::open("runs.db")?, Handlers::builtin());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, App::new(runner, Limits::default()), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

mod auth;
mod error;
mod events;
mod extract;
mod graph_schema;
mod graphs;
mod hooks;
mod openapi;
mod runs;
mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use roomkit_graph_runner::Runner;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use auth::{NewToken, hash_token, new_token};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use events::DEFAULT_MAX_EVENT_STREAMS;
pub use graphs::WEBHOOK_SECRET;
pub use openapi::ApiDoc;

/// What the server accepts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest request body, in bytes (larger ones get 413).
    pub max_body_bytes: usize,
    /// How many live event streams may be open at once (more get 503).
    pub max_event_streams: usize,
}

impl Default for Limits {
    /// 1 MiB bodies, [`DEFAULT_MAX_EVENT_STREAMS`] event streams.
    fn default() -> Self {
        Limits { max_body_bytes: 1 << 20, max_event_streams: DEFAULT_MAX_EVENT_STREAMS }
    }
}

/// The server's shared state: the runner and the switch that ends the live
/// streams when the server shuts down. Cheap to clone.
#[derive(Clone)]
pub struct App {
    runner: Runner,
    limits: Limits,
    stopping: Arc<watch::Sender<bool>>,
    tokens: Arc<auth::TokenCache>,
    /// A permit for each live event stream open.
    streams: Arc<tokio::sync::Semaphore>,
}

/// How long a token, once read from the database, is taken without reading
/// it again.
const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// How many tokens are kept so at most.
const TOKEN_CACHE_SIZE: usize = 10_000;

impl App {
    /// The API over `runner`.
    pub fn new(runner: Runner, limits: Limits) -> Self {
        App {
            runner,
            limits,
            stopping: Arc::new(watch::channel(false).0),
            tokens: Arc::new(auth::TokenCache::new(TOKEN_TTL, TOKEN_CACHE_SIZE)),
            streams: Arc::new(tokio::sync::Semaphore::new(
                limits.max_event_streams.min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
        }
    }

    /// Ends every live event stream (their clients can resume with
    /// `Last-Event-ID` elsewhere).
    pub fn close_streams(&self) {
        self.stopping.send_replace(true);
    }

    fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// The API's routes, with body limits and request tracing.
pub fn router(app: App) -> Router {
    let api = Router::new()
        .route("/v1/graphs", post(graphs::create).get(graphs::list))
        .route("/v1/graphs/validate", post(graphs::validate))
        .route("/v1/graphs/{graph_id}", put(graphs::put_version).get(graphs::get))
        .route("/v1/graphs/{graph_id}/webhook-secret", put(graphs::set_secret).delete(graphs::delete_secret))
        .route("/v1/graphs/{graph_id}/runs", post(runs::start))
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{run_id}", get(runs::get))
        .route("/v1/runs/{run_id}/transcript", get(runs::transcript))
        .route("/v1/runs/{run_id}/cancel", post(runs::cancel))
        .route("/v1/runs/{run_id}/answer", post(runs::answer))
        .route("/v1/runs/{run_id}/events", get(events::events))
        .route("/v1/hooks/{org}/{graph_id}", post(hooks::webhook))
        .route("/v1/events/{name}", post(hooks::event))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(web::page))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take this method",
            )
        });
    // Each request in a span, and a line when it is answered (status, latency).
    let trace = TraceLayer::new_for_http()
        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    api.layer(DefaultBodyLimit::max(app.limits.max_body_bytes)).layer(trace).with_state(app)
}

/// Serves the API on `listener` until `shutdown` completes, then shuts down
/// gracefully: no new connection is taken, live streams end, requests in
/// progress finish, and the runner commits the steps in progress and stops.
/// Their leases are released, so runs left running are picked up at once by
/// another process ([`Runner::recover`]).
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let runner = app.runner.clone();
    let streams = app.clone();
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in progress");
            streams.close_streams();
        })
        .await?;
    runner.shutdown().await;
    Ok(())
}
