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

/// Gives a pyclass whose fields are `Py<PyAny>` the methods a dataclass has
/// over them, in their declared order and under their Python names:
/// `__repr__`, `__eq__`, `__reduce__` (copy and pickle), `__match_args__`,
/// and `__hash__`: `None` for a `mutable` class (unhashable); for a `frozen`
/// one the hash of its fields, with assignment and deletion refused with
/// `FrozenInstanceError`. Also a `fields()` tuple for the class's own use.
macro_rules! dataclass_methods {
    (mutable $ty:ident { $($field:ident: $name:literal),+ $(,)? }) => {
        $crate::dataclass::dataclass_methods!(@common $ty borrow { $($field: $name),+ });

        #[::pyo3::pymethods]
        impl $ty {
            /// Mutable, so unhashable, as a dataclass.
            #[classattr]
            fn __hash__(py: ::pyo3::Python<'_>) -> ::pyo3::Py<::pyo3::PyAny> {
                py.None()
            }
        }
    };
    (frozen $ty:ident { $($field:ident: $name:literal),+ $(,)? }) => {
        $crate::dataclass::dataclass_methods!(@common $ty get { $($field: $name),+ });

        #[::pyo3::pymethods]
        impl $ty {
            fn __hash__(&self, py: ::pyo3::Python<'_>) -> ::pyo3::PyResult<isize> {
                ::pyo3::types::PyAnyMethods::hash(self.fields(py)?.as_any())
            }

            fn __setattr__(
                &self,
                py: ::pyo3::Python<'_>,
                name: &str,
                _value: ::pyo3::Bound<'_, ::pyo3::PyAny>,
            ) -> ::pyo3::PyResult<()> {
                Err($crate::dataclass::frozen_error(py, name))
            }

            fn __delattr__(&self, py: ::pyo3::Python<'_>, name: &str) -> ::pyo3::PyResult<()> {
                Err($crate::dataclass::frozen_error(py, name))
            }
        }
    };
    (@common $ty:ident $get:ident { $($field:ident: $name:literal),+ }) => {
        impl $ty {
            /// The fields, in their declared order.
            fn fields<'py>(
                &self,
                py: ::pyo3::Python<'py>,
            ) -> ::pyo3::PyResult<::pyo3::Bound<'py, ::pyo3::types::PyTuple>> {
                ::pyo3::types::PyTuple::new(py, [$(&self.$field),+])
            }
        }

        #[::pyo3::pymethods]
        impl $ty {
            fn __repr__(slf: &::pyo3::Bound<'_, Self>) -> ::pyo3::PyResult<String> {
                let py = slf.py();
                let this = slf.$get();
                $crate::dataclass::repr(slf.as_any(), &[$(($name, this.$field.bind(py))),+])
            }

            fn __eq__(
                slf: &::pyo3::Bound<'_, Self>,
                other: &::pyo3::Bound<'_, ::pyo3::PyAny>,
            ) -> ::pyo3::PyResult<::pyo3::Py<::pyo3::PyAny>> {
                if !$crate::dataclass::same_class(slf.as_any(), other) {
                    return Ok(slf.py().NotImplemented());
                }
                let other = other.cast::<Self>()?;
                $crate::dataclass::compare(slf.$get().fields(slf.py())?, other.$get().fields(slf.py())?)
            }

            /// Copies and pickles as the class called with its fields.
            fn __reduce__<'py>(
                slf: &::pyo3::Bound<'py, Self>,
            ) -> ::pyo3::PyResult<(
                ::pyo3::Bound<'py, ::pyo3::types::PyType>,
                ::pyo3::Bound<'py, ::pyo3::types::PyTuple>,
            )> {
                Ok((slf.get_type(), slf.$get().fields(slf.py())?))
            }

            #[classattr]
            fn __match_args__(
                py: ::pyo3::Python<'_>,
            ) -> ::pyo3::PyResult<::pyo3::Py<::pyo3::types::PyTuple>> {
                Ok(::pyo3::types::PyTuple::new(py, [$($name),+])?.unbind())
            }
        }
    };
}
pub(crate) use dataclass_methods;
