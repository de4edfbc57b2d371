//! `Node` and the names behind `NodeType`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};
use roomkit_graph::NodeType;
use serde_json::Value;

use crate::convert::{to_json, to_py};
use crate::dataclass::{self, object, or_dict, text};
use crate::errors::ErrorClass;

/// The built-in node types' names, as the core writes them; `NodeType`
/// (a `StrEnum` made in `roomkit_graph/nodes/base.py`) has one member each.
pub(crate) fn node_type_names() -> Vec<String> {
    [
        NodeType::Start,
        NodeType::End,
        NodeType::Agent,
        NodeType::Orchestration,
        NodeType::Human,
        NodeType::Notification,
        NodeType::Function,
        NodeType::Parallel,
        NodeType::Condition,
        NodeType::Switch,
        NodeType::Log,
    ]
    .iter()
    .map(|t| t.as_str().to_owned())
    .collect()
}

/// The `NodeType` enum class.
fn node_type_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    CLASS.import(py, "roomkit_graph.nodes.base", "NodeType")
}

/// A node type as given: the name of a built-in type of roomkit-graph's
/// becomes its `NodeType` member, any other string (`subgraph` included)
/// stays as it is.
pub(crate) fn coerce_type<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    if let Ok(text) = value.cast::<PyString>()
        && !matches!(NodeType::from(text.to_str()?), NodeType::Custom(_) | NodeType::Subgraph)
    {
        return node_type_class(py)?.call1((text,));
    }
    Ok(value.clone())
}

/// A step in a workflow graph: `Node(id, type, config={}, metadata={}, parent=None)`.
///
/// A built-in type given as a string becomes its `NodeType`; any other
/// string is a custom type, served by a handler registered under it.
#[pyclass(module = "roomkit_graph.nodes.base", subclass)]
pub(crate) struct Node {
    /// Unique within its graph.
    #[pyo3(get, set)]
    pub(crate) id: Py<PyAny>,
    /// A `NodeType`, or a custom type's name.
    #[pyo3(get, set, name = "type")]
    pub(crate) node_type: Py<PyAny>,
    /// The node's settings.
    #[pyo3(get, set)]
    pub(crate) config: Py<PyAny>,
    /// Free-form data kept with the node.
    #[pyo3(get, set)]
    pub(crate) metadata: Py<PyAny>,
    /// The parallel node that runs this node as a child.
    #[pyo3(get, set)]
    pub(crate) parent: Py<PyAny>,
}

#[pymethods]
impl Node {
    #[new]
    #[pyo3(signature = (id, r#type, config = None, metadata = None, parent = None))]
    fn new(
        py: Python<'_>,
        id: Bound<'_, PyAny>,
        r#type: Bound<'_, PyAny>,
        config: Option<Bound<'_, PyAny>>,
        metadata: Option<Bound<'_, PyAny>>,
        parent: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(Node {
            id: id.unbind(),
            node_type: coerce_type(&r#type)?.unbind(),
            config: or_dict(py, config),
            metadata: or_dict(py, metadata),
            parent: parent.map_or_else(|| py.None(), Bound::unbind),
        })
    }

    /// The node as JSON data: `config` and `metadata` left out when empty,
    /// `parent` when none.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let node = serde_json::to_value(self.to_core(py)?)
            .map_err(|e| ErrorClass::Validation.err(format!("invalid node: {e}")))?;
        to_py(py, &node)
    }

    /// A node from its JSON data (as `to_dict` writes it).
    #[classmethod]
    fn from_dict<'py>(cls: &Bound<'py, PyType>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let node: roomkit_graph::Node = serde_json::from_value(to_json(data)?)
            .map_err(|e| ErrorClass::Validation.err(format!("invalid node: {e}")))?;
        build(cls, &node)
    }
}

impl Node {
    /// The node as the core's `Node`.
    pub(crate) fn to_core(&self, py: Python<'_>) -> PyResult<roomkit_graph::Node> {
        let id = text(self.id.bind(py), "a node's id")?;
        let node_type = text(self.node_type.bind(py), &format!("node '{id}': its type"))?;
        let mut node = roomkit_graph::Node::new(id.clone(), node_type);
        node.config = object(self.config.bind(py), &format!("node '{id}': its config"))?;
        node.metadata = object(self.metadata.bind(py), &format!("node '{id}': its metadata"))?;
        let parent = self.parent.bind(py);
        if !parent.is_none() {
            node.parent = Some(text(parent, &format!("node '{id}': its parent"))?);
        }
        Ok(node)
    }
}

/// A new `Node` (of class `cls`) from the core's.
pub(crate) fn build<'py>(
    cls: &Bound<'py, PyType>,
    node: &roomkit_graph::Node,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    let parent = match &node.parent {
        Some(parent) => PyString::new(py, parent).into_any(),
        None => py.None().into_bound(py),
    };
    cls.call1((
        node.id.as_str(),
        node.node_type.as_str(),
        to_py(py, &Value::Object(node.config.clone()))?,
        to_py(py, &Value::Object(node.metadata.clone()))?,
        parent,
    ))
}

dataclass::dataclass_methods!(mutable Node {
    id: "id",
    node_type: "type",
    config: "config",
    metadata: "metadata",
    parent: "parent",
});
