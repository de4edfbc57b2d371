//! The store contract (`roomkit_graph_store::contract`) on real SQLite files:
//! each test on a new file in a directory of its own, a store opened on it
//! once per process the test stands for.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::Store;
use roomkit_graph_store::contract::Database;
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
}

async fn database() -> File {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("runs.db");
    File { _dir: dir, path }
}

roomkit_graph_store::contract_tests!(database);
