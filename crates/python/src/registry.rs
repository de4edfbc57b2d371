//! `FunctionRegistry`: the Python functions `custom` function nodes call, by name.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Named functions for function nodes with `"action": "custom"`; each is
/// called as `f(context, config)` and may be sync or async.
///
/// `graph_registry` is the module's own, where `FunctionHandler` looks when
/// given no registry.
#[pyclass(module = "roomkit_graph.registry", subclass)]
pub(crate) struct FunctionRegistry {
    /// The functions by name (read at call time, so replacing an entry
    /// takes effect at once).
    #[pyo3(get, set)]
    _functions: Py<PyAny>,
}

#[pymethods]
impl FunctionRegistry {
    #[new]
    pub(crate) fn new(py: Python<'_>) -> Self {
        FunctionRegistry { _functions: PyDict::new(py).into_any().unbind() }
    }

    /// A decorator registering the function it decorates under `name`:
    /// `@registry.function("triple")`.
    fn function(slf: Bound<'_, Self>, name: Bound<'_, PyAny>) -> Register {
        Register { registry: slf.into_any().unbind(), name: name.unbind() }
    }

    /// Registers `func` under `name`, replacing any function of that name.
    fn register(&self, py: Python<'_>, name: Bound<'_, PyAny>, func: Bound<'_, PyAny>) -> PyResult<()> {
        self._functions.bind(py).set_item(name, func)
    }

    /// The function registered under `name`; `KeyError` when there is none.
    fn get<'py>(&self, py: Python<'py>, name: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self._functions.bind(py).get_item(name)
    }

    /// Whether a function is registered under `name`.
    fn has(&self, py: Python<'_>, name: Bound<'_, PyAny>) -> PyResult<bool> {
        self._functions.bind(py).contains(name)
    }

    /// The registered names, in the order they were first registered.
    fn list_functions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let names = PyList::empty(py);
        for name in self._functions.bind(py).try_iter()? {
            names.append(name?)?;
        }
        Ok(names)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("FunctionRegistry({})", self.list_functions(py)?.repr()?))
    }
}

/// What `FunctionRegistry.function(name)` returns: called with a function,
/// registers it and gives it back.
#[pyclass(module = "roomkit_graph.registry", frozen)]
pub(crate) struct Register {
    registry: Py<PyAny>,
    name: Py<PyAny>,
}

#[pymethods]
impl Register {
    fn __call__<'py>(&self, py: Python<'py>, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.registry.bind(py).getattr("_functions")?.set_item(&self.name, &func)?;
        Ok(func)
    }
}
