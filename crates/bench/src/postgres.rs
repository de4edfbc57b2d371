//! `postgres-w URL RUNS STEPS WORKERS [CONCURRENCY]`: the durable chain on a
//! PostgreSQL database shared by WORKERS runners, each with a store (a
//! connection pool and a listening connection) of its own, as WORKERS worker
//! processes would have; RUNS runs with CONCURRENCY in flight at all times,
//! spread over the runners in turn. Every step is committed (and, with the
//! server's default settings, flushed to its WAL) before the next runs.
//!
//! The database should be new: the chain is saved there, outside the timed
//! part, and every run's last output is checked afterwards, as for
//! `durable-concurrent`.
//! `engine=roomkit-graph-rs workload=postgres-wN n=RUNSxSTEPS steps_per_s=X concurrency=C`

use anyhow::Context as _;
use roomkit_graph::Handlers;
use roomkit_graph_postgres::PostgresStore;
use roomkit_graph_runner::Runner;

use crate::chain;
use crate::durable::{check_runs, in_flight, print_figure};

/// Runs the workload; see the module docs.
pub(crate) fn run(
    url: &str,
    runs: usize,
    steps: usize,
    workers: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(workers > 0, "WORKERS must be at least 1");
    let graph = chain(steps)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let elapsed = runtime.block_on(async {
        let mut runners = Vec::with_capacity(workers);
        for _ in 0..workers {
            let store = PostgresStore::connect(url).await.context("cannot connect to the database")?;
            runners.push(Runner::new(store, Handlers::builtin()));
        }
        runners[0].save_graph(&graph).await.context("cannot save the chain graph")?;
        let (elapsed, run_ids) = in_flight(runners.clone(), runs, concurrency).await?;
        check_runs(&runners[0], &run_ids, steps).await?;
        for runner in runners {
            runner.shutdown().await;
        }
        anyhow::Ok(elapsed)
    })?;
    print_figure(
        &format!("postgres-w{workers}"),
        runs,
        steps,
        elapsed,
        &format!(" concurrency={concurrency}"),
    );
    Ok(())
}
