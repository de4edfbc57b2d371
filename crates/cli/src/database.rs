//! Which database a command works on (`--database`): a SQLite file or a
//! PostgreSQL server, and opening a runner on it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use roomkit_graph::Handlers;
use roomkit_graph_postgres::PostgresStore;
use roomkit_graph_runner::{DEFAULT_HEARTBEAT, Runner};
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::Store;

/// A `--database` value: a SQLite file path or `sqlite://PATH`, or a
/// `postgres://` (`postgresql://`) URL. Read after the arguments are parsed,
/// so that a refusal never repeats the URL (it may hold a password).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Database {
    /// A SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (it may hold a password).
    Postgres(String),
}

impl FromStr for Database {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once("://") {
            Some(("postgres" | "postgresql", _)) => Ok(Database::Postgres(text.to_owned())),
            Some(("sqlite", "")) => Err("sqlite:// needs a file path after it".to_owned()),
            Some(("sqlite", path)) => Ok(Database::Sqlite(PathBuf::from(path))),
            Some((scheme, _)) => Err(format!(
                "{scheme}:// is not a kind this build knows \
                 (a SQLite file path, sqlite://PATH or postgres://...)"
            )),
            None if text.is_empty() => Err("the database path is empty".to_owned()),
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
    /// `worker_id` when one is given.
    pub(crate) async fn open(
        &self,
        connections: usize,
        handlers: Handlers,
        worker_id: Option<&str>,
    ) -> anyhow::Result<Runner> {
        match self {
            Database::Postgres(url) => {
                // The URL may hold a password: the error names the server, not the URL.
                let options = roomkit_graph_postgres::Options { max_connections: connections };
                let store =
                    PostgresStore::connect_with(url, options).await.context("cannot open the database")?;
                runner(store, handlers, worker_id).await
            }
            Database::Sqlite(path) => runner(open_sqlite(path)?, handlers, worker_id).await,
        }
    }
}

fn open_sqlite(path: &Path) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(path).with_context(|| format!("cannot open the database {}", path.display()))
}

/// A runner on `store`: worker `worker_id`, or a new worker.
async fn runner(
    store: impl Store + 'static,
    handlers: Handlers,
    worker_id: Option<&str>,
) -> anyhow::Result<Runner> {
    match worker_id {
        Some(worker_id) => Ok(Runner::register(store, handlers, worker_id, DEFAULT_HEARTBEAT).await?),
        None => Ok(Runner::new(store, handlers)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_a_file_or_a_url_of_a_known_kind() {
        assert_eq!("runs.db".parse(), Ok(Database::Sqlite(PathBuf::from("runs.db"))));
        assert_eq!("sqlite:///tmp/runs.db".parse(), Ok(Database::Sqlite(PathBuf::from("/tmp/runs.db"))));
        let url = "postgres://u:secret@127.0.0.1:5432/runs";
        assert_eq!(url.parse(), Ok(Database::Postgres(url.to_owned())));
        assert!(!format!("{:?}", Database::Postgres(url.to_owned())).contains("secret"));
        let refused = "mysql://app@h/db".parse::<Database>().unwrap_err();
        assert!(refused.contains("mysql:// is not a kind this build knows"), "{refused}");
        assert!(!refused.contains("app@"), "the URL is not repeated: {refused}");
        assert!("".parse::<Database>().is_err());
        assert!("sqlite://".parse::<Database>().is_err());
    }
}
