//! `roomkit-graph-bench`: runs the benchmark workloads of the shared
//! `bench/README.md`, each printing one line in the README's format.
//!
//! - `chain N [REPEAT]`: in memory, start -> N `json_transform` function nodes
//!   -> end, the same graph `bench/peers.py` gives the peers. The graph is built
//!   and compiled once; each of the REPEAT runs (default 5) gets a fresh
//!   engine, made outside the timed part, and the figure is N + 2 steps over
//!   the median run time.
//!   `engine=roomkit-graph-rs workload=chain n=N steps_per_s=X`
//! - `durable-seq RUNS STEPS DIR` and `durable-concurrent RUNS STEPS DIR
//!   [CONCURRENCY]`: the same chain, run by a `Runner` on a `SqliteStore` in
//!   DIR, every step committed durably; see [`durable`].
//!   `engine=roomkit-graph-rs workload=durable-seq n=RUNSxSTEPS steps_per_s=X`
//! - `sqlite-commit COMMITS DIR`: the ceiling for one run committing each step
//!   alone, a bare SQLite WAL commit with fsync; see [`sqlite_commit`].
//!   `engine=sqlite-wal-fsync workload=sqlite-commit n=COMMITS commits_per_s=X`
//! - `postgres-w URL RUNS STEPS WORKERS [CONCURRENCY]`: the same chain on a
//!   PostgreSQL database shared by WORKERS runners; see [`postgres`].
//!   `engine=roomkit-graph-rs workload=postgres-wN n=RUNSxSTEPS steps_per_s=X concurrency=C`

mod durable;
mod postgres;
mod sqlite_commit;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use roomkit_graph::{Edge, EngineStatus, Graph, Handlers, Node, Trigger, Workflow};
use serde_json::{Map, Value, json};

const USAGE: &str = "usage: roomkit-graph-bench chain N [REPEAT]
       roomkit-graph-bench durable-seq RUNS STEPS DIR
       roomkit-graph-bench durable-concurrent RUNS STEPS DIR [CONCURRENCY]
       roomkit-graph-bench sqlite-commit COMMITS DIR
       roomkit-graph-bench postgres-w URL RUNS STEPS WORKERS [CONCURRENCY]";

/// Runs per figure when REPEAT is not given (as in `peers.py`).
const DEFAULT_REPEAT: usize = 5;

/// Runs in flight at once in `durable-concurrent` when CONCURRENCY is not given
/// (as in the README).
const DEFAULT_CONCURRENCY: usize = 64;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((workload, rest)) = args.split_first() else { bail!(USAGE) };
    match (workload.as_str(), rest) {
        ("chain", [n]) => chain_workload(n, None),
        ("chain", [n, repeat]) => chain_workload(n, Some(repeat)),
        ("durable-seq", [runs, steps, dir]) => {
            durable::sequential(whole("RUNS", runs)?, chain_steps(steps)?, Path::new(dir))
        }
        ("durable-concurrent", [runs, steps, dir]) => durable::concurrent(
            whole("RUNS", runs)?,
            chain_steps(steps)?,
            Path::new(dir),
            DEFAULT_CONCURRENCY,
        ),
        ("durable-concurrent", [runs, steps, dir, concurrency]) => durable::concurrent(
            whole("RUNS", runs)?,
            chain_steps(steps)?,
            Path::new(dir),
            whole("CONCURRENCY", concurrency)?,
        ),
        ("sqlite-commit", [commits, dir]) => sqlite_commit::run(whole("COMMITS", commits)?, Path::new(dir)),
        ("postgres-w", [url, runs, steps, workers]) => postgres::run(
            url,
            whole("RUNS", runs)?,
            chain_steps(steps)?,
            whole("WORKERS", workers)?,
            DEFAULT_CONCURRENCY,
        ),
        ("postgres-w", [url, runs, steps, workers, concurrency]) => postgres::run(
            url,
            whole("RUNS", runs)?,
            chain_steps(steps)?,
            whole("WORKERS", workers)?,
            whole("CONCURRENCY", concurrency)?,
        ),
        ("chain" | "durable-seq" | "durable-concurrent" | "sqlite-commit" | "postgres-w", _) => {
            bail!("wrong arguments for {workload}\n{USAGE}")
        }
        _ => bail!(
            "unknown workload {workload:?}: one of chain, durable-seq, durable-concurrent, sqlite-commit, \
             postgres-w\n{USAGE}"
        ),
    }
}

/// Parses a whole number at least 1 given as `name`.
fn whole(name: &str, text: &str) -> anyhow::Result<usize> {
    let value: usize =
        text.parse().with_context(|| format!("{name} must be a whole number, not {text:?}"))?;
    ensure!(value >= 1, "{name} must be at least 1");
    Ok(value)
}

/// Parses a chain length (N or STEPS): at least 2, as the check reads
/// `n{N-1}.output.prev = N-2`.
fn chain_steps(text: &str) -> anyhow::Result<usize> {
    let n: usize = text.parse().with_context(|| format!("N must be a whole number, not {text:?}"))?;
    ensure!(n >= 2, "N must be at least 2 (the check reads n{{N-1}}.output.prev = N-2)");
    Ok(n)
}

/// `chain N [REPEAT]`: see the crate docs.
fn chain_workload(n: &str, repeat: Option<&String>) -> anyhow::Result<()> {
    let n = chain_steps(n)?;
    let repeat = match repeat {
        Some(r) => r.parse().with_context(|| format!("REPEAT must be a whole number, not {r:?}"))?,
        None => DEFAULT_REPEAT,
    };
    ensure!(repeat >= 1, "REPEAT must be at least 1");

    let workflow = Workflow::new(chain(n)?, Handlers::builtin());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        times.push(runtime.block_on(run_chain(&workflow, n))?);
    }
    let steps = (n + 2) as f64;
    println!("engine=roomkit-graph-rs workload=chain n={n} steps_per_s={:.0}", steps / median(times));
    Ok(())
}

/// The chain graph: start -> n0 .. n{n-1} -> end, node i a `json_transform`
/// that records its index, the previous node's index and a message.
fn chain(n: usize) -> anyhow::Result<Graph> {
    let mut graph = Graph::new("chain", "chain", Trigger::manual());
    graph.add_node(Node::new("start", "start"))?;
    let mut prev = "start".to_owned();
    for i in 0..n {
        let id = format!("n{i}");
        graph.add_node(Node::new(&id, "function").with_config(json!({
            "action": "json_transform",
            "template": {
                "i": i,
                "prev": "{{input.i | default(-1)}}",
                "msg": "step {{input.i | default(-1)}} of {{trigger.name}}",
            },
        })))?;
        graph.add_edge(Edge::new(prev, &id));
        prev = id;
    }
    graph.add_node(Node::new("end", "end"))?;
    graph.add_edge(Edge::new(prev, "end"));
    Ok(graph)
}

/// The trigger data every chain run gets.
fn trigger() -> Value {
    json!({"name": "bench"})
}

/// Checks that the last node of a chain of `n` saw the one before it
/// (`n{n-1}.output.prev == n-2`) in a run's context.
fn check_last_output(context: &Map<String, Value>, n: usize) -> anyhow::Result<()> {
    let node = format!("n{}", n - 1);
    let prev = context.get(&node).and_then(|entry| entry.get("output")).and_then(|output| output.get("prev"));
    let expected = n as u64 - 2;
    if prev.and_then(Value::as_u64) != Some(expected) {
        bail!("{node}.output.prev is {prev:?}, expected {expected}");
    }
    Ok(())
}

/// One timed run of the chain on a fresh engine; checks that the last node saw
/// the one before it (`n{n-1}.output.prev == n-2`).
async fn run_chain(workflow: &Workflow, n: usize) -> anyhow::Result<Duration> {
    let mut engine = workflow.engine();
    let started = Instant::now();
    let status = engine.run(trigger()).await?;
    let elapsed = started.elapsed();
    ensure!(status == EngineStatus::Completed, "the run ended {status:?}, not Completed");
    let path = format!("n{}.output.prev", n - 1);
    let prev = engine.context().get(&path);
    let expected = n as u64 - 2;
    if prev.and_then(Value::as_u64) != Some(expected) {
        bail!("{path} is {prev:?}, expected {expected}");
    }
    Ok(elapsed)
}

/// The median in seconds (the mean of the middle two for an even count, as
/// Python's `statistics.median`). `times` must not be empty.
fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    let mid = times.len() / 2;
    if times.len() % 2 == 1 {
        times[mid].as_secs_f64()
    } else {
        (times[mid - 1].as_secs_f64() + times[mid].as_secs_f64()) / 2.0
    }
}

/// Removes the SQLite file at `path` and its WAL and shared-memory files, if
/// they exist, so a workload starts on a fresh database.
fn remove_database(path: &Path) -> anyhow::Result<()> {
    let name = path.as_os_str();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = name.to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("cannot remove {}", file.display())),
        }
    }
    Ok(())
}
