//! `hook add`, `hook list`, `hook remove` and `hook deliveries`: run-event
//! hooks of an organization; and the sender of their deliveries, which every
//! process that drives runs (`serve`, `worker`) runs beside them.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use roomkit_graph_hooks::{Sender, SenderOptions, new_hook};
use roomkit_graph_runner::Runner;
use roomkit_graph_store::{DeliveryFilter, DeliveryStatus, HookDelivery};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::shutdown::wait_for;

/// Where the hooks of a process that drives runs may send (`serve`, `worker`).
#[derive(Args, Clone, Copy, Default)]
pub(crate) struct HookOptions {
    /// Lets hooks reach private addresses (loopback, the local network,
    /// link-local): only for receivers on this server's own network, when
    /// every token that may make hooks is trusted with it. Without it a hook
    /// to such an address fails each attempt, saying why.
    #[arg(long, env = "ROOMKIT_GRAPH_HOOKS_TO_PRIVATE_ADDRESSES")]
    hooks_to_private_addresses: bool,
}

/// Sends the due deliveries of `runner`'s store until `stopped` says so.
pub(crate) fn spawn_sender(
    runner: &Runner,
    options: HookOptions,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let options =
        SenderOptions { private_addresses: options.hooks_to_private_addresses, ..SenderOptions::default() };
    let sender = Sender::new(runner.shared_store(), options)
        .context("cannot make the HTTP client of the hooks' sender")?;
    Ok(tokio::spawn(sender.run(wait_for(stopped))))
}

/// `hook add URL --events ...`: makes a hook and prints its id and secret
/// (once; with --json, `{"hook_id", "url", "events", "graph_id", "secret"}`).
pub(crate) async fn add(
    runner: &Runner,
    org: &str,
    url: &str,
    events: &[String],
    graph_id: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let events: Vec<&str> = events.iter().flat_map(|names| names.split(',')).collect();
    let hook = new_hook(org, url, &events, graph_id)?;
    if let Some(graph_id) = graph_id {
        runner
            .store()
            .latest_graph_version(org, graph_id)
            .await
            .with_context(|| format!("no graph {graph_id:?}"))?;
    }
    runner.store().add_hook(&hook).await?;
    let names: Vec<&str> = hook.events.iter().map(|event| event.as_str()).collect();
    if json {
        println!(
            "{}",
            json!({"hook_id": hook.hook_id, "url": hook.url, "events": names, "graph_id": hook.graph_id,
                "secret": hook.secret})
        );
    } else {
        println!("{}", hook.secret);
        eprintln!(
            "hook {} sends {} to {}: its signing secret (above) is shown once",
            hook.hook_id,
            names.join(", "),
            hook.url
        );
    }
    Ok(())
}

/// `hook list`: the organization's hooks, oldest first, never their secret.
pub(crate) async fn list(runner: &Runner, org: &str, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for hook in runner.store().hooks(org).await? {
        let names: Vec<&str> = hook.events.iter().map(|event| event.as_str()).collect();
        if json {
            let line = json!({"hook_id": hook.hook_id, "url": hook.url, "events": names,
                "graph_id": hook.graph_id, "created_at": hook.created_at});
            writeln!(out, "{line}")?;
        } else {
            let graph = hook.graph_id.map_or(String::new(), |graph| format!("  graph {graph}"));
            writeln!(out, "{}  {}  {}{graph}", hook.hook_id, hook.url, names.join(","))?;
        }
    }
    Ok(())
}

/// `hook remove ID`.
pub(crate) async fn remove(runner: &Runner, org: &str, hook_id: &str) -> anyhow::Result<()> {
    if !runner.store().remove_hook(org, hook_id).await? {
        anyhow::bail!("organization {org:?} has no hook {hook_id:?} (`hook list` shows its hooks)");
    }
    eprintln!("hook {hook_id} removed: its pending deliveries will not be sent");
    Ok(())
}

/// `hook deliveries`: the newest deliveries first, each with its attempts.
pub(crate) async fn deliveries(
    runner: &Runner,
    org: &str,
    filter: DeliveryFilter,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let page = runner.store().deliveries(org, &filter, limit).await?;
    for delivery in &page {
        if json {
            writeln!(out, "{}", serde_json::to_string(delivery)?)?;
        } else {
            writeln!(out, "{}", line(delivery))?;
        }
    }
    if let (true, Some(last)) = (page.len() == limit, page.last()) {
        eprintln!("next page: --cursor {}", last.cursor().encode());
    }
    Ok(())
}

/// A delivery for people: id, event, status, attempts and the last one's outcome.
fn line(delivery: &HookDelivery) -> String {
    let last = delivery.attempts.last().map_or(String::new(), |attempt| {
        match (&attempt.error, attempt.status_code) {
            (Some(error), _) => format!("  last: {error}"),
            (None, Some(code)) => format!("  last: {code}"),
            (None, None) => String::new(),
        }
    });
    let next = match (delivery.status, delivery.next_attempt_at) {
        (DeliveryStatus::Pending, Some(at)) => format!("  next at {at}"),
        _ => String::new(),
    };
    format!(
        "{}  {}  {}  {} attempt(s){last}{next}",
        delivery.delivery_id,
        delivery.event.as_str(),
        delivery.status.as_str(),
        delivery.attempts.len()
    )
}
