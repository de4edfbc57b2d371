//! `demo`: the product at work in one command. A SQLite file in a folder of
//! its own, the example graphs stored, a rule-based stand-in for the model
//! provider and a notification channel printing on the terminal (both on
//! loopback, see `stand_in`), a few runs started (one waiting for a person,
//! one parallel approval), and `serve` with a token printed and the
//! console's address.

mod stand_in;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use roomkit_graph::Graph;
use roomkit_graph_database::Database;
use roomkit_graph_runner::Runner;
use roomkit_graph_server::{App, Limits, new_token};
use roomkit_graph_store::DEFAULT_ORG;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::nodes::NodeSetup;

/// The example graphs, as the repository holds them.
const EXAMPLES: [(&str, &str); 4] = [
    ("content-review", include_str!("../../../examples/content-review.json")),
    ("release-approval", include_str!("../../../examples/release-approval.json")),
    ("bug-triage", include_str!("../../../examples/bug-triage.json")),
    ("parallel-checks", include_str!("../../../examples/parallel-checks.json")),
];

/// The runs started, each `(graph, trigger data)`.
fn first_runs() -> [(&'static str, Value); 4] {
    [
        ("content-review", json!({"topic": "durable workflows that wait for people"})),
        ("release-approval", json!({"release": "v2.0"})),
        (
            "bug-triage",
            json!({"title": "Checkout is down for every user", "body": "Payments fail since 9:00."}),
        ),
        ("parallel-checks", json!({"change": "Cache the graph layout per version."})),
    ]
}

/// Runs the demo in `dir` (a new folder under the system's temporary one
/// when none is given; one that holds a demo already goes on with it),
/// serving on `listen`, until Ctrl-C or SIGTERM.
pub(crate) async fn demo(dir: Option<PathBuf>, listen: SocketAddr) -> anyhow::Result<()> {
    // The port first: nothing is made when it is taken.
    let listener = crate::serve::listen(listen)
        .await
        .map_err(|error| anyhow::anyhow!("{error:#}; pass --listen 127.0.0.1:0 for any free port"))?;
    let dir = match dir {
        Some(dir) => dir,
        None => {
            let stamp =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            std::env::temp_dir().join(format!(
                "roomkit-graph-demo-{}-{}",
                std::process::id(),
                stamp.as_nanos()
            ))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let stand_in = stand_in::start().await?;
    let (agents, channels) = write_files(&dir, stand_in)?;
    let setup = NodeSetup::load(Some(&agents), Some(&channels))?;
    let database: Database = dir
        .join("demo.db")
        .to_str()
        .context("the demo's folder is not UTF-8")?
        .parse()
        .map_err(|refused| anyhow::anyhow!("cannot open the database: {refused}"))?;
    let runner = database.open(4, setup.handlers(), None).await?.with_checks(setup.checks());
    let outcome = run(&runner, &dir, listener).await;
    runner.shutdown().await;
    outcome
}

async fn run(runner: &Runner, dir: &Path, listener: TcpListener) -> anyhow::Result<()> {
    // A folder that holds a demo already goes on with it: its graphs and runs stay as they are.
    let resuming = !runner.store().list_graphs_after(DEFAULT_ORG, None, 1).await?.is_empty();
    let mut started = Vec::new();
    if !resuming {
        for (name, text) in EXAMPLES {
            let graph = Graph::from_json(text).with_context(|| format!("the example {name}"))?;
            runner
                .save_graph_in(DEFAULT_ORG, &graph)
                .await
                .with_context(|| format!("cannot store {name}"))?;
        }
        for (graph, trigger) in first_runs() {
            let run = runner.start_in(DEFAULT_ORG, graph, trigger, None).await?;
            started.push(format!("  {graph:<17} run {}", run.run_id));
        }
    }
    let runs = if resuming {
        "  none: this folder holds a demo already, which goes on as it was".to_owned()
    } else {
        started.join("\n")
    };
    let made = new_token(DEFAULT_ORG, Some("demo"));
    runner.store().create_token(&made.record).await.context("cannot store the token")?;
    let mut address = listener.local_addr().context("cannot read the address listened on")?;
    if !address.ip().is_loopback() {
        eprintln!("demo: serving on {address}: anyone who reaches it with the token can use it");
    }
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    println!(
        "roomkit-graph demo\n\
         \n  Open   http://{address}/#inbox\n  Token  {token}\n\
         \n  Files  {dir} (the database demo.db, agents.json, channels.json; they stay)\n\
         \nThe model answering the agent nodes is a rule-based stand-in on loopback: every\n\
         message it writes says so. Notifications print below. Runs started:\n{runs}\n\
         \nAnswer the waiting steps in the inbox; Ctrl-C stops the demo.\n",
        token = made.token,
        dir = dir.display(),
    );
    let app = App::new(runner.clone(), Limits::default());
    let duties = crate::serve::Duties {
        tick: Duration::from_secs(1),
        poll: Duration::from_secs(1),
        driving: crate::driving::Driving::default(),
    };
    crate::serve::serve(runner, app, listener, duties).await
}

/// Writes the agents file (every example agent on the stand-in) and the
/// channels file (`slack`, a webhook to the stand-in's printer) into `dir`.
fn write_files(dir: &Path, stand_in: SocketAddr) -> anyhow::Result<(PathBuf, PathBuf)> {
    let ids = [
        "triage-agent",
        "labeler-agent",
        "writer-agent",
        "analyzer",
        "security-agent",
        "compliance-agent",
        "summarizer",
    ];
    let agents = json!({
        "providers": {"stand-in": {"kind": "openai", "base_url": format!("http://{stand_in}/v1"), "timeout": "30s"}},
        "agents": ids.map(|id| json!({"id": id, "provider": "stand-in", "model": "rule-based-stand-in"})),
    });
    let channels =
        json!({"channels": {"slack": {"kind": "webhook", "url": format!("http://{stand_in}/notify/slack")}}});
    let (agents_path, channels_path) = (dir.join("agents.json"), dir.join("channels.json"));
    for (path, value) in [(&agents_path, agents), (&channels_path, channels)] {
        std::fs::write(path, serde_json::to_string_pretty(&value)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok((agents_path, channels_path))
}
