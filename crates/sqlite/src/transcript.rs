//! A run's transcript, read a page at a time or followed live:
//! [`TranscriptStore`] for [`SqliteStore`].
//!
//! Followers are the store crate's ([`Wakes::follow`]): they read pages from
//! the read pool, and are woken by the writer thread after each COMMIT (low
//! latency for steps committed here) and by a poll every [`POLL`] (for
//! commits made by other processes on the same file).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use roomkit_graph_store::{
    Entry, Position, Result, RunAt, RunRecord, TranscriptEvent, TranscriptPages, TranscriptStore, read_stored,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::error::{DbError, sql_int, stored_count};
use crate::pool::Readers;
use crate::runs;

/// How often a follower looks at the database for commits made elsewhere.
const POLL: Duration = Duration::from_millis(200);

#[async_trait]
impl TranscriptStore for SqliteStore {
    async fn transcript(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<TranscriptEvent>> {
        let run_id = run_id.to_owned();
        let page = self.read(move |conn| transcript_page(conn, &run_id, after, limit));
        Ok(page.await?.1)
    }

    fn follow(&self, run_id: &str, after: u64) -> BoxStream<'static, Result<TranscriptEvent>> {
        self.wakes().follow(Pages(self.readers()), POLL, run_id, after)
    }

    async fn run_at(&self, run_id: &str, seq: u64) -> Result<RunAt> {
        let run_id = run_id.to_owned();
        self.read(move |conn| run_at(conn, &run_id, seq)).await
    }
}

/// The run `run_id` as it stood at its entry `seq`, from one snapshot: the
/// position kept with the last event of the entry's commit, and the context
/// entries written up to it.
fn run_at(conn: &mut Connection, run_id: &str, seq: u64) -> Result<RunAt, DbError> {
    let tx = conn.transaction()?;
    runs::run(&tx, run_id)?.check_entry(seq)?;
    let kept: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT seq, position_json FROM transcript \
             WHERE run_id = ?1 AND seq >= ?2 AND position_json IS NOT NULL ORDER BY seq LIMIT 1",
        )?
        .query_row(params![run_id, sql_int(seq)], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    // The last commit of a run always keeps its position.
    let Some((commit_seq, position)) = kept else { return Err(Position::unkept(run_id, seq).into()) };
    let commit_seq = stored_count(commit_seq, "sequence number")?;
    let context = runs::context_through(&tx, run_id, commit_seq)?;
    tx.commit()?;
    Ok(RunAt::read(run_id, seq, commit_seq, &position, context)?)
}

/// The pages a follower reads: from the read pool.
struct Pages(Arc<Readers>);

#[async_trait]
impl TranscriptPages for Pages {
    async fn page(&self, run: &str, after: u64, limit: usize) -> Result<(RunRecord, Vec<TranscriptEvent>)> {
        let run = run.to_owned();
        self.0.run(move |conn| transcript_page(conn, &run, after, limit)).await
    }
}

/// Up to `limit` events of a run after sequence number `after`, with the run's
/// record, from one snapshot.
pub(crate) fn transcript_page(
    conn: &mut Connection,
    run_id: &str,
    after: u64,
    limit: usize,
) -> Result<(RunRecord, Vec<TranscriptEvent>), DbError> {
    let tx = conn.transaction()?;
    let record = runs::run(&tx, run_id)?;
    let events = events_after(&tx, run_id, after, limit)?;
    tx.commit()?;
    Ok((record, events))
}

/// Up to `limit` events of a run after sequence number `after`, in order.
fn events_after(
    conn: &Connection,
    run_id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<TranscriptEvent>, DbError> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, at, entry_json FROM transcript WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = statement.query(params![run_id, sql_int(after), limit])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let entry: String = row.get(2)?;
        events.push(TranscriptEvent {
            run_id: run_id.to_owned(),
            seq: stored_count(row.get(0)?, "sequence number")?,
            at: row.get(1)?,
            entry: read_stored::<Entry>(&entry)?,
        });
    }
    Ok(events)
}
