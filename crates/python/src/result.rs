//! `NodeResult` and `StepResult`: what a node handler returns, and one step's account.

use pyo3::prelude::*;
use pyo3::types::PyString;

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
}

dataclass::dataclass_methods!(mutable NodeResult {
    output: "output",
    status: "status",
    error: "error",
    metadata: "metadata",
});

dataclass::dataclass_methods!(mutable StepResult {
    node_id: "node_id",
    node_result: "node_result",
    next_node_id: "next_node_id",
    advanced: "advanced",
});
