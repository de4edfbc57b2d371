//! How a store file is opened.

use std::time::Duration;

/// How [`SqliteStore::open_with`](crate::SqliteStore::open_with) opens a file.
///
/// ```
/// use std::time::Duration;
/// use roomkit_graph_sqlite::Options;
///
/// let options = Options { busy_timeout: Duration::from_millis(250), ..Options::default() };
/// assert_eq!(options.max_size_bytes, None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// How long an operation waits for another process to release the file
    /// before failing with [`StoreError::Locked`](roomkit_graph_store::StoreError::Locked).
    /// 5 seconds by default.
    pub busy_timeout: Duration,
    /// A limit on the database file's size, in bytes (rounded down to whole
    /// pages, and never below the current size). Writes that would grow the
    /// file past it fail with [`StoreError::Full`](roomkit_graph_store::StoreError::Full),
    /// as on a full disk. None (no limit) by default.
    pub max_size_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options { busy_timeout: Duration::from_secs(5), max_size_bytes: None }
    }
}
