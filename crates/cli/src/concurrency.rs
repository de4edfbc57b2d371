//! `concurrency`: how many of an organization's runs go at once (the
//! stores apply it as runs move: see `QueueStore`), and its queues.

use std::io::Write as _;

use roomkit_graph_runner::Runner;
use serde_json::json;

/// `concurrency set` and `concurrency clear`.
pub(crate) async fn set(runner: &Runner, org: &str, limit: Option<u32>) -> anyhow::Result<()> {
    runner.store().set_running_limit(org, limit).await?;
    match limit {
        Some(limit) => {
            eprintln!("organization {org:?} runs at most {limit} run(s) at once; the others queue")
        }
        None => eprintln!("organization {org:?} has no limit of its own on its runs"),
    }
    Ok(())
}

/// `concurrency show`: the limit, then each graph and key with runs queued.
pub(crate) async fn show(runner: &Runner, org: &str, json: bool) -> anyhow::Result<()> {
    let limit = runner.store().running_limit(org).await?;
    let depths = runner.store().queue_depths().await?;
    let queued = depths.iter().filter(|depth| depth.org == org);
    let mut out = std::io::stdout().lock();
    if json {
        let queued: Vec<_> = queued
            .map(|depth| json!({"graph_id": depth.graph_id, "key": depth.key, "queued": depth.queued}))
            .collect();
        writeln!(out, "{}", json!({"max_running": limit, "queued": queued}))?;
        return Ok(());
    }
    match limit {
        Some(limit) => writeln!(out, "at most {limit} run(s) at once")?,
        None => writeln!(out, "no limit of the organization's own")?,
    }
    for depth in queued {
        let key = if depth.key.is_empty() { "(no key)" } else { depth.key.as_str() };
        writeln!(out, "{}  {key}  {} queued", depth.graph_id, depth.queued)?;
    }
    Ok(())
}
