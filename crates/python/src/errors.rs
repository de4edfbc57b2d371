//! The package's exception classes, raised from Rust.
//!
//! The classes are defined in Python (`roomkit_graph/errors.py`, so that
//! applications can subclass and pickle them like any exception); this module
//! looks each one up once and builds the error the engine raises.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// One of the package's exception classes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ErrorClass {
    /// `GraphValidationError`: a graph that is not valid.
    Validation,
    /// `ConditionError`: a condition that cannot be read or evaluated.
    Condition,
    /// `TemplateError`: a template that cannot be rendered.
    Template,
    /// `ExecutionError`: a run that cannot go on.
    Execution,
    /// `NoValidTransitionError`: no edge out of a node matched.
    NoValidTransition,
}

impl ErrorClass {
    fn name(self) -> &'static str {
        match self {
            Self::Validation => "GraphValidationError",
            Self::Condition => "ConditionError",
            Self::Template => "TemplateError",
            Self::Execution => "ExecutionError",
            Self::NoValidTransition => "NoValidTransitionError",
        }
    }

    fn slot(self) -> &'static PyOnceLock<Py<PyType>> {
        static SLOTS: [PyOnceLock<Py<PyType>>; 5] =
            [PyOnceLock::new(), PyOnceLock::new(), PyOnceLock::new(), PyOnceLock::new(), PyOnceLock::new()];
        &SLOTS[self as usize]
    }

    /// The class itself.
    pub(crate) fn class(self, py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
        self.slot().import(py, "roomkit_graph.errors", self.name())
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
