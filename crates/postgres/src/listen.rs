//! Waking followers across processes: one connection per store `LISTEN`s on
//! [`CHANNEL`], where the run ids of commits that appended events are
//! notified ([`notify`], after the commit, so that notifying does not hold
//! commits back); the followers of those runs in this process are woken
//! ([`Wake::Appended`]) and read what is new. They also read every poll, as a
//! notification is lost while the listening connection is down.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use futures_util::stream;
use roomkit_graph_store::{Wake, Wakes};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The channel commits notify, with the run id as payload.
pub(crate) const CHANNEL: &str = "roomkit_graph_transcript";

/// How long the listener waits before connecting again after losing its
/// connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// How many run ids one notification statement sends at most.
const PAGE: usize = 256;

/// Listens on [`CHANNEL`] and wakes the followers of the notified runs, connecting
/// again whenever the connection is lost. Runs until aborted.
pub(crate) async fn listen(config: tokio_postgres::Config, tls: MakeRustlsConnect, wakes: Wakes) {
    loop {
        if let Ok((client, mut connection)) = config.connect(tls.clone()).await {
            let wakes = wakes.clone();
            // The connection delivers the notifications; it must be polled for
            // the LISTEN below to complete too.
            let pump = tokio::spawn(async move {
                let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let AsyncMessage::Notification(notification) = message {
                        wakes.wake(Wake::Appended(Arc::from(notification.payload())));
                    }
                }
            });
            if client.batch_execute(&format!("LISTEN {CHANNEL}")).await.is_ok() {
                let _ = pump.await;
            } else {
                pump.abort();
            }
            drop(client);
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Notifies on [`CHANNEL`] the run ids this store committed to, as they come:
/// all those waiting at once in one statement. A notification that cannot be
/// sent is dropped (followers poll too). Ends with the store.
///
/// Notifying outside the commit's transaction matters: a transaction that
/// notifies takes a lock for its commit, which would commit concurrent steps
/// one at a time instead of flushing them together.
pub(crate) async fn notify(pool: Pool, mut committed: mpsc::UnboundedReceiver<String>) {
    let mut run_ids = Vec::new();
    while committed.recv_many(&mut run_ids, PAGE).await > 0 {
        run_ids.sort_unstable();
        run_ids.dedup();
        if let Ok(client) = pool.get().await {
            let _ = client
                .execute(
                    "SELECT pg_notify($1, run_id) FROM unnest($2::text[]) AS run_id",
                    &[&CHANNEL, &run_ids],
                )
                .await;
        }
        run_ids.clear();
    }
}
