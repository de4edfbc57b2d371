//! PostgreSQL errors as [`StoreError`]s, each saying what went wrong.

use roomkit_graph_store::StoreError;
use tokio_postgres::error::SqlState;

/// [`store_error`], taking the error by value, for `map_err`.
pub(crate) fn pg(err: tokio_postgres::Error) -> StoreError {
    store_error(&err)
}

/// A PostgreSQL error as a [`StoreError`]: a lost or refused connection, a
/// server shutting down or a transaction the server gave up on (serialization
/// failure, deadlock) is [`StoreError::Unavailable`], worth trying again.
pub(crate) fn store_error(err: &tokio_postgres::Error) -> StoreError {
    if is_transient(err) {
        return StoreError::Unavailable(describe(err));
    }
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

/// Whether trying again may succeed: the connection is gone (closed, or an
/// I/O error under it), or the server refused or ended the session or the
/// transaction for reasons of its own.
fn is_transient(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(code)
        }
        None => err.is_closed() || source_is_io(err),
    }
}

/// Whether an I/O error lies under `err`.
fn source_is_io(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Whether `err` is a unique violation.
pub(crate) fn is_unique_violation(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A connection that the pool could not give: the server could not be
/// reached or refused the session ([`StoreError::Unavailable`] when trying
/// again may help).
pub(crate) fn pool_error(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => match store_error(&err) {
            StoreError::Unavailable(detail) => {
                StoreError::Unavailable(format!("cannot connect to PostgreSQL: {detail}"))
            }
            _ => StoreError::Backend(format!("cannot connect to PostgreSQL: {}", describe(&err))),
        },
        deadpool_postgres::PoolError::Timeout(_) => {
            StoreError::Unavailable("no PostgreSQL connection became free in time".into())
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
