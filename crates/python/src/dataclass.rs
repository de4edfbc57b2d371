//! What makes the model's classes behave like the dataclasses they stand in
//! for: `Name(field=value, ...)` as their repr, `==` field by field between
//! objects of the same class, and `FrozenInstanceError` when a field of a
//! frozen one is assigned.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};

/// `dataclasses.FrozenInstanceError` for an assignment to `name`.
pub(crate) fn frozen_error(py: Python<'_>, name: &str) -> PyErr {
    static CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    match CLASS.import(py, "dataclasses", "FrozenInstanceError") {
        Ok(class) => PyErr::from_type(class.clone(), format!("cannot assign to field '{name}'")),
        Err(e) => e,
    }
}

/// `ClassName(a=repr(a), b=repr(b))`, named after the object's own class (a
/// subclass shows its own name).
pub(crate) fn repr(object: &Bound<'_, PyAny>, fields: &[(&str, &Bound<'_, PyAny>)]) -> PyResult<String> {
    let class = object.get_type().qualname()?;
    let mut parts = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        parts.push(format!("{name}={}", value.repr()?));
    }
    Ok(format!("{class}({})", parts.join(", ")))
}

/// Whether `other` is of exactly the class of `this`: a dataclass compares
/// with nothing else (`NotImplemented`).
pub(crate) fn same_class(this: &Bound<'_, PyAny>, other: &Bound<'_, PyAny>) -> bool {
    this.get_type().is(other.get_type())
}

/// The fields of two objects of one class compared as tuples, as a dataclass's `==` does.
pub(crate) fn compare(a: Bound<'_, PyTuple>, b: Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let py = a.py();
    Ok(pyo3::types::PyBool::new(py, a.eq(b)?).to_owned().into_any().unbind())
}
