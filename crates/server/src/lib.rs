//! The HTTP API of roomkit-graph (axum): graphs (create, new version, list,
//! get, validate), runs (start, get, list, transcript pages, cancel, answer),
//! each run's live events over Server-Sent Events (resuming from
//! `Last-Event-ID`), pictures of graphs and runs (SVG), webhook and event
//! triggers, and the OpenAPI document at
//! `/v1/openapi.json`; and at `/` a web page to watch runs, answer their
//! people's steps, cancel and start runs (one HTML file, nothing loaded from
//! elsewhere).
//!
//! Every route but the webhooks, the document and the page needs `Authorization:
//! Bearer <token>`; a token acts for one organization ([`new_token`]) and sees
//! only its graphs and runs: another organization's answer 404, exactly like
//! ids that do not exist. Every refusal is a 4xx with a JSON body naming what
//! is wrong ([`ApiError`]); a server fault (5xx) answers its code and a fixed
//! message with the request's id (`X-Request-Id`, on every answer), its
//! detail logged under that id. Slow clients are cut off ([`Limits`]).
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
mod drawings;
mod error;
mod events;
mod extract;
mod graph_schema;
mod graphs;
mod hooks;
mod hygiene;
mod inbox;
mod marks;
pub mod metrics;
mod openapi;
mod runs;
mod subscriptions;
mod web;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Router, middleware};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use roomkit_graph_runner::Runner;
use roomkit_graph_triggers::TriggerCheck;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use auth::{NewToken, hash_token, new_token};
pub use error::{ApiError, ErrorBody, ErrorDetail, Fault};
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
    /// How long a client has to send a request's headers, and how long a
    /// connection may stay idle between requests: then it is closed.
    pub header_timeout: Duration,
    /// How long a request may take, its body included, before it gets 408.
    /// Live event streams are not bound by it.
    pub request_timeout: Duration,
}

impl Default for Limits {
    /// 1 MiB bodies, [`DEFAULT_MAX_EVENT_STREAMS`] event streams, 10 s to
    /// send the headers, 30 s for a request.
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The server's shared state: the runner and the switch that ends the live
/// streams when the server shuts down. Cheap to clone.
#[derive(Clone)]
pub struct App {
    runner: Runner,
    limits: Limits,
    /// Whether graphs without a webhook secret take unsigned deliveries.
    unsigned_webhooks: bool,
    stopping: Arc<watch::Sender<bool>>,
    /// A permit for each live event stream open.
    streams: Arc<tokio::sync::Semaphore>,
    /// The layouts of graph versions drawn so far.
    layouts: Arc<drawings::Layouts>,
}

impl App {
    /// The API over `runner`: its graph routes check graphs with the
    /// runner's checks ([`Runner::check`]), as its `save_graph` does. The API
    /// fires graphs' triggers, so the runner's checks gain the trigger check
    /// ([`TriggerCheck`]) if they lack it: a graph whose schedule cannot fire
    /// is refused, never stored.
    pub fn new(runner: Runner, limits: Limits) -> Self {
        let checks = runner.checks();
        let runner =
            if checks.has::<TriggerCheck>() { runner } else { runner.with_checks(checks.with(TriggerCheck)) };
        App {
            runner,
            limits,
            unsigned_webhooks: false,
            stopping: Arc::new(watch::channel(false).0),
            streams: Arc::new(tokio::sync::Semaphore::new(
                limits.max_event_streams.min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            layouts: Arc::default(),
        }
    }

    /// Lets the webhooks of graphs without a webhook secret take unsigned
    /// deliveries (refused with 401 otherwise). Graphs with a secret still
    /// need a signature.
    pub fn allow_unsigned_webhooks(self, allow: bool) -> Self {
        App { unsigned_webhooks: allow, ..self }
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
        f.debug_struct("App")
            .field("limits", &self.limits)
            .field("unsigned_webhooks", &self.unsigned_webhooks)
            .finish_non_exhaustive()
    }
}

/// The API's routes, with body limits, time limits, request ids and tracing
/// (see `hygiene`).
pub fn router(app: App) -> Router {
    // Every route but the live event streams answers within the request timeout.
    let timed = Router::new()
        .route("/v1/graphs", post(graphs::create).get(graphs::list))
        .route("/v1/graphs/validate", post(graphs::validate))
        .route("/v1/drawing", post(drawings::posted))
        .route("/v1/graphs/{graph_id}", put(graphs::put_version).get(graphs::get))
        .route("/v1/graphs/{graph_id}/drawing", get(drawings::graph))
        .route("/v1/graphs/{graph_id}/versions", get(graphs::versions))
        .route("/v1/graphs/{graph_id}/versions/{version}", delete(graphs::delete_version))
        .route("/v1/graphs/{graph_id}/webhook-secret", put(graphs::set_secret).delete(graphs::delete_secret))
        .route("/v1/graphs/{graph_id}/runs", post(runs::start))
        .route("/v1/runs", get(runs::list))
        .route("/v1/inbox", get(inbox::inbox))
        .route("/v1/runs/{run_id}", get(runs::get).delete(runs::delete))
        .route("/v1/runs/{run_id}/transcript", get(runs::transcript))
        .route("/v1/runs/{run_id}/cancel", post(runs::cancel))
        .route("/v1/runs/{run_id}/answer", post(runs::answer))
        .route("/v1/runs/{run_id}/state", get(runs::state))
        .route("/v1/runs/{run_id}/drawing", get(drawings::run))
        .route("/v1/runs/{run_id}/fork", post(runs::fork))
        .route("/v1/hooks", post(subscriptions::create).get(subscriptions::list))
        .route("/v1/hooks/deliveries", get(subscriptions::deliveries))
        .route("/v1/hooks/{hook_id}", delete(subscriptions::remove))
        .route("/v1/hooks/{org}/{graph_id}", post(hooks::webhook))
        .route("/v1/events/{name}", post(hooks::event))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(web::page))
        .route_layer(middleware::from_fn_with_state(app.limits.request_timeout, hygiene::time_limit));
    let api = timed
        .route("/v1/runs/{run_id}/events", get(events::events))
        .route_layer(middleware::from_fn(metrics::observe))
        .fallback(|| async { ApiError::for_status(StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|| async { ApiError::for_status(StatusCode::METHOD_NOT_ALLOWED) });
    // Each request in a span with its id, and a line when it is answered
    // (status, latency).
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &axum::extract::Request| {
            let id = request.headers().get(hygiene::REQUEST_ID).and_then(|id| id.to_str().ok());
            tracing::info_span!("request", method = %request.method(), uri = %request.uri(),
                request_id = id.unwrap_or_default())
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    api.layer(DefaultBodyLimit::max(app.limits.max_body_bytes))
        .layer(trace)
        .layer(middleware::from_fn(hygiene::answer))
        .with_state(app)
}

/// Serves the API on `listener` until `shutdown` completes, then shuts down
/// gracefully: no new connection is taken, live streams end, requests in
/// progress finish, and the runner commits the steps in progress and stops.
/// Their leases are released, so runs left running are picked up at once by
/// another process ([`Runner::recover`]).
///
/// A connection that takes longer than [`Limits::header_timeout`] to send a
/// request's headers (or stays idle that long between requests) is closed. A
/// request too malformed or too large to be read at all (a URI over 64 KiB)
/// is refused in JSON too.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let runner = app.runner.clone();
    let streams = app.clone();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(app.limits.header_timeout);
    let service = TowerToHyperService::new(router(app));
    let connections = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let stream = wire::JsonRefusals::new(TokioIo::new(stream));
        let connection = connections.watch(http.serve_connection(stream, service.clone()));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in progress");
    streams.close_streams();
    connections.shutdown().await;
    runner.shutdown().await;
    Ok(())
}
