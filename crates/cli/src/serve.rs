//! `serve` and `webhook-secret`: the HTTP service and what it
//! needs set up.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use roomkit_graph_runner::Runner;
use roomkit_graph_server::App;
use roomkit_graph_triggers::Scheduler;
use tokio::net::TcpListener;

use crate::driving::Driving;
use crate::shutdown::{stop_signal, wait_for};

/// Listens on `listen`, saying so when it cannot.
pub(crate) async fn listen(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))
}

/// What `serve` does beside serving the API.
pub(crate) struct Duties {
    /// How often schedules are looked at.
    pub(crate) tick: Duration,
    /// How often runs nobody drives are looked for.
    pub(crate) poll: Duration,
    /// How many runs at once, where hooks may send, where metrics are served.
    pub(crate) driving: Driving,
}

/// `serve`: picks up the runs nobody drives (at start, then every `poll`),
/// fires scheduled graphs, delivers the hooks' outbox, deletes the runs
/// past their retention, and serves `app` (the HTTP API on `runner`) on
/// `listener` until Ctrl-C or SIGTERM, then stops gracefully.
pub(crate) async fn serve(
    runner: &Runner,
    app: App,
    listener: TcpListener,
    duties: Duties,
) -> anyhow::Result<()> {
    let Duties { tick, poll, driving } = duties;
    let address = listener.local_addr().context("cannot read the address listened on")?;
    eprintln!("serve: listening on http://{address}");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Before picking up runs, so that what they do is counted.
    let exporter = crate::metrics::serve(runner, driving.metrics, stopped.clone()).await?;
    let picked_up = runner.recover().await?;
    tracing::info!(%address, picked_up, "serving");

    let scheduler = tokio::spawn(Scheduler::new(runner.clone(), tick).run(wait_for(stopped.clone())));
    let recovery = tokio::spawn(recover_every(runner.clone(), poll, wait_for(stopped.clone())));
    let sender = crate::hooks::spawn_sender(runner, driving.hooks, stopped.clone())?;
    let sweeper = crate::retention::spawn_sweeper(runner, stopped.clone());
    let (driving, lost) = (runner.clone(), Arc::new(AtomicBool::new(false)));
    let lost_id = Arc::clone(&lost);
    let signal = async move {
        tokio::select! {
            signal = stop_signal() => if let Err(error) = signal {
                tracing::error!(%error, "cannot listen for signals; stopping");
            },
            // Only a lost worker id stops the runner before the server does
            // (see `Runner::register`).
            () = driving.stopped() => {
                tracing::error!("another process took this worker id; stopping");
                lost_id.store(true, Ordering::SeqCst);
            }
        }
        stop.send_replace(true);
    };
    roomkit_graph_server::serve(listener, app, signal).await.context("serving failed")?;
    scheduler.await.context("the scheduler stopped abnormally")?;
    recovery.await.context("the recovery loop stopped abnormally")?;
    sender.await.context("the hooks' sender stopped abnormally")?;
    sweeper.await.context("the retention sweep stopped abnormally")?;
    if let Some(exporter) = exporter {
        exporter.await.context("the metrics listener stopped abnormally")?;
    }
    if lost.load(Ordering::SeqCst) {
        anyhow::bail!("worker id {} was taken by another process: stopped", runner.owner());
    }
    eprintln!("serve: stopped");
    Ok(())
}

/// Picks up the runs nobody drives every `poll` until `stop` completes. A
/// failed look is logged and tried again at the next one.
async fn recover_every(runner: Runner, poll: Duration, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(poll);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticks.tick() => match runner.recover().await {
                Ok(0) => {}
                Ok(picked_up) => tracing::info!(picked_up, "picked up runs nobody drives"),
                Err(error) => tracing::warn!(%error, "cannot look for runs to pick up"),
            },
        }
    }
}

/// `webhook-secret GRAPH`: sets (or with `--remove` removes) a graph's webhook
/// secret, read from stdin so that it appears in no process list.
pub(crate) async fn webhook_secret(
    runner: &Runner,
    org: &str,
    graph_id: &str,
    remove: bool,
) -> anyhow::Result<()> {
    runner
        .store()
        .graph(org, graph_id, None)
        .await
        .with_context(|| format!("no graph {graph_id} in {org:?}"))?;
    if remove {
        runner.store().set_secret(org, graph_id, roomkit_graph_server::WEBHOOK_SECRET, None).await?;
        eprintln!("webhook secret of {graph_id} removed");
        return Ok(());
    }
    let mut secret = String::new();
    std::io::stdin().read_to_string(&mut secret).context("cannot read the secret from stdin")?;
    let secret = secret.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        anyhow::bail!("the secret read from stdin is empty");
    }
    runner.store().set_secret(org, graph_id, roomkit_graph_server::WEBHOOK_SECRET, Some(secret)).await?;
    eprintln!("webhook secret of {graph_id} set");
    Ok(())
}
