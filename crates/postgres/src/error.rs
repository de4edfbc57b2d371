//! PostgreSQL errors as [`StoreError`]s, each saying what went wrong.

use roomkit_graph::ErrorChain;
use roomkit_graph_store::{Cause, StoreError};
use tokio_postgres::error::SqlState;

/// A PostgreSQL error as a [`StoreError`], the driver's error kept as its
/// source: a lost or refused connection, a server shutting down or a
/// transaction the server gave up on (serialization failure, deadlock) is
/// [`StoreError::Unavailable`], worth trying again.
pub(crate) fn pg(err: tokio_postgres::Error) -> StoreError {
    pg_with(err, None)
}

/// [`pg`], the message led by `context` when given.
fn pg_with(err: tokio_postgres::Error, context: Option<&str>) -> StoreError {
    let message = match context {
        Some(context) => format!("{context}: {}", describe(&err)),
        None => describe(&err),
    };
    let kind: fn(Cause) -> StoreError = if is_transient(&err) {
        StoreError::Unavailable
    } else {
        match err.code() {
            Some(code) if *code == SqlState::DISK_FULL || *code == SqlState::PROGRAM_LIMIT_EXCEEDED => {
                StoreError::Full
            }
            Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => StoreError::Locked,
            _ => StoreError::Backend,
        }
    };
    kind(Cause::new(message).with_source(err))
}

/// What PostgreSQL said: its code, message and detail for a server error;
/// for a connection error, the error and its causes.
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("PostgreSQL {}: {}", db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return text;
    }
    ErrorChain(err).to_string()
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
        deadpool_postgres::PoolError::Backend(err) => pg_with(err, Some("cannot connect to PostgreSQL")),
        deadpool_postgres::PoolError::Timeout(_) => {
            StoreError::Unavailable("no PostgreSQL connection became free in time".into())
        }
        other => StoreError::Backend(format!("cannot get a PostgreSQL connection: {other}").into()),
    }
}

/// A count stored as BIGINT, as the unsigned number it is.
pub(crate) fn stored_count(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("a stored {what} is negative: {value}").into()))
}

/// A count as BIGINT.
pub(crate) fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
