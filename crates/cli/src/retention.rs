//! `runs delete`, `graph delete` and `retention`: deleting runs and graph
//! versions, and how long finished runs are kept; and the sweep that deletes
//! those past their time, which every process that drives runs (`serve`,
//! `worker`) makes every minute, letting go the queued runs that fit too.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use roomkit_graph_runner::Runner;
use roomkit_graph_store::{Millis, StoreError, now_millis, sweep_expired};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::shutdown::wait_for;

/// How often finished runs past their retention are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Deletes the finished runs past their retention at once, then every
/// [`SWEEP_EVERY`], until `stopped` says so, and lets go the queued runs
/// that fit (`QueueStore::settle_queues`). A sweep that fails is logged and
/// made again at the next.
pub(crate) fn spawn_sweeper(runner: &Runner, stopped: tokio::sync::watch::Receiver<bool>) -> JoinHandle<()> {
    let store = runner.shared_store();
    tokio::spawn(async move {
        let stop = wait_for(stopped);
        tokio::pin!(stop);
        let mut ticks = tokio::time::interval(SWEEP_EVERY);
        // A long sweep is followed by a pause, not by the sweeps it missed.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticks.tick() => {}
            }
            // Stopping drops a sweep under way: each batch is a transaction
            // of its own, so what went stays gone and the rest waits.
            let swept = tokio::select! {
                () = &mut stop => return,
                swept = sweep_expired(&*store, now_millis()) => swept,
            };
            match swept {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "deleted finished runs past their retention"),
                Err(error) => tracing::warn!(%error, "cannot delete some runs past their retention"),
            }
            match store.settle_queues(now_millis()).await {
                Ok(0) => {}
                Ok(released) => tracing::info!(released, "queued runs that fit let go"),
                Err(error) => tracing::warn!(%error, "cannot look for queued runs that fit"),
            }
        }
    })
}

/// `runs delete RUN`.
pub(crate) async fn delete_run(runner: &Runner, org: &str, run_id: &str, json: bool) -> anyhow::Result<()> {
    let run = runner.store().run(run_id).await?;
    if run.org != org {
        return Err(StoreError::NotFound(format!("run {run_id}")).into());
    }
    let deleted = runner.store().delete_run(run_id).await?;
    if json {
        println!("{}", json!({"run_id": run_id, "deleted_runs": deleted}));
    } else {
        let children = deleted.saturating_sub(1);
        let with = if children > 0 { format!(" with its {children} child run(s)") } else { String::new() };
        eprintln!("run {run_id} deleted{with}");
    }
    Ok(())
}

/// `graph delete ID --version N`.
pub(crate) async fn delete_graph_version(
    runner: &Runner,
    org: &str,
    graph_id: &str,
    version: u64,
) -> anyhow::Result<()> {
    runner.store().delete_graph_version(org, graph_id, version).await?;
    eprintln!("graph {graph_id} version {version} deleted");
    Ok(())
}

/// `retention set` and `retention clear`.
pub(crate) async fn set(
    runner: &Runner,
    org: &str,
    graph_id: Option<&str>,
    keep: Option<Duration>,
) -> anyhow::Result<()> {
    let millis = keep
        .map(|keep| Millis::try_from(keep.as_millis()).context("the duration is too long"))
        .transpose()?;
    runner.store().set_retention(org, graph_id, millis).await?;
    let whose = graph_id.map_or(format!("organization {org:?}"), |graph| format!("graph {graph} of {org:?}"));
    match keep {
        Some(keep) => eprintln!("{whose} keeps finished runs {}", humantime::format_duration(keep)),
        None => eprintln!("{whose} keeps finished runs for good"),
    }
    Ok(())
}

/// `retention show`: the organization's rules, its own first.
pub(crate) async fn show(runner: &Runner, org: &str, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let rules = runner.store().retention_rules().await?;
    for rule in rules.iter().filter(|rule| rule.org == org) {
        let keep = Duration::from_millis(u64::try_from(rule.keep).unwrap_or_default());
        if json {
            writeln!(out, "{}", json!({"graph_id": rule.graph_id, "keep_ms": rule.keep}))?;
        } else {
            let whose =
                rule.graph_id.as_deref().map_or("organization".to_owned(), |graph| format!("graph {graph}"));
            writeln!(out, "{whose}  {}", humantime::format_duration(keep))?;
        }
    }
    Ok(())
}
