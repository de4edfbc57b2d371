//! Which database a runner opens: a SQLite file (a path, `pathlib.Path`, or
//! `sqlite://PATH`) or a PostgreSQL server (`postgres://` or
//! `postgresql://`), read as the command line reads `--database`.

use std::fmt;
use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use roomkit_graph::Handlers;
use roomkit_graph_postgres::PostgresStore;
use roomkit_graph_runner::{DEFAULT_HEARTBEAT, Runner};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::Store;

use super::errors::{Refusal, register_error, store_error};

/// A database to open.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Database {
    /// A SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (it may hold a password: never shown).
    Postgres(String),
}

/// Never shows a PostgreSQL URL, which may hold a password.
impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            Database::Postgres(_) => f.write_str("Postgres(***)"),
        }
    }
}

impl Database {
    /// Reads `database`: text (a path or a URL) or a path-like object.
    pub(crate) fn from_py(database: &Bound<'_, PyAny>) -> PyResult<Database> {
        if let Ok(text) = database.extract::<String>() {
            return Database::parse(&text).map_err(PyValueError::new_err);
        }
        match database.extract::<PathBuf>() {
            Ok(path) => Ok(Database::Sqlite(path)),
            Err(_) => Err(PyTypeError::new_err(format!(
                "the database is a SQLite file path or a postgres:// URL, not a {}",
                database.get_type().name()?
            ))),
        }
    }

    /// Reads a path or a URL; a refusal never repeats a URL.
    fn parse(text: &str) -> Result<Database, String> {
        match text.split_once("://") {
            Some(("postgres" | "postgresql", _)) => Ok(Database::Postgres(text.to_owned())),
            Some(("sqlite", "")) => Err("sqlite:// needs a file path after it".to_owned()),
            Some(("sqlite", path)) => Ok(Database::Sqlite(PathBuf::from(path))),
            Some((scheme, _)) => Err(format!(
                "{scheme}:// is not a database this package opens \
                 (a SQLite file path, sqlite://PATH or postgres://...)"
            )),
            None if text.is_empty() => Err("the database path is empty".to_owned()),
            None => Ok(Database::Sqlite(PathBuf::from(text))),
        }
    }

    /// A runner on this database executing nodes with `handlers`, with at
    /// most `connections` connections to PostgreSQL; worker `worker` when
    /// one is given.
    pub(crate) async fn open(
        self,
        handlers: Handlers,
        connections: usize,
        worker: Option<String>,
    ) -> PyResult<Runner> {
        match self {
            Database::Sqlite(path) => {
                // Opening reads and may create the file: off the async threads.
                let opened = tokio::task::spawn_blocking(move || SqliteStore::open(path))
                    .await
                    .map_err(|_| Refusal::Store.err("opening the SQLite database stopped abnormally"))?;
                runner(opened.map_err(store_error)?, handlers, worker).await
            }
            Database::Postgres(url) => {
                let options = roomkit_graph_postgres::Options { max_connections: connections };
                let store = PostgresStore::connect_with(&url, options).await.map_err(store_error)?;
                runner(store, handlers, worker).await
            }
        }
    }
}

/// A runner on `store`: worker `worker`, or one with an owner id of its own.
async fn runner(store: impl Store + 'static, handlers: Handlers, worker: Option<String>) -> PyResult<Runner> {
    match worker {
        Some(worker) => {
            Runner::register(store, handlers, &worker, DEFAULT_HEARTBEAT).await.map_err(register_error)
        }
        None => Ok(Runner::new(store, handlers)),
    }
}
