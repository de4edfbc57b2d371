//! The runner's and the store's errors as the package's exceptions
//! (`roomkit_graph/errors.py`): each refusal its own class, its message the
//! runner's own words.
//!
//! | error | exception |
//! |---|---|
//! | no such run, graph or version | `RunNotFoundError` (a `LookupError` too) |
//! | an answer to a run not waiting there | `NotWaitingError` |
//! | an answer the node does not take | `AnswerRefusedError` |
//! | a run already over | `RunFinishedError` |
//! | a worker id another live process holds | `WorkerTakenError` |
//! | the database failed (locked, out of reach, full, not ours) | `StoreError` |
//! | an invalid graph | `GraphValidationError` |
//! | the engine refused (a state that does not fit its graph...) | `ExecutionError` |
//! | anything else refused (a run that kept moving, a bad worker id...) | `DurableError` |

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use roomkit_graph_runner::{RegisterError, RunnerError};
use roomkit_graph_store::StoreError;

use crate::errors::ErrorClass;

/// One of the durable runner's exception classes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refusal {
    /// `DurableError`: the base of the others.
    Durable,
    /// `RunNotFoundError`.
    NotFound,
    /// `NotWaitingError`.
    NotWaiting,
    /// `AnswerRefusedError`.
    AnswerRefused,
    /// `RunFinishedError`.
    Finished,
    /// `WorkerTakenError`.
    WorkerTaken,
    /// `StoreError`.
    Store,
}

impl Refusal {
    fn name(self) -> &'static str {
        match self {
            Self::Durable => "DurableError",
            Self::NotFound => "RunNotFoundError",
            Self::NotWaiting => "NotWaitingError",
            Self::AnswerRefused => "AnswerRefusedError",
            Self::Finished => "RunFinishedError",
            Self::WorkerTaken => "WorkerTakenError",
            Self::Store => "StoreError",
        }
    }

    fn class(self, py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
        static SLOTS: [PyOnceLock<Py<PyType>>; 7] = [
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
        ];
        SLOTS[self as usize].import(py, "roomkit_graph.errors", self.name())
    }

    /// A new exception of this class with `message`.
    pub(crate) fn err(self, message: impl Into<String>) -> PyErr {
        let message = message.into();
        Python::attach(|py| match self.class(py) {
            Ok(class) => PyErr::from_type(class.clone(), message),
            Err(e) => e,
        })
    }
}

/// A runner's refusal as the exception that names it.
pub(crate) fn runner_error(error: RunnerError) -> PyErr {
    let message = error.to_string();
    match error {
        RunnerError::Store(store) => store_error(store),
        RunnerError::Graph(_) => ErrorClass::Validation.err(message),
        RunnerError::Engine(_) => ErrorClass::Execution.err(message),
        RunnerError::NotWaiting { .. } => Refusal::NotWaiting.err(message),
        RunnerError::InvalidAnswer { .. } => Refusal::AnswerRefused.err(message),
        RunnerError::Finished { .. } => Refusal::Finished.err(message),
        // The Python package forks no run; should it meet one, the base class says it.
        RunnerError::CannotFork { .. } => Refusal::Durable.err(message),
    }
}

/// A store's refusal or failure as the exception that names it.
pub(crate) fn store_error(error: StoreError) -> PyErr {
    let message = error.to_string();
    match error {
        StoreError::NotFound(_) => Refusal::NotFound.err(message),
        StoreError::Conflict { .. } | StoreError::Duplicate { .. } | StoreError::Invalid(_) => {
            Refusal::Durable.err(message)
        }
        StoreError::NotADatabase { .. }
        | StoreError::Foreign { .. }
        | StoreError::Locked(_)
        | StoreError::Full(_)
        | StoreError::Unavailable(_)
        | StoreError::Backend(_) => Refusal::Store.err(message),
    }
}

/// A refused worker registration as the exception that names it.
pub(crate) fn register_error(error: RegisterError) -> PyErr {
    let message = error.to_string();
    match error {
        RegisterError::Taken { .. } => Refusal::WorkerTaken.err(message),
        RegisterError::InvalidId(_) => pyo3::exceptions::PyValueError::new_err(message),
        RegisterError::Store(store) => store_error(store),
    }
}
