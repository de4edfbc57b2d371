//! Which database a runner opens, from what Python gives: text (a SQLite
//! file path, `sqlite://PATH`, or a `postgres://` / `postgresql://` URL,
//! read by `roomkit_graph_database` as the command line reads `--database`)
//! or a path-like object; and a failure to open it as the exception that
//! names it.

use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use roomkit_graph_database::{Database, OpenError};

use super::errors::{Refusal, register_error, store_error};

/// Reads `database`: text (a path or a URL) or a path-like object.
pub(crate) fn database_of(database: &Bound<'_, PyAny>) -> PyResult<Database> {
    if let Ok(text) = database.extract::<String>() {
        return text.parse().map_err(|refused| PyValueError::new_err(format!("{refused}")));
    }
    match database.extract::<PathBuf>() {
        Ok(path) => Ok(Database::Sqlite(path)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "the database is a SQLite file path or a postgres:// URL, not a {}",
            database.get_type().name()?
        ))),
    }
}

/// A runner that could not be opened, as the exception that names why.
pub(crate) fn open_error(error: OpenError) -> PyErr {
    match error {
        OpenError::Sqlite { source, .. } | OpenError::Postgres(source) => store_error(source),
        OpenError::Register(refused) => register_error(refused),
        interrupted @ OpenError::Interrupted(_) => Refusal::Store.err(interrupted.to_string()),
    }
}
