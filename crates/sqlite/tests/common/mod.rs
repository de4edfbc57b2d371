//! What the file's own tests share: a new file in a directory of its own.
//! The fixtures (graphs, runs, steps) are the store contract's.

use std::path::PathBuf;

use tempfile::TempDir;

/// A fresh directory and the path of a database file in it (not created yet).
pub(crate) fn db_path() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("runs.db");
    (dir, path)
}
