//! `NodeResult` and `StepResult`: what a node handler returns, and one step's account.

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::dataclass;
use crate::dataclass::or_dict;

/// What a node handler returns: `NodeResult(output=None, status="completed",
/// error=None, metadata={})`; `status` is `completed`, `waiting` (the run
/// pauses at the node) or `failed` (with `error`).
#[pyclass(module = "roomkit_graph.handlers", subclass)]
pub(crate) struct NodeResult {
    /// What the node produced (stored as its output).
    #[pyo3(get, set)]
    pub(crate) output: Py<PyAny>,
    /// `completed`, `waiting` or `failed`.
    #[pyo3(get, set)]
    pub(crate) status: Py<PyAny>,
    /// Why the node failed.
    #[pyo3(get, set)]
    pub(crate) error: Py<PyAny>,
    /// Free-form data about the execution.
    #[pyo3(get, set)]
    pub(crate) metadata: Py<PyAny>,
}

#[pymethods]
impl NodeResult {
    #[new]
    #[pyo3(signature = (output = None, status = None, error = None, metadata = None))]
    fn new(
        py: Python<'_>,
        output: Option<Bound<'_, PyAny>>,
        status: Option<Bound<'_, PyAny>>,
        error: Option<Bound<'_, PyAny>>,
        metadata: Option<Bound<'_, PyAny>>,
    ) -> Self {
        NodeResult {
            output: output.map_or_else(|| py.None(), Bound::unbind),
            status: status.map_or_else(|| PyString::new(py, "completed").into_any().unbind(), Bound::unbind),
            error: error.map_or_else(|| py.None(), Bound::unbind),
            metadata: or_dict(py, metadata),
        }
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let this = slf.borrow();
        dataclass::repr(
            slf.as_any(),
            &[
                ("output", this.output.bind(py)),
                ("status", this.status.bind(py)),
                ("error", this.error.bind(py)),
                ("metadata", this.metadata.bind(py)),
            ],
        )
    }

    fn __eq__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if !dataclass::same_class(slf.as_any(), other) {
            return Ok(slf.py().NotImplemented());
        }
        let other = other.cast::<Self>()?;
        let py = slf.py();
        let fields = |r: &NodeResult| PyTuple::new(py, [&r.output, &r.status, &r.error, &r.metadata]);
        dataclass::compare(fields(&slf.borrow())?, fields(&other.borrow())?)
    }

    /// Mutable, so unhashable, as a dataclass.
    #[classattr]
    fn __hash__(py: Python<'_>) -> Py<PyAny> {
        py.None()
    }
}

/// One engine step: `StepResult(node_id, node_result, next_node_id=None, advanced=True)`.
#[pyclass(module = "roomkit_graph.handlers", subclass)]
pub(crate) struct StepResult {
    /// The node that ran.
    #[pyo3(get, set)]
    node_id: Py<PyAny>,
    /// What it returned.
    #[pyo3(get, set)]
    node_result: Py<PyAny>,
    /// Where the run goes next.
    #[pyo3(get, set)]
    next_node_id: Py<PyAny>,
    /// False when the run completed or waits.
    #[pyo3(get, set)]
    advanced: Py<PyAny>,
}

#[pymethods]
impl StepResult {
    #[new]
    #[pyo3(signature = (node_id, node_result, next_node_id = None, advanced = None))]
    fn new(
        py: Python<'_>,
        node_id: Bound<'_, PyAny>,
        node_result: Bound<'_, PyAny>,
        next_node_id: Option<Bound<'_, PyAny>>,
        advanced: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(StepResult {
            node_id: node_id.unbind(),
            node_result: node_result.unbind(),
            next_node_id: next_node_id.map_or_else(|| py.None(), Bound::unbind),
            advanced: match advanced {
                Some(advanced) => advanced.unbind(),
                None => true.into_pyobject(py)?.to_owned().into_any().unbind(),
            },
        })
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let this = slf.borrow();
        dataclass::repr(
            slf.as_any(),
            &[
                ("node_id", this.node_id.bind(py)),
                ("node_result", this.node_result.bind(py)),
                ("next_node_id", this.next_node_id.bind(py)),
                ("advanced", this.advanced.bind(py)),
            ],
        )
    }

    fn __eq__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if !dataclass::same_class(slf.as_any(), other) {
            return Ok(slf.py().NotImplemented());
        }
        let other = other.cast::<Self>()?;
        let py = slf.py();
        let fields =
            |r: &StepResult| PyTuple::new(py, [&r.node_id, &r.node_result, &r.next_node_id, &r.advanced]);
        dataclass::compare(fields(&slf.borrow())?, fields(&other.borrow())?)
    }

    /// Mutable, so unhashable, as a dataclass.
    #[classattr]
    fn __hash__(py: Python<'_>) -> Py<PyAny> {
        py.None()
    }
}
