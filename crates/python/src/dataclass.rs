//! What makes the model's classes behave like the dataclasses they stand in
//! for: fresh defaults, `Name(field=value, ...)` as their repr, `==` field by
//! field between objects of the same class, and `FrozenInstanceError` when a
//! field of a frozen one is assigned; and reading their fields as the core's
//! types, with errors that name the field.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use serde_json::{Map, Value};

use crate::convert::to_json;

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

/// A fresh empty dict when `value` is absent.
pub(crate) fn or_dict(py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> Py<PyAny> {
    value.map_or_else(|| PyDict::new(py).into_any().unbind(), Bound::unbind)
}

/// A string field, or a `TypeError` naming `what`.
pub(crate) fn text(value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => {
            Err(PyTypeError::new_err(format!("{what} must be a string, not {}", value.get_type().name()?)))
        }
    }
}

/// A dict field as a JSON object (`None` is empty), or a `TypeError` naming `what`.
pub(crate) fn object(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Map<String, Value>> {
    if value.is_none() {
        return Ok(Map::new());
    }
    if !value.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(format!("{what} must be a dict, not {}", value.get_type().name()?)));
    }
    match to_json(value)? {
        Value::Object(map) => Ok(map),
        _ => Ok(Map::new()),
    }
}
