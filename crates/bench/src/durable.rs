//! The durable workloads: the chain of `chain`, run by a [`Runner`] on a fresh
//! [`SqliteStore`], every step committed durably (WAL, `synchronous=FULL`)
//! before the next runs.
//!
//! - `durable-seq RUNS STEPS DIR`: RUNS runs one after another, each started
//!   and waited for before the next starts.
//! - `durable-concurrent RUNS STEPS DIR [CONCURRENCY]`: RUNS runs with
//!   CONCURRENCY of them in flight at all times (a new one starts as soon as
//!   one completes), so the store can group commits of different runs.
//!
//! The graph is saved once, outside the timed part; the timed part is every
//! run's `start` and `wait`. Each run's status must be Completed, and after
//! the timed part every run's last output is checked from the store
//! (`n{STEPS-1}.output.prev == STEPS-2`). The figure is RUNS * (STEPS + 2)
//! steps over the time: start and end count as steps, as for `chain`
//! (LangGraph, which has neither, counts STEPS).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use roomkit_graph::Handlers;
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::RunStatus;
use tokio::task::JoinSet;

use crate::{chain, check_last_output, remove_database, trigger};

/// The store's file in DIR.
const DATABASE: &str = "roomkit-graph.sqlite";

/// `durable-seq RUNS STEPS DIR`: see the module docs.
pub(crate) fn sequential(runs: usize, steps: usize, dir: &Path) -> anyhow::Result<()> {
    let elapsed = with_runner(steps, dir, |runner| async move {
        let mut run_ids = Vec::with_capacity(runs);
        let started = Instant::now();
        for _ in 0..runs {
            run_ids.push(run_once(&runner).await?);
        }
        let elapsed = started.elapsed();
        Ok((elapsed, run_ids))
    })?;
    print_figure("durable-seq", runs, steps, elapsed, "");
    Ok(())
}

/// `durable-concurrent RUNS STEPS DIR [CONCURRENCY]`: see the module docs.
pub(crate) fn concurrent(runs: usize, steps: usize, dir: &Path, concurrency: usize) -> anyhow::Result<()> {
    let elapsed = with_runner(steps, dir, |runner| in_flight(vec![runner], runs, concurrency))?;
    print_figure("durable-concurrent", runs, steps, elapsed, &format!(" concurrency={concurrency}"));
    Ok(())
}

/// Runs RUNS runs of the chain with CONCURRENCY of them in flight at all
/// times, the k-th task starting its runs on the k-th of `runners` (round
/// robin). Returns the time and the ids of the runs.
pub(crate) async fn in_flight(
    runners: Vec<Runner>,
    runs: usize,
    concurrency: usize,
) -> anyhow::Result<(Duration, Vec<String>)> {
    // CONCURRENCY tasks, each starting the next run as soon as its last one
    // completes, until RUNS have been started.
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for (task, runner) in (0..concurrency.min(runs)).zip(runners.iter().cycle()) {
        let runner = runner.clone();
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut run_ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < runs {
                run_ids.push(run_once(&runner).await.with_context(|| format!("task {task}"))?);
            }
            anyhow::Ok(run_ids)
        });
    }
    let mut run_ids = Vec::with_capacity(runs);
    while let Some(joined) = tasks.join_next().await {
        run_ids.extend(joined.context("a benchmark task panicked")??);
    }
    Ok((started.elapsed(), run_ids))
}

/// Prints a durable workload's line: RUNS * (STEPS + 2) steps over `elapsed`.
pub(crate) fn print_figure(workload: &str, runs: usize, steps: usize, elapsed: Duration, extra: &str) {
    let steps_per_s = (runs * (steps + 2)) as f64 / elapsed.as_secs_f64();
    println!(
        "engine=roomkit-graph-rs workload={workload} n={runs}x{steps} steps_per_s={steps_per_s:.0}{extra}"
    );
}

/// Sets up a runner on a fresh store in `dir` with the chain of `steps` saved,
/// runs `timed` on a multi-thread runtime (it returns its time and the ids of
/// the runs it made), checks every run's last output, and returns the time.
fn with_runner<F, Fut>(steps: usize, dir: &Path, timed: F) -> anyhow::Result<Duration>
where
    F: FnOnce(Runner) -> Fut,
    Fut: Future<Output = anyhow::Result<(Duration, Vec<String>)>>,
{
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(DATABASE);
    remove_database(&path)?;
    let graph = chain(steps)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = SqliteStore::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let runner = Runner::new(store, Handlers::builtin());
        runner.save_graph(&graph).await.context("cannot save the chain graph")?;

        let (elapsed, run_ids) = timed(runner.clone()).await?;

        check_runs(&runner, &run_ids, steps).await?;
        runner.shutdown().await;
        Ok(elapsed)
    })
}

/// Checks the last output of each run of `run_ids`, from the store.
pub(crate) async fn check_runs(runner: &Runner, run_ids: &[String], steps: usize) -> anyhow::Result<()> {
    for run_id in run_ids {
        let (_, state) = runner.store().load_run(run_id).await.with_context(|| format!("run {run_id}"))?;
        check_last_output(&state.context, steps).with_context(|| format!("run {run_id}"))?;
    }
    Ok(())
}

/// Starts one run of the chain, waits for it and checks that it completed.
/// Returns its id.
async fn run_once(runner: &Runner) -> anyhow::Result<String> {
    let run = runner.start("chain", trigger()).await.context("cannot start a run")?;
    let done =
        runner.wait(&run.run_id).await.with_context(|| format!("cannot wait for run {}", run.run_id))?;
    ensure!(
        done.status == RunStatus::Completed,
        "run {} ended {:?}, not Completed ({:?})",
        run.run_id,
        done.status,
        done.error
    );
    Ok(run.run_id)
}
