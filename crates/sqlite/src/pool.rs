//! The read connections: a few reader threads of our own, each owning one
//! connection for its whole life, so queries never block the async executor.
//! In WAL mode readers never wait for the writer, and each sees the last
//! committed state.
//!
//! Queries wait in one queue and the first free reader takes the next. A
//! connection stays on the thread that opened it: its page cache and
//! statements are allocated and freed by one thread, which keeps a
//! long-running process's memory flat (a connection handed between the
//! many threads of a general blocking pool spreads its allocations over
//! the allocator's per-thread arenas, and they fragment).

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;

use roomkit_graph_store::{Cause, StoreError};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::Options;
use crate::error::DbError;
use crate::schema;

/// How many reader threads (and so read connections) a store has.
const READERS: usize = 4;

/// One query for a reader: it is handed the reader's connection, or why the
/// reader could not open one.
type Job = Box<dyn FnOnce(Result<&mut Connection, &StoreError>) + Send>;

/// A query's answer: a query that panicked drops its sender unanswered.
type Answer<T> = oneshot::Receiver<Result<T, StoreError>>;

/// Read connections to one file, on their reader threads. Dropping it ends
/// the threads once their current query is answered, closing the
/// connections.
pub(crate) struct Readers {
    path: Arc<Path>,
    /// None only while dropping.
    queue: Option<mpsc::Sender<Job>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Readers {
    /// Starts the reader threads. Each opens its connection when its first
    /// query comes (and again after a failed open).
    pub(crate) fn start(path: PathBuf, options: Options) -> Result<Self, StoreError> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let path: Arc<Path> = Arc::from(path);
        let mut threads = Vec::with_capacity(READERS);
        for n in 0..READERS {
            let (jobs, path, options) = (Arc::clone(&jobs), Arc::clone(&path), options.clone());
            let thread = thread::Builder::new()
                .name(format!("roomkit-sqlite-reader-{n}"))
                .spawn(move || serve(&jobs, &path, &options))
                .map_err(|err| {
                    StoreError::Backend(
                        Cause::new(format!("cannot start a reader thread: {err}")).with_source(err),
                    )
                })?;
            threads.push(thread);
        }
        Ok(Readers { path, queue: Some(queue), threads })
    }

    /// Runs `query` on a read connection, on a reader thread, and waits for
    /// its answer.
    pub(crate) async fn run<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let (reply, answer): (_, Answer<T>) = oneshot::channel();
        let path = Arc::clone(&self.path);
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => query(conn).map_err(|err| err.into_store(&path)),
                Err(err) => Err(err.clone()),
            };
            // The caller may have stopped waiting; nothing is lost by a read.
            let _ = reply.send(result);
        });
        let queue = self.queue.as_ref().ok_or_else(readers_gone)?;
        queue.send(job).map_err(|_| readers_gone())?;
        answer.await.map_err(|_| StoreError::Backend("a read failed: its query panicked".into()))?
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        // Closing the queue ends each reader's loop; joining closes the
        // connections before the store is gone. A reader never holds the
        // `Readers`, so this never runs on a reader thread.
        drop(self.queue.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A reader thread: takes the next query, runs it on its connection, until
/// the queue closes.
fn serve(jobs: &Mutex<mpsc::Receiver<Job>>, path: &Path, options: &Options) {
    let mut conn: Option<Connection> = None;
    loop {
        // The lock is held only to take one job, never while running it.
        let job = match jobs.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(mpsc::RecvError) => return,
        };
        let opened = match conn.take() {
            Some(open) => Ok(open),
            None => schema::open_reader(path, options).map_err(|err| err.into_store(path)),
        };
        match opened {
            Ok(mut open) => {
                // A query that panics loses its connection (it may be
                // mid-statement), not its reader: the next query opens another.
                if panic::catch_unwind(AssertUnwindSafe(|| job(Ok(&mut open)))).is_ok() {
                    // A query that failed mid-transaction rolled it back when
                    // its `Transaction` dropped, so the connection is clean.
                    conn = Some(open);
                }
            }
            Err(err) => {
                let _ = panic::catch_unwind(AssertUnwindSafe(|| job(Err(&err))));
            }
        }
    }
}

fn readers_gone() -> StoreError {
    StoreError::Backend("the reader threads have stopped".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

    use super::*;

    fn readers(dir: &tempfile::TempDir) -> Readers {
        let path = dir.path().join("read.db");
        drop(schema::open_writer(&path, &Options::default()).unwrap());
        Readers::start(path, Options::default()).unwrap()
    }

    fn thread_name() -> String {
        thread::current().name().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn a_query_runs_on_a_reader_thread_and_one_that_panics_keeps_the_readers() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir);
        let name = readers.run(|_| Ok(thread_name())).await.unwrap();
        assert!(name.starts_with("roomkit-sqlite-reader-"), "{name}");

        // Each reader takes one of these at once (the barrier holds them all).
        let barrier = Arc::new(std::sync::Barrier::new(READERS));
        let failed = futures_util::future::join_all((0..READERS).map(|_| {
            let barrier = Arc::clone(&barrier);
            readers.run(move |_| -> Result<(), DbError> {
                barrier.wait();
                panic!("a bug in a query")
            })
        }))
        .await;
        let panicked = Err(StoreError::Backend("a read failed: its query panicked".into()));
        assert!(failed.iter().all(|failed| failed == &panicked), "{failed:?}");
        // Every reader has panicked once; each opens a new connection.
        let answers =
            futures_util::future::join_all((0..2 * READERS).map(|_| {
                readers.run(|conn| Ok(conn.query_row("SELECT 7", [], |row| row.get::<_, i64>(0))?))
            }))
            .await;
        assert!(answers.iter().all(|answer| answer == &Ok(7)), "{answers:?}");
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_opened_is_a_precise_error_for_each_query() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::start(dir.path().join("missing/read.db"), Options::default()).unwrap();
        for _ in 0..2 {
            let failed = readers.run(|_| Ok(())).await.unwrap_err();
            assert!(failed.to_string().contains("missing/read.db"), "{failed}");
        }
    }

    #[tokio::test]
    async fn dropping_the_readers_closes_their_connections() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir);
        // Every reader opens its connection: they hold the WAL index open.
        let barrier = Arc::new(std::sync::Barrier::new(READERS));
        let opened = futures_util::future::join_all((0..READERS).map(|_| {
            let barrier = Arc::clone(&barrier);
            readers.run(move |conn| {
                barrier.wait();
                Ok(conn.query_row("SELECT count(*) FROM runs", [], |row| row.get::<_, i64>(0))?)
            })
        }))
        .await;
        assert!(opened.iter().all(|count| count == &Ok(0)), "{opened:?}");
        let file = std::fs::canonicalize(dir.path().join("read.db")).unwrap();
        assert_eq!(open_files(&file), READERS, "one open file per reader");
        drop(readers);
        // Joined in drop: every connection is closed.
        assert_eq!(open_files(&file), 0, "a reader connection is still open");
    }

    /// How many of this process's file descriptors are open on `file`.
    fn open_files(file: &Path) -> usize {
        let descriptors = std::fs::read_dir("/proc/self/fd").unwrap();
        descriptors
            .filter(|fd| fd.as_ref().is_ok_and(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to == file)))
            .count()
    }
}
