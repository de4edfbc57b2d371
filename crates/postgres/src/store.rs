//! [`PostgresStore`]: the handle, and the [`Store`] operations, each one
//! transaction on a pooled connection.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Transaction};
use futures_util::stream::BoxStream;
use roomkit_graph::{EngineState, Graph};
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{
    FilterValue, HeldKey, Lease, Millis, NewRun, RunFilter, RunKey, RunRecord, StepCommit, StoreError,
    StoredGraph, TokenRecord, TranscriptEvent, TranscriptPages, Wakes, WorkerRegistration, now_millis,
    pending_text, read_stored,
};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;

use crate::error::{is_unique_violation, pg, pool_error, sql_int, stored_count};
use crate::listen;
use crate::rows::{self, GRAPH_COLUMNS, RUN_COLUMNS};
use crate::{Options, schema, tls, workers};

/// How many times an operation is tried while the database is unavailable
/// (about 10 s in all with the pauses below).
const ATTEMPTS: usize = 9;

/// The pause after the first unavailable try; it doubles after each.
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between two tries.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// How often a follower reads the database without a notification.
const POLL: Duration = Duration::from_millis(500);

/// A [`Store`] in a PostgreSQL database, which any number of processes, on
/// any number of machines, may share.
///
/// Cheap to clone: clones share the connection pool and the listening
/// connection. Each operation is one transaction; a step is committed with
/// its run row locked (`SELECT ... FOR UPDATE`) and its version checked, so
/// two processes never commit the same step, and a run is driven by the
/// holder of its lease.
///
/// Connections use TLS as the URL's `sslmode` asks (`prefer` by default:
/// when the server offers it); like libpq in these modes, the server's
/// certificate is not checked against an authority.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Wakes this store's followers when their run is notified.
    wakes: Wakes,
    listener: JoinHandle<()>,
    /// Run ids this store committed to, for [`listen::notify`] to announce.
    committed: mpsc::UnboundedSender<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`,
    /// or the key=value form), and creates the store's tables there when it
    /// has none.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a URL that is not PostgreSQL's,
    /// [`StoreError::Unavailable`] when the server cannot be reached,
    /// [`StoreError::Backend`] when it refuses the login or has no such
    /// database, [`StoreError::Foreign`] when the database has a schema
    /// `roomkit_graph` that is not ours (or of a newer version); such a
    /// database is left untouched.
    ///
    /// ```no_run
    /// use roomkit_graph::{Graph, Trigger};
    /// use roomkit_graph_postgres::PostgresStore;
    /// use roomkit_graph_store::prelude::*;
    /// use roomkit_graph_store::DEFAULT_ORG;
    ///
    /// # async fn example() -> Result<(), roomkit_graph_store::StoreError> {
    /// let store = PostgresStore::connect("postgres://app@db.internal/runs").await?;
    /// let stored = store.save_graph(DEFAULT_ORG, &Graph::new("review", "Review", Trigger::manual())).await?;
    /// assert_eq!(stored.version, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresStore::connect_with(url, Options::default()).await
    }

    /// [`PostgresStore::connect`] with other [`Options`].
    ///
    /// # Errors
    ///
    /// As [`PostgresStore::connect`]; [`StoreError::Invalid`] for
    /// `max_connections` 0.
    pub async fn connect_with(url: &str, options: Options) -> Result<Self, StoreError> {
        if options.max_connections == 0 {
            return Err(StoreError::Invalid("a store needs at least one connection".into()));
        }
        let config: tokio_postgres::Config =
            url.parse().map_err(|err| StoreError::Invalid(format!("not a PostgreSQL URL: {err}")))?;
        let target = describe_target(&config);
        let tls = tls::connector()?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .build()
            .map_err(|err| StoreError::Backend(format!("cannot make a pool for {target}: {err}")))?;
        let mut client = pool.get().await.map_err(|err| match pool_error(err) {
            StoreError::Backend(detail) => StoreError::Backend(format!("{target}: {detail}")),
            StoreError::Unavailable(detail) => StoreError::Unavailable(format!("{target}: {detail}")),
            other => other,
        })?;
        schema::prepare(&mut client, &target).await?;
        workers::create_table(&mut client).await?;
        drop(client);

        let wakes = Wakes::default();
        let listener = tokio::spawn(listen::listen(config, tls, wakes.clone()));
        let (committed, to_notify) = mpsc::unbounded_channel();
        tokio::spawn(listen::notify(pool.clone(), to_notify));
        Ok(PostgresStore { inner: Arc::new(Inner { pool, wakes, listener, committed }) })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// Runs `operation`, and again while it finds the database unavailable
    /// (a lost connection, a server restarting), waiting longer each time, up
    /// to [`ATTEMPTS`] tries in all.
    async fn retrying<T, F, Fut>(&self, mut operation: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut pause = FIRST_PAUSE;
        for _ in 1..ATTEMPTS {
            match operation().await {
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                done => return done,
            }
        }
        operation().await
    }

    /// Tells the followers of `run_id`, in every process, that it has new events.
    fn announce(&self, run_id: &str) {
        // The task ends only with the store.
        let _ = self.inner.committed.send(run_id.to_owned());
    }
}

/// Where `config` connects, for messages: `database DB on HOST:PORT as USER`
/// (never the password).
fn describe_target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let database = config.get_dbname().unwrap_or(user);
    format!("PostgreSQL database {database} on {host}:{port} as {user}")
}

/// A run's record, locked for the transaction, or [`StoreError::NotFound`].
async fn lock_run(tx: &Transaction<'_>, run_id: &str) -> Result<RunRecord, StoreError> {
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

/// Appends `events` and moves the run from `before` as `commit` says, in
/// `tx`.
async fn apply_step(
    tx: &Transaction<'_>,
    commit: &StepCommit,
    before: RunRecord,
    now: Millis,
) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError> {
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
    let appended = append(tx, &events, written);
    tokio::try_join!(async { updated.await.map_err(pg) }, appended)?;
    Ok((after, events))
}

/// Appends events to their run's transcript, the context entries their
/// commit wrote (if any) on the last of them.
async fn append(
    tx: &Transaction<'_>,
    events: &[TranscriptEvent],
    written: Option<String>,
) -> Result<(), StoreError> {
    let Some(first) = events.first() else { return Ok(()) };
    let seqs: Vec<i64> = events.iter().map(|event| sql_int(event.seq)).collect();
    let ats: Vec<i64> = events.iter().map(|event| event.at).collect();
    let entries = events
        .iter()
        .map(|event| serde_json::to_string(&event.entry))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|err| StoreError::Invalid(format!("an entry cannot be written as JSON: {err}")))?;
    let mut writes: Vec<Option<String>> = vec![None; events.len()];
    if let Some(last) = writes.last_mut() {
        *last = written;
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO roomkit_graph.transcript (run_id, seq, at, entry_json, writes_json) \
             SELECT $1, seq, at, entry_json, writes_json \
             FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[]) AS e (seq, at, entry_json, writes_json)",
        )
        .await
        .map_err(pg)?;
    tx.execute(&insert, &[&first.run_id, &seqs, &ats, &entries, &writes]).await.map_err(pg)?;
    Ok(())
}

/// The pages a follower reads: from the pool.
struct Pages(Pool);

#[async_trait]
impl TranscriptPages for Pages {
    async fn page(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError> {
        match self.0.get().await {
            Ok(client) => transcript_page(&client, run_id, after, limit).await,
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
) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError> {
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

/// A run's record, or [`StoreError::NotFound`].
async fn find_run(client: &ClientWrapper, run_id: &str) -> Result<RunRecord, StoreError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM roomkit_graph.runs WHERE run_id = $1");
    let statement = client.prepare_cached(&sql).await.map_err(pg)?;
    match client.query_opt(&statement, &[&run_id]).await.map_err(pg)? {
        Some(row) => rows::run(&row),
        None => Err(not_found_run(run_id)),
    }
}

/// The text of a lease-changing UPDATE.
const SET_LEASE: &str = "UPDATE roomkit_graph.runs SET owner = $2, lease_until = $3 WHERE run_id = $1";

#[async_trait]
impl GraphStore for PostgresStore {
    async fn save_graph(&self, org: &str, graph: &Graph) -> Result<StoredGraph, StoreError> {
        self.retrying(|| self.save_graph_once(org, graph)).await
    }

    async fn graph(
        &self,
        org: &str,
        graph_id: &str,
        version: Option<u64>,
    ) -> Result<StoredGraph, StoreError> {
        self.retrying(|| self.graph_once(org, graph_id, version)).await
    }

    async fn latest_graph_version(&self, org: &str, graph_id: &str) -> Result<u64, StoreError> {
        self.retrying(|| self.latest_graph_version_once(org, graph_id)).await
    }

    async fn list_graphs(&self, org: Option<&str>) -> Result<Vec<StoredGraph>, StoreError> {
        self.retrying(|| self.list_graphs_once(org)).await
    }

    async fn list_graphs_after(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredGraph>, StoreError> {
        self.retrying(|| self.list_graphs_after_once(org, after, limit)).await
    }
}

#[async_trait]
impl AccessStore for PostgresStore {
    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.retrying(|| self.create_token_once(token)).await
    }

    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.retrying(|| self.token_once(token_hash)).await
    }

    async fn set_secret(
        &self,
        org: &str,
        graph_id: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        self.retrying(|| self.set_secret_once(org, graph_id, name, value)).await
    }

    async fn secret(&self, org: &str, graph_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        self.retrying(|| self.secret_once(org, graph_id, name)).await
    }
}

#[async_trait]
impl RunStore for PostgresStore {
    async fn create_run(&self, run: NewRun) -> Result<RunRecord, StoreError> {
        self.retrying(|| self.create_run_once(&run)).await
    }

    async fn commit_step(&self, commit: StepCommit) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError> {
        self.retrying(|| self.commit_step_once(&commit)).await
    }

    async fn claim_run(&self, run_id: &str, lease: &Lease) -> Result<Option<RunRecord>, StoreError> {
        self.retrying(|| self.claim_run_once(run_id, lease)).await
    }

    async fn renew_lease(&self, run_id: &str, lease: &Lease) -> Result<RunRecord, StoreError> {
        self.retrying(|| self.renew_lease_once(run_id, lease)).await
    }

    async fn release_run(&self, run_id: &str, owner: &str) -> Result<bool, StoreError> {
        self.retrying(|| self.release_run_once(run_id, owner)).await
    }

    async fn claimable_runs(&self, now: Millis, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.retrying(|| self.claimable_runs_once(now, limit)).await
    }

    async fn run(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        self.retrying(|| self.run_once(run_id)).await
    }

    async fn load_run(&self, run_id: &str) -> Result<(RunRecord, EngineState), StoreError> {
        self.retrying(|| self.load_run_once(run_id)).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        self.retrying(|| self.list_runs_once(filter)).await
    }
}

#[async_trait]
impl TranscriptStore for PostgresStore {
    async fn transcript(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<TranscriptEvent>, StoreError> {
        self.retrying(|| self.transcript_once(run_id, after, limit)).await
    }

    fn follow(&self, run_id: &str, after: u64) -> BoxStream<'static, Result<TranscriptEvent, StoreError>> {
        self.inner.wakes.follow(Pages(self.inner.pool.clone()), POLL, run_id, after)
    }
}

#[async_trait]
impl WorkerStore for PostgresStore {
    async fn register_worker(
        &self,
        registration: &WorkerRegistration,
    ) -> Result<WorkerRegistration, StoreError> {
        self.retrying(|| async {
            workers::register(&mut self.client().await?, registration, now_millis()).await
        })
        .await
    }

    async fn release_worker(&self, worker_id: &str, instance: &str) -> Result<(), StoreError> {
        self.retrying(|| async { workers::release(&*self.client().await?, worker_id, instance).await }).await
    }

    async fn runs_held_by(&self, owner: &str) -> Result<Vec<RunRecord>, StoreError> {
        self.retrying(|| async { workers::runs_held_by(&*self.client().await?, owner).await }).await
    }
}

/// The operations, each tried once; [`PostgresStore::retrying`] tries them
/// again while the database is unavailable.
impl PostgresStore {
    async fn save_graph_once(&self, org: &str, graph: &Graph) -> Result<StoredGraph, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Versions of one graph id are numbered one at a time.
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))", &[&org, &graph.id])
            .await
            .map_err(pg)?;
        let latest: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM roomkit_graph.graphs WHERE org = $1 AND graph_id = $2",
                &[&org, &graph.id],
            )
            .await
            .map_err(pg)?
            .get(0);
        let version = latest + 1;
        let created_at = now_millis();
        tx.execute(
            "INSERT INTO roomkit_graph.graphs (org, graph_id, version, graph_json, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&org, &graph.id, &version, &graph.to_json(), &created_at],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(StoredGraph {
            org: org.to_owned(),
            graph: graph.clone(),
            version: stored_count(version, "graph version")?,
            created_at,
        })
    }

    async fn graph_once(
        &self,
        org: &str,
        graph_id: &str,
        version: Option<u64>,
    ) -> Result<StoredGraph, StoreError> {
        let client = self.client().await?;
        let row = match version {
            Some(version) => {
                let sql = format!(
                    "SELECT {GRAPH_COLUMNS} FROM roomkit_graph.graphs \
                     WHERE org = $1 AND graph_id = $2 AND version = $3"
                );
                client.query_opt(&sql, &[&org, &graph_id, &sql_int(version)]).await.map_err(pg)?
            }
            None => {
                let sql = format!(
                    "SELECT {GRAPH_COLUMNS} FROM roomkit_graph.graphs \
                     WHERE org = $1 AND graph_id = $2 ORDER BY version DESC LIMIT 1"
                );
                client.query_opt(&sql, &[&org, &graph_id]).await.map_err(pg)?
            }
        };
        match row {
            Some(row) => rows::graph(&row),
            None => Err(StoreError::NotFound(match version {
                Some(version) => format!("graph {graph_id} version {version}"),
                None => format!("graph {graph_id}"),
            })),
        }
    }

    async fn latest_graph_version_once(&self, org: &str, graph_id: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT max(version) FROM roomkit_graph.graphs WHERE org = $1 AND graph_id = $2")
            .await
            .map_err(pg)?;
        let latest: Option<i64> = client.query_one(&statement, &[&org, &graph_id]).await.map_err(pg)?.get(0);
        match latest {
            Some(version) => stored_count(version, "graph version"),
            None => Err(StoreError::NotFound(format!("graph {graph_id}"))),
        }
    }

    async fn list_graphs_once(&self, org: Option<&str>) -> Result<Vec<StoredGraph>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT DISTINCT ON (org, graph_id) {GRAPH_COLUMNS} FROM roomkit_graph.graphs \
             WHERE $1::text IS NULL OR org = $1 ORDER BY org, graph_id, version DESC"
        );
        let found = client.query(&sql, &[&org]).await.map_err(pg)?;
        found.iter().map(rows::graph).collect()
    }

    async fn list_graphs_after_once(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredGraph>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT DISTINCT ON (graph_id) {GRAPH_COLUMNS} FROM roomkit_graph.graphs \
             WHERE org = $1 AND ($2::text IS NULL OR graph_id > $2) ORDER BY graph_id, version DESC LIMIT $3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found = client.query(&sql, &[&org, &after, &limit]).await.map_err(pg)?;
        found.iter().map(rows::graph).collect()
    }

    async fn create_token_once(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO roomkit_graph.tokens (token_hash, org, label, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (token_hash) DO NOTHING",
                &[&token.token_hash, &token.org, &token.label, &token.created_at],
            )
            .await
            .map_err(pg)?;
        if inserted == 0 {
            return Err(StoreError::Invalid("a token with this hash exists already".into()));
        }
        Ok(())
    }

    async fn token_once(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT token_hash, org, label, created_at FROM roomkit_graph.tokens WHERE token_hash = $1",
            )
            .await
            .map_err(pg)?;
        let row = client.query_opt(&statement, &[&token_hash]).await.map_err(pg)?;
        Ok(row.map(|row| TokenRecord {
            token_hash: row.get(0),
            org: row.get(1),
            label: row.get(2),
            created_at: row.get(3),
        }))
    }

    async fn set_secret_once(
        &self,
        org: &str,
        graph_id: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        match value {
            Some(value) => {
                client
                    .execute(
                        "INSERT INTO roomkit_graph.secrets (org, graph_id, name, value, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, graph_id, name) \
                         DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        &[&org, &graph_id, &name, &value, &now_millis()],
                    )
                    .await
            }
            None => {
                client
                    .execute(
                        "DELETE FROM roomkit_graph.secrets WHERE org = $1 AND graph_id = $2 AND name = $3",
                        &[&org, &graph_id, &name],
                    )
                    .await
            }
        }
        .map_err(pg)?;
        Ok(())
    }

    async fn secret_once(&self, org: &str, graph_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM roomkit_graph.secrets WHERE org = $1 AND graph_id = $2 AND name = $3",
                &[&org, &graph_id, &name],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn create_run_once(&self, run: &NewRun) -> Result<RunRecord, StoreError> {
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
        let now = now_millis();
        if let Some(key) = &run.key {
            take_key(&tx, key, now).await?;
        }
        let record = run.opening_record(now);
        let key = run.key.as_ref();
        let inserted = tx
            .execute(
                "INSERT INTO roomkit_graph.runs (run_id, org, graph_id, graph_version, status, current_node_id, \
                 previous_node_id, error, version, last_seq, created_at, updated_at, run_key, owner, lease_until, \
                 key_hash, key_expires_at, steps, pending) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 1, 1, $8, $8, $9, $10, $11, $12, $13, $14, $15)",
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
        let started = run.started_event(now);
        // The context the run starts with is kept on its first event.
        let context = run.starting_context().map(|context| Value::Object(context.clone()).to_string());
        append(&tx, std::slice::from_ref(&started), context).await?;
        let record = match &run.first_step {
            None => record,
            Some(step) => apply_step(&tx, step, record, now_millis()).await?.0,
        };
        tx.commit().await.map_err(pg)?;
        self.announce(run_id);
        Ok(record)
    }

    async fn commit_step_once(
        &self,
        commit: &StepCommit,
    ) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let before = lock_run(&tx, &commit.run_id).await?;
        let applied = apply_step(&tx, commit, before, now_millis()).await?;
        tx.commit().await.map_err(pg)?;
        if !applied.1.is_empty() {
            self.announce(&commit.run_id);
        }
        Ok(applied)
    }

    async fn claim_run_once(&self, run_id: &str, lease: &Lease) -> Result<Option<RunRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let before = lock_run(&tx, run_id).await?;
        let Some(claimed) = before.claimed_by(lease, now_millis()) else { return Ok(None) };
        if before.lease().as_ref() != Some(&claimed) {
            tx.execute(SET_LEASE, &[&run_id, &claimed.owner, &claimed.until]).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
        }
        Ok(Some(before.held_by(claimed)))
    }

    async fn renew_lease_once(&self, run_id: &str, lease: &Lease) -> Result<RunRecord, StoreError> {
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

    async fn release_run_once(&self, run_id: &str, owner: &str) -> Result<bool, StoreError> {
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

    async fn claimable_runs_once(&self, now: Millis, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
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

    async fn run_once(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        find_run(&*self.client().await?, run_id).await
    }

    async fn load_run_once(&self, run_id: &str) -> Result<(RunRecord, EngineState), StoreError> {
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
        let mut context = Map::new();
        for written in writes {
            let written: Map<String, Value> = read_stored(&written).map_err(|err| {
                StoreError::Backend(format!("the context of run {run_id} does not read back: {err}"))
            })?;
            context.extend(written);
        }
        let state = record.engine_state(context);
        Ok((record, state))
    }

    async fn list_runs_once(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let client = self.client().await?;
        let (clause, values) = filter.where_clause(|n| format!("${n}"));
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

    async fn transcript_once(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<TranscriptEvent>, StoreError> {
        Ok(transcript_page(&*self.client().await?, run_id, after, limit).await?.1)
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
) -> Result<Option<HeldKey>, StoreError> {
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
async fn take_key(tx: &Transaction<'_>, key: &RunKey, now: Millis) -> Result<(), StoreError> {
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
