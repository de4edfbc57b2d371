//! `roomkit-graph-bench chain N [REPEAT]`: runs the benchmark workload of the
//! shared `bench/README.md` and prints one line,
//! `engine=roomkit-graph-rs workload=chain n=N steps_per_s=X`.
//!
//! The chain is start -> N `json_transform` function nodes -> end, the same
//! graph `bench/peers.py` gives the peers. The graph is built and compiled
//! once; each of the REPEAT runs (default 5) gets a fresh engine, made outside
//! the timed part, and the figure is N + 2 steps over the median run time.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use roomkit_graph::{Edge, Graph, Handlers, Node, RunStatus, Trigger, Workflow};
use serde_json::{Value, json};

const USAGE: &str = "usage: roomkit-graph-bench chain N [REPEAT]";

/// Runs per figure when REPEAT is not given (as in `peers.py`).
const DEFAULT_REPEAT: usize = 5;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (workload, n, repeat) = match args.as_slice() {
        [workload, n] => (workload, n, None),
        [workload, n, repeat] => (workload, n, Some(repeat)),
        _ => bail!(USAGE),
    };
    if workload != "chain" {
        bail!("unknown workload {workload:?}: only 'chain' is defined\n{USAGE}");
    }
    let n: usize = n.parse().with_context(|| format!("N must be a whole number, not {n:?}"))?;
    ensure!(n >= 2, "N must be at least 2 (the check reads n{{N-1}}.output.prev = N-2)");
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

/// One timed run of the chain on a fresh engine; checks that the last node saw
/// the one before it (`n{n-1}.output.prev == n-2`).
async fn run_chain(workflow: &Workflow, n: usize) -> anyhow::Result<Duration> {
    let mut engine = workflow.engine();
    let started = Instant::now();
    let status = engine.run(json!({"name": "bench"})).await?;
    let elapsed = started.elapsed();
    ensure!(status == RunStatus::Completed, "the run ended {status:?}, not Completed");
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
