//! `--otlp-endpoint URL` (`serve`, `worker`): the runner's spans, a `run`
//! span each time the process drives a run (in the run's own trace, whose
//! id is the run id) and a `step` span per step, sent to an OpenTelemetry
//! collector over OTLP (HTTP/protobuf), in batches, by the process's own
//! HTTP client.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;

/// A layer of the process's subscriber.
pub(crate) type BoxedLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the spans still held may take to go at the end: an export and
/// its retry.
const LAST_EXPORT: Duration = Duration::from_secs(12);

/// How often an export that fails is told on stderr, at most.
const TELL_EVERY: Duration = Duration::from_secs(60);

/// Where traces go.
#[derive(Args, Clone, Default)]
pub(crate) struct TraceOptions {
    /// Sends a span per run driven and per step to an OpenTelemetry
    /// collector, OTLP over HTTP/protobuf: its traces URL (e.g.
    /// http://127.0.0.1:4318/v1/traces; a URL without a path gets
    /// /v1/traces).
    #[arg(long, env = "ROOMKIT_GRAPH_OTLP_ENDPOINT", value_name = "URL", value_parser = traces_url)]
    otlp_endpoint: Option<Box<reqwest::Url>>,
}

/// The collector's traces URL: `/v1/traces` on a URL without a path.
fn traces_url(text: &str) -> Result<Box<reqwest::Url>, String> {
    let mut url = reqwest::Url::parse(text).map_err(|error| error.to_string())?;
    if !["http", "https"].contains(&url.scheme()) {
        return Err(format!("{text:?} is not an http or https URL"));
    }
    if url.path() == "/" {
        url.set_path("/v1/traces");
    }
    Ok(Box::new(url))
}

/// Traces being sent: stopped (the spans still held sent) when the process ends.
pub(crate) struct Traces {
    provider: SdkTracerProvider,
}

/// Starts sending traces when `options` names a collector: the layer to
/// add to the process's subscriber, and what to stop at the end. Must be
/// called on the runtime the exports are sent from.
pub(crate) fn start(options: &TraceOptions) -> anyhow::Result<Option<(BoxedLayer, Traces)>> {
    let Some(url) = &options.otlp_endpoint else { return Ok(None) };
    let http =
        reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build().context("the traces' HTTP client")?;
    let client = Client { http, runtime: tokio::runtime::Handle::current(), told: Mutex::new(None) };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url.as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("the traces' exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("roomkit-graph").build())
        .build();
    let tracer = provider.tracer("roomkit-graph");
    // The runner's spans and what they log; nothing else.
    let only_runs = Targets::new().with_target("roomkit_graph_runner", tracing::Level::INFO);
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(only_runs).boxed();
    eprintln!("traces: sent to {url}");
    Ok(Some((layer, Traces { provider })))
}

impl Traces {
    /// Sends the spans still held (within [`LAST_EXPORT`]), then stops.
    pub(crate) async fn stop(self) {
        let provider = self.provider;
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(LAST_EXPORT)).await;
        if let Ok(Err(error)) = stopped {
            eprintln!("traces: the last spans were not all sent: {error}");
        }
    }
}

/// The exporter's HTTP client: each export sent on the process's runtime
/// (the exporter's batches are made on a thread of their own), and one that
/// fails told on stderr (at most every [`TELL_EVERY`]): the exporter keeps
/// its failures to itself.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// When a failure was last told.
    told: Mutex<Option<Instant>>,
}

impl Client {
    fn tell(&self, what: &str) {
        let mut told = self.told.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if told.is_none_or(|at| at.elapsed() >= TELL_EVERY) {
            *told = Some(Instant::now());
            eprintln!("traces: cannot send spans: {what}");
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let http = self.http.clone();
        let sent = self.runtime.spawn(async move {
            let response = http.execute(reqwest::Request::try_from(request)?).await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, HttpError>(Response::builder().status(status).body(body)?)
        });
        let answered = sent.await?;
        match &answered {
            Ok(response) if !response.status().is_success() => {
                let body = String::from_utf8_lossy(response.body());
                let body: String = body.chars().take(200).collect();
                self.tell(&format!("the collector answered {}: {body}", response.status()));
            }
            Ok(_) => {}
            Err(error) => self.tell(&roomkit_graph::ErrorChain(error.as_ref()).to_string()),
        }
        answered
    }
}
