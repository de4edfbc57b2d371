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
use roomkit_graph_store::{
    Position, Result, RunAt, RunRecord, TranscriptEvent, TranscriptPages, TranscriptStore, merged_context,
};

use crate::PostgresStore;
use crate::error::{pg, pool_error, sql_int, stored_count};
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

    async fn run_at(&self, run_id: &str, seq: u64) -> Result<RunAt> {
        self.retrying(|| self.run_at_once(run_id, seq)).await
    }
}

/// The operation, tried once; [`PostgresStore::retrying`] tries it
/// again while the database is unavailable.
impl PostgresStore {
    async fn transcript_once(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<TranscriptEvent>> {
        Ok(transcript_page(&*self.client().await?, run_id, after, limit).await?.1)
    }

    /// The run at entry `seq`: the position kept with the last event of the
    /// entry's commit and the context entries written up to it, read in one
    /// statement (committed events never change).
    async fn run_at_once(&self, run_id: &str, seq: u64) -> Result<RunAt> {
        let client = self.client().await?;
        find_run(&client, run_id).await?.check_entry(seq)?;
        let statement = client
            .prepare_cached(
                "WITH kept AS (SELECT seq, position_json FROM roomkit_graph.transcript \
                 WHERE run_id = $1 AND seq >= $2 AND position_json IS NOT NULL ORDER BY seq LIMIT 1) \
                 SELECT kept.seq, kept.position_json, \
                 (SELECT coalesce(array_agg(t.writes_json ORDER BY t.seq), '{}') FROM roomkit_graph.transcript t \
                  WHERE t.run_id = $1 AND t.seq <= kept.seq AND t.writes_json IS NOT NULL) AS writes \
                 FROM kept",
            )
            .await
            .map_err(pg)?;
        let Some(row) = client.query_opt(&statement, &[&run_id, &sql_int(seq)]).await.map_err(pg)? else {
            // The last commit of a run always keeps its position.
            return Err(Position::unkept(run_id, seq));
        };
        let commit_seq: i64 = row.try_get(0).map_err(pg)?;
        let position: String = row.try_get(1).map_err(pg)?;
        let writes: Vec<String> = row.try_get(2).map_err(pg)?;
        let commit_seq = stored_count(commit_seq, "sequence number")?;
        let context = merged_context(run_id, writes.iter().map(String::as_str))?;
        RunAt::read(run_id, seq, commit_seq, &position, context)
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
