//! `roomkit-graph`: the command line. Data goes to stdout, everything else to
//! stderr; `--json` gives output for scripts.

mod concurrency;
mod demo;
mod driving;
mod graphs;
mod hooks;
mod limits;
mod metrics;
mod nodes;
mod retention;
mod runs;
mod serve;
mod shutdown;
mod tokens;
mod traces;
mod transcript;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use roomkit_graph_database::Database;
use roomkit_graph_store::{
    DEFAULT_ORG, DeliveryCursor, DeliveryFilter, DeliveryStatus, RunCursor, RunFilter, RunStatus,
};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Workflow graphs from the terminal.
#[derive(Parser)]
#[command(name = "roomkit-graph", version, about)]
struct Cli {
    #[command(flatten)]
    options: Options,
    #[command(subcommand)]
    command: Command,
}

/// The options every command takes.
#[derive(Args)]
struct Options {
    /// The database: a SQLite file (or sqlite://PATH), created when missing,
    /// or a PostgreSQL database (postgres://USER:PASSWORD@HOST:PORT/NAME) that
    /// many workers on many machines may share.
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_DATABASE", default_value = "roomkit-graph.db")]
    database: String,
    /// The organization graphs and runs belong to.
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_ORG", default_value = DEFAULT_ORG)]
    org: String,
    /// The agents file (providers and agents) for agent and orchestration
    /// nodes; without it those nodes fail.
    #[arg(long, global = true, env = nodes::AGENTS_ENV, value_name = "FILE")]
    agents: Option<PathBuf>,
    /// The channels file for notification nodes; without it those nodes fail.
    #[arg(long, global = true, env = nodes::CHANNELS_ENV, value_name = "FILE")]
    channels: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    json: bool,
    /// How long this process holds a run it drives without renewing it, e.g.
    /// 30s: if the process dies, another picks the run up this long after at
    /// the latest.
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_LEASE", default_value = "30s", value_parser = parse_duration_option)]
    lease: std::time::Duration,
    /// How many compiled graphs (graph versions) this process keeps for the
    /// runs it drives; others are read again when needed.
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_GRAPH_CACHE", default_value_t = roomkit_graph_runner::DEFAULT_GRAPH_CACHE)]
    graph_cache: usize,
    /// With a PostgreSQL database: how many connections this process opens
    /// at most (keep the sum over all processes under the server's limit).
    #[arg(long, global = true, env = "ROOMKIT_GRAPH_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    #[command(flatten)]
    limits: limits::LimitOptions,
}

#[derive(Subcommand)]
enum Command {
    /// Checks graph files and reports every mistake with its node and field
    /// (a trigger that cannot work included), and apart from them warnings
    /// (such as nodes a run cannot leave); with --agents and --channels, also
    /// the agent, orchestration and notification nodes against those files
    /// (which may be among the files: they are reported as such). `run` and
    /// `serve` check graphs the same way. Exits 0 when every file is valid (warnings
    /// or not), 1 otherwise, 2 when --agents or --channels cannot be loaded.
    Validate {
        /// Graph JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Shows the product at work: stores the example graphs in a SQLite file
    /// of its own, answers their agent nodes with a rule-based stand-in for a
    /// model (on loopback; every message it writes says so), prints their
    /// notifications here, starts a few runs (one waiting for a person, one
    /// parallel approval) and serves the API and the web console, printing its
    /// address and a token, until Ctrl-C. A folder that holds a demo already
    /// goes on with it. Takes none of the global options (the organization is
    /// `default`).
    Demo {
        /// The folder for the database and the files (a new one under the
        /// system's temporary folder when not given).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The address to serve on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    #[command(flatten)]
    Runs(RunCommand),
}

/// The commands that work on the database.
#[derive(Subcommand)]
enum RunCommand {
    /// Stores a graph file as a new version, runs it and prints its transcript
    /// as it happens. At a person's step it asks on the terminal, or (not on a
    /// terminal) exits saying how to answer. Exit status: 0 completed, 1 failed
    /// or cancelled, 3 waiting for an answer; a graph with mistakes (as
    /// `validate` finds them) is neither stored nor run, exit 2.
    Run {
        /// The graph JSON file.
        file: PathBuf,
        /// The trigger data: JSON, or @FILE.
        #[arg(long)]
        input: Option<String>,
    },
    /// Answers the node a run waits on and follows the run on (exit status as for run).
    Answer {
        /// The run.
        run: String,
        /// The waiting node.
        node: String,
        /// The answer, a JSON object such as {"action": "approve"}.
        #[arg(long)]
        data: String,
    },
    /// Prints a run's transcript; with --at, the run as it stood at one of
    /// its entries instead: its status, node and context as committed with it.
    Show {
        /// The run.
        run: String,
        /// The entry's sequence number (the #N of the transcript).
        #[arg(long)]
        at: Option<u64>,
    },
    /// Starts a new run of a run's graph version from where that run stood at
    /// one of its entries and follows it (exit status as for run); the run
    /// forked from is never changed.
    Fork {
        /// The run to fork.
        run: String,
        /// The entry to go on from (the #N of its transcript).
        #[arg(long)]
        at: u64,
        /// An answer for the node it waited on there, a JSON object such as
        /// {"action": "reject"}: the fork goes on as it says.
        #[arg(long)]
        data: Option<String>,
    },
    /// Lists runs, newest first, a page at a time (--all: every page). When
    /// more runs follow the page, stderr says the --cursor of the next one.
    #[command(args_conflicts_with_subcommands = true)]
    Runs {
        /// `runs delete RUN` deletes a run instead.
        #[command(subcommand)]
        action: Option<RunsAction>,
        /// Only runs of this graph.
        #[arg(long)]
        graph: Option<String>,
        /// Only runs in this status: running, queued, waiting, completed, failed or cancelled.
        #[arg(long, value_parser = parse_status)]
        status: Option<RunStatus>,
        /// How many runs a page holds (100 by default; 1000 with --all).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        limit: Option<u16>,
        /// Starts after this cursor: the next page of a previous listing.
        #[arg(long, value_parser = parse_cursor)]
        cursor: Option<RunCursor>,
        /// Follows the pages to the end: every run (that exists when the
        /// listing starts) once.
        #[arg(long, conflicts_with = "show_cursor")]
        all: bool,
        /// For scripts: prints the next page's cursor as the last line of
        /// stdout (an empty line on the last page; with --json,
        /// {"next_cursor": ...}).
        #[arg(long)]
        show_cursor: bool,
    },
    /// Drives runs until stopped (Ctrl-C or SIGTERM): picks up the runs
    /// nobody drives (left running by a process that died, once its lease
    /// expired), looks again every --poll, and fires due timers. Any number of
    /// workers may share a database: each run is driven by one at a time.
    /// Stopping lets the steps in progress commit first, and hands their runs
    /// back at once.
    Worker {
        /// How often to look for runs to pick up, e.g. 1s or 500ms.
        #[arg(long, default_value = "1s", value_parser = parse_duration_option)]
        poll: std::time::Duration,
        #[command(flatten)]
        worker: WorkerId,
        #[command(flatten)]
        driving: driving::Driving,
    },
    /// Cancels a run.
    Cancel {
        /// The run.
        run: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Serves the HTTP API (and drives runs, and fires scheduled graphs) until
    /// Ctrl-C or SIGTERM, then stops gracefully. Logs go to stderr (RUST_LOG
    /// sets the level, e.g. RUST_LOG=debug).
    Serve {
        /// The address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The largest request body, in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        max_body_bytes: usize,
        /// How long a client has to send a request's headers (and a
        /// connection may stay idle between requests) before it is closed.
        #[arg(long, default_value = "10s", value_parser = parse_timeout)]
        header_timeout: std::time::Duration,
        /// How long a request may take, its body included, before it gets 408
        /// (live event streams are not bound by it).
        #[arg(long, default_value = "30s", value_parser = parse_timeout)]
        request_timeout: std::time::Duration,
        /// How often to look for scheduled graphs that are due.
        #[arg(long, default_value = "1s", value_parser = parse_duration_option)]
        schedule_tick: std::time::Duration,
        /// How often to look for runs nobody drives, as `worker` does.
        #[arg(long, default_value = "1s", value_parser = parse_duration_option)]
        poll: std::time::Duration,
        /// Logs as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        /// Lets the webhooks of graphs without a webhook secret take unsigned
        /// deliveries (without it they are refused with 401).
        #[arg(long)]
        allow_unsigned_webhooks: bool,
        /// How many live event streams (GET /v1/runs/{id}/events) may be open
        /// at once; beyond that a new one is refused with 503.
        #[arg(long, default_value_t = roomkit_graph_server::DEFAULT_MAX_EVENT_STREAMS)]
        max_event_streams: usize,
        #[command(flatten)]
        worker: WorkerId,
        #[command(flatten)]
        driving: driving::Driving,
    },
    /// Stored graphs: store graph files as new versions, list them, print one.
    #[command(subcommand)]
    Graph(GraphCommand),
    /// Access tokens for the HTTP API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// How long the organization keeps its finished runs (or one graph's):
    /// `serve` and `worker` delete those older, with everything of them.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// How many of the organization's runs go at once: past the limit, runs
    /// are queued and go on in the order they were started.
    #[command(subcommand)]
    Concurrency(ConcurrencyCommand),
    /// Run-event hooks: another system told, by a signed HTTP POST, when the
    /// organization's runs complete, fail, wait or are cancelled, or a node
    /// fails. `serve` and `worker` deliver them.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Sets the secret a graph's webhook requests must be signed with
    /// (X-Roomkit-Signature or X-Hub-Signature-256), read from stdin; it is
    /// stored apart from the graph and never shown again.
    WebhookSecret {
        /// The graph.
        graph: String,
        /// Removes the secret instead: the webhook takes no delivery (unless
        /// `serve` runs with --allow-unsigned-webhooks).
        #[arg(long)]
        remove: bool,
    },
}

/// Who a process that drives runs is.
#[derive(Args)]
struct WorkerId {
    /// Drive runs as this worker: restarted with the same id, the process
    /// takes back at once the runs it held (instead of after their lease). A
    /// second live process with the id is refused. Without it, each process
    /// is a new worker.
    #[arg(long, env = "ROOMKIT_GRAPH_WORKER_ID", value_name = "ID")]
    worker_id: Option<String>,
}

/// `graph` commands.
#[derive(Subcommand)]
enum GraphCommand {
    /// Checks graph files as `run` does and stores each as the next version
    /// of its id (1 for a new id), in the order given, printing `ID vN` for
    /// each. With a mistake in any file nothing is stored (exit 2).
    Put {
        /// Graph JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Lists the stored graphs, by id, with their latest version.
    List,
    /// Prints a stored graph's JSON: its latest version, or --version N.
    Show {
        /// The graph's id.
        id: String,
        /// The version to print.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        version: Option<u64>,
    },
    /// Deletes a version of a graph that no run uses (the latest is kept).
    Delete {
        /// The graph's id.
        id: String,
        /// The version to delete.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        version: u64,
    },
}

/// `runs` commands beside listing.
#[derive(Subcommand)]
enum RunsAction {
    /// Deletes a finished run with everything of it: its transcript, its
    /// child runs, its hook deliveries, its key. A run running or waiting is
    /// refused (cancel it first); a child run goes with its parent.
    Delete {
        /// The run.
        run: String,
    },
}

/// `concurrency` commands.
#[derive(Subcommand)]
enum ConcurrencyCommand {
    /// At most this many of the organization's runs running at once, of
    /// every graph (a graph's own `concurrency` holds too); the queued runs
    /// that fit go at once.
    Set {
        /// How many runs.
        runs: std::num::NonZeroU32,
    },
    /// Removes the limit: the queued runs their graphs' limits allow go at once.
    Clear,
    /// The limit, and the runs queued by graph and key.
    Show,
}

/// `retention` commands.
#[derive(Subcommand)]
enum RetentionCommand {
    /// Keeps finished runs this long, e.g. 30d (a graph's rule holds for its
    /// runs, the organization's for the others).
    Set {
        /// How long, e.g. 30d or 12h.
        #[arg(value_parser = parse_lifetime)]
        keep: std::time::Duration,
        /// Only this graph's runs.
        #[arg(long)]
        graph: Option<String>,
    },
    /// Removes the rule: runs are kept for good.
    Clear {
        /// The graph's rule instead of the organization's.
        #[arg(long)]
        graph: Option<String>,
    },
    /// Prints the organization's rules.
    Show,
}

/// `hook` commands.
#[derive(Subcommand)]
enum HookCommand {
    /// Makes a hook and prints its signing secret, once (its id on stderr).
    Add {
        /// Where the events go: an http:// or https:// URL.
        url: String,
        /// The events it hears, comma-separated or repeated: run.completed,
        /// run.failed, run.waiting, run.cancelled, node.failed.
        #[arg(long, required = true, value_name = "EVENTS")]
        events: Vec<String>,
        /// Only the runs of this graph.
        #[arg(long)]
        graph: Option<String>,
    },
    /// Lists the organization's hooks, oldest first (never their secret).
    List,
    /// Removes a hook: its pending deliveries are not sent.
    Remove {
        /// The hook's id (`hook_...`).
        id: String,
    },
    /// Lists deliveries, newest first, with their attempts.
    Deliveries {
        /// Only this hook's.
        #[arg(long)]
        hook: Option<String>,
        /// Only this run's.
        #[arg(long)]
        run: Option<String>,
        /// Only those pending, delivered or failed.
        #[arg(long, value_parser = parse_delivery_status)]
        status: Option<DeliveryStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The page after the one that printed this cursor (on stderr, when
        /// it was full).
        #[arg(long, value_parser = parse_delivery_cursor)]
        cursor: Option<DeliveryCursor>,
    },
}

/// `token` commands.
#[derive(Subcommand)]
enum TokenCommand {
    /// Makes a token for an organization and prints it, once: only its hash
    /// is stored. Its id (shown on stderr) names it in `token list` and
    /// `token revoke`.
    Create {
        /// A name for people, e.g. who it is for.
        #[arg(long)]
        label: Option<String>,
        /// Refused after this long, e.g. 90d or 12h (never expires without).
        #[arg(long, value_parser = parse_lifetime, value_name = "DURATION")]
        expires: Option<std::time::Duration>,
        /// The token may only read and follow runs and graphs: starting,
        /// answering, cancelling and storing are refused (403).
        #[arg(long)]
        read_only: bool,
    },
    /// Lists the organization's tokens, oldest first: id, label, when made,
    /// last used (to the minute) and expiry; never the token itself.
    List,
    /// Revokes a token by its id: every server refuses it from its next
    /// request.
    Revoke {
        /// The token's id (`tok_...`, as `token list` shows).
        id: String,
    },
}

fn parse_duration_option(text: &str) -> Result<std::time::Duration, String> {
    roomkit_graph::parse_duration(text).map_err(|e| e.to_string())
}

/// How long something is kept (a token, finished runs): longer than 0s, at
/// most 100 years.
fn parse_lifetime(text: &str) -> Result<std::time::Duration, String> {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 60 * 60);
    match parse_duration_option(text)? {
        lifetime if lifetime.is_zero() => Err("it must be longer than 0s".to_owned()),
        lifetime if lifetime > CENTURY => Err("it must be at most 100 years".to_owned()),
        lifetime => Ok(lifetime),
    }
}

fn parse_delivery_status(text: &str) -> Result<DeliveryStatus, String> {
    DeliveryStatus::parse(text).ok_or_else(|| format!("{text:?} is not one of pending, delivered, failed"))
}

fn parse_delivery_cursor(text: &str) -> Result<DeliveryCursor, String> {
    DeliveryCursor::decode(text).map_err(|e| e.to_string())
}

fn parse_cursor(text: &str) -> Result<RunCursor, String> {
    RunCursor::decode(text).map_err(|e| e.to_string())
}

/// A timeout: a duration longer than zero.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    match parse_duration_option(text)? {
        timeout if timeout.is_zero() => Err("a timeout must be longer than 0s".to_owned()),
        timeout => Ok(timeout),
    }
}

fn parse_status(text: &str) -> Result<RunStatus, String> {
    RunStatus::parse(text).ok_or_else(|| format!("{text:?} is not one of {}", RunStatus::NAMES))
}

impl RunCommand {
    /// Whether the command executes nodes or accepts graphs (and so needs
    /// the agents and channels files, for its handlers or its checks): `run`,
    /// `answer`, `worker`, `serve` and `graph put`.
    fn needs_node_setup(&self) -> bool {
        matches!(
            self,
            RunCommand::Run { .. }
                | RunCommand::Answer { .. }
                | RunCommand::Fork { .. }
                | RunCommand::Worker { .. }
                | RunCommand::Serve { .. }
                | RunCommand::Graph(GraphCommand::Put { .. })
        )
    }
}

/// Runs a command on the database and gives its exit status.
async fn with_runner(options: Options, command: RunCommand) -> anyhow::Result<ExitCode> {
    let Options { database, org, json, agents, channels, lease, graph_cache, connections, limits } = options;
    let steps = limits.clone();
    let limits = limits.limits();
    let setup = if command.needs_node_setup() {
        nodes::NodeSetup::load(agents.as_deref(), channels.as_deref())?
    } else {
        nodes::NodeSetup::default()
    };
    let worker_id = match &command {
        RunCommand::Worker { worker, .. } | RunCommand::Serve { worker, .. } => worker.worker_id.as_deref(),
        _ => None,
    };
    let database: Database =
        database.parse().map_err(|refused| anyhow::anyhow!("cannot open the database: {refused}"))?;
    let runner = database
        .open(usize::from(connections), setup.handlers(), worker_id)
        .await?
        .with_lease(lease)
        .with_graph_cache(graph_cache)
        .with_limits(limits.clone())
        .with_checks(setup.checks());
    let runner = steps.limit_steps(runner);
    // Traces sent (serve, worker): stopped once the runner is, so that the
    // spans of the runs it lets go are sent too.
    let mut traces = None;
    let outcome = match command {
        RunCommand::Run { file, input } => {
            let input = limits::input(input.as_deref(), &limits)?;
            runs::run(&runner, &org, &file, input, json).await.map(exit_status)
        }
        RunCommand::Answer { run, node, data } => {
            let data = limits::json_option(&data, "--data", &limits)?;
            runs::answer(&runner, &run, &node, data, json).await.map(exit_status)
        }
        RunCommand::Show { run, at: None } => {
            runs::show(&runner, &run, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Show { run, at: Some(seq) } => {
            runs::show_at(&runner, &run, seq, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Fork { run, at, data } => {
            let data = data.map(|data| limits::json_option(&data, "--data", &limits)).transpose()?;
            runs::fork(&runner, &run, at, data, json).await.map(exit_status)
        }
        RunCommand::Runs { action: Some(RunsAction::Delete { run }), .. } => {
            retention::delete_run(&runner, &org, &run, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Runs { action: None, graph, status, limit, cursor, all, show_cursor } => {
            let filter =
                RunFilter { org: Some(org), graph_id: graph, status, after: cursor, ..Default::default() };
            let pages = match (all, limit) {
                (true, limit) => runs::Pages::All { size: limit.map_or(1000, usize::from) },
                (false, limit) => runs::Pages::One { size: limit.map_or(100, usize::from), show_cursor },
            };
            runs::list(&runner, filter, pages, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Worker { poll, driving, .. } => {
            let runner = driving.limit(runner.clone());
            traces = traces::start(&driving.traces)?.map(|(layer, traces)| {
                tracing_subscriber::registry().with(layer).init();
                traces
            });
            runs::worker(&runner, poll, driving).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Cancel { run, reason } => {
            runs::cancel(&runner, &run, reason.as_deref(), json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Serve {
            listen,
            max_body_bytes,
            header_timeout,
            request_timeout,
            schedule_tick,
            poll,
            log_json,
            allow_unsigned_webhooks,
            max_event_streams,
            driving,
            ..
        } => {
            let runner = driving.limit(runner.clone());
            let layer;
            (layer, traces) = traces::start(&driving.traces)?.unzip();
            init_logs_with(log_json, "info", layer);
            let limits = roomkit_graph_server::Limits {
                max_body_bytes,
                max_event_streams,
                header_timeout,
                request_timeout,
            };
            let app = roomkit_graph_server::App::new(runner.clone(), limits)
                .allow_unsigned_webhooks(allow_unsigned_webhooks);
            match serve::listen(listen).await {
                Ok(listener) => {
                    serve::serve(&runner, app, listener, serve::Duties { tick: schedule_tick, poll, driving })
                        .await
                        .map(|()| ExitCode::SUCCESS)
                }
                Err(error) => Err(error),
            }
        }
        RunCommand::Graph(GraphCommand::Put { files }) => {
            graphs::put(&runner, &org, &files, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Graph(GraphCommand::List) => {
            graphs::list(&runner, &org, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Graph(GraphCommand::Show { id, version }) => {
            graphs::show(&runner, &org, &id, version).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Graph(GraphCommand::Delete { id, version }) => {
            retention::delete_graph_version(&runner, &org, &id, version).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Retention(RetentionCommand::Set { keep, graph }) => {
            retention::set(&runner, &org, graph.as_deref(), Some(keep)).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Retention(RetentionCommand::Clear { graph }) => {
            retention::set(&runner, &org, graph.as_deref(), None).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Concurrency(ConcurrencyCommand::Set { runs }) => {
            concurrency::set(&runner, &org, Some(runs.get())).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Concurrency(ConcurrencyCommand::Clear) => {
            concurrency::set(&runner, &org, None).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Concurrency(ConcurrencyCommand::Show) => {
            concurrency::show(&runner, &org, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Retention(RetentionCommand::Show) => {
            retention::show(&runner, &org, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Token(TokenCommand::Create { label, expires, read_only }) => {
            let made = tokens::Made { label: label.as_deref(), expires_in: expires, read_only };
            tokens::create(&runner, &org, made, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Hook(HookCommand::Add { url, events, graph }) => {
            hooks::add(&runner, &org, &url, &events, graph.as_deref(), json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Hook(HookCommand::List) => {
            hooks::list(&runner, &org, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Hook(HookCommand::Remove { id }) => {
            hooks::remove(&runner, &org, &id).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Hook(HookCommand::Deliveries { hook, run, status, limit, cursor }) => {
            let filter = DeliveryFilter { hook_id: hook, run_id: run, status, before: cursor };
            hooks::deliveries(&runner, &org, filter, limit, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Token(TokenCommand::List) => {
            tokens::list(&runner, &org, json).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::Token(TokenCommand::Revoke { id }) => {
            tokens::revoke(&runner, &org, &id).await.map(|()| ExitCode::SUCCESS)
        }
        RunCommand::WebhookSecret { graph, remove } => {
            serve::webhook_secret(&runner, &org, &graph, remove).await.map(|()| ExitCode::SUCCESS)
        }
    };
    runner.shutdown().await;
    if let Some(traces) = traces {
        traces.stop().await;
    }
    outcome
}

/// Structured logs on stderr, at the level RUST_LOG says (`level` by default).
fn init_logs_at(json: bool, level: &str) {
    init_logs_with(json, level, None);
}

/// Structured logs on stderr, at the level RUST_LOG says (`level` by
/// default), and `traces` beside them when given.
fn init_logs_with(json: bool, level: &str, traces: Option<traces::BoxedLayer>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs: traces::BoxedLayer =
        if json { logs.json().with_filter(filter).boxed() } else { logs.with_filter(filter).boxed() };
    let layers: Vec<traces::BoxedLayer> = std::iter::once(logs).chain(traces).collect();
    tracing_subscriber::registry().with(layers).init();
}

fn exit_status(stopped: runs::Stopped) -> ExitCode {
    ExitCode::from(match stopped {
        runs::Stopped::Completed => 0,
        runs::Stopped::Ended => 1,
        runs::Stopped::Waiting => 3,
    })
}

fn main() -> ExitCode {
    let Cli { options, command } = Cli::parse();
    let outcome = match command {
        Command::Validate { files } => {
            let limits = options.limits.limits();
            validate::run(
                &files,
                options.agents.as_deref(),
                options.channels.as_deref(),
                &limits,
                options.json,
            )
            .map(|valid| if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Demo { dir, listen } => {
            init_logs_at(false, "warn");
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")
                .and_then(|runtime| runtime.block_on(demo::demo(dir, listen)))
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Runs(command) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the runtime")
            .and_then(|runtime| runtime.block_on(with_runner(options, command))),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // Each cause once: many messages quote their cause already.
            eprintln!("roomkit-graph: {}", roomkit_graph::ErrorChain(error.as_ref()));
            ExitCode::from(2)
        }
    }
}
