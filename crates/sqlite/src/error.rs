//! What the database layer fails with, and how it becomes a [`StoreError`].
//!
//! The SQL code returns [`DbError`] so it can use `?` on rusqlite and serde_json
//! results alike; the edges (the writer thread, the reader pool, `open`) turn it
//! into a [`StoreError`] with [`DbError::into_store`], which knows the file's path.

use std::path::Path;

use roomkit_graph_store::{Cause, StoreError};
use rusqlite::ErrorCode;

/// An error inside the SQLite layer, before it is named for the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// SQLite (or rusqlite) refused.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON text is not what we wrote.
    #[error("stored JSON is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// A store-level answer (not found, conflict...), already precise.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DbError {
    /// The store error for this, naming `path` when the file is not a database.
    ///
    /// SQLITE_BUSY and SQLITE_LOCKED only come back once the busy timeout has
    /// passed, so they mean the file stayed locked: [`StoreError::Locked`].
    pub(crate) fn into_store(self, path: &Path) -> StoreError {
        match self {
            DbError::Store(err) => err,
            DbError::Json(err) => {
                StoreError::Backend(Cause::new(format!("stored JSON is not valid: {err}")).with_source(err))
            }
            DbError::Sqlite(err) => {
                let cause = Cause::new(err.to_string());
                match err.sqlite_error_code() {
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                        StoreError::Locked(cause.with_source(err))
                    }
                    Some(ErrorCode::DiskFull) => StoreError::Full(cause.with_source(err)),
                    Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
                        path: path.display().to_string(),
                        detail: cause.with_source(err),
                    },
                    _ => StoreError::Backend(cause.with_source(err)),
                }
            }
        }
    }
}

/// A count or version as SQLite stores it (an `i64`), saturating: a number
/// beyond `i64::MAX` can match nothing stored anyway.
pub(crate) fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count or version back as a `u64`; a negative one means the file
/// was edited by hand.
pub(crate) fn stored_count(n: i64, what: &str) -> Result<u64, DbError> {
    u64::try_from(n).map_err(|_| StoreError::Backend(format!("stored {what} is negative: {n}").into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(code: i32) -> DbError {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None))
    }

    #[test]
    fn sqlite_codes_map_to_precise_store_errors() {
        let path = Path::new("/tmp/x.db");
        assert!(matches!(sqlite_error(rusqlite::ffi::SQLITE_BUSY).into_store(path), StoreError::Locked(_)));
        assert!(matches!(sqlite_error(rusqlite::ffi::SQLITE_LOCKED).into_store(path), StoreError::Locked(_)));
        assert!(matches!(sqlite_error(rusqlite::ffi::SQLITE_FULL).into_store(path), StoreError::Full(_)));
        assert!(matches!(
            sqlite_error(rusqlite::ffi::SQLITE_NOTADB).into_store(path),
            StoreError::NotADatabase { path, .. } if path == "/tmp/x.db"
        ));
        assert!(matches!(sqlite_error(rusqlite::ffi::SQLITE_IOERR).into_store(path), StoreError::Backend(_)));
    }

    #[test]
    fn the_sqlite_error_lies_under_the_store_error() {
        let locked = sqlite_error(rusqlite::ffi::SQLITE_BUSY).into_store(Path::new("/tmp/x.db"));
        let driver = std::error::Error::source(&locked).and_then(std::error::Error::source);
        assert!(driver.is_some_and(|cause| cause.is::<rusqlite::Error>()), "{locked:?}");
        assert_eq!(roomkit_graph::ErrorChain(&locked).to_string(), locked.to_string(), "said once");
    }
}
