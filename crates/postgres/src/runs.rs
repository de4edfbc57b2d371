//! Runs: opening one, committing its steps, its lease, reading and listing
//! runs; their SQL and [`RunStore`] for [`PostgresStore`].

use std::time::Instant;

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Transaction};
use roomkit_graph::EngineState;
use roomkit_graph_store::metrics;
use roomkit_graph_store::{
    Dialect, FilterValue, HeldKey, Lease, LiveRunCounts, Millis, NewRun, ParentLink, Result, RunFilter,
    RunKey, RunRecord, RunStore, StepCommit, StoreError, TranscriptEvent, merged_context, pending_text,
};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::PostgresStore;
use crate::error::{is_unique_violation, pg, sql_int};
use crate::queue;
use crate::rows::{self, RUN_COLUMNS};

#[async_trait]
impl RunStore for PostgresStore {
    async fn create_run(&self, run: NewRun) -> Result<RunRecord> {
        let asked = Instant::now();
        let created = self.retrying(|| self.create_run_once(&run)).await;
        metrics::commit_took(BACKEND, asked.elapsed(), &created);
        let (record, events) = created?;
        metrics::committed(&events, &record);
        Ok(record)
    }

    async fn commit_step(&self, commit: StepCommit) -> Result<(RunRecord, Vec<TranscriptEvent>)> {
        let asked = Instant::now();
        let committed = self.retrying(|| self.commit_step_once(&commit)).await;
        metrics::commit_took(BACKEND, asked.elapsed(), &committed);
        if let Ok((record, events)) = &committed {
            metrics::committed(events, record);
        }
        committed
    }

    async fn claim_run(&self, run_id: &str, lease: &Lease, now: Millis) -> Result<Option<RunRecord>> {
        self.retrying(|| self.claim_run_once(run_id, lease, now)).await
    }

    async fn renew_lease(&self, run_id: &str, lease: &Lease) -> Result<RunRecord> {
        self.retrying(|| self.renew_lease_once(run_id, lease)).await
    }

    async fn release_run(&self, run_id: &str, owner: &str) -> Result<bool> {
        self.retrying(|| self.release_run_once(run_id, owner)).await
    }

    async fn claimable_runs(&self, now: Millis, limit: usize) -> Result<Vec<RunRecord>> {
        self.retrying(|| self.claimable_runs_once(now, limit)).await
    }

    async fn run(&self, run_id: &str) -> Result<RunRecord> {
        self.retrying(|| self.run_once(run_id)).await
    }

    async fn load_run(&self, run_id: &str) -> Result<(RunRecord, EngineState)> {
        self.retrying(|| self.load_run_once(run_id)).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.retrying(|| self.list_runs_once(filter)).await
    }

    async fn live_run_counts(&self) -> Result<LiveRunCounts> {
        self.retrying(|| self.live_run_counts_once()).await
    }
}

/// The operations, each tried once; [`PostgresStore::retrying`] tries them
/// again while the database is unavailable.
impl PostgresStore {
    async fn create_run_once(&self, run: &NewRun) -> Result<(RunRecord, Vec<TranscriptEvent>)> {
        let run_id = &run.state.run_id;
        if run_id.is_empty() {
            return Err(StoreError::Invalid("the run has no id (state.run_id is empty)".into()));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let graph_exists = tx
            .query_opt(
                "SELECT 1 FROM roomkit_graph.graphs WHERE org = $1 AND graph_id = $2 AND version = $3",
                &[&run.org, &run.graph_id, &sql_int(run.graph_version)],
            )
            .await
            .map_err(pg)?
            .is_some();
        if !graph_exists {
            return Err(StoreError::NotFound(format!(
                "graph {} version {}",
                run.graph_id, run.graph_version
            )));
        }
        let now = run.at;
        if let Some(key) = &run.key {
            take_key(&tx, key, now).await?;
        }
        let record = run.opening_record();
        let key = run.key.as_ref();
        let inserted = tx
            .execute(
                "INSERT INTO roomkit_graph.runs (run_id, org, graph_id, graph_version, status, current_node_id, \
                 previous_node_id, error, version, last_seq, created_at, updated_at, run_key, owner, lease_until, \
                 key_hash, key_expires_at, steps, pending, parent_run_id, parent_node_id, parent_runs_node) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 1, 1, $8, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, $18)",
                &[
                    &record.run_id,
                    &record.org,
                    &record.graph_id,
                    &sql_int(record.graph_version),
                    &record.status.as_str(),
                    &record.current_node_id,
                    &record.previous_node_id,
                    &now,
                    &key.map(|key| &key.key),
                    &record.owner,
                    &record.lease_until,
                    &key.and_then(|key| key.request_hash.as_ref()),
                    &key.and_then(|key| key.expires_at),
                    &sql_int(record.steps),
                    &pending_text(&record.pending),
                    &record.parent.as_ref().map(|link| &link.run_id),
                    &record.parent.as_ref().map(|link| &link.node_id),
                    &record.parent.as_ref().is_some_and(|link| link.runs_node),
                ],
            )
            .await;
        if let Err(err) = inserted {
            if !is_unique_violation(&err) {
                return Err(pg(err));
            }
            drop(tx);
            return Err(self.why_not_unique(run_id, key).await);
        }
        if let Some(slot) = &run.concurrency {
            queue::set_slot(&tx, &record.run_id, slot).await?;
        } else if let Some(parent) = run.parent.as_ref().filter(|parent| parent.runs_node) {
            queue::inherit_slot(&tx, &record.run_id, &parent.commit.run_id).await?;
        }
        let started = run.started_event();
        // The context the run starts with is kept on its first event.
        let context = run.starting_context().map(|context| Value::Object(context.clone()).to_string());
        append(&tx, std::slice::from_ref(&started), context, &record).await?;
        // The parent's step that starts the run: refused with it (a parent
        // that moved meanwhile opens no child).
        if let Some(parent) = &run.parent {
            let before = lock_run(&tx, &parent.commit.run_id).await?;
            apply_limited(&tx, &parent.commit, before, parent.commit.at).await?;
        }
        let (record, events) = match &run.first_step {
            None => (record, vec![started]),
            Some(step) => {
                let (record, mut events) = apply_limited(&tx, step, record, step.at).await?;
                events.insert(0, started);
                (record, events)
            }
        };
        // Opened running while its key is full: it waits for its turn.
        let record = queue::applied(&tx, None, record, now).await?;
        tx.commit().await.map_err(pg)?;
        self.announce(run_id);
        if let Some(parent) = &run.parent {
            self.announce(&parent.commit.run_id);
        }
        Ok((record, events))
    }

    async fn commit_step_once(&self, commit: &StepCommit) -> Result<(RunRecord, Vec<TranscriptEvent>)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let before = lock_run(&tx, &commit.run_id).await?;
        let (was_over, status_before) = (before.status.is_final(), before.status);
        let (after, events) = apply_step(&tx, commit, before, commit.at).await?;
        // A parent set going takes its place before the run's is given to
        // another: a room's parent goes on at once.
        let woken = match (was_over, &after.parent) {
            (false, Some(link)) if after.status.is_final() => {
                wake_parent(&tx, &after, link, commit.at).await?
            }
            _ => false,
        };
        let applied = (queue::applied(&tx, Some(status_before), after, commit.at).await?, events);
        tx.commit().await.map_err(pg)?;
        if !applied.1.is_empty() {
            self.announce(&commit.run_id);
        }
        if let (true, Some(link)) = (woken, &applied.0.parent) {
            self.announce(&link.run_id);
        }
        Ok(applied)
    }

    async fn claim_run_once(&self, run_id: &str, lease: &Lease, now: Millis) -> Result<Option<RunRecord>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let before = lock_run(&tx, run_id).await?;
        let Some(claimed) = before.claimed_by(lease, now) else { return Ok(None) };
        if before.lease().as_ref() != Some(&claimed) {
            tx.execute(SET_LEASE, &[&run_id, &claimed.owner, &claimed.until]).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
        }
        Ok(Some(before.held_by(claimed)))
    }

    async fn renew_lease_once(&self, run_id: &str, lease: &Lease) -> Result<RunRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let before = lock_run(&tx, run_id).await?;
        let until = before.renewal(lease)?;
        if before.lease_until != Some(until) {
            tx.execute(SET_LEASE, &[&run_id, &lease.owner, &until]).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
        }
        Ok(RunRecord { lease_until: Some(until), ..before })
    }

    async fn release_run_once(&self, run_id: &str, owner: &str) -> Result<bool> {
        let client = self.client().await?;
        let released = client
            .execute(
                "UPDATE roomkit_graph.runs SET owner = NULL, lease_until = NULL WHERE run_id = $1 AND owner = $2",
                &[&run_id, &owner],
            )
            .await
            .map_err(pg)?;
        Ok(released > 0)
    }

    async fn claimable_runs_once(&self, now: Millis, limit: usize) -> Result<Vec<RunRecord>> {
        let client = self.client().await?;
        let sql = format!(
            "(SELECT {RUN_COLUMNS} FROM roomkit_graph.runs WHERE status = 'running' AND lease_until IS NULL \
              ORDER BY created_at LIMIT $2) \
             UNION ALL \
             (SELECT {RUN_COLUMNS} FROM roomkit_graph.runs WHERE status = 'running' AND lease_until <= $1 \
              ORDER BY lease_until LIMIT $2) \
             LIMIT $2"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found = client.query(&sql, &[&now, &limit]).await.map_err(pg)?;
        found.iter().map(rows::run).collect()
    }

    async fn run_once(&self, run_id: &str) -> Result<RunRecord> {
        find_run(&*self.client().await?, run_id).await
    }

    async fn load_run_once(&self, run_id: &str) -> Result<(RunRecord, EngineState)> {
        let client = self.client().await?;
        // One statement, so one snapshot: the record and the context entries
        // written up to it.
        let sql = format!(
            "SELECT {RUN_COLUMNS}, (SELECT coalesce(array_agg(t.writes_json ORDER BY t.seq), '{{}}') \
             FROM roomkit_graph.transcript t WHERE t.run_id = r.run_id AND t.writes_json IS NOT NULL \
             AND t.seq <= r.last_seq) AS context_writes FROM roomkit_graph.runs r WHERE r.run_id = $1"
        );
        let statement = client.prepare_cached(&sql).await.map_err(pg)?;
        let Some(row) = client.query_opt(&statement, &[&run_id]).await.map_err(pg)? else {
            return Err(not_found_run(run_id));
        };
        let record = rows::run(&row)?;
        let writes: Vec<String> = row.try_get("context_writes").map_err(pg)?;
        let context = merged_context(run_id, writes.iter().map(String::as_str))?;
        let state = record.engine_state(context);
        Ok((record, state))
    }

    async fn live_run_counts_once(&self) -> Result<LiveRunCounts> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE status = 'waiting'), \
                 count(*) FILTER (WHERE status = 'queued') \
                 FROM roomkit_graph.runs WHERE status IN ('running', 'waiting', 'queued')",
                &[],
            )
            .await
            .map_err(pg)?;
        let count = |index: usize| u64::try_from(row.get::<_, i64>(index)).unwrap_or_default();
        Ok(LiveRunCounts { running: count(0), waiting: count(1), queued: count(2) })
    }

    async fn list_runs_once(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let client = self.client().await?;
        let (clause, values) = filter.where_clause(Dialect::Postgres);
        let mut values: Vec<Box<dyn ToSql + Sync + Send>> = values
            .into_iter()
            .map(|value| -> Box<dyn ToSql + Sync + Send> {
                match value {
                    FilterValue::Text(text) => Box::new(text),
                    FilterValue::Millis(millis) => Box::new(millis),
                }
            })
            .collect();
        // LIMIT NULL is no limit.
        values.push(Box::new(filter.limit.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX))));
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM roomkit_graph.runs{clause} ORDER BY {} LIMIT ${}",
            RunFilter::ORDER_BY,
            values.len()
        );
        let params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|value| value.as_ref() as &(dyn ToSql + Sync)).collect();
        let found = client.query(&sql, &params).await.map_err(pg)?;
        found.iter().map(rows::run).collect()
    }
}

impl PostgresStore {
    /// Why a new run broke a unique index: its key is held by a run that
    /// took it meanwhile ([`StoreError::Duplicate`]) or its id is taken.
    async fn why_not_unique(&self, run_id: &str, key: Option<&RunKey>) -> StoreError {
        if let Some(key) = key {
            let holder = match self.client().await {
                Ok(client) => find_key_holder(&client, &key.key, false).await,
                Err(err) => return err,
            };
            match holder {
                Ok(Some(holder)) => return key.taken_by(holder),
                Ok(None) => {}
                Err(err) => return err,
            }
        }
        StoreError::Invalid(format!("run {run_id} already exists"))
    }
}

/// The run holding `key`, if any (its row locked with `lock`).
async fn find_key_holder(
    client: &impl deadpool_postgres::GenericClient,
    key: &str,
    lock: bool,
) -> Result<Option<HeldKey>> {
    let sql = format!(
        "SELECT run_id, key_hash, key_expires_at FROM roomkit_graph.runs WHERE run_key = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = client.query_opt(&sql, &[&key]).await.map_err(pg)?;
    Ok(row.map(|row| HeldKey { run_id: row.get(0), request_hash: row.get(1), expires_at: row.get(2) }))
}

/// Makes `key` free for a new run at `now`, in `tx`: refused with
/// [`StoreError::Duplicate`] while another run holds it, taken from a run
/// that let it go. (A run taking it meanwhile breaks the unique index at
/// the insert: see [`PostgresStore::why_not_unique`].)
async fn take_key(tx: &Transaction<'_>, key: &RunKey, now: Millis) -> Result<()> {
    match find_key_holder(tx, &key.key, true).await? {
        None => Ok(()),
        Some(holder) if holder.is_free_at(now) => {
            tx.execute(
                "UPDATE roomkit_graph.runs SET run_key = NULL, key_hash = NULL, key_expires_at = NULL \
                 WHERE run_id = $1",
                &[&holder.run_id],
            )
            .await
            .map_err(pg)?;
            Ok(())
        }
        Some(holder) => Err(key.taken_by(holder)),
    }
}

/// Sets the parent of `child`, a child run just over, going again when it
/// waits on it (in the transaction of the child's last step). Returns
/// whether it did.
async fn wake_parent(
    tx: &Transaction<'_>,
    child: &RunRecord,
    link: &ParentLink,
    now: Millis,
) -> Result<bool> {
    let parent = match lock_run(tx, &link.run_id).await {
        Ok(parent) => parent,
        // A parent that is not there has nothing to wake.
        Err(StoreError::NotFound(_)) => return Ok(false),
        Err(error) => return Err(error),
    };
    match parent.woken_by(child, now) {
        Some(wake) => {
            apply_limited(tx, &wake, parent, now).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// A run's record, locked for the transaction, or [`StoreError::NotFound`].
pub(crate) async fn lock_run(tx: &Transaction<'_>, run_id: &str) -> Result<RunRecord> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM roomkit_graph.runs WHERE run_id = $1 FOR UPDATE");
    let statement = tx.prepare_cached(&sql).await.map_err(pg)?;
    match tx.query_opt(&statement, &[&run_id]).await.map_err(pg)? {
        Some(row) => rows::run(&row),
        None => Err(not_found_run(run_id)),
    }
}

fn not_found_run(run_id: &str) -> StoreError {
    StoreError::NotFound(format!("run {run_id}"))
}

/// [`apply_step`], then the concurrency limits ([`queue::applied`]).
async fn apply_limited(
    tx: &Transaction<'_>,
    commit: &StepCommit,
    before: RunRecord,
    now: Millis,
) -> Result<(RunRecord, Vec<TranscriptEvent>)> {
    let status_before = before.status;
    let (after, events) = apply_step(tx, commit, before, now).await?;
    Ok((queue::applied(tx, Some(status_before), after, now).await?, events))
}

/// Appends `events` and moves the run from `before` as `commit` says, in
/// `tx` (its concurrency limits are the caller's to apply).
async fn apply_step(
    tx: &Transaction<'_>,
    commit: &StepCommit,
    before: RunRecord,
    now: Millis,
) -> Result<(RunRecord, Vec<TranscriptEvent>)> {
    commit.check(&before, now)?;
    let run_id = &commit.run_id;
    let events: Vec<TranscriptEvent> = (before.last_seq + 1..)
        .zip(&commit.entries)
        .map(|(seq, entry)| TranscriptEvent { run_id: run_id.clone(), seq, at: now, entry: entry.clone() })
        .collect();
    let last_seq = events.last().map_or(before.last_seq, |event| event.seq);
    let written = commit.written_context().map(|written| Value::Object(written).to_string());
    let after = commit.applied_to(before, last_seq, now);

    let update = tx
        .prepare_cached(
            "UPDATE roomkit_graph.runs SET status = $2, current_node_id = $3, previous_node_id = $4, \
             error = $5, version = $6, last_seq = $7, updated_at = $8, wake_at = $9, owner = $10, \
             lease_until = $11, steps = $12, pending = $13 WHERE run_id = $1",
        )
        .await
        .map_err(pg)?;
    let (version, last_seq, steps) = (sql_int(after.version), sql_int(after.last_seq), sql_int(after.steps));
    let status = after.status.as_str();
    let pending = pending_text(&after.pending);
    let params: [&(dyn ToSql + Sync); 13] = [
        run_id,
        &status,
        &after.current_node_id,
        &after.previous_node_id,
        &after.error,
        &version,
        &last_seq,
        &now,
        &after.wake_at,
        &after.owner,
        &after.lease_until,
        &steps,
        &pending,
    ];
    let updated = tx.execute(&update, &params);
    let appended = append(tx, &events, written, &after);
    tokio::try_join!(async { updated.await.map_err(pg) }, appended)?;
    Ok((after, events))
}

/// Appends events to their run's transcript, with, on the last of them, the
/// context entries their commit wrote (if any) and where the commit left the
/// run (`after`); the events hooks hear go to their outbox.
async fn append(
    tx: &Transaction<'_>,
    events: &[TranscriptEvent],
    written: Option<String>,
    after: &RunRecord,
) -> Result<()> {
    let Some(first) = events.first() else { return Ok(()) };
    let seqs: Vec<i64> = events.iter().map(|event| sql_int(event.seq)).collect();
    let ats: Vec<i64> = events.iter().map(|event| event.at).collect();
    let entries = events
        .iter()
        .map(|event| serde_json::to_string(&event.entry))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|err| StoreError::Invalid(format!("an entry cannot be written as JSON: {err}")))?;
    let mut writes: Vec<Option<String>> = vec![None; events.len()];
    let mut positions: Vec<Option<String>> = vec![None; events.len()];
    if let (Some(last), Some(position)) = (writes.last_mut(), positions.last_mut()) {
        *last = written;
        *position = Some(after.position().to_text());
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO roomkit_graph.transcript (run_id, seq, at, entry_json, writes_json, position_json) \
             SELECT $1, seq, at, entry_json, writes_json, position_json \
             FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[]) \
             AS e (seq, at, entry_json, writes_json, position_json)",
        )
        .await
        .map_err(pg)?;
    tx.execute(&insert, &[&first.run_id, &seqs, &ats, &entries, &writes, &positions]).await.map_err(pg)?;
    crate::hooks::deliver_events(tx, events, after).await
}

/// The backend, as metrics name it.
const BACKEND: &str = "postgres";

/// A run's record, or [`StoreError::NotFound`].
pub(crate) async fn find_run(client: &ClientWrapper, run_id: &str) -> Result<RunRecord> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM roomkit_graph.runs WHERE run_id = $1");
    let statement = client.prepare_cached(&sql).await.map_err(pg)?;
    match client.query_opt(&statement, &[&run_id]).await.map_err(pg)? {
        Some(row) => rows::run(&row),
        None => Err(not_found_run(run_id)),
    }
}

/// The text of a lease-changing UPDATE.
const SET_LEASE: &str = "UPDATE roomkit_graph.runs SET owner = $2, lease_until = $3 WHERE run_id = $1";
