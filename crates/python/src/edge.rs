//! `Edge`: a transition between two nodes.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyType;
use serde_json::Value;

use crate::condition::{self, Condition};
use crate::convert::{to_json, to_py};
use crate::dataclass;
use crate::dataclass::{object, or_dict, text};
use crate::errors::ErrorClass;

/// A connection between two nodes: `Edge(source, target, condition=None, metadata={})`.
#[pyclass(module = "roomkit_graph.edges.edge", frozen)]
pub(crate) struct Edge {
    #[pyo3(get)]
    source: Py<PyAny>,
    #[pyo3(get)]
    target: Py<PyAny>,
    #[pyo3(get)]
    condition: Py<PyAny>,
    #[pyo3(get)]
    metadata: Py<PyAny>,
}

#[pymethods]
impl Edge {
    #[new]
    #[pyo3(signature = (source, target, condition = None, metadata = None))]
    fn new(
        py: Python<'_>,
        source: Bound<'_, PyAny>,
        target: Bound<'_, PyAny>,
        condition: Option<Bound<'_, PyAny>>,
        metadata: Option<Bound<'_, PyAny>>,
    ) -> Self {
        Edge {
            source: source.unbind(),
            target: target.unbind(),
            condition: condition.map_or_else(|| py.None(), Bound::unbind),
            metadata: or_dict(py, metadata),
        }
    }

    /// The edge as JSON data: `condition` left out when none, `metadata` when empty.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let edge = serde_json::to_value(self.to_core(py)?)
            .map_err(|e| ErrorClass::Validation.err(format!("invalid edge: {e}")))?;
        to_py(py, &edge)
    }

    /// An edge from its JSON data; an empty or null `condition` is none.
    #[classmethod]
    fn from_dict<'py>(cls: &Bound<'py, PyType>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let edge: roomkit_graph::Edge = serde_json::from_value(to_json(data)?)
            .map_err(|e| ErrorClass::Validation.err(format!("invalid edge: {e}")))?;
        build(cls, &edge)
    }
}

impl Edge {
    /// The edge's source and target.
    pub(crate) fn ends(&self, py: Python<'_>) -> PyResult<(String, String)> {
        Ok((text(self.source.bind(py), "an edge's source")?, text(self.target.bind(py), "an edge's target")?))
    }

    /// The edge as the core's `Edge`.
    pub(crate) fn to_core(&self, py: Python<'_>) -> PyResult<roomkit_graph::Edge> {
        let (source, target) = self.ends(py)?;
        let what = format!("edge '{source}' -> '{target}'");
        let mut edge = roomkit_graph::Edge::new(source, target);
        let condition = self.condition.bind(py);
        if !condition.is_none() {
            let Ok(condition) = condition.cast::<Condition>() else {
                return Err(PyTypeError::new_err(format!(
                    "{what}: its condition must be a Condition, not {}",
                    condition.get_type().name()?
                )));
            };
            edge.condition = Some(condition.get().to_core(py)?);
        }
        edge.metadata = object(self.metadata.bind(py), &format!("{what}: its metadata"))?;
        Ok(edge)
    }
}

/// A new `Edge` (of class `cls`) from the core's.
pub(crate) fn build<'py>(
    cls: &Bound<'py, PyType>,
    edge: &roomkit_graph::Edge,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    // `"condition": {}` is no condition, as routing reads it.
    let condition = match (&edge.condition, edge.route_condition()) {
        (Some(condition), Some(_)) => condition::build(&py.get_type::<Condition>(), condition)?,
        _ => py.None().into_bound(py),
    };
    cls.call1((
        edge.source.as_str(),
        edge.target.as_str(),
        condition,
        to_py(py, &Value::Object(edge.metadata.clone()))?,
    ))
}

dataclass::dataclass_methods!(frozen Edge {
    source: "source",
    target: "target",
    condition: "condition",
    metadata: "metadata",
});
