//! Stopping a long-running command (`serve`, `worker`) cleanly.

use anyhow::Context as _;

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn stop_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C"),
        _ = terminate.recv() => Ok(()),
    }
}

/// Completes once `stopped` turns true (or its sender is gone).
pub(crate) async fn wait_for(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
