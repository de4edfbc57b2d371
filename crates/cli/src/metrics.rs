//! `--metrics-listen ADDR` (`serve`, `worker`): the process's metrics in
//! the Prometheus text format at `GET /metrics` on an address of their own,
//! without a token (bind it where only the scraper reaches). What is
//! counted is recorded where it happens, through the `metrics` facade
//! (runs in the store, steps and takeovers in the runner, requests in the
//! server, calls in the AI handlers, deliveries in the hooks' sender); here
//! the recorder is installed and, at each scrape, the live runs counted.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use clap::Args;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use roomkit_graph_runner::Runner;
use roomkit_graph_store::Store;
use tokio::task::JoinHandle;

use crate::shutdown::wait_for;

/// Runs by status (running, waiting, queued), counted at each scrape: of the whole
/// database, so each process serves the same number (take the `max`, not the
/// sum, over processes).
pub(crate) const RUNS_LIVE: &str = "roomkit_runs";

/// Runs queued by organization, graph and concurrency key (empty for runs
/// queued by their organization's limit alone), counted at each scrape like
/// [`RUNS_LIVE`]; a key whose queue emptied reads 0, then goes once idle.
pub(crate) const RUNS_QUEUED: &str = "roomkit_runs_queued";

/// The bounds of the time histograms (seconds): from a millisecond to ten
/// minutes.
const SECONDS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0];

/// How often recorded histograms are folded in, so they hold their memory.
const UPKEEP: Duration = Duration::from_secs(5);

/// How long a scrape waits for the live runs to be counted.
const COUNT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a series no process updates is kept (a graph deleted, say).
const IDLE: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the metrics are served.
#[derive(Args, Clone, Copy, Default)]
pub(crate) struct MetricsOptions {
    /// Serves the process's metrics in the Prometheus text format at
    /// GET http://ADDR/metrics, without a token (e.g. 127.0.0.1:9464).
    #[arg(long, env = "ROOMKIT_GRAPH_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

/// Installs the recorder and serves `/metrics` when `options` names an
/// address, until `stopped` says so.
pub(crate) async fn serve(
    runner: &Runner,
    options: MetricsOptions,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(address) = options.metrics_listen else { return Ok(None) };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for metrics"))?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
        .context("the metrics' buckets")?
        .idle_timeout(MetricKindMask::ALL, Some(IDLE))
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe();
    eprintln!("metrics: http://{}/metrics", listener.local_addr().context("the metrics address")?);
    let upkeep = handle.clone();
    let mut upkept = stopped.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP);
        loop {
            tokio::select! {
                _ = upkept.wait_for(|stop| *stop) => return,
                _ = ticks.tick() => upkeep.run_upkeep(),
            }
        }
    });
    let app = axum::Router::new().route("/metrics", axum::routing::get(render)).with_state(Scrape {
        handle,
        store: runner.shared_store(),
        queues: Arc::default(),
    });
    Ok(Some(tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(wait_for(stopped)).await;
        if let Err(error) = served {
            tracing::error!(%error, "the metrics listener stopped");
        }
    })))
}

/// What a scrape reads.
#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    store: Arc<dyn Store>,
    /// The queues the last scrape saw, to read 0 once empty.
    queues: Arc<Mutex<HashSet<Queue>>>,
}

/// A queue's labels: organization, graph and key.
type Queue = (String, String, String);

/// The metrics, the live runs and the queues counted first.
async fn render(State(scrape): State<Scrape>) -> impl IntoResponse {
    // A database out of reach costs these gauges, not the scrape.
    let counted = async { tokio::try_join!(scrape.store.live_run_counts(), scrape.store.queue_depths()) };
    match tokio::time::timeout(COUNT_TIMEOUT, counted).await {
        Ok(Ok((counts, depths))) => {
            metrics::gauge!(RUNS_LIVE, "status" => "running").set(counts.running as f64);
            metrics::gauge!(RUNS_LIVE, "status" => "waiting").set(counts.waiting as f64);
            metrics::gauge!(RUNS_LIVE, "status" => "queued").set(counts.queued as f64);
            let mut seen = HashSet::with_capacity(depths.len());
            for depth in depths {
                let queue = (depth.org, depth.graph_id, depth.key);
                queue_gauge(&queue).set(depth.queued as f64);
                seen.insert(queue);
            }
            let mut last = scrape.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for emptied in last.difference(&seen) {
                queue_gauge(emptied).set(0.0);
            }
            *last = seen;
        }
        Ok(Err(error)) => tracing::warn!(%error, "cannot count the live runs for the metrics"),
        Err(_) => tracing::warn!("the live runs were not counted in time for the metrics"),
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], scrape.handle.render())
}

fn queue_gauge((org, graph, key): &Queue) -> metrics::Gauge {
    metrics::gauge!(RUNS_QUEUED, "org" => org.clone(), "graph" => graph.clone(), "key" => key.clone())
}

/// What each metric is, for the `# HELP` lines.
fn describe() {
    use roomkit_graph_ai::metrics::{PROVIDER_ERRORS, PROVIDER_TOKENS};
    use roomkit_graph_hooks::HOOK_ATTEMPTS;
    use roomkit_graph_runner::metrics::{LEASE_TAKEOVERS, STEP_SECONDS, STEPS};
    use roomkit_graph_server::metrics::{HTTP_REQUESTS, HTTP_SECONDS};
    use roomkit_graph_store::metrics::{COMMIT_SECONDS, RUNS_FINISHED, RUNS_STARTED};

    metrics::describe_counter!(RUNS_STARTED, "Runs started, by organization and graph");
    metrics::describe_counter!(RUNS_FINISHED, "Runs over, by organization, graph and status");
    metrics::describe_gauge!(
        RUNS_LIVE,
        "Runs running, waiting and queued, of every organization, at the scrape"
    );
    metrics::describe_gauge!(
        RUNS_QUEUED,
        "Runs queued, by organization, graph and concurrency key, at the scrape"
    );
    metrics::describe_counter!(STEPS, "Steps executed by this process, by node type and outcome");
    metrics::describe_histogram!(
        STEP_SECONDS,
        metrics::Unit::Seconds,
        "How long a step's node took, by node type"
    );
    metrics::describe_counter!(LEASE_TAKEOVERS, "Runs picked up from a process whose lease had lapsed");
    metrics::describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "How long a commit took, by backend and outcome"
    );
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by method, route and status");
    metrics::describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "How long an HTTP request took to answer"
    );
    metrics::describe_counter!(PROVIDER_TOKENS, "Tokens model providers reported, by provider and direction");
    metrics::describe_counter!(PROVIDER_ERRORS, "Calls to model providers that failed, by provider and kind");
    metrics::describe_counter!(HOOK_ATTEMPTS, "Attempts at hook deliveries, by event and outcome");
}
