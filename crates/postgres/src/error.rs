//! PostgreSQL errors as [`StoreError`]s, each saying what went wrong.

use roomkit_graph_store::StoreError;
use tokio_postgres::error::SqlState;

/// A PostgreSQL error as a [`StoreError`].
pub(crate) fn store_error(err: &tokio_postgres::Error) -> StoreError {
    match err.code() {
        Some(code) if *code == SqlState::DISK_FULL || *code == SqlState::PROGRAM_LIMIT_EXCEEDED => {
            StoreError::Full(describe(err))
        }
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => StoreError::Locked(describe(err)),
        _ => StoreError::Backend(describe(err)),
    }
}

/// What PostgreSQL said: its code and message for a server error, the cause
/// for a connection error.
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("PostgreSQL {}: {}", db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return text;
    }
    match std::error::Error::source(err) {
        Some(source) => format!("{err}: {source}"),
        None => err.to_string(),
    }
}

/// Whether `err` is a unique violation.
pub(crate) fn is_unique_violation(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A connection that the pool could not give.
pub(crate) fn pool_error(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => {
            StoreError::Backend(format!("cannot connect to PostgreSQL: {}", describe(&err)))
        }
        other => StoreError::Backend(format!("cannot get a PostgreSQL connection: {other}")),
    }
}

/// A count stored as BIGINT, as the unsigned number it is.
pub(crate) fn stored_count(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Backend(format!("a stored {what} is negative: {value}")))
}

/// A count as BIGINT.
pub(crate) fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
