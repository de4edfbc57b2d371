//! [`SqliteStore`]: the handle, and the [`Store`] operations routed to the
//! writer thread or the read pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use roomkit_graph::{EngineState, Graph};
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{
    Lease, Millis, NewRun, RunFilter, RunRecord, StepCommit, StoreError, StoredGraph, TokenRecord,
    TranscriptEvent, Wakes, WorkerRegistration,
};
use tokio::sync::oneshot;

use crate::pool::Readers;
use crate::write_thread::{self, Reply, Request};
use crate::{Options, follow, read, schema, workers, write};

/// A [`Store`] in one SQLite file.
///
/// Cheap to clone: clones share the writer thread, the read connections and
/// the wakes of their followers. The writer thread ends when the last
/// clone is dropped (dropping it waits for the writer's current group to
/// finish, a few milliseconds at most).
///
/// Several stores, in this process or others, may open the same file: SQLite
/// locks it for each transaction, and [`Store::follow`] sees their commits too.
///
/// Writes are queued to the writer thread; a write whose caller stops waiting
/// (its future dropped) may still be applied. Reload the run to know: the run
/// version makes a retried step safe, as a duplicate gets
/// [`StoreError::Conflict`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// None only while dropping.
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<thread::JoinHandle<()>>,
    readers: Arc<Readers>,
    /// Wakes this store's followers after each commit.
    wakes: Wakes,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer's loop once its group is answered;
        // joining closes the write connection before the store is gone.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating it if missing, with the
    /// default [`Options`].
    ///
    /// Opening does file I/O on the calling thread: call it at startup, or in
    /// `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotADatabase`] when the file is not SQLite,
    /// [`StoreError::Foreign`] when it is another application's database (or of
    /// a newer schema), [`StoreError::Locked`] when another process holds it
    /// past the busy timeout. A file that is not ours is left untouched.
    ///
    /// ```
    /// use roomkit_graph::{EngineState, Graph, Trigger};
    /// use roomkit_graph_sqlite::SqliteStore;
    /// use roomkit_graph_store::prelude::*;
    /// use roomkit_graph_store::{DEFAULT_ORG, Entry, NewRun, RunStatus, StepCommit};
    /// use serde_json::{Map, json};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let store = SqliteStore::open(dir.path().join("runs.db"))?;
    ///
    /// let stored = store.save_graph(DEFAULT_ORG, &Graph::new("review", "Review", Trigger::manual())).await?;
    /// let state = EngineState {
    ///     context: Map::new(),
    ///     current_node_id: Some("start".into()),
    ///     previous_node_id: None,
    ///     waiting: false,
    ///     run_id: "run-1".into(),
    ///     pending: vec![],
    /// };
    /// let run = store
    ///     .create_run(NewRun {
    ///         org: DEFAULT_ORG.into(),
    ///         graph_id: "review".into(),
    ///         graph_version: stored.version,
    ///         trigger: json!({}),
    ///         state,
    ///         key: None,
    ///         first_step: None,
    ///         lease: None,
    ///     })
    ///     .await?;
    /// let (run, _) = store
    ///     .commit_step(StepCommit {
    ///         wake_at: None,
    ///         run_id: run.run_id,
    ///         expected_version: run.version,
    ///         writes: vec![("start".into(), json!({"output": {"ok": true}}))],
    ///         current_node_id: None,
    ///         previous_node_id: Some("start".into()),
    ///         status: RunStatus::Completed,
    ///         error: None,
    ///         entries: vec![Entry::RunCompleted],
    ///         lease: None,
    ///         steps: 0, pending: Vec::new(),
    ///     })
    ///     .await?;
    /// assert_eq!((run.version, run.last_seq), (2, 2));
    ///
    /// let (_, state) = store.load_run("run-1").await?;
    /// assert_eq!(state.context["start"], json!({"output": {"ok": true}}));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, Options::default())
    }

    /// Opens the store in the file at `path` with `options` (a busy timeout, a
    /// file-size limit); see [`SqliteStore::open`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use roomkit_graph_sqlite::{Options, SqliteStore};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let options = Options { busy_timeout: Duration::from_millis(100), max_size_bytes: Some(1 << 20) };
    /// let store = SqliteStore::open_with(dir.path().join("runs.db"), options)?;
    /// assert!(store.path().ends_with("runs.db"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = schema::open_writer(&path, &options)?;
        workers::create_table(&conn).map_err(|err| err.into_store(&path))?;
        let wakes = Wakes::default();
        let (requests, writer) = write_thread::spawn(conn, path.clone(), wakes.clone())?;
        let readers = Arc::new(Readers::new(path.clone(), options));
        Ok(SqliteStore {
            inner: Arc::new(Inner { path, requests: Some(requests), writer: Some(writer), readers, wakes }),
        })
    }

    /// The database file.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = roomkit_graph_sqlite::SqliteStore::open(dir.path().join("runs.db"))?;
    /// assert_eq!(store.path(), dir.path().join("runs.db"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Sends a write to the writer thread and waits for its answer.
    async fn write<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let requests = self.inner.requests.as_ref().ok_or_else(writer_gone)?;
        requests.send(request(reply)).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> StoreError {
    StoreError::Backend("the writer thread has stopped".into())
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

#[async_trait]
impl GraphStore for SqliteStore {
    async fn save_graph(&self, org: &str, graph: &Graph) -> Result<StoredGraph, StoreError> {
        let (org, graph) = (org.to_owned(), graph.clone());
        self.write(|reply| Request::SaveGraph { org, graph, reply }).await
    }

    async fn graph(
        &self,
        org: &str,
        graph_id: &str,
        version: Option<u64>,
    ) -> Result<StoredGraph, StoreError> {
        let (org, graph_id) = (org.to_owned(), graph_id.to_owned());
        self.inner.readers.run(move |conn| read::graph(conn, &org, &graph_id, version)).await
    }

    async fn latest_graph_version(&self, org: &str, graph_id: &str) -> Result<u64, StoreError> {
        let (org, graph_id) = (org.to_owned(), graph_id.to_owned());
        self.inner.readers.run(move |conn| read::latest_graph_version(conn, &org, &graph_id)).await
    }

    async fn list_graphs(&self, org: Option<&str>) -> Result<Vec<StoredGraph>, StoreError> {
        let org = org.map(str::to_owned);
        self.inner.readers.run(move |conn| read::list_graphs(conn, org.as_deref())).await
    }

    async fn list_graphs_after(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredGraph>, StoreError> {
        let (org, after) = (org.to_owned(), after.map(str::to_owned));
        self.inner.readers.run(move |conn| read::list_graphs_after(conn, &org, after.as_deref(), limit)).await
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let token = token.clone();
        let change = Box::new(move |conn: &rusqlite::Connection| write::create_token(conn, &token));
        self.write(|reply| Request::Change { change, reply }).await
    }

    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.inner.readers.run(move |conn| read::token(conn, &token_hash)).await
    }

    async fn set_secret(
        &self,
        org: &str,
        graph_id: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let (org, graph_id, name) = (org.to_owned(), graph_id.to_owned(), name.to_owned());
        let value = value.map(str::to_owned);
        let change = Box::new(move |conn: &rusqlite::Connection| {
            write::set_secret(conn, &org, &graph_id, &name, value.as_deref())
        });
        self.write(|reply| Request::Change { change, reply }).await
    }

    async fn secret(&self, org: &str, graph_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        let (org, graph_id, name) = (org.to_owned(), graph_id.to_owned(), name.to_owned());
        self.inner.readers.run(move |conn| read::secret(conn, &org, &graph_id, &name)).await
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, run: NewRun) -> Result<RunRecord, StoreError> {
        self.write(|reply| Request::CreateRun { run: Box::new(run), reply }).await
    }

    async fn commit_step(&self, commit: StepCommit) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError> {
        self.write(|reply| Request::CommitStep { commit, reply }).await
    }

    async fn claim_run(&self, run_id: &str, lease: &Lease) -> Result<Option<RunRecord>, StoreError> {
        let (run_id, lease) = (run_id.to_owned(), lease.clone());
        self.write(|reply| Request::Claim { run_id, lease, reply }).await
    }

    async fn renew_lease(&self, run_id: &str, lease: &Lease) -> Result<RunRecord, StoreError> {
        let (run_id, lease) = (run_id.to_owned(), lease.clone());
        self.write(|reply| Request::Renew { run_id, lease, reply }).await
    }

    async fn release_run(&self, run_id: &str, owner: &str) -> Result<bool, StoreError> {
        let (run_id, owner) = (run_id.to_owned(), owner.to_owned());
        self.write(|reply| Request::Release { run_id, owner, reply }).await
    }

    async fn claimable_runs(&self, now: Millis, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.readers.run(move |conn| read::claimable_runs(conn, now, limit)).await
    }

    async fn run(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        let run_id = run_id.to_owned();
        self.inner.readers.run(move |conn| read::run(conn, &run_id)).await
    }

    async fn load_run(&self, run_id: &str) -> Result<(RunRecord, EngineState), StoreError> {
        let run_id = run_id.to_owned();
        self.inner.readers.run(move |conn| read::load_run(conn, &run_id)).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let filter = filter.clone();
        self.inner.readers.run(move |conn| read::list_runs(conn, &filter)).await
    }
}

#[async_trait]
impl TranscriptStore for SqliteStore {
    async fn transcript(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<TranscriptEvent>, StoreError> {
        let run_id = run_id.to_owned();
        let page = self.inner.readers.run(move |conn| read::transcript_page(conn, &run_id, after, limit));
        Ok(page.await?.1)
    }

    fn follow(&self, run_id: &str, after: u64) -> BoxStream<'static, Result<TranscriptEvent, StoreError>> {
        let pages = follow::Pages(Arc::clone(&self.inner.readers));
        self.inner.wakes.follow(pages, follow::POLL, run_id, after)
    }
}

#[async_trait]
impl WorkerStore for SqliteStore {
    async fn register_worker(
        &self,
        registration: &WorkerRegistration,
    ) -> Result<WorkerRegistration, StoreError> {
        let registration = registration.clone();
        self.write(|reply| Request::Register { registration, reply }).await
    }

    async fn release_worker(&self, worker_id: &str, instance: &str) -> Result<(), StoreError> {
        let (worker_id, instance) = (worker_id.to_owned(), instance.to_owned());
        let change =
            Box::new(move |conn: &rusqlite::Connection| workers::release(conn, &worker_id, &instance));
        self.write(|reply| Request::Change { change, reply }).await
    }

    async fn runs_held_by(&self, owner: &str) -> Result<Vec<RunRecord>, StoreError> {
        let owner = owner.to_owned();
        self.inner.readers.run(move |conn| read::runs_held_by(conn, &owner)).await
    }
}
