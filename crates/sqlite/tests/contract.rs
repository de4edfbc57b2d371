//! The store contract (`roomkit_graph_store::contract`) on real SQLite files:
//! each test on a new file in a directory of its own, a store opened on it
//! once per process the test stands for.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::contract::Database;
use roomkit_graph_store::{Millis, Store};
use tempfile::TempDir;

/// A database file of a test's own, removed with its directory at the end.
struct File {
    _dir: TempDir,
    path: PathBuf,
}

#[async_trait]
impl Database for File {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path).expect("the file opens"))
    }

    async fn set_every_run_created_at(&self, at: Millis) -> u64 {
        let conn = rusqlite::Connection::open(&self.path).expect("the file opens");
        let changed = conn.execute("UPDATE runs SET created_at = ?1", [at]).expect("the runs are updated");
        u64::try_from(changed).expect("a count")
    }
}

async fn database() -> File {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("runs.db");
    File { _dir: dir, path }
}

roomkit_graph_store::contract_tests!(database);
