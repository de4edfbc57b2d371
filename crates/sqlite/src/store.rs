//! [`SqliteStore`]: the handle, opening a file, and routing each operation
//! to the writer thread or the read pool (the operations themselves are in
//! the file of their concern).

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;

use roomkit_graph_store::{RunRecord, StoreError, TranscriptEvent, Wakes};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::DbError;
use crate::pool::Readers;
use crate::write_thread::{self, Reply, Request};
use crate::{Options, schema};

/// A [`Store`](roomkit_graph_store::Store) in one SQLite file.
///
/// Cheap to clone: clones share the writer thread, the read connections and
/// the wakes of their followers. The writer thread ends when the last
/// clone is dropped (dropping it waits for the writer's current group to
/// finish, a few milliseconds at most).
///
/// Several stores, in this process or others, may open the same file: SQLite
/// locks it for each transaction, and
/// [`TranscriptStore::follow`](roomkit_graph_store::TranscriptStore::follow)
/// sees their commits too.
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
    ///     children: Default::default(),
    /// };
    /// let run = store
    ///     .create_run(NewRun {
    ///         org: DEFAULT_ORG.into(),
    ///         graph_id: "review".into(),
    ///         graph_version: stored.version,
    ///         at: roomkit_graph_store::now_millis(),
    ///         trigger: json!({}),
    ///         state,
    ///         key: None,
    ///         first_step: None,
    ///         parent: None,
    ///         origin: None,
    ///         lease: None,
    ///         concurrency: None,
    ///     })
    ///     .await?;
    /// let (run, _) = store
    ///     .commit_step(StepCommit {
    ///         wake_at: None,
    ///         run_id: run.run_id,
    ///         expected_version: run.version,
    ///         at: roomkit_graph_store::now_millis(),
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
        schema::create_workers_table(&conn).map_err(|err| err.into_store(&path))?;
        let wakes = Wakes::default();
        let (requests, writer) = write_thread::spawn(conn, path.clone(), wakes.clone())?;
        let readers = Arc::new(Readers::start(path.clone(), options)?);
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

    /// Applies `write` on the writer thread (in the transaction of its group)
    /// and waits for its answer.
    pub(crate) async fn write<T, W>(&self, write: W) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        self.send(|reply| Request::new(write, reply)).await
    }

    /// [`SqliteStore::write`] for a write that appends transcript events:
    /// once committed, they wake the followers.
    pub(crate) async fn write_appending<W>(
        &self,
        write: W,
    ) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError>
    where
        W: FnOnce(&Connection) -> Result<(RunRecord, Vec<TranscriptEvent>), DbError> + Send + 'static,
    {
        self.send(|reply| Request::appending(write, reply)).await
    }

    /// Runs `query` on a read connection, on a reader thread.
    pub(crate) async fn read<T, Q>(&self, query: Q) -> Result<T, StoreError>
    where
        T: Send + 'static,
        Q: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        self.inner.readers.run(query).await
    }

    /// The read connections, for followers.
    pub(crate) fn readers(&self) -> Arc<Readers> {
        Arc::clone(&self.inner.readers)
    }

    /// The wakes of this store's followers.
    pub(crate) fn wakes(&self) -> &Wakes {
        &self.inner.wakes
    }

    /// Sends a request to the writer thread and waits for its answer.
    async fn send<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
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
