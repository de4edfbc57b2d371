//! A run's transcript, read a page at a time or followed live:
//! [`TranscriptStore`] for [`PostgresStore`].
//!
//! Followers are the store crate's ([`Wakes::follow`](roomkit_graph_store::Wakes::follow)):
//! they read pages from the pool, and are woken when their run is notified
//! (see `listen`) and by a poll every [`POLL`] (a notification is lost while
//! the listening connection is down).

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Pool};
use futures_util::stream::BoxStream;
use roomkit_graph_store::{Result, RunRecord, TranscriptEvent, TranscriptPages, TranscriptStore};

use crate::PostgresStore;
use crate::error::{pg, pool_error, sql_int};
use crate::rows;
use crate::runs::find_run;

/// How often a follower reads the database without a notification.
const POLL: Duration = Duration::from_millis(500);

#[async_trait]
impl TranscriptStore for PostgresStore {
    async fn transcript(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<TranscriptEvent>> {
        self.retrying(|| self.transcript_once(run_id, after, limit)).await
    }

    fn follow(&self, run_id: &str, after: u64) -> BoxStream<'static, Result<TranscriptEvent>> {
        self.wakes().follow(Pages(self.pool()), POLL, run_id, after)
    }
}

/// The operation, tried once; [`PostgresStore::retrying`] tries it
/// again while the database is unavailable.
impl PostgresStore {
    async fn transcript_once(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<TranscriptEvent>> {
        Ok(transcript_page(&*self.client().await?, run_id, after, limit).await?.1)
    }
}

/// The pages a follower reads: from the pool.
struct Pages(Pool);

#[async_trait]
impl TranscriptPages for Pages {
    async fn page(&self, run: &str, after: u64, limit: usize) -> Result<(RunRecord, Vec<TranscriptEvent>)> {
        match self.0.get().await {
            Ok(client) => transcript_page(&client, run, after, limit).await,
            Err(err) => Err(pool_error(err)),
        }
    }
}

/// Up to `limit` events of a run after `after`, with the run's record read
/// after them. (A run whose record says it is over gets no more events, so a
/// follower may stop when that record has nothing after what it read.)
async fn transcript_page(
    client: &ClientWrapper,
    run_id: &str,
    after: u64,
    limit: usize,
) -> Result<(RunRecord, Vec<TranscriptEvent>)> {
    let statement = client
        .prepare_cached(
            "SELECT seq, at, entry_json FROM roomkit_graph.transcript \
             WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .await
        .map_err(pg)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let found = client.query(&statement, &[&run_id, &sql_int(after), &limit]).await.map_err(pg)?;
    let events = found.iter().map(|row| rows::event(run_id, row)).collect::<Result<Vec<_>, _>>()?;
    Ok((find_run(client, run_id).await?, events))
}
