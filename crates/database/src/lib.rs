//! Which database a program works on, named as people name it (a SQLite
//! file path, `sqlite://PATH`, or a `postgres://` / `postgresql://` URL), and
//! a runner on it. The command line's `--database` and the Python package's
//! `Runner.open` read it with these rules.
//!
//! ```
//! use roomkit_graph::Handlers;
//! use roomkit_graph_database::Database;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let database: Database = format!("sqlite://{}", dir.path().join("runs.db").display()).parse()?;
//! let runner = database.open(4, Handlers::builtin(), Some("worker-1")).await?;
//! assert_eq!(runner.owner(), "worker-1");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use roomkit_graph::Handlers;
use roomkit_graph_postgres::PostgresStore;
use roomkit_graph_runner::{DEFAULT_HEARTBEAT, RegisterError, Runner};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{Store, StoreError};

/// A database: a SQLite file or a PostgreSQL server.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (it may hold a password: never shown).
    Postgres(String),
}

/// Why a database name was refused. Its text never repeats the name, which
/// may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// Why a runner could not be opened on a database.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The SQLite file could not be opened or made.
    #[error("cannot open the database {}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The PostgreSQL server could not be reached or used (the error names
    /// the server, never the URL).
    #[error("cannot open the database")]
    Postgres(#[source] StoreError),
    /// Opening the SQLite file stopped before it ended (its thread panicked
    /// or the runtime shut down).
    #[error("opening the SQLite database {} stopped abnormally", .0.display())]
    Interrupted(PathBuf),
    /// The worker could not be registered.
    #[error(transparent)]
    Register(#[from] RegisterError),
}

impl OpenError {
    /// The store's error behind this one, if it is one.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            OpenError::Sqlite { source, .. } | OpenError::Postgres(source) => Some(source),
            OpenError::Register(RegisterError::Store(source)) => Some(source),
            OpenError::Interrupted(_) | OpenError::Register(_) => None,
        }
    }
}

impl FromStr for Database {
    type Err = ParseError;

    /// Reads a path or a URL.
    ///
    /// ```
    /// use roomkit_graph_database::Database;
    /// use std::path::PathBuf;
    ///
    /// assert_eq!("runs.db".parse(), Ok(Database::Sqlite(PathBuf::from("runs.db"))));
    /// assert_eq!("sqlite:///tmp/r.db".parse(), Ok(Database::Sqlite(PathBuf::from("/tmp/r.db"))));
    /// let url = "postgres://app:secret@127.0.0.1/runs";
    /// assert_eq!(url.parse(), Ok(Database::Postgres(url.to_owned())));
    /// assert!(!format!("{:?}", Database::Postgres(url.to_owned())).contains("secret"));
    /// let refused = "mysql://app@h/db".parse::<Database>().unwrap_err().to_string();
    /// assert!(refused.starts_with("mysql:// is not a database this build opens"));
    /// assert!(!refused.contains("app@"));
    /// assert!("".parse::<Database>().is_err() && "sqlite://".parse::<Database>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once("://") {
            Some(("postgres" | "postgresql", _)) => Ok(Database::Postgres(text.to_owned())),
            Some(("sqlite", "")) => Err(ParseError("sqlite:// needs a file path after it".to_owned())),
            Some(("sqlite", path)) => Ok(Database::Sqlite(PathBuf::from(path))),
            Some((scheme, _)) => Err(ParseError(format!(
                "{scheme}:// is not a database this build opens \
                 (a SQLite file path, sqlite://PATH or postgres://...)"
            ))),
            None if text.is_empty() => Err(ParseError("the database path is empty".to_owned())),
            None => Ok(Database::Sqlite(PathBuf::from(text))),
        }
    }
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
    /// A runner on this database (with at most `connections` connections to
    /// PostgreSQL), executing nodes with `handlers`; registered as worker
    /// `worker_id` when one is given. A SQLite file is opened (and made when
    /// missing) off the async threads.
    pub async fn open(
        &self,
        connections: usize,
        handlers: Handlers,
        worker_id: Option<&str>,
    ) -> Result<Runner, OpenError> {
        match self {
            Database::Postgres(url) => {
                let options = roomkit_graph_postgres::Options { max_connections: connections };
                let store = PostgresStore::connect_with(url, options).await.map_err(OpenError::Postgres)?;
                runner(store, handlers, worker_id).await
            }
            Database::Sqlite(path) => {
                let file = path.clone();
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(file))
                    .await
                    .map_err(|_| OpenError::Interrupted(path.clone()))?
                    .map_err(|source| OpenError::Sqlite { path: path.clone(), source })?;
                runner(store, handlers, worker_id).await
            }
        }
    }
}

/// A runner on `store`: worker `worker_id`, or one with an owner id of its own.
async fn runner(
    store: impl Store + 'static,
    handlers: Handlers,
    worker_id: Option<&str>,
) -> Result<Runner, OpenError> {
    match worker_id {
        Some(worker_id) => Ok(Runner::register(store, handlers, worker_id, DEFAULT_HEARTBEAT).await?),
        None => Ok(Runner::new(store, handlers)),
    }
}
