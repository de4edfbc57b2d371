//! The read connections: a small pool, used on tokio's blocking threads so
//! queries never block the async executor. In WAL mode readers never wait for
//! the writer, and each sees the last committed state.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use roomkit_graph_store::{Cause, StoreError};
use rusqlite::Connection;

use crate::Options;
use crate::error::DbError;
use crate::schema;

/// At most this many idle read connections are kept; more are opened when
/// needed and closed after use.
const MAX_IDLE: usize = 4;

/// Read connections to one file.
pub(crate) struct Readers {
    path: PathBuf,
    options: Options,
    /// A `std` mutex, not a tokio one: it is only held to push or pop a
    /// connection, never across an `.await` or a query.
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, options: Options) -> Self {
        Readers { path, options, idle: Mutex::new(Vec::new()) }
    }

    /// Runs `query` on a read connection on a blocking thread.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || readers.run_blocking(query)).await.map_err(|err| {
            StoreError::Backend(Cause::new(format!("a read task failed: {err}")).with_source(err))
        })?
    }

    fn run_blocking<T>(
        &self,
        query: impl FnOnce(&mut Connection) -> Result<T, DbError>,
    ) -> Result<T, StoreError> {
        let taken = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut conn = match taken {
            Some(conn) => conn,
            None => {
                schema::open_reader(&self.path, &self.options).map_err(|err| err.into_store(&self.path))?
            }
        };
        let result = query(&mut conn).map_err(|err| err.into_store(&self.path));
        // A query that failed mid-transaction rolls it back when its
        // `Transaction` drops, so the connection is clean to reuse.
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }
}
